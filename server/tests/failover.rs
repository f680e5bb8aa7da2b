//! Acceptance 5: a SIGKILLed worker is restarted by the master and its members reconnect
//! through nginx and chat again; a SIGKILLed master leaves no worker running.

mod common;

use std::time::Duration;

use common::*;
use roomstorm_client::Incoming;

#[tokio::test]
async fn killed_worker_is_restarted_and_its_members_come_back() {
    let stack = start_stack(2, &[]).await;
    let url = stack.info().url.clone();
    let mut members = Vec::new();
    for k in 1..=6u8 {
        members.push((
            k,
            Connect::new(&url, "failover")
                .bind(member_addr(k))
                .join(&format!("m{k}"))
                .await,
        ));
    }
    let on_worker_0 = worker_stats(stack.info().workers[0]).await.members;
    assert!(on_worker_0 > 0, "ip_hash put nobody on worker 0");

    let killed_pid = stack.kill_worker(0).await.expect("kill worker 0");
    // Exactly the members of worker 0 lose their connection; the others stay.
    let mut lost: Vec<u8> = Vec::new();
    let started = tokio::time::Instant::now();
    while (lost.len() as i64) < on_worker_0 {
        for (k, member) in members.iter_mut() {
            while let Ok(event) = member.events.try_recv() {
                if matches!(event, Incoming::Disconnected { .. }) {
                    lost.push(*k);
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "members of worker 0 still connected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut survivors: Vec<Member> = members
        .into_iter()
        .filter(|(k, _)| !lost.contains(k))
        .map(|(_, m)| m)
        .collect();
    assert!(!survivors.is_empty());

    eventually(
        "the master restarts worker 0",
        Duration::from_secs(15),
        || async {
            match stack.cluster_status().await {
                Ok(status) => {
                    let w = &status.workers[0];
                    w.restarts == 1 && w.up && w.pid.is_some_and(|p| p != killed_pid)
                }
                Err(_) => false,
            }
        },
    )
    .await;

    // The lost members reconnect through nginx with the same address and chat again.
    let mut returned = Vec::new();
    for k in &lost {
        returned.push(
            Connect::new(&url, "failover")
                .bind(member_addr(*k))
                .join(&format!("back{k}"))
                .await,
        );
    }
    returned[0].say("I am back").await;
    for member in survivors.iter_mut().chain(returned.iter_mut()) {
        member
            .expect_message(|m| m["event"] == "broadcast_say" && m["data"]["text"] == "I am back")
            .await;
    }
    stack.stop().await;
}

fn process_alive(pid: u32) -> bool {
    // A zombie is dead for our purpose: it runs nothing and holds no port.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test]
async fn killed_master_leaves_no_worker_behind() {
    let stack = start_stack(2, &[]).await;
    let status = stack.cluster_status().await.expect("cluster status");
    let pids: Vec<u32> = status.workers.iter().filter_map(|w| w.pid).collect();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| process_alive(*p)));
    let master = stack.master_pid().expect("master pid");
    assert!(chat_server::process::send_signal(master, libc::SIGKILL));
    eventually(
        "every worker exits after its master was SIGKILLed",
        Duration::from_secs(10),
        || {
            let pids = pids.clone();
            async move { pids.iter().all(|p| !process_alive(*p)) }
        },
    )
    .await;
    stack.stop().await;
}

#[tokio::test]
async fn sigterm_stops_a_worker_and_disconnects_its_clients() {
    let stack = start_stack(1, &[]).await;
    let worker = stack.info().workers[0];
    let mut ann = Connect::new(&format!("http://{worker}"), "bye")
        .join("ann")
        .await;
    let pid = stack.worker_pid(0).await.expect("worker pid");
    assert!(chat_server::process::send_signal(pid, libc::SIGTERM));
    ann.expect_disconnect().await;
    eventually(
        "the worker process exits",
        Duration::from_secs(6),
        || async move { !process_alive(pid) },
    )
    .await;
    stack.stop().await;
}

#[tokio::test]
async fn sigterm_to_the_master_stops_every_worker_gracefully() {
    let stack = start_stack(2, &[]).await;
    let workers = stack.info().workers.clone();
    let mut members = Vec::new();
    for (i, worker) in workers.iter().enumerate() {
        members.push(
            Connect::new(&format!("http://{worker}"), "stop")
                .join(&format!("m{i}"))
                .await,
        );
    }
    let pids: Vec<u32> = stack
        .cluster_status()
        .await
        .expect("cluster status")
        .workers
        .iter()
        .filter_map(|w| w.pid)
        .collect();
    let master = stack.master_pid().expect("master pid");
    assert!(chat_server::process::send_signal(master, libc::SIGTERM));
    for member in &mut members {
        member.expect_disconnect().await;
    }
    eventually("master and workers exit", Duration::from_secs(10), || {
        let pids = pids.clone();
        async move { !process_alive(master) && pids.iter().all(|p| !process_alive(*p)) }
    })
    .await;
    stack.stop().await;
}
