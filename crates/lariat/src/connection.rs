//! The per-connection driver: one task per WebSocket connection.
//!
//! The loop, in order: hand each session event to the handler and apply its
//! commands; write what the session wants to transmit; wait on the socket,
//! the mailbox and the next timer. On exit: close the socket, then call
//! `terminate` once. Handlers never touch the socket.

use std::any::Any;
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::io::Read;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Weak;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::TokioIo;
use lariat_proto::{
    CloseCause, CloseCode, Closed, Event, Frame, ParkedSession, Role, Session, UsageError,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, error, info, warn};

use crate::handle::{Control, Handle, Item, Received};
use crate::handler::{Command, Context, Handler, Reply, TerminateReason};
use crate::outbox::Outbox;
use crate::parking::{Lot, Parked};
use crate::pubsub::{Publication, SlowSubscriber, Subscriptions};
use crate::server::ServerLink;
use crate::timer::Timers;
use crate::upgrade::{Flow, SendQueueFull, Upgrade};

/// The upgraded byte stream: the TCP socket itself when hyper hands it back,
/// hyper's wrapper otherwise.
pub(crate) enum Io {
    Tcp(TcpStream),
    /// A connection back from the parking lot (S10), its socket not yet in
    /// tokio's reactor: reads and writes go straight to the socket, and it
    /// joins the reactor (`promote`) only once one of them would block. A
    /// callback that answers and hibernates again parks with no reactor
    /// registration made and undone. `drained`: the last direct read found
    /// the socket empty.
    Raw(std::net::TcpStream, bool),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Boxed: rare (hyper keeps it only when it cannot give the socket
    /// back), and every connection's future has room for the largest variant.
    Upgraded(Box<TokioIo<hyper::upgrade::Upgraded>>),
    /// Not yet handed over: hyper writes the 101, then this resolves to the
    /// socket ([`Driver::take_over`], the task's first step). The task is
    /// spawned at the handshake and waits here, so one task serves the
    /// connection from the 101 on, in the room the socket takes later.
    Pending(hyper::upgrade::OnUpgrade),
    /// The socket was lost on the way to or from the parking lot.
    Detached,
}

impl Io {
    /// Put a raw socket into tokio's reactor, to wait on it.
    fn promote(&mut self) -> io::Result<()> {
        if let Io::Raw(..) = self {
            let Io::Raw(socket, _) = std::mem::replace(self, Io::Detached) else {
                unreachable!("matched above")
            };
            *self = Io::Tcp(TcpStream::from_std(socket)?);
        }
        Ok(())
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn detached() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "socket lost while parking")
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let io = self.get_mut();
        if let Io::Raw(s, _) = io {
            match (&*s).read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if !would_block(&e) => return Poll::Ready(Err(e)),
                Err(_) => io.promote()?,
            }
        }
        match io {
            Io::Raw(..) => unreachable!("promoted above"),
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Io::Upgraded(s) => Pin::new(&mut **s).poll_read(cx, buf),
            Io::Pending(_) | Io::Detached => Poll::Ready(Err(detached())),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let io = self.get_mut();
        if let Io::Raw(s, _) = io {
            match std::io::Write::write(&mut &*s, buf) {
                Err(e) if would_block(&e) => io.promote()?,
                r => return Poll::Ready(r),
            }
        }
        match io {
            Io::Raw(..) => unreachable!("promoted above"),
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_write(cx, buf),
            Io::Upgraded(s) => Pin::new(&mut **s).poll_write(cx, buf),
            Io::Pending(_) | Io::Detached => Poll::Ready(Err(detached())),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let io = self.get_mut();
        if let Io::Raw(s, _) = io {
            match std::io::Write::write_vectored(&mut &*s, bufs) {
                Err(e) if would_block(&e) => io.promote()?,
                r => return Poll::Ready(r),
            }
        }
        match io {
            Io::Raw(..) => unreachable!("promoted above"),
            Io::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Upgraded(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
            Io::Pending(_) | Io::Detached => Poll::Ready(Err(detached())),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Tcp(s) => s.is_write_vectored(),
            Io::Raw(..) => true,
            Io::Tls(s) => s.is_write_vectored(),
            Io::Upgraded(s) => s.is_write_vectored(),
            Io::Pending(_) | Io::Detached => false,
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Raw(..) => Poll::Ready(Ok(())),
            Io::Tls(s) => Pin::new(s).poll_flush(cx),
            Io::Upgraded(s) => Pin::new(&mut **s).poll_flush(cx),
            Io::Pending(_) | Io::Detached => Poll::Ready(Err(detached())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Raw(s, _) => Poll::Ready(s.shutdown(std::net::Shutdown::Write)),
            Io::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Io::Upgraded(s) => Pin::new(&mut **s).poll_shutdown(cx),
            Io::Pending(_) | Io::Detached => Poll::Ready(Err(detached())),
        }
    }
}

/// Recover the socket from hyper's upgrade (and the bytes hyper read past the
/// request), so the connection pays for no extra buffer or indirection.
pub(crate) fn unwrap_upgraded(upgraded: hyper::upgrade::Upgraded) -> (Io, Bytes) {
    let upgraded = match upgraded.downcast::<TokioIo<crate::direct::Rewind>>() {
        Ok(parts) => {
            let rewind = parts.io.into_inner();
            // hyper reads the whole prefix at its first read (its buffer is
            // larger); were some left, it would come after what hyper holds.
            let leftover = if rewind.prefix.is_empty() {
                parts.read_buf
            } else {
                [parts.read_buf, rewind.prefix].concat().into()
            };
            return (Io::Tcp(rewind.stream), leftover);
        }
        Err(upgraded) => upgraded,
    };
    match upgraded.downcast::<TokioIo<tokio_rustls::server::TlsStream<TcpStream>>>() {
        Ok(parts) => (Io::Tls(Box::new(parts.io.into_inner())), parts.read_buf),
        Err(upgraded) => (Io::Upgraded(Box::new(TokioIo::new(upgraded))), Bytes::new()),
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Size of the read buffer each worker thread shares among its connections.
const READ_BUF_SIZE: usize = 64 * 1024;

thread_local! {
    /// One read buffer per worker thread, not one per connection: a read goes
    /// into it and the session keeps only what it must (a partial frame).
    static READ_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; READ_BUF_SIZE].into_boxed_slice());
}

/// How long, after our last byte, to wait for the client to close its side.
const LINGER: Duration = Duration::from_secs(2);
/// Most mailbox messages handled in one turn before the socket gets a look.
const MAILBOX_BATCH: usize = 64;
/// A frame with at least this much payload still to come is read straight
/// into its message buffer.
const DIRECT_READ_MIN: usize = 16 * 1024;
/// How much of the shared buffer a split read (see `poll_read_split`) lends
/// for what follows a large payload: room for the next frame's header and
/// no more, so that the next large payload, too, is read straight into its
/// message from its first byte, not copied there from the shared buffer.
const SPLIT_TAIL: usize = lariat_proto::frame::MAX_HEADER_LEN;
/// Bytes read in one turn of the task before it yields to the worker's
/// other connections (a few large frames, or thousands of small ones).
const FAIR_SHARE: u32 = 128 * 1024;
/// The least a read through the shared buffer takes while large frames come
/// (see `shared_read_limit`): a header and a little more.
const SMALL_READ: usize = 4096;
/// Replies to large messages held back for one more read (see step 3 of
/// the task's loop) while less than this is queued.
const CORK_LIMIT: usize = 128 * 1024;

struct Driver<H: Handler> {
    io: Io,
    flow: Flow,
    /// The queue went over the backpressure limit; `drain` runs when it empties.
    backpressured: bool,
    /// Publications skipped (slow subscriber), not yet reported to `missed`.
    missed_pending: u64,
    session: Session,
    handler: H,
    ctx: Context<H::Info>,
    /// Taken from the session, not yet written.
    out: Outbox,
    reading: bool,
    /// How the connection ended on our side, if the handler ended it.
    ending: Option<TerminateReason>,
    shutdown_reason: Option<Box<str>>,
    io_error: Option<io::Error>,
    /// Bytes read since the task last waited (see [`FAIR_SHARE`]).
    /// (u32: packed with the flags; FAIR_SHARE plus one read fits.)
    turn_read: u32,
    /// The client sends large frames: read little through the shared buffer.
    large_frames: bool,
    /// The last callback asked to hibernate (S10): once nothing is in
    /// flight, the connection parks (see [`crate::parking`]).
    hibernating: bool,
    server: ServerLink,
}

/// What waiting found.
enum Wait {
    Progress,
    Park,
    Failed,
}

/// How [`Driver::drive`] returned.
enum Exit {
    Ended(TerminateReason),
    /// The session has closed: flush, close the socket, end.
    Closed(Closed),
    /// Hibernating with nothing in flight: leave the task for the lot.
    Park,
}

/// Run a WebSocket connection to its end.
///
/// The setup is synchronous and the future holds only the driver: an async
/// fn would also keep its by-value arguments (the `Upgrade`, the socket)
/// for the connection's whole life, in every idle connection's memory.
pub(crate) fn run<H: Handler>(
    upgrade: Upgrade<H>,
    io: Io,
    leftover: Bytes,
    peer: SocketAddr,
    server: ServerLink,
) -> impl Future<Output = ()> + Send {
    lifecycle(
        Inline(new_driver(upgrade, io, leftover, peer, server)),
        true,
    )
}

/// A new connection's driver: registered with the server, its session set
/// up and fed what was read past the upgrade request.
fn new_driver<H: Handler>(
    upgrade: Upgrade<H>,
    io: Io,
    leftover: Bytes,
    peer: SocketAddr,
    server: ServerLink,
) -> Driver<H> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let handle = Handle::new(
        id,
        upgrade.flow.mailbox_capacity,
        upgrade.flow.mailbox_overflow,
    );
    server.register(id, handle.shutdown_switch());
    let now = Instant::now();
    let mut session = Session::new(Role::Server, upgrade.config, now.into_std());
    if let (Some(params), Some(config)) = (upgrade.deflate_params, &upgrade.deflate) {
        session.enable_deflate(params, config);
    }
    if !leftover.is_empty() {
        session.receive(&leftover, now.into_std());
    }
    // Even empty, `leftover` may share hyper's whole read buffer (8 KiB and
    // more): let it go now, not when the connection ends.
    drop(leftover);
    let mut ctx = Context::new(handle, peer, upgrade.protocol.map(String::into_boxed_str));
    ctx.backpressure_limit = upgrade.flow.backpressure_limit;
    let d = Driver {
        io,
        flow: upgrade.flow,
        backpressured: false,
        missed_pending: 0,
        session,
        handler: upgrade.handler,
        ctx,
        out: Outbox::default(),
        reading: true,
        ending: None,
        shutdown_reason: None,
        io_error: None,
        turn_read: 0,
        large_frames: false,
        hibernating: false,
        server,
    };
    debug!(conn = id, %peer, "websocket open");
    d
}

/// Where a connection's task keeps its driver.
///
/// A connection's first task holds it in its own future ([`Inline`]): one
/// allocation, the task's, for as long as the connection lives. A task
/// resumed from the parking lot (S10) holds it boxed: its future is then a
/// third of the size, and tokio moves that future several times on its way
/// into a new task, on every wake.
trait DriverSlot<H: Handler>: DerefMut<Target = Driver<H>> + Send + Sized {
    fn into_box(self) -> Box<Driver<H>>;
    fn from_box(driver: Box<Driver<H>>) -> Self;
}

/// A driver held in the task's own future.
struct Inline<H: Handler>(Driver<H>);

impl<H: Handler> Deref for Inline<H> {
    type Target = Driver<H>;
    fn deref(&self) -> &Driver<H> {
        &self.0
    }
}

impl<H: Handler> DerefMut for Inline<H> {
    fn deref_mut(&mut self) -> &mut Driver<H> {
        &mut self.0
    }
}

impl<H: Handler> DriverSlot<H> for Inline<H> {
    fn into_box(self) -> Box<Driver<H>> {
        Box::new(self.0)
    }
    fn from_box(driver: Box<Driver<H>>) -> Self {
        Inline(*driver)
    }
}

impl<H: Handler> DriverSlot<H> for Box<Driver<H>> {
    fn into_box(self) -> Box<Driver<H>> {
        self
    }
    fn from_box(driver: Box<Driver<H>>) -> Self {
        driver
    }
}

/// The connection's task: the after-upgrade init (the first time), the loop,
/// then the end, or parking. The driver is used in place (in the future,
/// once): moving it into an async fn's `mut self` would store it twice.
// Not an async fn: its argument would be kept twice in the future.
#[allow(clippy::manual_async_fn)]
fn lifecycle<H: Handler, D: DriverSlot<H>>(
    mut d: D,
    init: bool,
) -> impl Future<Output = ()> + Send {
    async move {
        if init {
            if !d.take_over().await {
                return;
            }
            // S3: the after-upgrade init, before any frame is handled.
            let driver = &mut *d;
            let reply = catch(driver.handler.init(&mut driver.ctx)).await;
            d.apply(reply);
        }
        let closed = loop {
            match d.drive().await {
                Exit::Ended(reason) => return d.end(reason),
                Exit::Closed(c) => break c,
                Exit::Park => match d.into_box().park() {
                    Ok(()) => return,
                    Err(back) => {
                        d = D::from_box(back);
                        // Not parkable after all: wait as a task until the
                        // next callback asks again.
                        d.hibernating = false;
                    }
                },
            }
        };
        let reason = d.ended(closed).await;
        d.end(reason);
    }
}

impl<H: Handler> Driver<H> {
    /// The connection has ended: leave the server, then call `terminate` once.
    fn end(&mut self, reason: TerminateReason) {
        let (id, peer) = (self.ctx.id(), self.ctx.peer);
        // No more publications: leave every topic, then refuse messages.
        self.ctx.subscriptions.leave_all();
        self.close_mailbox();
        self.server.deregister(id);
        let reason = match (reason, self.shutdown_reason.take()) {
            (TerminateReason::Normal | TerminateReason::Stop, Some(custom)) => {
                TerminateReason::Custom(custom.into())
            }
            (r, _) => r,
        };
        match &reason {
            TerminateReason::Protocol(e) => {
                info!(conn = id, %peer, error = %e, "websocket closed: protocol error")
            }
            TerminateReason::Crash(m) => {
                error!(conn = id, %peer, panic = %m, "websocket handler crashed; closed with 1011")
            }
            TerminateReason::ConnectionLost => {
                debug!(conn = id, %peer, error = ?self.io_error, "websocket connection lost")
            }
            r => debug!(conn = id, %peer, reason = ?r, "websocket closed"),
        }
        let handler = &mut self.handler;
        if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(|| handler.terminate(&reason))) {
            error!(conn = id, panic = %panic_message(&*p), "websocket handler panicked in terminate");
        }
    }

    /// Wait for hyper to hand the socket over (the 101 is written) and feed
    /// the session what hyper read past the request. False: the upgrade did
    /// not complete (the client left first); the connection ends unseen by
    /// its handler, whose init never ran.
    async fn take_over(&mut self) -> bool {
        let Io::Pending(on_upgrade) = &mut self.io else {
            return true;
        };
        match on_upgrade.await {
            Ok(upgraded) => {
                let (io, leftover) = unwrap_upgraded(upgraded);
                self.io = io;
                if !leftover.is_empty() {
                    self.session.receive(&leftover, Instant::now().into_std());
                }
                true
            }
            Err(e) => {
                debug!(conn = self.ctx.id(), peer = %self.ctx.peer, error = %e, "upgrade did not complete");
                self.io = Io::Detached;
                self.close_mailbox();
                self.server.deregister(self.ctx.id());
                false
            }
        }
    }

    async fn drive(&mut self) -> Exit {
        let mut pending_info: Option<Item<H::Info>> = None;
        let mut pending_control: Option<Box<Control>> = None;
        let mut timer_fired = false;
        let sleep = sleep_until(Instant::now() + Duration::from_secs(86400));
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        // The timer has this task's waker since it was last set: until it
        // fires (`is_elapsed`), polling it again would only register the
        // same waker again (twice per message otherwise).
        let mut sleep_polled = false;
        // The last wait held replies back (see step 3): this one writes them.
        let mut corked = false;
        loop {
            // 1. Events from the client, in order.
            // The event is taken apart before any await, and the closing is
            // awaited by the caller: neither the event nor the closing's
            // future take room in this one (in every connection's memory).
            loop {
                let m = match self.session.poll_event() {
                    None => break,
                    Some(Event::Message(m)) => m,
                    Some(Event::Closed(c)) => return Exit::Closed(c),
                };
                if self.accepts_callbacks() {
                    self.ctx.buffered = self.queued();
                    let reply = catch(self.handler.handle(m, &mut self.ctx)).await;
                    self.apply(reply);
                }
            }
            // 2. Messages to the handle, and due timers (S6, S3.1).
            if timer_fired {
                timer_fired = false;
                let now = Instant::now();
                self.session.handle_timeout(now.into_std());
                while self.accepts_callbacks() {
                    let Some(msg) = self.ctx.timers.pop_due(now) else {
                        break;
                    };
                    self.info(msg).await;
                }
                continue;
            }
            if let Some(control) = pending_control.take() {
                self.control(*control);
                continue;
            }
            if self.missed_pending > 0 && self.queued() <= self.flow.backpressure_limit {
                let count = std::mem::take(&mut self.missed_pending);
                debug!(
                    conn = self.ctx.id(),
                    count, "slow subscriber: publications skipped"
                );
                if self.accepts_callbacks() {
                    self.ctx.buffered = self.queued();
                    let reply = catch(self.handler.missed(count, &mut self.ctx)).await;
                    // A flow-control notice does not cancel a hibernation
                    // the handler asked for (S10).
                    let hibernating = self.hibernating;
                    self.apply(reply);
                    self.keep_hibernating(hibernating);
                }
                continue;
            }
            if self.backpressured && self.queued() <= self.flow.backpressure_limit {
                self.backpressured = false;
                if self.accepts_callbacks() {
                    self.ctx.buffered = self.queued();
                    let reply = catch(self.handler.drain(&mut self.ctx)).await;
                    let hibernating = self.hibernating;
                    self.apply(reply);
                    self.keep_hibernating(hibernating);
                }
                continue;
            }
            if let Some(msg) = pending_info.take() {
                if !self.accepts_callbacks() {
                    // Taken from the mailbox just as the connection began to
                    // close: say so, like the messages still queued.
                    drop(msg);
                    info!(
                        conn = self.ctx.id(),
                        dropped = 1,
                        "connection closing: message not delivered"
                    );
                    continue;
                }
                self.item(msg).await;
                for _ in 1..MAILBOX_BATCH {
                    if !self.accepts_callbacks() {
                        break;
                    }
                    match self.ctx.handle.try_recv() {
                        Some(msg) => self.item(msg).await,
                        None => break,
                    }
                }
                continue;
            }
            if self.session.is_closing() {
                // Nothing more for the handler: refuse messages from now on.
                self.close_mailbox();
            }
            // 3. Transmit. While large messages stream in, the reply to one
            // waits until the socket has been read once more (cork): when the
            // next message is there too, both replies go out in one vectored
            // write, half the writes and the client wake-ups; when it is not,
            // the reply is written right after that read, which the task
            // makes anyway before it waits. Never twice in a row: a client
            // streaming a long upload in large frames would hold back a pong
            // or the handler's replies for as long as it kept sending.
            let mut cork = !corked
                && self.large_frames
                && self.out.is_empty()
                && self.reading
                && !self.hibernating
                && self.accepts_callbacks()
                && self.session.buffered_amount() <= self.flow.backpressure_limit
                && (1..CORK_LIMIT).contains(&self.session.buffered_amount());
            if self.out.is_empty() && !cork {
                self.out.refill(&mut self.session);
            }
            // A client that keeps its socket full would keep this task
            // running (tokio's budget allows many reads per turn) while the
            // worker's other connections wait: past its fair share, yield.
            if self.turn_read >= FAIR_SHARE {
                self.turn_read = 0;
                tokio::task::yield_now().await;
            }
            // 4. Wait for the socket, the mailbox or a timer, holding no
            // room for messages not yet begun.
            self.session.release_message_buffer();
            let deadline = match (self.session.poll_timeout(), self.ctx.timers.next_deadline()) {
                (Some(a), Some(b)) => Some(Instant::from_std(a).min(b)),
                (Some(a), None) => Some(Instant::from_std(a)),
                (None, b) => b,
            };
            // The idle deadline moves later with every message: a timer
            // armed earlier than the deadline is left to fire (it finds
            // nothing due, and is then armed again), instead of being reset
            // in tokio's timer wheel for each message.
            match (deadline, armed) {
                (Some(at), Some(current)) if current <= at => {}
                (Some(at), _) => {
                    sleep.as_mut().reset(at);
                    armed = Some(at);
                    sleep_polled = false;
                }
                (None, _) => armed = None,
            }
            let listen_mailbox = self.accepts_callbacks();
            // S10: hibernating with nothing in flight, and no deadline due
            // (it fires first): if nothing is ready either, park.
            let may_park = self.hibernating
                && listen_mailbox
                && matches!(self.io, Io::Tcp(_) | Io::Raw(..))
                && self.out.is_empty()
                && !self.backpressured
                && self.missed_pending == 0
                && self.ending.is_none()
                && self.session.is_idle()
                && armed.is_none_or(|at| at > Instant::now());
            let progressed = poll_fn(|cx| {
                let mut ready = false;
                let mut read_pending = false;
                if cork {
                    match self.poll_read(cx, false) {
                        Poll::Ready(Ok(())) => return Poll::Ready(Wait::Progress),
                        Poll::Ready(Err(e)) => {
                            self.io_error = Some(e);
                            return Poll::Ready(Wait::Failed);
                        }
                        Poll::Pending => {
                            // Nothing more yet: the replies go now.
                            cork = false;
                            read_pending = true;
                            self.out.refill(&mut self.session);
                        }
                    }
                }
                if !self.out.is_empty() {
                    match self.out.poll_write(&mut self.io, cx) {
                        Poll::Ready(Ok(_)) => {
                            // All written, and nothing a finished write
                            // unblocks (a drain, a skipped publication, a
                            // hibernation, the close): wait right here for
                            // what comes next, instead of going round the
                            // loop once more only to come back. (Frames
                            // queued while this write was pending are taken
                            // now; usually there are none.)
                            let quiet = self.out.is_empty()
                                && !self.hibernating
                                && !self.backpressured
                                && self.missed_pending == 0
                                && self.accepts_callbacks();
                            if quiet && self.session.buffered_amount() != 0 {
                                self.out.refill(&mut self.session);
                            }
                            if !quiet || !self.out.is_empty() {
                                ready = true;
                            }
                        }
                        Poll::Ready(Err(e)) => {
                            self.io_error = Some(e);
                            return Poll::Ready(Wait::Failed);
                        }
                        Poll::Pending => {}
                    }
                }
                // While replies back up past the backpressure limit, stop
                // reading: the client's own flood waits in its socket (TCP
                // flow control) instead of growing our queue.
                let room = self.queued() <= self.flow.backpressure_limit;
                if self.reading && room && !read_pending && !self.session.is_closed() {
                    // Not waiting on the socket this time when parking, or
                    // when the write made progress (the loop comes back).
                    match self.poll_read(cx, may_park || ready) {
                        Poll::Ready(Ok(())) => ready = true,
                        Poll::Ready(Err(e)) => {
                            self.io_error = Some(e);
                            return Poll::Ready(Wait::Failed);
                        }
                        Poll::Pending => {}
                    }
                }
                if listen_mailbox && pending_info.is_none() && pending_control.is_none() {
                    match self.ctx.handle.poll_recv(cx) {
                        Poll::Ready(Received::Message(m)) => {
                            pending_info = Some(Item::Info(m));
                            ready = true;
                        }
                        Poll::Ready(Received::Publish(p)) => {
                            pending_info = Some(Item::Publish(p));
                            ready = true;
                        }
                        Poll::Ready(Received::Missed(n)) => {
                            self.note_missed(n);
                            ready = true;
                        }
                        Poll::Ready(Received::Control(c)) => {
                            pending_control = Some(c);
                            ready = true;
                        }
                        Poll::Pending => {}
                    }
                }
                if armed.is_some() && (!sleep_polled || sleep.is_elapsed()) {
                    sleep_polled = true;
                    if sleep.as_mut().poll(cx).is_ready() {
                        armed = None;
                        timer_fired = true;
                        ready = true;
                    }
                }
                if ready {
                    Poll::Ready(Wait::Progress)
                } else if may_park {
                    Poll::Ready(Wait::Park)
                } else {
                    Poll::Pending
                }
            })
            .await;
            // Still set only if the read it waited for brought more.
            corked = cork;
            match progressed {
                Wait::Progress => {}
                Wait::Park => return Exit::Park,
                Wait::Failed => {
                    // The socket failed: the connection is lost.
                    self.session.receive_eof();
                    return Exit::Ended(TerminateReason::ConnectionLost);
                }
            }
        }
    }

    /// Refuse messages from now on; say how many queued ones are dropped.
    fn close_mailbox(&self) {
        let dropped = self.ctx.handle.close_mailbox();
        if dropped > 0 {
            info!(
                conn = self.ctx.id(),
                dropped, "connection closing: queued messages not delivered"
            );
        }
    }

    /// Read once and feed the session: straight into the message buffer
    /// while a large frame's payload is coming (no copy), into the worker's
    /// shared buffer otherwise.
    ///
    /// A socket back from the parking lot is read directly until it is
    /// drained. Then, if the caller will not wait on the socket this time
    /// (`no_wait`: it parks, and the lot's epoll set watches the socket; or
    /// it made progress and comes back), this returns `Pending` with no
    /// waker set; otherwise the socket joins tokio's reactor to be waited on.
    fn poll_read(&mut self, cx: &mut TaskContext<'_>, no_wait: bool) -> Poll<io::Result<()>> {
        if let Io::Raw(_, drained) = self.io {
            let large = self.session.payload_buffer(DIRECT_READ_MIN).is_some();
            if !large {
                if !drained {
                    if let Some(r) = self.read_raw() {
                        return r;
                    }
                }
                if no_wait {
                    return Poll::Pending;
                }
            }
            if let Err(e) = self.io.promote() {
                return Poll::Ready(Err(e));
            }
        }
        if let Some((buf, room)) = self.session.payload_buffer(DIRECT_READ_MIN) {
            self.large_frames = true;
            if matches!(self.io, Io::Tcp(_)) {
                return self.poll_read_split(cx);
            }
            let spare = &mut buf.spare_capacity_mut()[..room];
            let mut rb = ReadBuf::uninit(spare);
            let result = Pin::new(&mut self.io).poll_read(cx, &mut rb);
            let n = rb.filled().len();
            if let Poll::Ready(Ok(())) = result {
                if n > 0 {
                    // SAFETY: a `ReadBuf` guarantees that its first
                    // `filled().len()` bytes are initialized, and they are the
                    // first `n` bytes of `buf`'s spare capacity.
                    unsafe { buf.set_len(buf.len() + n) };
                }
            }
            return self.after_read(result, n, |s, now| s.payload_received(n, now));
        }
        READ_BUF.with(|shared| {
            let mut shared = shared.borrow_mut();
            let limit = self.shared_read_limit();
            let mut rb = ReadBuf::new(&mut shared[..limit]);
            let result = Pin::new(&mut self.io).poll_read(cx, &mut rb);
            let data = rb.filled();
            let n = data.len();
            let r = self.after_read(result, n, |s, now| s.receive(data, now));
            self.after_shared_read(n);
            r
        })
    }

    /// How much to read through the shared buffer. In or after a large
    /// frame, little: the end of the current frame's payload (too short to
    /// be read straight into its message) and the next frame's header, or
    /// just a header, so that the next large payload is read straight into
    /// its message from its first byte. A read of the full buffer would also
    /// take most of the next payload, to be copied, and every read after it
    /// would end just short of a frame's end in the same way.
    fn shared_read_limit(&self) -> usize {
        match self.session.data_frame_progress() {
            Some((rest, len)) if len >= DIRECT_READ_MIN as u64 => usize::try_from(rest)
                .unwrap_or(READ_BUF_SIZE)
                .saturating_add(lariat_proto::frame::MAX_HEADER_LEN)
                .clamp(SMALL_READ, READ_BUF_SIZE),
            _ if self.large_frames => SMALL_READ,
            _ => READ_BUF_SIZE,
        }
    }

    /// After `n` bytes read through the shared buffer: once no large payload
    /// is being read, read in full-size pieces again.
    fn after_shared_read(&mut self, n: usize) {
        if n > 0 && self.large_frames && self.session.payload_buffer(DIRECT_READ_MIN).is_none() {
            self.large_frames = false;
        }
    }

    /// One direct read of a socket outside tokio's reactor into the shared
    /// buffer; `None` once it has nothing (it is then marked drained).
    fn read_raw(&mut self) -> Option<Poll<io::Result<()>>> {
        let Io::Raw(socket, _) = std::mem::replace(&mut self.io, Io::Detached) else {
            return None;
        };
        let mut drained = false;
        let limit = self.shared_read_limit();
        let r = READ_BUF.with(|shared| {
            let mut shared = shared.borrow_mut();
            let read = loop {
                match (&socket).read(&mut shared[..limit]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            match read {
                Ok(n) => {
                    // A short read emptied the socket's queue.
                    drained = n < limit;
                    let data = &shared[..n];
                    let r = self.after_read(Poll::Ready(Ok(())), n, |s, now| s.receive(data, now));
                    self.after_shared_read(n);
                    Some(r)
                }
                Err(e) if would_block(&e) => {
                    drained = true;
                    None
                }
                Err(e) => Some(Poll::Ready(Err(e))),
            }
        });
        self.io = Io::Raw(socket, drained);
        r
    }

    /// A plain socket while a large payload is coming: one `readv` fills the
    /// rest of the payload straight into its message and whatever follows
    /// (the next frame's header, the start of its payload) into a corner of
    /// the shared buffer. One system call per large message instead of two.
    fn poll_read_split(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let Io::Tcp(stream) = &self.io else {
            return Poll::Ready(Ok(()));
        };
        loop {
            std::task::ready!(stream.poll_read_ready(cx))?;
            let session = &mut self.session;
            let read: io::Result<usize> = READ_BUF.with(|shared| {
                let Some((buf, room)) = session.payload_buffer(DIRECT_READ_MIN) else {
                    return Ok(0);
                };
                let spare = &mut buf.spare_capacity_mut()[..room];
                let mut shared = shared.borrow_mut();
                let tail = &mut shared[..SPLIT_TAIL];
                let iov = [
                    libc::iovec {
                        iov_base: spare.as_mut_ptr().cast(),
                        iov_len: spare.len(),
                    },
                    libc::iovec {
                        iov_base: tail.as_mut_ptr().cast(),
                        iov_len: tail.len(),
                    },
                ];
                let r = stream.try_io(Interest::READABLE, || {
                    // SAFETY: both vectors point into live buffers of the
                    // lengths given, borrowed for the call; the kernel only
                    // writes into them, and `readv` returns how much.
                    let n = unsafe { libc::readv(stream.as_raw_fd(), iov.as_ptr(), 2) };
                    if n < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(n as usize)
                    }
                });
                let n = r?;
                let direct = n.min(room);
                // SAFETY: `readv` filled the first `direct` bytes of the
                // spare capacity (it fills the first vector first).
                unsafe { buf.set_len(buf.len() + direct) };
                let now = std::time::Instant::now();
                if n == 0 {
                    session.receive_eof();
                } else {
                    session.payload_received(direct, now);
                    if n > direct {
                        session.receive(&tail[..n - direct], now);
                    }
                }
                Ok(n)
            });
            match read {
                Ok(n) => {
                    self.turn_read = self.turn_read.saturating_add(n as u32);
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale; `try_io` cleared it: poll again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// What a read returned: `n` bytes fed by `feed`, the end of the stream,
    /// or nothing yet.
    fn after_read(
        &mut self,
        result: Poll<io::Result<()>>,
        n: usize,
        feed: impl FnOnce(&mut Session, std::time::Instant),
    ) -> Poll<io::Result<()>> {
        match result {
            Poll::Ready(Ok(())) => {
                if n == 0 {
                    self.session.receive_eof();
                } else {
                    self.turn_read = self.turn_read.saturating_add(n as u32);
                    feed(&mut self.session, std::time::Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                // Drained: the task will wait, and others run.
                self.turn_read = 0;
                Poll::Pending
            }
            other => other,
        }
    }

    /// May the handler still be called? Not once it stopped, closed or crashed.
    fn accepts_callbacks(&self) -> bool {
        self.ending.is_none() && !self.session.is_closing()
    }

    /// A mailbox item: a message for `info`, or a publication to write out.
    async fn item(&mut self, item: Item<H::Info>) {
        match item {
            Item::Info(msg) => self.info(msg).await,
            Item::Publish(p) => self.publication(&p),
        }
    }

    /// Write a publication out, unless the client is not keeping up: then
    /// its topic's slow-subscriber policy applies.
    fn publication(&mut self, p: &Publication) {
        let queued = self.queued();
        if queued > self.flow.send_queue_limit {
            match p.slow_policy() {
                SlowSubscriber::Drop => self.note_missed(1),
                SlowSubscriber::Disconnect => self.slow_consumer(queued),
            }
            return;
        }
        // Err only once closing, when nothing more is sent (S11.3).
        let _ = self.session.send_prepared(p.prepared());
        self.note_queued();
    }

    fn note_missed(&mut self, n: u64) {
        self.ctx.missed += n;
        self.missed_pending += n;
    }

    /// Record the queue's size after sending: past the backpressure limit,
    /// `drain` will run once it empties.
    fn note_queued(&mut self) {
        let queued = self.queued();
        self.ctx.buffered = queued;
        if queued > self.flow.backpressure_limit {
            self.backpressured = true;
        }
    }

    async fn info(&mut self, msg: H::Info) {
        self.ctx.buffered = self.queued();
        let reply = catch(self.handler.info(msg, &mut self.ctx)).await;
        self.apply(reply);
    }

    /// Bytes queued for the client: taken by the driver and not yet written,
    /// plus still in the session.
    fn queued(&self) -> usize {
        self.out.len() + self.session.buffered_amount()
    }

    /// A close asked from outside the handler: served ahead of messages.
    fn control(&mut self, control: Control) {
        let now = Instant::now().into_std();
        let (code, reason, ending) = match control {
            Control::Close(code, reason) => (code, reason, TerminateReason::Stop),
            Control::Overflow => (
                CloseCode::POLICY_VIOLATION,
                "mailbox overflow".to_string(),
                TerminateReason::MailboxOverflow,
            ),
            Control::Shutdown => (
                CloseCode::GOING_AWAY,
                "server shutting down".to_string(),
                TerminateReason::Shutdown,
            ),
            Control::SlowSubscriber => {
                let queued = self.queued();
                self.slow_consumer(queued);
                return;
            }
        };
        let sent = match self.session.close(Some(code), &reason, now) {
            Err(UsageError::InvalidCloseCode(c)) => {
                warn!(
                    conn = self.ctx.id(),
                    code = c,
                    "Handle::close with a code that may not be sent; closing with 1000"
                );
                self.session.close(Some(CloseCode::NORMAL), &reason, now)
            }
            other => other,
        };
        if sent.is_ok() {
            self.ending = Some(ending);
        }
    }

    /// Apply a callback's result, in order (the one place commands are applied).
    fn apply(&mut self, reply: Result<Reply, String>) {
        let reply = match reply {
            Ok(r) => r,
            Err(panic) => {
                self.crash(panic);
                return;
            }
        };
        let (commands, hibernate) = reply.into_parts();
        self.hibernating = hibernate;
        for command in commands {
            match command {
                Command::Frame(frame) => self.send(frame),
                Command::Stop => {
                    // S11.1: end properly, with a close frame.
                    if self
                        .session
                        .close(Some(CloseCode::NORMAL), "", Instant::now().into_std())
                        .is_ok()
                    {
                        self.ending = Some(TerminateReason::Stop);
                    }
                }
                Command::Active(on) => self.reading = on,
                Command::SetIdleTimeout(t) => self.session.config_mut().idle_timeout = t,
                Command::SetMaxFrameSize(n) => self.session.config_mut().max_frame_size = n,
                Command::SetMaxMessageSize(n) => self.session.config_mut().max_message_size = n,
                Command::ShutdownReason(r) => self.shutdown_reason = Some(r.into()),
                Command::Deflate(on) => self.session.set_compression(on),
            }
        }
        self.note_queued();
        if hibernate {
            self.hibernate();
        }
    }

    fn send(&mut self, frame: Frame) {
        let is_close = matches!(frame, Frame::Close(_));
        if !is_close && !self.session.is_closing() {
            let queued = self.queued();
            if queued > self.flow.send_queue_limit {
                match self.flow.on_full {
                    SendQueueFull::Drop => {
                        self.ctx.dropped += 1;
                        debug!(
                            conn = self.ctx.id(),
                            queued, "send queue full; frame dropped"
                        );
                        return;
                    }
                    SendQueueFull::Close => {
                        self.slow_consumer(queued);
                        return;
                    }
                }
            }
        }
        // The session reads the clock only to time a close handshake.
        let now = if is_close {
            std::time::Instant::now()
        } else {
            self.session.last_activity()
        };
        match self.session.send(&frame, now) {
            Ok(()) => match frame {
                // An echo's payload is read into again (no allocation per message).
                Frame::Text(t) => self.session.recycle(t.into_bytes()),
                Frame::Binary(b) => self.session.recycle(b),
                _ if is_close && self.ending.is_none() => {
                    self.ending = Some(TerminateReason::Normal);
                }
                _ => {}
            },
            // S11.3: nothing is sent after a close frame.
            Err(UsageError::SendAfterClose) => {}
            Err(e) => {
                warn!(conn = self.ctx.id(), error = %e, "handler sent an invalid frame; closing with 1011");
                self.crash(e.to_string());
            }
        }
    }

    /// The client is not reading: what it has not been sent yet goes, so the
    /// close frame (1008) is next in line.
    fn slow_consumer(&mut self, queued: usize) {
        let dropped = self.session.discard_unsent();
        info!(
            conn = self.ctx.id(),
            queued,
            dropped,
            "send queue full (client not reading); dropped what was unsent; closing with 1008"
        );
        if self
            .session
            .close(
                Some(CloseCode::POLICY_VIOLATION),
                "send queue full",
                Instant::now().into_std(),
            )
            .is_ok()
        {
            self.ending = Some(TerminateReason::SlowConsumer);
        }
    }

    /// The handler crashed (or misused the API): close with 1011 and call
    /// nothing but terminate from now on.
    fn crash(&mut self, why: String) {
        let _ = self.session.close(
            Some(CloseCode::INTERNAL_ERROR),
            "internal error",
            Instant::now().into_std(),
        );
        self.ending = Some(TerminateReason::Crash(why));
    }

    /// After a flow-control callback: a hibernation asked for before it
    /// still holds, and what the callback left behind (a reply's recycled
    /// buffer) goes too.
    fn keep_hibernating(&mut self, was: bool) {
        if was && !self.hibernating {
            self.hibernating = true;
            self.hibernate();
        }
    }

    /// S10: give back every buffer that can be rebuilt.
    fn hibernate(&mut self) {
        self.session.shrink();
        self.out.release();
        self.ctx.handle.shrink();
        self.ctx.timers.shrink();
    }

    /// The session has closed: flush the last frames, close the socket, and
    /// say why it ended.
    async fn ended(&mut self, closed: Closed) -> TerminateReason {
        let reason = match (self.ending.take(), closed.cause) {
            (Some(TerminateReason::Crash(m)), _) => TerminateReason::Crash(m),
            (_, CloseCause::Remote) => TerminateReason::Remote {
                code: closed.code,
                reason: closed.reason,
            },
            (_, CloseCause::Protocol(e)) => TerminateReason::Protocol(e),
            (_, CloseCause::IdleTimeout) => TerminateReason::IdleTimeout,
            (Some(r), CloseCause::Local | CloseCause::Abnormal) => r,
            (None, CloseCause::Local) => TerminateReason::Normal,
            (None, CloseCause::Abnormal) => TerminateReason::ConnectionLost,
        };
        // Boxed: the closing phase would otherwise count in the size of
        // every live connection's future.
        Box::pin(self.finish_io()).await;
        reason
    }

    /// Write what is left and close (RFC 6455 §7.1.1: the server closes TCP
    /// first). When the peer has finished sending (its close frame or its end
    /// of stream arrived), the socket is closed at once: nothing unread is
    /// left to turn the close into a reset. Otherwise half-close and wait
    /// briefly for the client to close its side, so that what it still sends
    /// does not reset the connection before it reads our close frame.
    async fn finish_io(&mut self) {
        let mut rest = self.out.take_rest();
        self.session.take_transmit(&mut rest);
        let linger = !self.session.peer_finished();
        let io = &mut self.io;
        let done = tokio::time::timeout(LINGER, async move {
            if !rest.is_empty() {
                io.write_all(&rest).await?;
            }
            if !linger {
                // TLS still says close_notify; a plain socket is closed by
                // its drop, which sends our FIN after the bytes above.
                if !matches!(io, Io::Tcp(_) | Io::Raw(..)) {
                    io.shutdown().await?;
                }
                return Ok(());
            }
            io.shutdown().await?;
            // Whatever the client still sends is read into the worker's
            // shared buffer (borrowed for one poll at a time) and dropped:
            // no buffer of its own to allocate and zero per close.
            loop {
                let n = poll_fn(|cx| {
                    READ_BUF.with(|shared| {
                        let mut shared = shared.borrow_mut();
                        let mut rb = ReadBuf::new(&mut shared[..]);
                        match Pin::new(&mut *io).poll_read(cx, &mut rb) {
                            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
                            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                            Poll::Pending => Poll::Pending,
                        }
                    })
                })
                .await?;
                if n == 0 {
                    return Ok::<(), io::Error>(());
                }
            }
        })
        .await;
        if let Ok(Err(e)) = done {
            debug!(conn = self.ctx.id(), error = %e, "error while closing the socket");
        }
    }
}

impl<H: Handler> Driver<H> {
    /// Leave the task for the parking lot (S10). The driver comes back if it
    /// cannot park after all; a lot that will not take it resumes it at once.
    fn park(mut self: Box<Self>) -> Result<(), Box<Self>> {
        let placeholder = Session::new(
            Role::Server,
            lariat_proto::Config::default(),
            std::time::Instant::now(),
        );
        let session = match std::mem::replace(&mut self.session, placeholder).park() {
            Ok(p) => p,
            Err(s) => {
                self.session = s;
                return Err(self);
            }
        };
        let socket = match std::mem::replace(&mut self.io, Io::Detached) {
            // Back from the lot and never waited: not in tokio's reactor.
            Io::Raw(s, _) => s,
            // Out of tokio's reactor: its registration is freed.
            Io::Tcp(stream) => match stream.into_std() {
                Ok(s) => s,
                Err(e) => {
                    // The socket is gone with the failed deregistration.
                    self.io_error = Some(e);
                    self.session = Session::resume(session);
                    return Err(self);
                }
            },
            other => {
                self.io = other;
                self.session = Session::resume(session);
                return Err(self);
            }
        };
        let Driver {
            flow,
            handler,
            ctx,
            reading,
            shutdown_reason,
            server,
            ..
        } = *self;
        let Context {
            handle,
            timers,
            peer,
            protocol,
            dropped,
            missed,
            subscriptions,
            ..
        } = ctx;
        let rest = (!timers.is_pristine()
            || protocol.is_some()
            || flow != Flow::default()
            || dropped != 0
            || missed != 0
            || !subscriptions.is_empty()
            || shutdown_reason.is_some())
        .then(|| {
            Box::new(Rest {
                timers,
                protocol,
                flow,
                dropped,
                missed,
                subscriptions,
                shutdown_reason,
            })
        });
        let lot = server.lot().clone();
        let parked = Box::new(Hibernated {
            handler,
            handle,
            session,
            socket,
            peer,
            server,
            rest,
            reading,
        });
        if let Err(p) = lot.park(parked) {
            p.resume();
        }
        Ok(())
    }
}

/// A connection in the parking lot: what it cannot rebuild, in one box.
/// Whatever is not at its default (timers, subscriptions, a subprotocol,
/// flow settings, counters) is in a second box, or nowhere.
struct Hibernated<H: Handler> {
    handler: H,
    handle: Handle<H::Info>,
    session: ParkedSession,
    socket: std::net::TcpStream,
    peer: SocketAddr,
    server: ServerLink,
    rest: Option<Box<Rest<H::Info>>>,
    reading: bool,
}

struct Rest<M> {
    timers: Timers<M>,
    protocol: Option<Box<str>>,
    flow: Flow,
    dropped: u64,
    missed: u64,
    subscriptions: Subscriptions,
    shutdown_reason: Option<Box<str>>,
}

impl<H: Handler> Parked for Hibernated<H> {
    fn watch(&self) -> Option<RawFd> {
        self.reading.then(|| self.socket.as_raw_fd())
    }

    fn deadline(&self) -> Option<Instant> {
        let idle = self.session.idle_deadline().map(Instant::from_std);
        let timer = self.rest.as_ref().and_then(|r| r.timers.next_deadline());
        match (idle, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn wait_on_mailbox(&self, lot: Weak<Lot>, key: u32) -> bool {
        self.handle.park(lot, key)
    }

    fn resume(self: Box<Self>) {
        tokio::spawn(lifecycle(Box::new((*self).into_driver()), false));
    }
}

impl<H: Handler> Hibernated<H> {
    /// The driver again, as it was when it parked.
    fn into_driver(self) -> Driver<H> {
        let Hibernated {
            handler,
            handle,
            session,
            socket,
            peer,
            server,
            rest,
            reading,
        } = self;
        let now = Instant::now();
        let mut session = Session::resume(session);
        let mut io_error = None;
        let mut raw_drained = false;
        if reading {
            // Read what is there now: the lot knows the socket is readable
            // (or a message or a deadline woke it), and the socket is not in
            // tokio's reactor, whose readiness would start empty.
            READ_BUF.with(|shared| {
                let mut shared = shared.borrow_mut();
                match (&socket).read(&mut shared[..]) {
                    Ok(0) => session.receive_eof(),
                    Ok(n) => {
                        raw_drained = n < shared.len();
                        session.receive(&shared[..n], now.into_std());
                    }
                    Err(e) if would_block(&e) => raw_drained = true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        io_error = Some(e);
                        session.receive_eof();
                    }
                }
            });
        }
        // Outside tokio's reactor until it must wait on the socket (see
        // `Io::Raw`).
        let io = Io::Raw(socket, raw_drained);
        let mut ctx = Context::new(handle, peer, None);
        let mut flow = Flow::default();
        let mut shutdown_reason = None;
        if let Some(rest) = rest {
            let rest = *rest;
            ctx.timers = rest.timers;
            ctx.protocol = rest.protocol;
            ctx.dropped = rest.dropped;
            ctx.missed = rest.missed;
            ctx.subscriptions = rest.subscriptions;
            flow = rest.flow;
            shutdown_reason = rest.shutdown_reason;
        }
        ctx.backpressure_limit = flow.backpressure_limit;
        Driver {
            io,
            flow,
            backpressured: false,
            missed_pending: 0,
            session,
            handler,
            ctx,
            out: Outbox::default(),
            reading,
            ending: None,
            shutdown_reason,
            io_error,
            turn_read: 0,
            large_frames: false,
            hibernating: true,
            server,
        }
    }
}

/// Run a handler callback or a route init, turning a panic into an error (a
/// crash in one connection leaves the others running).
pub(crate) fn catch<F: Future>(f: F) -> Catch<F> {
    Catch(f)
}

/// [`catch`]'s future: the callback's own future and nothing else (an async
/// fn would hold it twice, as its argument and pinned).
pub(crate) struct Catch<F>(F);

impl<F: Future> Future for Catch<F> {
    type Output = Result<F::Output, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of the only field: it is never moved
        // out, and `Catch` has no Drop and no Unpin impl of its own.
        let f = unsafe { self.map_unchecked_mut(|c| &mut c.0) };
        match std::panic::catch_unwind(AssertUnwindSafe(|| f.poll(cx))) {
            Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(p) => Poll::Ready(Err(panic_message(&*p))),
        }
    }
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Quiet;

    impl Handler for Quiet {
        type Info = ();
        async fn handle(&mut self, _: lariat_proto::Message, _: &mut Context<()>) -> Reply {
            Reply::ok()
        }
    }

    /// Every idle connection is this future, in a tokio task cell (header,
    /// scheduler, id, trailer: about 104 bytes more, rounded up to 128): at
    /// 1,048 bytes or less the cell is 1,152 bytes, one more and it is 1,280.
    /// Guard against it growing back; the benchmark's idle scenario measures
    /// the whole.
    #[tokio::test]
    async fn connection_future_stays_small() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, peer) = l.accept().await.unwrap();
        let link = crate::server::ServerLink::for_tests();
        let f = run(Upgrade::new(Quiet), Io::Tcp(s), Bytes::new(), peer, link);
        let size = std::mem::size_of_val(&f);
        assert!(size <= 1048, "the connection future is {size} bytes");
        // And as spawned at the handshake, waiting for hyper's upgrade.
        let mut req = http::Request::new(());
        let link = crate::server::ServerLink::for_tests();
        let on_upgrade = Io::Pending(hyper::upgrade::on(&mut req));
        let first = run(Upgrade::new(Quiet), on_upgrade, Bytes::new(), peer, link);
        let first = std::mem::size_of_val(&first);
        assert!(first <= 1048, "a new connection's future is {first} bytes");
        // S10: resumed from the lot, with its driver boxed: a small future,
        // cheap for tokio to move into the new task.
        let (s2, peer2) = {
            let _c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            l.accept().await.unwrap()
        };
        let link = crate::server::ServerLink::for_tests();
        let d = new_driver(Upgrade::new(Quiet), Io::Tcp(s2), Bytes::new(), peer2, link);
        let resumed = lifecycle(Box::new(d), false);
        let resumed = std::mem::size_of_val(&resumed);
        assert!(
            resumed <= 320,
            "a resumed connection's future is {resumed} bytes"
        );
        assert!(
            std::mem::size_of::<Session>() <= 376,
            "{}",
            std::mem::size_of::<Session>()
        );
        // S10: a parked connection is this box (112 bytes: a 128-byte
        // allocation), its mailbox and a few words of index.
        let parked = std::mem::size_of::<Hibernated<Quiet>>();
        assert!(parked <= 112, "a parked connection is {parked} bytes");
        drop(client);
    }
}
