//! The protocol profile of a run: which one members spoke, what it could not place, and the
//! acknowledgements of their messages.
//!
//! A run against someone else's chat is only as good as its profile: a misspelt event name or
//! a probe path into the wrong field shows up here as unmatched events, by reason, beside the
//! deliveries it cost. Results written before profiles existed spoke the built-in one.

use roomstorm_results::{AckCounts, Percentiles, Results};

use crate::format::{count, esc, us};
use crate::page::{self, num, text};

/// The name of the built-in profile (the original design's protocol).
const BUILTIN: &str = "roomstorm";

/// The profile's name as the banner shows it.
pub fn name(r: &Results) -> String {
    match r.protocol.as_ref().map(|p| p.profile.as_str()) {
        None | Some(BUILTIN) => format!("{BUILTIN} (built in)"),
        Some(other) => other.to_owned(),
    }
}

/// What each unmatched reason means (results.json `protocol.unmatched`).
fn meaning(reason: &str) -> &'static str {
    match reason {
        "unexpected_event" => {
            "an event the profile does not name (receive.events, receive.ignore, the join confirmation)"
        }
        "no_text_at_path" => {
            "a room message without a string at receive.probe: the path may point at the wrong field"
        }
        "no_probe_in_text" => {
            "a string at receive.probe without a probe in it: someone else's text, or the wrong field"
        }
        "unexpected_ack" => "an acknowledgement no message of the session waited for",
        _ => "reported by the runtime",
    }
}

/// The report's section.
pub fn section(r: &Results) -> String {
    let Some(protocol) = &r.protocol else {
        return format!(
            "<p>Members spoke the built-in <strong>{BUILTIN}</strong> profile (the original \
             design's protocol; these results were written before profiles existed).</p>\n"
        );
    };
    let mut out = if protocol.profile == BUILTIN {
        format!(
            "<p>Members spoke the built-in <strong>{BUILTIN}</strong> profile, the original \
             design's protocol.</p>\n"
        )
    } else {
        format!(
            "<p>Members spoke the profile <strong>{}</strong> of the scenario's \
             <code>[protocol]</code> table (shown in full under the scenario).</p>\n",
            esc(&protocol.profile)
        )
    };
    let rows = protocol
        .unmatched
        .iter()
        .map(|(reason, n)| vec![text(reason), text(meaning(reason)), num(&count(*n))])
        .collect();
    out.push_str(&page::table(
        &["unmatched", "meaning", "count#"],
        rows,
        "Every event received matched the profile.",
    ));
    if let Some(acks) = &protocol.acks {
        out.push_str(&acks_table(acks, &r.latency.ack));
    }
    out
}

/// What became of the acknowledgements, and their round trip.
fn acks_table(acks: &AckCounts, latency: &Percentiles) -> String {
    let time = |v: u64| {
        if latency.count == 0 {
            "–".to_owned()
        } else {
            us(v)
        }
    };
    let row = vec![
        num(&count(acks.requested)),
        num(&count(acks.received)),
        num(&count(acks.refused)),
        num(&count(acks.missing)),
        num(&count(acks.open_at_leave)),
        num(&time(latency.p50_us)),
        num(&time(latency.p99_us)),
        num(&time(latency.max_us)),
    ];
    page::table(
        &[
            "acks asked#",
            "received#",
            "refused#",
            "missing#",
            "open at leave#",
            "ack p50#",
            "ack p99#",
            "ack max#",
        ],
        vec![row],
        "",
    )
}
