//! Worker counters, exported as Prometheus text on `/metrics` and as JSON on `/stats`.
//!
//! Plain atomics: they are bumped on the hot path (per message, per delivery), so no locks and
//! no allocation; rendering walks them once per scrape.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

use roomstorm_protocol::ErrorCode;
use serde::Serialize;
use socketioxide::socket::DisconnectReason;

/// Why a socket went away: the `reason` label of `chat_disconnects_total`.
///
/// An enum rather than a string so that every reason socketioxide gives has a label (the
/// conversion from its `DisconnectReason` is an exhaustive match) and none can be dropped
/// for a misspelled name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectLabel {
    TransportClose,
    MultiplePolling,
    ParseError,
    TransportError,
    HeartbeatTimeout,
    ClientDisconnect,
    ServerDisconnect,
    ServerClosing,
    /// Closed by this server: its outgoing queue stayed full past `--slow-consumer-grace`.
    SlowConsumer,
    /// Closed by this server: no valid `join` within `--join-deadline`.
    JoinDeadline,
}

impl DisconnectLabel {
    /// Every label, in declaration order (so `label as usize` is its index here).
    pub const ALL: [DisconnectLabel; 10] = [
        Self::TransportClose,
        Self::MultiplePolling,
        Self::ParseError,
        Self::TransportError,
        Self::HeartbeatTimeout,
        Self::ClientDisconnect,
        Self::ServerDisconnect,
        Self::ServerClosing,
        Self::SlowConsumer,
        Self::JoinDeadline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TransportClose => "transport_close",
            Self::MultiplePolling => "multiple_polling",
            Self::ParseError => "parse_error",
            Self::TransportError => "transport_error",
            Self::HeartbeatTimeout => "heartbeat_timeout",
            Self::ClientDisconnect => "client_disconnect",
            Self::ServerDisconnect => "server_disconnect",
            Self::ServerClosing => "server_closing",
            Self::SlowConsumer => "slow_consumer",
            Self::JoinDeadline => "join_deadline",
        }
    }
}

impl From<DisconnectReason> for DisconnectLabel {
    fn from(reason: DisconnectReason) -> Self {
        use DisconnectReason::*;
        match reason {
            TransportClose => Self::TransportClose,
            MultipleHttpPollingError => Self::MultiplePolling,
            PacketParsingError => Self::ParseError,
            TransportError => Self::TransportError,
            HeartbeatTimeout => Self::HeartbeatTimeout,
            ClientNSDisconnect => Self::ClientDisconnect,
            ServerNSDisconnect => Self::ServerDisconnect,
            ClosingServer => Self::ServerClosing,
        }
    }
}

/// Put in a socket's extensions by the code that closes it on purpose, so that its disconnect
/// is counted under this label rather than under the transport's reason (a slow consumer's
/// connection is cut, which socketioxide reports as a transport close).
#[derive(Debug, Clone, Copy)]
pub struct ClosedFor(pub DisconnectLabel);

/// Why a handshake was refused: the `reason` label of `chat_connects_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedLabel {
    /// The Socket.IO handshake had no valid `roomid`.
    BadRoomid,
    /// The worker already holds `--max-connections` sockets.
    MaxConnections,
}

impl RefusedLabel {
    /// Every label, in declaration order (so `label as usize` is its index here).
    pub const ALL: [RefusedLabel; 2] = [Self::BadRoomid, Self::MaxConnections];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRoomid => "bad_roomid",
            Self::MaxConnections => "max_connections",
        }
    }
}

/// Redis operations whose failures are counted separately: the `op` label of
/// `chat_redis_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisOp {
    Publish,
    Subscribe,
    Unsubscribe,
    Ping,
}

impl RedisOp {
    /// Every operation, in declaration order (so `op as usize` is its index here).
    pub const ALL: [RedisOp; 4] = [
        Self::Publish,
        Self::Subscribe,
        Self::Unsubscribe,
        Self::Ping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
            Self::Unsubscribe => "unsubscribe",
            Self::Ping => "ping",
        }
    }
}

/// What became of a message the bus did not publish cleanly: the `outcome` label of
/// `chat_publish_failed_total`. Every such message is counted, with or without a sender to tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishFailure {
    /// Refused at once: the publish queue was full.
    Busy,
    /// Not sent: Redis could not be reached.
    Unavailable,
    /// Handed to Redis, not confirmed: it may have been delivered.
    OutcomeUnknown,
}

impl PublishFailure {
    /// Every outcome, in declaration order (so `outcome as usize` is its index here).
    pub const ALL: [PublishFailure; 3] = [Self::Busy, Self::Unavailable, Self::OutcomeUnknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::Unavailable => "unavailable",
            Self::OutcomeUnknown => "outcome_unknown",
        }
    }
}

#[derive(Default)]
pub struct Metrics {
    pub sockets: AtomicI64,
    pub members: AtomicI64,
    pub rooms: AtomicI64,
    pub subscribed_channels: AtomicI64,
    pub connects_refused: [AtomicU64; RefusedLabel::ALL.len()],
    pub flood_disconnects: AtomicU64,
    /// Requests naming a polling session another client opened, refused (`sessions`).
    pub foreign_session_requests: AtomicU64,
    pub received_join: AtomicU64,
    pub received_say: AtomicU64,
    pub received_other: AtomicU64,
    pub published: AtomicU64,
    pub bus_received: AtomicU64,
    pub bus_malformed: AtomicU64,
    pub delivered: AtomicU64,
    pub delivery_failed_full: AtomicU64,
    pub delivery_failed_closed: AtomicU64,
    pub rejected: [AtomicU64; ErrorCode::ALL.len()],
    pub disconnects: [AtomicU64; DisconnectLabel::ALL.len()],
    pub redis_errors: [AtomicU64; RedisOp::ALL.len()],
    pub redis_up: AtomicBool,
    pub chaos_dropped: AtomicU64,
    pub chaos_duplicated: AtomicU64,
    pub redis_reconnects: AtomicU64,
    /// Messages accepted for publishing whose outcome is not known yet (at most
    /// `--publish-queue`); the bus's own count, not a copy.
    pub publish_queue: AtomicU64,
    /// The most `publish_queue` has ever been.
    pub publish_queue_peak: AtomicU64,
    pub publish_failures: [AtomicU64; PublishFailure::ALL.len()],
    /// Rooms whose channel subscription in Redis may not match this worker's members (a
    /// SUBSCRIBE or UNSUBSCRIBE failed), waiting to be settled.
    pub channels_to_reconcile: AtomicI64,
    /// Cluster bus: channels wanted and subscribed on no master right now (their slot moved or
    /// their master went away), until the bus subscribes them on the slot's owner.
    pub cluster_unplaced: AtomicI64,
    /// Cluster bus: subscriptions a master dropped by itself (`sunsubscribe` pushes: the
    /// channel's slot moved away from it).
    pub cluster_pushed_out: AtomicU64,
    /// Cluster bus: channels subscribed again on their slot's owner after a slot move or a
    /// master's loss.
    pub cluster_resubscribed: AtomicU64,
    /// Cluster bus: `MOVED` replies followed (publishes and subscribes sent on to the slot's
    /// new owner).
    pub cluster_redirects: AtomicU64,
}

/// A point-in-time copy, served as JSON to the cluster master and to tests.
#[derive(Debug, Clone, Serialize, serde::Deserialize, Default)]
pub struct StatsSnapshot {
    pub worker_id: usize,
    pub pid: u32,
    pub sockets: i64,
    pub members: i64,
    pub rooms: i64,
    pub subscribed_channels: i64,
    pub published: u64,
    pub delivered: u64,
    pub delivery_failed: u64,
    pub rejected: u64,
    pub redis_up: bool,
}

impl Metrics {
    pub fn reject(&self, code: ErrorCode) {
        self.rejected[code.index()].fetch_add(1, Relaxed);
    }

    pub fn disconnect(&self, reason: DisconnectReason) {
        self.disconnect_as(DisconnectLabel::from(reason));
    }

    pub fn disconnect_as(&self, label: DisconnectLabel) {
        self.disconnects[label as usize].fetch_add(1, Relaxed);
    }

    pub fn refuse_connect(&self, label: RefusedLabel) {
        self.connects_refused[label as usize].fetch_add(1, Relaxed);
    }

    pub fn publish_failed(&self, outcome: PublishFailure) {
        self.publish_failures[outcome as usize].fetch_add(1, Relaxed);
    }

    pub fn redis_error(&self, op: RedisOp) {
        self.redis_errors[op as usize].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self, worker_id: usize, redis_in_use: bool) -> StatsSnapshot {
        StatsSnapshot {
            worker_id,
            pid: std::process::id(),
            sockets: self.sockets.load(Relaxed),
            members: self.members.load(Relaxed),
            rooms: self.rooms.load(Relaxed),
            subscribed_channels: self.subscribed_channels.load(Relaxed),
            published: self.published.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            delivery_failed: self.delivery_failed_full.load(Relaxed)
                + self.delivery_failed_closed.load(Relaxed),
            rejected: self.rejected.iter().map(|c| c.load(Relaxed)).sum(),
            redis_up: !redis_in_use || self.redis_up.load(Relaxed),
        }
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render_prometheus(&self, worker_id: usize) -> String {
        let mut out = String::with_capacity(4096);
        let w = &mut out;
        let gauges: [(&str, &str, &AtomicI64); 6] = [
            (
                "chat_sockets",
                "Connected Socket.IO sockets.",
                &self.sockets,
            ),
            (
                "chat_members",
                "Sockets that have joined their room.",
                &self.members,
            ),
            (
                "chat_rooms",
                "Rooms with at least one local member.",
                &self.rooms,
            ),
            (
                "chat_subscribed_channels",
                "Redis room channels this worker is subscribed to.",
                &self.subscribed_channels,
            ),
            (
                "chat_channels_to_reconcile",
                "Room channels whose Redis subscription may not match local members (a failed SUBSCRIBE or UNSUBSCRIBE), retried until settled.",
                &self.channels_to_reconcile,
            ),
            (
                "chat_cluster_unplaced_channels",
                "Cluster bus: room channels subscribed on no master right now (their slot moved or their master went away), until re-subscribed on the slot's owner.",
                &self.cluster_unplaced,
            ),
        ];
        for (name, help, value) in gauges {
            metric_header(w, name, help, "gauge");
            let _ = writeln!(
                w,
                "{name}{{worker=\"{worker_id}\"}} {}",
                value.load(Relaxed)
            );
        }
        let counters: [(&str, &str, &AtomicU64); 11] = [
            (
                "chat_flood_disconnects_total",
                "Sockets disconnected for exceeding the rate limit again and again.",
                &self.flood_disconnects,
            ),
            (
                "chat_foreign_session_requests_total",
                "Requests naming a polling session that another client address opened, refused with 403.",
                &self.foreign_session_requests,
            ),
            (
                "chat_published_total",
                "Room messages this worker published to the bus.",
                &self.published,
            ),
            (
                "chat_bus_received_total",
                "Room messages received from the bus subscription.",
                &self.bus_received,
            ),
            (
                "chat_bus_malformed_total",
                "Bus messages dropped because they were not valid JSON.",
                &self.bus_malformed,
            ),
            (
                "chat_delivered_total",
                "Room messages handed to local sockets (one per recipient).",
                &self.delivered,
            ),
            (
                "chat_redis_reconnects_total",
                "Times the Redis connection came back after an outage.",
                &self.redis_reconnects,
            ),
            (
                "chat_received_other_total",
                "Events received with a name the server does not handle.",
                &self.received_other,
            ),
            (
                "chat_cluster_pushed_out_total",
                "Cluster bus: room channel subscriptions a master dropped by itself (the channel's slot moved away from it).",
                &self.cluster_pushed_out,
            ),
            (
                "chat_cluster_resubscribed_total",
                "Cluster bus: room channels subscribed again on their slot's owner after a slot move or the loss of a master.",
                &self.cluster_resubscribed,
            ),
            (
                "chat_cluster_redirects_total",
                "Cluster bus: MOVED replies followed (a publish or subscribe sent on to the slot's new owner).",
                &self.cluster_redirects,
            ),
        ];
        for (name, help, value) in counters {
            metric_header(w, name, help, "counter");
            let _ = writeln!(
                w,
                "{name}{{worker=\"{worker_id}\"}} {}",
                value.load(Relaxed)
            );
        }
        metric_header(
            w,
            "chat_received_total",
            "Client events received, by event.",
            "counter",
        );
        for (event, value) in [("join", &self.received_join), ("say", &self.received_say)] {
            let _ = writeln!(
                w,
                "chat_received_total{{worker=\"{worker_id}\",event=\"{event}\"}} {}",
                value.load(Relaxed)
            );
        }
        metric_header(
            w,
            "chat_delivery_failed_total",
            "Deliveries that could not be queued to a local socket, by reason.",
            "counter",
        );
        for (reason, value) in [
            ("buffer_full", &self.delivery_failed_full),
            ("closed", &self.delivery_failed_closed),
        ] {
            let _ = writeln!(
                w,
                "chat_delivery_failed_total{{worker=\"{worker_id}\",reason=\"{reason}\"}} {}",
                value.load(Relaxed)
            );
        }
        labelled_counters(
            w,
            worker_id,
            "chat_rejected_total",
            "Client requests rejected with an error event, by code.",
            "code",
            ErrorCode::ALL.iter().map(|c| c.as_str()),
            &self.rejected,
        );
        labelled_counters(
            w,
            worker_id,
            "chat_connects_refused_total",
            "Connections refused at the handshake, by reason.",
            "reason",
            RefusedLabel::ALL.iter().map(|label| label.as_str()),
            &self.connects_refused,
        );
        labelled_counters(
            w,
            worker_id,
            "chat_disconnects_total",
            "Sockets disconnected, by reason.",
            "reason",
            DisconnectLabel::ALL.iter().map(|label| label.as_str()),
            &self.disconnects,
        );
        for (name, help, value) in [
            (
                "chat_publish_queue",
                "Room messages accepted for publishing whose outcome is not known yet (at most --publish-queue).",
                &self.publish_queue,
            ),
            (
                "chat_publish_queue_peak",
                "The most room messages ever waiting for their publish outcome at once.",
                &self.publish_queue_peak,
            ),
        ] {
            metric_header(w, name, help, "gauge");
            let _ = writeln!(
                w,
                "{name}{{worker=\"{worker_id}\"}} {}",
                value.load(Relaxed)
            );
        }
        labelled_counters(
            w,
            worker_id,
            "chat_publish_failed_total",
            "Room messages not published cleanly, by outcome: busy (queue full) and unavailable are not sent; outcome_unknown may have been delivered.",
            "outcome",
            PublishFailure::ALL.iter().map(|o| o.as_str()),
            &self.publish_failures,
        );
        labelled_counters(
            w,
            worker_id,
            "chat_redis_errors_total",
            "Failed Redis operations, by operation.",
            "op",
            RedisOp::ALL.iter().map(|op| op.as_str()),
            &self.redis_errors,
        );
        metric_header(
            w,
            "chat_chaos_total",
            "Messages dropped or duplicated on purpose (hidden --chaos-* flags).",
            "counter",
        );
        for (action, value) in [
            ("drop", &self.chaos_dropped),
            ("duplicate", &self.chaos_duplicated),
        ] {
            let _ = writeln!(
                w,
                "chat_chaos_total{{worker=\"{worker_id}\",action=\"{action}\"}} {}",
                value.load(Relaxed)
            );
        }
        metric_header(
            w,
            "chat_redis_up",
            "1 when Redis answers (or is not used).",
            "gauge",
        );
        let _ = writeln!(
            w,
            "chat_redis_up{{worker=\"{worker_id}\"}} {}",
            u8::from(self.redis_up.load(Relaxed))
        );
        out
    }
}

fn metric_header(w: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(w, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn labelled_counters<'a>(
    w: &mut String,
    worker_id: usize,
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = &'a str>,
    counters: &[AtomicU64],
) {
    metric_header(w, name, help, "counter");
    for (value, counter) in values.zip(counters) {
        let _ = writeln!(
            w,
            "{name}{{worker=\"{worker_id}\",{label}=\"{value}\"}} {}",
            counter.load(Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let m = Metrics::default();
        m.reject(ErrorCode::RateLimited);
        m.delivered.fetch_add(7, Relaxed);
        let text = m.render_prometheus(3);
        assert!(text.contains("chat_rejected_total{worker=\"3\",code=\"rate_limited\"} 1"));
        assert!(text.contains("chat_delivered_total{worker=\"3\"} 7"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "no TYPE for {name}"
            );
        }
    }

    #[test]
    fn label_enums_index_their_counters() {
        for (i, label) in DisconnectLabel::ALL.iter().enumerate() {
            assert_eq!(*label as usize, i, "{label:?}");
        }
        for (i, label) in RefusedLabel::ALL.iter().enumerate() {
            assert_eq!(*label as usize, i, "{label:?}");
        }
        for (i, op) in RedisOp::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i, "{op:?}");
        }
        for (i, outcome) in PublishFailure::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, i, "{outcome:?}");
        }
        let m = Metrics::default();
        m.disconnect(DisconnectReason::ClosingServer);
        m.redis_error(RedisOp::Unsubscribe);
        let text = m.render_prometheus(1);
        assert!(text.contains("chat_disconnects_total{worker=\"1\",reason=\"server_closing\"} 1"));
        assert!(text.contains("chat_redis_errors_total{worker=\"1\",op=\"unsubscribe\"} 1"));
    }
}
