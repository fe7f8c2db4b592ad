//! The HTTP request a route's init receives (S1), and plain HTTP responses.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};

/// A plain HTTP response, for routes that do not upgrade (S1, S2.2).
pub type Response = http::Response<Bytes>;

/// An HTTP request, as the route's init sees it. Init takes it by value: once
/// init returns, the request is gone (S1.3), so anything the connection needs
/// must be moved into the handler.
#[derive(Debug)]
pub struct Request {
    pub(crate) parts: http::request::Parts,
    pub(crate) body: Bytes,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) peer: SocketAddr,
}

impl Request {
    /// The method.
    pub fn method(&self) -> &Method {
        &self.parts.method
    }

    /// The request target.
    pub fn uri(&self) -> &Uri {
        &self.parts.uri
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.parts.uri.path()
    }

    /// The raw query string, if any.
    pub fn query(&self) -> Option<&str> {
        self.parts.uri.query()
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }

    /// A path binding: `room` for a route `/rooms/:room`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.parts.headers
    }

    /// The first value of header `name`, if it is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name)?.to_str().ok()
    }

    /// The body (collected before init runs; bounded by the server's body limit).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The subprotocols the client offers in `sec-websocket-protocol`, in its
    /// order of preference (S2). Empty when there is no such header (S2.3).
    pub fn protocols(&self) -> Vec<&str> {
        self.parts
            .headers
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .collect()
    }

    /// Check the `Origin` header against an allow-list, against cross-site
    /// WebSocket hijacking: a page on another site must not open a socket
    /// that rides on this site's cookies. Browsers always send `Origin` on a
    /// WebSocket handshake; a request without one (a non-browser client) is
    /// let through. Entries are compared exactly, ASCII case-insensitively
    /// (`https://example.com`, `http://127.0.0.1:8080`). A refusal is logged;
    /// answer it with 403.
    ///
    /// ```
    /// # use lariat::{Context, Handler, Init, Message, Reply, Request};
    /// # struct Chat;
    /// # impl Handler for Chat { type Info = ();
    /// #   async fn handle(&mut self, _: Message, _: &mut Context<()>) -> Reply { Reply::ok() } }
    /// async fn init(req: Request) -> Init<Chat> {
    ///     if !req.origin_allowed(&["https://chat.example.com"]) {
    ///         return Init::respond(lariat::response(http::StatusCode::FORBIDDEN, "origin not allowed"));
    ///     }
    ///     Init::upgrade(Chat)
    /// }
    /// ```
    pub fn origin_allowed(&self, allowed: &[&str]) -> bool {
        let Some(origin) = self.parts.headers.get(http::header::ORIGIN) else {
            return true;
        };
        let ok = origin
            .to_str()
            .is_ok_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o.trim())));
        if !ok {
            tracing::info!(peer = %self.peer, origin = ?origin, "origin not allowed");
        }
        ok
    }

    /// Does the request carry a `sec-websocket-protocol` header at all?
    pub fn has_protocol_header(&self) -> bool {
        self.parts.headers.contains_key("sec-websocket-protocol")
    }
}

fn percent_decode(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Build a plain response with a body.
///
/// ```
/// let r = lariat::response(http::StatusCode::BAD_REQUEST, "no mqtt");
/// assert_eq!(r.status(), 400);
/// ```
pub fn response(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let mut r = http::Response::new(body.into());
    *r.status_mut() = status;
    r
}
