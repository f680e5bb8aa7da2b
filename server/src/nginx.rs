//! Renders the project's nginx config (`deploy/nginx/nginx.conf.template`) for any upstream
//! list and listen address: the local stack, the tests and docker compose all use it.
//! Compose renders it when the stack comes up, for however many workers `CHAT_WORKERS` asks
//! for, so the upstream list can never disagree with the cluster it fronts.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

/// The template, compiled in so the binary renders it from anywhere.
pub const TEMPLATE: &str = include_str!("../../deploy/nginx/nginx.conf.template");

mod input;

/// Open files an nginx worker may hold (this machine's hard limit per process).
pub const DEFAULT_RLIMIT_NOFILE: usize = 20_000;

#[derive(Debug, Clone, Args)]
pub struct NginxConfig {
    /// Address nginx listens on, e.g. 127.0.0.1:8080 or 80.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Upstream chat workers (host:port), repeatable or comma separated.
    #[arg(long = "upstream", value_delimiter = ',', required = true)]
    pub upstreams: Vec<String>,

    /// Networks whose X-Forwarded-For is trusted as the client address.
    #[arg(
        long = "real-ip-from",
        value_delimiter = ',',
        default_value = "127.0.0.0/8"
    )]
    pub real_ip_from: Vec<String>,

    /// nginx worker processes (each holds ~9,500 members under a 20,000 file limit).
    #[arg(long, default_value_t = 6)]
    pub worker_processes: usize,

    /// Open-file limit per nginx worker.
    #[arg(long, default_value_t = DEFAULT_RLIMIT_NOFILE)]
    pub rlimit_nofile: usize,

    /// Folder for the pid file, logs and temp files (empty: nginx's defaults, for containers).
    #[arg(long, default_value = "")]
    pub prefix: String,

    /// `user` directive; empty leaves nginx's default.
    #[arg(long, default_value = "")]
    pub user: String,

    /// Connections nginx accepts from one client address at once (the forwarded address
    /// where X-Forwarded-For is trusted); more get HTTP 503. 0: no limit.
    #[arg(long, default_value_t = DEFAULT_LIMIT_CONN_PER_ADDRESS)]
    pub limit_conn_per_address: usize,

    /// Source address of nginx's connections to the workers (`proxy_bind`); default: the
    /// kernel's choice. The local stack's `--namespaces` gives nginx an address of its own, so
    /// a worker can be cut from nginx alone.
    #[arg(long)]
    pub proxy_bind: Option<std::net::IpAddr>,
}

/// The per-address connection limit nginx renders by default. A real limit rather than none:
/// one host opening thousands of connections is an attack, not a user. Well above what a
/// large NAT (an office, a carrier-grade NAT) puts behind one address, and far above the
/// load generator's share: it spreads members over 250 loopback addresses (120 per address
/// at 30,000 members, 160 at 40,000) or one forwarded address per member.
pub const DEFAULT_LIMIT_CONN_PER_ADDRESS: usize = 1_000;

/// `chat-server nginx-config`: the config's settings, how many workers each upstream stands
/// for, and where the result goes.
#[derive(Debug, Clone, Args)]
pub struct RenderCommand {
    #[command(flatten)]
    pub config: NginxConfig,

    /// Workers behind each --upstream: HOST:PORT stands for N workers on ports PORT..PORT+N-1,
    /// as `chat-server cluster --workers N --base-port PORT` starts them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers_per_upstream: u16,

    /// Write the config to this file (replaced whole, never seen half-written) instead of
    /// printing it.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

impl RenderCommand {
    pub fn run(mut self) -> anyhow::Result<()> {
        self.config.upstreams =
            consecutive_workers(&self.config.upstreams, self.workers_per_upstream)?;
        let text = self.config.render()?;
        match &self.output {
            None => {
                print!("{text}");
                Ok(())
            }
            Some(path) => replace_file(path, &text),
        }
    }
}

/// Each `host:port` followed by the `count - 1` ports after it.
pub fn consecutive_workers(upstreams: &[String], count: u16) -> anyhow::Result<Vec<String>> {
    if count == 1 {
        return Ok(upstreams.to_vec());
    }
    let mut all = Vec::with_capacity(upstreams.len() * usize::from(count));
    for upstream in upstreams {
        let (host, port) = upstream
            .rsplit_once(':')
            .with_context(|| format!("upstream `{upstream}` is not HOST:PORT"))?;
        let first: u16 = port
            .parse()
            .with_context(|| format!("upstream `{upstream}`: `{port}` is not a port"))?;
        let last = first.checked_add(count - 1).with_context(|| {
            format!("upstream `{upstream}`: {count} workers from port {first} pass port 65535")
        })?;
        all.extend((first..=last).map(|p| format!("{host}:{p}")));
    }
    Ok(all)
}

/// Writes beside the target and renames over it, so nginx never reads a partial config.
fn replace_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    std::fs::write(&temp, text).with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, path)
        .with_context(|| format!("cannot replace {} with {}", path.display(), temp.display()))
}

impl NginxConfig {
    /// The rendered nginx.conf; settings that are not one token of their directive are refused
    /// first (`input`), so no caller can paste a directive in.
    pub fn render(&self) -> anyhow::Result<String> {
        self.check()?;
        let connections = self.rlimit_nofile.saturating_sub(1_000).max(1_024);
        let (pid, error_log, access_log, temp) = if self.prefix.is_empty() {
            (
                "/var/run/nginx.pid".to_string(),
                "/dev/stderr".to_string(),
                "off".to_string(),
                "/tmp/nginx".to_string(),
            )
        } else {
            let p = Path::new(&self.prefix);
            (
                p.join("nginx.pid").display().to_string(),
                p.join("nginx-error.log").display().to_string(),
                "off".to_string(),
                p.join("nginx-temp").display().to_string(),
            )
        };
        let user = if self.user.is_empty() {
            String::new()
        } else {
            format!("user {};", self.user)
        };
        let mut upstreams = String::new();
        for upstream in &self.upstreams {
            let _ = writeln!(
                upstreams,
                "        server {upstream} max_fails=3 fail_timeout=5s;"
            );
        }
        let (limit_conn_zone, limit_conn) = match self.limit_conn_per_address {
            0 => (String::new(), String::new()),
            n => (
                "    limit_conn_zone $binary_remote_addr zone=per_address:10m;\n    \
                 limit_conn_status 503;"
                    .to_string(),
                format!("        limit_conn per_address {n};"),
            ),
        };
        let mut real_ip = String::new();
        for network in &self.real_ip_from {
            let _ = writeln!(real_ip, "    set_real_ip_from {network};");
        }
        let proxy_bind = self
            .proxy_bind
            .map(|address| format!("        proxy_bind {address};"))
            .unwrap_or_default();
        let text = [
            ("user", user),
            ("worker_processes", self.worker_processes.to_string()),
            ("worker_rlimit_nofile", self.rlimit_nofile.to_string()),
            ("worker_connections", connections.to_string()),
            ("pid_file", pid),
            ("error_log", error_log),
            ("access_log", access_log),
            ("temp_dir", temp),
            ("listen", self.listen.clone()),
            ("upstream_servers", upstreams.trim_end().to_string()),
            ("set_real_ip_from", real_ip.trim_end().to_string()),
            ("limit_conn_zone", limit_conn_zone),
            ("limit_conn", limit_conn),
            ("proxy_bind", proxy_bind),
        ]
        .iter()
        .fold(TEMPLATE.to_string(), |text, (key, value)| {
            text.replace(&format!("{{{{{key}}}}}"), value)
        });
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NginxConfig {
        NginxConfig {
            listen: "127.0.0.1:8080".into(),
            upstreams: vec!["127.0.0.1:6001".into(), "127.0.0.1:6002".into()],
            real_ip_from: vec!["127.0.0.0/8".into(), "10.0.0.0/8".into()],
            worker_processes: 6,
            rlimit_nofile: 20_000,
            prefix: "/run/x".into(),
            user: String::new(),
            limit_conn_per_address: 1_000,
            proxy_bind: None,
        }
    }

    #[test]
    fn upstream_connections_come_from_the_bound_address_when_one_is_given() {
        assert!(!config().render().expect("renders").contains("proxy_bind"));
        let bound = NginxConfig {
            proxy_bind: Some([10, 240, 0, 254].into()),
            ..config()
        }
        .render()
        .expect("renders");
        assert!(
            bound.contains("        proxy_bind 10.240.0.254;"),
            "{bound}"
        );
    }

    #[test]
    fn the_per_address_limit_is_rendered_or_left_out() {
        let text = config().render().expect("renders");
        assert!(text.contains("limit_conn_zone $binary_remote_addr zone=per_address:10m;"));
        assert!(text.contains("limit_conn per_address 1000;"));
        let off = NginxConfig {
            limit_conn_per_address: 0,
            ..config()
        }
        .render()
        .expect("renders");
        assert!(!off.contains("limit_conn"), "{off}");
    }

    #[test]
    fn every_placeholder_is_filled() {
        let text = config().render().expect("renders");
        assert!(!text.contains("{{"), "unfilled placeholder in:\n{text}");
        assert!(text.contains("ip_hash;"));
        assert!(text.contains("server 127.0.0.1:6002 max_fails=3"));
        assert!(text.contains("set_real_ip_from 10.0.0.0/8;"));
        assert!(text.contains("listen 127.0.0.1:8080 reuseport"));
        assert!(text.contains("pid /run/x/nginx.pid;"));
        assert!(text.contains("worker_connections 19000;"));
    }

    #[test]
    fn an_upstream_stands_for_consecutive_workers() {
        let one = vec!["chat:6001".to_string(), "[::1]:7000".to_string()];
        assert_eq!(consecutive_workers(&one, 1).unwrap(), one);
        assert_eq!(
            consecutive_workers(&one, 3).unwrap(),
            [
                "chat:6001",
                "chat:6002",
                "chat:6003",
                "[::1]:7000",
                "[::1]:7001",
                "[::1]:7002"
            ]
        );
        let error = consecutive_workers(&["chat".into()], 2).unwrap_err();
        assert!(error.to_string().contains("not HOST:PORT"), "{error}");
        let error = consecutive_workers(&["chat:65535".into()], 2).unwrap_err();
        assert!(error.to_string().contains("pass port 65535"), "{error}");
    }

    #[test]
    fn sized_for_forty_thousand_members() {
        let c = config();
        let text = c.render().expect("renders");
        assert!(text.contains("worker_rlimit_nofile 20000;"));
        // Two descriptors per proxied member.
        let members = c.worker_processes * c.rlimit_nofile.saturating_sub(1_000) / 2;
        assert!(members >= 40_000, "{members}");
    }
}
