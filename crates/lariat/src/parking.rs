//! The parking lot: where hibernated connections wait with no task (S10).
//!
//! A connection whose last callback asked to hibernate, and that has nothing
//! in flight, leaves its task: what it cannot rebuild (handler, mailbox
//! handle, settings, compression state) goes into one small box here, its
//! socket leaves tokio's reactor for the lot's own epoll set, its next
//! deadline (idle timeout, a handler timer) goes into the lot's deadline
//! list, and its mailbox points to the lot. A parked connection so costs its
//! box, its mailbox and a few words of index: no task, no future, no reactor
//! registration, no timer entry, no buffer.
//!
//! The lot's one task brings a connection back (a new task) when its socket
//! turns readable — data, or the peer closing —, something arrives in its
//! mailbox (a message, a close, the server shutting down), or its deadline
//! falls. It resumes at most [`RESUME_BATCH`] at a time and then yields, so
//! waking every parked connection at once never makes them all tasks at
//! once.
//!
//! A wake that finds its connection already gone, or the slot taken by
//! another, resumes nothing or resumes the other for nothing: a resumed
//! connection with nothing to do parks again.

use std::collections::{BTreeSet, VecDeque};
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, error};

/// Most connections resumed before the lot task yields to them.
const RESUME_BATCH: usize = 32;
/// Socket events taken from the lot's epoll set per call.
const EVENTS: usize = 256;

/// A hibernated connection, its handler type erased.
pub(crate) trait Parked: Send {
    /// The socket to watch for readability; `None` while the handler has
    /// stopped reading (`Command::Active(false)`).
    fn watch(&self) -> Option<RawFd>;
    /// When it must be resumed even if nothing arrives.
    fn deadline(&self) -> Option<Instant>;
    /// Point the connection's mailbox to the lot; false if something is
    /// already waiting in it.
    fn wait_on_mailbox(&self, lot: Weak<Lot>, key: u32) -> bool;
    /// Back to a task.
    fn resume(self: Box<Self>);
}

/// One server's parking lot. Its task starts with the first connection
/// parked, and ends when the server's registry goes.
pub(crate) struct Lot {
    inner: Mutex<Inner>,
    /// For deadlines as integers (16-byte entries instead of 24).
    epoch: Instant,
}

#[derive(Default)]
struct Inner {
    slots: Vec<Option<Box<dyn Parked>>>,
    /// Each slot's parking count (wrapping): a socket event carries the one
    /// it was armed with, so an event from an earlier stay is told apart.
    generations: Vec<u32>,
    free: Vec<u32>,
    /// (nanoseconds after `epoch`, key).
    deadlines: BTreeSet<(u64, u32)>,
    /// Keys whose mailbox received something.
    woken: Vec<u32>,
    /// The lot task, to wake when `woken` or the first deadline changes.
    task: Option<Waker>,
    /// The lot's epoll set (a descriptor of its own, duplicated from the
    /// task's), once its task started.
    registry: Option<mio::Registry>,
    /// The deadline the lot task's timer is set for.
    armed: Option<u64>,
    parked: usize,
    closed: bool,
}

impl Lot {
    pub(crate) fn new() -> Lot {
        Lot {
            inner: Mutex::new(Inner::default()),
            epoch: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the state consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections parked now.
    pub(crate) fn parked(&self) -> usize {
        self.lock().parked
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Park a connection. It comes back (`Err`) if it cannot be: the lot is
    /// closed, or its epoll set could not be made or take the socket.
    pub(crate) fn park(self: &Arc<Self>, p: Box<dyn Parked>) -> Result<(), Box<dyn Parked>> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(p);
        }
        if inner.registry.is_none() {
            match self.start() {
                Ok(registry) => inner.registry = Some(registry),
                Err(e) => {
                    error!(error = %e, "parking lot unavailable; hibernated connections keep their task");
                    return Err(p);
                }
            }
        }
        let key = match inner.free.pop() {
            Some(k) => k,
            None => {
                let Ok(k) = u32::try_from(inner.slots.len()) else {
                    return Err(p);
                };
                inner.slots.push(None);
                inner.generations.push(0);
                k
            }
        };
        let generation = inner.generations[key as usize].wrapping_add(1);
        inner.generations[key as usize] = generation;
        if let Some(fd) = p.watch() {
            let registry = inner.registry.as_ref().expect("started above");
            if let Err(e) = arm(registry.as_raw_fd(), fd, token(key, generation)) {
                debug!(error = %e, "parking: socket not watchable; connection keeps its task");
                inner.free.push(key);
                return Err(p);
            }
        }
        let mut wake_task = false;
        if let Some(at) = p.deadline() {
            let at = self.nanos(at);
            inner.deadlines.insert((at, key));
            wake_task |= inner.armed.is_none_or(|armed| at < armed);
        }
        // Under the lot's lock: a message sent from now on wakes this key,
        // and one sent before is seen here.
        if !p.wait_on_mailbox(Arc::downgrade(self), key) {
            inner.woken.push(key);
            wake_task = true;
        }
        inner.slots[key as usize] = Some(p);
        inner.parked += 1;
        let task = if wake_task { inner.task.take() } else { None };
        drop(inner);
        if let Some(t) = task {
            t.wake();
        }
        Ok(())
    }

    /// Something arrived in the mailbox of the connection parked as `key`.
    pub(crate) fn wake(&self, key: u32) {
        let task = {
            let mut inner = self.lock();
            inner.woken.push(key);
            inner.task.take()
        };
        if let Some(t) = task {
            t.wake();
        }
    }

    /// The server is gone: the lot's task ends.
    pub(crate) fn close(&self) {
        let task = {
            let mut inner = self.lock();
            inner.closed = true;
            inner.task.take()
        };
        if let Some(t) = task {
            t.wake();
        }
    }

    /// Take a parked connection out, if `key` still holds one. `fired`: the
    /// generation a socket event carried; an event from an earlier stay in
    /// the slot takes nothing.
    ///
    /// The socket stays in the lot's epoll set. Woken by its data, it is
    /// disarmed already (one-shot). Woken by its mailbox or its deadline, it
    /// stays armed until its next park re-arms it, and the one event it may
    /// raise meanwhile carries this stay's generation, which is the slot's
    /// no longer once anyone parks there, and finds the slot empty until
    /// then: it takes nothing either way. So taking a connection out costs
    /// no system call, and parking one costs one (`arm`).
    fn take(&self, inner: &mut Inner, key: u32, fired: Option<u32>) -> Option<Box<dyn Parked>> {
        if fired.is_some_and(|g| inner.generations.get(key as usize) != Some(&g)) {
            return None;
        }
        let p = inner.slots.get_mut(key as usize)?.take()?;
        if let Some(at) = p.deadline() {
            inner.deadlines.remove(&(self.nanos(at), key));
        }
        inner.free.push(key);
        inner.parked -= 1;
        Some(p)
    }

    /// Make the epoll set and start the lot's task on it.
    fn start(self: &Arc<Self>) -> io::Result<mio::Registry> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        // SAFETY: the epoll descriptor belongs to the `Poll`, which the
        // `AsyncFd` owns: it stays open, and the same, for the AsyncFd's life.
        let fd = unsafe {
            AsyncFd::register_with_interest(EpollSet(poll), tokio::io::Interest::READABLE)?
        };
        tokio::spawn(run(self.clone(), fd));
        Ok(registry)
    }
}

/// An event's data: the slot and its generation.
fn token(key: u32, generation: u32) -> u64 {
    u64::from(generation) << 32 | u64::from(key)
}

/// Watch `fd` for its next readable event (or hang-up), once: the event
/// disarms it (`EPOLLONESHOT`), and the next park re-arms it with one
/// system call (`EPOLL_CTL_MOD`). A socket not in the set yet is added; a
/// socket closed leaves the set by itself.
fn arm(epoll: RawFd, fd: RawFd, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32,
        u64: token,
    };
    // SAFETY: `ev` is a valid event for the call; the kernel copies it.
    if unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_MOD, fd, &mut ev) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOENT) {
        return Err(e);
    }
    // SAFETY: as above.
    if unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut ev) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The lot's epoll set, itself watched by tokio's reactor.
struct EpollSet(mio::Poll);

impl AsRawFd for EpollSet {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// On the lot task's end (the server gone, or the runtime shutting down),
/// parked connections are dropped: their sockets close.
struct DropParked(Arc<Lot>);

impl Drop for DropParked {
    fn drop(&mut self) {
        let parked: Vec<_> = {
            let mut inner = self.0.lock();
            inner.closed = true;
            inner.parked = 0;
            inner.deadlines.clear();
            std::mem::take(&mut inner.slots)
        };
        // Dropped outside the lock: a connection's drop may drop the server's
        // registry, which closes the lot.
        drop(parked);
    }
}

async fn run(lot: Arc<Lot>, epoll: AsyncFd<EpollSet>) {
    let _guard = DropParked(lot.clone());
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let sleep = sleep_until(Instant::now() + Duration::from_secs(86400));
    tokio::pin!(sleep);
    // (key, the generation a socket event carried; None for a mailbox or a
    // deadline).
    let mut due: VecDeque<(u32, Option<u32>)> = VecDeque::new();
    loop {
        // Wait for socket events, a mailbox, a deadline (or resume the rest
        // of the last batch).
        let mut socket_events = false;
        if due.is_empty() {
            let closed = poll_fn(|cx| {
                let mut inner = lot.lock();
                if inner.closed {
                    return Poll::Ready(true);
                }
                if !inner.woken.is_empty() {
                    return Poll::Ready(false);
                }
                let first = inner.deadlines.first().map(|d| d.0);
                if first != inner.armed {
                    inner.armed = first;
                    if let Some(at) = first {
                        sleep.as_mut().reset(lot.epoch + Duration::from_nanos(at));
                    }
                }
                if !inner.task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    inner.task = Some(cx.waker().clone());
                }
                drop(inner);
                if let Poll::Ready(r) = epoll.poll_read_ready(cx) {
                    // Cleared before the set is drained: events after the
                    // drain raise readiness again.
                    if let Ok(mut guard) = r {
                        guard.clear_ready();
                    }
                    socket_events = true;
                    return Poll::Ready(false);
                }
                if lot.lock().armed.is_some() && sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(false);
                }
                Poll::Pending
            })
            .await;
            if closed {
                return;
            }
        }
        if socket_events {
            let fd = epoll.get_ref().as_raw_fd();
            loop {
                // SAFETY: `events` has room for EVENTS entries; the kernel
                // fills the first n.
                let n = unsafe { libc::epoll_wait(fd, events.as_mut_ptr(), EVENTS as i32, 0) };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        error!(error = %e, "parking lot: epoll failed");
                    }
                    break;
                }
                let n = n as usize;
                due.extend(events[..n].iter().map(|e| {
                    let data = e.u64;
                    (data as u32, Some((data >> 32) as u32))
                }));
                if n < EVENTS {
                    break;
                }
            }
        }
        {
            let mut inner = lot.lock();
            due.extend(inner.woken.drain(..).map(|k| (k, None)));
            let now = lot.nanos(Instant::now());
            while let Some(&(at, key)) = inner.deadlines.first() {
                if at > now {
                    break;
                }
                inner.deadlines.pop_first();
                due.push_back((key, None));
            }
        }
        let mut batch = Vec::with_capacity(RESUME_BATCH.min(due.len()));
        {
            let mut inner = lot.lock();
            while batch.len() < RESUME_BATCH {
                let Some((key, fired)) = due.pop_front() else {
                    break;
                };
                if let Some(p) = lot.take(&mut inner, key, fired) {
                    batch.push(p);
                }
            }
        }
        for p in batch {
            p.resume();
        }
        if !due.is_empty() {
            tokio::task::yield_now().await;
        }
    }
}
