//! Proves the per-message path allocates nothing once warm: parse the packet, decode the
//! probe, update the session's ledger, the room's slot, the histograms and the timeline.
//!
//! Counting happens in a global allocator wrapper (test builds only) with a per-thread
//! counter, so tests running in parallel on other threads do not disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use super::histograms::Recorder;
use super::ledger::{ReceiptKind, RoomLedger, SessionLedger};
use super::probe::{decode_probe, encode_probe, parse_message_packet};
use super::timeline::Timeline;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn receiving_a_message_allocates_nothing_once_warm() {
    const START: u64 = 1_000_000_000;
    let recorder = Arc::new(Recorder::new());
    let room = RoomLedger::new(4, 10_000, u64::MAX, Arc::clone(&recorder));
    let timeline = Timeline::new(START, 10);
    let mut session = SessionLedger::for_room(&room);
    let mut text = String::with_capacity(256);
    let mut packet = String::with_capacity(512);
    // Message `n` is sender `n % 4`'s message `n / 4`: four senders, each in order.
    let mut receive = |n: u32, now: u64| {
        let intended = now - 700;
        let (sender, seq) = (n % 4, n / 4);
        room.on_send(sender, seq, intended);
        encode_probe(&mut text, sender, seq, intended, 120);
        packet.clear();
        packet.push_str(
            r#"42["message",{"event":"broadcast_say","data":{"username":"m000001","text":""#,
        );
        packet.push_str(&text);
        packet.push_str(r#""}}]"#);
        let message = parse_message_packet(&packet).expect("a say");
        let probe = message
            .text
            .as_deref()
            .and_then(decode_probe)
            .expect("a probe");
        let kind = session.on_receive(&room, probe.sender_slot, probe.seq, probe.intended_us, now);
        timeline.receipt(now, probe.intended_us, kind);
        timeline.send(intended);
        kind
    };
    // Warm-up: the thread's histograms and the second's shared histogram are created.
    assert_eq!(receive(0, START + 1000), ReceiptKind::First);
    let before = allocations();
    for n in 1..5000 {
        let kind = receive(n, START + 1000 + u64::from(n));
        assert_eq!(kind, ReceiptKind::First);
    }
    assert_eq!(
        allocations() - before,
        0,
        "allocations on the per-message path"
    );
    assert_eq!(
        recorder
            .merged()
            .histogram(super::histograms::HistogramKind::Fanout)
            .len(),
        5000
    );
}
