//! The summary `loadgen run` prints when a run ends: what happened, in a dozen lines.
//!
//! Kept apart from the run's order (as oha keeps its `printer.rs`): it only reads the
//! finished results, so its wording can change without touching how a run is made.

use std::path::Path;

use crate::results::{self, PartHost, Results, ThresholdResult, Verdict};

/// A profile's line: its name, what it could not place, its acknowledgements.
fn print_protocol(p: &results::ProtocolResult, ack: &results::Percentiles) {
    let unmatched: Vec<String> = p
        .unmatched
        .iter()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect();
    let unmatched = if unmatched.is_empty() {
        "none".to_owned()
    } else {
        unmatched.join(", ")
    };
    print!("  protocol {}  unmatched: {unmatched}", p.profile);
    if let Some(a) = &p.acks {
        print!(
            "  acks {} of {} (refused {}, missing {})  ack p99 {}",
            a.received,
            a.requested,
            a.refused,
            a.missing,
            roomstorm_reports::format::us(ack.p99_us)
        );
    }
    println!();
}

/// Prints the finished run's summary; `out` is its folder.
pub fn print_summary(results: &Results, out: &Path) {
    let d = &results.deliveries;
    let f = &results.latency.fanout;
    let fmt = roomstorm_reports::format::us;
    println!("{}", results.scenario_name().unwrap_or("run"));
    println!(
        "  members joined {}  connect errors {}  messages sent {} of {} planned ({} unsent)",
        results.counters.joins,
        results.counters.connect_errors,
        results.sends.made,
        results.sends.planned,
        results.sends.unsent
    );
    println!(
        "  deliveries owed {}  on time {}  late {}  never {}  (lost {})  duplicated {}  \
         reordered {}  ratio {:.6}",
        d.expected,
        d.delivered,
        d.late,
        d.never,
        d.lost,
        d.duplicated,
        d.reordered,
        d.delivery_ratio
    );
    println!(
        "  fan-out p50 {}  p99 {}  p99.9 {}  max {}   connect p99 {}  join p99 {}",
        fmt(f.p50_us),
        fmt(f.p99_us),
        fmt(f.p999_us),
        fmt(f.max_us),
        fmt(results.latency.connect.p99_us),
        fmt(results.latency.join.p99_us)
    );
    if let Some(p) = results
        .protocol
        .as_ref()
        .filter(|p| p.profile != "roomstorm")
    {
        print_protocol(p, &results.latency.ack);
    }
    for g in &results.groups {
        println!(
            "  group {}: members {}  sent {} of {}  signals {}  owed {}  on time {}  lost {}  \
             fan-out p99 {}",
            g.name,
            g.members,
            g.sends.made,
            g.sends.planned,
            g.signals,
            g.deliveries.expected,
            g.deliveries.on_time,
            g.deliveries.lost,
            fmt(g.fanout.p99_us)
        );
    }
    for w in &results.workers {
        println!(
            "  worker {}: members {}  delivered {}",
            w.index, w.members, w.delivered
        );
    }
    if let Some(r) = &results.resources {
        let cpu = |generator: bool| -> f64 {
            r.components
                .iter()
                .filter(|c| results::is_generator(&c.name) == generator)
                .map(|c| c.cpu_seconds)
                .sum()
        };
        let server = if r.components.iter().any(|c| !results::is_generator(&c.name)) {
            format!("{:.1}", cpu(false))
        } else {
            "not sampled (not a local target)".to_string()
        };
        println!(
            "  cpu seconds: load generator {:.1}  server {server}{}",
            cpu(true),
            if r.generator_bound {
                "   WARNING: the load generator used more CPU than the server: the generator, \
                 not the server, was measured"
            } else {
                ""
            }
        );
    }
    for host in &results.hosts {
        println!("  {}", host_line(host));
    }
    for fault in &results.faults {
        let recovered = fault
            .recovered_after_ms
            .map_or("not within the run".to_string(), |ms| format!("{ms} ms"));
        println!(
            "  fault at {}s {}: recovered after {recovered}, lost {}",
            fault.at_s, fault.action, fault.lost_in_window
        );
    }
    for step in &results.steps {
        println!(
            "  step {} (rate x{:.2}): {:.0} deliveries/s, fan-out p99 {}, lost {} -> {}",
            step.index,
            step.multiplier,
            step.deliveries_per_s,
            fmt(step.fanout_p99_us),
            step.lost,
            if step.held { "held" } else { "broke" }
        );
    }
    if !results.steps.is_empty() {
        match results
            .highest_step_held
            .and_then(|i| results.steps.get(i as usize))
        {
            Some(step) => println!(
                "  highest step held: {} ({:.0} deliveries/s)",
                step.index, step.deliveries_per_s
            ),
            None => println!("  highest step held: none (the first step already broke)"),
        }
    }
    for t in &results.thresholds {
        println!("  {}", threshold_line(t));
    }
    if results.counters.joins == 0 {
        println!("  FAIL no member joined: nothing was measured (the errors above say why)");
    }
    println!(
        "  verdict: {}   results: {}",
        if results.verdict == Verdict::Pass {
            "PASS"
        } else {
            "FAIL"
        },
        out.join("results.json").display()
    );
}

/// A judged threshold as the summary prints it, the measured value in the rule's unit:
/// `PASS fanout.p99 < 250ms  (measured 6.89ms)`.
fn threshold_line(t: &ThresholdResult) -> String {
    format!(
        "{} {}  (measured {})",
        if t.passed { "PASS" } else { "FAIL" },
        t.rule,
        t.measured_text()
    )
}

/// A part of a run across hosts: `part 1 on b: clock +12 µs (± 40 µs) against the
/// coordinator's`, with a warning when beyond the limit.
fn host_line(h: &PartHost) -> String {
    format!(
        "part {} on {}: clock {:+} µs (± {} µs) against the coordinator's{}",
        h.part,
        h.host,
        h.clock_offset_us,
        h.clock_rtt_us / 2,
        if h.beyond_limit {
            format!(
                "   WARNING: beyond --max-clock-offset ({} µs): its start was corrected, its \
                 wall-clock times were not",
                h.clock_offset_limit_us
            )
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(rule: &str, measured: f64) -> ThresholdResult {
        ThresholdResult::of(rule.parse().expect("rule"), measured)
    }

    #[test]
    fn a_host_beyond_the_clock_limit_is_reported() {
        let host = |offset: i64| PartHost {
            part: 1,
            host: "b".into(),
            clock_offset_us: offset,
            clock_rtt_us: 80,
            clock_offset_limit_us: 100_000,
            beyond_limit: offset.unsigned_abs() > 100_000,
        };
        assert_eq!(
            host_line(&host(12)),
            "part 1 on b: clock +12 µs (± 40 µs) against the coordinator's"
        );
        assert!(host_line(&host(-250_000)).contains("-250000 µs (± 40 µs)"));
        assert!(host_line(&host(-250_000)).contains("WARNING: beyond --max-clock-offset"));
    }

    #[test]
    fn the_summary_prints_measured_values_in_the_rules_unit() {
        assert_eq!(
            threshold_line(&judged("fanout.p99 < 250ms", 6_891.0)),
            "PASS fanout.p99 < 250ms  (measured 6.89ms)"
        );
        assert_eq!(
            threshold_line(&judged("delivery_ratio >= 80%", 1.0)),
            "PASS delivery_ratio >= 80%  (measured 100%)"
        );
        assert_eq!(
            threshold_line(&judged("never == 0", 12.0)),
            "FAIL never == 0  (measured 12)"
        );
    }
}
