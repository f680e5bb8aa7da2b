//! Member groups (`[[population.groups]]`): each group's own figures, side by side.
//!
//! Rooms are not uniform: a few members talk, most read. A run with groups shows, per group,
//! what its members sent and whether they, as readers, got everything fast: lurkers that lose
//! messages or wait longer than talkers show up here, not in the run's totals.

use roomstorm_results::{GroupResult, Results};

use crate::format::{count, pct, us};
use crate::page::{self, num, text};

/// The report's section: a row per group.
pub fn section(r: &Results) -> String {
    if r.groups.is_empty() {
        return page::table(&[], Vec::new(), "This run had no member groups.");
    }
    let rows = r.groups.iter().map(row).collect();
    page::table(
        &[
            "group",
            "members#",
            "sent#",
            "planned#",
            "signals#",
            "owed#",
            "on time#",
            "lost#",
            "ratio#",
            "fan-out p50#",
            "p99#",
            "max#",
        ],
        rows,
        "",
    )
}

fn row(g: &GroupResult) -> Vec<page::Cell> {
    let d = &g.deliveries;
    let f = &g.fanout;
    let time = |v: u64| {
        if f.count == 0 {
            "–".to_owned()
        } else {
            us(v)
        }
    };
    let signals = if g.signal_failures > 0 {
        format!("{} ({} failed)", count(g.signals), count(g.signal_failures))
    } else {
        count(g.signals)
    };
    vec![
        text(&g.name),
        num(&count(g.members)),
        num(&count(g.sends.made)),
        num(&count(g.sends.planned)),
        num(&signals),
        num(&count(d.expected)),
        num(&count(d.on_time)),
        num(&count(d.lost)),
        num(&pct(d.delivery_ratio)),
        num(&time(f.p50_us)),
        num(&time(f.p99_us)),
        num(&time(f.max_us)),
    ]
}
