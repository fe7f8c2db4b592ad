//! Topics: publish a message once, deliver it to every connection that
//! subscribed (Erlang's process groups, uWebSockets' topics).
//!
//! A connection subscribes and leaves from any callback through its
//! [`Context`](crate::Context), and leaves every topic when it ends. A
//! publication reaches each subscriber either straight out as a frame (the
//! handler is not called; the frame is encoded, and compressed, once for all)
//! or through the handler's `info` callback, mapped to its message type.
//!
//! Publishing never waits for a subscriber: each gets the publication in its
//! mailbox and its own task writes it. A subscriber that does not keep up
//! (its send queue past [`Upgrade::send_queue_limit`](crate::Upgrade::send_queue_limit),
//! or its bounded mailbox full) is dropped from the delivery and told
//! ([`Handler::missed`](crate::Handler::missed)), or disconnected with 1008:
//! [`SlowSubscriber`].
//!
//! With a [`Backend`] (such as the `lariat-redis` crate), topics span every
//! node that shares it: a publication is delivered here at once and handed to
//! the backend for the other nodes; a node asks the backend only for the
//! topics its own connections use.
//!
//! ```
//! use lariat::pubsub::Topics;
//! use lariat::{Context, Handler, Message, Reply};
//!
//! struct Room {
//!     topics: Topics,
//!     name: String,
//! }
//!
//! impl Handler for Room {
//!     type Info = ();
//!     async fn init(&mut self, ctx: &mut Context<()>) -> Reply {
//!         ctx.subscribe(&self.topics, &self.name);
//!         Reply::ok()
//!     }
//!     async fn handle(&mut self, msg: Message, _ctx: &mut Context<()>) -> Reply {
//!         if let Message::Text(t) = msg {
//!             // Everyone in the room gets it, the sender included.
//!             if let Err(e) = self.topics.publish(&self.name, t).await {
//!                 return Reply::text(format!("not delivered everywhere: {e}"));
//!             }
//!         }
//!         Reply::ok()
//!     }
//! }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock, Weak};

use lariat_proto::{Frame, PreparedFrame};

use crate::handle::Handle;

/// What happens to a subscriber that does not keep up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowSubscriber {
    /// Close it with 1008 (policy violation); its `terminate` gets
    /// [`TerminateReason::SlowConsumer`](crate::TerminateReason::SlowConsumer).
    /// The default: nothing it was promised is lost silently.
    #[default]
    Disconnect,
    /// Skip it for this publication, count the miss, and call its handler's
    /// [`missed`](crate::Handler::missed) once it has caught up.
    Drop,
}

/// An error from a [`Backend`].
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// Why a publication did not reach everywhere.
#[derive(Debug)]
#[non_exhaustive]
pub enum PublishError {
    /// Only text and binary frames can be published.
    NotData,
    /// Delivered on this node (to `local` subscribers) but the backend could
    /// not take it to the others.
    Backend {
        /// Subscribers reached on this node.
        local: usize,
        /// What the backend said.
        error: BackendError,
    },
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::NotData => f.write_str("only text and binary frames can be published"),
            PublishError::Backend { local, error } => write!(
                f,
                "delivered to {local} local subscribers but not to other nodes: {error}"
            ),
        }
    }
}

impl std::error::Error for PublishError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PublishError::Backend { error, .. } => Some(&**error),
            PublishError::NotData => None,
        }
    }
}

/// A message published to a topic, as subscribers receive it.
#[derive(Debug)]
pub struct Publication {
    topic: Arc<str>,
    frame: PreparedFrame,
    slow: SlowSubscriber,
}

impl Publication {
    /// The topic it was published to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The frame (cheap: the payload is shared).
    pub fn frame(&self) -> Frame {
        self.frame.to_frame()
    }

    /// The text, if it is a text message.
    pub fn text(&self) -> Option<&str> {
        match self.frame.opcode() {
            lariat_proto::OpCode::Text => std::str::from_utf8(self.frame.payload()).ok(),
            _ => None,
        }
    }

    /// The message's bytes.
    pub fn payload(&self) -> &bytes::Bytes {
        self.frame.payload()
    }

    pub(crate) fn prepared(&self) -> &PreparedFrame {
        &self.frame
    }

    pub(crate) fn slow_policy(&self) -> SlowSubscriber {
        self.slow
    }
}

/// How topics reach other nodes: implemented by `lariat-redis`.
///
/// `subscribe` and `unsubscribe` are called under the topics' lock, in order
/// for each topic, and must not block (queue the work and return).
pub trait Backend: Send + Sync + 'static {
    /// Called once, when the [`Topics`] is built: `node` delivers what other
    /// nodes publish to this node's subscribers.
    fn start(&self, node: Node);
    /// This node's first subscriber to `topic` arrived: receive it from
    /// the other nodes.
    fn subscribe(&self, topic: &str);
    /// This node's last subscriber to `topic` left.
    fn unsubscribe(&self, topic: &str);
    /// Hand a publication to the other nodes (not back to this one). Must
    /// fail in bounded time when the backend is unreachable.
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        frame: &'a PreparedFrame,
    ) -> Pin<Box<dyn Future<Output = Result<(), BackendError>> + Send + 'a>>;
}

/// This node's side of a [`Topics`], for its [`Backend`].
#[derive(Clone)]
pub struct Node {
    inner: Weak<Inner>,
}

impl Node {
    /// Deliver a publication from another node to this node's subscribers;
    /// how many were reached (0 once the `Topics` is gone).
    pub fn deliver(&self, topic: &str, frame: Frame) -> usize {
        match (self.inner.upgrade(), PreparedFrame::new(frame)) {
            (Some(inner), Ok(frame)) => inner.deliver(topic, frame),
            _ => 0,
        }
    }

    /// The topics this node's connections use now (to subscribe again after
    /// the backend reconnects).
    pub fn topics(&self) -> Vec<String> {
        self.inner
            .upgrade()
            .map(|i| read(&i.subs).keys().map(|t| t.to_string()).collect())
            .unwrap_or_default()
    }

    /// Is the `Topics` still alive? A backend's tasks end when it is not.
    pub fn is_alive(&self) -> bool {
        self.inner.strong_count() > 0
    }
}

/// Where a subscriber's publications go: a connection's mailbox.
pub(crate) trait Sink: Send + Sync {
    /// Deliver; false if the connection has ended.
    fn deliver(&self, p: &Arc<Publication>) -> bool;
}

/// Straight out as a frame.
struct FrameSink<M>(Handle<M>);

impl<M: Send + 'static> Sink for FrameSink<M> {
    fn deliver(&self, p: &Arc<Publication>) -> bool {
        self.0.publish(p.clone())
    }
}

/// Makes a handler's `info` message from a publication.
pub(crate) type MapFn<M> = Box<dyn Fn(&Publication) -> M + Send + Sync>;

/// To the handler's `info`, mapped.
struct InfoSink<M> {
    handle: Handle<M>,
    map: MapFn<M>,
}

impl<M: Send + 'static> Sink for InfoSink<M> {
    fn deliver(&self, p: &Arc<Publication>) -> bool {
        match self.handle.send((self.map)(p)) {
            Ok(()) => true,
            Err(crate::SendError::Full(_)) => true,
            Err(crate::SendError::Closed(_)) => false,
        }
    }
}

struct Subscriber {
    conn: u64,
    sink: Box<dyn Sink>,
}

/// One topic's subscribers on this node.
struct TopicSubs {
    name: Arc<str>,
    list: Vec<Subscriber>,
}

struct Inner {
    subs: RwLock<HashMap<Arc<str>, TopicSubs>>,
    slow: SlowSubscriber,
    backend: Option<Arc<dyn Backend>>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Critical sections are pushes, removals and iteration: a panic
    // elsewhere cannot leave the map inconsistent.
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn deliver(&self, topic: &str, frame: PreparedFrame) -> usize {
        let subs = read(&self.subs);
        let Some(t) = subs.get(topic) else {
            return 0;
        };
        let p = Arc::new(Publication {
            topic: t.name.clone(),
            frame,
            slow: self.slow,
        });
        t.list.iter().filter(|s| s.sink.deliver(&p)).count()
    }
}

/// A set of topics: clone it into every handler that publishes or subscribes.
#[derive(Clone)]
pub struct Topics {
    inner: Arc<Inner>,
}

impl Default for Topics {
    fn default() -> Self {
        Topics::new()
    }
}

impl std::fmt::Debug for Topics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topics")
            .field("topics", &read(&self.inner.subs).len())
            .field("slow", &self.inner.slow)
            .field("backend", &self.inner.backend.is_some())
            .finish()
    }
}

/// Builds a [`Topics`] with options.
#[derive(Default)]
pub struct TopicsBuilder {
    slow: SlowSubscriber,
    backend: Option<Arc<dyn Backend>>,
}

impl TopicsBuilder {
    /// What to do with subscribers that do not keep up. Default: disconnect.
    pub fn slow_subscriber(mut self, policy: SlowSubscriber) -> Self {
        self.slow = policy;
        self
    }

    /// Share topics with other nodes through `backend`.
    pub fn backend(mut self, backend: impl Backend) -> Self {
        self.backend = Some(Arc::new(backend));
        self
    }

    /// The topics.
    pub fn build(self) -> Topics {
        let inner = Arc::new(Inner {
            subs: RwLock::new(HashMap::new()),
            slow: self.slow,
            backend: self.backend,
        });
        if let Some(b) = &inner.backend {
            b.start(Node {
                inner: Arc::downgrade(&inner),
            });
        }
        Topics { inner }
    }
}

impl Topics {
    /// Topics on this node only, disconnecting slow subscribers.
    pub fn new() -> Topics {
        Topics::builder().build()
    }

    /// Topics with options (slow-subscriber policy, a backend).
    pub fn builder() -> TopicsBuilder {
        TopicsBuilder::default()
    }

    /// Publish to every subscriber of `topic`, on every node: delivered here
    /// at once, then handed to the backend (if any). Returns the number of
    /// subscribers reached on this node. Subscribers that do not keep up
    /// never slow this down.
    pub async fn publish(
        &self,
        topic: &str,
        frame: impl Into<Frame>,
    ) -> Result<usize, PublishError> {
        let frame = PreparedFrame::new(frame.into()).map_err(|_| PublishError::NotData)?;
        let Some(backend) = &self.inner.backend else {
            return Ok(self.inner.deliver(topic, frame));
        };
        // The backend needs the frame after local delivery: keep a copy of the
        // (shared) payload, not of an encoding.
        let remote = PreparedFrame::new(frame.to_frame()).map_err(|_| PublishError::NotData)?;
        let local = self.inner.deliver(topic, frame);
        match backend.publish(topic, &remote).await {
            Ok(()) => Ok(local),
            Err(error) => Err(PublishError::Backend { local, error }),
        }
    }

    /// Publish to this node's subscribers only; how many were reached.
    pub fn publish_local(
        &self,
        topic: &str,
        frame: impl Into<Frame>,
    ) -> Result<usize, PublishError> {
        let frame = PreparedFrame::new(frame.into()).map_err(|_| PublishError::NotData)?;
        Ok(self.inner.deliver(topic, frame))
    }

    /// Subscribers to `topic` on this node.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        read(&self.inner.subs)
            .get(topic)
            .map_or(0, |t| t.list.len())
    }

    /// Topics with at least one subscriber on this node.
    pub fn topic_count(&self) -> usize {
        read(&self.inner.subs).len()
    }

    fn same(&self, other: &Topics) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn add(&self, topic: &str, conn: u64, sink: Box<dyn Sink>) -> Arc<str> {
        let mut subs = write(&self.inner.subs);
        if let Some(t) = subs.get_mut(topic) {
            t.list.push(Subscriber { conn, sink });
            return t.name.clone();
        }
        let name: Arc<str> = Arc::from(topic);
        subs.insert(
            name.clone(),
            TopicSubs {
                name: name.clone(),
                list: vec![Subscriber { conn, sink }],
            },
        );
        if let Some(b) = &self.inner.backend {
            b.subscribe(topic);
        }
        name
    }

    fn remove(&self, topic: &str, conn: u64) {
        let mut subs = write(&self.inner.subs);
        let Some(t) = subs.get_mut(topic) else {
            return;
        };
        if let Some(i) = t.list.iter().position(|s| s.conn == conn) {
            t.list.swap_remove(i);
        }
        if t.list.is_empty() {
            subs.remove(topic);
            if let Some(b) = &self.inner.backend {
                b.unsubscribe(topic);
            }
        }
    }
}

/// The topics one connection is subscribed to; it leaves them all when
/// dropped (the connection has ended).
pub(crate) struct Subscriptions {
    conn: u64,
    list: Vec<(Topics, Arc<str>)>,
}

impl Subscriptions {
    pub(crate) fn new(conn: u64) -> Subscriptions {
        Subscriptions {
            conn,
            list: Vec::new(),
        }
    }

    fn position(&self, topics: &Topics, topic: &str) -> Option<usize> {
        self.list
            .iter()
            .position(|(t, name)| t.same(topics) && **name == *topic)
    }

    /// Subscribe `handle`'s connection; false if it already is (or has ended).
    pub(crate) fn join<M: Send + 'static>(
        &mut self,
        topics: &Topics,
        topic: &str,
        handle: &Handle<M>,
        map: Option<MapFn<M>>,
    ) -> bool {
        if handle.is_closed() || self.position(topics, topic).is_some() {
            return false;
        }
        let sink: Box<dyn Sink> = match map {
            None => Box::new(FrameSink(handle.clone())),
            Some(map) => Box::new(InfoSink {
                handle: handle.clone(),
                map,
            }),
        };
        let name = topics.add(topic, self.conn, sink);
        self.list.push((topics.clone(), name));
        true
    }

    /// False if it was not subscribed.
    pub(crate) fn leave(&mut self, topics: &Topics, topic: &str) -> bool {
        match self.position(topics, topic) {
            Some(i) => {
                let (t, name) = self.list.swap_remove(i);
                t.remove(&name, self.conn);
                true
            }
            None => false,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn leave_all(&mut self) {
        for (t, name) in std::mem::take(&mut self.list) {
            t.remove(&name, self.conn);
        }
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|(_, n)| &**n)
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        self.leave_all();
    }
}
