//! The open-file limit, raised to what the process may have.
//!
//! Every member is a socket, and a socket is a file descriptor. Many environments start
//! processes with a soft limit of 1,024 open files under a far higher hard limit: systemd
//! services, and containers under Docker 25 or later. A worker, the cluster master or the load
//! generator would then refuse members past about a thousand while the kernel allows far more.
//! Raising the soft limit to the hard one needs no privilege, so each binary does it at start
//! instead of asking every deployment (compose `ulimits`, which an engine may refuse when the
//! host's own hard limit is lower) to do it.

/// The open-file limits after [`raise_open_files_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFilesLimit {
    /// The soft limit in force now.
    pub soft: u64,
    /// The hard limit (the ceiling the soft limit was raised to).
    pub hard: u64,
    /// The soft limit before, when it was raised.
    pub raised_from: Option<u64>,
}

/// Raises this process's soft open-file limit to its hard limit. Children inherit it.
pub fn raise_open_files_limit() -> std::io::Result<OpenFilesLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if before >= limit.rlim_max {
        return Ok(OpenFilesLimit {
            soft: before,
            hard: limit.rlim_max,
            raised_from: None,
        });
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(OpenFilesLimit {
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
        raised_from: Some(before),
    })
}

/// Raises the limit and says on stderr what happened when it matters: raised, or impossible.
pub fn raise_open_files_limit_or_warn(program: &str) {
    match raise_open_files_limit() {
        Ok(OpenFilesLimit {
            soft,
            raised_from: Some(before),
            ..
        }) => tracing::debug!(program, before, soft, "raised the open-file limit"),
        Ok(_) => {}
        Err(e) => eprintln!("{program}: cannot raise the open-file limit: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_soft_limit_under_the_hard_limit_is_raised_to_it() {
        let first = raise_open_files_limit().expect("getrlimit/setrlimit");
        assert_eq!(first.soft, first.hard);
        // One below the hard limit: lower, yet harmless to the other tests in this process.
        let lowered = libc::rlimit {
            rlim_cur: first.hard - 1,
            rlim_max: first.hard,
        };
        // SAFETY: setrlimit only reads the struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
        let raised = raise_open_files_limit().expect("getrlimit/setrlimit");
        assert_eq!(raised.raised_from, Some(first.hard - 1));
        assert_eq!(raised.soft, first.hard);
        let again = raise_open_files_limit().expect("getrlimit/setrlimit");
        assert_eq!(again.raised_from, None, "nothing left to raise");
    }
}
