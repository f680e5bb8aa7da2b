//! Renders the project's nginx config (`deploy/nginx/nginx.conf.template`) for any upstream
//! list and listen address: the local stack, the tests and docker compose all use it.

use std::fmt::Write;
use std::path::Path;

use clap::Args;

/// The template, compiled in so the binary renders it from anywhere.
pub const TEMPLATE: &str = include_str!("../../deploy/nginx/nginx.conf.template");

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
}

impl NginxConfig {
    /// The rendered nginx.conf.
    pub fn render(&self) -> String {
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
        let mut real_ip = String::new();
        for network in &self.real_ip_from {
            let _ = writeln!(real_ip, "    set_real_ip_from {network};");
        }
        [
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
        ]
        .iter()
        .fold(TEMPLATE.to_string(), |text, (key, value)| {
            text.replace(&format!("{{{{{key}}}}}"), value)
        })
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
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        let text = config().render();
        assert!(!text.contains("{{"), "unfilled placeholder in:\n{text}");
        assert!(text.contains("ip_hash;"));
        assert!(text.contains("server 127.0.0.1:6002 max_fails=3"));
        assert!(text.contains("set_real_ip_from 10.0.0.0/8;"));
        assert!(text.contains("listen 127.0.0.1:8080 reuseport"));
        assert!(text.contains("pid /run/x/nginx.pid;"));
        assert!(text.contains("worker_connections 19000;"));
    }

    #[test]
    fn sized_for_forty_thousand_members() {
        let c = config();
        let text = c.render();
        assert!(text.contains("worker_rlimit_nofile 20000;"));
        // Two descriptors per proxied member.
        let members = c.worker_processes * c.rlimit_nofile.saturating_sub(1_000) / 2;
        assert!(members >= 40_000, "{members}");
    }
}
