//! Issue 14, part 1: the bus on a real Redis Cluster (3 masters and 3 replicas made by
//! `redis-cli --cluster create`, 2 real workers): rooms on every master, each room's sharded
//! channel subscribed exactly where Redis says, and members chatting while a master is killed
//! (its replica takes over) and while slots migrate (`redis-cli --cluster reshard`). Every
//! message is accounted for: lost only inside the fault window, in rooms the fault touched.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_server::redis_cluster::{Master, query};
use chat_server::stack::{RedisClusterSpec, Stack, StackInfo};
use common::*;
use redis::Value;
use roomstorm_client::Incoming;
use serde_json::json;

const PREFIX: &str = "roomstorm:room:";
/// Slots `migrate_slots` moves in the migration test.
const SLOTS_MOVED: usize = 300;
/// Longest wait for the cluster bus to settle after a fault.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(30);

async fn cluster_stack() -> Stack {
    let mut config = stack_config(2, &[]);
    config.redis_cluster = Some(RedisClusterSpec::Start { masters: 3 });
    start_stack_with(config).await
}

async fn masters(stack: &Stack) -> Vec<Master> {
    let cluster = stack
        .redis_cluster()
        .expect("the stack started a Redis Cluster");
    let masters = cluster.lock().await.masters().await;
    masters.expect("the cluster's masters")
}

async fn slot_of(port: u16, room: &str) -> u16 {
    match query(port, &["CLUSTER", "KEYSLOT", &format!("{PREFIX}{room}")]).await {
        Ok(Value::Int(slot)) => u16::try_from(slot).expect("a slot"),
        other => panic!("CLUSTER KEYSLOT: {other:?}"),
    }
}

/// `per_master` rooms named `{tag}-N` on each master whose slot passes `pick`: (room, master).
async fn rooms_on(
    masters: &[Master],
    tag: &str,
    per_master: usize,
    pick: impl Fn(usize, u16) -> bool,
) -> Vec<(String, usize)> {
    let mut found = vec![Vec::new(); masters.len()];
    for i in 0..100_000 {
        if found.iter().all(|rooms| rooms.len() >= per_master) {
            break;
        }
        let room = format!("{tag}-{i}");
        let slot = slot_of(masters[0].port, &room).await;
        let Some(owner) = masters.iter().position(|m| m.owns(slot)) else {
            panic!("nobody owns slot {slot}")
        };
        if found[owner].len() < per_master && pick(owner, slot) {
            found[owner].push(room);
        }
    }
    found
        .into_iter()
        .enumerate()
        .flat_map(|(master, rooms)| rooms.into_iter().map(move |room| (room, master)))
        .collect()
}

fn strings(value: Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                other => panic!("not a string: {other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

/// The sharded channels node `port` has subscribers for.
async fn shard_channels(port: u16) -> HashSet<String> {
    let reply = query(port, &["PUBSUB", "SHARDCHANNELS"]).await;
    strings(reply.expect("PUBSUB SHARDCHANNELS"))
        .into_iter()
        .collect()
}

async fn shard_numsub(port: u16, channel: &str) -> i64 {
    match query(port, &["PUBSUB", "SHARDNUMSUB", channel]).await {
        Ok(Value::Array(items)) => match items.get(1) {
            Some(Value::Int(n)) => *n,
            other => panic!("SHARDNUMSUB: {other:?}"),
        },
        other => panic!("SHARDNUMSUB: {other:?}"),
    }
}

/// A cluster metric summed over the workers.
async fn cluster_metric(info: &StackInfo, name: &str) -> u64 {
    let mut total = 0;
    for (i, worker) in info.workers.iter().enumerate() {
        let text = worker_metrics(*worker).await;
        total += metric_value(&text, &format!("{name}{{worker=\"{i}\"}}"));
    }
    total
}

/// Until every worker has every wanted channel subscribed on some master and Redis answers.
async fn bus_settled(info: &StackInfo) {
    eventually(
        "every worker's channels placed and Redis up",
        RECOVERY_DEADLINE,
        || async {
            for worker in &info.workers {
                let stats = worker_stats(*worker).await;
                let text = worker_metrics(*worker).await;
                let unplaced = text
                    .lines()
                    .find(|l| l.starts_with("chat_cluster_unplaced_channels{"))
                    .and_then(|l| l.rsplit(' ').next()?.parse::<i64>().ok());
                if !stats.redis_up || unplaced != Some(0) {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

/// What one member received: the seqs of its room's sender, in arrival order.
#[derive(Default)]
struct Log {
    seqs: Mutex<Vec<u64>>,
    errors: AtomicU64,
    disconnected: AtomicBool,
}

impl Log {
    fn received(&self) -> Vec<u64> {
        self.seqs.lock().expect("log").clone()
    }
}

/// One room: a sender on worker 0, a listener on worker 1, and what was sent when.
struct RoomChat {
    room: String,
    master: usize,
    logs: Vec<Arc<Log>>,
    sent: Arc<Mutex<Vec<(u64, Instant)>>>,
    stop: Arc<AtomicBool>,
}

impl RoomChat {
    async fn start(stack: &Stack, room: &str, master: usize) -> RoomChat {
        let mut logs = Vec::new();
        let mut sender = None;
        for (i, worker) in stack.info().workers.iter().enumerate() {
            let member = Connect::new(&format!("http://{worker}"), room)
                .join(&format!("m{i}"))
                .await;
            let log = Arc::new(Log::default());
            let Member { tx, mut events, .. } = member;
            let record = log.clone();
            tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    record_event(&record, event);
                }
            });
            logs.push(log);
            sender.get_or_insert(tx);
        }
        let sender = sender.expect("a member");
        let sent = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        tokio::spawn({
            let (sent, stop) = (sent.clone(), stop.clone());
            async move {
                let mut tick = tokio::time::interval(Duration::from_millis(40));
                let mut seq = 0u64;
                while !stop.load(Relaxed) {
                    tick.tick().await;
                    sent.lock().expect("sent").push((seq, Instant::now()));
                    if sender
                        .emit("say", &json!({ "text": format!("n:{seq}") }))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    seq += 1;
                }
            }
        });
        RoomChat {
            room: room.to_string(),
            master,
            logs,
            sent,
            stop,
        }
    }

    fn sent_where(&self, keep: impl Fn(Instant) -> bool) -> Vec<u64> {
        let sent = self.sent.lock().expect("sent");
        sent.iter()
            .filter(|(_, at)| keep(*at))
            .map(|(s, _)| *s)
            .collect()
    }

    fn sent_count(&self) -> usize {
        self.sent.lock().expect("sent").len()
    }

    /// Whether every member received each of `seqs`.
    fn all_received(&self, seqs: &[u64]) -> bool {
        self.logs.iter().all(|log| {
            let got: HashSet<u64> = log.received().into_iter().collect();
            seqs.iter().all(|s| got.contains(s))
        })
    }

    fn errors(&self) -> u64 {
        self.logs.iter().map(|l| l.errors.load(Relaxed)).sum()
    }
}

fn record_event(log: &Log, event: Incoming) {
    match event {
        Incoming::Event { name, data, .. } if name == "message" => {
            let seq = data["data"]["text"]
                .as_str()
                .and_then(|t| t.strip_prefix("n:"))
                .and_then(|n| n.parse().ok());
            if let (Some("broadcast_say"), Some(seq)) = (data["event"].as_str(), seq) {
                log.seqs.lock().expect("log").push(seq);
            }
        }
        Incoming::Event { name, .. } if name == "error" => {
            log.errors.fetch_add(1, Relaxed);
        }
        Incoming::Disconnected { .. } => log.disconnected.store(true, Relaxed),
        _ => {}
    }
}

/// Chat in every room until each has sent `count` more messages.
async fn chat_for(rooms: &[RoomChat], count: usize) {
    let from: Vec<usize> = rooms.iter().map(RoomChat::sent_count).collect();
    eventually(
        "every room to send more",
        Duration::from_secs(30),
        || async {
            rooms
                .iter()
                .zip(&from)
                .all(|(r, from)| r.sent_count() >= from + count)
        },
    )
    .await;
}

/// Runs `fault` while every room chats, waits for the bus to settle, chats on, and checks the
/// ledger: what was sent before the fault and after the recovery reached every member, once
/// and in order; rooms the fault does not `touch` lost nothing at all. Returns what the fault
/// returned and how many deliveries the touched rooms lost inside the window.
async fn chat_through<T>(
    info: &StackInfo,
    rooms: &[RoomChat],
    touched: impl Fn(&RoomChat) -> bool,
    fault: impl Future<Output = T>,
) -> (T, usize) {
    chat_for(rooms, 10).await;
    let fault_start = Instant::now();
    let faulted = fault.await;
    bus_settled(info).await;
    let recovered = Instant::now();
    chat_for(rooms, 15).await;
    for room in rooms {
        room.stop.store(true, Relaxed);
    }
    let mut lost_in_window = 0;
    for room in rooms {
        let before = room.sent_where(|at| at < fault_start);
        let after = room.sent_where(|at| at > recovered);
        let owed = if touched(room) {
            [before, after].concat()
        } else {
            room.sent_where(|_| true)
        };
        // The last message may still be on its way: wait for everything owed.
        eventually(
            &format!("room {} to receive what it is owed", room.room),
            Duration::from_secs(15),
            || async { room.all_received(&owed) },
        )
        .await;
        for log in &room.logs {
            let got = log.received();
            assert!(
                got.windows(2).all(|w| w[0] < w[1]),
                "room {}: duplicated or out of order: {got:?}",
                room.room
            );
            assert!(
                !log.disconnected.load(Relaxed),
                "room {}: a member was cut off",
                room.room
            );
            let all = room.sent_where(|_| true).len();
            lost_in_window += all - got.len();
        }
        if !touched(room) {
            assert_eq!(
                room.errors(),
                0,
                "room {} on an untouched master",
                room.room
            );
        }
    }
    (faulted, lost_in_window)
}

#[tokio::test]
async fn rooms_on_every_master_subscribe_where_their_slot_lives() {
    let stack = cluster_stack().await;
    let masters = masters(&stack).await;
    assert_eq!(masters.len(), 3);
    let rooms = rooms_on(&masters, "spread", 2, |_, _| true).await;
    let mut members = Vec::new();
    for (room, _) in &rooms {
        for worker in &stack.info().workers {
            let member = Connect::new(&format!("http://{worker}"), room)
                .join(&format!("{room}@{worker}"))
                .await;
            members.push(member);
        }
    }
    // Both workers' members hear each other in every room: the message went through the room's
    // master, the only place both workers meet.
    for pair in members.chunks_mut(2) {
        let [a, b] = pair else {
            unreachable!("two per room")
        };
        a.say("from worker 0").await;
        b.expect_message(|m| m["data"]["text"] == "from worker 0")
            .await;
        a.expect_message(|m| m["data"]["text"] == "from worker 0")
            .await;
        b.say("from worker 1").await;
        a.expect_message(|m| m["data"]["text"] == "from worker 1")
            .await;
    }
    // Each master holds exactly its own rooms' channels, each subscribed by both workers.
    for (index, master) in masters.iter().enumerate() {
        let expected: HashSet<String> = rooms
            .iter()
            .filter(|(_, m)| *m == index)
            .map(|(room, _)| format!("{PREFIX}{room}"))
            .collect();
        assert_eq!(
            shard_channels(master.port).await,
            expected,
            "master {index}"
        );
        for channel in &expected {
            assert_eq!(shard_numsub(master.port, channel).await, 2, "{channel}");
        }
    }
    for worker in &stack.info().workers {
        assert_eq!(
            worker_stats(*worker).await.subscribed_channels,
            rooms.len() as i64
        );
    }
    for member in members {
        member.close().await;
    }
    eventually(
        "every master's channels gone",
        Duration::from_secs(10),
        || async {
            for master in &masters {
                if !shard_channels(master.port).await.is_empty() {
                    return false;
                }
            }
            true
        },
    )
    .await;
    for worker in &stack.info().workers {
        eventually(
            "the worker's channels count to 0",
            Duration::from_secs(10),
            || async { worker_stats(*worker).await.subscribed_channels == 0 },
        )
        .await;
    }
    assert_eq!(
        cluster_metric(stack.info(), "chat_cluster_resubscribed_total").await,
        0
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_killed_master_costs_only_its_rooms_and_only_until_its_replica_serves() {
    let stack = cluster_stack().await;
    let before = masters(&stack).await;
    let rooms = rooms_on(&before, "kill", 2, |_, _| true).await;
    // The killed master's rooms live in different slots: re-subscribed together in one
    // SSUBSCRIBE (as the redis crate's cluster connection does) Redis would refuse them.
    let mut slots = HashSet::new();
    for (room, _) in rooms.iter().filter(|(_, m)| *m == 0) {
        slots.insert(slot_of(before[0].port, room).await);
    }
    assert_eq!(slots.len(), 2, "two slots on the killed master");
    let mut chats = Vec::new();
    for (room, master) in &rooms {
        chats.push(RoomChat::start(&stack, room, *master).await);
    }
    let info = stack.info().clone();
    let (killed, lost) = chat_through(&info, &chats, |r| r.master == 0, async {
        stack.kill_redis_master(0).await.expect("kill master 0")
    })
    .await;
    eprintln!(
        "master {} killed, {} took over; {lost} deliveries lost in the window",
        killed.port, killed.promoted
    );
    // The killed master's rooms now live on the promoted replica, subscribed by both workers.
    for chat in chats.iter().filter(|c| c.master == 0) {
        let channel = format!("{PREFIX}{}", chat.room);
        assert_eq!(
            shard_numsub(killed.promoted, &channel).await,
            2,
            "{channel}"
        );
        assert!(
            chat.errors() > 0 || lost > 0,
            "the fault must show in room {}",
            chat.room
        );
    }
    let moved = cluster_metric(&info, "chat_cluster_resubscribed_total").await;
    assert!(
        moved >= 4,
        "2 rooms x 2 workers re-subscribed, counted {moved}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn migrated_slots_take_their_rooms_subscriptions_along() {
    let stack = cluster_stack().await;
    let before = masters(&stack).await;
    let moving: HashSet<u16> = before[0]
        .slots
        .iter()
        .flat_map(|r| r.clone())
        .take(SLOTS_MOVED)
        .collect();
    // Two rooms in the slots that move, one on every master that stays where it is.
    let mut rooms = rooms_on(&before, "mig", 2, |m, slot| {
        m == 0 && moving.contains(&slot)
    })
    .await;
    rooms.retain(|(_, m)| *m == 0);
    rooms.extend(rooms_on(&before, "stay", 1, |_, slot| !moving.contains(&slot)).await);
    let mut chats = Vec::new();
    for (room, master) in &rooms {
        chats.push(RoomChat::start(&stack, room, *master).await);
    }
    let migrated = |chat: &RoomChat| chat.room.starts_with("mig-");
    let info = stack.info().clone();
    let pushed_before = cluster_metric(&info, "chat_cluster_pushed_out_total").await;
    let (slots, lost) = chat_through(&info, &chats, migrated, async {
        stack
            .migrate_slots(0, 1, SLOTS_MOVED)
            .await
            .expect("migrate slots")
    })
    .await;
    assert_eq!(slots.iter().copied().collect::<HashSet<u16>>(), moving);
    eprintln!(
        "{} slots migrated; {lost} deliveries lost in the window",
        slots.len()
    );
    // Masters are numbered by their first slot, which the migration changed: go by port.
    let (source, target) = (before[0].port, before[1].port);
    for chat in chats.iter().filter(|c| migrated(c)) {
        let channel = format!("{PREFIX}{}", chat.room);
        assert_eq!(
            shard_numsub(target, &channel).await,
            2,
            "{channel} on its new master"
        );
        assert!(
            !shard_channels(source).await.contains(&channel),
            "{channel} left behind"
        );
    }
    let pushed = cluster_metric(&info, "chat_cluster_pushed_out_total").await - pushed_before;
    assert!(
        pushed >= 4,
        "2 rooms x 2 workers pushed out by the old master, counted {pushed}"
    );
    let moved = cluster_metric(&info, "chat_cluster_resubscribed_total").await;
    assert!(
        moved >= 4,
        "2 rooms x 2 workers re-subscribed, counted {moved}"
    );
    stack.stop().await;
}

/// The pid of the Redis node on `port` (`INFO server`).
async fn node_pid(port: u16) -> u32 {
    let info = match query(port, &["INFO", "server"]).await {
        Ok(Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(Value::VerbatimString { text, .. }) => text,
        other => panic!("INFO server: {other:?}"),
    };
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no process_id in {info}"))
}

/// The rooms' reconciler works on the cluster bus as on one Redis: an SSUBSCRIBE that timed out
/// on a stalled master (SIGSTOP, shorter than the node timeout, so no failover) fails the join
/// with `unavailable`, and once the master runs again the SSUBSCRIBE it still executed is undone:
/// nothing stays subscribed that no member holds.
#[tokio::test]
async fn a_subscribe_that_timed_out_on_a_stalled_master_is_reconciled() {
    let mut config = stack_config(1, &["--redis-timeout-ms", "300"]);
    config.redis_cluster = Some(RedisClusterSpec::Start { masters: 3 });
    let stack = start_stack_with(config).await;
    let masters = masters(&stack).await;
    let rooms = rooms_on(&masters, "stall", 1, |m, _| m == 0).await;
    let (room, _) = rooms
        .iter()
        .find(|(_, m)| *m == 0)
        .expect("a room on master 0");
    let channel = format!("{PREFIX}{room}");
    let worker = stack.info().workers[0];
    let pid = node_pid(masters[0].port).await;

    let mut member = Connect::new(&format!("http://{worker}"), room)
        .connect()
        .await;
    assert!(chat_server::process::send_signal(pid, libc::SIGSTOP));
    member.emit("join", json!({ "username": "ann" })).await;
    let error = member.expect_error().await;
    assert!(chat_server::process::send_signal(pid, libc::SIGCONT));
    assert_eq!(error["code"], "unavailable", "{error}");
    let reconcile = |worker| async move {
        let text = worker_metrics(worker).await;
        metric_value(&text, "chat_channels_to_reconcile{worker=\"0\"}")
    };
    eventually(
        "the reconciler settles the channel",
        Duration::from_secs(15),
        || async {
            reconcile(worker).await == 0
                && !shard_channels(masters[0].port).await.contains(&channel)
        },
    )
    .await;
    assert_eq!(worker_stats(worker).await.subscribed_channels, 0);
    // The room works once the master answers.
    bus_settled(stack.info()).await;
    member.join("ann").await;
    assert_eq!(shard_numsub(masters[0].port, &channel).await, 1);
    assert_eq!(worker_stats(worker).await.subscribed_channels, 1);
    stack.stop().await;
}
