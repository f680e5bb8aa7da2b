//! One subscriber connection to one cluster master: SSUBSCRIBE and SUNSUBSCRIBE go out in the
//! order they were queued, and what comes back is told apart by its channel.
//!
//! Our own connection, not the redis crate's: besides the confirmations of our own commands, a
//! master sends a `sunsubscribe` push of its own for every channel of a slot it loses (a slot
//! migrated away, a failover that made it a replica). The crate takes such a push for the reply
//! to the oldest command in flight, which shifts every later reply (docs/notes.md); here a
//! `sunsubscribe` completes a queued SUNSUBSCRIBE only when it names that command's channel, and
//! is otherwise reported through [`ShardEvents::pushed_out`] so the subscription can follow its
//! slot. Room messages (`smessage`) are handed on straight from the read buffer.
//!
//! The connection opens with the first SSUBSCRIBE queued while there is none. A SUNSUBSCRIBE
//! while there is none succeeds at once: a subscription does not outlive its connection.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::resp3::{self, Frame, Items, MAX_BLOB};
use super::topology::NodeAddr;

/// What the subscriber connection reports, besides the replies to its commands.
pub trait ShardEvents: Send + Sync + 'static {
    /// A message on a sharded channel (`smessage`).
    fn message(&self, channel: &[u8], payload: &[u8]);
    /// `node` dropped our subscription to `channel` without being asked: its slot moved.
    fn pushed_out(&self, node: &NodeAddr, channel: &[u8]);
    /// The connection to `node` closed: every subscription it held is gone.
    fn disconnected(&self, node: &NodeAddr);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Subscribe,
    Unsubscribe,
}

/// Why a command did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ShardError {
    /// Nothing was written: no connection could be made.
    #[error("cannot connect to {0}")]
    NotConnected(String),
    /// The master answered with an error (`MOVED`, `CLUSTERDOWN`, ...).
    #[error("Redis refused: {0}")]
    Refused(String),
    /// Written, then the connection closed before the answer.
    #[error("connection closed before the answer: {0}")]
    Broken(String),
}

impl ShardError {
    /// The slot and its owner, for a `MOVED slot host:port` refusal.
    pub fn moved(&self) -> Option<(u16, &str)> {
        let ShardError::Refused(text) = self else {
            return None;
        };
        let mut words = text.strip_prefix("MOVED ")?.split(' ');
        let slot = words.next()?.parse().ok()?;
        Some((slot, words.next()?))
    }
}

pub type Reply = oneshot::Receiver<Result<(), ShardError>>;

struct Queued {
    request: Request,
    channel: Arc<str>,
    reply: oneshot::Sender<Result<(), ShardError>>,
}

/// The handle of one master's subscriber connection; cheap to clone.
#[derive(Clone)]
pub struct ShardLink {
    queue: mpsc::UnboundedSender<Queued>,
}

impl ShardLink {
    /// Starts the connection's task (it connects when the first SSUBSCRIBE comes).
    pub fn spawn(node: NodeAddr, timeout: Duration, events: Arc<dyn ShardEvents>) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(node, timeout, events, rx));
        ShardLink { queue }
    }

    /// Queues a command; commands reach Redis in the order they were queued. Never waits, so a
    /// caller can queue while holding its own lock and keep its state in that order.
    pub fn send(&self, request: Request, channel: &Arc<str>) -> Reply {
        let (reply, answer) = oneshot::channel();
        let queued = Queued {
            request,
            channel: channel.clone(),
            reply,
        };
        if let Err(mpsc::error::SendError(queued)) = self.queue.send(queued) {
            let _ = queued
                .reply
                .send(Err(ShardError::NotConnected("the bus is stopping".into())));
        }
        answer
    }
}

async fn run(
    node: NodeAddr,
    timeout: Duration,
    events: Arc<dyn ShardEvents>,
    mut queue: mpsc::UnboundedReceiver<Queued>,
) {
    while let Some(first) = queue.recv().await {
        if first.request == Request::Unsubscribe {
            let _ = first.reply.send(Ok(()));
            continue;
        }
        let stream = match connect(&node, timeout).await {
            Ok(stream) => stream,
            Err(reason) => {
                // Everything queued meanwhile fails too, rather than each waiting to connect.
                let error = ShardError::NotConnected(format!("{node}: {reason}"));
                answer_unconnected(first, &error);
                while let Ok(queued) = queue.try_recv() {
                    answer_unconnected(queued, &error);
                }
                continue;
            }
        };
        let mut session = Session {
            node: &node,
            events: &*events,
            pending: VecDeque::new(),
        };
        let reason = session.serve(stream, first, &mut queue).await;
        tracing::warn!(
            node = &*node,
            "cluster subscriber connection closed: {reason}"
        );
        session.close(&reason);
        events.disconnected(&node);
    }
}

/// With no connection, an unsubscribe has nothing to undo; anything else failed.
fn answer_unconnected(queued: Queued, error: &ShardError) {
    let result = match queued.request {
        Request::Unsubscribe => Ok(()),
        Request::Subscribe => Err(error.clone()),
    };
    let _ = queued.reply.send(result);
}

/// Connects and switches to RESP3 (`HELLO 3`), all within `timeout`.
async fn connect(node: &str, timeout: Duration) -> Result<TcpStream, String> {
    let (host, port) = node
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("not a host:port address: {node}"))?;
    let hello = async {
        let mut stream = TcpStream::connect((host, port))
            .await
            .map_err(|e| e.to_string())?;
        // Subscription commands are small writes; do not let Nagle hold them back.
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut command = Vec::new();
        encode(&mut command, &[b"HELLO", b"3"]);
        stream
            .write_all(&command)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            if stream.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                return Err("closed during HELLO".to_string());
            }
            match resp3::parse(&buf).map_err(|e| e.to_string())? {
                Some((Frame::Aggregate(_), used)) if used == buf.len() => return Ok(stream),
                Some((Frame::Error(text), _)) => {
                    return Err(format!("HELLO 3: {}", String::from_utf8_lossy(text)));
                }
                Some((other, _)) => return Err(format!("HELLO 3 answered {other:?}")),
                None => {}
            }
        }
    };
    match tokio::time::timeout(timeout, hello).await {
        Ok(result) => result,
        Err(_) => Err(format!("no connection within {timeout:?}")),
    }
}

/// Appends a RESP command (an array of bulk strings).
fn encode(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
}

struct Pending {
    request: Request,
    channel: Arc<str>,
    reply: oneshot::Sender<Result<(), ShardError>>,
}

/// One connection's life: writes commands, reads replies and pushes, until it breaks.
struct Session<'a> {
    node: &'a NodeAddr,
    events: &'a dyn ShardEvents,
    /// Commands written and not yet answered, oldest first.
    pending: VecDeque<Pending>,
}

/// The read buffer may hold one frame of at most this much (plus what follows it).
const MAX_BUFFERED: usize = MAX_BLOB + 64 * 1024;

impl Session<'_> {
    /// Serves until the connection breaks (the reason) or the bus stops.
    async fn serve(
        &mut self,
        stream: TcpStream,
        first: Queued,
        queue: &mut mpsc::UnboundedReceiver<Queued>,
    ) -> String {
        let (mut reader, mut writer) = stream.into_split();
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut out = Vec::with_capacity(256);
        let mut next = Some(first);
        loop {
            if let Some(queued) = next.take() {
                // Everything queued so far leaves in one write.
                self.write_into(&mut out, queued);
                while let Ok(queued) = queue.try_recv() {
                    self.write_into(&mut out, queued);
                }
                if let Err(e) = writer.write_all(&out).await {
                    return format!("write failed: {e}");
                }
                out.clear();
            }
            tokio::select! {
                queued = queue.recv() => match queued {
                    Some(queued) => next = Some(queued),
                    None => return "the bus stopped".into(),
                },
                read = reader.read_buf(&mut buf) => match read {
                    Ok(0) => return "closed by Redis".into(),
                    Err(e) => return format!("read failed: {e}"),
                    Ok(_) => {
                        if let Err(reason) = self.read_frames(&mut buf) {
                            return reason;
                        }
                    }
                },
            }
        }
    }

    fn write_into(&mut self, out: &mut Vec<u8>, queued: Queued) {
        let name: &[u8] = match queued.request {
            Request::Subscribe => b"SSUBSCRIBE",
            Request::Unsubscribe => b"SUNSUBSCRIBE",
        };
        encode(out, &[name, queued.channel.as_bytes()]);
        self.pending.push_back(Pending {
            request: queued.request,
            channel: queued.channel,
            reply: queued.reply,
        });
    }

    /// Handles every complete frame in `buf`.
    fn read_frames(&mut self, buf: &mut BytesMut) -> Result<(), String> {
        loop {
            let used = match resp3::parse(buf) {
                Ok(Some((frame, used))) => {
                    self.on_frame(frame)?;
                    used
                }
                Ok(None) if buf.len() > MAX_BUFFERED => {
                    return Err(format!("a frame larger than {MAX_BUFFERED} bytes"));
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            };
            buf.advance(used);
        }
    }

    fn on_frame(&mut self, frame: Frame<'_>) -> Result<(), String> {
        match frame {
            Frame::Push(items) => self.on_push(items),
            Frame::Attribute(_) => Ok(()),
            Frame::Error(text) => {
                let error = ShardError::Refused(String::from_utf8_lossy(text).into_owned());
                self.complete(Err(error))
            }
            other => Err(format!("unexpected reply {other:?}")),
        }
    }

    fn on_push(&mut self, items: Items<'_>) -> Result<(), String> {
        let mut parts = items.iter();
        let (Some(kind), Some(channel)) =
            (parts.next().and_then(text), parts.next().and_then(text))
        else {
            return Ok(()); // not a pub/sub push: nothing of ours
        };
        match kind {
            b"smessage" => {
                if let Some(payload) = parts.next().and_then(text) {
                    self.events.message(channel, payload);
                }
                Ok(())
            }
            b"ssubscribe" => {
                if self.front_is(Request::Subscribe, channel) {
                    self.complete(Ok(()))
                } else {
                    Err(format!(
                        "a confirmation of SSUBSCRIBE {} nobody sent",
                        String::from_utf8_lossy(channel)
                    ))
                }
            }
            b"sunsubscribe" if self.front_is(Request::Unsubscribe, channel) => {
                self.complete(Ok(()))
            }
            b"sunsubscribe" => {
                self.events.pushed_out(self.node, channel);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn front_is(&self, request: Request, channel: &[u8]) -> bool {
        self.pending
            .front()
            .is_some_and(|p| p.request == request && p.channel.as_bytes() == channel)
    }

    fn complete(&mut self, result: Result<(), ShardError>) -> Result<(), String> {
        let Some(pending) = self.pending.pop_front() else {
            return Err(format!("a reply nobody asked for: {result:?}"));
        };
        let _ = pending.reply.send(result);
        Ok(())
    }

    /// Answers every command still waiting: an unsubscribe is done (the connection took the
    /// subscription with it), a subscribe is not known to have happened.
    fn close(&mut self, reason: &str) {
        for pending in self.pending.drain(..) {
            let result = match pending.request {
                Request::Unsubscribe => Ok(()),
                Request::Subscribe => Err(ShardError::Broken(reason.to_string())),
            };
            let _ = pending.reply.send(result);
        }
    }
}

fn text<'a>(frame: Frame<'a>) -> Option<&'a [u8]> {
    match frame {
        Frame::Blob(bytes) | Frame::Simple(bytes) => Some(bytes),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_refusals_name_the_slot_and_its_owner() {
        let moved = ShardError::Refused("MOVED 15495 127.0.0.1:7103".into());
        assert_eq!(moved.moved(), Some((15495, "127.0.0.1:7103")));
        assert_eq!(ShardError::Refused("CLUSTERDOWN x".into()).moved(), None);
        assert_eq!(ShardError::Broken("MOVED 1 a:1".into()).moved(), None);
    }

    #[test]
    fn commands_are_resp_arrays() {
        let mut out = Vec::new();
        encode(&mut out, &[b"SSUBSCRIBE", b"room:a"]);
        assert_eq!(out, b"*2\r\n$10\r\nSSUBSCRIBE\r\n$6\r\nroom:a\r\n");
    }
}
