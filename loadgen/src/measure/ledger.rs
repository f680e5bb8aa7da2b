//! Exact delivery accounting: for every message, who was owed it, who got it, when, and how often.
//!
//! Latency percentiles say nothing about messages that never arrived; a chat server that drops
//! 1% of deliveries under load looks *faster*. So besides latency we keep an exact ledger, with
//! these definitions (also in `docs/measurement.md`, the one place they are written for users):
//!
//! - A SESSION is one connection of one member: it starts when the member saw its own join
//!   broadcast (`join_done_us`) and ends when it left ([`Leave::Planned`]: churn, the end of the
//!   run) or was cut off ([`Leave::CutOff`]: the server closed it, a network error, a killed
//!   worker). A reconnect is a new session.
//! - A STAY is what a member is owed as one: a session, continued by the member's next session
//!   as long as the previous one was cut off (the member is still owed what its room said while
//!   it was reconnecting). A stay ends with a planned leave, or runs to the end of the run.
//! - A message `(sender_slot, seq, intended_us)` of a room is OWED to every stay of the room with
//!   `join_done_us <= intended_us` (of the stay's first session) and, when the stay ended with a
//!   planned leave before the run's end at `left_us`, `intended_us + deadline_us <= left_us`.
//!   A stay cut off and never back, or still there at the end, is owed every later message. The
//!   sender's own stay is owed its echo like everyone else, unless the room was made
//!   [`RoomLedger::without_echo`] (the app sends a member's messages to the others only): then
//!   a sender's stay is owed none of its own messages, and an echo it gets anyway is EXTRA.
//! - Its FATE: ON TIME (received by some session of the stay within `deadline_us` of the
//!   intended send time; `delivered`), LATE (received, only after that), or NEVER received.
//!   LOST = late + never.
//! - DUPLICATED: receipts of a `(sender, seq)` the session already had.
//! - REORDERED: first receipts whose seq is below the highest seq the session already got
//!   from that sender (the server promises per-sender order).
//! - EXTRA: first receipts that were not owed (sent before the join finished, or within the
//!   deadline before a planned leave), of a seq that was never recorded as sent, or a second
//!   session of the same stay getting what an earlier one already had.
//! - UNTRACKED: first receipts the ledger has no room for (seq beyond the planned capacity,
//!   sender slot beyond the room's size); `untracked_sends` counts such sends.
//!
//! So every first receipt of a session is exactly one of: on time, late, extra, untracked.
//!
//! Cost model. Per sent message: one atomic store. Per received message: one update of the
//! receiving session's own state (no lock, no allocation while it receives in order and on
//! time) and two relaxed atomics on the message's slot. Join and leave take the room's
//! membership lock. All the set arithmetic happens once, in [`finalize`], after the run.
//!
//! All times are µs on one clock of the process that holds the room (a room never spans
//! processes), so no clock skew enters the accounting.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::histograms::{HistogramKind, Recorder};
use super::per_thread::lock;

/// `intended_us` of a slot whose message was never sent.
const NOT_SENT: u64 = u64::MAX;

/// One message's shared record: 16 bytes, `senders × capacity` of them per room.
struct Slot {
    intended_us: AtomicU64,
    /// First receipts by any session (owed or extra).
    receipts: AtomicU32,
    /// Slowest first receipt so far, µs: the message's completion time once all owed got it.
    /// Saturates at `u32::MAX` µs (71 minutes), far beyond any deadline.
    max_latency_us: AtomicU32,
}

impl Slot {
    fn new() -> Self {
        Slot {
            intended_us: AtomicU64::new(NOT_SENT),
            receipts: AtomicU32::new(0),
            max_latency_us: AtomicU32::new(0),
        }
    }
}

/// Identifies a session within its room (an index into the room's membership log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u32);

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// The member left on purpose (churn, the end of the run): owed nothing after.
    Planned,
    /// The connection was taken from the member (closed by the server, a network error, a
    /// killed worker): the member is still owed its room's messages until it is back.
    CutOff,
}

/// One connection of one member, as the membership log keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRecord {
    pub member_slot: u32,
    /// When the member saw its own join broadcast, µs.
    pub join_done_us: u64,
    /// When and how the session ended; `None` while connected.
    pub left: Option<(u64, Leave)>,
}

/// What the room knows, shared by all its members' tasks.
pub struct RoomLedger {
    senders: u32,
    capacity: u32,
    /// A receipt later than this after its intended send time is late.
    deadline_us: u64,
    /// `senders × capacity` slots, sender-major.
    slots: Box<[Slot]>,
    untracked_sends: AtomicU64,
    sessions: Mutex<Vec<SessionRecord>>,
    recorder: Arc<Recorder>,
    /// Whether a sender's own stay is owed its messages (the app echoes them to the sender).
    echo_owed: bool,
    /// Each member slot's group (`[[population.groups]]`), by slot; empty without groups.
    groups: Box<[u32]>,
}

impl RoomLedger {
    /// A room of `senders` member slots (room-local indices `0..senders`), each expected to
    /// send at most `capacity` messages (seqs `0..capacity`), whose messages are due within
    /// `deadline_us` of their intended send time. Records latencies and fan-out sizes into
    /// `recorder`, the run's.
    pub fn new(senders: u32, capacity: u32, deadline_us: u64, recorder: Arc<Recorder>) -> Self {
        let total = senders as usize * capacity as usize;
        RoomLedger {
            senders,
            capacity,
            deadline_us,
            slots: (0..total).map(|_| Slot::new()).collect(),
            untracked_sends: AtomicU64::new(0),
            sessions: Mutex::new(Vec::new()),
            recorder,
            echo_owed: true,
            groups: Box::default(),
        }
    }

    /// The same room with each member slot's group (`groups[slot]`), so that settling also
    /// gives each group's deliveries, as receivers.
    pub fn with_groups(mut self, groups: Vec<u32>) -> Self {
        self.groups = groups.into_boxed_slice();
        self
    }

    fn group_of(&self, member_slot: u32) -> Option<usize> {
        self.groups.get(member_slot as usize).map(|&g| g as usize)
    }

    /// The same room for an app that sends a member's messages to the other members only: a
    /// sender is owed none of its own messages (what it gets anyway is extra).
    pub fn without_echo(mut self) -> Self {
        self.echo_owed = false;
        self
    }

    pub fn senders(&self) -> u32 {
        self.senders
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Sends that fell outside `senders × capacity`.
    pub fn untracked_sends(&self) -> u64 {
        self.untracked_sends.load(Ordering::Relaxed)
    }

    fn slot(&self, sender_slot: u32, seq: u32) -> Option<&Slot> {
        if sender_slot >= self.senders || seq >= self.capacity {
            return None;
        }
        self.slots
            .get(sender_slot as usize * self.capacity as usize + seq as usize)
    }

    /// Records that a message is being sent. Call it BEFORE handing the text to the socket:
    /// the echo can come back before the write call returns.
    pub fn on_send(&self, sender_slot: u32, seq: u32, intended_us: u64) {
        match self.slot(sender_slot, seq) {
            Some(slot) => slot.intended_us.store(intended_us, Ordering::Release),
            None => {
                self.untracked_sends.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Takes back an [`on_send`](Self::on_send) whose write failed: the message is owed to
    /// nobody (a receipt of it, if the write got through after all, counts as extra).
    pub fn on_send_failed(&self, sender_slot: u32, seq: u32) {
        match self.slot(sender_slot, seq) {
            Some(slot) => slot.intended_us.store(NOT_SENT, Ordering::Release),
            None => {
                // Saturating: a stray call must not wrap the count around.
                let _ =
                    self.untracked_sends
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            }
        }
    }

    /// Opens a session: `member_slot` saw its own join broadcast at `join_done_us`.
    pub fn session_joined(&self, member_slot: u32, join_done_us: u64) -> SessionId {
        let mut sessions = lock(&self.sessions);
        let id = SessionId(u32::try_from(sessions.len()).unwrap_or(u32::MAX));
        sessions.push(SessionRecord {
            member_slot,
            join_done_us,
            left: None,
        });
        id
    }

    /// Closes a session at `left_us`, as `how` says. The first close wins.
    pub fn session_left(&self, id: SessionId, left_us: u64, how: Leave) {
        if let Some(session) = lock(&self.sessions).get_mut(id.0 as usize) {
            session.left.get_or_insert((left_us, how));
        }
    }

    /// A copy of the membership log.
    pub fn sessions(&self) -> Vec<SessionRecord> {
        lock(&self.sessions).clone()
    }

    /// First receipts of one message by any session so far (0 if untracked).
    pub fn receipts(&self, sender_slot: u32, seq: u32) -> u32 {
        self.slot(sender_slot, seq)
            .map_or(0, |s| s.receipts.load(Ordering::Relaxed))
    }

    /// Marks one first receipt of a tracked message, with its latency.
    fn on_first_receipt(&self, sender_slot: u32, seq: u32, latency_us: u64) {
        if let Some(slot) = self.slot(sender_slot, seq) {
            slot.receipts.fetch_add(1, Ordering::Relaxed);
            let latency_us = u32::try_from(latency_us).unwrap_or(u32::MAX);
            slot.max_latency_us.fetch_max(latency_us, Ordering::Relaxed);
        }
    }
}

/// What one receipt was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    /// First receipt, in order (no higher seq from that sender seen before).
    First,
    /// First receipt, but a higher seq from that sender had already arrived.
    Reordered,
    /// This session already had this message.
    Duplicate,
    /// A seq no sender produces (`u32::MAX`): ignored.
    Invalid,
}

impl ReceiptKind {
    /// Whether this receipt delivered something new (counts as a delivery, has a latency).
    pub fn is_first(self) -> bool {
        matches!(self, ReceiptKind::First | ReceiptKind::Reordered)
    }
}

/// The seqs one session got from one sender: sorted, disjoint, non-adjacent half-open ranges.
///
/// The highest range lives inline (`first..next`) so that in-order receipts, even after a
/// loss, only bump `next`; the lower ranges of the (rare) senders that had a gap live in the
/// session's [`Earlier`] map, keyed by sender slot. 8 bytes per sender. Empty iff `next == 0`.
#[derive(Debug, Default, Clone, Copy)]
struct Seqs {
    first: u32,
    next: u32,
}

/// Lower ranges (below their sender's [`Seqs`] top range) of the senders that had a gap, by
/// sender slot. An entry exists only while it holds at least one range.
type Earlier = BTreeMap<u32, Vec<(u32, u32)>>;

/// One sender's entry of an [`Earlier`] map.
struct EarlierOf<'a> {
    map: &'a mut Earlier,
    sender: u32,
}

impl Seqs {
    /// Adds `seq` (< `u32::MAX`) and says what the receipt was; `earlier` is this sender's
    /// lower ranges.
    fn insert(&mut self, seq: u32, earlier: EarlierOf<'_>) -> ReceiptKind {
        if self.next == 0 {
            (self.first, self.next) = (seq, seq + 1);
            return ReceiptKind::First;
        }
        if seq >= self.next {
            if seq > self.next {
                // A gap: the current top range becomes an earlier one.
                let top = (self.first, self.next);
                earlier.map.entry(earlier.sender).or_default().push(top);
                self.first = seq;
            }
            self.next = seq + 1;
            return ReceiptKind::First;
        }
        if seq >= self.first {
            return ReceiptKind::Duplicate;
        }
        if self.insert_below_top(seq, earlier) {
            ReceiptKind::Reordered
        } else {
            ReceiptKind::Duplicate
        }
    }

    /// Adds `seq < first`; false if it was already there.
    fn insert_below_top(&mut self, seq: u32, earlier: EarlierOf<'_>) -> bool {
        if seq + 1 == self.first {
            self.first = seq;
            self.merge_top_with_last_earlier(earlier);
            return true;
        }
        let ranges = earlier.map.entry(earlier.sender).or_default();
        let at = ranges.partition_point(|&(_, end)| end <= seq);
        if ranges.get(at).is_some_and(|&(start, _)| start <= seq) {
            return false;
        }
        insert_into_gap(ranges, at, seq);
        true
    }

    /// Keeps the invariant "earlier ranges end strictly below `first`" after `first` moved down.
    fn merge_top_with_last_earlier(&mut self, earlier: EarlierOf<'_>) {
        let Some(ranges) = earlier.map.get_mut(&earlier.sender) else {
            return;
        };
        if let Some(&(start, end)) = ranges.last()
            && end == self.first
        {
            self.first = start;
            ranges.pop();
        }
        if ranges.is_empty() {
            earlier.map.remove(&earlier.sender);
        }
    }

    /// All ranges, ascending, given this sender's lower ranges.
    fn ranges<'a>(
        self,
        earlier: Option<&'a Vec<(u32, u32)>>,
    ) -> impl Iterator<Item = (u32, u32)> + 'a {
        let earlier = earlier.into_iter().flat_map(|r| r.iter().copied());
        let top = (self.next > 0).then_some((self.first, self.next));
        earlier.chain(top)
    }

    /// How many seqs, given this sender's lower ranges.
    fn len(self, earlier: Option<&Vec<(u32, u32)>>) -> u64 {
        self.ranges(earlier).map(|(a, b)| u64::from(b - a)).sum()
    }
}

/// Inserts `seq` into sorted disjoint `ranges`, where `ranges[at]` (if any) is the first range
/// starting above `seq` and `ranges[at - 1]` (if any) ends at or below it. Merges neighbours.
fn insert_into_gap(ranges: &mut Vec<(u32, u32)>, at: usize, seq: u32) {
    let joins_prev = at > 0 && ranges[at - 1].1 == seq;
    let joins_next = ranges.get(at).is_some_and(|&(start, _)| start == seq + 1);
    match (joins_prev, joins_next) {
        (true, true) => {
            ranges[at - 1].1 = ranges[at].1;
            ranges.remove(at);
        }
        (true, false) => ranges[at - 1].1 = seq + 1,
        (false, true) => ranges[at].0 = seq,
        (false, false) => ranges.insert(at, (seq, seq + 1)),
    }
}

/// What one session received, owned by that session's receiving task.
#[derive(Debug, Default)]
pub struct SessionLedger {
    /// Indexed by sender slot; grown on demand, so size it up front with
    /// [`SessionLedger::for_room`] to keep receipts allocation-free.
    senders: Vec<Seqs>,
    /// Sender slots beyond the room's size (a misconfigured or foreign sender): rare.
    strangers: BTreeMap<u32, Seqs>,
    /// Lower ranges of senders (room members and strangers alike) that had a gap.
    earlier: Earlier,
    /// Tracked first receipts that came after the deadline, as ranges by sender slot: nothing
    /// while everything is on time; appends while a sender's messages are late in order.
    late: Earlier,
    duplicated: u64,
    reordered: u64,
    invalid: u64,
}

impl SessionLedger {
    /// An empty ledger that grows per sender as messages arrive (one allocation per growth);
    /// [`SessionLedger::for_room`] sizes it up front instead.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty ledger with room for every sender slot of `room`.
    pub fn for_room(room: &RoomLedger) -> Self {
        SessionLedger {
            senders: vec![Seqs::default(); room.senders as usize],
            ..Self::default()
        }
    }

    /// Records one received probe at `now_us`. First receipts record their fan-out latency
    /// (`now_us − intended_us`, in the calling thread's histogram) and mark the room's slot.
    pub fn on_receive(
        &mut self,
        room: &RoomLedger,
        sender_slot: u32,
        seq: u32,
        intended_us: u64,
        now_us: u64,
    ) -> ReceiptKind {
        if seq == u32::MAX {
            self.invalid += 1;
            return ReceiptKind::Invalid;
        }
        let earlier = EarlierOf {
            map: &mut self.earlier,
            sender: sender_slot,
        };
        let seqs = if sender_slot >= room.senders {
            self.strangers.entry(sender_slot).or_default()
        } else {
            let i = sender_slot as usize;
            if i >= self.senders.len() {
                self.senders.resize_with(i + 1, Seqs::default);
            }
            &mut self.senders[i]
        };
        let kind = seqs.insert(seq, earlier);
        match kind {
            ReceiptKind::Duplicate => self.duplicated += 1,
            ReceiptKind::Reordered => self.reordered += 1,
            ReceiptKind::First | ReceiptKind::Invalid => {}
        }
        if kind.is_first() {
            let latency_us = now_us.saturating_sub(intended_us);
            room.recorder.record(HistogramKind::Fanout, latency_us);
            room.on_first_receipt(sender_slot, seq, latency_us);
            if latency_us > room.deadline_us && room.slot(sender_slot, seq).is_some() {
                add_seq(self.late.entry(sender_slot).or_default(), seq);
            }
        }
        kind
    }

    pub fn duplicated(&self) -> u64 {
        self.duplicated
    }

    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    /// Receipts carrying a seq no sender produces.
    pub fn invalid(&self) -> u64 {
        self.invalid
    }

    /// How many distinct messages this session got (any sender).
    pub fn unique(&self) -> u64 {
        let members = (0u32..).zip(&self.senders);
        let all = members.chain(self.strangers.iter().map(|(&slot, seqs)| (slot, seqs)));
        all.map(|(slot, seqs)| seqs.len(self.earlier.get(&slot)))
            .sum()
    }

    /// Seqs received from strangers (sender slots beyond the room's size).
    fn strangers_len(&self) -> u64 {
        let all = self.strangers.iter();
        all.map(|(slot, seqs)| seqs.len(self.earlier.get(slot)))
            .sum()
    }

    /// The ranges received from an in-room sender, ascending; `None` if never grown to it.
    fn ranges(&self, sender_slot: u32) -> Option<impl Iterator<Item = (u32, u32)> + '_> {
        let seqs = *self.senders.get(sender_slot as usize)?;
        Some(seqs.ranges(self.earlier.get(&sender_slot)))
    }

    /// The late ranges of an in-room sender, ascending (empty when all came on time).
    fn late_ranges(&self, sender_slot: u32) -> &[(u32, u32)] {
        self.late.get(&sender_slot).map_or(&[], Vec::as_slice)
    }
}

/// Adds `seq`, known to be absent, to sorted disjoint non-adjacent `ranges`.
fn add_seq(ranges: &mut Vec<(u32, u32)>, seq: u32) {
    match ranges.last_mut() {
        Some(last) if last.1 == seq => last.1 += 1,
        Some(last) if last.1 < seq => ranges.push((seq, seq + 1)),
        None => ranges.push((seq, seq + 1)),
        Some(_) => {
            let at = ranges.partition_point(|&(_, end)| end <= seq);
            insert_into_gap(ranges, at, seq);
        }
    }
}

/// Sorts ranges and merges those that overlap or touch, in place.
fn normalize(ranges: &mut Vec<(u32, u32)>) {
    ranges.sort_unstable();
    let mut out = 0;
    for i in 0..ranges.len() {
        let (a, b) = ranges[i];
        if out > 0 && a <= ranges[out - 1].1 {
            ranges[out - 1].1 = ranges[out - 1].1.max(b);
        } else {
            ranges[out] = (a, b);
            out += 1;
        }
    }
    ranges.truncate(out);
}

/// Pushes `ranges − minus` (both sorted and disjoint) onto `out`.
fn push_difference(
    ranges: impl Iterator<Item = (u32, u32)>,
    minus: &[(u32, u32)],
    out: &mut Vec<(u32, u32)>,
) {
    let mut m = 0;
    for (mut a, b) in ranges {
        while m < minus.len() && minus[m].1 <= a {
            m += 1;
        }
        let mut k = m;
        while a < b {
            match minus.get(k) {
                Some(&(ma, mb)) if ma < b => {
                    if a < ma {
                        out.push((a, ma));
                    }
                    a = a.max(mb);
                    k += 1;
                }
                _ => {
                    out.push((a, b));
                    break;
                }
            }
        }
    }
}

/// The outcome of a room (or, added up, of a run): defined with the results schema.
pub use roomstorm_results::DeliveryTotals;

/// One sender's tracked sent messages, ascending by seq.
struct SentLog {
    seqs: Vec<u32>,
    intended: Vec<u64>,
    /// Whether intended times never decrease with seq (then owed sets are one index range).
    monotonic: bool,
}

impl SentLog {
    fn read(room: &RoomLedger, sender_slot: u32) -> Self {
        let mut log = SentLog {
            seqs: Vec::new(),
            intended: Vec::new(),
            monotonic: true,
        };
        for seq in 0..room.capacity {
            let Some(slot) = room.slot(sender_slot, seq) else {
                break;
            };
            let intended = slot.intended_us.load(Ordering::Acquire);
            if intended == NOT_SENT {
                continue;
            }
            if log.intended.last().is_some_and(|&prev| prev > intended) {
                log.monotonic = false;
            }
            log.seqs.push(seq);
            log.intended.push(intended);
        }
        log
    }

    /// Index of the first sent seq ≥ `seq`.
    fn index_of(&self, seq: u32) -> usize {
        self.seqs.partition_point(|&s| s < seq)
    }

    /// The indices of the messages owed to a session, as runs of indices, into `runs`.
    fn owed_runs(&self, window: Window, runs: &mut Vec<(usize, usize)>) {
        runs.clear();
        if self.monotonic {
            let lo = self.intended.partition_point(|&t| t < window.from_us);
            let hi = self.intended.partition_point(|&t| t <= window.to_us);
            if lo < hi {
                runs.push((lo, hi));
            }
            return;
        }
        // Intended times out of order: a scan, still producing maximal runs.
        for (i, &t) in self.intended.iter().enumerate() {
            if !window.contains(t) {
                continue;
            }
            match runs.last_mut() {
                Some((_, end)) if *end == i => *end += 1,
                _ => runs.push((i, i + 1)),
            }
        }
    }
}

/// The intended send times a stay is owed: `from_us ..= to_us`.
#[derive(Debug, Clone, Copy)]
struct Window {
    from_us: u64,
    to_us: u64,
}

impl Window {
    /// Owed to nobody: `from_us > to_us`.
    const EMPTY: Window = Window {
        from_us: 1,
        to_us: 0,
    };

    /// The part of this window inside `other`.
    fn within(self, other: Window) -> Window {
        Window {
            from_us: self.from_us.max(other.from_us),
            to_us: self.to_us.min(other.to_us),
        }
    }

    fn contains(self, t: u64) -> bool {
        self.from_us <= t && t <= self.to_us
    }
}

/// One member's unbroken stay in the room: the sessions (indices into the membership log) that
/// are owed as one, and the window of intended send times owed to it.
struct Stay {
    /// Whose stay it is.
    member_slot: u32,
    sessions: Vec<usize>,
    window: Window,
}

/// Groups the membership log into stays (see the module's definitions): a member's sessions in
/// join order, a stay continuing past every session that was cut off (or, in a log read before
/// the run ended, is still open), and ending at a planned leave.
fn stays(log: &[SessionRecord], deadline_us: u64, end_us: u64) -> Vec<Stay> {
    let mut order: Vec<usize> = (0..log.len()).collect();
    order.sort_by_key(|&i| (log[i].member_slot, log[i].join_done_us, i));
    let mut out: Vec<Stay> = Vec::new();
    let mut continues = false;
    let mut previous_member = None;
    for i in order {
        let session = &log[i];
        let same_member = previous_member == Some(session.member_slot);
        match out.last_mut() {
            Some(stay) if continues && same_member => stay.sessions.push(i),
            _ => out.push(Stay {
                member_slot: session.member_slot,
                sessions: vec![i],
                window: Window {
                    from_us: session.join_done_us,
                    to_us: u64::MAX,
                },
            }),
        }
        previous_member = Some(session.member_slot);
        continues = !matches!(session.left, Some((_, Leave::Planned)));
        if let (Some(stay), Some((left_us, Leave::Planned))) = (out.last_mut(), session.left)
            && left_us < end_us
        {
            // A planned leave: owed what was meant to be sent a deadline before it.
            match left_us.checked_sub(deadline_us) {
                Some(to_us) => stay.window.to_us = to_us,
                None => stay.window = Window::EMPTY,
            }
        }
    }
    out
}

/// Per-message counters of one sender, kept as difference arrays so that a run of indices
/// costs O(1) to add: owed, received by the stay (any time), received on time.
struct PerMessage {
    owed: Vec<i64>,
    got: Vec<i64>,
    on_time: Vec<i64>,
}

impl PerMessage {
    fn new(messages: usize) -> Self {
        PerMessage {
            owed: vec![0; messages + 1],
            got: vec![0; messages + 1],
            on_time: vec![0; messages + 1],
        }
    }

    fn add(diff: &mut [i64], (lo, hi): (usize, usize)) {
        diff[lo] += 1;
        diff[hi] -= 1;
    }
}

/// Settles a room after its run: who was owed what, what arrived on time, late, or never.
///
/// `sessions` are the receiving ledgers by session; sessions of the room log without a ledger
/// received nothing; a ledger whose id is unknown to the room, or repeats another's, has all
/// its receipts counted as extra. `end_us` is the end of the run's drain: sessions still there
/// then, whatever happened after, are owed every message. Records, per tracked message,
/// [`HistogramKind::FanoutSize`] (stays owed) and, when every owed stay received it (on time or
/// late), [`HistogramKind::Completion`] (its slowest first receipt).
#[cfg(test)]
pub fn finalize(
    room: &RoomLedger,
    sessions: &[(SessionId, SessionLedger)],
    end_us: u64,
) -> DeliveryTotals {
    settle(room, sessions, end_us, WHOLE_RUN, Record::Metrics(None)).totals
}

/// What settling a room gives: its totals, and (for a room made [`RoomLedger::with_groups`])
/// each group's, as receivers: what its members were owed and got (`by_group[g]`, as long as
/// the highest group of the room plus one). Groups' totals add up to the room's, except
/// `messages` and `incomplete` (properties of messages, not of receivers: 0 per group) and the
/// receipts of sessions unknown to the room's log (extra in the room only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settled {
    pub totals: DeliveryTotals,
    pub by_group: Vec<DeliveryTotals>,
}

/// Owed deliveries lost (late and never) and late, by the second of the messages' INTENDED
/// send time: `lost()[t]` are the losses among messages intended in
/// `start_us + t s .. start_us + (t + 1) s`.
///
/// Filled by [`finalize_counting_losses`] in the same walk that settles each message, so it
/// costs one add per sent message, not a pass per second. Its sums are the totals' `lost` and
/// `late`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostBySecond {
    start_us: u64,
    width_us: u64,
    lost: Vec<u64>,
    late: Vec<u64>,
}

impl LostBySecond {
    /// Seconds counted from `start_us` (the run's start).
    pub fn new(start_us: u64) -> Self {
        Self::with_width(start_us, 1_000_000)
    }

    /// Intervals of `width_us` instead of seconds (tests use short ones).
    pub fn with_width(start_us: u64, width_us: u64) -> Self {
        LostBySecond {
            start_us,
            width_us: width_us.max(1),
            lost: Vec::new(),
            late: Vec::new(),
        }
    }

    fn add(&mut self, intended_us: u64, lost: u64, late: u64) {
        let i = (intended_us.saturating_sub(self.start_us) / self.width_us) as usize;
        for (counts, n) in [(&mut self.lost, lost), (&mut self.late, late)] {
            if n == 0 {
                continue;
            }
            if i >= counts.len() {
                counts.resize(i + 1, 0);
            }
            counts[i] += n;
        }
    }

    /// Losses (late + never) by interval from the start; ends at the last interval with one.
    pub fn lost(&self) -> &[u64] {
        &self.lost
    }

    /// Late deliveries by interval from the start; ends at the last interval with one.
    pub fn late(&self) -> &[u64] {
        &self.late
    }

    #[cfg(test)]
    pub fn total(&self) -> u64 {
        self.lost.iter().sum()
    }
}

/// [`finalize`], also adding each message's lost and late deliveries into `losses` by its
/// intended send time.
pub fn finalize_counting_losses(
    room: &RoomLedger,
    sessions: &[(SessionId, SessionLedger)],
    end_us: u64,
    losses: &mut LostBySecond,
) -> Settled {
    settle(
        room,
        sessions,
        end_us,
        WHOLE_RUN,
        Record::Metrics(Some(losses)),
    )
}

const WHOLE_RUN: Window = Window {
    from_us: 0,
    to_us: u64::MAX,
};

/// Deliveries lost (late or never) among the messages meant to be sent in `from_us ..= to_us`,
/// by the definitions of [`finalize`]. Records nothing. Runs do not call it (faults and steps
/// are judged on the per-second [`LostBySecond`] series, see `judging.rs`); it is the exact
/// reference the tests check that series against, interval by interval.
#[cfg(test)]
pub fn lost_between(
    room: &RoomLedger,
    sessions: &[(SessionId, SessionLedger)],
    end_us: u64,
    from_us: u64,
    to_us: u64,
) -> u64 {
    let only = Window { from_us, to_us };
    settle(room, sessions, end_us, only, Record::Nothing)
        .totals
        .lost
}

/// What [`settle`] records besides the totals.
enum Record<'a> {
    /// Only [`lost_between`], which only tests call.
    #[cfg_attr(not(test), allow(dead_code))]
    Nothing,
    /// The per-message metrics, and the losses by second when given.
    Metrics(Option<&'a mut LostBySecond>),
}

/// Reused buffers for one room's settling (no allocation per stay and sender).
#[derive(Default)]
struct Scratch {
    runs: Vec<(usize, usize)>,
    received: Vec<(u32, u32)>,
    on_time: Vec<(u32, u32)>,
}

/// [`finalize`] restricted to messages intended within `only` (whose other counts, such as
/// `extra`, are then not meaningful); `record` says what else to record.
fn settle(
    room: &RoomLedger,
    sessions: &[(SessionId, SessionLedger)],
    end_us: u64,
    only: Window,
    mut record: Record<'_>,
) -> Settled {
    let log = room.sessions();
    let mut stays = stays(&log, room.deadline_us, end_us);
    for stay in &mut stays {
        stay.window = stay.window.within(only);
    }
    let (ledgers, used) = ledgers_by_session(log.len(), sessions);
    let mut totals = DeliveryTotals {
        untracked_sends: room.untracked_sends(),
        ..DeliveryTotals::default()
    };
    let mut scratch = Scratch::default();
    let mut by_group =
        vec![DeliveryTotals::default(); room.groups.iter().max().map_or(0, |&g| g as usize + 1)];
    for sender_slot in 0..room.senders {
        settle_sender(
            room,
            sender_slot,
            (&stays, &ledgers),
            &mut scratch,
            &mut record,
            (&mut totals, &mut by_group),
        );
    }
    for ((id, ledger), used) in sessions.iter().zip(used) {
        let mut mine = DeliveryTotals {
            duplicated: ledger.duplicated,
            reordered: ledger.reordered,
            ..DeliveryTotals::default()
        };
        if used {
            mine.untracked = ledger.strangers_len();
        } else {
            mine.extra = ledger.unique();
        }
        totals.add(&mine);
        let group = log.get(id.0 as usize).filter(|_| used);
        if let Some(g) = group.and_then(|s| room.group_of(s.member_slot)) {
            by_group[g].add(&mine);
        }
    }
    for t in std::iter::once(&mut totals).chain(&mut by_group) {
        t.never = t.expected - t.delivered - t.late;
        t.lost = t.late + t.never;
    }
    Settled { totals, by_group }
}

/// For each session of the room's log, its ledger (the first with that id); and for each
/// ledger, whether it was matched to a session.
fn ledgers_by_session(
    log_len: usize,
    sessions: &[(SessionId, SessionLedger)],
) -> (Vec<Option<&SessionLedger>>, Vec<bool>) {
    let mut by_session = vec![None; log_len];
    let mut used = vec![false; sessions.len()];
    for ((id, ledger), used) in sessions.iter().zip(&mut used) {
        if let Some(entry @ None) = by_session.get_mut(id.0 as usize) {
            *entry = Some(ledger);
            *used = true;
        }
    }
    (by_session, used)
}

/// Settles one sender's messages across every stay of the room, adding each stay's
/// deliveries into the room's totals and its member's group's.
fn settle_sender(
    room: &RoomLedger,
    sender_slot: u32,
    (stays, ledgers): (&[Stay], &[Option<&SessionLedger>]),
    scratch: &mut Scratch,
    record: &mut Record<'_>,
    (totals, by_group): (&mut DeliveryTotals, &mut [DeliveryTotals]),
) {
    let sent = SentLog::read(room, sender_slot);
    let mut per_message = PerMessage::new(sent.seqs.len());
    for stay in stays {
        if room.echo_owed || stay.member_slot != sender_slot {
            sent.owed_runs(stay.window, &mut scratch.runs);
        } else {
            // Its own messages: owed nothing, and what it got of them is extra.
            scratch.runs.clear();
        }
        let mut mine = DeliveryTotals::default();
        for &run in &scratch.runs {
            PerMessage::add(&mut per_message.owed, run);
            mine.expected += (run.1 - run.0) as u64;
        }
        let received = gather_receipts(room.capacity, sender_slot, stay, ledgers, scratch);
        count_receipts(&sent, scratch, &mut per_message, received, &mut mine);
        totals.add(&mine);
        if let Some(g) = room.group_of(stay.member_slot) {
            by_group[g].add(&mine);
        }
    }
    if let Record::Metrics(losses) = record {
        settle_messages(
            room,
            sender_slot,
            &sent,
            &per_message,
            losses.as_deref_mut(),
            totals,
        );
    }
}

/// What the sessions of one stay received from one sender.
struct Received {
    /// First receipts, summed over the stay's sessions (a seq two sessions got counts twice).
    first_receipts: u64,
    /// Of those, beyond the ledger's capacity.
    untracked: u64,
}

/// Fills `scratch.received` and `scratch.on_time` with the seqs the stay's sessions got from
/// `sender_slot` (any time, and on time), each sorted and merged across sessions.
fn gather_receipts(
    capacity: u32,
    sender_slot: u32,
    stay: &Stay,
    ledgers: &[Option<&SessionLedger>],
    scratch: &mut Scratch,
) -> Received {
    scratch.received.clear();
    scratch.on_time.clear();
    let mut received = Received {
        first_receipts: 0,
        untracked: 0,
    };
    for ledger in stay.sessions.iter().filter_map(|&i| ledgers[i]) {
        let Some(ranges) = ledger.ranges(sender_slot) else {
            continue;
        };
        let before = scratch.received.len();
        scratch.received.extend(ranges);
        for &(a, b) in &scratch.received[before..] {
            received.first_receipts += u64::from(b - a);
            received.untracked += u64::from(b.saturating_sub(a.max(capacity)));
        }
        let (mine, late) = (&scratch.received[before..], ledger.late_ranges(sender_slot));
        push_difference(mine.iter().copied(), late, &mut scratch.on_time);
    }
    if stay.sessions.len() > 1 {
        normalize(&mut scratch.received);
        normalize(&mut scratch.on_time);
    }
    received
}

/// Sorts one stay's receipts from one sender (in `scratch`) into on time, late, extra and
/// untracked, against the messages owed to it (`scratch.runs`).
fn count_receipts(
    sent: &SentLog,
    scratch: &Scratch,
    per_message: &mut PerMessage,
    received: Received,
    totals: &mut DeliveryTotals,
) {
    let got = add_owed_receipts(sent, &scratch.received, &scratch.runs, &mut per_message.got);
    let on_time = add_owed_receipts(
        sent,
        &scratch.on_time,
        &scratch.runs,
        &mut per_message.on_time,
    );
    totals.untracked += received.untracked;
    totals.delivered += on_time;
    totals.late += got - on_time;
    totals.extra += received.first_receipts - received.untracked - got;
}

/// Adds to `diff` the owed messages (index runs `owed_runs`) whose seq lies in `ranges`;
/// returns how many.
fn add_owed_receipts(
    sent: &SentLog,
    ranges: &[(u32, u32)],
    owed_runs: &[(usize, usize)],
    diff: &mut [i64],
) -> u64 {
    let mut n = 0;
    for &(a, b) in ranges {
        // Indices of the sent messages whose seq lies in a..b.
        let (ia, ib) = (sent.index_of(a), sent.index_of(b));
        for &(lo, hi) in owed_runs {
            let (x, y) = (lo.max(ia), hi.min(ib));
            if x < y {
                PerMessage::add(diff, (x, y));
                n += (y - x) as u64;
            }
        }
    }
    n
}

/// Walks one sender's messages: fan-out size, completion, incomplete count, and (when asked)
/// each message's lost and late deliveries by its intended second.
fn settle_messages(
    room: &RoomLedger,
    sender_slot: u32,
    sent: &SentLog,
    per_message: &PerMessage,
    mut losses: Option<&mut LostBySecond>,
    totals: &mut DeliveryTotals,
) {
    let (mut owed, mut got, mut on_time) = (0i64, 0i64, 0i64);
    for (i, &seq) in sent.seqs.iter().enumerate() {
        owed += per_message.owed[i];
        got += per_message.got[i];
        on_time += per_message.on_time[i];
        totals.messages += 1;
        room.recorder.record(HistogramKind::FanoutSize, owed as u64);
        if let Some(losses) = losses.as_deref_mut() {
            // on_time <= got <= owed: receipts count only inside the stay's owed runs.
            losses.add(
                sent.intended[i],
                (owed - on_time) as u64,
                (got - on_time) as u64,
            );
        }
        if got < owed {
            totals.incomplete += 1;
        } else if owed > 0
            && let Some(slot) = room.slot(sender_slot, seq)
        {
            let completion = u64::from(slot.max_latency_us.load(Ordering::Relaxed));
            room.recorder.record(HistogramKind::Completion, completion);
        }
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
