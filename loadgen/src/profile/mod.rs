//! Protocol profiles: how a member talks to a chat app, the `[protocol]` table of a scenario.
//!
//! This exists so roomstorm measures any Socket.IO chat, not only the original design's: where
//! the app listens (path, namespace), what a member sends to connect (query, headers, the
//! CONNECT `auth` object), to join a room and to say something, and where the probe comes back
//! in what the app broadcasts. The profile changes only where the probe's text travels; the
//! probe's format and the ledger's definitions stay those of `measure` (docs/measurement.md).
//!
//! The original design's protocol is [`Profile::roomstorm`], the default: members receive it on
//! the fast path of `measure::probe` (byte comparisons, no JSON parser), as they always did. Any
//! other profile is read by [`Profile::hear`] through [`path::JsonPath`], which walks each event
//! once and builds nothing but the probe's text. Modules: `model` (the profile's parts),
//! `template` (placeholders in texts and payloads), `path` (where a value sits in a payload),
//! `listen` (what a received event is). Calls go one way: listen → model → path, template.

pub mod listen;
mod model;
pub mod path;
pub mod template;

pub use listen::{Heard, Unmatched, hear};
pub use model::{
    Connect, Join, JoinDone, ProbeMatch, Profile, RESERVED_EVENTS, ROOMSTORM, Receive, Say,
};
pub use path::JsonPath;
pub use template::{ProbeAllowed, Template, ValueTemplate, Vars};
