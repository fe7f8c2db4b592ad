//! The HTTP/1.1 server: accept loop, request dispatch to routes, and the
//! hand-off of upgraded connections to their driver task.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use lariat_proto::handshake::{validate_request, ClientHandshake, HandshakeError};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::Notify;
use tracing::{debug, error, info, warn};

use crate::connection::{catch, Io};
use crate::handle::Shutdown;
use crate::parking::Lot;
use crate::request::{response, Request, Response};
use crate::router::{Endpoint, Outcome, Router, Upgrader};

/// Server-wide settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body collected for a route's init; bigger gets 413.
    /// Default: 1 MiB.
    pub max_body_size: usize,
    /// Time a client has to send a whole request head (slowloris guard);
    /// then the socket is closed. Default: 10 s.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers); bigger gets 431.
    /// At least 8 KiB. Default: 16 KiB.
    pub max_head_size: usize,
    /// Most headers in a request; more gets 431. Default: 64.
    pub max_headers: usize,
    /// Most connections open at once (HTTP and WebSocket); one more is
    /// answered 503 and closed. Default: 10,000.
    pub max_connections: usize,
    /// On graceful shutdown, how long to wait for connections to finish
    /// their closing handshakes. Default: 10 s.
    pub drain_timeout: Duration,
    /// Accept a connection only once its first bytes have come (Linux's
    /// `TCP_DEFER_ACCEPT`, one second; elsewhere no effect). The server then
    /// never wakes for a connection with nothing to read yet: its first read
    /// finds the request, with no wait and no timer, which takes about a
    /// tenth off the server's CPU per WebSocket handshake. A connection that
    /// stays silent is accepted all the same after about a second, when the
    /// kernel's retransmitted SYN-ACK is answered; the header read timeout
    /// counts from then, and until then it is not counted in
    /// `max_connections`; at shutdown it is the kernel's, and is reset when
    /// it sends. Clients of HTTP and WebSocket, TLS included, always speak
    /// first. Default: on.
    pub defer_accept: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_size: 1 << 20,
            header_read_timeout: Duration::from_secs(10),
            max_head_size: 16 * 1024,
            max_headers: 64,
            max_connections: 10_000,
            drain_timeout: Duration::from_secs(10),
            defer_accept: true,
        }
    }
}

/// The server's view of its open connections: a count for the connection
/// cap and the drain, and each WebSocket's shutdown switch.
pub(crate) struct Registry {
    open: AtomicUsize,
    pub(crate) shutting_down: AtomicBool,
    websockets: Mutex<HashMap<u64, Weak<dyn Shutdown>>>,
    /// Wakes HTTP connections to shut down gracefully.
    pub(crate) shutdown: Notify,
    /// Notified each time a connection closes.
    closed: Notify,
    /// Where hibernated connections wait without a task (S10).
    lot: Arc<Lot>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.lot.close();
    }
}

impl Registry {
    fn new() -> Registry {
        Registry {
            open: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            websockets: Mutex::new(HashMap::new()),
            shutdown: Notify::new(),
            closed: Notify::new(),
            lot: Arc::new(Lot::new()),
        }
    }

    fn websockets(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Weak<dyn Shutdown>>> {
        self.websockets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.shutdown.notify_waiters();
        let switches: Vec<_> = self
            .websockets()
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for s in switches {
            s.shutdown();
        }
    }
}

/// One open TCP connection, counted while this lives.
pub(crate) struct Slot(pub(crate) Arc<Registry>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
        self.0.closed.notify_waiters();
    }
}

/// What a WebSocket connection keeps of the server: the registry its
/// shutdown switch is in, and its own count in the open connections (taken
/// from the HTTP connection's slot; both count for the moment they overlap).
/// One pointer, no allocation of its own: every idle connection has one.
pub(crate) struct ServerLink {
    registry: Arc<Registry>,
}

impl Drop for ServerLink {
    fn drop(&mut self) {
        self.registry.open.fetch_sub(1, Ordering::SeqCst);
        self.registry.closed.notify_waiters();
    }
}

impl ServerLink {
    pub(crate) fn new(slot: &Slot) -> ServerLink {
        slot.0.open.fetch_add(1, Ordering::SeqCst);
        ServerLink {
            registry: slot.0.clone(),
        }
    }

    #[cfg(test)]
    pub(crate) fn for_tests() -> ServerLink {
        ServerLink::new(&Slot(Arc::new(Registry::new())))
    }

    pub(crate) fn register(&self, id: u64, switch: Arc<dyn Shutdown>) {
        let registry = &self.registry;
        registry.websockets().insert(id, Arc::downgrade(&switch));
        if registry.shutting_down.load(Ordering::SeqCst) {
            switch.shutdown();
        }
    }

    pub(crate) fn deregister(&self, id: u64) {
        self.registry.websockets().remove(&id);
    }

    pub(crate) fn lot(&self) -> &Arc<Lot> {
        &self.registry.lot
    }
}

/// Live figures of a server, readable from anywhere while it serves
/// ([`Server::stats`]).
#[derive(Clone)]
pub struct ServerStats(Arc<Registry>);

impl ServerStats {
    /// Connections open now, HTTP and WebSocket.
    pub fn open_connections(&self) -> usize {
        self.0.open.load(Ordering::SeqCst)
    }

    /// WebSocket connections open now.
    pub fn websockets(&self) -> usize {
        self.0.websockets().len()
    }

    /// WebSocket connections hibernating in the parking lot now (S10): no
    /// task, no buffer, only their handler's state.
    pub fn hibernating(&self) -> usize {
        self.0.lot.parked()
    }
}

impl std::fmt::Debug for ServerStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStats")
            .field("open_connections", &self.open_connections())
            .field("websockets", &self.websockets())
            .field("hibernating", &self.hibernating())
            .finish()
    }
}

/// A listening server.
///
/// ```no_run
/// # async fn run(router: lariat::Router) -> std::io::Result<()> {
/// let server = lariat::Server::bind("127.0.0.1:8080").await?;
/// println!("listening on {}", server.local_addr()?);
/// server.serve(router).await
/// # }
/// ```
pub struct Server {
    listener: TcpListener,
    config: ServerConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
    registry: Arc<Registry>,
}

impl Server {
    /// Listen on `addr`.
    pub async fn bind(addr: impl ToSocketAddrs) -> std::io::Result<Server> {
        Ok(Server::from_listener(TcpListener::bind(addr).await?))
    }

    /// Serve on a listener bound elsewhere. It is set to defer accepts as
    /// [`ServerConfig::defer_accept`] says (on by default; `config` can turn
    /// it off).
    pub fn from_listener(listener: TcpListener) -> Server {
        let config = ServerConfig::default();
        defer_accept(&listener, config.defer_accept);
        Server {
            listener,
            config,
            tls: None,
            registry: Arc::new(Registry::new()),
        }
    }

    /// Change the server settings.
    pub fn config(mut self, config: ServerConfig) -> Server {
        if config.defer_accept != self.config.defer_accept {
            defer_accept(&self.listener, config.defer_accept);
        }
        self.config = config;
        self
    }

    /// Serve over TLS (https:// and wss://) with this rustls configuration
    /// (see [`crate::tls::config_from_pem`]). The TLS handshake must finish
    /// within the header read timeout.
    pub fn tls(mut self, config: Arc<tokio_rustls::rustls::ServerConfig>) -> Server {
        self.tls = Some(tokio_rustls::TlsAcceptor::from(config));
        self
    }

    /// Live figures: open connections, WebSockets, hibernating ones.
    pub fn stats(&self) -> ServerStats {
        ServerStats(self.registry.clone())
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accept connections and serve `router` until the task is dropped.
    pub async fn serve(self, router: Router) -> std::io::Result<()> {
        self.serve_with_shutdown(router, std::future::pending())
            .await
    }

    /// Serve `router` until `signal` completes, then shut down gracefully:
    /// stop accepting, close every WebSocket with 1001, let HTTP connections
    /// finish their request, and wait up to the drain timeout for all of
    /// them to end (their handlers' `terminate` runs).
    pub async fn serve_with_shutdown(
        self,
        router: Router,
        signal: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let registry = self.registry.clone();
        let shared = Arc::new(Shared {
            router,
            config: self.config,
        });
        let mut signal = std::pin::pin!(signal);
        let _anchor = AbortOnDrop(tokio::spawn(timer_anchor()));
        loop {
            let accepted = tokio::select! {
                r = self.listener.accept() => r,
                _ = &mut signal => break,
            };
            let (stream, peer) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: wait for descriptors to free up
                    // rather than spin or die.
                    warn!(error = %e, "accept failed; retrying in 50 ms");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if registry.open.fetch_add(1, Ordering::SeqCst) >= shared.config.max_connections {
                registry.open.fetch_sub(1, Ordering::SeqCst);
                warn!(%peer, max = shared.config.max_connections, "connection limit reached; answered 503");
                tokio::spawn(refuse_busy(stream));
                continue;
            }
            let slot = Arc::new(Slot(registry.clone()));
            let _ = stream.set_nodelay(true);
            match &self.tls {
                None => {
                    tokio::spawn(serve_plain(shared.clone(), stream, peer, slot));
                }
                Some(acceptor) => {
                    let accept = acceptor.accept(stream);
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(shared.config.header_read_timeout, accept).await
                        {
                            Ok(Ok(tls)) => serve_http(shared, tls, peer, slot, None).await,
                            Ok(Err(e)) => info!(%peer, error = %e, "TLS handshake failed"),
                            Err(_) => info!(%peer, "TLS handshake timed out"),
                        }
                    });
                }
            }
        }
        info!(
            open = registry.open.load(Ordering::SeqCst),
            "shutting down: closing connections"
        );
        registry.begin_shutdown();
        let drained = tokio::time::timeout(shared.config.drain_timeout, async {
            loop {
                let closed = registry.closed.notified();
                if registry.open.load(Ordering::SeqCst) == 0 {
                    return;
                }
                closed.await;
            }
        })
        .await;
        if drained.is_err() {
            warn!(
                open = registry.open.load(Ordering::SeqCst),
                "drain timeout: connections left open"
            );
        }
        Ok(())
    }
}

/// Keeps tokio's timer driver due to wake within a second, for as long as
/// the server runs. The driver wakes itself (an eventfd write, a system call)
/// whenever a timer is registered earlier than its next planned wake; with
/// this one a second away, a connection's timers (its idle timeout, a minute
/// away) never are, and opening a connection costs no such wake. One timer
/// firing a second is the price.
async fn timer_anchor() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// Ask the kernel to hand over accepted connections only once they have
/// data to read, or as they come ([`ServerConfig::defer_accept`]). Set on
/// the listener as soon as the server has it, so that no connection made
/// before `serve` escapes it. A failure is logged and changes nothing else.
fn defer_accept(listener: &TcpListener, on: bool) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // Seconds to wait for data (0: none); the kernel rounds it up to
        // whole SYN-ACK retransmissions (one, the first one's at 1 s).
        let secs: libc::c_int = on.into();
        // SAFETY: a valid descriptor (the listener is borrowed for the call)
        // and a pointer to an int of the length given, as TCP_DEFER_ACCEPT takes.
        let r = unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                (&secs as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            warn!(error = %std::io::Error::last_os_error(), on, "TCP_DEFER_ACCEPT not changed");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (listener, on);
}

/// Aborts its task when dropped (the server's own helpers end with it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A plain TCP connection: its first request upgraded on the direct path if
/// it can be ([`crate::direct`]), else served by hyper from its first byte.
async fn serve_plain(
    shared: Arc<Shared>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    slot: Arc<Slot>,
) {
    match crate::direct::first_request(&shared, stream, peer, &slot).await {
        First::Done => drop(slot),
        First::Hyper(stream, answer) => serve_http(shared, stream, peer, slot, answer).await,
    }
}

/// What the direct path left for hyper to do, if anything.
pub(crate) enum First {
    /// Upgraded, refused, or gone: nothing is left.
    Done,
    /// Serve the connection, the bytes already read first; and, for its
    /// first request, the response init has already chosen (init runs once).
    /// (Boxed: rare, and the enum is returned by value on the hot path.)
    Hyper(
        crate::direct::Rewind,
        Option<Box<http::Response<Full<Bytes>>>>,
    ),
}

/// Serve one HTTP/1.1 connection (keep-alive), until it ends, upgrades, or
/// the server shuts down. `answer`: the first request's response, already
/// decided.
async fn serve_http<S>(
    shared: Arc<Shared>,
    stream: S,
    peer: SocketAddr,
    slot: Arc<Slot>,
    answer: Option<Box<http::Response<Full<Bytes>>>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let registry = slot.0.clone();
    let svc_shared = shared.clone();
    let svc_slot = slot.clone();
    let answer = std::sync::Mutex::new(answer);
    let service = service_fn(move |req| {
        let shared = svc_shared.clone();
        let slot = svc_slot.clone();
        let answer = answer.lock().unwrap_or_else(|e| e.into_inner()).take();
        async move {
            Ok::<_, Infallible>(match answer {
                Some(r) => *r,
                None => shared.dispatch(req, peer, slot).await,
            })
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_read_timeout)
        .max_buf_size(shared.config.max_head_size.max(8192))
        .max_headers(shared.config.max_headers)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let shutdown = registry.shutdown.notified();
    let result = if registry.shutting_down.load(Ordering::SeqCst) {
        conn.as_mut().graceful_shutdown();
        conn.await
    } else {
        tokio::select! {
            r = conn.as_mut() => r,
            _ = shutdown => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "http connection ended with an error");
    }
    drop(slot);
}

/// Over the connection limit: a short 503, then close.
async fn refuse_busy(mut stream: tokio::net::TcpStream) {
    let reply = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 20\r\nconnection: close\r\nretry-after: 1\r\n\r\ntoo many connections";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(reply).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

pub(crate) struct Shared {
    pub(crate) router: Router,
    pub(crate) config: ServerConfig,
}

impl Shared {
    async fn dispatch(
        &self,
        mut req: http::Request<Incoming>,
        peer: SocketAddr,
        slot: Arc<Slot>,
    ) -> http::Response<Full<Bytes>> {
        let Some((endpoint, params)) = self.router.find(req.uri().path()) else {
            return finish(response(StatusCode::NOT_FOUND, "not found\n"));
        };
        // The handshake is checked before init runs, because init consumes
        // the request (S1.3); it matters only if init asks to upgrade.
        let handshake = endpoint.upgrades().then(|| {
            let hs = validate_request(req.method(), req.version(), req.headers());
            let on_upgrade = hs.is_ok().then(|| hyper::upgrade::on(&mut req));
            (hs, on_upgrade)
        });
        let (parts, body) = req.into_parts();
        // A GET upgrade has no body: hyper knows it from the head (no
        // content-length, no chunked), so there is nothing to collect.
        let body = if body.is_end_stream() {
            Bytes::new()
        } else {
            match Limited::new(body, self.config.max_body_size)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return finish(response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large\n",
                    ))
                }
            }
        };
        let request = Request {
            parts,
            body,
            params,
            peer,
        };
        let mut upgrader = match call_init(endpoint, request).await {
            Outcome::Respond(r) => return finish(r),
            Outcome::Upgrade(u) => u,
        };
        let (mut hs, on_upgrade) = match handshake {
            Some((Ok(hs), Some(on))) => (hs, on),
            Some((Err(e), _)) => {
                // S1.2: the client did not ask for (a valid) upgrade.
                info!(%peer, error = %e, "websocket handshake refused");
                return finish(refusal(e));
            }
            _ => {
                return finish(response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error\n",
                ))
            }
        };
        let mut res = http::Response::new(Full::new(Bytes::new()));
        *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = res.headers_mut();
        h.insert(header::UPGRADE, WEBSOCKET.clone());
        h.insert(header::CONNECTION, UPGRADE.clone());
        upgrade_headers(&mut *upgrader, &mut hs, peer, |n, v| {
            h.append(n, v);
        });
        // S1.1: the handshake completes as soon as hyper has written the 101;
        // then the connection's task takes the socket over.
        upgrader.spawn(
            Io::Pending(on_upgrade),
            Bytes::new(),
            peer,
            ServerLink::new(&slot),
        );
        res
    }
}

/// Run a route's init (S1.3) for either path. A panic in it is logged and
/// answered 500; the connection and the server go on.
pub(crate) async fn call_init(endpoint: &dyn Endpoint, request: Request) -> Outcome {
    let peer = request.peer;
    match catch(endpoint.call(request)).await {
        Ok(o) => o,
        Err(panic) => {
            error!(%peer, panic = %panic, "route init panicked; answered 500");
            Outcome::Respond(response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error\n",
            ))
        }
    }
}

/// The 101's headers beyond Upgrade and Connection, once init has asked to
/// upgrade: the accept key, the subprotocol (S2.4: never one the client did
/// not offer), permessage-deflate's answer, then init's own headers.
pub(crate) fn upgrade_headers(
    upgrader: &mut dyn Upgrader,
    hs: &mut ClientHandshake,
    peer: SocketAddr,
    mut put: impl FnMut(HeaderName, HeaderValue),
) {
    if let Some(p) = upgrader.protocol() {
        if !hs.protocols.iter().any(|o| o == p) {
            warn!(%peer, protocol = p, "init chose a subprotocol the client did not offer; left out");
            upgrader.clear_protocol();
        }
    }
    // The accept key's own buffer becomes the header value (no copy).
    if let Ok(v) = HeaderValue::try_from(std::mem::take(&mut hs.accept)) {
        put(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = upgrader.protocol() {
        if let Ok(v) = HeaderValue::from_str(p) {
            put(header::SEC_WEBSOCKET_PROTOCOL, v);
        }
    }
    if let Some(ext) = upgrader.negotiate_deflate(&hs.extensions) {
        if let Ok(v) = HeaderValue::from_str(&ext) {
            put(header::SEC_WEBSOCKET_EXTENSIONS, v);
        }
    }
    for (n, v) in upgrader.headers() {
        put(n.clone(), v.clone());
    }
}

/// The 101's fixed header values, built at compile time (a clone of a
/// static value copies two words).
static WEBSOCKET: HeaderValue = HeaderValue::from_static("websocket");
static UPGRADE: HeaderValue = HeaderValue::from_static("Upgrade");

pub(crate) fn refusal(e: HandshakeError) -> Response {
    let mut r = response(e.status(), format!("{}\n", e.message()));
    for (n, v) in e.headers() {
        r.headers_mut().insert(*n, HeaderValue::from_static(v));
    }
    r
}

pub(crate) fn finish(r: Response) -> http::Response<Full<Bytes>> {
    r.map(Full::new)
}
