//! The connection's handle: Cowboy's pid. Cloneable, `Send`, usable from any
//! task or thread; what is sent through it reaches the handler's `info`
//! callback (S6), in order.
//!
//! The mailbox behind it is unbounded by default; bounded with
//! [`Upgrade::mailbox_capacity`](crate::Upgrade::mailbox_capacity), where a
//! full mailbox either refuses the message or closes the connection
//! ([`MailboxOverflow`]). A close asked through the handle, and a server
//! shutdown, jump ahead of every queued message.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

use lariat_proto::CloseCode;

use crate::parking::Lot;
use crate::pubsub::{Publication, SlowSubscriber};

/// Why a message could not be delivered. The message comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError<M> {
    /// The connection has ended (or is closing).
    Closed(M),
    /// The mailbox is bounded and full, and its policy is
    /// [`MailboxOverflow::Reject`].
    Full(M),
}

impl<M> SendError<M> {
    /// The message that was not delivered.
    pub fn into_inner(self) -> M {
        match self {
            SendError::Closed(m) | SendError::Full(m) => m,
        }
    }
}

impl<M> std::fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("the connection is closed"),
            SendError::Full(_) => f.write_str("the connection's mailbox is full"),
        }
    }
}

impl<M: std::fmt::Debug> std::error::Error for SendError<M> {}

/// What a bounded mailbox does with a message that does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MailboxOverflow {
    /// Refuse it: [`Handle::send`] returns [`SendError::Full`]. The default.
    #[default]
    Reject,
    /// Refuse it and close the connection with 1008 (policy violation): a
    /// consumer that cannot keep up is cut off.
    Close,
}

/// A close requested from outside the handler, served before queued messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    /// [`Handle::close`]: close with this code and reason.
    Close(CloseCode, String),
    /// The mailbox overflowed under [`MailboxOverflow::Close`].
    Overflow,
    /// The server is shutting down: close with 1001.
    Shutdown,
    /// A publication found the bounded mailbox full under
    /// [`SlowSubscriber::Disconnect`]: close with 1008.
    SlowSubscriber,
}

/// A queued message: for `info`, or a publication to write out.
pub(crate) enum Item<M> {
    Info(M),
    Publish(Arc<Publication>),
}

/// Who is woken when something arrives: the connection's task, or, while it
/// hibernates without one, the parking lot that holds it (S10).
#[derive(Default)]
enum Waiter {
    #[default]
    Nobody,
    Task(Waker),
    Parked(Weak<Lot>, u32),
}

impl Waiter {
    fn wake(self) {
        match self {
            Waiter::Nobody => {}
            Waiter::Task(w) => w.wake(),
            Waiter::Parked(lot, key) => {
                if let Some(lot) = lot.upgrade() {
                    lot.wake(key);
                }
            }
        }
    }
}

struct State<M> {
    queue: VecDeque<Item<M>>,
    /// Publications refused by a full bounded mailbox under
    /// [`SlowSubscriber::Drop`], not yet reported to the handler (u32, not
    /// u64: it makes room for `Mailbox::registered` in the same allocation).
    missed: u32,
    waiter: Waiter,
    closed: bool,
    /// Here, not beside the lock: it fits in this struct's padding.
    overflow: MailboxOverflow,
    /// Boxed: rare, and every idle connection's mailbox has the field.
    control: Option<Box<Control>>,
}

pub(crate) struct Mailbox<M> {
    id: u64,
    /// Most messages queued; `usize::MAX`: unbounded (no Option: 8 bytes
    /// less in every connection's mailbox).
    capacity: usize,
    state: Mutex<State<M>>,
    /// The connection's task is `state.waiter`, and nothing has arrived
    /// since it found the mailbox empty. Set by `poll_recv` and cleared by
    /// whatever takes or replaces the waiter, both under the lock; read
    /// without it, so that the task's repeated polls while nothing arrives
    /// take no lock. (While it is set, any arrival clears it and wakes the
    /// task, which then polls again.)
    registered: AtomicBool,
}

/// A handle to one WebSocket connection (S6; Cowboy's pid).
///
/// ```no_run
/// # async fn demo(handle: lariat::Handle<String>) {
/// let h = handle.clone();
/// std::thread::spawn(move || {
///     // From any thread: delivered to the handler's `info`.
///     if h.send("hello from a thread".to_string()).is_err() {
///         eprintln!("connection {} has closed", h.id());
///     }
/// });
/// # }
/// ```
pub struct Handle<M> {
    mailbox: Arc<Mailbox<M>>,
}

impl<M> Clone for Handle<M> {
    fn clone(&self) -> Self {
        Handle {
            mailbox: self.mailbox.clone(),
        }
    }
}

impl<M> std::fmt::Debug for Handle<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("id", &self.mailbox.id)
            .finish()
    }
}

/// The waiter, for a sender to wake once the lock is released; the task it
/// was is no longer registered (its next poll takes the lock). Every change
/// of the waiter but `poll_recv`'s own goes through here.
fn take_waiter<M>(s: &mut State<M>, registered: &AtomicBool) -> Waiter {
    registered.store(false, Ordering::Release);
    std::mem::take(&mut s.waiter)
}

fn lock<M>(m: &Mutex<State<M>>) -> std::sync::MutexGuard<'_, State<M>> {
    // Every critical section is a push, a pop or a flag change: a panic
    // elsewhere cannot leave the state inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<M> Handle<M> {
    pub(crate) fn new(id: u64, capacity: usize, overflow: MailboxOverflow) -> Handle<M> {
        Handle {
            mailbox: Arc::new(Mailbox {
                id,
                capacity,
                state: Mutex::new(State {
                    overflow,
                    queue: VecDeque::new(),
                    missed: 0,
                    waiter: Waiter::Nobody,
                    closed: false,
                    control: None,
                }),
                registered: AtomicBool::new(false),
            }),
        }
    }

    /// The connection's id (unique in this process; it appears in log lines).
    pub fn id(&self) -> u64 {
        self.mailbox.id
    }

    /// Deliver `msg` to the connection's `info` callback, after the messages
    /// already queued. Fails, giving the message back, if the connection has
    /// ended or its bounded mailbox is full.
    pub fn send(&self, msg: M) -> Result<(), SendError<M>> {
        // Wakes happen after the lock is released: waking a parked
        // connection takes the parking lot's lock, which is held while the
        // lot takes this one (`park`).
        let (waiter, result) = {
            let mut s = lock(&self.mailbox.state);
            if s.closed {
                return Err(SendError::Closed(msg));
            }
            if s.queue.len() >= self.mailbox.capacity {
                if s.overflow == MailboxOverflow::Close && s.control.is_none() {
                    s.control = Some(Box::new(Control::Overflow));
                    (
                        take_waiter(&mut s, &self.mailbox.registered),
                        Err(SendError::Full(msg)),
                    )
                } else {
                    return Err(SendError::Full(msg));
                }
            } else {
                s.queue.push_back(Item::Info(msg));
                (take_waiter(&mut s, &self.mailbox.registered), Ok(()))
            }
        };
        waiter.wake();
        result
    }

    /// Queue a publication for the connection to write out; false if the
    /// connection has ended. A full bounded mailbox applies the
    /// publication's slow-subscriber policy.
    pub(crate) fn publish(&self, p: Arc<Publication>) -> bool {
        let waiter = {
            let mut s = lock(&self.mailbox.state);
            if s.closed {
                return false;
            }
            if s.queue.len() >= self.mailbox.capacity {
                match p.slow_policy() {
                    SlowSubscriber::Drop => s.missed = s.missed.saturating_add(1),
                    SlowSubscriber::Disconnect => {
                        if s.control.is_none() {
                            s.control = Some(Box::new(Control::SlowSubscriber));
                        }
                    }
                }
            } else {
                s.queue.push_back(Item::Publish(p));
            }
            take_waiter(&mut s, &self.mailbox.registered)
        };
        waiter.wake();
        true
    }

    /// Close the connection with `code` and `reason` (S11.2, S11.4), ahead of
    /// any queued message; the handler's `terminate` gets
    /// [`TerminateReason::Stop`](crate::TerminateReason::Stop). Returns false
    /// if the connection had already ended.
    pub fn close(&self, code: impl Into<CloseCode>, reason: impl Into<String>) -> bool {
        self.control(Control::Close(code.into(), reason.into()))
    }

    pub(crate) fn control(&self, control: Control) -> bool {
        let waiter = {
            let mut s = lock(&self.mailbox.state);
            if s.closed {
                return false;
            }
            if s.control.is_none() {
                s.control = Some(Box::new(control));
            }
            take_waiter(&mut s, &self.mailbox.registered)
        };
        waiter.wake();
        true
    }

    /// True once the connection has ended.
    pub fn is_closed(&self) -> bool {
        lock(&self.mailbox.state).closed
    }

    /// Messages waiting for the `info` callback, and publications waiting to
    /// be written out.
    pub fn queued(&self) -> usize {
        lock(&self.mailbox.state).queue.len()
    }

    /// Do two handles point to the same connection?
    pub fn same_connection(&self, other: &Handle<M>) -> bool {
        Arc::ptr_eq(&self.mailbox, &other.mailbox)
    }

    /// The next control request, count of missed publications, or message,
    /// in that order of priority.
    ///
    /// Called by the connection's own task only: while `registered` is set,
    /// its waker is the one in the mailbox, and nothing has arrived.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Received<M>> {
        if self.mailbox.registered.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        let mut s = lock(&self.mailbox.state);
        if let Some(c) = s.control.take() {
            return Poll::Ready(Received::Control(c));
        }
        if s.missed > 0 {
            return Poll::Ready(Received::Missed(u64::from(std::mem::take(&mut s.missed))));
        }
        match s.queue.pop_front() {
            Some(Item::Info(m)) => Poll::Ready(Received::Message(m)),
            Some(Item::Publish(p)) => Poll::Ready(Received::Publish(p)),
            None => {
                if !matches!(&s.waiter, Waiter::Task(w) if w.will_wake(cx.waker())) {
                    s.waiter = Waiter::Task(cx.waker().clone());
                }
                self.mailbox.registered.store(true, Ordering::Release);
                Poll::Pending
            }
        }
    }

    /// A queued message or publication, if no control request is waiting.
    pub(crate) fn try_recv(&self) -> Option<Item<M>> {
        let mut s = lock(&self.mailbox.state);
        if s.control.is_some() || s.missed > 0 {
            return None;
        }
        s.queue.pop_front()
    }

    /// Refuse further messages and drop the queued ones; returns how many
    /// were dropped (the caller logs them: nothing accepted is lost silently).
    pub(crate) fn close_mailbox(&self) -> usize {
        let dropped = {
            let mut s = lock(&self.mailbox.state);
            s.closed = true;
            drop(take_waiter(&mut s, &self.mailbox.registered));
            std::mem::take(&mut s.queue)
        };
        dropped.len()
    }

    /// The connection is parking (S10): wake the lot, under `key`, when
    /// something arrives. False, and nothing changed, if something already
    /// waits (or the mailbox is closed): then it must not park.
    pub(crate) fn park(&self, lot: Weak<Lot>, key: u32) -> bool {
        let mut s = lock(&self.mailbox.state);
        if s.closed || s.control.is_some() || s.missed > 0 || !s.queue.is_empty() {
            return false;
        }
        drop(take_waiter(&mut s, &self.mailbox.registered));
        s.waiter = Waiter::Parked(lot, key);
        true
    }

    /// Give back the queue's memory if it is empty (S10).
    pub(crate) fn shrink(&self) {
        let mut s = lock(&self.mailbox.state);
        if s.queue.is_empty() {
            s.queue = VecDeque::new();
        }
    }
}

/// What the mailbox yields.
pub(crate) enum Received<M> {
    Control(Box<Control>),
    Missed(u64),
    Message(M),
    Publish(Arc<Publication>),
}

/// A connection's shutdown switch, with its handler's message type erased,
/// for the server's registry of live connections.
pub(crate) trait Shutdown: Send + Sync {
    fn shutdown(&self);
}

impl<M: Send> Shutdown for Mailbox<M> {
    fn shutdown(&self) {
        let waiter = {
            let mut s = lock(&self.state);
            if s.closed {
                return;
            }
            s.control = Some(Box::new(Control::Shutdown));
            take_waiter(&mut s, &self.registered)
        };
        waiter.wake();
    }
}

impl<M: Send + 'static> Handle<M> {
    pub(crate) fn shutdown_switch(&self) -> Arc<dyn Shutdown> {
        self.mailbox.clone()
    }
}

#[cfg(test)]
mod tests {
    /// Every connection has a mailbox, parked or not: at 104 bytes or less
    /// its Arc allocation is 128 bytes (with malloc's header), one word more
    /// and it is 144.
    #[test]
    fn mailbox_stays_small() {
        let size = std::mem::size_of::<super::Mailbox<String>>();
        assert!(size <= 104, "the mailbox is {size} bytes");
    }
}
