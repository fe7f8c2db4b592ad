//! The direct path of a WebSocket upgrade on plain TCP: a connection's first
//! request read once, parsed here (httparse), answered with its 101 here, and
//! the socket handed straight to the connection's task, with no HTTP
//! connection machinery set up and taken down around one request.
//!
//! Only the common case takes it: a whole request head in the first read, a
//! `GET` over HTTP/1.1 without a body, on a route that upgrades, with a valid
//! handshake (RFC 6455 §4.2.1), whose init asks to upgrade. Anything else goes
//! to hyper ([`crate::server`]) with the bytes read so far, and is served there
//! exactly as a connection that never came this way, refusals (400, 426, 431)
//! included; a response init already chose is handed over with it, so that
//! init runs once per request.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};
use lariat_proto::handshake::validate_request;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::TcpStream;
use tracing::debug;

use crate::connection::Io;
use crate::request::Request;
use crate::router::Outcome;
use crate::server::{call_init, finish, upgrade_headers, First, ServerLink, Shared, Slot};

/// The first read's buffer. A browser's upgrade request, cookies included,
/// is well under this; a head that does not fit goes to hyper, whose buffer
/// grows up to the configured limit.
const FIRST_READ: usize = 4096;

/// How far away "no deadline" is, for a header read timeout too large to
/// add to the clock.
const NO_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30 * 365 * 86_400);

/// Most headers the direct path parses; a request with more goes to hyper
/// (which applies the configured limit).
const MAX_HEADERS: usize = 32;

/// Serve the connection's first request if it is an upgrade the direct path
/// can take; otherwise say what is left for hyper.
pub(crate) async fn first_request(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    slot: &Arc<Slot>,
) -> First {
    let registry = &slot.0;
    let mut buf = BytesMut::with_capacity(FIRST_READ);
    let mut deadline = None;
    loop {
        // Made before the flag is read: a shutdown begun after the read
        // still wakes it (`notify_waiters` reaches every `Notified` made
        // before it, polled or not).
        let shutdown = registry.shutdown.notified();
        if registry.shutting_down.load(Ordering::SeqCst) {
            // hyper closes an idle connection at once on shutdown.
            return hand_over(stream, buf.freeze(), None);
        }
        match read_draining(&stream, &mut buf) {
            // Closed before a request: nothing to answer.
            Ok(0) => return First::Done,
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // The header read timeout counts from the accept, as in
                // hyper: a client that sends nothing is closed at it. The
                // deadline is fixed the first time the read would block, so
                // a request already there costs no timer. A head begun
                // here and finished in hyper gets hyper's own timeout on
                // top: at most twice the setting in all.
                let deadline = *deadline.get_or_insert_with(|| {
                    let now = tokio::time::Instant::now();
                    // A timeout too large to add is as good as none.
                    now.checked_add(shared.config.header_read_timeout)
                        .unwrap_or(now + NO_DEADLINE)
                });
                tokio::select! {
                    ready = stream.readable() => {
                        if let Err(e) = ready {
                            debug!(%peer, error = %e, "http connection ended with an error");
                            return First::Done;
                        }
                    }
                    _ = shutdown => {}
                    () = tokio::time::sleep_until(deadline) => {
                        debug!(%peer, "no request head within the header read timeout; closed");
                        return First::Done;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                debug!(%peer, error = %e, "http connection ended with an error");
                return First::Done;
            }
        }
    }
    let bytes = buf.freeze();
    let Some((parts, head_len)) = parse_upgrade(&bytes) else {
        return hand_over(stream, bytes, None);
    };
    let Some((endpoint, params)) = shared.router.find(parts.uri.path()) else {
        return hand_over(stream, bytes, None);
    };
    if !endpoint.upgrades() {
        return hand_over(stream, bytes, None);
    }
    // Refusals are hyper's to write (it checks the handshake again).
    let Ok(mut hs) = validate_request(&parts.method, parts.version, &parts.headers) else {
        return hand_over(stream, bytes, None);
    };
    let request = Request {
        parts,
        body: Bytes::new(),
        params,
        peer,
    };
    let mut upgrader = match call_init(endpoint, request).await {
        Outcome::Respond(r) => return hand_over(stream, bytes, Some(Box::new(finish(r)))),
        Outcome::Upgrade(u) => u,
    };
    let mut head = Vec::with_capacity(192);
    head.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n",
    );
    upgrade_headers(&mut *upgrader, &mut hs, peer, |name, value| {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    });
    head.extend_from_slice(b"\r\n");
    let mut stream = stream;
    if let Err(e) = stream.write_all(&head).await {
        debug!(%peer, error = %e, "upgrade did not complete");
        return First::Done;
    }
    // S1.1: the 101 is out; frames the client sent with its request are the
    // connection's first input.
    let leftover = bytes.slice(head_len..);
    drop(bytes);
    upgrader.spawn(Io::Tcp(stream), leftover, peer, ServerLink::new(slot));
    First::Done
}

/// Read what the socket holds into `buf`'s spare room, as
/// `TcpStream::try_read_buf` does, and when the read comes back short (the
/// socket's queue emptied) also forget that the socket was readable, as
/// tokio's own `poll_read` does after a short read: the connection's first
/// read after the 101 then waits for the client's next bytes instead of
/// asking the kernel once for nothing (one `recvfrom` fewer per handshake).
/// Data that comes later raises a new readiness event, which this does not
/// clear: the snapshot it clears was taken before the read.
fn read_draining(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let room = buf.capacity() - buf.len();
    let mut read = None;
    let r = stream.try_io(Interest::READABLE, || {
        let n = stream.try_read_buf(buf)?;
        read = Some(n);
        if n > 0 && n < room {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match read {
        Some(n) => Ok(n),
        None => r,
    }
}

fn hand_over(
    stream: TcpStream,
    prefix: Bytes,
    answer: Option<Box<http::Response<http_body_util::Full<Bytes>>>>,
) -> First {
    First::Hyper(Rewind { prefix, stream }, answer)
}

/// Parse `bytes` as the head of a request the direct path takes: the
/// request's parts (header values and target sharing `bytes`, not copied)
/// and the head's length. None for anything hyper must see: a partial or
/// malformed head, too many headers, a method other than GET, a version
/// other than HTTP/1.1, a body.
fn parse_upgrade(bytes: &Bytes) -> Option<(http::request::Parts, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    if req.method != Some("GET") || req.version != Some(1) {
        return None;
    }
    let uri = Uri::from_maybe_shared(bytes.slice_ref(req.path?.as_bytes())).ok()?;
    let mut map = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
            return None;
        }
        let value = HeaderValue::from_maybe_shared(bytes.slice_ref(h.value)).ok()?;
        map.append(name, value);
    }
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = Method::GET;
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    parts.headers = map;
    Some((parts, head_len))
}

/// A socket whose first bytes the direct path has read: hyper reads them
/// again, first, then the socket.
pub(crate) struct Rewind {
    pub(crate) prefix: Bytes,
    pub(crate) stream: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
