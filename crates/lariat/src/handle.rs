//! The connection's handle: Cowboy's pid. Cloneable, `Send`, usable from any
//! task or thread; what is sent through it reaches the handler's `info`
//! callback (S6), in order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Sending to a connection that has ended. The message comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError<M>(pub M);

impl<M> std::fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection is closed")
    }
}

impl<M: std::fmt::Debug> std::error::Error for SendError<M> {}

struct State<M> {
    queue: VecDeque<M>,
    waker: Option<Waker>,
    closed: bool,
}

pub(crate) struct Mailbox<M> {
    id: u64,
    state: Mutex<State<M>>,
}

/// A handle to one WebSocket connection (S6, SPEC: "Cowboy's pid").
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

fn lock<M>(m: &Mutex<State<M>>) -> std::sync::MutexGuard<'_, State<M>> {
    // A panic while holding this lock cannot leave the queue inconsistent:
    // every critical section is a single push, pop or flag change.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<M> Handle<M> {
    pub(crate) fn new(id: u64) -> Handle<M> {
        Handle {
            mailbox: Arc::new(Mailbox {
                id,
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    waker: None,
                    closed: false,
                }),
            }),
        }
    }

    /// The connection's id (unique in this process; it appears in log lines).
    pub fn id(&self) -> u64 {
        self.mailbox.id
    }

    /// Deliver `msg` to the connection's `info` callback. Fails, giving the
    /// message back, if the connection has ended.
    pub fn send(&self, msg: M) -> Result<(), SendError<M>> {
        let waker = {
            let mut s = lock(&self.mailbox.state);
            if s.closed {
                return Err(SendError(msg));
            }
            s.queue.push_back(msg);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// True once the connection has ended.
    pub fn is_closed(&self) -> bool {
        lock(&self.mailbox.state).closed
    }

    /// Do two handles point to the same connection?
    pub fn same_connection(&self, other: &Handle<M>) -> bool {
        Arc::ptr_eq(&self.mailbox, &other.mailbox)
    }

    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<M> {
        let mut s = lock(&self.mailbox.state);
        match s.queue.pop_front() {
            Some(m) => Poll::Ready(m),
            None => {
                if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    s.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    pub(crate) fn try_recv(&self) -> Option<M> {
        lock(&self.mailbox.state).queue.pop_front()
    }

    /// Refuse further messages and drop the queued ones.
    pub(crate) fn close(&self) {
        let dropped = {
            let mut s = lock(&self.mailbox.state);
            s.closed = true;
            s.waker = None;
            std::mem::take(&mut s.queue)
        };
        drop(dropped);
    }

    /// Give back the queue's memory if it is empty (S10).
    pub(crate) fn shrink(&self) {
        let mut s = lock(&self.mailbox.state);
        if s.queue.is_empty() {
            s.queue = VecDeque::new();
        }
    }
}
