//! What every simulated member of one process shares during a run: the plan, the rooms'
//! ledgers, counters and the timeline. Built once before the attack, read-mostly after.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::measure::histograms::{GroupRecorder, Recorder};
use crate::measure::ledger::{RoomLedger, SessionId, SessionLedger};
use crate::measure::timeline::Timeline;
use crate::pace::{Planned, planned};
use crate::profile::{Profile, Unmatched};
use crate::results::{AckCounts, ProtocolResult};
use crate::scenario::{Plan, Scenario};

/// Process-wide event counters while the run lasts (relaxed atomics: bumped on hot paths, read
/// by the progress line); written into results.json as `results::Counters`.
#[derive(Default)]
pub struct LiveCounters {
    pub connects: AtomicU64,
    pub connect_errors: AtomicU64,
    pub joins: AtomicU64,
    pub join_timeouts: AtomicU64,
    pub sends: AtomicU64,
    pub send_failures: AtomicU64,
    /// Every room message received: an event of the profile's `receive.events` (the built-in
    /// profile's `message`, joins and quits included; compared with the workers' own
    /// `delivered` counters).
    pub received_messages: AtomicU64,
    pub server_errors: AtomicU64,
    /// `say`s the server refused without sending (`busy`, `unavailable`); taken back from
    /// `sends`.
    pub sends_refused: AtomicU64,
    /// `say`s the server could not confirm (`outcome_unknown`): they may still arrive.
    pub outcome_unknown: AtomicU64,
    pub disconnects: AtomicU64,
    /// Planned leaves whose close did not finish in time (settled with what was received).
    pub close_timeouts: AtomicU64,
    pub reconnects: AtomicU64,
    pub heartbeats: AtomicU64,
    /// Members currently joined.
    pub members: AtomicU64,
    /// Received events the profile could not place, by [`Unmatched`] reason.
    pub unmatched: [AtomicU64; Unmatched::ALL.len()],
    /// What became of the acknowledgements of says (profiles with `say.ack`).
    pub acks: AckCounters,
}

impl LiveCounters {
    /// What results.json says of the profile: its name, the events it could not place, and
    /// (with `say.ack`) the acknowledgements.
    pub fn protocol_result(&self, profile: &Profile) -> ProtocolResult {
        let unmatched = Unmatched::ALL
            .into_iter()
            .map(|reason| (reason.name(), self.unmatched[reason.index()].load(Relaxed)))
            .filter(|&(_, n)| n > 0)
            .map(|(name, n)| (name.to_owned(), n))
            .collect();
        let a = &self.acks;
        let acks = profile.say.ack.then(|| AckCounts {
            requested: a.requested.load(Relaxed),
            received: a.received.load(Relaxed),
            refused: a.refused.load(Relaxed),
            missing: a.missing.load(Relaxed),
            open_at_leave: a.open_at_leave.load(Relaxed),
        });
        ProtocolResult {
            profile: profile.name.clone(),
            unmatched,
            acks,
        }
    }
}

/// One member group's counters while the run lasts (`results::GroupResult`).
#[derive(Default)]
pub struct GroupLive {
    /// Its members' messages written (refused ones taken back, as `LiveCounters::sends`).
    pub sends: AtomicU64,
    /// Signals (typing, presence) written, and signal writes that failed.
    pub signals: AtomicU64,
    pub signal_failures: AtomicU64,
}

/// The acknowledgement counts while the run lasts (see `results::AckCounts`).
#[derive(Default)]
pub struct AckCounters {
    pub requested: AtomicU64,
    pub received: AtomicU64,
    pub refused: AtomicU64,
    pub missing: AtomicU64,
    pub open_at_leave: AtomicU64,
}

/// One room of this process: its id, its shared ledger, and the ledgers of sessions that
/// ended (handed over by their receiving tasks for the final accounting).
pub struct RoomState {
    pub id: String,
    pub ledger: RoomLedger,
    finished: Mutex<Vec<(SessionId, SessionLedger)>>,
}

impl RoomState {
    pub fn finish(&self, id: SessionId, ledger: SessionLedger) {
        self.finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, ledger));
    }

    pub fn take_finished(&self) -> Vec<(SessionId, SessionLedger)> {
        std::mem::take(&mut *self.finished.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

pub struct RunContext {
    pub scenario: Scenario,
    pub plan: Plan,
    pub target_url: String,
    pub rooms: Vec<Arc<RoomState>>,
    pub counters: LiveCounters,
    /// The run's latency and fan-out-size histograms (connect, join, fan-out...).
    pub recorder: Arc<Recorder>,
    /// Each member group's counters (`[[population.groups]]`, by index; empty without).
    pub groups: Vec<GroupLive>,
    /// Each member group's fan-out latency, as its members received.
    pub group_fanout: GroupRecorder,
    pub timeline: Timeline,
    pub connect_timeout: Duration,
    pub join_timeout: Duration,
    /// When the attack starts (run clock, µs).
    pub start_us: u64,
    /// Members send from here...
    pub send_from_us: u64,
    /// ...until here; the drain after it lets the last messages arrive before members leave.
    pub send_until_us: u64,
    /// What the members' schedules call for in the send window (the offered load), counted
    /// from the plan before the run: the schedules do not depend on what happens in it.
    pub planned: Planned,
}

impl RunContext {
    /// Builds rooms and ledgers for `plan`, sized for the messages it will send.
    pub fn new(
        scenario: Scenario,
        plan: Plan,
        target_url: String,
        start_us: u64,
        timing: RunTiming,
    ) -> Arc<Self> {
        let (send_from_us, send_until_us) = timing.send_window(start_us);
        let planned = planned(
            &plan.members,
            &scenario.traffic,
            start_us,
            (send_from_us, send_until_us),
        );
        let recorder = Arc::new(Recorder::new());
        let groups = if scenario.population.groups.is_empty() {
            Vec::new()
        } else {
            groups_by_slot(&plan)
        };
        let rooms = plan
            .rooms
            .iter()
            .map(|room| {
                let capacity = messages_per_sender(&plan, &planned, room.index);
                let mut ledger = RoomLedger::new(
                    room.members.len() as u32,
                    capacity,
                    scenario.traffic.deadline.as_micros() as u64,
                    Arc::clone(&recorder),
                );
                if let Some(groups) = groups.get(room.index as usize) {
                    ledger = ledger.with_groups(groups.clone());
                }
                Arc::new(RoomState {
                    id: room.id.clone(),
                    ledger: if scenario.protocol.receive.echo {
                        ledger
                    } else {
                        ledger.without_echo()
                    },
                    finished: Mutex::new(Vec::new()),
                })
            })
            .collect();
        let seconds = (timing.total.as_secs() + 30) as usize;
        Arc::new(RunContext {
            timeline: Timeline::new(start_us, seconds),
            rooms,
            target_url,
            counters: LiveCounters::default(),
            recorder,
            groups: scenario
                .population
                .groups
                .iter()
                .map(|_| GroupLive::default())
                .collect(),
            group_fanout: GroupRecorder::default(),
            connect_timeout: Duration::from_secs(10),
            join_timeout: Duration::from_secs(10),
            start_us,
            send_from_us,
            send_until_us,
            planned,
            scenario,
            plan,
        })
    }
}

/// The phases of a run, derived from the scenario.
#[derive(Debug, Clone, Copy)]
pub struct RunTiming {
    /// Members joining.
    pub ramp_up: Duration,
    /// Members sending (the scenario's `duration`).
    pub send: Duration,
    /// Waiting for the last messages (the scenario's deadline).
    pub drain: Duration,
    /// Members leaving.
    pub ramp_down: Duration,
    pub total: Duration,
}

impl RunTiming {
    /// When members send, on the run clock, for a run started at `start_us`: from the end of
    /// the ramp-up until the steady phase ends. The same for every part of a split run.
    pub fn send_window(&self, start_us: u64) -> (u64, u64) {
        let from = start_us + self.ramp_up.as_micros() as u64;
        (from, from + self.send.as_micros() as u64)
    }

    /// The end of the drain: a deadline (rounded up to whole seconds) after the last intended
    /// send, so every message sent is past its deadline or received by then. Members still
    /// there are owed every message; leaving after it is the end of the run, not a leave.
    pub fn drain_end(&self, start_us: u64) -> u64 {
        self.send_window(start_us).1 + self.drain.as_micros() as u64
    }
}

/// The group of each member slot, by room (for scenarios with groups, where every member has
/// one). From the members this process plans (a part of a split run plans only its rooms').
fn groups_by_slot(plan: &Plan) -> Vec<Vec<u32>> {
    let mut by_room: Vec<Vec<u32>> = plan
        .rooms
        .iter()
        .map(|room| vec![0; room.members.len()])
        .collect();
    for member in &plan.members {
        if let Some(slot) = by_room
            .get_mut(member.room as usize)
            .and_then(|room| room.get_mut(member.slot as usize))
        {
            *slot = member.group.unwrap_or(0);
        }
    }
    by_room
}

/// Most messages one sender of the room can send: sizes the room ledger's slots. Exact: a
/// member's seqs count its intended send times in the window, and nothing is sent past them.
fn messages_per_sender(plan: &Plan, planned: &Planned, room: u32) -> u32 {
    plan.members
        .iter()
        .zip(&planned.per_member)
        .filter(|(m, _)| m.room == room)
        .map(|(_, &n)| n)
        .max()
        .unwrap_or(0)
}
