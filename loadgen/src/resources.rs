//! CPU and memory of the run's local processes, sampled once a second from `/proc`.
//!
//! When the load generator and the server share a machine, a result means little without
//! knowing who used the CPU: if the generator used more than the server, the generator was
//! measured. So every run samples its own process (and the part processes of a split run) and,
//! for a local stack, the chat workers, the cluster master, nginx (master and workers) and
//! Redis, grouped by component. A sampling pass reads `stat` and `status` of the few pids
//! known; the process table is scanned again every few seconds (nginx workers, restarted
//! chat workers, a restarted Redis) or as soon as a known process is gone.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use crate::results::{Component, ResourceSample, Resources};

/// Seconds between samples.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Samples between scans of the process table.
const RESCAN_EVERY: u32 = 3;

/// The component name of the load generator's own process(es).
pub const GENERATOR: &str = "loadgen";
/// The same, when the chat worker runs inside it (the embedded fallback).
pub const GENERATOR_WITH_EMBEDDED: &str = "loadgen (with the embedded chat worker)";

/// What to sample.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The load generator's component name ([`GENERATOR`] or [`GENERATOR_WITH_EMBEDDED`]).
    pub generator_name: String,
    /// This process and, for a split run, its part processes.
    pub generator_pids: Vec<u32>,
    /// The cluster master of the local stack this process started; with it, its workers and
    /// this process's `redis-server` and `nginx` children (and nginx's workers) are sampled.
    pub master: Option<u32>,
    /// Processes named on the command line (`--sample NAME=PID`): each process with all its
    /// descendants (found again at every scan) is the component NAME. For servers this process
    /// did not start, e.g. a cluster behind a `--target` URL.
    pub named: Vec<(String, u32)>,
}

impl Sources {
    /// Only this process.
    pub fn generator_only(name: &str) -> Sources {
        Sources {
            generator_name: name.to_owned(),
            generator_pids: vec![std::process::id()],
            master: None,
            named: Vec::new(),
        }
    }
}

/// Parses `--sample NAME=PID`. NAME is a component name: not empty, not the load generator's.
pub fn parse_sample(text: &str) -> Result<(String, u32), String> {
    let (name, pid) = text
        .rsplit_once('=')
        .ok_or("expected NAME=PID, e.g. \"chat workers=1234\"")?;
    let name = name.trim();
    if name.is_empty() {
        return Err("the component NAME is empty".into());
    }
    if crate::results::is_generator(name) {
        return Err(format!(
            "{name:?} is the load generator's own component name"
        ));
    }
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| format!("{pid:?} is not a process id"))?;
    if pid == 0 {
        return Err("process id 0 does not exist".into());
    }
    Ok((name.to_owned(), pid))
}

/// The named root each process descends from (itself included), following parents up.
fn named_roots(named: &[(String, u32)], table: &HashMap<u32, Stat>) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    if named.is_empty() {
        return out;
    }
    let roots: HashMap<u32, &str> = named.iter().map(|(n, p)| (*p, n.as_str())).collect();
    for pid in table.keys() {
        let mut at = *pid;
        // A chain longer than the table is a loop (a pid reused while scanning).
        for _ in 0..=table.len() {
            if let Some(name) = roots.get(&at) {
                out.insert(*pid, (*name).to_owned());
                break;
            }
            match table.get(&at) {
                Some(stat) if stat.ppid != 0 && stat.ppid != at => at = stat.ppid,
                _ => break,
            }
        }
    }
    out
}

/// One line of `/proc/PID/stat`, the fields used here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub ppid: u32,
    /// utime + stime, clock ticks.
    pub ticks: u64,
}

/// Parses `/proc/PID/stat`. The command name is in parentheses and may itself hold spaces and
/// parentheses, so the fields are read after the LAST `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    // After the name: state (3), ppid (4), ..., utime (14), stime (15).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Stat {
        comm,
        ppid,
        ticks: utime + stime,
    })
}

/// `VmRSS` in KiB from `/proc/PID/status` (absent for zombies and kernel threads).
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU used over `elapsed_s`, percent of one core.
pub fn cpu_percent(delta_ticks: u64, ticks_per_second: f64, elapsed_s: f64) -> f64 {
    if elapsed_s <= 0.0 || ticks_per_second <= 0.0 {
        return 0.0;
    }
    delta_ticks as f64 / ticks_per_second / elapsed_s * 100.0
}

/// Clock ticks per second (`getconf CLK_TCK`).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn read_rss(pid: u32) -> Option<u64> {
    parse_vm_rss(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// `--worker-id N` from a chat worker's command line.
fn worker_id(pid: u32) -> Option<u32> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let at = args.iter().position(|a| *a == b"--worker-id")?;
    std::str::from_utf8(args.get(at + 1)?).ok()?.parse().ok()
}

/// Every process: pid → its stat.
fn process_table() -> HashMap<u32, Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, read_stat(pid)?)))
        .collect()
}

/// Which component each process belongs to, from the process table.
pub fn classify(
    sources: &Sources,
    me: u32,
    table: &HashMap<u32, Stat>,
    worker_id: impl Fn(u32) -> Option<u32>,
) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    for pid in &sources.generator_pids {
        if table.contains_key(pid) {
            out.insert(*pid, sources.generator_name.clone());
        }
    }
    for (pid, name) in named_roots(&sources.named, table) {
        out.entry(pid).or_insert(name);
    }
    let Some(master) = sources.master else {
        return out;
    };
    if table.contains_key(&master) {
        out.insert(master, "master".to_owned());
    }
    let nginx_masters: Vec<u32> = table
        .iter()
        .filter(|(_, s)| s.ppid == me && s.comm == "nginx")
        .map(|(pid, _)| *pid)
        .collect();
    for (pid, stat) in table {
        if out.contains_key(pid) {
            continue;
        }
        let name = if stat.ppid == master {
            match worker_id(*pid) {
                Some(i) => format!("chat worker {i}"),
                None => continue,
            }
        } else if stat.ppid == me && stat.comm == "redis-server" {
            "redis".to_owned()
        } else if stat.comm == "nginx" && (stat.ppid == me || nginx_masters.contains(&stat.ppid)) {
            "nginx".to_owned()
        } else {
            continue;
        };
        out.insert(*pid, name);
    }
    out
}

/// One process as read in one sampling pass.
#[derive(Debug, Clone)]
pub struct Reading {
    pub component: String,
    pub pid: u32,
    pub ticks: u64,
    pub rss_kib: u64,
}

/// Accumulates readings into components: CPU from tick deltas per pid, RSS summed over the
/// component's processes. A pid first seen after the start counts from 0 ticks (it started
/// during the run); [`Tracker::baseline`] sets the start of those already running.
#[derive(Debug)]
pub struct Tracker {
    hz: f64,
    last_ticks: HashMap<u32, u64>,
    components: BTreeMap<String, Component>,
}

impl Tracker {
    pub fn new(ticks_per_second: f64) -> Tracker {
        Tracker {
            hz: ticks_per_second,
            last_ticks: HashMap::new(),
            components: BTreeMap::new(),
        }
    }

    /// The ticks a process had already used when sampling started (not counted).
    pub fn baseline(&mut self, reading: &Reading) {
        self.last_ticks.insert(reading.pid, reading.ticks);
        self.component(&reading.component);
    }

    fn component(&mut self, name: &str) -> &mut Component {
        self.components
            .entry(name.to_owned())
            .or_insert_with(|| Component {
                name: name.to_owned(),
                cpu_seconds: 0.0,
                peak_rss_kib: 0,
                series: Vec::new(),
            })
    }

    /// One sampling pass at `t` seconds, `elapsed_s` after the previous one. Every component
    /// known gets a sample (0 while none of its processes runs).
    pub fn observe(&mut self, t: f64, elapsed_s: f64, readings: &[Reading]) {
        let mut ticks: BTreeMap<&str, u64> = BTreeMap::new();
        let mut rss: BTreeMap<&str, u64> = BTreeMap::new();
        for r in readings {
            let before = self.last_ticks.insert(r.pid, r.ticks).unwrap_or(0);
            *ticks.entry(&r.component).or_default() += r.ticks.saturating_sub(before);
            *rss.entry(&r.component).or_default() += r.rss_kib;
            self.component(&r.component);
        }
        let hz = self.hz;
        for (name, c) in &mut self.components {
            let delta = ticks.get(name.as_str()).copied().unwrap_or(0);
            let rss_kib = rss.get(name.as_str()).copied().unwrap_or(0);
            c.cpu_seconds += delta as f64 / hz;
            c.peak_rss_kib = c.peak_rss_kib.max(rss_kib);
            c.series.push(ResourceSample {
                t: (t * 1000.0).round() / 1000.0,
                cpu_percent: (cpu_percent(delta, hz, elapsed_s) * 10.0).round() / 10.0,
                rss_kib,
            });
        }
    }

    /// The components, the load generator first, then workers by index, master, nginx, Redis;
    /// `origin_s`: when sampling started, in seconds since the run's start.
    pub fn finish(self, interval_s: f64, origin_s: f64) -> Resources {
        let mut components: Vec<Component> = self.components.into_values().collect();
        for c in &mut components {
            c.cpu_seconds = (c.cpu_seconds * 1000.0).round() / 1000.0;
        }
        components.sort_by_key(|c| order(&c.name));
        let origin_s = (origin_s * 1000.0).round() / 1000.0;
        Resources::new(interval_s, components).with_series_origin(origin_s)
    }
}

fn order(name: &str) -> (u8, u32, String) {
    if crate::results::is_generator(name) {
        return (0, 0, name.to_owned());
    }
    if let Some(i) = name.strip_prefix("chat worker ") {
        return (1, i.parse().unwrap_or(u32::MAX), name.to_owned());
    }
    let rank = match name {
        "master" => 2,
        "nginx" => 3,
        "redis" => 4,
        _ => 5,
    };
    (rank, 0, name.to_owned())
}

/// The sampling thread; [`Sampler::stop`] takes a last sample and returns the components.
pub struct Sampler {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<Resources>,
    taken: Arc<AtomicUsize>,
}

impl Sampler {
    /// Starts sampling `sources`; `run_start_us` (the run clock's start of the run) lines the
    /// samples' times up with the run's timeline (`Resources::series_origin_s`).
    pub fn start(sources: Sources, run_start_us: u64) -> Sampler {
        let (stop, stopped) = mpsc::channel();
        let taken = Arc::new(AtomicUsize::new(0));
        let counter = taken.clone();
        let thread = std::thread::Builder::new()
            .name("resources".into())
            .spawn(move || sample(sources, run_start_us, stopped, &counter))
            .expect("cannot start the resource sampler thread");
        Sampler {
            stop,
            thread,
            taken,
        }
    }

    /// Samples taken so far (the last one, taken by [`Sampler::stop`], not included).
    pub fn samples_taken(&self) -> usize {
        self.taken.load(Relaxed)
    }

    pub fn stop(self) -> Option<Resources> {
        let _ = self.stop.send(());
        self.thread.join().ok()
    }
}

fn read_all(pids: &BTreeMap<u32, String>) -> (Vec<Reading>, bool) {
    let mut gone = false;
    let mut readings = Vec::with_capacity(pids.len());
    for (pid, component) in pids {
        match (read_stat(*pid), read_rss(*pid)) {
            (Some(stat), rss) => readings.push(Reading {
                component: component.clone(),
                pid: *pid,
                ticks: stat.ticks,
                rss_kib: rss.unwrap_or(0),
            }),
            (None, _) => gone = true,
        }
    }
    (readings, gone)
}

fn sample(
    sources: Sources,
    run_start_us: u64,
    stopped: mpsc::Receiver<()>,
    taken: &AtomicUsize,
) -> Resources {
    let me = std::process::id();
    let mut tracker = Tracker::new(ticks_per_second());
    let scan = || classify(&sources, me, &process_table(), worker_id);
    let mut pids = scan();
    for reading in read_all(&pids).0 {
        tracker.baseline(&reading);
    }
    let started = Instant::now();
    let origin_s = (crate::clock::now_us() as f64 - run_start_us as f64) / 1e6;
    let mut last = started;
    let mut since_scan = 0;
    loop {
        let stop = !matches!(
            stopped.recv_timeout(INTERVAL),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        since_scan += 1;
        let (mut readings, gone) = read_all(&pids);
        if gone || since_scan >= RESCAN_EVERY {
            since_scan = 0;
            let fresh = scan();
            if fresh != pids {
                // New processes (restarts, nginx workers): read them too in this pass.
                let new: BTreeMap<u32, String> = fresh
                    .iter()
                    .filter(|(pid, _)| !pids.contains_key(pid))
                    .map(|(p, c)| (*p, c.clone()))
                    .collect();
                readings.extend(read_all(&new).0);
                pids = fresh;
            }
        }
        let now = Instant::now();
        tracker.observe(
            now.duration_since(started).as_secs_f64(),
            now.duration_since(last).as_secs_f64(),
            &readings,
        );
        last = now;
        if stop {
            break;
        }
        taken.fetch_add(1, Relaxed);
    }
    tracker.finish(INTERVAL.as_secs_f64(), origin_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classification as written in a test: (pid, component name) pairs.
    fn components(pairs: &[(u32, &str)]) -> BTreeMap<u32, String> {
        pairs.iter().map(|&(p, n)| (p, n.to_owned())).collect()
    }

    #[test]
    fn parses_stat_after_the_last_parenthesis() {
        let line = "4242 (my (odd) name) S 17 4242 17 0 -1 4194560 4120 0 0 0 \
                    250 31 0 0 20 0 9 0 1234567 123456789 3000 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                comm: "my (odd) name".into(),
                ppid: 17,
                ticks: 281
            })
        );
        let plain = "1 (nginx) S 0 1 1 0 -1 4194560 10 0 0 0 7 3 0 0 20 0 1 0 5 1 2 3";
        assert_eq!(
            parse_stat(plain).map(|s| (s.comm, s.ticks)),
            Some(("nginx".into(), 10))
        );
        assert_eq!(parse_stat("12 (cut) S 1"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tredis-server\nVmPeak:\t  9999 kB\nVmRSS:\t   12345 kB\nThreads:\t5\n";
        assert_eq!(parse_vm_rss(status), Some(12_345));
        assert_eq!(parse_vm_rss("Name:\tkworker\nThreads:\t1\n"), None);
    }

    #[test]
    fn cpu_percent_is_of_one_core() {
        assert_eq!(cpu_percent(100, 100.0, 1.0), 100.0);
        assert_eq!(cpu_percent(50, 100.0, 1.0), 50.0);
        assert_eq!(cpu_percent(300, 100.0, 2.0), 150.0);
        assert_eq!(cpu_percent(10, 100.0, 0.0), 0.0);
    }

    fn reading(component: &str, pid: u32, ticks: u64, rss_kib: u64) -> Reading {
        Reading {
            component: component.into(),
            pid,
            ticks,
            rss_kib,
        }
    }

    #[test]
    fn groups_processes_into_components_and_follows_restarts() {
        let mut tracker = Tracker::new(100.0);
        tracker.baseline(&reading("loadgen", 1, 500, 10_000));
        tracker.baseline(&reading("nginx", 2, 10, 3_000));
        tracker.baseline(&reading("chat worker 0", 4, 40, 8_000));
        tracker.observe(
            1.0,
            1.0,
            &[
                reading("loadgen", 1, 550, 11_000),
                reading("nginx", 2, 12, 3_000),
                reading("nginx", 3, 8, 4_000), // a worker found late: counted from 0
                reading("chat worker 0", 4, 60, 9_000),
            ],
        );
        // Worker 0 restarted: a new pid, the same component.
        tracker.observe(
            2.0,
            1.0,
            &[
                reading("loadgen", 1, 600, 12_000),
                reading("nginx", 2, 12, 3_000),
                reading("nginx", 3, 8, 4_000),
                reading("chat worker 0", 9, 5, 2_000),
            ],
        );
        let resources = tracker.finish(1.0, -0.25);
        let names: Vec<&str> = resources
            .components
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["loadgen", "chat worker 0", "nginx"]);
        assert_eq!(resources.series_origin_s, Some(-0.25));
        let [loadgen, worker, nginx] = &resources.components[..] else {
            panic!()
        };
        assert_eq!(loadgen.cpu_seconds, 1.0);
        assert_eq!(loadgen.peak_rss_kib, 12_000);
        assert_eq!(loadgen.series[0].cpu_percent, 50.0);
        assert_eq!(nginx.series[0].rss_kib, 7_000);
        assert_eq!(nginx.series[0].cpu_percent, 10.0);
        assert_eq!(nginx.series[1].cpu_percent, 0.0);
        assert_eq!(nginx.cpu_seconds, 0.1);
        assert_eq!(worker.cpu_seconds, 0.25);
        assert_eq!(worker.peak_rss_kib, 9_000);
        assert_eq!(worker.series.len(), 2);
        // The generator's 1.0 s against the server's 0.35 s.
        assert!(resources.generator_bound);
    }

    #[test]
    fn classifies_the_stack_from_the_process_table() {
        let stat = |comm: &str, ppid: u32| Stat {
            comm: comm.into(),
            ppid,
            ticks: 0,
        };
        let me = 100;
        let table = HashMap::from([
            (me, stat("loadgen", 1)),
            (101, stat("loadgen", me)),  // master
            (102, stat("loadgen", 101)), // worker 0
            (103, stat("loadgen", 101)), // worker 1
            (104, stat("redis-server", me)),
            (105, stat("nginx", me)),
            (106, stat("nginx", 105)),
            (107, stat("nginx", 1)),    // someone else's nginx
            (108, stat("loadgen", me)), // a part process
            (109, stat("bash", 1)),
        ]);
        let sources = Sources {
            generator_name: GENERATOR.into(),
            generator_pids: vec![me, 108],
            master: Some(101),
            named: Vec::new(),
        };
        let ids = |pid: u32| match pid {
            102 => Some(0),
            103 => Some(1),
            _ => None,
        };
        let got = classify(&sources, me, &table, ids);
        let expected = [
            (100, "loadgen"),
            (101, "master"),
            (102, "chat worker 0"),
            (103, "chat worker 1"),
            (104, "redis"),
            (105, "nginx"),
            (106, "nginx"),
            (108, "loadgen"),
        ];
        assert_eq!(got, components(&expected));
        // Without a local stack, only the generator.
        let mut alone = Sources::generator_only(GENERATOR_WITH_EMBEDDED);
        alone.generator_pids = vec![me];
        let got = classify(&alone, me, &table, ids);
        assert_eq!(
            got,
            BTreeMap::from([(me, GENERATOR_WITH_EMBEDDED.to_owned())])
        );
    }

    #[test]
    fn named_processes_bring_their_descendants() {
        let stat = |ppid: u32| Stat {
            comm: "x".into(),
            ppid,
            ticks: 0,
        };
        let me = 100;
        let table = HashMap::from([
            (me, stat(1)),
            (200, stat(1)),   // a cluster master, named
            (201, stat(200)), // its workers
            (202, stat(200)),
            (203, stat(202)), // a grandchild
            (300, stat(1)),   // nginx master, named
            (301, stat(300)),
            (400, stat(1)), // not named
            (401, stat(400)),
        ]);
        let mut sources = Sources {
            named: vec![("ours workers".into(), 200), ("nginx".into(), 300)],
            ..Sources::generator_only(GENERATOR)
        };
        sources.generator_pids = vec![me];
        let got = classify(&sources, me, &table, |_| None);
        let expected = [
            (100, "loadgen"),
            (200, "ours workers"),
            (201, "ours workers"),
            (202, "ours workers"),
            (203, "ours workers"),
            (300, "nginx"),
            (301, "nginx"),
        ];
        assert_eq!(got, components(&expected));
    }

    #[test]
    fn parses_sample_flags() {
        assert_eq!(
            parse_sample("chat workers=42"),
            Ok(("chat workers".into(), 42))
        );
        assert_eq!(parse_sample("a=b=7"), Ok(("a=b".into(), 7)));
        assert!(parse_sample("nginx").is_err());
        assert!(parse_sample("=7").is_err());
        assert!(parse_sample("loadgen=7").is_err());
        assert!(parse_sample("redis=x").is_err());
        assert!(parse_sample("redis=0").is_err());
    }

    #[test]
    fn samples_this_process() {
        let me = std::process::id();
        let ticks = || read_stat(me).map_or(0, |s| s.ticks);
        let hz = ticks_per_second();
        // An idle "server" beside the busy generator: the sampler must judge the run
        // generator-bound, by the rule, from what it sampled.
        let mut server = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("start sleep");
        let mut sources = Sources::generator_only(GENERATOR);
        sources.named = vec![("idle server".into(), server.id())];
        let before = ticks();
        let sampler = Sampler::start(sources, crate::clock::now_us() - 2_000_000);
        // Spin until this process has used 1.2 s of CPU (not of wall time: on a busy machine
        // the thread may get a fraction of a core) and the sampler took a periodic sample;
        // stopping takes one more.
        let mut x = 0u64;
        while (ticks() - before) as f64 / hz < 1.2 || sampler.samples_taken() == 0 {
            for _ in 0..100_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
        }
        std::hint::black_box(x);
        let resources = sampler.stop().expect("the sampler ran");
        let _ = server.kill();
        let _ = server.wait();
        let component = |name: &str| {
            let found = resources.components.iter().find(|c| c.name == name);
            found.unwrap_or_else(|| panic!("no {name}: {resources:?}"))
        };
        assert_eq!(resources.components.len(), 2, "{resources:?}");
        let (c, idle) = (component(GENERATOR), component("idle server"));
        assert!(c.peak_rss_kib > 0);
        assert!(c.cpu_seconds > 0.5, "{c:?}");
        assert!(c.series.len() >= 2);
        assert!(idle.cpu_seconds < c.cpu_seconds, "{idle:?}");
        assert!(resources.generator_bound, "{resources:?}");
        // Sampling started 2 s into a run that started just now (the clock's µs, rounded).
        let origin = resources.series_origin_s.expect("an origin");
        assert!((2.0..2.5).contains(&origin), "{origin}");
    }
}
