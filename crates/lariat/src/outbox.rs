//! What the connection has taken from its session and not yet written: a
//! buffer of encoded frames, with large payloads spliced in by reference
//! ([`Session::take_transmit_spliced`]) and written with vectored writes,
//! so an echoed 64 KiB message is never copied into an output buffer.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use lariat_proto::Session;
use tokio::io::AsyncWrite;

/// Most slices given to one vectored write.
const MAX_SLICES: usize = 16;

#[derive(Default)]
pub(crate) struct Outbox {
    buf: Vec<u8>,
    /// Bytes of `buf` written.
    pos: usize,
    /// Payloads that go at their offset of `buf`, in order.
    spliced: Vec<(usize, Bytes)>,
    /// The next splice not fully written, and how much of it was.
    next: usize,
    next_written: usize,
}

impl Outbox {
    /// Everything taken has been written.
    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.buf.len() && self.next == self.spliced.len()
    }

    /// Bytes taken and not yet written.
    pub(crate) fn len(&self) -> usize {
        if self.next == self.spliced.len() {
            return self.buf.len() - self.pos - self.next_written;
        }
        let spliced: usize = self.spliced[self.next..].iter().map(|(_, b)| b.len()).sum();
        self.buf.len() - self.pos + spliced - self.next_written
    }

    /// Once empty: take what the session has queued (reusing the buffer).
    pub(crate) fn refill(&mut self, session: &mut Session) {
        debug_assert!(self.is_empty());
        self.buf.clear();
        self.spliced.clear();
        self.pos = 0;
        self.next = 0;
        self.next_written = 0;
        session.take_transmit_spliced(&mut self.buf, &mut self.spliced);
    }

    /// Write as much as the socket takes; the bytes written.
    pub(crate) fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if self.next == self.spliced.len() {
            // Nothing spliced: the common case, one plain write.
            let r = Pin::new(io).poll_write(cx, &self.buf[self.pos..]);
            if let Poll::Ready(Ok(n)) = r {
                self.pos += n;
            }
            return r;
        }
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut count = 0;
        let (mut at, mut i, mut skip) = (self.pos, self.next, self.next_written);
        while count < MAX_SLICES {
            let until = self.spliced.get(i).map_or(self.buf.len(), |(o, _)| *o);
            if at < until {
                slices[count] = IoSlice::new(&self.buf[at..until]);
                count += 1;
                at = until;
                continue;
            }
            let Some((_, bytes)) = self.spliced.get(i) else {
                break;
            };
            slices[count] = IoSlice::new(&bytes[skip..]);
            count += 1;
            skip = 0;
            i += 1;
        }
        let r = Pin::new(io).poll_write_vectored(cx, &slices[..count]);
        if let Poll::Ready(Ok(n)) = r {
            self.advance(n);
        }
        r
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let until = self
                .spliced
                .get(self.next)
                .map_or(self.buf.len(), |(o, _)| *o);
            if self.pos < until {
                let t = n.min(until - self.pos);
                self.pos += t;
                n -= t;
                continue;
            }
            let Some((_, bytes)) = self.spliced.get(self.next) else {
                break;
            };
            let t = n.min(bytes.len() - self.next_written);
            self.next_written += t;
            n -= t;
            if self.next_written == bytes.len() {
                self.next += 1;
                self.next_written = 0;
            }
        }
        if self.is_empty() {
            // Let written payloads go now, not at the next refill.
            self.spliced.clear();
            self.next = 0;
        }
    }

    /// Give the buffer back (hibernate), if everything was written.
    pub(crate) fn release(&mut self) {
        if self.is_empty() {
            *self = Outbox::default();
        }
    }

    /// What is left, in one buffer (the connection's last writes).
    pub(crate) fn take_rest(&mut self) -> Vec<u8> {
        let mut rest = Vec::with_capacity(self.len());
        let mut at = self.pos;
        for (i, (offset, bytes)) in self.spliced.iter().enumerate().skip(self.next) {
            rest.extend_from_slice(&self.buf[at..*offset]);
            let skip = if i == self.next { self.next_written } else { 0 };
            rest.extend_from_slice(&bytes[skip..]);
            at = *offset;
        }
        rest.extend_from_slice(&self.buf[at.max(self.pos)..]);
        *self = Outbox::default();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lariat_proto::{Config, Frame, Role};
    use std::time::Instant;

    /// A writer that takes at most `step` bytes per call, vectored or not.
    struct Trickle {
        got: Vec<u8>,
        step: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.got.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut left = self.step;
            let mut n = 0;
            for b in bufs {
                let t = b.len().min(left);
                self.got.extend_from_slice(&b[..t]);
                n += t;
                left -= t;
                if left == 0 {
                    break;
                }
            }
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn frames() -> Vec<Frame> {
        vec![
            Frame::text("small"),
            Frame::binary(vec![1u8; 70_000]),
            Frame::binary(vec![2u8; 20_000]),
            Frame::text("between"),
            Frame::binary(vec![3u8; 100]),
            Frame::binary(vec![4u8; 17_000]),
        ]
    }

    /// The same bytes as an unspliced transmit, whatever the write sizes,
    /// and `len` counts down to zero.
    /// A session with [`frames`] queued.
    fn session_with_frames() -> Session {
        let now = Instant::now();
        let mut s = Session::new(Role::Server, Config::default(), now);
        for f in frames() {
            s.send(&f, now).unwrap();
        }
        s
    }

    /// The bytes of [`frames`], taken flat (copied).
    fn expected() -> Vec<u8> {
        let mut flat = Vec::new();
        session_with_frames().take_transmit(&mut flat);
        flat
    }

    #[test]
    fn vectored_writes_give_the_same_bytes_as_a_copy() {
        let expected = expected();
        for step in [1, 7, 1000, 16_384, 65_536, 1 << 20] {
            let mut out = Outbox::default();
            out.refill(&mut session_with_frames());
            assert_eq!(out.spliced.len(), 3, "three payloads spliced");
            assert_eq!(out.len(), expected.len());
            let mut w = Trickle {
                got: Vec::new(),
                step,
            };
            let waker = futures_waker();
            let mut cx = Context::from_waker(&waker);
            while !out.is_empty() {
                let before = out.len();
                let Poll::Ready(Ok(n)) = out.poll_write(&mut w, &mut cx) else {
                    panic!()
                };
                assert_eq!(out.len(), before - n);
            }
            assert_eq!(w.got, expected, "step {step}");
        }
    }

    #[test]
    fn the_rest_after_a_partial_write_is_what_remains() {
        let expected = expected();
        for step in [3, 70_010, 90_000] {
            let mut out = Outbox::default();
            out.refill(&mut session_with_frames());
            let mut w = Trickle {
                got: Vec::new(),
                step,
            };
            let waker = futures_waker();
            let Poll::Ready(Ok(n)) = out.poll_write(&mut w, &mut Context::from_waker(&waker))
            else {
                panic!()
            };
            let rest = out.take_rest();
            assert_eq!([&w.got[..n], &rest[..]].concat(), expected, "step {step}");
        }
    }

    fn futures_waker() -> std::task::Waker {
        std::task::Waker::noop().clone()
    }
}
