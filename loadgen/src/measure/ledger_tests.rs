//! Tests of the delivery ledger: one scenario per definition, then randomized runs checked
//! against a naive model built from sets, which states the definitions as plainly as possible.

use std::collections::{BTreeSet, HashMap, HashSet};

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::*;
use crate::measure::histograms::{Histograms, SIGFIG, new_histogram};

/// A room with its own recorder and the sessions' ledgers.
struct Harness {
    room: RoomLedger,
    recorder: Arc<Recorder>,
    ledgers: Vec<(SessionId, SessionLedger)>,
}

impl Harness {
    fn new(senders: u32, capacity: u32) -> Self {
        Self::with_deadline(senders, capacity, DEADLINE)
    }

    fn with_deadline(senders: u32, capacity: u32, deadline: u64) -> Self {
        let recorder = Arc::new(Recorder::new());
        Harness {
            room: RoomLedger::new(senders, capacity, deadline, Arc::clone(&recorder)),
            recorder,
            ledgers: Vec::new(),
        }
    }

    /// Opens a session; returns its index in `ledgers`.
    fn join(&mut self, member: u32, at: u64) -> usize {
        let id = self.room.session_joined(member, at);
        self.ledgers.push((id, SessionLedger::for_room(&self.room)));
        self.ledgers.len() - 1
    }

    fn leave(&mut self, session: usize, at: u64) {
        self.room
            .session_left(self.ledgers[session].0, at, Leave::Planned);
    }

    fn cut_off(&mut self, session: usize, at: u64) {
        self.room
            .session_left(self.ledgers[session].0, at, Leave::CutOff);
    }

    fn receive(
        &mut self,
        session: usize,
        sender: u32,
        seq: u32,
        intended: u64,
        now: u64,
    ) -> ReceiptKind {
        self.ledgers[session]
            .1
            .on_receive(&self.room, sender, seq, intended, now)
    }

    fn finalize(&self, end: u64) -> DeliveryTotals {
        finalize(&self.room, &self.ledgers, end)
    }

    fn merged(&self) -> Histograms {
        self.recorder.merged()
    }
}

const DEADLINE: u64 = 1_000;
const END: u64 = 100_000;

/// Three members joined at 0; each sends seqs 0..5 at 1000·(seq+1) + sender.
fn three_members_five_messages() -> (Harness, Vec<(u32, u32, u64)>) {
    let mut h = Harness::new(3, 8);
    for m in 0..3 {
        h.join(m, 0);
    }
    let mut messages = Vec::new();
    for seq in 0..5 {
        for sender in 0..3 {
            let intended = 1000 * u64::from(seq + 1) + u64::from(sender);
            h.room.on_send(sender, seq, intended);
            messages.push((sender, seq, intended));
        }
    }
    (h, messages)
}

fn deliver_all_except(h: &mut Harness, messages: &[(u32, u32, u64)], skip: &[(usize, u32, u32)]) {
    for &(sender, seq, intended) in messages {
        for session in 0..h.ledgers.len() {
            if !skip.contains(&(session, sender, seq)) {
                h.receive(
                    session,
                    sender,
                    seq,
                    intended,
                    intended + 100 + session as u64,
                );
            }
        }
    }
}

#[test]
fn in_order_delivery_to_everyone() {
    let (mut h, messages) = three_members_five_messages();
    deliver_all_except(&mut h, &messages, &[]);
    let t = h.finalize(END);
    assert_eq!(
        t,
        DeliveryTotals {
            expected: 45,
            delivered: 45,
            messages: 15,
            ..DeliveryTotals::default()
        }
    );
    assert_eq!(t.delivery_ratio(), 1.0);
    let merged = h.merged();
    assert_eq!(merged.summary(HistogramKind::Fanout).count, 45);
    assert_eq!(merged.summary(HistogramKind::Fanout).min_us, 100);
    assert_eq!(merged.summary(HistogramKind::Fanout).max_us, 102);
    assert_eq!(merged.summary(HistogramKind::Completion).count, 15);
    assert_eq!(merged.summary(HistogramKind::Completion).min_us, 102);
    let size = merged.summary(HistogramKind::FanoutSize);
    assert_eq!((size.count, size.min_us, size.max_us), (15, 3, 3));
    assert_eq!(h.room.receipts(1, 4), 3);
}

/// An app that sends a member's messages to the others only: nobody is owed its own
/// messages, so the room's deliveries are whole without any echo; an echo that comes anyway
/// is extra, never on time.
#[test]
fn without_echo_a_sender_is_owed_none_of_its_own_messages() {
    let (mut h, messages) = three_members_five_messages();
    h.room = RoomLedger::new(3, 8, DEADLINE, Arc::clone(&h.recorder)).without_echo();
    for m in 0..3 {
        h.room.session_joined(m, 0);
    }
    for &(sender, seq, intended) in &messages {
        h.room.on_send(sender, seq, intended);
    }
    let others_only: Vec<(usize, u32, u32)> = messages
        .iter()
        .map(|&(sender, seq, _)| (sender as usize, sender, seq))
        .collect();
    deliver_all_except(&mut h, &messages, &others_only);
    let t = h.finalize(END);
    assert_eq!(
        t,
        DeliveryTotals {
            expected: 30,
            delivered: 30,
            messages: 15,
            ..DeliveryTotals::default()
        }
    );
    let size = h.merged().summary(HistogramKind::FanoutSize);
    assert_eq!((size.min_us, size.max_us), (2, 2), "owed to the two others");
    // One echo arrives anyway: extra, and nothing else moves.
    let (sender, seq, intended) = messages[0];
    h.receive(sender as usize, sender, seq, intended, intended + 50);
    let t = h.finalize(END);
    assert_eq!((t.expected, t.delivered, t.extra, t.lost), (30, 30, 1, 0));
}

/// Each group's deliveries are those of its members' stays, as receivers, and add up to the
/// room's (but for the messages' own counts).
#[test]
fn each_group_gets_its_members_deliveries() {
    let (mut h, messages) = three_members_five_messages();
    h.room = RoomLedger::new(3, 8, DEADLINE, Arc::clone(&h.recorder)).with_groups(vec![1, 0, 1]);
    for m in 0..3 {
        h.room.session_joined(m, 0);
    }
    for &(sender, seq, intended) in &messages {
        h.room.on_send(sender, seq, intended);
    }
    // Member 1 (group 0) misses two messages; member 2 (group 1) gets one twice.
    deliver_all_except(&mut h, &messages, &[(1, 0, 0), (1, 2, 3)]);
    let (sender, seq, intended) = messages[4];
    h.receive(2, sender, seq, intended, intended + 10);
    let mut losses = LostBySecond::new(0);
    let settled = finalize_counting_losses(&h.room, &h.ledgers, END, &mut losses);
    let (g0, g1) = (settled.by_group[0], settled.by_group[1]);
    assert_eq!(settled.by_group.len(), 2);
    assert_eq!(
        (g0.expected, g0.delivered, g0.never, g0.lost),
        (15, 13, 2, 2)
    );
    assert_eq!(
        (g1.expected, g1.delivered, g1.lost, g1.duplicated),
        (30, 30, 0, 1)
    );
    let t = settled.totals;
    assert_eq!(t.expected, g0.expected + g1.expected);
    assert_eq!(t.delivered, g0.delivered + g1.delivered);
    assert_eq!(t.lost, g0.lost + g1.lost);
    assert_eq!(t.duplicated, g0.duplicated + g1.duplicated);
    // Without groups: none.
    let plain = three_members_five_messages().0;
    assert!(
        finalize_counting_losses(&plain.room, &[], END, &mut losses)
            .by_group
            .is_empty()
    );
}

#[test]
fn a_lost_message_is_lost_and_its_message_incomplete() {
    let (mut h, messages) = three_members_five_messages();
    deliver_all_except(&mut h, &messages, &[(2, 0, 3)]);
    let t = h.finalize(END);
    assert_eq!((t.expected, t.delivered, t.lost), (45, 44, 1));
    assert_eq!((t.messages, t.incomplete), (15, 1));
    assert_eq!(h.merged().summary(HistogramKind::Completion).count, 14);
    assert_eq!(h.room.receipts(0, 3), 2);
}

#[test]
fn a_duplicate_is_counted_once_and_has_no_latency() {
    let (mut h, messages) = three_members_five_messages();
    deliver_all_except(&mut h, &messages, &[]);
    assert_eq!(h.receive(1, 2, 2, 3002, 9999), ReceiptKind::Duplicate);
    let t = h.finalize(END);
    assert_eq!(
        (t.delivered, t.duplicated, t.reordered, t.extra),
        (45, 1, 0, 0)
    );
    assert_eq!(h.merged().summary(HistogramKind::Fanout).count, 45);
    assert_eq!(h.room.receipts(2, 2), 3);
}

#[test]
fn a_reorder_is_delivered_and_counted() {
    let mut h = Harness::new(1, 4);
    let s = h.join(0, 0);
    for seq in 0..3 {
        h.room.on_send(0, seq, 1000 + u64::from(seq));
    }
    assert_eq!(h.receive(s, 0, 1, 1001, 1500), ReceiptKind::First);
    assert_eq!(h.receive(s, 0, 0, 1000, 1600), ReceiptKind::Reordered);
    assert_eq!(h.receive(s, 0, 0, 1000, 1700), ReceiptKind::Duplicate);
    assert_eq!(h.receive(s, 0, 2, 1002, 1800), ReceiptKind::First);
    let t = h.finalize(END);
    assert_eq!((t.expected, t.delivered, t.lost), (3, 3, 0));
    assert_eq!((t.reordered, t.duplicated), (1, 1));
    assert_eq!(h.merged().summary(HistogramKind::Fanout).count, 3);
}

#[test]
fn a_late_joiner_is_not_owed_earlier_messages_and_their_receipt_is_extra() {
    let (mut h, messages) = three_members_five_messages();
    let late = h.join(3, 2500); // a fourth member, who sends nothing
    deliver_all_except(&mut h, &messages, &[]);
    let t = h.finalize(END);
    // Messages 2..5 of each sender (9) are owed to the late session; seqs 0 and 1 (6) are not.
    assert_eq!(t.expected, 45 + 9);
    assert_eq!((t.delivered, t.extra, t.lost), (54, 6, 0));
    assert_eq!(h.merged().summary(HistogramKind::FanoutSize).max_us, 4);
    assert_eq!(h.merged().summary(HistogramKind::FanoutSize).min_us, 3);
    let _ = late;
}

#[test]
fn a_session_that_left_is_owed_only_what_was_sent_a_deadline_before() {
    let (mut h, messages) = three_members_five_messages();
    // Left at 4001: owed intended ≤ 3001, i.e. seqs 0, 1 of every sender and seq 2 of sender 0
    // (3000) and 1 (3001), not of sender 2 (3002).
    h.leave(1, 4001);
    let skip: Vec<(usize, u32, u32)> = messages
        .iter()
        .filter(|m| m.2 > 4001)
        .map(|m| (1, m.0, m.1))
        .collect();
    deliver_all_except(&mut h, &messages, &skip);
    let t = h.finalize(END);
    assert_eq!(t.expected, 30 + 8);
    // Received before leaving but not owed: seq 2 of sender 2 (3002), seqs 3 (4000..4002 ≤ 4001).
    assert_eq!((t.delivered, t.extra, t.lost), (38, 3, 0));
}

#[test]
fn lost_between_counts_only_messages_meant_for_that_window() {
    let (mut h, messages) = three_members_five_messages();
    // Seq 1 (2000..2002) and seq 3 (4000..4002) of sender 0 never reach session 2.
    deliver_all_except(&mut h, &messages, &[(2, 0, 1), (2, 0, 3)]);
    let lost = |from, to| lost_between(&h.room, &h.ledgers, END, from, to);
    assert_eq!(lost(0, END), 2);
    assert_eq!(lost(1500, 3500), 1);
    assert_eq!(lost(2001, 3999), 0);
    assert_eq!(lost(2000, 2000), 1);
    assert_eq!(lost(5000, 1000), 0);
    // It records nothing: the histograms only hold the receipts' latencies.
    assert_eq!(h.merged().summary(HistogramKind::FanoutSize).count, 0);
    assert_eq!(h.finalize(END).lost, 2);
}

#[test]
fn a_reconnect_is_a_new_session_with_its_own_window() {
    let mut h = Harness::new(2, 8);
    let a = h.join(0, 0);
    let stay = h.join(1, 0);
    for (seq, at) in [(0, 1000), (1, 3500), (2, 6000)] {
        h.room.on_send(1, seq, at);
    }
    h.leave(a, 3000);
    let b = h.join(0, 4000);
    for session in [a, stay] {
        h.receive(session, 1, 0, 1000, 1100);
    }
    for session in [b, stay] {
        h.receive(session, 1, 1, 3500, 4100);
        h.receive(session, 1, 2, 6000, 6100);
    }
    let t = h.finalize(END);
    // seq 0: a, stay; seq 1 (3500): stay only (a left before 4500, b joined after); seq 2: b, stay.
    assert_eq!((t.expected, t.delivered, t.extra, t.lost), (5, 5, 1, 0));
}

#[test]
fn a_session_still_there_at_the_end_is_owed_every_message() {
    let mut h = Harness::new(1, 4);
    let s = h.join(0, 0);
    h.room.on_send(0, 0, END - DEADLINE);
    h.room.on_send(0, 1, END - 1);
    h.receive(s, 0, 0, END - DEADLINE, END - 1);
    let t = h.finalize(END);
    assert_eq!((t.expected, t.delivered, t.never, t.lost), (2, 1, 1, 1));
    assert_eq!((t.messages, t.incomplete), (2, 1));
    // Leaving after the end of the drain (the run's ramp-down) is the end, not a leave.
    h.leave(s, END + 5);
    assert_eq!(h.finalize(END).expected, 2);
    let size = h.merged().summary(HistogramKind::FanoutSize);
    assert_eq!((size.min_us, size.max_us), (1, 1));
}

#[test]
fn a_receipt_after_the_deadline_is_late_and_lost_not_delivered() {
    let mut h = Harness::new(1, 4);
    let (a, b) = (h.join(0, 0), h.join(1, 0));
    h.room.on_send(0, 0, 1000);
    h.room.on_send(0, 1, 2000);
    h.receive(a, 0, 0, 1000, 1000 + DEADLINE); // exactly the deadline: on time
    h.receive(b, 0, 0, 1000, 1001 + DEADLINE); // 1 µs more: late
    h.receive(a, 0, 1, 2000, 2000 + 30 * DEADLINE);
    let t = h.finalize(END);
    assert_eq!(t.expected, 4);
    assert_eq!((t.delivered, t.late, t.never, t.lost), (1, 2, 1, 3));
    assert_eq!(t.incomplete, 1, "seq 1 never reached b");
    // Late receipts keep their latency: the fan-out histogram holds all three.
    let fanout = h.merged().summary(HistogramKind::Fanout);
    assert_eq!(fanout.count, 3);
    assert!(fanout.max_us >= 30 * DEADLINE, "{}", fanout.max_us);
    let completion = h.merged().summary(HistogramKind::Completion);
    assert_eq!((completion.count, completion.max_us), (1, DEADLINE + 1));
}

#[test]
fn a_member_cut_off_is_owed_until_it_is_back() {
    let mut h = Harness::new(2, 8);
    let first = h.join(0, 0);
    let other = h.join(1, 0);
    for (seq, at) in [(0, 1000), (1, 3500), (2, 6000), (3, 9000)] {
        h.room.on_send(1, seq, at);
        h.receive(other, 1, seq, at, at + 10);
    }
    h.receive(first, 1, 0, 1000, 1010);
    h.cut_off(first, 3000);
    // Back at 7000: seq 1 (3500) and seq 2 (6000) fell in the gap and are still owed.
    let back = h.join(0, 7000);
    h.receive(back, 1, 2, 6000, 7100); // the server sent it late: late, not extra
    h.receive(back, 1, 3, 9000, 9010);
    let t = h.finalize(END);
    assert_eq!(t.expected, 8);
    assert_eq!((t.delivered, t.late, t.never, t.extra), (6, 1, 1, 0));
    // Cut off and never back: owed every later message.
    let mut h = Harness::new(1, 4);
    let s = h.join(0, 0);
    h.room.on_send(0, 0, 5000);
    h.cut_off(s, 1000);
    let t = h.finalize(END);
    assert_eq!((t.expected, t.never), (1, 1));
}

#[test]
fn a_second_session_of_a_stay_getting_the_same_message_is_extra() {
    let mut h = Harness::new(1, 4);
    let first = h.join(0, 0);
    h.room.on_send(0, 0, 1000);
    h.receive(first, 0, 0, 1000, 1100);
    h.cut_off(first, 1200);
    let back = h.join(0, 1300);
    h.receive(back, 0, 0, 1000, 1400);
    let t = h.finalize(END);
    assert_eq!((t.expected, t.delivered, t.extra, t.lost), (1, 1, 1, 0));
}

#[test]
fn every_first_receipt_is_on_time_late_extra_or_untracked() {
    let mut h = Harness::new(1, 2);
    let s = h.join(0, 500);
    h.room.on_send(0, 0, 100); // before the join: extra
    h.room.on_send(0, 1, 1000);
    h.receive(s, 0, 0, 100, 600);
    h.receive(s, 0, 1, 1000, 1000 + 2 * DEADLINE);
    h.receive(s, 0, 5, 1000, 1100); // beyond capacity
    let t = h.finalize(END);
    let first_receipts = 3;
    assert_eq!(t.delivered + t.late + t.extra + t.untracked, first_receipts);
    assert_eq!((t.late, t.extra, t.untracked), (1, 1, 1));
}

#[test]
fn beyond_capacity_is_untracked() {
    let mut h = Harness::new(2, 2);
    let s = h.join(0, 0);
    for seq in 0..5 {
        h.room.on_send(0, seq, 1000 + u64::from(seq));
        h.receive(s, 0, seq, 1000 + u64::from(seq), 2000);
    }
    h.receive(s, 7, 0, 1000, 2000);
    h.receive(s, 7, 0, 1000, 2000);
    let t = h.finalize(END);
    assert_eq!(
        (t.expected, t.delivered, t.untracked, t.untracked_sends),
        (2, 2, 4, 3)
    );
    assert_eq!((t.duplicated, t.extra), (1, 0));
    // Untracked messages still have a measured latency.
    assert_eq!(h.merged().summary(HistogramKind::Fanout).count, 6);
}

#[test]
fn a_failed_send_is_owed_to_nobody() {
    let mut h = Harness::new(1, 4);
    let s = h.join(0, 0);
    h.room.on_send(0, 0, 1000);
    h.room.on_send_failed(0, 0);
    h.room.on_send(0, 9, 1000);
    h.room.on_send_failed(0, 9);
    h.receive(s, 0, 0, 1000, 1200);
    let t = h.finalize(END);
    assert_eq!(
        (t.expected, t.extra, t.messages, t.untracked_sends),
        (0, 1, 0, 0)
    );
}

#[test]
fn sessions_without_a_ledger_lose_and_unknown_ledgers_are_extra() {
    let mut h = Harness::new(1, 4);
    h.room.session_joined(0, 0);
    h.room.on_send(0, 0, 1000);
    let mut stray = SessionLedger::for_room(&h.room);
    stray.on_receive(&h.room, 0, 0, 1000, 1100);
    stray.on_receive(&h.room, 0, 0, 1000, 1100);
    h.ledgers.push((SessionId(99), stray));
    let t = h.finalize(END);
    assert_eq!((t.expected, t.delivered, t.lost), (1, 0, 1));
    assert_eq!((t.extra, t.duplicated, t.incomplete), (1, 1, 1));
}

#[test]
fn an_invalid_seq_is_ignored() {
    let mut h = Harness::new(1, 4);
    let s = h.join(0, 0);
    assert_eq!(h.receive(s, 0, u32::MAX, 0, 1), ReceiptKind::Invalid);
    assert_eq!(h.ledgers[s].1.invalid(), 1);
    assert_eq!(h.finalize(END), DeliveryTotals::default());
}

/// One sender's seqs with their own lower-range map, as a session keeps them.
#[derive(Default)]
struct OneSender {
    top: Seqs,
    earlier: Earlier,
}

impl OneSender {
    fn insert(&mut self, seq: u32) -> ReceiptKind {
        let earlier = EarlierOf {
            map: &mut self.earlier,
            sender: 3,
        };
        self.top.insert(seq, earlier)
    }

    fn ranges(&self) -> Vec<(u32, u32)> {
        self.top.ranges(self.earlier.get(&3)).collect()
    }
}

#[test]
fn receiving_in_order_does_not_allocate_per_sender() {
    assert!(std::mem::size_of::<Seqs>() <= 8);
    assert!(std::mem::size_of::<Slot>() <= 16);
    let mut seqs = OneSender::default();
    for seq in 0..1000 {
        assert_eq!(seqs.insert(seq), ReceiptKind::First);
    }
    assert!(seqs.earlier.is_empty());
    // A loss moves the old range aside once; in-order receipts then stay inline.
    seqs.insert(1001);
    seqs.insert(1002);
    assert_eq!(seqs.ranges(), vec![(0, 1000), (1001, 1003)]);
    // Filling the gap merges everything back inline and frees the vector.
    assert_eq!(seqs.insert(1000), ReceiptKind::Reordered);
    assert!(seqs.earlier.is_empty());
    assert_eq!(seqs.ranges(), vec![(0, 1003)]);
}

/// Gaps of one sender never touch another sender's ranges in the shared map.
#[test]
fn earlier_ranges_stay_with_their_sender() {
    let mut h = Harness::new(3, 10);
    let s = h.join(0, 0);
    for (sender, seq) in [(0, 0), (1, 0), (0, 2), (1, 3), (2, 5), (1, 1), (0, 1)] {
        h.room.on_send(sender, seq, 1);
        h.receive(s, sender, seq, 1, 2);
    }
    let ledger = &h.ledgers[s].1;
    assert_eq!(ledger.ranges(0).map(Iterator::collect), Some(vec![(0, 3)]));
    assert_eq!(
        ledger.ranges(1).map(Iterator::collect),
        Some(vec![(0, 2), (3, 4)])
    );
    assert_eq!(ledger.ranges(2).map(Iterator::collect), Some(vec![(5, 6)]));
    assert_eq!(ledger.unique(), 7);
    assert_eq!(ledger.earlier.len(), 1, "only sender 1 still has a gap");
}

/// Random receipt orders against a `BTreeSet`: same kinds, same set, ranges kept canonical.
#[test]
fn seqs_match_a_set() {
    let mut rng = SmallRng::seed_from_u64(7);
    for _ in 0..500 {
        let mut seqs = OneSender::default();
        let mut set = BTreeSet::new();
        let span = rng.random_range(1..60u32);
        for _ in 0..rng.random_range(0..120) {
            let seq = if rng.random_bool(0.5) {
                seqs.top
                    .next
                    .saturating_add(rng.random_range(0..3))
                    .min(span)
            } else {
                rng.random_range(0..=span)
            };
            let expected = if set.contains(&seq) {
                ReceiptKind::Duplicate
            } else if set.last().is_some_and(|&max| max > seq) {
                ReceiptKind::Reordered
            } else {
                ReceiptKind::First
            };
            set.insert(seq);
            assert_eq!(seqs.insert(seq), expected);
            assert_canonical(&seqs);
            let from_ranges: BTreeSet<u32> =
                seqs.ranges().into_iter().flat_map(|(a, b)| a..b).collect();
            assert_eq!(from_ranges, set);
        }
    }
}

fn assert_canonical(seqs: &OneSender) {
    let ranges = seqs.ranges();
    for w in ranges.windows(2) {
        assert!(w[0].0 < w[0].1 && w[0].1 < w[1].0, "{ranges:?}");
    }
    assert!(seqs.earlier.values().all(|e| !e.is_empty()));
}

// ---------------------------------------------------------------------------------------------
// Randomized runs against a naive model.

/// (sender, seq, intended, now) of one receipt.
type Receipt = (u32, u32, u64, u64);

/// (member, join_done, left and how) of one session.
type PlannedSession = (u32, u64, Option<(u64, Leave)>);

/// One generated run: the room's plan and every session's receipts, in arrival order.
struct Plan {
    senders: u32,
    capacity: u32,
    deadline: u64,
    end: u64,
    /// Intended times whose losses `lost_between` must count.
    window: (u64, u64),
    sessions: Vec<PlannedSession>,
    /// Per sender: (seq, intended, kept) — `kept` false for a failed send.
    sends: Vec<Vec<(u32, u64, bool)>>,
    /// Per ledger: (session index or None for a stray ledger, receipts (sender, seq, intended, now)).
    ledgers: Vec<(Option<usize>, Vec<Receipt>)>,
}

fn plan(rng: &mut SmallRng) -> Plan {
    let senders = rng.random_range(1..=4);
    let capacity = rng.random_range(1..=12);
    let end = 200;
    let sessions: Vec<_> = (0..rng.random_range(1..=6))
        .map(|_| {
            let join = rng.random_range(0..120);
            let how = if rng.random_bool(0.5) {
                Leave::Planned
            } else {
                Leave::CutOff
            };
            let left = rng
                .random_bool(0.5)
                .then(|| (join + rng.random_range(0..150), how));
            (rng.random_range(0..senders), join, left)
        })
        .collect();
    let monotonic = rng.random_bool(0.8);
    let sends = (0..senders)
        .map(|_| {
            let mut t = 0;
            let mut out = Vec::new();
            for seq in 0..rng.random_range(0..capacity + 4) {
                if rng.random_bool(0.1) {
                    continue; // never sent
                }
                t = if monotonic {
                    t + rng.random_range(0..25)
                } else {
                    rng.random_range(0..end)
                };
                out.push((seq, t, rng.random_bool(0.9)));
            }
            out
        })
        .collect::<Vec<_>>();
    let mut ledgers = Vec::new();
    for s in 0..sessions.len() {
        if rng.random_bool(0.9) {
            ledgers.push((Some(s), receipts(rng, senders, &sends)));
        }
    }
    if rng.random_bool(0.2) {
        ledgers.push((None, receipts(rng, senders, &sends)));
    }
    Plan {
        senders,
        capacity,
        deadline: rng.random_range(0..40),
        end,
        window: (rng.random_range(0..end), rng.random_range(0..end)),
        sessions,
        sends,
        ledgers,
    }
}

fn receipts(rng: &mut SmallRng, senders: u32, sends: &[Vec<(u32, u64, bool)>]) -> Vec<Receipt> {
    let mut out = Vec::new();
    for (sender, list) in sends.iter().enumerate() {
        for &(seq, intended, _) in list {
            let copies = [0, 1, 1, 1, 1, 2][rng.random_range(0..6)];
            for _ in 0..copies {
                out.push((sender as u32, seq, intended, intended + spread(rng)));
            }
        }
    }
    if rng.random_bool(0.2) {
        out.push((
            senders + rng.random_range(0..2),
            rng.random_range(0..3),
            5,
            9,
        )); // stranger
    }
    if rng.random_bool(0.1) {
        out.push((0, 1000, 5, 9)); // never sent, beyond capacity
    }
    if rng.random_bool(0.5) {
        out.shuffle(rng);
    }
    out
}

/// The naive model's outcome: totals and the values each metric should have recorded.
struct Expected {
    totals: DeliveryTotals,
    lost_in_window: u64,
    fanout: Vec<u64>,
    fanout_size: Vec<u64>,
    completion: Vec<u64>,
}

/// The stays of the plan's sessions, by the definitions: a member's sessions in join order,
/// one stay continuing past every session not ended by a planned leave; each stay's owed window.
fn naive_stays(p: &Plan) -> (Vec<usize>, Vec<(u64, u64)>) {
    let mut order: Vec<usize> = (0..p.sessions.len()).collect();
    order.sort_by_key(|&i| (p.sessions[i].0, p.sessions[i].1, i));
    let mut stay_of = vec![0; p.sessions.len()];
    let mut windows: Vec<(u64, u64)> = Vec::new();
    let mut previous: Option<usize> = None;
    for i in order {
        let (member, join, left) = p.sessions[i];
        let continues = previous.is_some_and(|prev| {
            p.sessions[prev].0 == member && !matches!(p.sessions[prev].2, Some((_, Leave::Planned)))
        });
        if !continues {
            windows.push((join, u64::MAX));
        }
        stay_of[i] = windows.len() - 1;
        if let Some((at, Leave::Planned)) = left
            && at < p.end
        {
            let last = windows.last_mut().expect("a stay");
            *last = match at.checked_sub(p.deadline) {
                Some(to) => (last.0, to),
                None => (1, 0),
            };
        }
        previous = Some(i);
    }
    (stay_of, windows)
}

fn naive(p: &Plan) -> Expected {
    let sent: HashMap<(u32, u32), u64> = p
        .sends
        .iter()
        .enumerate()
        .flat_map(|(s, l)| {
            l.iter()
                .map(move |&(seq, t, kept)| ((s as u32, seq), t, kept))
        })
        .filter(|&((_, seq), _, kept)| kept && seq < p.capacity)
        .map(|(k, t, _)| (k, t))
        .collect();
    let (stay_of, windows) = naive_stays(p);
    let owed = |stay: usize, key: &(u32, u32)| -> bool {
        let (from, to) = windows[stay];
        sent.get(key).is_some_and(|&t| from <= t && t <= to)
    };
    let mut e = Expected {
        totals: DeliveryTotals::default(),
        lost_in_window: 0,
        fanout: Vec::new(),
        fanout_size: Vec::new(),
        completion: Vec::new(),
    };
    for list in &p.sends {
        e.totals.untracked_sends += list
            .iter()
            .filter(|&&(seq, _, kept)| kept && seq >= p.capacity)
            .count() as u64;
    }
    // (stay, message) received at all / on time, by any session of the stay.
    let mut got_any: HashSet<(usize, (u32, u32))> = HashSet::new();
    let mut got_on_time: HashSet<(usize, (u32, u32))> = HashSet::new();
    let mut tracked_first_receipts = 0;
    let mut max_latency: HashMap<(u32, u32), u64> = HashMap::new();
    let mut used_sessions = HashSet::new();
    for (session, receipts) in &p.ledgers {
        let session = session.filter(|s| used_sessions.insert(*s));
        let mut seen = HashSet::new();
        let mut highest: HashMap<u32, u32> = HashMap::new();
        for &(sender, seq, intended, now) in receipts {
            if !seen.insert((sender, seq)) {
                e.totals.duplicated += 1;
                continue;
            }
            if highest.get(&sender).is_some_and(|&h| h > seq) {
                e.totals.reordered += 1;
            }
            let h = highest.entry(sender).or_insert(seq);
            *h = (*h).max(seq);
            let latency = now - intended;
            e.fanout.push(latency);
            let tracked = sender < p.senders && seq < p.capacity;
            if tracked {
                let m = max_latency.entry((sender, seq)).or_insert(0);
                *m = (*m).max(latency);
            }
            match session {
                None => e.totals.extra += 1,
                Some(_) if !tracked => e.totals.untracked += 1,
                Some(s) => {
                    tracked_first_receipts += 1;
                    let stay = stay_of[s];
                    if owed(stay, &(sender, seq)) {
                        got_any.insert((stay, (sender, seq)));
                        if latency <= p.deadline {
                            got_on_time.insert((stay, (sender, seq)));
                        }
                    }
                }
            }
        }
    }
    let mut keys: Vec<_> = sent.keys().copied().collect();
    keys.sort();
    for key in keys {
        let owed_to: Vec<usize> = (0..windows.len()).filter(|&s| owed(s, &key)).collect();
        let got = owed_to
            .iter()
            .filter(|&&s| got_any.contains(&(s, key)))
            .count() as u64;
        let on_time = owed_to
            .iter()
            .filter(|&&s| got_on_time.contains(&(s, key)))
            .count() as u64;
        let owed_to = owed_to.len() as u64;
        e.totals.messages += 1;
        e.totals.expected += owed_to;
        e.totals.delivered += on_time;
        e.totals.late += got - on_time;
        e.fanout_size.push(owed_to);
        if (p.window.0..=p.window.1).contains(&sent[&key]) {
            e.lost_in_window += owed_to - on_time;
        }
        if got < owed_to {
            e.totals.incomplete += 1;
        } else if owed_to > 0 {
            e.completion.push(max_latency[&key]);
        }
    }
    e.totals.extra += tracked_first_receipts - got_any.len() as u64;
    e.totals.never = e.totals.expected - e.totals.delivered - e.totals.late;
    e.totals.lost = e.totals.late + e.totals.never;
    e
}

fn run(p: &Plan) -> (DeliveryTotals, Histograms, u64) {
    let h = build(p);
    let (from, to) = p.window;
    let lost_in_window = lost_between(&h.room, &h.ledgers, p.end, from, to);
    (h.finalize(p.end), h.merged(), lost_in_window)
}

/// The room and ledgers of a plan, before any settling.
fn build(p: &Plan) -> Harness {
    let mut h = Harness::with_deadline(p.senders, p.capacity, p.deadline);
    let ids: Vec<SessionId> = p
        .sessions
        .iter()
        .map(|&(member, join, left)| {
            let id = h.room.session_joined(member, join);
            if let Some((at, how)) = left {
                h.room.session_left(id, at, how);
            }
            id
        })
        .collect();
    for (sender, list) in p.sends.iter().enumerate() {
        for &(seq, t, kept) in list {
            h.room.on_send(sender as u32, seq, t);
            if !kept {
                h.room.on_send_failed(sender as u32, seq);
            }
        }
    }
    for (session, receipts) in &p.ledgers {
        let mut ledger = SessionLedger::for_room(&h.room);
        for &(sender, seq, intended, now) in receipts {
            ledger.on_receive(&h.room, sender, seq, intended, now);
        }
        let id = session.map_or(SessionId(1000), |s| ids[s]);
        h.ledgers.push((id, ledger));
    }
    h
}

#[test]
fn losses_by_second_are_lost_between_over_each_second_and_sum_to_lost() {
    let mut intervals_with_losses = 0;
    for seed in 0..600 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let p = plan(&mut rng);
        let h = build(&p);
        // "Seconds" of 20 µs from 5 µs: the plan's times span 0..200.
        let (start, width) = (5, 20);
        let mut losses = LostBySecond::with_width(start, width);
        let totals = finalize_counting_losses(&h.room, &h.ledgers, p.end, &mut losses).totals;
        assert_eq!(losses.total(), totals.lost, "seed {seed}");
        assert_eq!(
            losses.late().iter().sum::<u64>(),
            totals.late,
            "seed {seed}"
        );
        for i in 0..20u64 {
            let (from, to) = (start + i * width, start + (i + 1) * width - 1);
            // Messages intended before the start count in the first interval.
            let from = if i == 0 { 0 } else { from };
            let want = lost_between(&h.room, &h.ledgers, p.end, from, to);
            let got = losses.lost().get(i as usize).copied().unwrap_or(0);
            assert_eq!(got, want, "seed {seed}, interval {i}");
            intervals_with_losses += u64::from(got > 0);
        }
        let last = start + 20 * width;
        assert_eq!(
            lost_between(&h.room, &h.ledgers, p.end, last, u64::MAX),
            0,
            "seed {seed}: the plan's times end before {last}"
        );
    }
    assert!(intervals_with_losses > 100, "{intervals_with_losses}");
}

fn histogram_of(values: &[u64]) -> Histogram<u64> {
    let mut hist = new_histogram(SIGFIG);
    for &v in values {
        hist.saturating_record(v);
    }
    hist
}

#[test]
fn randomized_runs_match_the_naive_model() {
    let mut seen = DeliveryTotals::default();
    let mut windows_with_losses = 0;
    for seed in 0..600 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let p = plan(&mut rng);
        let want = naive(&p);
        let (totals, hists, lost_in_window) = run(&p);
        assert_eq!(totals, want.totals, "seed {seed}");
        assert_eq!(lost_in_window, want.lost_in_window, "seed {seed}");
        windows_with_losses += u64::from(lost_in_window > 0);
        seen.add(&totals);
        for (metric, values) in [
            (HistogramKind::Fanout, &want.fanout),
            (HistogramKind::FanoutSize, &want.fanout_size),
            (HistogramKind::Completion, &want.completion),
        ] {
            assert_eq!(
                hists.histogram(metric),
                &histogram_of(values),
                "seed {seed}, {metric:?}"
            );
        }
    }
    // The generator must reach every outcome, or the comparison proves little.
    assert!(windows_with_losses > 20, "{windows_with_losses}");
    let DeliveryTotals {
        expected,
        delivered,
        late,
        never,
        lost,
        duplicated,
        reordered,
        extra,
        untracked,
        untracked_sends,
        messages,
        incomplete,
    } = seen;
    for (name, n) in [
        ("expected", expected),
        ("delivered", delivered),
        ("late", late),
        ("never", never),
        ("lost", lost),
        ("duplicated", duplicated),
        ("reordered", reordered),
        ("extra", extra),
        ("untracked", untracked),
        ("untracked_sends", untracked_sends),
        ("messages", messages),
        ("incomplete", incomplete),
    ] {
        assert!(n > 20, "{name}: {n}");
    }
}

/// A receipt's latency: mostly near the plans' deadlines (0..40), sometimes far past them.
fn spread(rng: &mut SmallRng) -> u64 {
    let most = if rng.random_bool(0.3) { 500 } else { 40 };
    rng.random_range(0..most)
}
