//! One simulated member, the client side of the load: connect, join, say on an open-model
//! schedule, and a receiving task that feeds every broadcast into the delivery ledger.
//!
//! Sending never waits on receiving: each message is stamped with its INTENDED send time and
//! a per-sender sequence number, so a stalled server shows up as latency rather than as fewer
//! messages. Receiving parses only what it records.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use roomstorm_client::{ClientConfig, ConnectError, RawIncoming, Receiver, Sender};
use tokio::task::JoinHandle;

use crate::clock::now_us;
use crate::context::{Counters, RoomState, RunContext};
use crate::measure::histograms::{self, Metric};
use crate::measure::ledger::{Leave, RoomLedger, SessionId, SessionLedger};
use crate::measure::probe::{MessageKind, decode_probe, encode_probe, parse_message_packet};
use crate::measure::timeline::{ErrorKind, Timeline};
use crate::scenario::{ClientAddress, MemberPlan};

/// Why a member could not get into its room.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("connect failed: {0}")]
    Connect(#[from] ConnectError),
    #[error("join failed: {0}")]
    Join(String),
    #[error("no join broadcast within {0:?}")]
    JoinTimeout(Duration),
}

/// A member's live connection.
pub struct Session {
    pub tx: Sender,
    pub id: SessionId,
    /// How long connect and join took (also recorded into the histograms).
    pub connect_time: Duration,
    pub join_time: Duration,
    /// Tells the receiving side that the member is leaving on purpose.
    leaving: Arc<Leaving>,
    receiver: JoinHandle<()>,
}

/// How long a planned leave may take (the close handshake and the last receipts) before the
/// receiving side stops waiting and settles with what it got.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A planned leave, as the receiving task learns of it: when it was decided (the session's
/// end in the ledger, so a slow close does not make the member owed more) and a signal to stop
/// waiting for the connection's end.
#[derive(Default)]
struct Leaving {
    /// µs of the decision to leave; 0 while the member stays.
    at_us: std::sync::atomic::AtomicU64,
    give_up: tokio::sync::Notify,
}

impl Leaving {
    fn at(&self) -> Option<u64> {
        Some(self.at_us.load(Relaxed)).filter(|&t| t > 0)
    }
}

/// The source identity of member `id`: its own /24, so nginx `ip_hash` tells members apart.
///
/// The /24 is a hash of the id, not the id itself: members of one room have ids in an
/// arithmetic progression (rooms fill up together), and nginx's ip_hash over consecutive
/// octets follows their parity, which would put every member of a room on the same worker and
/// never exercise cross-worker fan-out.
fn member_ip(id: u32, mode: ClientAddress) -> Option<std::net::IpAddr> {
    let h = mix(u64::from(id));
    let k = (h % 250) as u8 + 1;
    let b = ((h / 250) % 250) as u8;
    match mode {
        ClientAddress::None => None,
        ClientAddress::Spread => Some(std::net::Ipv4Addr::new(127, 0, k, 1).into()),
        ClientAddress::Forwarded => Some(std::net::Ipv4Addr::new(10, b, k, 1).into()),
    }
}

/// splitmix64's finalizer: every input bit moves every output bit (a plain multiplicative hash
/// keeps the low bits of arithmetic progressions in step).
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn client_config(ctx: &RunContext, member: &MemberPlan) -> ClientConfig {
    let room = &ctx.rooms[member.room as usize];
    let mut config = ClientConfig::new(ctx.target_url.clone())
        .transport(member.transport)
        .query(roomstorm_protocol::ROOM_QUERY_KEY, room.id.clone());
    config.connect_timeout = ctx.connect_timeout;
    match ctx.scenario.target.client_address {
        ClientAddress::Spread => config.bind_addr = member_ip(member.id, ClientAddress::Spread),
        ClientAddress::Forwarded => {
            config.forwarded_for = member_ip(member.id, ClientAddress::Forwarded)
        }
        ClientAddress::None => {}
    }
    config
}

/// Connects and joins; returns once the member saw its own join broadcast.
pub async fn open_session(
    ctx: &Arc<RunContext>,
    member: &MemberPlan,
) -> Result<Session, SessionError> {
    let started = Instant::now();
    let (tx, mut rx) = match roomstorm_client::connect(&client_config(ctx, member)).await {
        Ok(pair) => pair,
        Err(e) => {
            ctx.counters.connect_errors.fetch_add(1, Relaxed);
            ctx.timeline.error(now_us(), ErrorKind::ConnectFailed);
            return Err(e.into());
        }
    };
    let connect_time = started.elapsed();
    ctx.counters.connects.fetch_add(1, Relaxed);
    histograms::record(Metric::Connect, connect_time.as_micros() as u64);

    let joining = Instant::now();
    let join = serde_json::json!({ "username": member.name });
    if let Err(e) = tx.emit(roomstorm_protocol::EVENT_JOIN, &join).await {
        let _ = tx.close().await;
        return Err(SessionError::Join(e.to_string()));
    }
    let waiting = wait_for_own_join(ctx, &mut rx, &member.name);
    match tokio::time::timeout(ctx.join_timeout, waiting).await {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => {
            let _ = tx.close().await;
            ctx.timeline.error(now_us(), ErrorKind::ServerError);
            return Err(SessionError::Join(reason));
        }
        Err(_) => {
            let _ = tx.close().await;
            ctx.counters.join_timeouts.fetch_add(1, Relaxed);
            ctx.timeline.error(now_us(), ErrorKind::JoinTimeout);
            return Err(SessionError::JoinTimeout(ctx.join_timeout));
        }
    }
    let join_time = joining.elapsed();
    let join_done_us = now_us();
    ctx.counters.joins.fetch_add(1, Relaxed);
    histograms::record(Metric::Join, join_time.as_micros() as u64);
    let room = ctx.rooms[member.room as usize].clone();
    let id = room.ledger.session_joined(member.slot, join_done_us);
    let leaving = Arc::new(Leaving::default());
    let receiver = tokio::spawn(receive(ctx.clone(), room, id, rx, leaving.clone()));
    Ok(Session {
        tx,
        id,
        connect_time,
        join_time,
        leaving,
        receiver,
    })
}

async fn wait_for_own_join(ctx: &RunContext, rx: &mut Receiver, name: &str) -> Result<(), String> {
    loop {
        match rx.next_raw().await {
            Some(RawIncoming::Event(event)) => {
                if let Some(m) = parse_message_packet(event.packet()) {
                    ctx.counters.received_messages.fetch_add(1, Relaxed);
                    if m.kind == MessageKind::Join && m.username == name {
                        return Ok(());
                    }
                } else if event.packet().contains("\"error\"") {
                    return Err(format!("server refused the join: {}", event.args_json()));
                }
            }
            Some(RawIncoming::Disconnected(reason)) => {
                return Err(format!("disconnected: {reason}"));
            }
            None => return Err("connection ended".into()),
        }
    }
}

/// The receiving side of one session: every broadcast goes into the ledger; runs until the
/// connection ends (or a planned leave gives up waiting for that), then closes the session in
/// the room's ledger and hands the session's ledger over for settling. Always: a session
/// whose ledger never reached the room would have everything it received counted as lost.
async fn receive(
    ctx: Arc<RunContext>,
    room: Arc<RoomState>,
    id: SessionId,
    mut rx: Receiver,
    leaving: Arc<Leaving>,
) {
    let mut ledger = SessionLedger::for_room(&room.ledger);
    let give_up = leaving.give_up.notified();
    tokio::pin!(give_up);
    loop {
        let incoming = tokio::select! {
            biased;
            _ = &mut give_up => {
                ctx.counters.close_timeouts.fetch_add(1, Relaxed);
                break;
            }
            incoming = rx.next_raw() => incoming,
        };
        match incoming {
            Some(RawIncoming::Event(event)) => on_event(
                &ctx.counters,
                &ctx.timeline,
                &room.ledger,
                &mut ledger,
                event.packet(),
                now_us(),
            ),
            Some(RawIncoming::Disconnected(_)) | None => break,
        }
    }
    let (left, how) = match leaving.at() {
        Some(at) => (at, Leave::Planned),
        None => {
            let now = now_us();
            ctx.counters.disconnects.fetch_add(1, Relaxed);
            ctx.timeline.error(now, ErrorKind::Disconnected);
            (now, Leave::CutOff)
        }
    };
    ctx.counters
        .heartbeats
        .fetch_add(u64::from(rx.pings_received()), Relaxed);
    room.ledger.session_left(id, left, how);
    room.finish(id, ledger);
}

/// What the receiving task does with one server event (`packet` is its Engine.IO text)
/// received at `now`: count it, and record a probe into the session's ledger, the room's
/// slot, the histograms and the timeline. Public so the `receive_path` example measures
/// exactly this code.
pub fn on_event(
    counters: &Counters,
    timeline: &Timeline,
    room: &RoomLedger,
    ledger: &mut SessionLedger,
    packet: &str,
    now: u64,
) {
    match parse_message_packet(packet) {
        Some(message) => {
            counters.received_messages.fetch_add(1, Relaxed);
            if message.kind == MessageKind::Say
                && let Some(probe) = message.text.as_deref().and_then(decode_probe)
            {
                let kind =
                    ledger.on_receive(room, probe.sender_slot, probe.seq, probe.intended_us, now);
                timeline.receipt(now, probe.intended_us, kind);
            }
        }
        None => {
            counters.server_errors.fetch_add(1, Relaxed);
            timeline.error(now, ErrorKind::ServerError);
        }
    }
}

impl Session {
    /// Leaves on purpose and waits for the receiving side to finish its accounting: at most
    /// [`CLOSE_TIMEOUT`] for the close handshake and the last receipts, then the receiver is
    /// told to stop waiting and settles with what it received (counted in `close_timeouts`).
    pub async fn close(self) {
        self.leaving.at_us.store(now_us().max(1), Relaxed);
        let (tx, mut receiver) = (self.tx, self.receiver);
        let closed = async {
            let _ = tx.close().await;
            let _ = (&mut receiver).await;
        };
        if tokio::time::timeout(CLOSE_TIMEOUT, closed).await.is_ok() {
            return;
        }
        // The receiver waits for nothing but the connection: once told, it only settles its
        // ledger, so this wait ends.
        self.leaving.give_up.notify_one();
        let _ = receiver.await;
    }

    pub fn is_alive(&self) -> bool {
        !self.tx.is_closed() && !self.receiver.is_finished()
    }
}

/// The open-model send schedule of one member.
pub struct Schedule {
    pub next_us: u64,
    pub seq: u32,
    interval_us: f64,
    jitter: f64,
    rng: SmallRng,
    text: String,
}

impl Schedule {
    pub fn new(member: &MemberPlan, first_us: u64, jitter: f64, seed: u64) -> Option<Self> {
        let interval = member.send_interval?;
        let mut rng = SmallRng::seed_from_u64(
            seed ^ u64::from(member.id).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        // Spread first sends over one interval so members do not fire in lockstep.
        let offset = rng.random_range(0.0..1.0) * interval.as_micros() as f64;
        Some(Schedule {
            next_us: first_us + offset as u64,
            seq: 0,
            interval_us: interval.as_micros() as f64,
            jitter,
            rng,
            text: String::with_capacity(member.message_size.1 + 8),
        })
    }

    /// Moves to the next intended send time; `multiplier` scales the rate (rate steps).
    fn advance(&mut self, multiplier: f64) {
        let interval = self.interval_us / multiplier.max(1e-9);
        let jitter = if self.jitter > 0.0 {
            self.rng.random_range(-self.jitter..=self.jitter) * interval
        } else {
            0.0
        };
        self.next_us += (interval + jitter).max(1.0) as u64;
        self.seq += 1;
    }

    /// Sends the message due at `next_us` (whatever time it is now) and advances.
    pub async fn send_due(
        &mut self,
        ctx: &RunContext,
        member: &MemberPlan,
        session: &Session,
        multiplier: f64,
    ) -> Result<Duration, String> {
        let intended = self.next_us;
        let seq = self.seq;
        let size = if member.message_size.0 == member.message_size.1 {
            member.message_size.0
        } else {
            self.rng
                .random_range(member.message_size.0..=member.message_size.1)
        };
        self.text.clear();
        encode_probe(&mut self.text, member.slot, seq, intended, size);
        self.advance(multiplier);
        let room = &ctx.rooms[member.room as usize];
        room.ledger.on_send(member.slot, seq, intended);
        let started = Instant::now();
        let payload = SayPayload { text: &self.text };
        let result = session
            .tx
            .emit(roomstorm_protocol::EVENT_SAY, &payload)
            .await;
        ctx.timeline.send(intended);
        match result {
            Ok(()) => {
                ctx.counters.sends.fetch_add(1, Relaxed);
                Ok(started.elapsed())
            }
            Err(e) => {
                // Not sent: owed to nobody.
                room.ledger.on_send_failed(member.slot, seq);
                ctx.counters.send_failures.fetch_add(1, Relaxed);
                ctx.timeline.error(now_us(), ErrorKind::SendFailed);
                Err(e.to_string())
            }
        }
    }
}

#[derive(serde::Serialize)]
struct SayPayload<'a> {
    text: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_addresses_spread_over_slash_24s_of_both_parities() {
        let a = member_ip(0, ClientAddress::Spread).unwrap();
        let b = member_ip(1, ClientAddress::Spread).unwrap();
        assert_ne!(a, b);
        assert!(a.to_string().starts_with("127.0.") && a.to_string().ends_with(".1"));
        assert!(
            member_ip(300, ClientAddress::Forwarded)
                .unwrap()
                .to_string()
                .starts_with("10.")
        );
        assert!(member_ip(3, ClientAddress::None).is_none());
        // Members of one room (ids r, r + R, r + 2R, ...) must not share the /24's parity,
        // which is what nginx's ip_hash follows between two workers.
        for rooms in [2u32, 4, 20, 100] {
            let parities: std::collections::HashSet<u8> = (0..10)
                .map(|j| match member_ip(3 + j * rooms, ClientAddress::Spread) {
                    Some(std::net::IpAddr::V4(ip)) => ip.octets()[2] % 2,
                    _ => unreachable!(),
                })
                .collect();
            assert_eq!(parities.len(), 2, "rooms of {rooms}: one parity only");
        }
    }
}
