//! Measurement: probe texts, per-thread latency histograms, the delivery ledger, the timeline.
//!
//! Kept apart from the runtime so that what is measured, and how exactly, can be read and
//! tested on its own (definitions: `docs/measurement.md`). Per received message the runtime
//! calls, in order and without allocating once warm:
//!
//! 1. [`probe::parse_message_packet`] on the raw packet, then [`probe::decode_probe`] on a
//!    `broadcast_say` text;
//! 2. [`ledger::SessionLedger::on_receive`] (records the fan-out latency, returns the kind);
//! 3. [`timeline::Timeline::receipt`] with that kind.
//!
//! Per send: [`ledger::RoomLedger::on_send`] before the write (and
//! [`ledger::RoomLedger::on_send_failed`] if it fails), [`timeline::Timeline::send`]. At the
//! end: [`ledger::finalize`] per room, [`histograms::Recorder::merged`], [`timeline::Timeline::stats`].

pub mod histograms;
pub mod ledger;
mod per_thread;
pub mod probe;
pub mod timeline;

#[cfg(test)]
mod hot_path_tests;
