//! Issue #7: two lariat nodes in one process, each with its own `Topics` on
//! its own `RedisBackend`, one real redis-server (Debian's, on a loopback
//! port) between them, and tokio-tungstenite clients over real sockets.
//! A message crosses nodes once; each node subscribes in Redis only to the
//! topics its own clients use; binary survives byte for byte; garbage on a
//! channel is dropped; Redis killed, restarted or frozen in the middle:
//! publishing fails in bounded time with an error to the sender, and the
//! nodes resubscribe (changes made while Redis was away included) and
//! deliver again without the clients reconnecting.

#[path = "support/redis.rs"]
mod redis_server;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use lariat::pubsub::{PublishError, Topics};
use lariat::{Context, Handler, Init, Message, Reply, Router, Server};
use lariat_redis::{RedisBackend, RedisStatus};
use redis_server::RedisServer;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The bound on anything expected to happen.
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

/// A lariat server whose `Topics` go through Redis.
struct Node {
    topics: Topics,
    addr: SocketAddr,
    status: RedisStatus,
}

async fn node(redis: &RedisServer) -> Node {
    node_with(RedisBackend::new(&redis.url()).unwrap()).await
}

async fn node_with(backend: RedisBackend) -> Node {
    Log::global();
    let status = backend.status();
    let topics = Topics::builder().backend(backend).build();
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
    Node {
        topics,
        addr,
        status,
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client of `node` on `topic`, once the node has it subscribed.
async fn join(node: &Node, topic: &str) -> Ws {
    let before = node.topics.subscriber_count(topic);
    let ws = tokio::time::timeout(
        T,
        tokio_tungstenite::connect_async(format!("ws://{}/{topic}", node.addr)),
    )
    .await
    .expect("connecting timed out")
    .unwrap()
    .0;
    wait_until(&format!("client on {topic}"), || {
        node.topics.subscriber_count(topic) > before
    })
    .await;
    ws
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next message, or `None` if none came within `within`.
async fn next_within(ws: &mut Ws, within: Duration) -> Option<WsMessage> {
    match tokio::time::timeout(within, ws.next()).await {
        Ok(Some(Ok(m))) => Some(m),
        Ok(other) => panic!("connection ended: {other:?}"),
        Err(_) => None,
    }
}

async fn next(ws: &mut Ws) -> WsMessage {
    next_within(ws, T).await.expect("no message within 10 s")
}

/// Nothing more arrives for a while.
async fn quiet(ws: &mut Ws) {
    if let Some(m) = next_within(ws, Duration::from_millis(300)).await {
        panic!("unexpected message: {m:?}");
    }
}

/// Send `tag-N` from `from` until one of them reaches `to` (bounded): after
/// Redis comes back, the first publications may find it not ready yet.
async fn until_crossed(from: &mut Ws, to: &mut Ws, tag: &str) {
    let deadline = Instant::now() + T;
    for i in 0.. {
        assert!(
            Instant::now() < deadline,
            "no '{tag}' message crossed nodes within {T:?}"
        );
        from.send(WsMessage::text(format!("{tag}-{i}")))
            .await
            .unwrap();
        while let Some(m) = next_within(to, Duration::from_millis(200)).await {
            if m.to_text().unwrap().starts_with(tag) {
                return;
            }
        }
    }
}

/// Read `ws` until a text starting with `prefix` arrives (skipping others),
/// within `within`.
async fn text_starting(ws: &mut Ws, prefix: &str, within: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = next_within(ws, left).await?;
        if let Ok(t) = m.to_text() {
            if t.starts_with(prefix) {
                return Some(t.to_string());
            }
        }
    }
}

/// What the nodes log, for the tests that read it.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// The log of this test process: a global subscriber (a thread's own
    /// would miss events of callsites first reached on other threads by the
    /// tests running alongside), set up before any node starts.
    fn global() -> &'static Log {
        static LOG: OnceLock<Log> = OnceLock::new();
        LOG.get_or_init(|| {
            let log = Log::default();
            let writer = log.clone();
            let sub = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(sub).expect("a subscriber was already set");
            log
        })
    }

    /// The lines about `redis` (the backend logs its address).
    fn about(&self, redis: &RedisServer) -> String {
        let tag = format!("redis=127.0.0.1:{}", redis.port());
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(&tag))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Issue #7: a message sent by a client of node A reaches node B's client,
/// and its sender once (the node ignores its own publication coming back
/// from Redis); the same the other way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_crosses_nodes_and_reaches_its_sender_once() {
    let redis = RedisServer::start();
    let a = node(&redis).await;
    let b = node(&redis).await;
    let mut ann = join(&a, "room").await;
    let mut ben = join(&b, "room").await;
    wait_until("both nodes on lariat:room", || {
        redis.numsub("lariat:room") == 2
    })
    .await;

    ann.send(WsMessage::text("hi ben")).await.unwrap();
    assert_eq!(next(&mut ben).await, WsMessage::text("hi ben"));
    assert_eq!(next(&mut ann).await, WsMessage::text("hi ben"));
    ben.send(WsMessage::text("hi ann")).await.unwrap();
    assert_eq!(next(&mut ann).await, WsMessage::text("hi ann"));
    assert_eq!(next(&mut ben).await, WsMessage::text("hi ann"));
    // Nothing twice: the next thing each sees is the next message.
    ann.send(WsMessage::text("second")).await.unwrap();
    assert_eq!(next(&mut ann).await, WsMessage::text("second"));
    assert_eq!(next(&mut ben).await, WsMessage::text("second"));
    quiet(&mut ann).await;
    quiet(&mut ben).await;
    assert!(a.status.is_connected() && b.status.is_connected());
    assert_eq!(a.status.reconnects(), 0);
}

/// Issue #7: each node SUBSCRIBEs in Redis to the topics its own clients
/// use and no other (a topic nobody uses has no channel), leaves a channel
/// when its last client of the topic goes, and puts its prefix in front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_subscribe_in_redis_only_to_topics_their_clients_use() {
    let redis = RedisServer::start();
    let a = node(&redis).await;
    let b = node(&redis).await;
    let blue = node_with(
        RedisBackend::new(&redis.url())
            .unwrap()
            .channel_prefix("blue:"),
    )
    .await;
    wait_until("all three connected", || {
        a.status.is_connected() && b.status.is_connected() && blue.status.is_connected()
    })
    .await;
    assert!(redis.channels().is_empty(), "{:?}", redis.channels());

    let mut ann = join(&a, "room").await;
    let ben = join(&b, "room").await;
    let ben2 = join(&b, "room").await;
    let lone = join(&b, "lonely").await;
    let mut cyan = join(&blue, "room").await;
    wait_until("both nodes on lariat:room", || {
        redis.numsub("lariat:room") == 2
    })
    .await;
    wait_until("channels in use", || redis.channels().len() == 3).await;
    // One subscription per node and topic, whatever its number of clients;
    // nothing for topics no one uses.
    assert_eq!(
        redis.channels(),
        ["blue:room", "lariat:lonely", "lariat:room"]
    );
    assert_eq!(redis.numsub("lariat:lonely"), 1);
    assert_eq!(redis.numsub("lariat:nobody"), 0);

    // Another prefix is another set of topics.
    ann.send(WsMessage::text("lariat only")).await.unwrap();
    assert_eq!(next(&mut ann).await, WsMessage::text("lariat only"));
    quiet(&mut cyan).await;

    // The last local client of a topic leaves: its node leaves the channel.
    drop(lone);
    wait_until("lariat:lonely gone", || {
        !redis.channels().contains(&"lariat:lonely".to_string())
    })
    .await;
    drop(ben);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(redis.numsub("lariat:room"), 2, "ben2 still uses it on b");
    drop(ben2);
    wait_until("only a on lariat:room", || redis.numsub("lariat:room") == 1).await;
    drop(ann);
    drop(cyan);
    wait_until("no channels left", || redis.channels().is_empty()).await;
}

/// Issue #7: binary frames cross nodes byte for byte; garbage published on
/// the channel by another Redis client (too short, unknown kind, text that
/// is not UTF-8) is dropped and delivery goes on; a well-formed message
/// from outside (the documented wire format) is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_crosses_byte_for_byte_and_garbage_is_dropped() {
    let redis = RedisServer::start();
    let a = node(&redis).await;
    let b = node(&redis).await;
    let mut ann = join(&a, "bin").await;
    let mut ben = join(&b, "bin").await;
    wait_until("both on lariat:bin", || redis.numsub("lariat:bin") == 2).await;

    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    ann.send(WsMessage::binary(all_bytes.clone()))
        .await
        .unwrap();
    assert_eq!(next(&mut ben).await, WsMessage::binary(all_bytes.clone()));
    assert_eq!(next(&mut ann).await, WsMessage::binary(all_bytes));
    ben.send(WsMessage::binary(vec![0u8, b't', 0xff, 0]))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ann).await,
        WsMessage::binary(vec![0u8, b't', 0xff, 0])
    );
    assert_eq!(
        next(&mut ben).await,
        WsMessage::binary(vec![0u8, b't', 0xff, 0])
    );

    let mut bad_utf8 = b"t0123456789abcdef".to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe, 0x80]);
    for garbage in [
        &b""[..],
        b"t",
        b"b0123456789",
        b"x0123456789abcdef-unknown kind",
        &bad_utf8,
    ] {
        assert!(redis.publish_raw("lariat:bin", garbage));
    }
    assert!(redis.publish_raw("lariat:bin", b"t0123456789abcdeffrom outside"));
    // Nothing of the garbage reaches anyone: the next message is the
    // well-formed one, then the real one.
    assert_eq!(next(&mut ben).await, WsMessage::text("from outside"));
    assert_eq!(next(&mut ann).await, WsMessage::text("from outside"));
    ann.send(WsMessage::text("still here")).await.unwrap();
    assert_eq!(next(&mut ben).await, WsMessage::text("still here"));
    assert_eq!(next(&mut ann).await, WsMessage::text("still here"));
    quiet(&mut ben).await;
    assert!(a.status.is_connected() && b.status.is_connected());
    assert_eq!(a.status.reconnects() + b.status.reconnects(), 0);
}

/// Issue #7: Redis killed in the middle of a conversation. Publishing
/// while it is down gets the sender an `error:` reply within 3 s (the local
/// subscribers still get it). A client that joins a new topic and one that
/// leaves the last of another while Redis is down are both honoured after
/// it is back; the nodes log the loss and the resubscription; delivery
/// across nodes resumes without any client reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_errors_fast_then_nodes_resubscribe_and_deliver_again() {
    let mut redis = RedisServer::start();
    let a = node(&redis).await;
    let b = node(&redis).await;
    let mut ann = join(&a, "room").await;
    let mut ben = join(&b, "room").await;
    let lone = join(&b, "lonely").await;
    wait_until("subscribed", || {
        redis.numsub("lariat:room") == 2 && redis.numsub("lariat:lonely") == 1
    })
    .await;
    ann.send(WsMessage::text("before")).await.unwrap();
    assert_eq!(next(&mut ben).await, WsMessage::text("before"));
    assert_eq!(next(&mut ann).await, WsMessage::text("before"));

    redis.stop();
    wait_until("both nodes see the loss", || {
        !a.status.is_connected() && !b.status.is_connected()
    })
    .await;
    let t0 = Instant::now();
    ann.send(WsMessage::text("while down")).await.unwrap();
    // Delivered here (to ann herself) and the error from the backend, in
    // either order (the reply can overtake the publication's frame).
    let (mut echoed, mut err) = (false, None);
    while !(echoed && err.is_some()) {
        let left = Duration::from_secs(3).saturating_sub(t0.elapsed());
        let Some(m) = next_within(&mut ann, left).await else {
            panic!("within 3 s while Redis was down: echoed {echoed}, error {err:?}");
        };
        match m.to_text().unwrap() {
            "while down" => echoed = true,
            t if t.starts_with("error:") => err = Some(t.to_string()),
            t => panic!("unexpected {t}"),
        }
    }
    let err = err.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(err.contains("not to other nodes"), "{err}");
    assert!(err.contains("redis"), "{err}");

    // Subscription changes while Redis is away.
    drop(lone);
    let mut carl = join(&b, "late").await;
    wait_until("lonely left on b", || {
        b.topics.subscriber_count("lonely") == 0
    })
    .await;

    redis.restart();
    wait_until("both nodes reconnected", || {
        a.status.is_connected()
            && b.status.is_connected()
            && a.status.reconnects() >= 1
            && b.status.reconnects() >= 1
    })
    .await;
    assert_eq!(redis.channels(), ["lariat:late", "lariat:room"]);
    assert_eq!(redis.numsub("lariat:room"), 2);

    // The same clients, no reconnection.
    until_crossed(&mut ann, &mut ben, "after").await;
    until_crossed(&mut ben, &mut ann, "back").await;
    let mut dave = join(&a, "late").await;
    wait_until("both on lariat:late", || redis.numsub("lariat:late") == 2).await;
    dave.send(WsMessage::text("late news")).await.unwrap();
    assert_eq!(next(&mut carl).await, WsMessage::text("late news"));

    let text = Log::global().about(&redis);
    assert!(text.contains("redis: connection lost"), "{text}");
    assert!(
        text.contains("redis: reconnected, resubscribed to 1 topics"),
        "{text}"
    );
    assert!(
        text.contains("redis: reconnected, resubscribed to 2 topics"),
        "{text}"
    );
}

/// Issue #7: a Redis that keeps its connections open but answers nothing
/// (SIGSTOP): publishing fails within 3 s, the receiving connection is
/// found dead by its PING and replaced once Redis answers again, and
/// delivery resumes with the same clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_is_detected_and_delivery_resumes_after_it_thaws() {
    let redis = RedisServer::start();
    let a = node(&redis).await;
    let b = node(&redis).await;
    let mut ann = join(&a, "room").await;
    let mut ben = join(&b, "room").await;
    wait_until("both on lariat:room", || redis.numsub("lariat:room") == 2).await;
    until_crossed(&mut ann, &mut ben, "warm").await;

    redis.freeze();
    let t0 = Instant::now();
    ann.send(WsMessage::text("frozen")).await.unwrap();
    let err = text_starting(&mut ann, "error:", Duration::from_secs(3))
        .await
        .expect("no error reply within 3 s while Redis was frozen");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(err.contains("redis"), "{err}");
    wait_until("the receiving connections are found dead", || {
        !a.status.is_connected() && !b.status.is_connected()
    })
    .await;

    redis.thaw();
    wait_until("both reconnected", || {
        a.status.is_connected() && b.status.is_connected() && a.status.reconnects() >= 1
    })
    .await;
    until_crossed(&mut ann, &mut ben, "thawed").await;
    until_crossed(&mut ben, &mut ann, "thawed-back").await;
}

/// Issue #7: publishing straight through `Topics` while Redis is down is an
/// error within the backend's timeout (delivered locally, not elsewhere),
/// also when Redis was never there; after Redis is back, publishing works
/// again without rebuilding anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_while_redis_is_down_fails_fast_then_recovers() {
    let mut redis = RedisServer::start();
    let n = node(&redis).await;
    n.topics.publish("t", "up").await.unwrap();
    redis.stop();
    let t0 = Instant::now();
    let err = n.topics.publish("t", "down").await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(
        matches!(err, PublishError::Backend { local: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("not to other nodes"), "{err}");
    redis.restart();
    let deadline = Instant::now() + T;
    while n.topics.publish("t", "back").await.is_err() {
        assert!(Instant::now() < deadline, "publishing never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Nothing listens there: refused at once, and within the timeout in
    // any case.
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let lost = node_with(
        RedisBackend::new(&format!("redis://{nowhere}/"))
            .unwrap()
            .timeout(Duration::from_millis(300)),
    )
    .await;
    let t0 = Instant::now();
    let err = lost.topics.publish("t", "anyone?").await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert!(err.to_string().contains("redis"), "{err}");
    assert!(!lost.status.is_connected());
}

/// Issue #7: the backend's connections end with its `Topics` (the
/// receiving task checks that the topics are alive and stops).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_lets_go_of_redis_when_its_topics_are_dropped() {
    let redis = RedisServer::start();
    let backend = RedisBackend::new(&redis.url()).unwrap();
    let status = backend.status();
    let topics = Topics::builder().backend(backend).build();
    topics.publish("t", "hello").await.unwrap();
    wait_until("connected", || status.is_connected()).await;
    // The receiving connection and the publishing one.
    assert_eq!(redis.other_clients(), 2);
    drop(topics);
    wait_until("connections closed", || redis.other_clients() == 0).await;
    assert!(!status.is_connected());
}

/// Issue #7: a bad URL is the only error `new` gives (it does not connect).
#[test]
fn new_fails_only_on_a_bad_url() {
    assert!(RedisBackend::new("not a url").is_err());
    assert!(RedisBackend::new("redis://127.0.0.1:1/").is_ok());
}
