//! The Redis bus under stress (issue 13): a stalled Redis fills a bounded publish queue and
//! senders are told `busy`; a message handed to a stalled Redis is `outcome_unknown` (and may be
//! delivered after all), one Redis never saw is `unavailable`; and churn across hundreds of
//! rooms during a Redis restart leaves no channel subscribed that has no member.
//!
//! Redis is stalled for real: the test sends SIGSTOP to the stack's own redis-server (its pid
//! from `INFO server`) and SIGCONT afterwards.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use roomstorm_client::Incoming;
use serde_json::Value;

/// The stack's Redis, frozen (SIGSTOP) until dropped or resumed (SIGCONT): a failing test never
/// leaves it stopped.
struct Stalled(u32);

impl Stalled {
    async fn redis(url: &str) -> Stalled {
        let pid = redis_pid(url).await;
        assert!(
            chat_server::process::send_signal(pid, libc::SIGSTOP),
            "redis pid {pid} gone"
        );
        Stalled(pid)
    }

    fn resume(self) {}
}

impl Drop for Stalled {
    fn drop(&mut self) {
        chat_server::process::send_signal(self.0, libc::SIGCONT);
    }
}

async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis")
}

async fn redis_pid(url: &str) -> u32 {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut redis_conn(url).await)
        .await
        .expect("INFO server");
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no process_id in INFO: {info}"))
}

/// Subscribers per room channel, as Redis counts them: (channels, subscriptions in all).
async fn redis_subscriptions(url: &str) -> (usize, i64) {
    let mut conn = redis_conn(url).await;
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg("roomstorm:room:*")
        .query_async(&mut conn)
        .await
        .expect("PUBSUB CHANNELS");
    if channels.is_empty() {
        return (0, 0);
    }
    let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(&channels)
        .query_async(&mut conn)
        .await
        .expect("PUBSUB NUMSUB");
    (channels.len(), counts.iter().map(|(_, n)| n).sum())
}

/// The `code` of an error event; None for anything else (a message, a disconnect fails).
fn error_code(member: &str, event: Incoming) -> Option<String> {
    match event {
        Incoming::Event { name, data, .. } if name == "error" => {
            Some(data["code"].as_str().unwrap_or_default().to_string())
        }
        Incoming::Disconnected { reason } => panic!("{member}: disconnected ({reason})"),
        _ => None,
    }
}

fn worker_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

#[tokio::test]
async fn a_stalled_redis_fills_a_bounded_queue_and_senders_are_told_busy() {
    const BOUND: u64 = 32;
    const SAYS: usize = 40;
    // A long timeout: every say below reaches the worker long before the first batch's
    // outcome frees a place in the queue.
    let stack = start_stack(1, &["--publish-queue", "32", "--redis-timeout-ms", "3000"]).await;
    let info = stack.info().clone();
    let url = worker_url(info.workers[0]);
    let mut members = Vec::new();
    for name in ["ann", "bob", "cy", "dee"] {
        members.push(Connect::new(&url, "stall").join(name).await);
    }
    // Everyone has seen every join (dee saw its own in `join`): nothing else is on its way.
    for member in &mut members[..3] {
        member
            .expect_message(|m| m["event"] == "join" && m["data"]["username"] == "dee")
            .await;
    }

    let stalled = Stalled::redis(&info.redis_url).await;
    for i in 0..SAYS {
        for member in &members {
            member.say(&format!("stall {i}")).await;
        }
    }
    // Each say is answered within the deadline (no hang): refused at once, or handed to the
    // stalled Redis and then unconfirmed. Nothing is delivered meanwhile.
    let (mut busy, mut unknown) = (0, 0);
    for member in &mut members {
        let mut mine_busy = 0;
        for _ in 0..SAYS {
            let event = member.next_event().await;
            match error_code(&member.name, event).as_deref() {
                Some("busy") => mine_busy += 1,
                Some("outcome_unknown") => unknown += 1,
                other => panic!(
                    "{}: expected busy or outcome_unknown, got {other:?}",
                    member.name
                ),
            }
        }
        // At most BOUND of all the says were accepted, fewer than one member's SAYS.
        assert!(mine_busy > 0, "{} was never told busy", member.name);
        busy += mine_busy;
    }
    assert!(unknown > 0 && unknown <= BOUND, "{unknown} handed to Redis");

    let metrics = worker_metrics(info.workers[0]).await;
    let series = |name: &str| metric_value(&metrics, &format!("{name}{{worker=\"0\"}}"));
    assert_eq!(
        series("chat_publish_queue_peak"),
        BOUND,
        "the queue filled up to its bound and never past it"
    );
    assert_eq!(series("chat_publish_queue"), 0, "every message settled");
    let labelled = |name: &str, label: &str| {
        metric_value(&metrics, &format!("{name}{{worker=\"0\",{label}}}"))
    };
    assert_eq!(labelled("chat_rejected_total", "code=\"busy\""), busy);
    assert_eq!(
        labelled("chat_publish_failed_total", "outcome=\"busy\""),
        busy
    );
    assert_eq!(
        labelled("chat_rejected_total", "code=\"outcome_unknown\""),
        unknown
    );

    stalled.resume();
    // The unconfirmed messages were in Redis's socket: it publishes them once it runs again,
    // in order, before anything sent later. That is why the sender was not told "not sent".
    members[0].say("after the stall").await;
    for member in &mut members {
        let mut stall_messages = 0;
        loop {
            let m = member.next_message().await;
            match m["data"]["text"].as_str() {
                Some("after the stall") => break,
                Some(text) if text.starts_with("stall ") => stall_messages += 1,
                _ => panic!("{}: unexpected {m}", member.name),
            }
        }
        assert_eq!(stall_messages, unknown, "{}", member.name);
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_message_handed_to_a_stalled_redis_is_outcome_unknown_and_may_arrive() {
    let stack = start_stack(1, &["--redis-timeout-ms", "500"]).await;
    let info = stack.info().clone();
    let url = worker_url(info.workers[0]);
    let mut ann = Connect::new(&url, "unknown").join("ann").await;
    let mut bob = Connect::new(&url, "unknown").join("bob").await;
    ann.expect_message(|m| m["data"]["username"] == "bob").await;

    let stalled = Stalled::redis(&info.redis_url).await;
    ann.say("maybe").await;
    let error = ann.expect_error().await;
    assert_eq!(error["code"], "outcome_unknown", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("may or may not have been delivered")),
        "{error}"
    );
    stalled.resume();
    // Delivered after all: a retry on `outcome_unknown` would have duplicated it.
    for member in [&mut ann, &mut bob] {
        let m = member.next_message().await;
        assert_eq!(m["data"]["text"], "maybe", "{}: {m}", member.name);
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_message_redis_never_saw_is_unavailable_and_never_arrives() {
    let mut stack = start_stack(1, &["--redis-timeout-ms", "500"]).await;
    let info = stack.info().clone();
    let url = worker_url(info.workers[0]);
    let mut ann = Connect::new(&url, "down").join("ann").await;
    let mut bob = Connect::new(&url, "down").join("bob").await;
    ann.expect_message(|m| m["data"]["username"] == "bob").await;

    stack.stop_redis().await.expect("stop redis");
    let worker = info.workers[0];
    eventually(
        "healthz reports Redis down",
        Duration::from_secs(10),
        || async move {
            let reply =
                chat_server::probe::http_get(worker, "/healthz", Duration::from_secs(1)).await;
            matches!(reply, Ok((503, _)))
        },
    )
    .await;
    ann.say("never sent").await;
    let error = ann.expect_error().await;
    assert_eq!(error["code"], "unavailable", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("message not sent")),
        "{error}"
    );

    stack.restart_redis().await.expect("restart redis");
    chat_server::probe::wait_until_ok(worker, "/healthz", Duration::from_secs(15))
        .await
        .expect("healthy again");
    ann.say("after").await;
    for member in [&mut ann, &mut bob] {
        let m = member.next_message().await;
        assert_eq!(m["data"]["text"], "after", "{}: {m}", member.name);
    }
    let metrics = worker_metrics(worker).await;
    assert_eq!(
        metric_value(
            &metrics,
            "chat_publish_failed_total{worker=\"0\",outcome=\"unavailable\"}"
        ),
        1
    );
    stack.stop().await;
}

/// Joins one member per room, `rooms` on alternate workers, all at once.
async fn join_rooms(workers: &[SocketAddr], rooms: std::ops::Range<usize>) -> Vec<Member> {
    let joins = rooms.map(|i| {
        let url = worker_url(workers[i % workers.len()]);
        async move {
            Connect::new(&url, &format!("churn-{i}"))
                .join(&format!("m{i}"))
                .await
        }
    });
    futures_util::future::join_all(joins).await
}

async fn close_all(members: Vec<Member>) {
    futures_util::future::join_all(members.into_iter().map(Member::close)).await;
}

/// Tries to join one room per index while Redis is down; each is refused `unavailable`.
async fn joins_refused(workers: &[SocketAddr], rooms: std::ops::Range<usize>) {
    let tries = rooms.map(|i| {
        let url = worker_url(workers[i % workers.len()]);
        async move {
            let mut member = Connect::new(&url, &format!("churn-{i}")).connect().await;
            member
                .emit("join", serde_json::json!({"username": format!("m{i}")}))
                .await;
            let error: Value = member.expect_error().await;
            assert_eq!(error["code"], "unavailable", "room {i}: {error}");
            member.close().await;
        }
    });
    futures_util::future::join_all(tries).await;
}

#[tokio::test]
async fn churn_across_hundreds_of_rooms_during_a_redis_restart_leaks_no_channel() {
    const KEPT: usize = 10;
    let mut stack = start_stack(2, &["--redis-timeout-ms", "500"]).await;
    let info = stack.info().clone();
    let workers = info.workers.clone();

    let mut members = join_rooms(&workers, 0..240).await;
    let leaving = members.split_off(KEPT);
    assert_eq!(redis_subscriptions(&info.redis_url).await, (240, 240));

    stack.stop_redis().await.expect("stop redis");
    // 230 members leave while Redis is down: every UNSUBSCRIBE fails.
    close_all(leaving).await;
    // Joins into 40 new rooms fail meanwhile (their SUBSCRIBE may or may not have left).
    joins_refused(&workers, 240..280).await;
    for (i, worker) in workers.iter().enumerate() {
        eventually(
            "the worker processed every leave",
            Duration::from_secs(20),
            || async move { worker_stats(*worker).await.members == (KEPT / 2) as i64 },
        )
        .await;
        let stats = worker_stats(*worker).await;
        assert!(
            stats.subscribed_channels > stats.rooms,
            "worker {i}: the failed unsubscribes should still count as subscribed: {stats:?}"
        );
    }

    stack.restart_redis().await.expect("restart redis");
    for worker in &workers {
        chat_server::probe::wait_until_ok(*worker, "/healthz", Duration::from_secs(15))
            .await
            .expect("healthy again");
    }
    // More churn once Redis is back.
    close_all(join_rooms(&workers, 280..320).await).await;

    for (i, worker) in workers.iter().enumerate() {
        eventually(
            "the worker's channels equal its rooms with members",
            Duration::from_secs(20),
            || async move {
                let stats = worker_stats(*worker).await;
                stats.subscribed_channels == stats.rooms && stats.rooms == (KEPT / 2) as i64
            },
        )
        .await;
        let metrics = worker_metrics(*worker).await;
        let pending = format!("chat_channels_to_reconcile{{worker=\"{i}\"}}");
        assert_eq!(metric_value(&metrics, &pending), 0);
    }
    // Redis agrees: one subscription per kept room (each kept room has its one member on one
    // worker), none for the rooms that were left.
    eventually(
        "Redis's subscriptions equal the workers' own count",
        Duration::from_secs(20),
        || {
            let url = info.redis_url.clone();
            async move { redis_subscriptions(&url).await == (KEPT, KEPT as i64) }
        },
    )
    .await;
    // The kept rooms still work.
    for member in &mut members {
        let text = format!("still here {}", member.name);
        member.say(&text).await;
        let m = member.next_message().await;
        assert_eq!(m["data"]["text"], text.as_str(), "{}", member.name);
    }
    close_all(members).await;
    stack.stop().await;
}

/// Resident memory of a process, in KiB (`VmRSS` in /proc).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_default()
}

/// Not a test: measures a worker's RSS before, during (10 s) and after a Redis stall under
/// load, for BENCHMARKS.md. `ROOMSTORM_PUBLISH_QUEUE` sets `--publish-queue` (default 4096).
/// `cargo test -p chat-server --test bus_stress -- --ignored --nocapture worker_rss`
#[tokio::test]
#[ignore]
async fn worker_rss_with_redis_stalled() {
    let queue = std::env::var("ROOMSTORM_PUBLISH_QUEUE").unwrap_or_else(|_| "4096".into());
    let args = [
        "--publish-queue",
        &queue,
        "--rate-per-sec",
        "1000",
        "--rate-burst",
        "1000",
    ];
    let stack = start_stack(1, &args).await;
    let info = stack.info().clone();
    let pid = stack.worker_pid(0).await.expect("worker pid");
    let url = worker_url(info.workers[0]);
    let (members, rate, text) = (40usize, 50u64, "x".repeat(1000));
    let mut senders = Vec::new();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for i in 0..members {
        let mut member = Connect::new(&url, &format!("rss-{}", i % 8))
            .join(&format!("m{i}"))
            .await;
        let (stop, text) = (stop.clone(), text.clone());
        senders.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                member.say(&text).await;
                while member.events.try_recv().is_ok() {}
            }
            member.close().await;
        }));
    }
    let sample = |what: &str| {
        let kib = rss_kib(pid);
        println!("{what}: worker RSS {:.1} MiB", kib as f64 / 1024.0);
        kib
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    sample("before (5 s of load)");
    let stalled = Stalled::redis(&info.redis_url).await;
    let mut peak = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak = peak.max(rss_kib(pid));
    }
    println!("during (10 s stall): peak {:.1} MiB", peak as f64 / 1024.0);
    stalled.resume();
    tokio::time::sleep(Duration::from_secs(10)).await;
    sample("after (10 s after SIGCONT)");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let metrics = worker_metrics(info.workers[0]).await;
    for line in metrics.lines().filter(|l| {
        l.starts_with("chat_publish_queue_peak")
            || l.starts_with("chat_publish_failed_total")
            || l.starts_with("chat_published_total")
    }) {
        println!("{line}");
    }
    futures_util::future::join_all(senders).await;
    stack.stop().await;
}
