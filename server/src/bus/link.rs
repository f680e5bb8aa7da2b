//! One publishing connection to one Redis: opened on demand, replaced once it broke, and the
//! connection settings every Redis connection of the bus uses.
//!
//! Its own module because both buses publish through it: the single Redis bus over one link, the
//! cluster bus over one link per master.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{AsyncConnectionConfig, PushInfo, PushKind};

/// A publishing connection: connecting and sending are separate steps, so that a caller knows
/// whether anything was handed to Redis (see `publish`).
pub struct Link {
    client: redis::Client,
    timeout: Duration,
    live: tokio::sync::Mutex<Option<Live>>,
}

struct Live {
    conn: MultiplexedConnection,
    /// Set by the connection's driver (a disconnection push) when the socket closed.
    dropped: Arc<AtomicBool>,
}

impl Link {
    pub fn new(client: redis::Client, timeout: Duration) -> Self {
        Link {
            client,
            timeout,
            live: tokio::sync::Mutex::new(None),
        }
    }

    /// The live connection, or a new one. An error here means nothing was sent on it.
    pub async fn get(&self) -> Result<MultiplexedConnection, String> {
        let mut live = self.live.lock().await;
        if let Some(current) = &*live
            && !current.dropped.load(Relaxed)
        {
            return Ok(current.conn.clone());
        }
        *live = None;
        let dropped = Arc::new(AtomicBool::new(false));
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            // Replies are awaited under the caller's own timeout, which decides the outcome.
            .set_response_timeout(None)
            .set_push_sender(MarkDropped(dropped.clone()));
        let connecting = self
            .client
            .get_multiplexed_async_connection_with_config(&config);
        let conn = match tokio::time::timeout(self.timeout, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("cannot connect within {:?}", self.timeout)),
        };
        *live = Some(Live {
            conn: conn.clone(),
            dropped,
        });
        Ok(conn)
    }

    /// Forgets the connection: the next `get` opens a new one.
    pub async fn discard(&self) {
        *self.live.lock().await = None;
    }

    /// PING over the link (opening it if needed); a broken connection is discarded.
    pub async fn ping(&self) -> Result<(), String> {
        let mut conn = self.get().await?;
        let reply = tokio::time::timeout(
            self.timeout,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        match reply {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                self.discard().await;
                Err(e.to_string())
            }
            Err(_) => Err(no_answer(self.timeout)),
        }
    }
}

/// What a command that got no reply in time is reported as.
pub fn no_answer(timeout: Duration) -> String {
    format!("no answer within {timeout:?}")
}

/// Marks a connection broken when its driver reports the disconnection, so that the next batch
/// reconnects instead of writing into a closed socket.
struct MarkDropped(Arc<AtomicBool>);

impl AsyncPushSender for MarkDropped {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        if info.kind == PushKind::Disconnection {
            self.0.store(true, Relaxed);
        }
        Ok(())
    }
}

/// The URL's connection settings with RESP3 and TCP_NODELAY on. RESP3, because subscriptions
/// through `ConnectionManager` need push messages; TCP_NODELAY, because publishes are small
/// commands written back to back, and with Nagle's algorithm each would wait for the ACK of the
/// one before.
pub fn connection_info(url: &str) -> anyhow::Result<redis::ConnectionInfo> {
    use redis::IntoConnectionInfo;
    let info = with_resp3(url)
        .into_connection_info()
        .map_err(|e| anyhow::anyhow!("invalid Redis URL {url:?}: {e}"))?;
    let tcp = redis::io::tcp::TcpSettings::default().set_nodelay(true);
    Ok(info.set_tcp_settings(tcp))
}

fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

#[cfg(test)]
mod tests {
    use super::{connection_info, with_resp3};

    #[test]
    fn resp3_is_requested_once() {
        assert_eq!(with_resp3("redis://h:1"), "redis://h:1?protocol=resp3");
        assert_eq!(
            with_resp3("redis://h:1/?db=2"),
            "redis://h:1/?db=2&protocol=resp3"
        );
        assert_eq!(
            with_resp3("redis://h/?protocol=resp3"),
            "redis://h/?protocol=resp3"
        );
    }

    #[test]
    fn connections_have_nagle_off_and_speak_resp3() {
        let info = connection_info("redis://127.0.0.1:6379").expect("valid URL");
        assert!(info.tcp_settings().nodelay());
        assert_eq!(
            info.redis_settings().protocol(),
            redis::ProtocolVersion::RESP3
        );
        assert!(connection_info("not a url").is_err());
    }
}
