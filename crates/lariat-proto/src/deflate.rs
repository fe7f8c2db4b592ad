//! permessage-deflate (RFC 7692): negotiation, and compressing and inflating
//! whole messages with flate2 (zlib-rs).
//!
//! Memory is the cost of compression that users complain of: a zlib deflate
//! state with a 32 KiB window weighs about 256 KiB, an inflate state about
//! 40 KiB. So, by default, lariat asks for *no context takeover* in both
//! directions: every message is compressed and inflated on its own, by one
//! zlib state per thread shared by every connection on it, and an idle
//! connection holds no compression state at all. A connection that keeps
//! context takeover (configured, or demanded by nothing: a client can only
//! *offer* it) owns its zlib states while it lives.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::ProtocolError;
use crate::frame::Role;
use crate::handshake::ExtensionOffer;
use crate::utf8::Utf8Validator;

/// The extension's token.
pub const EXTENSION: &str = "permessage-deflate";

/// The four bytes a sync flush ends with, removed on the wire (RFC 7692 §7.2.1)
/// and put back before inflating (§7.2.2).
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// How the server negotiates and uses permessage-deflate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// zlib compression level, 0-9. Default: 1 (fast; most of the gain).
    pub level: u32,
    /// The largest window lariat compresses with, 8-15. A client's
    /// `server_max_window_bits` may lower it. Default: 15.
    ///
    /// zlib cannot compress within a 256-byte window: when 8 is agreed, the
    /// extension is accepted and lariat sends every message uncompressed,
    /// which RFC 7692 allows.
    pub server_max_window_bits: u8,
    /// Ask the client to compress within this window (only possible when its
    /// offer carries `client_max_window_bits`). Default: none.
    pub client_max_window_bits: Option<u8>,
    /// Compress each message on its own. Default: true (no per-connection
    /// deflate state; the compressor is shared per thread).
    pub server_no_context_takeover: bool,
    /// Ask the client to compress each message on its own, so the server
    /// keeps no inflate state between messages. Default: true.
    pub client_no_context_takeover: bool,
    /// Messages shorter than this are sent uncompressed. Default: 128 bytes
    /// (below, JSON-like text barely shrinks and zlib's per-message cost
    /// dominates). Without context takeover a message that does not shrink
    /// is sent uncompressed too.
    pub threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            level: 1,
            server_max_window_bits: 15,
            client_max_window_bits: None,
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            threshold: 128,
        }
    }
}

/// The agreed parameters (RFC 7692 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server compresses each message on its own.
    pub server_no_context_takeover: bool,
    /// The client compresses each message on its own.
    pub client_no_context_takeover: bool,
    /// The server's compression window.
    pub server_max_window_bits: u8,
    /// The client's compression window.
    pub client_max_window_bits: u8,
    /// Whether the response names `server_max_window_bits`.
    announce_server_bits: bool,
    /// Whether the response names `client_max_window_bits`.
    announce_client_bits: bool,
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` value of the response.
    pub fn response_header(&self) -> String {
        let mut s = String::from(EXTENSION);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.announce_server_bits {
            s.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if self.announce_client_bits {
            s.push_str(&format!(
                "; client_max_window_bits={}",
                self.client_max_window_bits
            ));
        }
        s
    }
}

/// Take the first acceptable permessage-deflate offer (RFC 7692 §5, §7.1).
/// Offers with unknown, repeated or out-of-range parameters are declined;
/// `None` if none is acceptable: the connection then goes on uncompressed.
///
/// ```
/// use lariat_proto::deflate::{negotiate, DeflateConfig};
/// use lariat_proto::handshake::parse_extensions;
/// let offers = parse_extensions(b"permessage-deflate; server_max_window_bits=99, permessage-deflate; client_max_window_bits").unwrap();
/// let p = negotiate(&offers, &DeflateConfig::default()).unwrap(); // the second offer
/// assert_eq!(p.response_header(), "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
/// ```
pub fn negotiate(offers: &[ExtensionOffer], config: &DeflateConfig) -> Option<DeflateParams> {
    offers
        .iter()
        .filter(|o| o.name == EXTENSION)
        .find_map(|o| accept(o, config))
}

fn accept(offer: &ExtensionOffer, config: &DeflateConfig) -> Option<DeflateParams> {
    let mut server_nct = None;
    let mut client_nct = None;
    let mut server_bits = None;
    let mut client_bits: Option<Option<u8>> = None;
    for (name, value) in &offer.params {
        match name.as_str() {
            "server_no_context_takeover" if server_nct.is_none() && value.is_none() => {
                server_nct = Some(());
            }
            "client_no_context_takeover" if client_nct.is_none() && value.is_none() => {
                client_nct = Some(());
            }
            "server_max_window_bits" if server_bits.is_none() => {
                server_bits = Some(window_bits(value.as_deref()?)?);
            }
            "client_max_window_bits" if client_bits.is_none() => {
                client_bits = Some(match value {
                    None => None,
                    Some(v) => Some(window_bits(v)?),
                });
            }
            // Unknown or repeated: decline this offer (§7.1).
            _ => return None,
        }
    }
    let ours = config.server_max_window_bits.clamp(8, 15);
    let server_max_window_bits = server_bits.map_or(ours, |b| b.min(ours));
    // §7.1.2.2: we may name client_max_window_bits only if the client offered
    // it, with a value no larger than the one it offered.
    let (client_max_window_bits, announce_client_bits) =
        match (client_bits, config.client_max_window_bits) {
            (Some(offered), Some(want)) => (want.clamp(8, 15).min(offered.unwrap_or(15)), true),
            (Some(Some(offered)), None) => (offered, false),
            _ => (15, false),
        };
    Some(DeflateParams {
        server_no_context_takeover: server_nct.is_some() || config.server_no_context_takeover,
        client_no_context_takeover: client_nct.is_some() || config.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
        announce_server_bits: server_bits.is_some() || server_max_window_bits < 15,
        announce_client_bits,
    })
}

/// `1*DIGIT` in 8..=15, without leading zeros (RFC 7692 §7.1.2).
fn window_bits(v: &str) -> Option<u8> {
    if v.is_empty() || v.len() > 2 || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u8 = v.parse().ok()?;
    (8..=15).contains(&n).then_some(n)
}

thread_local! {
    /// Compressors shared by the no-context-takeover connections of this
    /// thread, by (level, window bits). Each is reset before use.
    static SHARED_DEFLATE: RefCell<Vec<(u32, u8, Box<Compress>)>> = const { RefCell::new(Vec::new()) };
    /// The same for inflating.
    static SHARED_INFLATE: RefCell<Vec<(u8, Box<Decompress>)>> = const { RefCell::new(Vec::new()) };
}

/// The last bytes of a direction's plain text, as many as its window holds:
/// all that RFC 7692 context takeover needs to survive hibernation. A fresh
/// zlib state primed with them (`set_dictionary`) continues the stream.
#[derive(Debug, Default)]
struct History {
    buf: Vec<u8>,
    cap: usize,
    /// Once full: where the oldest byte is, and the next write goes.
    pos: usize,
}

impl History {
    fn new(bits: u8) -> History {
        History {
            buf: Vec::new(),
            cap: 1 << bits,
            pos: 0,
        }
    }

    fn push(&mut self, mut data: &[u8]) {
        if data.len() >= self.cap {
            data = &data[data.len() - self.cap..];
        }
        if self.buf.len() < self.cap {
            let take = (self.cap - self.buf.len()).min(data.len());
            // Never more than the window: no doubling past it.
            self.buf.reserve_exact(take);
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.pos = 0;
        }
        while !data.is_empty() {
            let n = (self.cap - self.pos).min(data.len());
            self.buf[self.pos..self.pos + n].copy_from_slice(&data[..n]);
            self.pos = (self.pos + n) % self.cap;
            data = &data[n..];
        }
    }

    /// Oldest first.
    fn contiguous(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.buf.len());
        v.extend_from_slice(&self.buf[self.pos..]);
        v.extend_from_slice(&self.buf[..self.pos]);
        v
    }

    fn clear(&mut self) {
        self.buf = Vec::new();
        self.pos = 0;
    }
}

/// One connection's compression, for its role.
#[derive(Debug)]
pub(crate) struct Codec {
    level: u32,
    threshold: usize,
    tx_bits: u8,
    tx_takeover: bool,
    rx_bits: u8,
    rx_takeover: bool,
    /// Owned states, only with context takeover; dropped when hibernating.
    tx: Option<Box<Compress>>,
    rx: Option<Box<Decompress>>,
    /// With context takeover: the windows that prime fresh states.
    tx_history: History,
    rx_history: History,
}

impl Codec {
    pub(crate) fn new(params: DeflateParams, config: &DeflateConfig, role: Role) -> Codec {
        let (tx_bits, tx_nct, rx_bits, rx_nct) = match role {
            Role::Server => (
                params.server_max_window_bits,
                params.server_no_context_takeover,
                params.client_max_window_bits,
                params.client_no_context_takeover,
            ),
            Role::Client => (
                params.client_max_window_bits,
                params.client_no_context_takeover,
                params.server_max_window_bits,
                params.server_no_context_takeover,
            ),
        };
        Codec {
            level: config.level.min(9),
            threshold: config.threshold,
            tx_bits,
            tx_takeover: !tx_nct,
            rx_bits,
            rx_takeover: !rx_nct,
            tx: None,
            rx: None,
            tx_history: History::new(tx_bits),
            rx_history: History::new(rx_bits),
        }
    }

    /// Hibernate (S10): drop the zlib states, keeping with context takeover
    /// only the windows the RFC requires; they prime fresh states later.
    pub(crate) fn shrink(&mut self) {
        self.tx = None;
        self.rx = None;
    }

    /// Does this side compress with context takeover? (Then every message
    /// compressed must be sent compressed: the peer's window follows ours.)
    pub(crate) fn tx_takeover(&self) -> bool {
        self.tx_takeover
    }

    /// The compressor's level and window: messages compressed without
    /// context takeover under the same key are byte-for-byte equal.
    pub(crate) fn tx_key(&self) -> (u32, u8) {
        (self.level, self.tx_bits)
    }

    /// Should a message of `len` bytes go out compressed?
    pub(crate) fn compresses(&self, len: usize) -> bool {
        // zlib's smallest raw-deflate window is 512 bytes (see DeflateConfig).
        self.tx_bits >= 9 && len >= self.threshold
    }

    /// Append `data` compressed (without the trailer) to `out`. False if
    /// zlib failed, in which case `out` is unchanged.
    pub(crate) fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) -> bool {
        let start = out.len();
        let ok = if self.tx_takeover {
            let (level, bits) = (self.level, self.tx_bits);
            let history = &self.tx_history;
            let c = self.tx.get_or_insert_with(|| {
                let mut c = Box::new(Compress::new_with_window_bits(
                    Compression::new(level),
                    false,
                    bits,
                ));
                if !history.buf.is_empty() {
                    // After hibernating: continue the stream the peer knows.
                    let _ = c.set_dictionary(&history.contiguous());
                }
                c
            });
            let ok = deflate_message(c, data, out);
            if ok {
                self.tx_history.push(data);
            }
            ok
        } else {
            SHARED_DEFLATE.with(|shared| {
                let mut shared = shared.borrow_mut();
                let i = match shared
                    .iter()
                    .position(|(l, b, _)| *l == self.level && *b == self.tx_bits)
                {
                    Some(i) => i,
                    None => {
                        let c = Compress::new_with_window_bits(
                            Compression::new(self.level),
                            false,
                            self.tx_bits,
                        );
                        shared.push((self.level, self.tx_bits, Box::new(c)));
                        shared.len() - 1
                    }
                };
                let c = &mut shared[i].2;
                c.reset();
                deflate_message(c, data, out)
            })
        };
        if !ok {
            out.truncate(start);
        }
        ok
    }

    /// Inflate a whole message into a new buffer, bounded by `max` bytes
    /// (a zip bomb stops at the limit, it is never inflated whole) and
    /// validated as UTF-8 on the way when `text`.
    pub(crate) fn decompress(
        &mut self,
        data: &[u8],
        max: Option<u64>,
        text: bool,
    ) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        let mut utf8 = text.then(Utf8Validator::default);
        if self.rx_takeover {
            let bits = self.rx_bits;
            let history = &self.rx_history;
            let d = self.rx.get_or_insert_with(|| {
                let mut d = Box::new(Decompress::new_with_window_bits(false, bits));
                if !history.buf.is_empty() {
                    let _ = d.set_dictionary(&history.contiguous());
                }
                d
            });
            let ended = inflate_message(d, data, max, utf8.as_mut(), &mut out)?;
            if ended {
                // A final block ends the stream: the next message starts afresh.
                d.reset(false);
                self.rx_history.clear();
            } else {
                self.rx_history.push(&out);
            }
        } else {
            SHARED_INFLATE.with(|shared| {
                let mut shared = shared.borrow_mut();
                let i = match shared.iter().position(|(b, _)| *b == self.rx_bits) {
                    Some(i) => i,
                    None => {
                        shared.push((
                            self.rx_bits,
                            Box::new(Decompress::new_with_window_bits(false, self.rx_bits)),
                        ));
                        shared.len() - 1
                    }
                };
                let d = &mut shared[i].1;
                d.reset(false);
                inflate_message(d, data, max, utf8.as_mut(), &mut out).map(|_| ())
            })?;
        }
        if let Some(v) = utf8.as_mut() {
            v.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(out)
    }

    /// Bytes of zlib state this connection owns (an estimate from the
    /// window sizes; zero without context takeover).
    pub(crate) fn owned_state(&self) -> usize {
        let tx = self
            .tx
            .as_ref()
            .map_or(0, |_| (1usize << (self.tx_bits + 2)) + (128 << 10));
        let rx = self
            .rx
            .as_ref()
            .map_or(0, |_| (1usize << self.rx_bits) + (7 << 10));
        tx + rx + self.tx_history.buf.capacity() + self.rx_history.buf.capacity()
    }
}

/// Compress one message with a sync flush, then drop the trailer (§7.2.1).
fn deflate_message(c: &mut Compress, data: &[u8], out: &mut Vec<u8>) -> bool {
    let start_in = c.total_in();
    out.reserve(data.len() / 2 + 16);
    loop {
        let consumed = (c.total_in() - start_in) as usize;
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(64));
        }
        if c.compress_vec(&data[consumed..], out, FlushCompress::Sync)
            .is_err()
        {
            return false;
        }
        let consumed = (c.total_in() - start_in) as usize;
        // Done when all input is in and zlib left output space unused.
        if consumed == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    if !out.ends_with(&TRAILER) {
        return false;
    }
    out.truncate(out.len() - TRAILER.len());
    true
}

/// Inflate `data` followed by the trailer into `out`. Returns whether the
/// stream ended with a final block.
fn inflate_message(
    d: &mut Decompress,
    data: &[u8],
    max: Option<u64>,
    mut utf8: Option<&mut Utf8Validator>,
    out: &mut Vec<u8>,
) -> Result<bool, ProtocolError> {
    let limit = max.map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
    for input in [data, &TRAILER[..]] {
        let start_in = d.total_in();
        loop {
            let consumed = (d.total_in() - start_in) as usize;
            if out.len() == out.capacity() {
                // Never room for more than one byte past the limit.
                let room = limit.saturating_sub(out.len()).saturating_add(1);
                out.reserve(room.min(out.capacity().max(4096)));
            }
            let before_out = out.len();
            let status = d
                .decompress_vec(&input[consumed..], out, FlushDecompress::Sync)
                .map_err(|_| ProtocolError::BadCompression)?;
            if let Some(v) = utf8.as_deref_mut() {
                v.feed(&out[before_out..])
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            if out.len() > limit {
                return Err(ProtocolError::MessageTooBig);
            }
            if status == Status::StreamEnd {
                return Ok(true);
            }
            let now_consumed = (d.total_in() - start_in) as usize;
            let progressed = now_consumed > consumed || out.len() > before_out;
            if now_consumed == input.len() && out.len() < out.capacity() {
                break;
            }
            if !progressed && out.len() < out.capacity() {
                return Err(ProtocolError::BadCompression);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::parse_extensions;

    fn offer(s: &str) -> Vec<ExtensionOffer> {
        parse_extensions(s.as_bytes()).unwrap()
    }

    fn takeover() -> DeflateConfig {
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            ..DeflateConfig::default()
        }
    }

    #[test]
    fn negotiation_rfc7692_7_1() {
        let t = takeover();
        let p = |s: &str, c: &DeflateConfig| negotiate(&offer(s), c).map(|p| p.response_header());
        assert_eq!(
            p("permessage-deflate", &t).as_deref(),
            Some("permessage-deflate")
        );
        assert_eq!(
            p("permessage-deflate; server_no_context_takeover", &t).as_deref(),
            Some("permessage-deflate; server_no_context_takeover")
        );
        assert_eq!(
            p("permessage-deflate; client_no_context_takeover", &t).as_deref(),
            Some("permessage-deflate; client_no_context_takeover")
        );
        assert_eq!(
            p("permessage-deflate; server_max_window_bits=10", &t).as_deref(),
            Some("permessage-deflate; server_max_window_bits=10")
        );
        // client_max_window_bits without a value: we may leave it out...
        assert_eq!(
            p("permessage-deflate; client_max_window_bits", &t).as_deref(),
            Some("permessage-deflate")
        );
        // ...or name a value no larger than the offer's.
        let small = DeflateConfig {
            client_max_window_bits: Some(12),
            ..takeover()
        };
        assert_eq!(
            p("permessage-deflate; client_max_window_bits", &small).as_deref(),
            Some("permessage-deflate; client_max_window_bits=12")
        );
        assert_eq!(
            p("permessage-deflate; client_max_window_bits=10", &small).as_deref(),
            Some("permessage-deflate; client_max_window_bits=10")
        );
        // Without client_max_window_bits in the offer we cannot ask for it.
        assert_eq!(
            p("permessage-deflate", &small).as_deref(),
            Some("permessage-deflate")
        );
        // Our own smaller window is announced.
        let narrow = DeflateConfig {
            server_max_window_bits: 11,
            ..takeover()
        };
        assert_eq!(
            p("permessage-deflate", &narrow).as_deref(),
            Some("permessage-deflate; server_max_window_bits=11")
        );
        // All four at once, and the defaults' no-takeover both ways.
        assert_eq!(
            p(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8",
                &DeflateConfig::default()
            )
            .as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9")
        );
    }

    #[test]
    fn invalid_offers_are_declined_and_the_next_taken() {
        let t = takeover();
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover=1",
            "permessage-deflate; unknown_param",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(negotiate(&offer(bad), &t), None, "{bad}");
            let both = format!("{bad}, permessage-deflate; server_max_window_bits=12");
            let p = negotiate(&offer(&both), &t).unwrap();
            assert_eq!(p.server_max_window_bits, 12, "{both}");
        }
    }

    fn pair(params: &DeflateParams, config: &DeflateConfig) -> (Codec, Codec) {
        (
            Codec::new(*params, config, Role::Server),
            Codec::new(*params, config, Role::Client),
        )
    }

    #[test]
    fn roundtrip_with_and_without_takeover() {
        for config in [DeflateConfig::default(), takeover()] {
            let params = negotiate(
                &offer("permessage-deflate; client_max_window_bits"),
                &config,
            )
            .unwrap();
            let (mut server, mut client) = pair(&params, &config);
            let text = "the quick brown fox jumps over the lazy dog. ".repeat(50);
            for _ in 0..3 {
                let mut wire = Vec::new();
                assert!(server.compress(text.as_bytes(), &mut wire));
                assert!(wire.len() < text.len() / 4);
                assert_eq!(
                    client.decompress(&wire, None, true).unwrap(),
                    text.as_bytes()
                );
                let mut back = Vec::new();
                assert!(client.compress(text.as_bytes(), &mut back));
                assert_eq!(
                    server.decompress(&back, None, true).unwrap(),
                    text.as_bytes()
                );
            }
        }
    }

    #[test]
    fn takeover_compresses_repeats_better() {
        let text = b"{\"user\":\"lariat\",\"action\":\"subscribe\",\"topic\":\"prices\"}";
        let sizes: Vec<usize> = [DeflateConfig::default(), takeover()]
            .iter()
            .map(|config| {
                let params = negotiate(&offer("permessage-deflate"), config).unwrap();
                let (mut server, _) = pair(&params, config);
                let mut last = Vec::new();
                for _ in 0..3 {
                    last.clear();
                    assert!(server.compress(text, &mut last));
                }
                last.len()
            })
            .collect();
        assert!(sizes[1] < sizes[0] / 2, "{sizes:?}");
    }

    #[test]
    fn takeover_survives_hibernation_with_only_the_windows_kept() {
        let config = DeflateConfig {
            server_max_window_bits: 10,
            client_max_window_bits: Some(10),
            ..takeover()
        };
        let params = negotiate(
            &offer("permessage-deflate; client_max_window_bits"),
            &config,
        )
        .unwrap();
        assert_eq!(
            (params.server_max_window_bits, params.client_max_window_bits),
            (10, 10)
        );
        let (mut server, mut client) = pair(&params, &config);
        let mut sizes = Vec::new();
        for round in 0..6 {
            let text = format!(
                "round {round}: {}",
                "the same words again and again, ".repeat(20 + round)
            );
            let mut wire = Vec::new();
            assert!(server.compress(text.as_bytes(), &mut wire));
            sizes.push(wire.len());
            assert_eq!(
                client.decompress(&wire, None, true).unwrap(),
                text.as_bytes(),
                "round {round}"
            );
            let mut back = Vec::new();
            assert!(client.compress(text.as_bytes(), &mut back));
            assert_eq!(
                server.decompress(&back, None, true).unwrap(),
                text.as_bytes(),
                "round {round}"
            );
            // Hibernate between messages: zlib states go, the 1 KiB windows stay.
            server.shrink();
            assert!(server.tx.is_none() && server.rx.is_none());
            let kept = server.owned_state();
            assert!(
                kept <= 2 << 10 && (round < 2 || kept == 2 << 10),
                "round {round}: {kept}"
            );
        }
        // Still compressing against the previous messages after each wake.
        assert!(
            sizes[1..].iter().all(|&n| n < sizes[0] * 2 / 3),
            "{sizes:?}"
        );
    }

    #[test]
    fn history_keeps_the_last_window_in_order() {
        let mut h = History::new(8);
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        for chunk in data.chunks(37) {
            h.push(chunk);
        }
        assert_eq!(h.contiguous(), &data[1000 - 256..]);
        h.push(&data[..3]);
        assert_eq!(h.contiguous(), [&data[1000 - 253..], &data[..3]].concat());
    }

    #[test]
    fn zip_bomb_stops_at_the_limit() {
        let config = DeflateConfig::default();
        let params = negotiate(&offer("permessage-deflate"), &config).unwrap();
        let (_, mut client) = pair(&params, &config);
        let bomb = vec![0u8; 16 << 20];
        let mut wire = Vec::new();
        assert!(client.compress(&bomb, &mut wire));
        assert!(wire.len() < 1 << 20, "{}", wire.len());
        let mut server = Codec::new(params, &config, Role::Server);
        assert_eq!(
            server.decompress(&wire, Some(1 << 20), false),
            Err(ProtocolError::MessageTooBig)
        );
        assert_eq!(
            server
                .decompress(&wire, Some(16 << 20), false)
                .unwrap()
                .len(),
            16 << 20
        );
    }

    #[test]
    fn garbage_and_bad_utf8_are_refused() {
        let config = DeflateConfig::default();
        let params = negotiate(&offer("permessage-deflate"), &config).unwrap();
        let (mut server, mut client) = pair(&params, &config);
        assert_eq!(
            server.decompress(&[0xff, 0xff, 0xff], None, false),
            Err(ProtocolError::BadCompression)
        );
        let mut wire = Vec::new();
        assert!(client.compress(b"caf\xc3 not utf-8 \xff\xfe", &mut wire));
        assert_eq!(
            server.decompress(&wire, None, true),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn window_of_8_bits_is_accepted_but_never_used_to_compress() {
        let config = DeflateConfig::default();
        let params = negotiate(
            &offer("permessage-deflate; server_max_window_bits=8"),
            &config,
        )
        .unwrap();
        assert_eq!(params.server_max_window_bits, 8);
        let server = Codec::new(params, &config, Role::Server);
        assert!(!server.compresses(10_000));
    }
}
