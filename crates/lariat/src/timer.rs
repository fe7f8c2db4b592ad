//! Timers owned by a connection (S3.1: Erlang's `start_timer(T, self(), Msg)`):
//! when one fires, its message goes to the handler's `info` callback.

use tokio::time::Instant;

/// Names a started timer, to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(u64);

/// A connection's timers. Few per connection, so a vector scanned for its
/// minimum beats a heap.
pub(crate) struct Timers<M> {
    entries: Vec<(Instant, TimerId, M)>,
    next_id: u64,
}

impl<M> Timers<M> {
    pub(crate) fn new() -> Timers<M> {
        Timers {
            entries: Vec::new(),
            next_id: 0,
        }
    }

    pub(crate) fn start(&mut self, at: Instant, msg: M) -> TimerId {
        self.next_id += 1;
        let id = TimerId(self.next_id);
        self.entries.push((at, id, msg));
        id
    }

    pub(crate) fn cancel(&mut self, id: TimerId) -> Option<M> {
        let i = self.entries.iter().position(|e| e.1 == id)?;
        Some(self.entries.swap_remove(i).2)
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.entries.iter().map(|e| e.0).min()
    }

    /// Remove and return the earliest timer due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<M> {
        let (i, _) = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.0 <= now)
            .min_by_key(|(_, e)| (e.0, e.1 .0))?;
        Some(self.entries.swap_remove(i).2)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// No timer, and none ever started (ids would restart from here).
    pub(crate) fn is_pristine(&self) -> bool {
        self.entries.is_empty() && self.next_id == 0
    }

    pub(crate) fn shrink(&mut self) {
        if self.entries.is_empty() {
            self.entries = Vec::new();
        }
    }
}
