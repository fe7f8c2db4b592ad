//! Routes: path patterns (`/echo`, `/rooms/:room`, `/static/*`) bound to a
//! route's init.

use std::future::Future;
use std::pin::Pin;

use crate::handler::Handler;
use crate::request::{Request, Response};
use crate::upgrade::{Init, Upgrade};

/// Path bindings captured by a match: (name, value).
pub(crate) type Params = Vec<(String, String)>;

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a matched route yields once its init has run.
pub(crate) enum Outcome {
    Respond(Response),
    Upgrade(Box<dyn Upgrader>),
}

/// An upgrade whose handler type has been erased, ready to run a connection.
pub(crate) trait Upgrader: Send {
    fn protocol(&self) -> Option<&str>;
    fn clear_protocol(&mut self);
    fn headers(&self) -> &[(http::HeaderName, http::HeaderValue)];
    /// Agree on permessage-deflate from the client's offers; the response
    /// header value if agreed.
    fn negotiate_deflate(
        &mut self,
        offers: &[lariat_proto::handshake::ExtensionOffer],
    ) -> Option<String>;
    /// Start the connection's task. `io` may still be hyper's pending
    /// upgrade ([`crate::connection::Io::Pending`]): the task then waits for
    /// the socket itself (once the 101 is written), no task of its own.
    fn spawn(
        self: Box<Self>,
        io: crate::connection::Io,
        leftover: bytes::Bytes,
        peer: std::net::SocketAddr,
        server: crate::server::ServerLink,
    );
}

impl<H: Handler> Upgrader for Upgrade<H> {
    fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
    fn clear_protocol(&mut self) {
        self.protocol = None;
    }
    fn headers(&self) -> &[(http::HeaderName, http::HeaderValue)] {
        &self.headers
    }
    fn negotiate_deflate(
        &mut self,
        offers: &[lariat_proto::handshake::ExtensionOffer],
    ) -> Option<String> {
        let params = lariat_proto::deflate::negotiate(offers, self.deflate.as_ref()?)?;
        self.deflate_params = Some(params);
        Some(params.response_header())
    }
    fn spawn(
        self: Box<Self>,
        io: crate::connection::Io,
        leftover: bytes::Bytes,
        peer: std::net::SocketAddr,
        server: crate::server::ServerLink,
    ) {
        tokio::spawn(crate::connection::run(*self, io, leftover, peer, server));
    }
}

pub(crate) trait Endpoint: Send + Sync {
    fn call(&self, req: Request) -> BoxFuture<Outcome>;
    /// May this route upgrade? (Only then is the handshake checked.)
    fn upgrades(&self) -> bool;
}

struct WsEndpoint<F>(F);

impl<F, Fut, H> Endpoint for WsEndpoint<F>
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Init<H>> + Send + 'static,
    H: Handler,
{
    fn call(&self, req: Request) -> BoxFuture<Outcome> {
        let fut = (self.0)(req);
        Box::pin(async move {
            match fut.await {
                Init::Respond(r) => Outcome::Respond(r),
                Init::Upgrade(u) => Outcome::Upgrade(Box::new(u)),
            }
        })
    }
    fn upgrades(&self) -> bool {
        true
    }
}

struct HttpEndpoint<F>(F);

impl<F, Fut> Endpoint for HttpEndpoint<F>
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    fn call(&self, req: Request) -> BoxFuture<Outcome> {
        let fut = (self.0)(req);
        Box::pin(async move { Outcome::Respond(fut.await) })
    }
    fn upgrades(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    /// `*` as the last segment: matches the rest of the path.
    Rest,
}

struct Route {
    segments: Vec<Segment>,
    endpoint: Box<dyn Endpoint>,
}

/// Path bindings to route inits. Routes are tried in the order they were added.
///
/// ```
/// use lariat::{Init, Router, response};
/// # use lariat::{Context, Handler, Message, Reply};
/// # struct Room(String);
/// # impl Handler for Room { type Info = ();
/// #   async fn handle(&mut self, _: Message, _: &mut Context<()>) -> Reply { Reply::ok() } }
/// let router = Router::new()
///     .route("/rooms/:room", |req: lariat::Request| async move {
///         let room = req.param("room").unwrap_or_default().to_string();
///         Init::upgrade(Room(room))
///     })
///     .http("/health", |_req| async { response(http::StatusCode::OK, "ok") });
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// No routes: every request gets 404.
    pub fn new() -> Router {
        Router::default()
    }

    /// Bind `pattern` to a route whose init decides (S1): upgrade to a
    /// WebSocket handler or answer plain HTTP.
    ///
    /// Patterns are `/`-separated: literal segments, `:name` bindings (read
    /// with [`Request::param`]) and a final `*` matching the rest.
    pub fn route<F, Fut, H>(mut self, pattern: &str, init: F) -> Router
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Init<H>> + Send + 'static,
        H: Handler,
    {
        self.routes.push(Route {
            segments: parse_pattern(pattern),
            endpoint: Box::new(WsEndpoint(init)),
        });
        self
    }

    /// Bind `pattern` to a plain HTTP route (never upgrades).
    pub fn http<F, Fut>(mut self, pattern: &str, f: F) -> Router
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        self.routes.push(Route {
            segments: parse_pattern(pattern),
            endpoint: Box::new(HttpEndpoint(f)),
        });
        self
    }

    /// The first route matching `path`, and its bindings. Runs on every
    /// request: the path's segments are split once, onto the stack when
    /// there are few of them, and only bindings allocate.
    pub(crate) fn find(&self, path: &str) -> Option<(&dyn Endpoint, Params)> {
        const INLINE: usize = 8;
        let mut inline = [""; INLINE];
        let mut spilled = Vec::new();
        let mut n = 0;
        for part in path.split('/').filter(|s| !s.is_empty()) {
            if n < INLINE {
                inline[n] = part;
            } else {
                if spilled.is_empty() {
                    spilled.extend_from_slice(&inline);
                }
                spilled.push(part);
            }
            n += 1;
        }
        let parts: &[&str] = if n <= INLINE { &inline[..n] } else { &spilled };
        'routes: for route in &self.routes {
            let mut params = Vec::new();
            let mut i = 0;
            for seg in &route.segments {
                match seg {
                    Segment::Rest => return Some((&*route.endpoint, params)),
                    Segment::Literal(l) => {
                        if parts.get(i) != Some(&l.as_str()) {
                            continue 'routes;
                        }
                    }
                    Segment::Param(name) => match parts.get(i) {
                        Some(v) => params.push((name.clone(), (*v).to_string())),
                        None => continue 'routes,
                    },
                }
                i += 1;
            }
            if i == parts.len() {
                return Some((&*route.endpoint, params));
            }
        }
        None
    }
}

fn parse_pattern(pattern: &str) -> Vec<Segment> {
    pattern
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s == "*" {
                Segment::Rest
            } else if let Some(name) = s.strip_prefix(':') {
                Segment::Param(name.to_string())
            } else {
                Segment::Literal(s.to_string())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new()
            .http("/", |_| async {
                crate::response(http::StatusCode::OK, "root")
            })
            .http("/rooms/:room", |_| async {
                crate::response(http::StatusCode::OK, "")
            })
            .http("/static/*", |_| async {
                crate::response(http::StatusCode::OK, "")
            })
    }

    #[test]
    fn matches_literals_bindings_and_rest() {
        let r = router();
        assert!(r.find("/").is_some());
        let (_, p) = r.find("/rooms/lobby").unwrap();
        assert_eq!(p, [("room".to_string(), "lobby".to_string())]);
        assert!(r.find("/rooms").is_none());
        assert!(r.find("/rooms/a/b").is_none());
        assert!(r.find("/static/a/b/c.js").is_some());
        assert!(r.find("/nope").is_none());
        // More segments than are split onto the stack.
        assert!(r.find("/static/1/2/3/4/5/6/7/8/9/10.js").is_some());
        assert!(r.find("/rooms/1/2/3/4/5/6/7/8/9").is_none());
    }
}
