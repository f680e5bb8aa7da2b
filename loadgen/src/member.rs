//! One simulated member, the client side of the load: connect, join, say on an open-model
//! schedule, and a receiving task that feeds every broadcast into the delivery ledger.
//!
//! Sending never waits on receiving: each message is stamped with its INTENDED send time and
//! a per-sender sequence number, so a stalled server shows up as latency rather than as fewer
//! messages. Receiving parses only what it records. What a member sends and where it finds the
//! probe in what it receives is the scenario's protocol profile (`crate::profile`).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use roomstorm_client::{
    ClientConfig, ConnectError, RawAck, RawEvent, RawIncoming, Receiver, Sender,
};
use tokio::task::JoinHandle;

use crate::acks::AckBook;
use crate::clock::now_us;
use crate::context::{GroupLive, LiveCounters, RoomState, RunContext};
use crate::measure::histograms::{GroupRecorder, HistogramKind};
use crate::measure::ledger::{Leave, RoomLedger, SessionId, SessionLedger};
use crate::measure::probe::{MessageKind, encode_probe, parse_error_packet, parse_message_packet};
use crate::measure::timeline::{ErrorKind, Timeline};
use crate::pace::Pace;
use crate::profile::path::{as_text, is_set};
use crate::profile::{Heard, JoinDone, Profile, Unmatched, Vars, hear};
use crate::scenario::{ClientAddress, MemberPlan, Traffic};

/// Why a member could not get into its room. Printed with `{}`: the message already holds the
/// client's error, so it is not also the `source()` (a chain printer would repeat it).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("connect failed: {0}")]
    Connect(ConnectError),
    #[error("join failed: {0}")]
    Join(String),
    #[error("the join did not complete within {0:?}")]
    JoinTimeout(Duration),
}

/// `?` on a connect result (not `#[from]`, which would also make it the `source()`).
impl From<ConnectError> for SessionError {
    fn from(e: ConnectError) -> Self {
        SessionError::Connect(e)
    }
}

/// A member's live connection.
pub struct Session {
    pub tx: Sender,
    pub id: SessionId,
    /// How long connect and join took (also recorded into the histograms).
    pub connect_time: Duration,
    pub join_time: Duration,
    /// The say payload's JSON text before and after the probe, rendered for this member.
    say: (String, String),
    /// The acknowledgements of says this session waits for (profiles with `say.ack`).
    acks: Option<Arc<AckBook>>,
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
    /// Set, and `ended` notified, when the receiving side is done: the connection is gone.
    has_ended: std::sync::atomic::AtomicBool,
    ended: tokio::sync::Notify,
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

/// The member's values for the profile's templates.
pub fn vars<'a>(ctx: &'a RunContext, member: &'a MemberPlan) -> Vars<'a> {
    Vars {
        room: &ctx.rooms[member.room as usize].id,
        member: &member.name,
        member_index: member.id,
    }
}

fn client_config(ctx: &RunContext, member: &MemberPlan) -> ClientConfig {
    let profile = &ctx.scenario.protocol;
    let vars = vars(ctx, member);
    let mut config = ClientConfig::new(ctx.target_url.clone()).transport(member.transport);
    config.path = profile.path.clone();
    config.namespace = profile.namespace.clone();
    for (key, value) in &profile.connect.query {
        config = config.query(key.clone(), value.render(&vars));
    }
    for (key, value) in &profile.connect.headers {
        config
            .extra_headers
            .push((key.clone(), value.render(&vars)));
    }
    config.auth = profile.connect.auth.as_ref().map(|auth| auth.render(&vars));
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

/// Connects and joins; returns once the join is done (the profile's `join.done`: for the
/// built-in profile, when the member saw its own join broadcast).
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
    ctx.recorder
        .record(HistogramKind::Connect, connect_time.as_micros() as u64);

    let joining = Instant::now();
    let ack = match emit_join(ctx, member, &tx).await {
        Ok(ack) => ack,
        Err(e) => {
            let _ = tx.close().await;
            return Err(SessionError::Join(e.to_string()));
        }
    };
    let waiting = wait_for_join(ctx, &mut rx, member, ack);
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
    ctx.recorder
        .record(HistogramKind::Join, join_time.as_micros() as u64);
    let room = ctx.rooms[member.room as usize].clone();
    let id = room.ledger.session_joined(member.slot, join_done_us);
    let leaving = Arc::new(Leaving::default());
    let profile = &ctx.scenario.protocol;
    let acks = profile.say.ack.then(|| Arc::new(AckBook::default()));
    let say = profile
        .say
        .payload
        .render_around_probe(&vars(ctx, member))
        .unwrap_or_default();
    let receiving = receive(
        ctx.clone(),
        (room, id, member.group),
        rx,
        (leaving.clone(), acks.clone()),
    );
    let ended = leaving.clone();
    let receiver = tokio::spawn(async move {
        receiving.await;
        ended
            .has_ended
            .store(true, std::sync::atomic::Ordering::Release);
        ended.ended.notify_waiters();
    });
    Ok(Session {
        tx,
        id,
        connect_time,
        join_time,
        say,
        acks,
        leaving,
        receiver,
    })
}

/// Emits the profile's join event, if it has one; the ack id when the join waits for its
/// acknowledgement.
async fn emit_join(
    ctx: &RunContext,
    member: &MemberPlan,
    tx: &Sender,
) -> Result<Option<u64>, roomstorm_client::SendError> {
    let join = &ctx.scenario.protocol.join;
    let Some(event) = &join.event else {
        return Ok(None);
    };
    let payload = join
        .payload
        .as_ref()
        .map(|p| p.render(&vars(ctx, member)))
        .unwrap_or_default();
    if join.done == JoinDone::Ack {
        let id = tx.next_ack_id();
        tx.emit_with_ack(id, event, &payload).await?;
        Ok(Some(id))
    } else {
        tx.emit_args(event, &payload).await?;
        Ok(None)
    }
}

/// Waits until the join is done as the profile says (the acknowledgement `ack` of the join,
/// the confirming event, the member's own join notice); what else arrives meanwhile is counted
/// (room messages, unmatched events) but owed to nobody: the member is not in the room yet.
async fn wait_for_join(
    ctx: &RunContext,
    rx: &mut Receiver,
    member: &MemberPlan,
    ack: Option<u64>,
) -> Result<(), String> {
    let profile = &ctx.scenario.protocol;
    if profile.join.done == JoinDone::Sent {
        return Ok(());
    }
    let vars = vars(ctx, member);
    loop {
        match rx.next_raw().await {
            Some(RawIncoming::Event(event)) => {
                if profile.is_builtin() {
                    if own_join_notice(ctx, &event, &member.name)? {
                        return Ok(());
                    }
                } else if confirms_join(profile, &event, &vars) {
                    return Ok(());
                } else {
                    count_before_join(ctx, profile, &event);
                }
            }
            Some(RawIncoming::Ack(answer)) if Some(answer.id()) == ack => {
                return join_acknowledged(profile, &answer);
            }
            Some(RawIncoming::Ack(_)) => {
                count_unmatched(
                    &ctx.counters,
                    &ctx.timeline,
                    Unmatched::UnexpectedAck,
                    now_us(),
                );
            }
            Some(RawIncoming::Disconnected(reason)) => {
                return Err(format!("disconnected: {reason}"));
            }
            None => return Err("connection ended".into()),
        }
    }
}

/// The built-in profile: whether this is the member's own join notice; an `error` event
/// refuses the join.
fn own_join_notice(ctx: &RunContext, event: &RawEvent<'_>, name: &str) -> Result<bool, String> {
    if let Some(m) = parse_message_packet(event.packet()) {
        ctx.counters.received_messages.fetch_add(1, Relaxed);
        return Ok(m.kind == MessageKind::Join && m.username == name);
    }
    if event.packet().contains("\"error\"") {
        return Err(format!("server refused the join: {}", event.args_json()));
    }
    Ok(false)
}

/// Whether `event` is the profile's join confirmation for this member: its event, with every
/// `join.match` value at its path of the first argument.
fn confirms_join(profile: &Profile, event: &RawEvent<'_>, vars: &Vars<'_>) -> bool {
    let JoinDone::Event {
        event: name,
        matches,
    } = &profile.join.done
    else {
        return false;
    };
    let args = event.args_json();
    if crate::profile::listen::event_name(args).as_deref() != Some(name.as_str()) {
        return false;
    }
    matches.iter().all(|(path, expected)| {
        let expected = expected.render(vars);
        match path.find(args, 1) {
            Ok(Some(value)) => match as_text(value) {
                Some(text) => text == expected,
                None => value.get() == expected,
            },
            _ => false,
        }
    })
}

/// The join's acknowledgement: done, unless the app says it failed (`join.ack_error`).
fn join_acknowledged(profile: &Profile, answer: &RawAck<'_>) -> Result<(), String> {
    let refused = profile
        .join
        .ack_error
        .as_ref()
        .is_some_and(|path| is_set(path.find(answer.args_json(), 0).ok().flatten()));
    if refused {
        Err(format!("the app refused the join: {}", answer.args_json()))
    } else {
        Ok(())
    }
}

/// An event before the join is done (a profile from a scenario): a room message is counted
/// received, and what the profile cannot place is counted unmatched; nothing is owed yet.
fn count_before_join(ctx: &RunContext, profile: &Profile, event: &RawEvent<'_>) {
    let heard = hear(profile, event);
    if heard.is_message() {
        ctx.counters.received_messages.fetch_add(1, Relaxed);
    }
    if let Heard::Unmatched(reason) = heard {
        count_unmatched(&ctx.counters, &ctx.timeline, reason, now_us());
    }
}

/// The receiving side of one session: every broadcast goes into the ledger, every
/// acknowledgement into the session's book; runs until the connection ends (or a planned leave
/// gives up waiting for that), then closes the session in the room's ledger, settles the
/// acknowledgements still waiting and hands the session's ledger over for settling. Always: a
/// session whose ledger never reached the room would have everything it received counted as
/// lost.
async fn receive(
    ctx: Arc<RunContext>,
    (room, id, group): (Arc<RoomState>, SessionId, Option<u32>),
    mut rx: Receiver,
    (leaving, acks): (Arc<Leaving>, Option<Arc<AckBook>>),
) {
    let mut ledger = SessionLedger::for_room(&room.ledger);
    let records = Records::of(&ctx, group);
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
            Some(RawIncoming::Event(event)) => {
                on_event(&records, (&room.ledger, &mut ledger), &event, now_us())
            }
            Some(RawIncoming::Ack(answer)) => {
                on_ack(&ctx, &records, acks.as_deref(), (&answer, now_us()))
            }
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
    if let Some(acks) = &acks {
        settle_acks(&ctx, acks, left, how);
    }
    ctx.counters
        .heartbeats
        .fetch_add(u64::from(rx.pings_received()), Relaxed);
    room.ledger.session_left(id, left, how);
    room.finish(id, ledger);
}

/// What a session's receiving side counts into: the run's counters and timeline, the profile
/// it reads events with, and its member's group (counters and fan-out histogram), if any.
pub struct Records<'a> {
    pub counters: &'a LiveCounters,
    pub timeline: &'a Timeline,
    pub profile: &'a Profile,
    pub group: Option<(usize, &'a GroupLive, &'a GroupRecorder)>,
}

impl<'a> Records<'a> {
    /// A member of `group`'s, in the run `ctx`.
    fn of(ctx: &'a RunContext, group: Option<u32>) -> Self {
        let group = group.and_then(|g| {
            let g = g as usize;
            Some((g, ctx.groups.get(g)?, &ctx.group_fanout))
        });
        Records {
            counters: &ctx.counters,
            timeline: &ctx.timeline,
            profile: &ctx.scenario.protocol,
            group,
        }
    }
}

/// What one server event (`event`, received at `now`) is to the member's profile: a probe
/// goes into the session's ledger, the room's slot, the histograms (its group's too) and the
/// timeline; room messages are counted; the app's errors and what the profile cannot place are
/// counted by kind. Public so the `receive_path` example measures exactly this code.
pub fn on_event(
    records: &Records<'_>,
    (room, ledger): (&RoomLedger, &mut SessionLedger),
    event: &RawEvent<'_>,
    now: u64,
) {
    let Records {
        counters, timeline, ..
    } = records;
    let heard = hear(records.profile, event);
    match heard {
        Heard::Probe(probe) => {
            counters.received_messages.fetch_add(1, Relaxed);
            let kind =
                ledger.on_receive(room, probe.sender_slot, probe.seq, probe.intended_us, now);
            timeline.receipt(now, probe.intended_us, kind);
            if let Some((g, _, fanout)) = records.group
                && kind.is_first()
            {
                fanout.record(g, now.saturating_sub(probe.intended_us));
            }
        }
        Heard::Notice => {
            counters.received_messages.fetch_add(1, Relaxed);
        }
        Heard::Ignored => {}
        Heard::Error(packet) => on_server_error(records, packet, now),
        Heard::Unmatched(reason) => {
            if heard.is_message() {
                counters.received_messages.fetch_add(1, Relaxed);
            }
            count_unmatched(counters, timeline, reason, now);
        }
    }
}

/// Counts an event the profile could not place: by reason, and in the timeline's errors.
fn count_unmatched(counters: &LiveCounters, timeline: &Timeline, reason: Unmatched, now: u64) {
    counters.unmatched[reason.index()].fetch_add(1, Relaxed);
    timeline.error(now, ErrorKind::Unmatched);
}

/// An acknowledgement received at `now`: the round trip of the say it answers (from its
/// intended send time, like every latency here), and a refusal when the app says so
/// (`say.ack_error`: counted as refused and taken back from the sends, like `busy`).
fn on_ack(
    ctx: &RunContext,
    records: &Records<'_>,
    book: Option<&AckBook>,
    (answer, now): (&RawAck<'_>, u64),
) {
    let Some(intended) = book.and_then(|book| book.answered(answer.id())) else {
        count_unmatched(&ctx.counters, &ctx.timeline, Unmatched::UnexpectedAck, now);
        return;
    };
    let acks = &ctx.counters.acks;
    acks.received.fetch_add(1, Relaxed);
    ctx.recorder
        .record(HistogramKind::Ack, now.saturating_sub(intended));
    let refused = ctx
        .scenario
        .protocol
        .say
        .ack_error
        .as_ref()
        .is_some_and(|path| is_set(path.find(answer.args_json(), 0).ok().flatten()));
    if refused {
        acks.refused.fetch_add(1, Relaxed);
        refuse_send(records);
        ctx.timeline.error(now, ErrorKind::SendRefused);
    }
}

/// The acknowledgements a session still waited for when it ended at `left`.
fn settle_acks(ctx: &RunContext, book: &AckBook, left: u64, how: Leave) {
    let deadline = ctx.scenario.traffic.deadline.as_micros() as u64;
    let unanswered = book.settle(left, how == Leave::Planned, deadline);
    let acks = &ctx.counters.acks;
    acks.missing.fetch_add(unanswered.missing, Relaxed);
    acks.open_at_leave
        .fetch_add(unanswered.open_at_leave, Relaxed);
    for _ in 0..unanswered.missing {
        ctx.timeline.error(left, ErrorKind::AckMissing);
    }
}

/// A send the app refused without sending (the refusal comes to its sender): counted refused
/// and taken back from the sends, the run's and its group's.
fn refuse_send(records: &Records<'_>) {
    let take_back = |n: &std::sync::atomic::AtomicU64| {
        let _ = n.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
    };
    records.counters.sends_refused.fetch_add(1, Relaxed);
    take_back(&records.counters.sends);
    if let Some((_, live, _)) = records.group {
        take_back(&live.sends);
    }
}

/// Counts an `error` event by what it says about a send: refused without sending (`busy`,
/// `unavailable`: the send is taken back from `sends`), outcome unknown (its own kind: the
/// message may still arrive, and is still owed), or any other server error.
fn on_server_error(records: &Records<'_>, packet: &str, now: u64) {
    use roomstorm_protocol::ErrorCode;
    let (counters, timeline) = (records.counters, records.timeline);
    let kind = match parse_error_packet(packet) {
        Some(ErrorCode::Busy | ErrorCode::Unavailable) => {
            refuse_send(records);
            ErrorKind::SendRefused
        }
        Some(ErrorCode::OutcomeUnknown) => {
            counters.outcome_unknown.fetch_add(1, Relaxed);
            ErrorKind::OutcomeUnknown
        }
        _ => {
            counters.server_errors.fetch_add(1, Relaxed);
            ErrorKind::ServerError
        }
    };
    timeline.error(now, kind);
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

    /// Completes when the receiving side has ended (the connection is gone; at once if it
    /// has already), so a member sleeping until its next send notices a drop when it happens.
    pub async fn ended(&self) {
        let ended = self.leaving.ended.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        if self
            .leaving
            .has_ended
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return;
        }
        ended.await;
    }
}

/// The open-model send schedule of one member: its [`Pace`] (when), and the texts it sends.
///
/// Every intended send time in the send window ends one way: sent (stamped with its intended
/// time, however late), skipped because it fell due while the member had no connection, or
/// left over when the window closed. Skipped and left-over sends, and failed writes, are the
/// run's `sends.unsent`, counted as planned (from the plan, [`crate::pace::planned`]) − made.
pub struct Schedule {
    pace: Pace,
    /// Text sizes come from their own stream, so that they cannot move the send times.
    sizes: SmallRng,
    text: String,
    /// The payload around the probe, assembled here for each send (its capacity reused).
    payload: String,
}

/// Distinguishes the size stream's seed from the pace's (both derive from the member's seed).
const SIZE_STREAM: u64 = 0x5349_5a45_5354_524d;

impl Schedule {
    /// `member`'s schedule for a send window starting at `from_us`; `None` if it never sends.
    pub fn new(member: &MemberPlan, traffic: &Traffic, from_us: u64) -> Option<Self> {
        Some(Schedule {
            pace: Pace::for_member(member, traffic, from_us)?,
            sizes: SmallRng::seed_from_u64(member.seed ^ SIZE_STREAM),
            text: String::with_capacity(member.message_size.1 + 8),
            payload: String::new(),
        })
    }

    /// The intended time of the next send.
    pub fn next_us(&self) -> u64 {
        self.pace.next_us()
    }

    /// Skips the sends that fell due before `now_us` (call it when the member has just joined
    /// again: they were due while it had no connection, and a backlog of old messages fired at
    /// once is not what a reconnecting client does). Returns how many: unsent.
    pub fn skip_missed(&mut self, now_us: u64) -> u64 {
        let mut skipped = 0;
        while self.pace.next_us() < now_us {
            self.pace.advance();
            skipped += 1;
        }
        skipped
    }

    /// Sends still due before `until_us`: when the window closes there, the backlog left unsent.
    pub fn left_before(&self, until_us: u64) -> u64 {
        self.pace.count_before(until_us)
    }

    /// The next message: its seq, its intended time and its probe text (stamped with both);
    /// the schedule moves on to the next intended time.
    pub fn take_next(&mut self, member: &MemberPlan) -> (u32, u64, &str) {
        let (intended, seq) = (self.pace.next_us(), self.pace.seq());
        let size = if member.message_size.0 == member.message_size.1 {
            member.message_size.0
        } else {
            self.sizes
                .random_range(member.message_size.0..=member.message_size.1)
        };
        encode_probe(&mut self.text, member.slot, seq, intended, size);
        self.pace.advance();
        (seq, intended, &self.text)
    }

    /// Sends the message due at [`next_us`](Self::next_us) (whatever time it is now) and moves
    /// on. Counted made (`counters.sends`, the timeline's `sends` by intended second) only when
    /// the write succeeded.
    pub async fn send_due(
        &mut self,
        ctx: &RunContext,
        member: &MemberPlan,
        session: &Session,
    ) -> Result<Duration, String> {
        let (seq, intended, _) = self.take_next(member);
        let room = &ctx.rooms[member.room as usize];
        room.ledger.on_send(member.slot, seq, intended);
        let started = Instant::now();
        // The profile's payload with the probe in its place (the built-in: `{"text":"rs1 ..."}`).
        let (before, after) = &session.say;
        self.payload.clear();
        self.payload.push_str(before);
        self.payload.push_str(&self.text);
        self.payload.push_str(after);
        let event = &ctx.scenario.protocol.say.event;
        // Counted made before the write and taken back if it fails: the server's answer to it
        // (an acknowledgement, a refusal that takes a send back) can arrive before the write
        // returns.
        let group = member.group.and_then(|g| ctx.groups.get(g as usize));
        let counts = [&ctx.counters.sends]
            .into_iter()
            .chain(group.map(|live| &live.sends))
            .chain(session.acks.as_ref().map(|_| &ctx.counters.acks.requested));
        counts.clone().for_each(|n| {
            n.fetch_add(1, Relaxed);
        });
        let result = match &session.acks {
            Some(book) => {
                let id = session.tx.next_ack_id();
                book.expect(id, intended);
                let sent = session.tx.emit_with_ack(id, event, &self.payload).await;
                if sent.is_err() {
                    book.forget(id);
                }
                sent
            }
            None => session.tx.emit_args(event, &self.payload).await,
        };
        match result {
            Ok(()) => {
                ctx.timeline.send(intended);
                Ok(started.elapsed())
            }
            Err(e) => {
                // Not sent: owed to nobody, and unsent.
                counts.for_each(|n| {
                    let _ = n.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
                });
                room.ledger.on_send_failed(member.slot, seq);
                ctx.counters.send_failures.fetch_add(1, Relaxed);
                ctx.timeline.error(now_us(), ErrorKind::SendFailed);
                Err(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::probe::decode_probe;
    use crate::scenario::{Scenario, plan};

    const SECOND: u64 = 1_000_000;

    /// A member sending 5 messages a second at x1 (jitter 0.3, text sizes drawn), stepped
    /// x1, x2, x4 every 10 s.
    const SENDER: &str = r#"
name = "schedule"
duration = "30s"
[target]
url = "http://127.0.0.1:1"
[population]
rooms = 1
members = 2
ramp = 2
[traffic]
rate_per_member = 5.0
jitter = 0.3
message_size = [40, 400]
steps = { start = 1.0, factor = 2.0, step = "10s", max_steps = 3 }
"#;

    /// A member's life in the send window `[10 s, 40 s)`: on time, stalled (a slow socket),
    /// disconnected, on time again, then lagging when the window closes. What it sends is
    /// stamped with its intended times, in seq order, the backlog after a stall included; what
    /// fell due while it was disconnected is skipped, and the backlog at the end left, both
    /// counted; planned = made + unsent.
    #[test]
    fn the_send_schedule_stamps_intended_times_catches_up_in_order_and_counts_the_rest() {
        let scenario = Scenario::from_str(SENDER, "s.toml").expect("scenario");
        let plan = plan(&scenario);
        let member = &plan.members[1];
        let traffic = &scenario.traffic;
        let (from, until) = (10 * SECOND, 40 * SECOND);
        let planned =
            crate::pace::planned(std::slice::from_ref(member), traffic, 0, (from, until)).total;
        let mut schedule = Schedule::new(member, traffic, from).expect("a sender");
        let mut made: Vec<(u32, u64)> = Vec::new();
        // Sends whatever is due at `now`, as `attack::step` does turn after turn; returns the
        // (seq, intended) it sent.
        let mut send_due = |schedule: &mut Schedule, now: u64| {
            let mut batch = Vec::new();
            while schedule.next_us() <= now && schedule.next_us() < until {
                let (seq, intended, text) = schedule.take_next(member);
                let probe = decode_probe(text).expect("a probe");
                assert_eq!(
                    (probe.sender_slot, probe.seq, probe.intended_us),
                    (member.slot, seq, intended)
                );
                assert!(text.len() >= 40 && text.len() <= 400, "{}", text.len());
                batch.push((seq, intended));
            }
            made.extend_from_slice(&batch);
            batch
        };
        // On time until 15 s: each message at its intended time.
        while schedule.next_us() < from + 5 * SECOND {
            let due = schedule.next_us();
            assert_eq!(send_due(&mut schedule, due).len(), 1);
        }
        // Stalled until 18 s: the backlog goes out in order at once, each with its own stamp.
        let backlog = send_due(&mut schedule, from + 8 * SECOND);
        assert!(backlog.len() >= 10, "{backlog:?}");
        assert!(
            backlog
                .windows(2)
                .all(|w| w[1].0 == w[0].0 + 1 && w[1].1 >= w[0].1)
        );
        assert!(
            backlog[0].1 >= from + 5 * SECOND && backlog.last().unwrap().1 <= from + 8 * SECOND
        );
        // On time until 22 s, then disconnected until 25 s (x2: 10 a second): skipped.
        while schedule.next_us() < from + 12 * SECOND {
            let due = schedule.next_us();
            send_due(&mut schedule, due);
        }
        let before = schedule.pace.seq();
        let skipped = schedule.skip_missed(from + 15 * SECOND);
        assert!(skipped >= 20, "{skipped}");
        assert_eq!(u64::from(schedule.pace.seq() - before), skipped);
        assert!(schedule.next_us() >= from + 15 * SECOND);
        // On time until 35 s, then stuck until the window closes at 40 s.
        while schedule.next_us() < from + 25 * SECOND {
            let due = schedule.next_us();
            send_due(&mut schedule, due);
        }
        let left = schedule.left_before(until);
        assert!(left >= 80, "{left}");

        assert_eq!(made.len() as u64 + skipped + left, planned);
        assert!(made.windows(2).all(|w| w[1].0 > w[0].0), "seq order");
        // The stamps are the plan's intended times, whatever happened: the schedule (and its
        // text sizes) did not move them.
        let mut reference = Pace::for_member(member, traffic, from).expect("a sender");
        for &(seq, intended) in &made {
            while reference.seq() < seq {
                reference.advance();
            }
            assert_eq!(reference.next_us(), intended, "seq {seq}");
            assert!((from..until).contains(&intended));
        }
    }

    /// `busy`/`unavailable` take the send back and count as refused; `outcome_unknown` is its
    /// own kind and leaves `sends` alone; other codes stay server errors.
    #[test]
    fn error_events_are_counted_by_what_they_say_about_the_send() {
        let counters = LiveCounters::default();
        let timeline = Timeline::new(0, 10);
        let profile = crate::profile::Profile::roomstorm();
        let (live, fanout) = (GroupLive::default(), GroupRecorder::default());
        let records = Records {
            counters: &counters,
            timeline: &timeline,
            profile: &profile,
            group: Some((0, &live, &fanout)),
        };
        counters.sends.store(5, Relaxed);
        live.sends.store(5, Relaxed);
        for code in ["busy", "unavailable", "outcome_unknown", "rate_limited"] {
            let packet = format!(r#"42["error",{{"code":"{code}","message":"m"}}]"#);
            on_server_error(&records, &packet, SECOND);
        }
        assert_eq!(live.sends.load(Relaxed), 3, "the sender's group's too");
        assert_eq!(
            counters.sends.load(Relaxed),
            3,
            "two refused sends taken back"
        );
        assert_eq!(counters.sends_refused.load(Relaxed), 2);
        assert_eq!(counters.outcome_unknown.load(Relaxed), 1);
        assert_eq!(counters.server_errors.load(Relaxed), 1);
        let totals = timeline.error_totals();
        assert_eq!(totals.get("send_refused"), Some(&2));
        assert_eq!(totals.get("outcome_unknown"), Some(&1));
        assert_eq!(totals.get("server_error"), Some(&1));
    }

    #[test]
    fn a_failed_connect_prints_its_cause_once() {
        let e = SessionError::from(ConnectError::Timeout(Duration::from_secs(1)));
        assert_eq!(e.to_string(), "connect failed: connect timed out after 1s");
        assert!(
            std::error::Error::source(&e).is_none(),
            "the cause is in the message"
        );
    }

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
