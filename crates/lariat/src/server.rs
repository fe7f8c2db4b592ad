//! The HTTP/1.1 server: accept loop, request dispatch to routes, and the
//! hand-off of upgraded connections to their driver task.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use lariat_proto::handshake::{validate_request, HandshakeError};
use tokio::net::{TcpListener, ToSocketAddrs};
use tracing::{debug, error, info, warn};

use crate::connection::{panic_message, unwrap_upgraded};
use crate::request::{response, Request, Response};
use crate::router::{Outcome, Router};

/// Server-wide settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body collected for a route's init; bigger gets 413.
    /// Default: 1 MiB.
    pub max_body_size: usize,
    /// Time a client has to send a whole request head (slowloris guard).
    /// Default: 10 s.
    pub header_read_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_size: 1 << 20,
            header_read_timeout: Duration::from_secs(10),
        }
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
}

impl Server {
    /// Listen on `addr`.
    pub async fn bind(addr: impl ToSocketAddrs) -> std::io::Result<Server> {
        Ok(Server::from_listener(TcpListener::bind(addr).await?))
    }

    /// Serve on a listener bound elsewhere.
    pub fn from_listener(listener: TcpListener) -> Server {
        Server {
            listener,
            config: ServerConfig::default(),
        }
    }

    /// Change the server settings.
    pub fn config(mut self, config: ServerConfig) -> Server {
        self.config = config;
        self
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accept connections and serve `router` until the task is dropped.
    pub async fn serve(self, router: Router) -> std::io::Result<()> {
        let shared = Arc::new(Shared {
            router,
            config: self.config,
        });
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: wait for descriptors to free up
                    // rather than spin or die.
                    warn!(error = %e, "accept failed; retrying in 50 ms");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            tokio::spawn(async move {
                let svc_shared = shared.clone();
                let service = service_fn(move |req| {
                    let shared = svc_shared.clone();
                    async move { Ok::<_, Infallible>(shared.dispatch(req, peer).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(shared.config.header_read_timeout)
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    debug!(%peer, error = %e, "http connection ended with an error");
                }
            });
        }
    }
}

struct Shared {
    router: Router,
    config: ServerConfig,
}

impl Shared {
    async fn dispatch(
        &self,
        mut req: http::Request<Incoming>,
        peer: SocketAddr,
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
        let body = match Limited::new(body, self.config.max_body_size)
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
        };
        let request = Request {
            parts,
            body,
            params,
            peer,
        };
        let outcome = match catch_init(endpoint.call(request)).await {
            Ok(o) => o,
            Err(panic) => {
                error!(%peer, panic = %panic, "route init panicked; answered 500");
                return finish(response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error\n",
                ));
            }
        };
        let mut upgrader = match outcome {
            Outcome::Respond(r) => return finish(r),
            Outcome::Upgrade(u) => u,
        };
        let (hs, on_upgrade) = match handshake {
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
        // S2.4: never answer with a subprotocol the client did not offer.
        if let Some(p) = upgrader.protocol() {
            if !hs.protocols.iter().any(|o| o == p) {
                warn!(%peer, protocol = p, "init chose a subprotocol the client did not offer; left out");
                upgrader.clear_protocol();
            }
        }
        let mut res = http::Response::new(Full::new(Bytes::new()));
        *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = res.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(v) = HeaderValue::from_str(&hs.accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        if let Some(p) = upgrader.protocol() {
            if let Ok(v) = HeaderValue::from_str(p) {
                h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
            }
        }
        for (n, v) in upgrader.headers() {
            h.append(n.clone(), v.clone());
        }
        // S1.1: the handshake completes as soon as hyper has written the 101.
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let (io, leftover) = unwrap_upgraded(upgraded);
                    upgrader.run(io, leftover, peer).await;
                }
                Err(e) => debug!(%peer, error = %e, "upgrade did not complete"),
            }
        });
        res
    }
}

fn refusal(e: HandshakeError) -> Response {
    let mut r = response(e.status(), format!("{}\n", e.message()));
    for (n, v) in e.headers() {
        r.headers_mut().insert(*n, HeaderValue::from_static(v));
    }
    r
}

fn finish(r: Response) -> http::Response<Full<Bytes>> {
    r.map(Full::new)
}

async fn catch_init<F: std::future::Future>(f: F) -> Result<F::Output, String> {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(r)) => std::task::Poll::Ready(Ok(r)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(p) => std::task::Poll::Ready(Err(panic_message(&*p))),
        }
    })
    .await
}
