//! The plan as people read it: every figure beside the measured cost it came from and the
//! assumptions (`[A3]`, listed at the end) it rests on, so that a reader can check each line
//! against results.json and disagree with an assumption rather than with a number.

use std::fmt::Write;

use super::measured::{Measured, Role};
use super::sizing::{Assumptions, Need, Plan, members_per_process, whole};

/// A whole count with thousands separators: `1,666,667`.
pub fn count(v: f64) -> String {
    let digits = format!("{}", v.max(0.0).round() as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Three significant digits (`0.0167`, `0.412`, `49.4`), whole numbers with separators from
/// 1,000 on.
pub fn fig(v: f64) -> String {
    if v >= 999.5 {
        return count(v);
    }
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).max(0) as usize;
    format!("{v:.decimals$}")
}

/// The assumptions a plan rests on, keyed `A1`.. as its lines cite them.
pub fn assumptions(a: &Assumptions, m: &Measured) -> Vec<(&'static str, String)> {
    let per = |role| count(members_per_process(role, a) as f64);
    vec![
        (
            "A1",
            "steady state: every member connected and sending at the rate; connects, joins, \
             leaves and churn are not planned (the run's fell outside its send window)"
                .to_owned(),
        ),
        (
            "A2",
            "rooms of equal size (members / rooms); every member of a room gets each message, \
             its sender too"
                .to_owned(),
        ),
        (
            "A3",
            "a part's CPU grows in proportion to the deliveries: its cores in the run's send \
             window over the deliveries per second then (heartbeats, parsing and Redis messages \
             folded in)"
                .to_owned(),
        ),
        (
            "A4",
            "members land on chat workers at random (nginx ip_hash over many client networks): \
             a room of S members spans W × (1 − (1 − 1/W)^S) of W workers"
                .to_owned(),
        ),
        (
            "A5",
            "Redis's CPU grows with the messages it writes to subscribed workers (a PUBLISH's \
             own cost folded in); sharded pub/sub (SSUBSCRIBE/SPUBLISH: a room's channel lives \
             on one shard, so shards divide the load; plain PUBLISH in a Redis Cluster reaches \
             every node); one shard ≈ one core (Redis runs commands on one thread)"
                .to_owned(),
        ),
        (
            "A6",
            "memory per member: a part's peak resident memory over the run's peak members, the \
             processes' fixed part included (an upper bound for more members than the run had)"
                .to_owned(),
        ),
        (
            "A7",
            format!(
                "{} open files per process, {}% of them for members' connections; a member \
                 takes 1 in a chat worker, 2 in nginx, 1 in loadgen: {} members per chat worker \
                 process, {} per nginx worker process, {} per loadgen process",
                count(a.open_files as f64),
                fig(a.member_share_of_open_files * 100.0),
                per(Role::Workers),
                per(Role::Nginx),
                per(Role::Generator),
            ),
        ),
        (
            "A8",
            "one chat worker process, and one nginx worker process, per core; more processes \
             than cores where the open files ask for it"
                .to_owned(),
        ),
        (
            "A9",
            format!("headroom ×{} on CPU and memory", fig(a.headroom)),
        ),
        (
            "A10",
            format!(
                "a generator host: {} cores, {} GiB, {} source address(es), {} client ports per \
                 (source address, nginx address)",
                a.host_cores,
                fig(a.host_memory_gib),
                a.source_addresses_per_host,
                count(a.ports_per_address as f64),
            ),
        ),
        (
            "A11",
            format!(
                "cores as fast as the run machine's ({}, {} cores)",
                m.host, m.host_cores
            ),
        ),
    ]
}

/// Where the plan leaves its measured figures' range: each says which way it errs.
pub fn notes(plan: &Plan, m: &Measured) -> Vec<String> {
    let mut notes = Vec::new();
    let run_local = m.members_per_room() / m.workers_per_room;
    let plan_local = plan.load.members_per_room / plan.fanout.workers_per_room;
    let (bound, why) = if plan_local < run_local {
        (
            "a lower bound",
            "a worker's cost per Redis message is spread over fewer deliveries than measured",
        )
    } else {
        (
            "an upper bound, or close",
            "a worker's cost per Redis message is spread over as many deliveries or more",
        )
    };
    notes.push(format!(
        "chat workers: each Redis message reaches {} members per worker in this plan against {} \
         in the run: {why}, so the workers' cores are {bound}; a run whose rooms spread over \
         workers like the plan's measures it",
        fig(plan_local),
        fig(run_local),
    ));
    let bound = if plan.fanout.workers_per_room >= m.workers_per_room {
        "an upper bound (a PUBLISH's own cost is charged to each of more subscribers)"
    } else {
        "a lower bound (a PUBLISH's own cost is charged to fewer subscribers than measured)"
    };
    notes.push(format!(
        "Redis: {} subscribed workers per message in this plan against {} in the run: its \
         cores are {bound}",
        fig(plan.fanout.workers_per_room),
        fig(m.workers_per_room),
    ));
    if plan.target.members < m.peak_members {
        notes.push(format!(
            "memory: the plan has fewer members than the run ({} < {}): the fixed part of each \
             process weighs more per member than measured; memory is a lower bound",
            count(plan.target.members as f64),
            count(m.peak_members as f64),
        ));
    }
    if m.generator_bound {
        notes.push(
            "the load generator used more CPU than the server in this run \
             (`resources.generator_bound`): the server's costs were measured below its capacity; \
             per delivery they still hold under A3"
                .to_owned(),
        );
    }
    notes
}

/// The plan as text.
pub fn text(plan: &Plan, m: &Measured, from: &str) -> String {
    let mut out = String::new();
    let t = &plan.target;
    let load = &plan.load;
    let _ = writeln!(
        out,
        "plan: {} members in {} rooms ({} each), {} messages per member per second",
        count(t.members as f64),
        count(t.rooms as f64),
        fig(load.members_per_room),
        fig(t.rate_per_member),
    );
    let _ = writeln!(
        out,
        "from: {from} (scenario {}, {} with {} cores; send window {}-{} s)",
        m.scenario, m.host, m.host_cores, m.window_from_s, m.window_to_s,
    );
    out.push('\n');
    let _ = writeln!(out, "load [A1 A2]");
    let _ = writeln!(
        out,
        "  {} messages/s = {} members × {}/s",
        fig(load.messages_per_s),
        count(t.members as f64),
        fig(t.rate_per_member),
    );
    let _ = writeln!(
        out,
        "  {} deliveries/s = {} messages/s × {} members per room",
        fig(load.deliveries_per_s),
        fig(load.messages_per_s),
        fig(load.members_per_room),
    );
    out.push('\n');
    measured_lines(&mut out, m);
    out.push('\n');
    needs_lines(&mut out, plan, m);
    out.push('\n');
    let _ = writeln!(out, "notes");
    for note in notes(plan, m) {
        let _ = writeln!(out, "  - {note}");
    }
    out.push('\n');
    let _ = writeln!(out, "assumptions");
    for (key, text) in assumptions(&plan.assumptions, m) {
        let _ = writeln!(out, "  {key:<3} {text}");
    }
    out
}

/// A part's components, the middle left out when there are many (64 chat workers).
fn components(names: &[String]) -> String {
    match names {
        [first, .., last] if names.len() > 4 => {
            format!("{first}, …, {last}: {} components", names.len())
        }
        _ => names.join(", "),
    }
}

fn measured_lines(out: &mut String, m: &Measured) {
    let seconds = m.window_to_s - m.window_from_s;
    let _ = writeln!(
        out,
        "measured in the run's send window ({} s; timeline and resources of results.json)",
        seconds
    );
    let _ = writeln!(
        out,
        "  load: {} deliveries/s, {} messages/s; {} members at the peak in {} rooms ({} each) \
         over {} chat workers, {} workers per room (workers[].rooms)",
        fig(m.deliveries_per_s),
        fig(m.messages_per_s),
        count(m.peak_members as f64),
        count(m.rooms as f64),
        fig(m.members_per_room()),
        m.worker_processes,
        fig(m.workers_per_room),
    );
    for role in [Role::Workers, Role::Nginx, Role::Generator] {
        let u = m.role(role);
        let _ = writeln!(
            out,
            "  {}: {} cores → {} µs CPU per delivery; peak RSS {} MiB → {} KiB per member ({})",
            role.label(),
            fig(u.cores),
            fig(m.us_per_delivery(role)),
            fig(u.peak_rss_kib as f64 / 1024.0),
            fig(m.kib_per_member(role)),
            components(&u.components),
        );
    }
    let redis = m.role(Role::Redis);
    let _ = writeln!(
        out,
        "  Redis: {} cores over {} subscriber deliveries/s ({} messages/s × {} workers per room) \
         → {} µs CPU per subscriber delivery; peak RSS {} MiB → {} KiB per member",
        fig(redis.cores),
        fig(m.subscriber_deliveries_per_s()),
        fig(m.messages_per_s),
        fig(m.workers_per_room),
        fig(m.redis_us_per_subscriber_delivery()),
        fig(redis.peak_rss_kib as f64 / 1024.0),
        fig(m.kib_per_member(Role::Redis)),
    );
}

/// The CPU line of a part whose cost is per delivery.
fn cpu_per_delivery(out: &mut String, plan: &Plan, m: &Measured, role: Role, need: &Need) {
    let _ = writeln!(
        out,
        "    CPU: {} deliveries/s × {} µs per delivery (measured) × {} headroom = {} cores [A3 A9 A11]",
        fig(plan.load.deliveries_per_s),
        fig(m.us_per_delivery(role)),
        fig(plan.assumptions.headroom),
        fig(need.cores),
    );
}

fn memory_line(out: &mut String, plan: &Plan, m: &Measured, role: Role, need: &Need) {
    let _ = writeln!(
        out,
        "    memory: {} members × {} KiB per member (measured) × {} headroom = {} GiB [A6 A9]",
        count(plan.target.members as f64),
        fig(m.kib_per_member(role)),
        fig(plan.assumptions.headroom),
        fig(need.memory_gib),
    );
}

fn processes_line(out: &mut String, plan: &Plan, role: Role, need: &Need, by_cpu: &str) {
    let _ = writeln!(
        out,
        "    processes: the larger of {} by CPU ({by_cpu}) and {} by open files ({} members / {} \
         per process) [A7 A8]",
        count(need.processes_by_cpu as f64),
        count(need.processes_by_open_files as f64),
        count(plan.target.members as f64),
        count(members_per_process(role, &plan.assumptions) as f64),
    );
}

fn needs_lines(out: &mut String, plan: &Plan, m: &Measured) {
    let _ = writeln!(out, "needs");
    let w = &plan.workers;
    let _ = writeln!(
        out,
        "  chat workers: {} cores, {} processes, {} GiB",
        count(whole(w.cores) as f64),
        count(w.processes as f64),
        fig(w.memory_gib),
    );
    cpu_per_delivery(out, plan, m, Role::Workers, w);
    processes_line(out, plan, Role::Workers, w, "one per core");
    memory_line(out, plan, m, Role::Workers, w);

    let r = &plan.redis;
    let _ = writeln!(
        out,
        "  Redis: {} shards, {} cores, {} GiB",
        count(r.processes as f64),
        fig(r.cores),
        fig(r.memory_gib),
    );
    let _ = writeln!(
        out,
        "    spread: a room of {} members spans {} of {} chat workers; {} messages/s × {} = {} \
         subscriber deliveries/s [A2 A4]",
        fig(plan.load.members_per_room),
        fig(plan.fanout.workers_per_room),
        count(w.processes as f64),
        fig(plan.load.messages_per_s),
        fig(plan.fanout.workers_per_room),
        fig(plan.fanout.subscriber_deliveries_per_s),
    );
    let _ = writeln!(
        out,
        "    CPU: {} subscriber deliveries/s × {} µs each (measured) × {} headroom = {} cores → \
         {} shards, one per core [A5 A9 A11]",
        fig(plan.fanout.subscriber_deliveries_per_s),
        fig(m.redis_us_per_subscriber_delivery()),
        fig(plan.assumptions.headroom),
        fig(r.cores),
        count(r.processes as f64),
    );
    memory_line(out, plan, m, Role::Redis, r);

    let n = &plan.nginx;
    let _ = writeln!(
        out,
        "  nginx: {} cores, {} worker processes, {} GiB",
        count(whole(n.cores) as f64),
        count(n.processes as f64),
        fig(n.memory_gib),
    );
    cpu_per_delivery(out, plan, m, Role::Nginx, n);
    processes_line(out, plan, Role::Nginx, n, "one per core");
    memory_line(out, plan, m, Role::Nginx, n);

    let g = &plan.generator;
    let h = &plan.generator_hosts;
    let a = &plan.assumptions;
    let _ = writeln!(
        out,
        "  load generator: {} hosts ({} cores, {} GiB, {} loadgen processes)",
        count(h.hosts as f64),
        fig(g.cores),
        fig(g.memory_gib),
        count(g.processes as f64),
    );
    cpu_per_delivery(out, plan, m, Role::Generator, g);
    memory_line(out, plan, m, Role::Generator, g);
    let _ = writeln!(
        out,
        "    hosts: the largest of {} by CPU ({} cores / {} per host), {} by memory ({} GiB / {} \
         per host), {} by client ports ({} members / ({} ports × {} source addresses)) [A10]",
        count(h.by_cpu as f64),
        fig(g.cores),
        a.host_cores,
        count(h.by_memory as f64),
        fig(g.memory_gib),
        fig(a.host_memory_gib),
        count(h.by_ports as f64),
        count(plan.target.members as f64),
        count(a.ports_per_address as f64),
        a.source_addresses_per_host,
    );
    let _ = writeln!(
        out,
        "    processes: {} members / {} per loadgen process = {} [A7]",
        count(plan.target.members as f64),
        count(members_per_process(Role::Generator, a) as f64),
        count(g.processes as f64),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0.0), "0");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(1_000.0), "1,000");
        assert_eq!(count(1_666_666.7), "1,666,667");
        assert_eq!(fig(0.0166667), "0.0167");
        assert_eq!(fig(0.4123), "0.412");
        assert_eq!(fig(1.5), "1.50");
        assert_eq!(fig(49.43), "49.4");
        assert_eq!(fig(12_345.6), "12,346");
    }

    #[test]
    fn many_components_are_summarized() {
        let names = |n: usize| (0..n).map(|i| format!("w{i}")).collect::<Vec<_>>();
        assert_eq!(components(&names(2)), "w0, w1");
        assert_eq!(components(&names(4)), "w0, w1, w2, w3");
        assert_eq!(components(&names(65)), "w0, …, w64: 65 components");
    }
}
