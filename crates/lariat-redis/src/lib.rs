//! # lariat-redis
//!
//! Topics across lariat nodes through Redis pub/sub: a [`Backend`] for
//! [`lariat::pubsub::Topics`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use lariat::pubsub::Topics;
//! use lariat_redis::RedisBackend;
//!
//! // Inside a tokio runtime: the backend starts its tasks when built.
//! let topics = Topics::builder()
//!     .backend(RedisBackend::new("redis://127.0.0.1:6379/")?)
//!     .build();
//! // Every node with the same Redis gets this, on topic "news".
//! topics.publish("news", "hello, cluster").await?;
//! # Ok(()) }
//! ```
//!
//! ## How it works
//!
//! - Each node holds one Redis connection for receiving, subscribed (plain
//!   `SUBSCRIBE`, one channel per topic) only to the topics its own
//!   connections use: [`Topics`](lariat::pubsub::Topics) tells the backend
//!   when a topic's first local subscriber arrives and its last one leaves.
//! - Publishing delivers on the publishing node at once (that is
//!   `Topics::publish`'s part) and `PUBLISH`es to Redis for the others, on a
//!   second, multiplexed connection. A node ignores its own publications
//!   when Redis hands them back.
//! - The channel is the prefix (default `lariat:`) followed by the topic.
//!   The message is one byte for the kind (`t` text, `b` binary), the
//!   publishing node's 16-byte id, then the payload as is. A message that
//!   does not parse, or text that is not UTF-8, is logged and dropped.
//! - When Redis goes away, `publish` fails within the timeout (default
//!   1 s) with a clear error, and the receiving connection reconnects with
//!   a backoff from 50 ms to 1 s, subscribes again to every topic in use
//!   (subscriptions and departures while it was down included), and logs
//!   `redis: reconnected, resubscribed to N topics`.

use std::collections::HashSet;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use lariat::proto::{OpCode, PreparedFrame};
use lariat::pubsub::{Backend, BackendError, Node};
use lariat::{Bytes, Frame, Text};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Length of a node's id on the wire.
const NODE_ID_LEN: usize = 16;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What the topics ask of the receiving task.
enum Change {
    Subscribe(String),
    Unsubscribe(String),
}

/// Topics through Redis. See the [crate docs](crate).
pub struct RedisBackend {
    client: Client,
    prefix: String,
    timeout: Duration,
    node_id: [u8; NODE_ID_LEN],
    changes: mpsc::UnboundedSender<Change>,
    /// Taken by `start`.
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Change>>>,
    /// The publishing connection, made on first use and again after a failure.
    publisher: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field(
                "redis",
                &self.client.get_connection_info().addr().to_string(),
            )
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A node id unlikely to repeat: the process id, the time, and the
/// standard library's per-process random hashing keys.
fn node_id() -> [u8; NODE_ID_LEN] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut id = [0u8; NODE_ID_LEN];
    for (i, half) in id.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u128(nanos);
        h.write_usize(i);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    id
}

impl RedisBackend {
    /// A backend for the Redis at `url` (`redis://host:port/db`). It does
    /// not connect yet: it connects in the background once its `Topics` is
    /// built. Fails only on a bad URL.
    pub fn new(url: &str) -> Result<RedisBackend, redis::RedisError> {
        let client = Client::open(url)?;
        let (changes, receiver) = mpsc::unbounded_channel();
        Ok(RedisBackend {
            client,
            prefix: "lariat:".to_string(),
            timeout: Duration::from_secs(1),
            node_id: node_id(),
            changes,
            receiver: Mutex::new(Some(receiver)),
            publisher: tokio::sync::Mutex::new(None),
        })
    }

    /// The prefix of every Redis channel (default `lariat:`): nodes with the
    /// same Redis and prefix share topics.
    pub fn channel_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long connecting and publishing may take before `publish` fails
    /// (default 1 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    fn config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
    }

    /// One `PUBLISH` on the publishing connection, made if needed; a
    /// connection that failed is dropped, so the next call makes a new one.
    async fn publish_once(&self, channel: &str, message: &[u8]) -> redis::RedisResult<()> {
        let mut slot = self.publisher.lock().await;
        let mut conn = match slot.as_ref() {
            Some(c) => c.clone(),
            None => {
                let c = self
                    .client
                    .get_multiplexed_async_connection_with_config(&self.config())
                    .await?;
                *slot = Some(c.clone());
                c
            }
        };
        drop(slot);
        let r: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(message)
            .query_async(&mut conn)
            .await;
        if r.is_err() {
            *self.publisher.lock().await = None;
        }
        r.map(|_| ())
    }

    fn encode(&self, frame: &PreparedFrame) -> Vec<u8> {
        let payload = frame.payload();
        let mut m = Vec::with_capacity(1 + NODE_ID_LEN + payload.len());
        m.push(match frame.opcode() {
            OpCode::Text => b't',
            _ => b'b',
        });
        m.extend_from_slice(&self.node_id);
        m.extend_from_slice(payload);
        m
    }
}

/// A message from Redis: its frame, unless this node published it. `Err`
/// says why it was dropped.
fn decode(message: &[u8], own_id: &[u8; NODE_ID_LEN]) -> Result<Option<Frame>, &'static str> {
    if message.len() < 1 + NODE_ID_LEN {
        return Err("too short");
    }
    let (kind, rest) = (message[0], &message[1..]);
    let (id, payload) = rest.split_at(NODE_ID_LEN);
    if id == own_id {
        return Ok(None);
    }
    let payload = Bytes::copy_from_slice(payload);
    match kind {
        b't' => Text::from_bytes(payload)
            .map(|t| Some(Frame::Text(t)))
            .map_err(|_| "text that is not UTF-8"),
        b'b' => Ok(Some(Frame::Binary(payload))),
        _ => Err("unknown kind"),
    }
}

impl Backend for RedisBackend {
    fn start(&self, node: Node) {
        let Some(changes) = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            warn!("redis backend started twice; the second start is ignored");
            return;
        };
        let receiver = Receiver {
            client: self.client.clone(),
            prefix: self.prefix.clone(),
            timeout: self.timeout,
            node_id: self.node_id,
            node,
            changes,
            wanted: HashSet::new(),
        };
        tokio::spawn(receiver.run());
    }

    fn subscribe(&self, topic: &str) {
        let _ = self.changes.send(Change::Subscribe(topic.to_string()));
    }

    fn unsubscribe(&self, topic: &str) {
        let _ = self.changes.send(Change::Unsubscribe(topic.to_string()));
    }

    fn publish<'a>(
        &'a self,
        topic: &'a str,
        frame: &'a PreparedFrame,
    ) -> Pin<Box<dyn Future<Output = Result<(), BackendError>> + Send + 'a>> {
        Box::pin(async move {
            let channel = format!("{}{topic}", self.prefix);
            let message = self.encode(frame);
            let attempt = async {
                // A connection broken by a Redis restart fails once: try
                // again at once on a new one.
                match self.publish_once(&channel, &message).await {
                    Ok(()) => Ok(()),
                    Err(_) => self.publish_once(&channel, &message).await,
                }
            };
            match tokio::time::timeout(self.timeout, attempt).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("redis unavailable: {e}").into()),
                Err(_) => Err(format!("redis did not answer within {:?}", self.timeout).into()),
            }
        })
    }
}

/// The receiving side: one task per node.
struct Receiver {
    client: Client,
    prefix: String,
    timeout: Duration,
    node_id: [u8; NODE_ID_LEN],
    node: Node,
    changes: mpsc::UnboundedReceiver<Change>,
    /// The topics this node uses: what to subscribe to after reconnecting.
    wanted: HashSet<String>,
}

/// Why a connected session ended.
enum Ended {
    /// The connection broke: reconnect.
    Lost(String),
    /// The topics (or the backend) are gone: stop.
    Done,
}

impl Receiver {
    async fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        let mut connected_before = false;
        let mut failures = 0u64;
        while self.node.is_alive() {
            match self.session(connected_before).await {
                Ok(Ended::Done) => break,
                Ok(Ended::Lost(why)) => {
                    warn!(error = %why, "redis: connection lost; reconnecting");
                    connected_before = true;
                    backoff = BACKOFF_MIN;
                    failures = 0;
                }
                Err(e) => {
                    failures += 1;
                    // Say it once, then only now and then while it lasts.
                    if failures == 1 || failures.is_multiple_of(30) {
                        warn!(error = %e, attempts = failures, "redis: cannot connect; retrying");
                    }
                    if !self.wait(backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        debug!("redis: topics gone; receiver stops");
    }

    /// Sleep for `d` while keeping track of changes; false if the backend
    /// is gone.
    async fn wait(&mut self, d: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return self.node.is_alive(),
                change = self.changes.recv() => match change {
                    Some(c) => { self.note(c); }
                    None => return false,
                },
            }
        }
    }

    /// Record a change; true if it changes what is subscribed.
    fn note(&mut self, change: Change) -> bool {
        match change {
            Change::Subscribe(t) => self.wanted.insert(t),
            Change::Unsubscribe(t) => self.wanted.remove(&t),
        }
    }

    /// Connect, subscribe to every wanted topic, then deliver until the
    /// connection breaks. `Err` if connecting or subscribing failed.
    async fn session(&mut self, reconnect: bool) -> Result<Ended, String> {
        let pubsub = tokio::time::timeout(self.timeout, self.client.get_async_pubsub())
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
            .map_err(|e| e.to_string())?;
        let (mut sink, mut stream) = pubsub.split();
        // Changes that came while connecting are part of what is wanted.
        while let Ok(c) = self.changes.try_recv() {
            self.note(c);
        }
        let channels: Vec<String> = self
            .wanted
            .iter()
            .map(|t| format!("{}{t}", self.prefix))
            .collect();
        if !channels.is_empty() {
            tokio::time::timeout(self.timeout, sink.subscribe(&channels))
                .await
                .map_err(|_| "SUBSCRIBE got no answer".to_string())?
                .map_err(|e| e.to_string())?;
        }
        if reconnect {
            info!(
                topics = channels.len(),
                "redis: reconnected, resubscribed to {} topics",
                channels.len()
            );
        } else {
            info!(topics = channels.len(), "redis: connected");
        }
        let mut alive = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else {
                        return Ok(Ended::Lost("the connection closed".to_string()));
                    };
                    self.deliver(msg.get_channel_name(), msg.get_payload_bytes());
                }
                change = self.changes.recv() => {
                    let Some(change) = change else { return Ok(Ended::Done) };
                    let (topic, on) = match &change {
                        Change::Subscribe(t) => (format!("{}{t}", self.prefix), true),
                        Change::Unsubscribe(t) => (format!("{}{t}", self.prefix), false),
                    };
                    if !self.note(change) {
                        continue;
                    }
                    let r = if on {
                        tokio::time::timeout(self.timeout, sink.subscribe(&topic)).await
                    } else {
                        tokio::time::timeout(self.timeout, sink.unsubscribe(&topic)).await
                    };
                    match r {
                        Ok(Ok(())) => {}
                        // The wanted set is updated: reconnecting applies it.
                        Ok(Err(e)) => return Ok(Ended::Lost(e.to_string())),
                        Err(_) => return Ok(Ended::Lost("no answer to (UN)SUBSCRIBE".to_string())),
                    }
                }
                _ = alive.tick() => {
                    if !self.node.is_alive() {
                        return Ok(Ended::Done);
                    }
                }
            }
        }
    }

    fn deliver(&self, channel: &str, message: &[u8]) {
        let Some(topic) = channel.strip_prefix(&self.prefix) else {
            warn!(
                channel,
                "redis: message on a channel without our prefix; dropped"
            );
            return;
        };
        match decode(message, &self.node_id) {
            Ok(Some(frame)) => {
                self.node.deliver(topic, frame);
            }
            Ok(None) => {}
            Err(why) => warn!(
                channel,
                bytes = message.len(),
                why,
                "redis: malformed message dropped"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_round_trips_and_skips_own_messages() {
        let b = RedisBackend::new("redis://127.0.0.1:1/").unwrap();
        let text = PreparedFrame::new(Frame::text("héllo")).unwrap();
        let m = b.encode(&text);
        assert_eq!(m[0], b't');
        assert_eq!(&m[1 + NODE_ID_LEN..], "héllo".as_bytes());
        // Our own comes back: skipped; another node's: delivered.
        assert_eq!(decode(&m, &b.node_id), Ok(None));
        assert_eq!(
            decode(&m, &[0; NODE_ID_LEN]),
            Ok(Some(Frame::text("héllo")))
        );
        let bin = PreparedFrame::new(Frame::binary(vec![0u8, 255, 1])).unwrap();
        assert_eq!(
            decode(&b.encode(&bin), &[0; NODE_ID_LEN]),
            Ok(Some(Frame::binary(vec![0u8, 255, 1])))
        );
    }

    #[test]
    fn malformed_messages_are_refused() {
        let other = [9u8; NODE_ID_LEN];
        assert!(decode(b"t", &other).is_err());
        let mut bad_text = vec![b't'];
        bad_text.extend_from_slice(&[1u8; NODE_ID_LEN]);
        bad_text.extend_from_slice(&[0xff, 0xfe]);
        assert!(decode(&bad_text, &other).is_err());
        let mut bad_kind = vec![b'x'];
        bad_kind.extend_from_slice(&[1u8; NODE_ID_LEN]);
        assert!(decode(&bad_kind, &other).is_err());
    }

    #[test]
    fn node_ids_differ() {
        assert_ne!(node_id(), node_id());
    }
}
