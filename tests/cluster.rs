//! Two demo processes sharing topics through a real Redis (issue #7): a chat
//! message sent on one node reaches the clients of the other; each node
//! subscribes in Redis only to the rooms its clients use; Redis restarted in
//! the middle: publishing while it is down is a clear error to the sender
//! (not a hang), the nodes reconnect, resubscribe and say so in the log, and
//! delivery resumes without the WebSocket clients reconnecting.

#[path = "support/chat.rs"]
mod chat;
#[path = "support/process.rs"]
mod process;
#[path = "support/redis.rs"]
mod redis;

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use chat::{join, next_text, Ws};
use process::demo;
use redis::RedisServer;

/// Send `tag-N` from `from` until one of them reaches `to` (bounded): the
/// nodes subscribe in Redis in the background, so the first messages may
/// find no subscription yet.
async fn until_crossed(from: &mut Ws, to: &mut Ws, tag: &str, within: Duration) {
    let deadline = Instant::now() + within;
    for i in 0.. {
        assert!(
            Instant::now() < deadline,
            "no '{tag}' message crossed nodes within {within:?}"
        );
        from.send(Message::text(format!("{tag}-{i}")))
            .await
            .unwrap();
        while let Some(t) = next_text(to, Duration::from_millis(300)).await {
            if t.starts_with(tag) {
                return;
            }
        }
    }
}

/// Read `ws` until `want` arrives, skipping anything else; false if it did
/// not within `within`.
async fn skip_to(ws: &mut Ws, want: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while let Some(t) = next_text(ws, deadline - tokio::time::Instant::now()).await {
        if t == want {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_a_room_through_redis_and_survive_its_restart() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let a = demo(&["--threads", "1", "--redis", &url]);
    let b = demo(&["--threads", "1", "--redis", &url]);
    let mut alice = join(a.addr, "hall").await;
    let mut bob = join(b.addr, "hall").await;
    let mut dave = join(b.addr, "other").await;
    until_crossed(&mut alice, &mut bob, "warmup", Duration::from_secs(10)).await;
    until_crossed(&mut bob, &mut alice, "warmup-back", Duration::from_secs(10)).await;

    // In order, across nodes, the sender included, and no other room.
    for i in 0..20 {
        alice.send(Message::text(format!("m{i}"))).await.unwrap();
    }
    for i in 0..20 {
        let want = format!("m{i}");
        assert!(
            skip_to(&mut bob, &want, Duration::from_secs(5)).await,
            "{want} at bob"
        );
    }
    assert!(skip_to(&mut alice, "m19", Duration::from_secs(5)).await);
    if let Some(t) = next_text(&mut dave, Duration::from_millis(200)).await {
        panic!("the other room heard {t}");
    }
    // Only the rooms in use are subscribed in Redis.
    let channels = redis.command(&["PUBSUB", "CHANNELS", "*"]).unwrap();
    assert!(channels.contains("chat:hall"), "{channels}");
    assert!(channels.contains("chat:other"), "{channels}");
    assert!(!channels.contains("chat:nobody"), "{channels}");

    // Redis goes away: the sender is told within 3 s, nothing hangs.
    redis.stop();
    let t0 = Instant::now();
    alice.send(Message::text("while-down")).await.unwrap();
    let mut told = None;
    while let Some(t) = next_text(&mut alice, Duration::from_secs(3)).await {
        if t.contains("\"system\"") {
            told = Some(t);
            break;
        }
    }
    let told = told.expect("no error reply within 3 s while Redis was down");
    assert!(told.contains("not delivered everywhere"), "{told}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

    // Redis is back: both nodes reconnect and resubscribe, and say so.
    redis.restart();
    for node in [&a, &b] {
        assert!(
            node.wait_log("resubscribed", Duration::from_secs(15)),
            "no resubscription in the log:\n{}",
            node.log()
        );
    }
    until_crossed(&mut alice, &mut bob, "after", Duration::from_secs(10)).await;
    until_crossed(&mut bob, &mut alice, "after-back", Duration::from_secs(10)).await;
}
