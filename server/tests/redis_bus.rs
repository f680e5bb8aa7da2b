//! Acceptance 3 and 4: per-room subscriptions follow local membership, and a Redis restart
//! mid-chat costs no connection: `say` fails clearly during the outage and delivery resumes.

mod common;

use std::time::Duration;

use common::*;

async fn numsub(redis_url: &str, channel: &str) -> i64 {
    let client = redis::Client::open(redis_url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis");
    let reply: (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .expect("PUBSUB NUMSUB");
    reply.1
}

#[tokio::test]
async fn a_worker_subscribes_while_it_has_members_of_the_room() {
    let stack = start_stack(2, &[]).await;
    let info = stack.info().clone();
    let channel = "roomstorm:room:subs";
    let worker_url = |i: usize| format!("http://{}", info.workers[i]);
    assert_eq!(numsub(&info.redis_url, channel).await, 0);

    let ann = Connect::new(&worker_url(0), "subs").join("ann").await;
    assert_eq!(numsub(&info.redis_url, channel).await, 1);
    let bob = Connect::new(&worker_url(1), "subs").join("bob").await;
    let cy = Connect::new(&worker_url(1), "subs").join("cy").await;
    assert_eq!(
        numsub(&info.redis_url, channel).await,
        2,
        "one subscription per worker"
    );
    assert_eq!(worker_stats(info.workers[1]).await.subscribed_channels, 1);

    bob.close().await;
    // Worker 1 still has cy: it must stay subscribed. Prove bob's leave was processed first.
    let mut ann = ann;
    ann.expect_message(|m| m["event"] == "broadcast_quit" && m["data"]["username"] == "bob")
        .await;
    assert_eq!(numsub(&info.redis_url, channel).await, 2);

    cy.close().await;
    eventually(
        "worker 1 unsubscribes after its last member left",
        Duration::from_secs(10),
        || {
            let url = info.redis_url.clone();
            async move { numsub(&url, channel).await == 1 }
        },
    )
    .await;
    // The worker counts the unsubscription when Redis acknowledges it, which may come a
    // moment after Redis already shows the channel gone.
    eventually(
        "worker 1's stats show no subscription",
        Duration::from_secs(10),
        || async { worker_stats(info.workers[1]).await.subscribed_channels == 0 },
    )
    .await;
    ann.close().await;
    eventually("worker 0 unsubscribes too", Duration::from_secs(10), || {
        let url = info.redis_url.clone();
        async move { numsub(&url, channel).await == 0 }
    })
    .await;
    stack.stop().await;
}

#[tokio::test]
async fn redis_restart_keeps_connections_and_delivery_resumes() {
    let mut stack = start_stack(2, &[]).await;
    let info = stack.info().clone();
    let worker_url = |i: usize| format!("http://{}", info.workers[i]);
    let mut ann = Connect::new(&worker_url(0), "restart").join("ann").await;
    let mut bob = Connect::new(&worker_url(1), "restart").join("bob").await;
    ann.expect_message(|m| m["data"]["username"] == "bob").await;
    let (ann_sid, bob_sid) = (
        ann.tx.engine_sid().to_string(),
        bob.tx.engine_sid().to_string(),
    );

    stack.stop_redis().await.expect("stop redis");
    for worker in info.workers.clone() {
        eventually(
            "healthz reports Redis down",
            Duration::from_secs(10),
            || async move {
                let reply =
                    chat_server::probe::http_get(worker, "/healthz", Duration::from_secs(1)).await;
                matches!(reply, Ok((503, body)) if body.contains("redis unreachable"))
            },
        )
        .await;
    }
    ann.say("during the outage").await;
    let error = ann.expect_error().await;
    assert_eq!(error["code"], "unavailable", "{error}");
    // A join that needs a new subscription cannot happen either; the socket may retry later.
    let mut late = Connect::new(&worker_url(1), "restart-late").connect().await;
    late.emit("join", serde_json::json!({"username": "late"}))
        .await;
    let error = late.expect_error().await;
    assert_eq!(error["code"], "unavailable", "{error}");

    stack.restart_redis().await.expect("restart redis");
    for worker in &info.workers {
        chat_server::probe::wait_until_ok(*worker, "/healthz", Duration::from_secs(15))
            .await
            .expect("worker healthy again after Redis came back");
    }
    ann.say("after the restart").await;
    for member in [&mut ann, &mut bob] {
        let m = member.next_message().await;
        assert_eq!(
            m["data"]["text"], "after the restart",
            "{}: {m}",
            member.name
        );
    }
    late.join("late").await;
    assert_eq!(ann.tx.engine_sid(), ann_sid);
    assert_eq!(bob.tx.engine_sid(), bob_sid);
    assert!(
        !ann.tx.is_closed() && !bob.tx.is_closed(),
        "nobody reconnected"
    );
    let metrics = worker_metrics(info.workers[0]).await;
    assert!(
        metric_value(
            &metrics,
            "chat_redis_errors_total{worker=\"0\",op=\"publish\"}"
        ) >= 1
    );
    assert!(metric_value(&metrics, "chat_redis_reconnects_total{worker=\"0\"}") >= 1);
    stack.stop().await;
}
