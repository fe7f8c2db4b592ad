//! The opening handshake, server side (RFC 6455 §4.2), as pure functions over
//! the request's method, version and headers.
//!
//! [`validate_request`] either accepts a request — giving the accept key, the
//! offered subprotocols and the offered extensions — or refuses it with a
//! [`HandshakeError`] that knows its HTTP status.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::header::{
    CONNECTION, HOST, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderName, Method, StatusCode, Version};
use sha1::{Digest, Sha1};

/// The GUID of RFC 6455 §1.3, appended to the client's key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Compute `Sec-WebSocket-Accept` from `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
///
/// ```
/// // RFC 6455 §1.3's example.
/// assert_eq!(
///     lariat_proto::handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID);
    // 20 bytes of SHA-1 are 28 of padded base64, encoded on the stack and
    // copied into one exactly sized allocation.
    let mut out = [0u8; 28];
    let n = BASE64.encode_slice(h.finalize(), &mut out).unwrap_or(0);
    String::from_utf8(out[..n].to_vec()).unwrap_or_default()
}

/// Why an upgrade request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Not a GET (§4.1: "The method of the request MUST be GET").
    MethodNotGet,
    /// Not HTTP/1.1 (§4.1; over HTTP/2 the handshake is an extended
    /// CONNECT, RFC 8441, not this).
    HttpVersion,
    /// No `Host` header (§4.2.1 item 2).
    MissingHost,
    /// No `Upgrade` header listing `websocket` (§4.2.1 item 3).
    NoUpgradeWebsocket,
    /// No `Connection` header listing `upgrade` (§4.2.1 item 4).
    NoConnectionUpgrade,
    /// `Sec-WebSocket-Key` missing, repeated, or not 16 bytes of base64 (§4.2.1 item 5).
    BadKey,
    /// `Sec-WebSocket-Version` missing (§4.2.1 item 6).
    MissingVersion,
    /// `Sec-WebSocket-Version` is not 13 (§4.2.2: answered with 426).
    UnsupportedVersion,
    /// `Sec-WebSocket-Protocol` holds something that is not a token list.
    BadProtocolHeader,
}

impl HandshakeError {
    /// The HTTP status to refuse with: 426 for a version lariat does not speak
    /// (with `Sec-WebSocket-Version: 13`), 400 otherwise.
    pub fn status(self) -> StatusCode {
        match self {
            HandshakeError::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Headers to add to the refusal: the version we speak (RFC 6455
    /// §4.2.2), and with a 426 the protocol to upgrade to, which RFC 9110
    /// §15.5.22 requires (with `Connection: upgrade`, §7.8).
    pub fn headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            HandshakeError::UnsupportedVersion => &[
                ("sec-websocket-version", "13"),
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
            ],
            HandshakeError::MissingVersion => &[("sec-websocket-version", "13")],
            _ => &[],
        }
    }

    /// A one-line description, fit for the refusal's body and the log.
    pub fn message(self) -> &'static str {
        match self {
            HandshakeError::MethodNotGet => "WebSocket upgrade requires GET",
            HandshakeError::HttpVersion => "WebSocket upgrade requires HTTP/1.1",
            HandshakeError::MissingHost => "missing Host header",
            HandshakeError::NoUpgradeWebsocket => "missing 'Upgrade: websocket' header",
            HandshakeError::NoConnectionUpgrade => "missing 'Connection: upgrade' header",
            HandshakeError::BadKey => "missing or invalid Sec-WebSocket-Key",
            HandshakeError::MissingVersion => "missing Sec-WebSocket-Version",
            HandshakeError::UnsupportedVersion => {
                "unsupported Sec-WebSocket-Version (13 is spoken)"
            }
            HandshakeError::BadProtocolHeader => "malformed Sec-WebSocket-Protocol",
        }
    }
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for HandshakeError {}

/// One extension offered in `Sec-WebSocket-Extensions` (RFC 6455 §9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// The extension token, lower-cased (e.g. `permessage-deflate`).
    pub name: String,
    /// Its parameters in order: name (lower-cased) and value, if any, with the
    /// quotes of a quoted-string removed.
    pub params: Vec<(String, Option<String>)>,
}

/// A request that may be upgraded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHandshake {
    /// The value for `Sec-WebSocket-Accept`.
    pub accept: String,
    /// The subprotocols offered, in the client's order of preference (S2).
    pub protocols: Vec<String>,
    /// The extensions offered, in order. Empty if the header was malformed:
    /// a bad offer is declined, it never fails the handshake.
    pub extensions: Vec<ExtensionOffer>,
}

/// Validate a server-side upgrade request (RFC 6455 §4.2.1).
///
/// ```
/// use http::{HeaderMap, Method, Version};
/// let mut h = HeaderMap::new();
/// h.insert("host", "example.com".parse().unwrap());
/// h.insert("upgrade", "WebSocket".parse().unwrap());
/// h.insert("connection", "keep-alive, Upgrade".parse().unwrap());
/// h.insert("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap());
/// h.insert("sec-websocket-version", "13".parse().unwrap());
/// h.insert("sec-websocket-protocol", "v12.stomp, mqtt".parse().unwrap());
/// let ok = lariat_proto::handshake::validate_request(&Method::GET, Version::HTTP_11, &h).unwrap();
/// assert_eq!(ok.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// assert_eq!(ok.protocols, ["v12.stomp", "mqtt"]);
/// ```
pub fn validate_request(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
) -> Result<ClientHandshake, HandshakeError> {
    if method != Method::GET {
        return Err(HandshakeError::MethodNotGet);
    }
    if version != Version::HTTP_11 {
        return Err(HandshakeError::HttpVersion);
    }
    // Header names are the `http` crate's constants: looking one up by
    // `&str` would parse and hash the name again on every call.
    if !headers.contains_key(HOST) {
        return Err(HandshakeError::MissingHost);
    }
    if !header_has_token(headers, &UPGRADE, "websocket") {
        return Err(HandshakeError::NoUpgradeWebsocket);
    }
    if !header_has_token(headers, &CONNECTION, "upgrade") {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    let mut versions = headers.get_all(SEC_WEBSOCKET_VERSION).iter();
    match (versions.next(), versions.next()) {
        (None, _) => return Err(HandshakeError::MissingVersion),
        (Some(v), None) if v.as_bytes().trim_ascii() == b"13" => {}
        _ => return Err(HandshakeError::UnsupportedVersion),
    }
    let mut keys = headers.get_all(SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) => k.as_bytes().trim_ascii(),
        _ => return Err(HandshakeError::BadKey),
    };
    // 16 bytes are 24 characters of padded base64; a longer key cannot be
    // valid, and decoding into a stack buffer needs no allocation.
    let mut raw = [0u8; 18];
    if key.len() != 24 || !matches!(BASE64.decode_slice(key, &mut raw), Ok(16)) {
        return Err(HandshakeError::BadKey);
    }
    let mut protocols = Vec::new();
    for value in headers.get_all(SEC_WEBSOCKET_PROTOCOL) {
        let value = value
            .to_str()
            .map_err(|_| HandshakeError::BadProtocolHeader)?;
        for item in value.split(',') {
            let item = item.trim_matches(|c| c == ' ' || c == '\t');
            if item.is_empty() {
                continue;
            }
            if !item.bytes().all(is_tchar) {
                return Err(HandshakeError::BadProtocolHeader);
            }
            protocols.push(item.to_owned());
        }
    }
    let mut extensions = Vec::new();
    for value in headers.get_all(SEC_WEBSOCKET_EXTENSIONS) {
        match parse_extensions(value.as_bytes()) {
            Some(mut offers) => extensions.append(&mut offers),
            None => {
                extensions.clear();
                break;
            }
        }
    }
    Ok(ClientHandshake {
        accept: accept_key(key),
        protocols,
        extensions,
    })
}

/// Does any of the comma-separated elements of header `name` equal `token`
/// (ASCII case-insensitively)?
fn header_has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    let token = token.as_bytes();
    headers.get_all(name).iter().any(|v| {
        let v = v.as_bytes();
        // Most clients send the token alone (`Upgrade: websocket`).
        v.eq_ignore_ascii_case(token)
            || v.split(|&b| b == b',')
                .any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
    })
}

/// RFC 7230 §3.2.6 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parse a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1):
/// `1#( token *( ";" token [ "=" ( token / quoted-string ) ] ) )`.
/// `None` if it is malformed.
///
/// ```
/// use lariat_proto::handshake::parse_extensions;
/// let offers = parse_extensions(
///     b"permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits=\"10\"",
/// ).unwrap();
/// assert_eq!(offers.len(), 2);
/// assert_eq!(offers[0].params, [("client_max_window_bits".to_string(), None)]);
/// assert_eq!(offers[1].params, [("server_max_window_bits".to_string(), Some("10".to_string()))]);
/// ```
pub fn parse_extensions(value: &[u8]) -> Option<Vec<ExtensionOffer>> {
    let mut p = Cursor { s: value, at: 0 };
    let mut out = Vec::new();
    loop {
        p.skip_ws();
        if p.eat(b',') {
            continue; // empty list elements are allowed by #rule
        }
        if p.done() {
            return Some(out);
        }
        let name = p.token()?.to_ascii_lowercase();
        let mut params = Vec::new();
        loop {
            p.skip_ws();
            if !p.eat(b';') {
                break;
            }
            p.skip_ws();
            let pname = p.token()?.to_ascii_lowercase();
            p.skip_ws();
            let pvalue = if p.eat(b'=') {
                p.skip_ws();
                Some(if p.peek() == Some(b'"') {
                    p.quoted()?
                } else {
                    p.token()?
                })
            } else {
                None
            };
            params.push((pname, pvalue));
        }
        out.push(ExtensionOffer { name, params });
        p.skip_ws();
        if !p.done() && !p.eat(b',') {
            return None;
        }
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }
    fn done(&self) -> bool {
        self.at >= self.s.len()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }
    fn token(&mut self) -> Option<String> {
        let start = self.at;
        while self.peek().is_some_and(is_tchar) {
            self.at += 1;
        }
        if self.at == start {
            return None;
        }
        // tchar is ASCII.
        Some(String::from_utf8_lossy(&self.s[start..self.at]).into_owned())
    }
    fn quoted(&mut self) -> Option<String> {
        self.eat(b'"');
        let mut out = Vec::new();
        loop {
            let b = self.peek()?;
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    out.push(self.peek()?);
                    self.at += 1;
                }
                b if b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) => out.push(b),
                _ => return None,
            }
        }
        // RFC 6455 §9.1: a quoted value must itself be a token.
        if out.is_empty() || !out.iter().copied().all(is_tchar) {
            return None;
        }
        Some(String::from_utf8_lossy(&out).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", "x".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("connection", "Upgrade".parse().unwrap());
        h.insert(
            "sec-websocket-key",
            "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap(),
        );
        h.insert("sec-websocket-version", "13".parse().unwrap());
        h
    }

    fn check(h: &HeaderMap) -> Result<ClientHandshake, HandshakeError> {
        validate_request(&Method::GET, Version::HTTP_11, h)
    }

    #[test]
    fn accepts_a_plain_request() {
        let ok = check(&base()).unwrap();
        assert_eq!(ok.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(ok.protocols.is_empty() && ok.extensions.is_empty());
    }

    #[test]
    fn refusals_rfc6455_4_2_1() {
        assert_eq!(
            validate_request(&Method::POST, Version::HTTP_11, &base()),
            Err(HandshakeError::MethodNotGet)
        );
        assert_eq!(
            validate_request(&Method::GET, Version::HTTP_10, &base()),
            Err(HandshakeError::HttpVersion)
        );
        let cases: &[(&str, Option<&str>, HandshakeError)] = &[
            ("host", None, HandshakeError::MissingHost),
            ("upgrade", None, HandshakeError::NoUpgradeWebsocket),
            ("upgrade", Some("h2c"), HandshakeError::NoUpgradeWebsocket),
            ("connection", None, HandshakeError::NoConnectionUpgrade),
            (
                "connection",
                Some("keep-alive"),
                HandshakeError::NoConnectionUpgrade,
            ),
            ("sec-websocket-key", None, HandshakeError::BadKey),
            (
                "sec-websocket-key",
                Some("c2hvcnQ="),
                HandshakeError::BadKey,
            ),
            (
                "sec-websocket-key",
                Some("not base64!!"),
                HandshakeError::BadKey,
            ),
            (
                "sec-websocket-version",
                None,
                HandshakeError::MissingVersion,
            ),
            (
                "sec-websocket-version",
                Some("8"),
                HandshakeError::UnsupportedVersion,
            ),
            (
                "sec-websocket-protocol",
                Some("a b"),
                HandshakeError::BadProtocolHeader,
            ),
        ];
        for (name, value, err) in cases {
            let mut h = base();
            match value {
                Some(v) => {
                    h.insert(*name, v.parse().unwrap());
                }
                None => {
                    h.remove(*name);
                }
            }
            assert_eq!(check(&h), Err(*err), "{name}: {value:?}");
        }
        assert_eq!(
            HandshakeError::UnsupportedVersion.status(),
            StatusCode::UPGRADE_REQUIRED
        );
        assert_eq!(HandshakeError::BadKey.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn token_lists_are_case_insensitive_and_split() {
        let mut h = base();
        h.insert("upgrade", "foo/1, WebSocket".parse().unwrap());
        h.insert("connection", "keep-alive,UPGRADE".parse().unwrap());
        h.append("sec-websocket-protocol", "v12.stomp, mqtt".parse().unwrap());
        h.append("sec-websocket-protocol", "wamp".parse().unwrap());
        let ok = check(&h).unwrap();
        assert_eq!(ok.protocols, ["v12.stomp", "mqtt", "wamp"]);
    }

    #[test]
    fn extension_offers() {
        let offers = parse_extensions(
            b"permessage-deflate; client_no_context_takeover; server_max_window_bits=10, x-foo",
        )
        .unwrap();
        assert_eq!(offers.len(), 2);
        assert_eq!(offers[0].name, "permessage-deflate");
        assert_eq!(
            offers[0].params[1],
            ("server_max_window_bits".into(), Some("10".into()))
        );
        assert_eq!(offers[1].params, []);
        assert_eq!(parse_extensions(b"a; b=\"unterminated"), None);
        assert_eq!(parse_extensions(b"a b"), None);
        assert_eq!(parse_extensions(b"a; =1"), None);
        // A malformed header is declined, never a failed handshake.
        let mut h = base();
        h.insert(
            "sec-websocket-extensions",
            "permessage-deflate; ;;".parse().unwrap(),
        );
        assert!(check(&h).unwrap().extensions.is_empty());
    }
}
