//! Two lariat nodes in one process, each with its own `Topics` on its own
//! `RedisBackend`, one real redis-server between them (issue #7): only the
//! topics in use are subscribed in Redis; binary survives byte for byte;
//! garbage on a channel is dropped; publishing while Redis is down fails in
//! bounded time. Clients are tokio-tungstenite over real sockets.

#[path = "../../../tests/support/redis.rs"]
mod redis_server;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use lariat::pubsub::{PublishError, Topics};
use lariat::{Context, Handler, Init, Message, Reply, Router, Server};
use lariat_redis::RedisBackend;
use redis_server::RedisServer;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const T: Duration = Duration::from_secs(10);

/// Joins `:topic` in init; publishes every message it gets there; replies
/// `error: ...` when the publication did not reach everywhere.
struct Member {
    topics: Topics,
    topic: String,
}

impl Handler for Member {
    type Info = ();
    async fn init(&mut self, ctx: &mut Context<()>) -> Reply {
        ctx.subscribe(&self.topics, &self.topic);
        Reply::ok()
    }
    async fn handle(&mut self, msg: Message, _: &mut Context<()>) -> Reply {
        let frame = match msg {
            Message::Text(t) => lariat::Frame::Text(t),
            Message::Binary(b) => lariat::Frame::Binary(b),
            _ => return Reply::ok(),
        };
        match self.topics.publish(&self.topic, frame).await {
            Ok(_) => Reply::ok(),
            Err(e) => Reply::text(format!("error: {e}")),
        }
    }
}

/// A node: its topics on a `RedisBackend`, served on a loopback port.
async fn node(redis: &RedisServer) -> (Topics, SocketAddr) {
    let topics = Topics::builder()
        .backend(RedisBackend::new(&redis.url()).unwrap())
        .build();
    let t = topics.clone();
    let router = Router::new().route("/:topic", move |req| {
        let topics = t.clone();
        async move {
            let topic = req.param("topic").unwrap().to_string();
            Init::upgrade(Member { topics, topic })
        }
    });
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(router));
    (topics, addr)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn join(addr: SocketAddr, topic: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}/{topic}"))
        .await
        .unwrap()
        .0
}

/// The channels Redis has subscribers for.
fn channels(redis: &RedisServer) -> Vec<String> {
    let out = redis.command(&["PUBSUB", "CHANNELS", "*"]).unwrap();
    let mut v: Vec<String> = out
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Subscribers of `channel` in Redis (`PUBSUB NUMSUB`).
fn numsub(redis: &RedisServer, channel: &str) -> u32 {
    let out = redis.command(&["PUBSUB", "NUMSUB", channel]).unwrap();
    out.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

async fn next(ws: &mut Ws) -> WsMessage {
    tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

/// Issue #7: each node subscribes in Redis only to the topics its own
/// connections use, and leaves when its last one goes; a message crosses
/// nodes once (the sender gets its own once, not again from Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_subscribe_only_to_topics_in_use_and_deliver_once() {
    let redis = RedisServer::start();
    let (topics_a, a) = node(&redis).await;
    let (_topics_b, b) = node(&redis).await;
    assert!(channels(&redis).is_empty());
    let mut ann = join(a, "room").await;
    let mut ben = join(b, "room").await;
    let lone = join(b, "lonely").await;
    wait_until("both nodes on lariat:room", || {
        numsub(&redis, "lariat:room") == 2
    })
    .await;
    wait_until("b on lariat:lonely", || {
        numsub(&redis, "lariat:lonely") == 1
    })
    .await;
    assert_eq!(channels(&redis), ["lariat:lonely", "lariat:room"]);

    ann.send(WsMessage::text("hi ben")).await.unwrap();
    assert_eq!(next(&mut ben).await, WsMessage::text("hi ben"));
    assert_eq!(next(&mut ann).await, WsMessage::text("hi ben"));
    ann.send(WsMessage::text("second")).await.unwrap();
    // The next thing ann sees is her second message: no duplicate of the first.
    assert_eq!(next(&mut ann).await, WsMessage::text("second"));
    assert_eq!(next(&mut ben).await, WsMessage::text("second"));
    assert_eq!(topics_a.subscriber_count("room"), 1);

    // The last local subscriber leaves: the node leaves the channel.
    drop(lone);
    wait_until("lariat:lonely gone", || {
        !channels(&redis).contains(&"lariat:lonely".to_string())
    })
    .await;
    drop(ann);
    wait_until("only b on lariat:room", || {
        numsub(&redis, "lariat:room") == 1
    })
    .await;
}

/// Issue #7: binary frames cross nodes byte for byte; garbage published on
/// a channel by another Redis client is dropped, and delivery goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_survives_and_garbage_is_dropped() {
    let redis = RedisServer::start();
    let (_ta, a) = node(&redis).await;
    let (_tb, b) = node(&redis).await;
    let mut ann = join(a, "bin").await;
    let mut ben = join(b, "bin").await;
    wait_until("both on lariat:bin", || numsub(&redis, "lariat:bin") == 2).await;
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    ann.send(WsMessage::binary(all_bytes.clone()))
        .await
        .unwrap();
    assert_eq!(next(&mut ben).await, WsMessage::binary(all_bytes.clone()));
    let mut bad_utf8 = b"t0123456789abcdef".to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe, 0x80]);
    for garbage in [
        &b""[..],
        b"t",
        b"x0123456789abcdef-unknown kind",
        b"tshort",
        &bad_utf8,
    ] {
        assert!(redis.publish_raw("lariat:bin", garbage));
    }
    ann.send(WsMessage::text("still here")).await.unwrap();
    // Nothing of the garbage reaches ben: the next message is the real one.
    assert_eq!(next(&mut ben).await, WsMessage::text("still here"));
    let _ = ann.next().await;
}

/// Issue #7: publishing while Redis is down is an error within the
/// backend's timeout, never a hang; after Redis is back, publishing works
/// again without rebuilding anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_while_redis_is_down_fails_fast_then_recovers() {
    let mut redis = RedisServer::start();
    let (topics, _addr) = node(&redis).await;
    topics.publish("t", "up").await.unwrap();
    redis.stop();
    let t0 = Instant::now();
    let err = topics.publish("t", "down").await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(
        matches!(err, PublishError::Backend { local: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("not to other nodes"), "{err}");
    redis.restart();
    let deadline = Instant::now() + T;
    while topics.publish("t", "back").await.is_err() {
        assert!(Instant::now() < deadline, "publishing never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
