//! The handler model: the callbacks a connection runs (S3-S6), what they
//! return (S4, S7, S10, S11) and why a connection ended.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use lariat_proto::{CloseCode, Frame, Message, ProtocolError};

use crate::handle::Handle;
use crate::pubsub::{Publication, Subscriptions, Topics};
use crate::timer::{TimerId, Timers};

/// A WebSocket handler: Cowboy's `websocket_*` callbacks.
///
/// One value per connection, created by the route's init (S1). Its callbacks
/// run one at a time inside the connection's task, so its state needs no lock.
/// Each callback may be `async`; while one runs, the connection reads nothing
/// and sends nothing (automatic pongs included), so long work belongs in a
/// spawned task that reports back through the [`Handle`].
///
/// ```
/// use lariat::{Context, Handler, Message, Reply};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     type Info = ();
///
///     async fn handle(&mut self, msg: Message, _ctx: &mut Context<()>) -> Reply {
///         match msg {
///             // S5: echo text, ignore the rest.
///             Message::Text(t) => Reply::text(t),
///             _ => Reply::ok(),
///         }
///     }
/// }
/// ```
pub trait Handler: Send + Sized + 'static {
    /// What can be sent to the connection's [`Handle`] and timers, delivered
    /// to [`info`](Self::info) (S6).
    type Info: Send + 'static;

    /// Runs in the connection after the handshake, before any frame (S3).
    /// Default: nothing.
    fn init(&mut self, ctx: &mut Context<Self::Info>) -> impl Future<Output = Reply> + Send {
        let _ = ctx;
        async { Reply::ok() }
    }

    /// A text, binary, ping or pong message from the client (S5). Pings are
    /// answered before this is called (S8.1).
    fn handle(
        &mut self,
        msg: Message,
        ctx: &mut Context<Self::Info>,
    ) -> impl Future<Output = Reply> + Send;

    /// A message sent to the connection's handle, or a timer that fired (S6).
    /// Default: ignore it.
    fn info(
        &mut self,
        info: Self::Info,
        ctx: &mut Context<Self::Info>,
    ) -> impl Future<Output = Reply> + Send {
        let _ = (info, ctx);
        async { Reply::ok() }
    }

    /// The send queue, once over the backpressure limit, has drained below
    /// it (uWebSockets' `drain`). Default: nothing.
    fn drain(&mut self, ctx: &mut Context<Self::Info>) -> impl Future<Output = Reply> + Send {
        let _ = ctx;
        async { Reply::ok() }
    }

    /// Publications to topics this connection subscribed to were skipped
    /// for it because it was not keeping up
    /// ([`SlowSubscriber::Drop`](crate::pubsub::SlowSubscriber::Drop)):
    /// `count` of them since the last call. Called once its send queue is
    /// back under the backpressure limit, before [`drain`](Self::drain).
    /// Default: nothing (the connection logs the count at debug level).
    fn missed(
        &mut self,
        count: u64,
        ctx: &mut Context<Self::Info>,
    ) -> impl Future<Output = Reply> + Send {
        let _ = (count, ctx);
        async { Reply::ok() }
    }

    /// The connection has ended, for `reason`. Always called once, last,
    /// even after a callback panicked. Default: nothing.
    fn terminate(&mut self, reason: &TerminateReason) {
        let _ = reason;
    }
}

/// What a callback asks the connection to do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// Send a frame (S7.2, S7.3). A close frame starts the closing handshake,
    /// and later commands that send are dropped (S11.2, S11.3).
    Frame(Frame),
    /// Close properly with 1000 and end (S11.1).
    Stop,
    /// Stop (`false`) or resume (`true`) reading from the client: Cowboy's
    /// `active`. Frames already read are still delivered.
    Active(bool),
    /// Change the idle timeout (S8.3; Cowboy's `set_options`). `None`: none.
    SetIdleTimeout(Option<Duration>),
    /// Change the maximum frame size (S9; Cowboy's `set_options`). `None`: no limit.
    SetMaxFrameSize(Option<u64>),
    /// Change the maximum message size. `None`: no limit.
    SetMaxMessageSize(Option<u64>),
    /// Report this as the terminate reason when the connection ends normally
    /// (Cowboy's `shutdown_reason`).
    ShutdownReason(String),
    /// Compress the frames that follow (`true`, the default when
    /// permessage-deflate was agreed) or send them plain (Cowboy's `deflate`).
    Deflate(bool),
}

/// The one result of every callback (S4): commands to apply in order, and
/// whether to hibernate afterwards (S10).
///
/// ```
/// use lariat::{Frame, Reply};
/// // S7.4: several frames, sent in this order.
/// let r = Reply::frames([
///     Frame::text("Hello"),
///     Frame::text("world!"),
///     Frame::binary(vec![0u8; 1000]),
/// ]).hibernate();
/// assert_eq!(r.commands().len(), 3);
/// assert!(r.is_hibernate());
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reply {
    commands: Commands,
    hibernate: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
enum Commands {
    #[default]
    None,
    One(Command),
    Many(Vec<Command>),
}

impl Reply {
    /// Do nothing (S7.1).
    pub fn ok() -> Reply {
        Reply::default()
    }

    /// Send one frame (S7.2).
    pub fn frame(frame: Frame) -> Reply {
        Reply::command(Command::Frame(frame))
    }

    /// Send one text frame.
    pub fn text(text: impl Into<lariat_proto::Text>) -> Reply {
        Reply::frame(Frame::Text(text.into()))
    }

    /// Send one binary frame.
    pub fn binary(data: impl Into<bytes::Bytes>) -> Reply {
        Reply::frame(Frame::Binary(data.into()))
    }

    /// Send frames in the given order (S7.4).
    pub fn frames(frames: impl IntoIterator<Item = Frame>) -> Reply {
        let mut r = Reply::ok();
        for f in frames {
            r = r.then(Command::Frame(f));
        }
        r
    }

    /// Send a close frame with `code` and `reason` (S11.2, S11.4); the
    /// connection ends when the client answers.
    pub fn close(code: impl Into<CloseCode>, reason: impl Into<String>) -> Reply {
        Reply::frame(Frame::close(code, reason))
    }

    /// Stop the connection (S11.1): close with 1000 and end.
    pub fn stop() -> Reply {
        Reply::command(Command::Stop)
    }

    /// One command.
    pub fn command(command: Command) -> Reply {
        Reply {
            commands: Commands::One(command),
            hibernate: false,
        }
    }

    /// Add a command after the others.
    pub fn then(mut self, command: Command) -> Reply {
        self.commands = match self.commands {
            Commands::None => Commands::One(command),
            Commands::One(first) => Commands::Many(vec![first, command]),
            Commands::Many(mut v) => {
                v.push(command);
                Commands::Many(v)
            }
        };
        self
    }

    /// Add a frame after the others.
    pub fn and(self, frame: Frame) -> Reply {
        self.then(Command::Frame(frame))
    }

    /// Hibernate once the commands are applied (S10): give back every buffer
    /// the connection can rebuild.
    pub fn hibernate(mut self) -> Reply {
        self.hibernate = true;
        self
    }

    /// Does this reply ask to hibernate?
    pub fn is_hibernate(&self) -> bool {
        self.hibernate
    }

    /// The commands, in order.
    pub fn commands(&self) -> &[Command] {
        match &self.commands {
            Commands::None => &[],
            Commands::One(c) => std::slice::from_ref(c),
            Commands::Many(v) => v,
        }
    }

    pub(crate) fn into_parts(self) -> (CommandIter, bool) {
        let it = match self.commands {
            Commands::None => CommandIter::One(None),
            Commands::One(c) => CommandIter::One(Some(c)),
            Commands::Many(v) => CommandIter::Many(v.into_iter()),
        };
        (it, self.hibernate)
    }
}

impl From<Frame> for Reply {
    fn from(f: Frame) -> Reply {
        Reply::frame(f)
    }
}

pub(crate) enum CommandIter {
    One(Option<Command>),
    Many(std::vec::IntoIter<Command>),
}

impl Iterator for CommandIter {
    type Item = Command;
    fn next(&mut self) -> Option<Command> {
        match self {
            CommandIter::One(c) => c.take(),
            CommandIter::Many(it) => it.next(),
        }
    }
}

/// Why a connection ended: given to [`Handler::terminate`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TerminateReason {
    /// The handler sent a close frame and the closing handshake ended.
    Normal,
    /// The handler asked to stop (S11.1).
    Stop,
    /// The client closed, with this code (1005 when it gave none) and reason.
    Remote {
        /// The client's close code.
        code: CloseCode,
        /// The client's close reason.
        reason: String,
    },
    /// Nothing arrived from the client for the idle timeout (S8.3).
    IdleTimeout,
    /// The client broke the protocol; closed with the error's code.
    Protocol(ProtocolError),
    /// A callback panicked; closed with 1011. Holds the panic message.
    Crash(String),
    /// The connection dropped without a closing handshake (or an I/O error).
    ConnectionLost,
    /// The server is shutting down (closed with 1001).
    Shutdown,
    /// The client did not read: the send queue passed its hard limit, or a
    /// publication found it behind under
    /// [`SlowSubscriber::Disconnect`](crate::pubsub::SlowSubscriber::Disconnect)
    /// (closed with 1008).
    SlowConsumer,
    /// The bounded mailbox overflowed under [`MailboxOverflow::Close`](crate::MailboxOverflow::Close) (closed with 1008).
    MailboxOverflow,
    /// The reason the handler set with [`Command::ShutdownReason`], in place
    /// of `Normal` or `Stop`.
    Custom(String),
}

/// The connection, as a callback sees it: its handle, its timers, its peer.
pub struct Context<M> {
    pub(crate) handle: Handle<M>,
    pub(crate) timers: Timers<M>,
    pub(crate) peer: SocketAddr,
    pub(crate) protocol: Option<Box<str>>,
    pub(crate) buffered: usize,
    pub(crate) backpressure_limit: usize,
    pub(crate) dropped: u64,
    pub(crate) missed: u64,
    pub(crate) subscriptions: Subscriptions,
}

impl<M: Send + 'static> Context<M> {
    pub(crate) fn new(handle: Handle<M>, peer: SocketAddr, protocol: Option<Box<str>>) -> Self {
        let handle_id = handle.id();
        Context {
            handle,
            timers: Timers::new(),
            peer,
            protocol,
            buffered: 0,
            backpressure_limit: usize::MAX,
            dropped: 0,
            missed: 0,
            subscriptions: Subscriptions::new(handle_id),
        }
    }

    /// The connection's handle (Cowboy's `self()`): clone it and send to it
    /// from anywhere (S6).
    pub fn handle(&self) -> &Handle<M> {
        &self.handle
    }

    /// The connection's id, as in log lines.
    pub fn id(&self) -> u64 {
        self.handle.id()
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The subprotocol chosen at the upgrade (S2), if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Bytes queued for the client and not yet written to the socket.
    pub fn buffered_amount(&self) -> usize {
        self.buffered
    }

    /// Is more queued for the client than the backpressure limit? A handler
    /// that produces data at its own pace should wait for
    /// [`Handler::drain`] before sending more.
    pub fn is_backpressured(&self) -> bool {
        self.buffered > self.backpressure_limit
    }

    /// Frames dropped because the send queue was full under
    /// [`SendQueueFull::Drop`](crate::SendQueueFull::Drop).
    pub fn dropped_frames(&self) -> u64 {
        self.dropped
    }

    /// Deliver `msg` to `info` after `after` (S3.1: Erlang's `start_timer`).
    /// The timer belongs to the connection and dies with it.
    pub fn start_timer(&mut self, after: Duration, msg: M) -> TimerId {
        self.timers.start(tokio::time::Instant::now() + after, msg)
    }

    /// Cancel a timer that has not fired; gives its message back.
    pub fn cancel_timer(&mut self, id: TimerId) -> Option<M> {
        self.timers.cancel(id)
    }

    /// Timers started and not yet fired or cancelled.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// Subscribe this connection to `topic`: what is published there is
    /// written out to the client as it is, without calling the handler
    /// (encoded, and compressed, once for all subscribers). False if the
    /// connection already was subscribed. It leaves every topic when it ends.
    pub fn subscribe(&mut self, topics: &Topics, topic: &str) -> bool {
        self.subscriptions.join(topics, topic, &self.handle, None)
    }

    /// Subscribe this connection to `topic`, each publication delivered to
    /// the handler's `info` as `map` makes it. False if already subscribed.
    pub fn subscribe_info(
        &mut self,
        topics: &Topics,
        topic: &str,
        map: impl Fn(&Publication) -> M + Send + Sync + 'static,
    ) -> bool {
        self.subscriptions
            .join(topics, topic, &self.handle, Some(Box::new(map)))
    }

    /// Leave `topic`; false if the connection was not subscribed.
    pub fn unsubscribe(&mut self, topics: &Topics, topic: &str) -> bool {
        self.subscriptions.leave(topics, topic)
    }

    /// The topics this connection is subscribed to.
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> {
        self.subscriptions.names()
    }

    /// Publications skipped because this connection was not keeping up
    /// ([`SlowSubscriber::Drop`](crate::pubsub::SlowSubscriber::Drop)), in all.
    pub fn missed_publications(&self) -> u64 {
        self.missed
    }
}
