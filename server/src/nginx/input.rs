//! What the nginx config's settings may contain.
//!
//! The renderer pastes each setting into the template as it is, so a value with `;`, a brace,
//! a quote or a line break would end its directive and start others (`--upstream "a:1;
//! include /etc/passwd"`), and a value holding `{{name}}` would be substituted again. Each
//! setting is therefore checked against the characters its directive allows before rendering,
//! and refused with the flag's name and the offending character.

use anyhow::bail;

use super::NginxConfig;

impl NginxConfig {
    /// Refuses settings that are not one token of their directive's syntax.
    pub(super) fn check(&self) -> anyhow::Result<()> {
        address("--listen", &self.listen)?;
        for upstream in &self.upstreams {
            address("--upstream", upstream)?;
        }
        for network in &self.real_ip_from {
            token("--real-ip-from", network, |c| {
                c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '/')
            })?;
        }
        if !self.prefix.is_empty() {
            token("--prefix", &self.prefix, |c| {
                c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '-' | '_' | '+' | '@' | ',')
            })?;
        }
        if !self.user.is_empty() {
            // `user NAME [GROUP];`
            for part in self.user.split(' ') {
                token("--user", part, |c| {
                    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
                })?;
            }
        }
        Ok(())
    }
}

/// `host:port`, `port`, `[v6]:port` or `unix:/path`.
fn address(flag: &str, value: &str) -> anyhow::Result<()> {
    token(flag, value, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '_' | '[' | ']' | '/')
    })
}

fn token(flag: &str, value: &str, allowed: impl Fn(char) -> bool) -> anyhow::Result<()> {
    if value.is_empty() {
        bail!("{flag} is empty");
    }
    if let Some(bad) = value.chars().find(|&c| !allowed(c)) {
        bail!("{flag} {value:?}: {bad:?} is not allowed in this nginx setting");
    }
    Ok(())
}
