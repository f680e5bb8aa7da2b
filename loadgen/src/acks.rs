//! The acknowledgements one session waits for: a profile with `say.ack` asks the app to
//! acknowledge every message, and the round trip is measured as its own latency (`ack`).
//!
//! It exists so that no acknowledgement is lost without a count: the sending side notes each id
//! before the write (so an answer cannot outrun the note), the receiving side takes it back when
//! the answer comes, and what is still waiting when the session ends is settled by the same rule
//! the ledger applies to messages: missing, unless the member left on purpose within a deadline
//! of the message's intended send time (then it was never owed an answer: `open_at_leave`).

use std::collections::VecDeque;
use std::sync::Mutex;

/// One session's acknowledgements in flight: `(ack id, intended send time µs)`, oldest first
/// (answers come mostly in order, so the search is short).
#[derive(Debug, Default)]
pub struct AckBook {
    waiting: Mutex<VecDeque<(u64, u64)>>,
}

/// What was still waiting when a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unanswered {
    /// Due: the session lasted a deadline past the message's intended send time, or was cut off.
    pub missing: u64,
    /// Not due: the member left on purpose within a deadline of the intended send time.
    pub open_at_leave: u64,
}

impl AckBook {
    fn waiting(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, u64)>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes that the message intended at `intended_us` is about to go out asking for `id`.
    pub fn expect(&self, id: u64, intended_us: u64) {
        self.waiting().push_back((id, intended_us));
    }

    /// Forgets `id`: its write failed, nothing will answer it.
    pub fn forget(&self, id: u64) {
        self.answered(id);
    }

    /// Takes `id` back when its answer came: the message's intended send time, or `None` for
    /// an id nobody waits for (unknown, or answered already).
    pub fn answered(&self, id: u64) -> Option<u64> {
        let mut waiting = self.waiting();
        let at = waiting.iter().position(|&(waited, _)| waited == id)?;
        waiting.remove(at).map(|(_, intended)| intended)
    }

    /// Settles what is still waiting when the session ends at `left_us`: `planned` when the
    /// member left on purpose (then answers to messages intended within `deadline_us` before
    /// it were not due), else it was cut off and every one is missing.
    pub fn settle(&self, left_us: u64, planned: bool, deadline_us: u64) -> Unanswered {
        let mut out = Unanswered::default();
        for (_, intended) in self.waiting().drain(..) {
            if planned && intended.saturating_add(deadline_us) > left_us {
                out.open_at_leave += 1;
            } else {
                out.missing += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_matched_by_id_once_and_the_rest_settled_like_the_ledger() {
        let book = AckBook::default();
        for (id, intended) in [(0, 1_000), (1, 2_000), (2, 3_000), (3, 9_000)] {
            book.expect(id, intended);
        }
        assert_eq!(book.answered(1), Some(2_000), "out of order");
        assert_eq!(book.answered(1), None, "answered already");
        assert_eq!(book.answered(7), None, "never asked");
        book.forget(2);
        // Left on purpose at 10 000 with a 5 000 deadline: 9 000 was not due, 1 000 was.
        assert_eq!(
            book.settle(10_000, true, 5_000),
            Unanswered {
                missing: 1,
                open_at_leave: 1
            }
        );
        assert_eq!(book.settle(10_000, true, 5_000), Unanswered::default());
        book.expect(4, 9_500);
        assert_eq!(
            book.settle(10_000, false, 5_000),
            Unanswered {
                missing: 1,
                open_at_leave: 0
            },
            "cut off: everything due"
        );
    }
}
