//! The client side of RFC 6455, as much as the load generator needs: the upgrade request
//! and its check, masked frames built once, and a streaming reader that verifies every
//! echo against what was sent. With permessage-deflate (RFC 7692, `loadgen --deflate`):
//! messages compressed once ahead of time, and compressed echoes inflated and compared.

use std::fmt::Write as _;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Every connection offers the same key (RFC 6455's own example), so the expected
/// `Sec-WebSocket-Accept` is a constant: SHA-1 of the key and the GUID, in base64.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The extension token of RFC 7692.
pub const DEFLATE: &str = "permessage-deflate";

/// The four bytes a sync flush ends with: removed from a compressed message on the wire
/// and put back before inflating it (RFC 7692 §7.2.1, §7.2.2).
pub const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The zlib level loadgen compresses its own messages with (once, ahead of time): zlib's
/// default, as browsers use.
pub const CLIENT_LEVEL: u32 = 6;

/// The HTTP/1.1 upgrade request for `path` on `host` (e.g. "127.0.0.1:9000"); with
/// `deflate`, it offers plain `permessage-deflate` (no parameters).
pub fn upgrade_request(host: &str, path: &str, deflate: bool) -> Vec<u8> {
    let mut r = String::new();
    let _ = write!(
        r,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if deflate {
        let _ = write!(r, "Sec-WebSocket-Extensions: {DEFLATE}\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// The length of the response head (through the blank line), once `buf` holds all of it.
pub fn head_len(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Checks an upgrade response head: status 101, `Upgrade: websocket`, and the right
/// `Sec-WebSocket-Accept`. Extensions: when we offered permessage-deflate (`deflate`), the
/// response must accept it (see [`check_deflate_response`]); when we offered none, it must
/// name none (RFC 6455 §4.1).
pub fn check_upgrade_response(head: &[u8], deflate: bool) -> Result<(), String> {
    let text = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(format!("upgrade refused: {status:?}"));
    }
    let (mut upgrade, mut accept) = (false, false);
    let mut extensions: Vec<&str> = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade = value.eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept = value == ACCEPT;
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            extensions.push(value);
        }
    }
    match (upgrade, accept) {
        (true, true) => {}
        (false, _) => return Err("101 without `Upgrade: websocket`".into()),
        (_, false) => return Err("101 with a missing or wrong Sec-WebSocket-Accept".into()),
    }
    match (deflate, extensions.as_slice()) {
        (false, []) => Ok(()),
        (false, _) => Err(format!(
            "101 names extensions that were not offered: {:?}",
            extensions.join(", ")
        )),
        (true, []) => Err(format!(
            "the server did not accept {DEFLATE}: no Sec-WebSocket-Extensions in its 101"
        )),
        (true, [one]) => check_deflate_response(one),
        (true, _) => Err(format!(
            "101 with several Sec-WebSocket-Extensions headers: {:?}",
            extensions.join(", ")
        )),
    }
}

/// Checks the `Sec-WebSocket-Extensions` value a server answered our plain
/// `permessage-deflate` offer with (RFC 7692 §7.1): exactly that extension; no
/// `client_max_window_bits` (we did not offer it); `server_max_window_bits` in 8..=15;
/// nothing unknown or repeated. It must also carry `server_no_context_takeover`, which
/// loadgen relies on: it inflates every echo on its own, keeping no state per connection.
/// (Its own messages are compressed each on its own, which any agreement allows.)
pub fn check_deflate_response(value: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("Sec-WebSocket-Extensions {value:?}: {why}"));
    if value.contains(',') {
        return bad("more than one extension accepted; one was offered");
    }
    let mut parts = value.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|name| name.eq_ignore_ascii_case(DEFLATE))
    {
        return bad("not permessage-deflate, the one extension offered");
    }
    let mut seen: Vec<String> = Vec::new();
    for param in parts {
        let (name, v) = match param.split_once('=') {
            Some((n, v)) => (
                n.trim().to_ascii_lowercase(),
                Some(v.trim().trim_matches('"')),
            ),
            None => (param.to_ascii_lowercase(), None),
        };
        if seen.contains(&name) {
            return bad(&format!("{name} repeated"));
        }
        match (name.as_str(), v) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {}
            ("server_max_window_bits", Some(bits))
                if bits.parse::<u8>().is_ok_and(|b| (8..=15).contains(&b)) => {}
            ("client_max_window_bits", _) => {
                return bad("client_max_window_bits was not offered (RFC 7692 §7.1.2.2)")
            }
            _ => return bad(&format!("unexpected parameter {param:?}")),
        }
        seen.push(name);
    }
    if !seen.iter().any(|n| n == "server_no_context_takeover") {
        return bad(
            "no server_no_context_takeover: loadgen inflates each echo on its own and \
             cannot follow a server that keeps its compression context",
        );
    }
    Ok(())
}

/// A complete client frame (FIN set) carrying `payload`, masked with `mask`.
pub fn masked_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let len = payload.len();
    let mut f = Vec::with_capacity(len + 14);
    f.push(0x80 | opcode);
    if len < 126 {
        f.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        f.push(0x80 | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// A complete client frame carrying `plain` compressed (RFC 7692): the payload is
/// [`deflate_message`]`(plain)`, and RSV1 is set (§6).
pub fn compressed_frame(opcode: u8, plain: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = masked_frame(opcode, &deflate_message(plain), mask);
    f[0] |= 0x40;
    f
}

/// `data` compressed as one permessage-deflate message (RFC 7692 §7.2.1): raw deflate
/// (no zlib header) from a fresh compressor, so every message is compressed the same way
/// whatever came before (no context takeover), ended by a sync flush whose trailing
/// `00 00 ff ff` is removed.
pub fn deflate_message(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::new(CLIENT_LEVEL), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let done = c.total_in() as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(1024));
        }
        c.compress_vec(&data[done..], &mut out, FlushCompress::Sync)
            .expect("deflate into memory cannot fail");
        // Finished when all the input is in and the flush had room to complete.
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(
        out.ends_with(&TRAILER),
        "a sync flush ends with 00 00 ff ff"
    );
    out.truncate(out.len() - TRAILER.len());
    out
}

/// The decompressor that checks compressed echoes. The server said
/// `server_no_context_takeover`, so each message inflates on its own: one `Inflater` is
/// reset per message and shared by every connection.
pub struct Inflater {
    d: Decompress,
    out: Vec<u8>,
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater {
            d: Decompress::new(false),
            out: Vec::new(),
        }
    }
}

impl Inflater {
    /// Inflates one message's payload as it came (RFC 7692 §7.2.2: followed by the
    /// `00 00 ff ff` trailer, fed here after it rather than copied onto it), failing on
    /// bad data or on more than `limit` bytes of output.
    pub fn inflate(&mut self, data: &[u8], limit: usize) -> Result<&[u8], String> {
        self.d.reset(false);
        self.out.clear();
        // One byte over the limit shows an echo that inflates too long.
        self.out.reserve(limit + 1);
        for input in [data, &TRAILER[..]] {
            let mut pos = 0;
            loop {
                let (in0, out0) = (self.d.total_in(), self.out.len());
                let status = self
                    .d
                    .decompress_vec(&input[pos..], &mut self.out, FlushDecompress::Sync)
                    .map_err(|e| format!("inflating the echo: {e}"))?;
                pos += (self.d.total_in() - in0) as usize;
                if self.out.len() > limit {
                    return Err(format!("echo inflates to more than the {limit} bytes sent"));
                }
                if status == Status::StreamEnd {
                    // A final block: anything after it is not inflated (the trailer, if
                    // that is what follows, is harmless; anything else is not).
                    return if pos == input.len() || input == TRAILER {
                        Ok(&self.out)
                    } else {
                        Err("data after the final deflate block".into())
                    };
                }
                if pos == input.len() {
                    break;
                }
                if self.d.total_in() == in0 && self.out.len() == out0 {
                    return Err("inflating the echo made no progress".into());
                }
            }
        }
        Ok(&self.out)
    }
}

/// The masked close frame a client sends to end a connection cleanly (code 1000).
pub fn close_frame() -> Vec<u8> {
    masked_frame(OP_CLOSE, &1000u16.to_be_bytes(), [0x5a, 0x17, 0xc3, 0x9e])
}

/// One of the distinct payloads a connection cycles through: `variant` selects which, so
/// an echo that comes back reordered, duplicated or from another message does not match.
/// Text payloads are printable ASCII; binary ones pseudo-random bytes.
pub fn payload(binary: bool, size: usize, variant: usize) -> Vec<u8> {
    let mut rng = Rng::new(variant);
    (0..size)
        .map(|_| {
            let r = rng.byte();
            if binary {
                r
            } else {
                b' ' + r % 95
            }
        })
        .collect()
}

/// A compressible text payload of exactly `size` bytes, distinct per `variant`: a JSON
/// array of trading-feed-like events, the kind of message permessage-deflate is used for
/// (repeated keys and a small vocabulary, varying numbers), cut at `size` (so "JSON-like":
/// the last record may be cut short). ASCII only.
pub fn json_payload(size: usize, variant: usize) -> Vec<u8> {
    const USERS: [&str; 8] = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ];
    const EVENTS: [&str; 5] = [
        "order.created",
        "order.updated",
        "order.filled",
        "quote",
        "trade",
    ];
    const SYMBOLS: [&str; 8] = [
        "EURUSD", "GBPUSD", "USDJPY", "BTCUSD", "ETHUSD", "AAPL", "MSFT", "NVDA",
    ];
    let mut rng = Rng::new(variant);
    let mut id = 1_000_000 + variant as u64 * 10_000;
    let mut ts = 1_767_225_600_000u64 + variant as u64 * 60_000;
    let mut s = String::with_capacity(size + 256);
    s.push('[');
    while s.len() < size {
        if s.len() > 1 {
            s.push(',');
        }
        let r = rng.next();
        id += 1 + r % 5;
        ts += r >> 8 & 0x3ff;
        let _ = write!(
            s,
            r#"{{"id":{id},"ts":{ts},"user":"{}","event":"{}","symbol":"{}","price":{}.{:02},"qty":{},"side":"{}","open":{}}}"#,
            USERS[(r >> 20) as usize % USERS.len()],
            EVENTS[(r >> 24) as usize % EVENTS.len()],
            SYMBOLS[(r >> 28) as usize % SYMBOLS.len()],
            100 + (r >> 32) % 900,
            (r >> 42) % 100,
            1 + (r >> 50) % 50,
            if r >> 56 & 1 == 0 { "buy" } else { "sell" },
            r >> 57 & 1 == 0,
        );
    }
    if s.len() < size {
        s.push(']');
    }
    s.truncate(size);
    s.into_bytes()
}

/// xorshift64*: cheap, deterministic, good enough to tell payloads apart.
struct Rng(u64);

impl Rng {
    fn new(variant: usize) -> Rng {
        Rng(0x9E37_79B9_7F4A_7C15u64 ^ (variant as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9))
    }

    fn next(&mut self) -> u64 {
        let x = &mut self.0;
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
}

/// A mask key per variant (any value is valid; varying it exercises the server's unmasking).
pub fn mask_for(variant: usize) -> [u8; 4] {
    (0x3c1d_a5e7u32 ^ (variant as u32).wrapping_mul(0x9E37_79B9)).to_be_bytes()
}

/// What every echo on a connection must be: `opcode`, and payload `payloads[seq % n]` for
/// the seq-th message (echoes come back in the order they were sent).
pub struct Expect {
    pub opcode: u8,
    pub payloads: Vec<Vec<u8>>,
    /// permessage-deflate was agreed: an echo may come compressed (RSV1 on its first
    /// frame), and is then inflated and compared; one without RSV1 is compared as it is.
    pub deflate: bool,
}

impl Expect {
    fn payload(&self, seq: u64) -> &[u8] {
        &self.payloads[(seq % self.payloads.len() as u64) as usize]
    }
}

/// Streaming reader of server frames for one connection: it keeps only the parse state,
/// so any read buffer can be shared by every connection, and compares payload bytes with
/// the expected ones as they arrive (no reassembly). Fragmented echoes are accepted.
/// A compressed echo is the exception: its payload is collected, then inflated whole by
/// the [`Inflater`] passed in, and compared.
#[derive(Default)]
pub struct EchoReader {
    /// Header bytes collected so far (at most 10: a server frame has no mask key).
    hdr: [u8; 10],
    hdr_len: usize,
    /// In a frame's payload: bytes still to come.
    in_payload: bool,
    remaining: usize,
    fin: bool,
    /// Control frame being collected (opcode, payload), if any.
    control: Option<(u8, Vec<u8>)>,
    /// Opcode of the message in progress, 0 between messages.
    msg_opcode: u8,
    /// Payload bytes of the message in progress checked so far (uncompressed messages).
    msg_pos: usize,
    /// The message in progress is compressed (RSV1 on its first frame); its payload so far.
    compressed: bool,
    zbuf: Vec<u8>,
    /// Bytes on the wire (headers and payloads of its frames) of the message in progress.
    msg_wire: u64,
    /// Index of the message in progress (the count of messages completed before it).
    pub seq: u64,
    /// Over the messages completed so far: their bytes on the wire (frame headers and
    /// payloads; control frames in between not counted), and how many came compressed.
    pub wire_done: u64,
    pub compressed_done: u64,
}

impl EchoReader {
    /// Feeds the bytes just read; returns how many messages they completed, each checked
    /// against `expect` (compressed ones inflated with `inflater`), or what was wrong.
    pub fn feed(
        &mut self,
        mut buf: &[u8],
        expect: &Expect,
        inflater: &mut Inflater,
    ) -> Result<u32, String> {
        let mut done = 0;
        while !buf.is_empty() || (self.in_payload && self.remaining == 0) {
            if !self.in_payload {
                // Collect the 2-byte base header, then its extended length.
                let need = if self.hdr_len < 2 {
                    2
                } else {
                    header_len(self.hdr[1])
                };
                let take = (need - self.hdr_len).min(buf.len());
                self.hdr[self.hdr_len..self.hdr_len + take].copy_from_slice(&buf[..take]);
                self.hdr_len += take;
                buf = &buf[take..];
                if self.hdr_len < need || (need == 2 && header_len(self.hdr[1]) > 2) {
                    continue;
                }
                self.start_frame(expect)?;
                continue;
            }
            // Payload bytes of the current frame.
            let take = self.remaining.min(buf.len());
            let (chunk, rest) = buf.split_at(take);
            buf = rest;
            self.remaining -= take;
            if let Some((_, body)) = &mut self.control {
                body.extend_from_slice(chunk);
            } else if self.compressed {
                self.zbuf.extend_from_slice(chunk);
                self.msg_wire += take as u64;
            } else {
                let want = &expect.payload(self.seq)[self.msg_pos..self.msg_pos + take];
                if chunk != want {
                    let at = self.msg_pos
                        + chunk
                            .iter()
                            .zip(want)
                            .position(|(a, b)| a != b)
                            .unwrap_or(0);
                    return Err(format!(
                        "echo of message {} differs from what was sent at byte {at}",
                        self.seq
                    ));
                }
                self.msg_pos += take;
                self.msg_wire += take as u64;
            }
            if self.remaining == 0 {
                self.in_payload = false;
                self.hdr_len = 0;
                if let Some((op, body)) = self.control.take() {
                    control_frame(op, &body)?;
                } else if self.fin {
                    let want = expect.payload(self.seq);
                    if self.compressed {
                        let got = inflater
                            .inflate(&self.zbuf, want.len())
                            .map_err(|e| format!("compressed echo of message {}: {e}", self.seq))?;
                        if got != want {
                            let at = got.iter().zip(want).position(|(a, b)| a != b);
                            return Err(match at {
                                Some(at) => format!(
                                    "compressed echo of message {} inflates to something \
                                     other than what was sent, from byte {at}",
                                    self.seq
                                ),
                                None => format!(
                                    "compressed echo of message {} inflates to {} bytes, \
                                     sent {}",
                                    self.seq,
                                    got.len(),
                                    want.len()
                                ),
                            });
                        }
                        self.zbuf.clear();
                        self.compressed = false;
                        self.compressed_done += 1;
                    } else if self.msg_pos != want.len() {
                        return Err(format!(
                            "echo of message {} has {} bytes, sent {}",
                            self.seq,
                            self.msg_pos,
                            want.len()
                        ));
                    }
                    self.wire_done += std::mem::take(&mut self.msg_wire);
                    self.msg_opcode = 0;
                    self.msg_pos = 0;
                    self.seq += 1;
                    done += 1;
                }
            }
        }
        Ok(done)
    }

    /// Validates a complete frame header and enters its payload.
    fn start_frame(&mut self, expect: &Expect) -> Result<(), String> {
        let (b0, b1) = (self.hdr[0], self.hdr[1]);
        // RSV1 is permessage-deflate's, when agreed (RFC 7692 §6); RSV2 and RSV3 nobody's.
        let rsv1 = b0 & 0x40 != 0;
        if b0 & 0x30 != 0 || (rsv1 && !expect.deflate) {
            return Err(format!(
                "frame with reserved bits set (first byte {b0:#04x})"
            ));
        }
        if b1 & 0x80 != 0 {
            return Err("server frame is masked".into());
        }
        let len = match b1 & 0x7f {
            126 => u16::from_be_bytes([self.hdr[2], self.hdr[3]]) as u64,
            127 => u64::from_be_bytes(self.hdr[2..10].try_into().unwrap()),
            n => n as u64,
        };
        let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0f);
        self.fin = fin;
        self.in_payload = true;
        if opcode >= 0x8 {
            if !fin || len > 125 {
                return Err(format!("malformed control frame (opcode {opcode:#x})"));
            }
            if rsv1 {
                return Err(format!(
                    "control frame with RSV1 set (opcode {opcode:#x}; RFC 7692 §6.1)"
                ));
            }
            self.remaining = len as usize;
            self.control = Some((opcode, Vec::with_capacity(len as usize)));
            return Ok(());
        }
        match (self.msg_opcode, opcode) {
            (0, OP_CONT) => return Err("continuation frame outside a message".into()),
            (0, op) if op != expect.opcode => {
                return Err(format!(
                    "echo has opcode {op:#x}, sent {:#x}",
                    expect.opcode
                ))
            }
            (0, op) => {
                self.msg_opcode = op;
                self.compressed = rsv1;
            }
            (_, OP_CONT) if rsv1 => {
                return Err("continuation frame with RSV1 set (RFC 7692 §6.1)".into())
            }
            (_, OP_CONT) => {}
            (_, op) => return Err(format!("opcode {op:#x} inside a fragmented message")),
        }
        let want = expect.payload(self.seq).len() as u64;
        if self.compressed {
            // Deflate can grow incompressible data a little, never this much.
            let bound = want + want / 8 + 1024;
            if self.zbuf.len() as u64 + len > bound {
                return Err(format!(
                    "compressed echo of message {} is over {bound} bytes for the {want} sent",
                    self.seq
                ));
            }
        } else if self.msg_pos as u64 + len > want {
            return Err(format!(
                "echo of message {} is longer than the {want} bytes sent",
                self.seq
            ));
        }
        self.msg_wire += header_len(b1) as u64;
        self.remaining = len as usize;
        Ok(())
    }
}

/// Length of a server frame header (no mask key) given its second byte.
fn header_len(b1: u8) -> usize {
    match b1 & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    }
}

/// A control frame in the middle of an echo stream: pongs are ignored; a close or a ping
/// (which nobody asked for) ends the run with a message saying so.
fn control_frame(op: u8, body: &[u8]) -> Result<(), String> {
    match op {
        OP_PONG => Ok(()),
        OP_CLOSE => {
            let code = (body.len() >= 2).then(|| u16::from_be_bytes([body[0], body[1]]));
            let reason = String::from_utf8_lossy(body.get(2..).unwrap_or_default());
            Err(format!(
                "server sent close (code {code:?}, reason {reason:?})"
            ))
        }
        OP_PING => Err("server sent an unexpected ping".into()),
        op => Err(format!("unknown control opcode {op:#x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = masked_frame(opcode, payload, [0; 4]);
        f[0] = (f[0] & 0x7f) | if fin { 0x80 } else { 0 };
        // Drop the mask bit and the (zero) mask key: server frames are unmasked.
        f[1] &= 0x7f;
        let hl = header_len(f[1]);
        f.drain(hl..hl + 4);
        f
    }

    fn expect(binary: bool, size: usize) -> Expect {
        Expect {
            opcode: if binary { OP_BINARY } else { OP_TEXT },
            payloads: (0..4).map(|v| payload(binary, size, v)).collect(),
            deflate: false,
        }
    }

    fn json_expect(size: usize) -> Expect {
        Expect {
            opcode: OP_TEXT,
            payloads: (0..4).map(|v| json_payload(size, v)).collect(),
            deflate: true,
        }
    }

    /// A server frame with RSV1 carrying `plain` compressed (one whole message).
    fn compressed_server_frame(opcode: u8, plain: &[u8]) -> Vec<u8> {
        let mut f = server_frame(true, opcode, &deflate_message(plain));
        f[0] |= 0x40;
        f
    }

    fn feed(r: &mut EchoReader, buf: &[u8], e: &Expect) -> Result<u32, String> {
        r.feed(buf, e, &mut Inflater::default())
    }

    #[test]
    fn accepts_echoes_fed_byte_by_byte_and_whole() {
        for size in [0, 5, 125, 126, 65_535, 65_536, 70_000] {
            let e = expect(true, size);
            let mut stream = Vec::new();
            for v in 0..6 {
                stream.extend(server_frame(true, OP_BINARY, &e.payloads[v % 4]));
            }
            let mut r = EchoReader::default();
            assert_eq!(feed(&mut r, &stream, &e).unwrap(), 6);
            let mut r = EchoReader::default();
            let mut z = Inflater::default();
            let n: u32 = stream
                .chunks(7)
                .map(|c| r.feed(c, &e, &mut z).unwrap())
                .sum();
            assert_eq!(n, 6);
        }
    }

    #[test]
    fn accepts_fragmented_echoes_and_pongs() {
        let e = expect(false, 100);
        let p = &e.payloads[0];
        let mut s = server_frame(false, OP_TEXT, &p[..30]);
        s.extend(server_frame(true, OP_PONG, b"x"));
        s.extend(server_frame(false, OP_CONT, &p[30..60]));
        s.extend(server_frame(true, OP_CONT, &p[60..]));
        assert_eq!(feed(&mut EchoReader::default(), &s, &e).unwrap(), 1);
    }

    #[test]
    fn rejects_wrong_echoes() {
        let e = expect(false, 32);
        let p = e.payloads[0].clone();
        let mut flipped = p.clone();
        flipped[31] ^= 1;
        let bad = [
            server_frame(true, OP_BINARY, &p),     // wrong opcode
            server_frame(true, OP_TEXT, &flipped), // wrong content
            server_frame(true, OP_TEXT, &p[..31]), // too short
            server_frame(true, OP_TEXT, &[p.clone(), vec![b'x']].concat()), // too long
            server_frame(true, OP_TEXT, &e.payloads[1]), // out of order
            server_frame(true, OP_CLOSE, &1001u16.to_be_bytes()),
            server_frame(true, OP_CONT, &p),
        ];
        for (i, frame) in bad.iter().enumerate() {
            assert!(
                feed(&mut EchoReader::default(), frame, &e).is_err(),
                "case {i} accepted"
            );
        }
    }

    #[test]
    fn upgrade_response_check() {
        let ok = format!("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: {ACCEPT}\r\n\r\n");
        assert_eq!(head_len(ok.as_bytes()), Some(ok.len()));
        check_upgrade_response(ok.as_bytes(), false).unwrap();
        assert!(check_upgrade_response(b"HTTP/1.1 404 Not Found\r\n\r\n", false).is_err());
        let wrong = ok.replace(ACCEPT, "AAAA");
        assert!(check_upgrade_response(wrong.as_bytes(), false).is_err());
        // Offered deflate and got no extension back: the run must fail.
        assert!(check_upgrade_response(ok.as_bytes(), true).is_err());
        let with = |ext: &str| {
            ok.replace(
                "\r\n\r\n",
                &format!("\r\nSec-WebSocket-Extensions: {ext}\r\n\r\n"),
            )
        };
        let lariat =
            with("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
        check_upgrade_response(lariat.as_bytes(), true).unwrap();
        // An extension we did not offer.
        assert!(check_upgrade_response(lariat.as_bytes(), false).is_err());
        check_upgrade_response(
            with("permessage-deflate; server_no_context_takeover; server_max_window_bits=\"10\"")
                .as_bytes(),
            true,
        )
        .unwrap();
        for bad in [
            "permessage-deflate",                             // context takeover
            "permessage-deflate; client_no_context_takeover", // the same
            "x-webkit-deflate-frame",
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=16",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; foo",
            "permessage-deflate; server_no_context_takeover, permessage-deflate",
        ] {
            assert!(
                check_upgrade_response(with(bad).as_bytes(), true).is_err(),
                "{bad}"
            );
        }
        let req = String::from_utf8(upgrade_request("h:1", "/echo", true)).unwrap();
        assert!(req.contains("\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"));
        assert!(!String::from_utf8(upgrade_request("h:1", "/echo", false))
            .unwrap()
            .contains("Extensions"));
    }

    #[test]
    fn json_payloads_are_sized_distinct_and_compressible() {
        for size in [0, 1, 100, 1024, 65_536] {
            let p = json_payload(size, 3);
            assert_eq!(p.len(), size);
            assert!(p.iter().all(|b| b.is_ascii() && !b.is_ascii_control()));
        }
        assert_ne!(json_payload(1024, 0), json_payload(1024, 1));
        let p = json_payload(65_536, 0);
        let z = deflate_message(&p);
        assert!(z.len() * 3 < p.len(), "{} -> {}", p.len(), z.len());
        assert_eq!(Inflater::default().inflate(&z, p.len()).unwrap(), &p[..]);
        // The frame we send: RSV1 set, the compressed payload masked.
        let f = compressed_frame(OP_TEXT, &p, [1, 2, 3, 4]);
        assert_eq!(f[0], 0x80 | 0x40 | OP_TEXT);
    }

    #[test]
    fn accepts_compressed_and_plain_echoes_when_deflate_is_agreed() {
        for size in [64, 1024, 65_536, 200_000] {
            let e = json_expect(size);
            let mut stream = Vec::new();
            for v in 0..6 {
                let p = &e.payloads[v % 4];
                if v == 2 {
                    // The server may send any message uncompressed.
                    stream.extend(server_frame(true, OP_TEXT, p));
                } else {
                    stream.extend(compressed_server_frame(OP_TEXT, p));
                }
            }
            let mut z = Inflater::default();
            let mut r = EchoReader::default();
            assert_eq!(r.feed(&stream, &e, &mut z).unwrap(), 6);
            assert_eq!((r.compressed_done, r.wire_done), (5, stream.len() as u64));
            let mut r = EchoReader::default();
            let n: u32 = stream
                .chunks(5)
                .map(|c| r.feed(c, &e, &mut z).unwrap())
                .sum();
            assert_eq!(n, 6);
        }
        // A compressed message in fragments (RSV1 on the first only), a pong between them.
        let e = json_expect(1000);
        let z = deflate_message(&e.payloads[0]);
        let mut first = server_frame(false, OP_TEXT, &z[..10]);
        first[0] |= 0x40;
        let mut s = first;
        s.extend(server_frame(true, OP_PONG, b"p"));
        s.extend(server_frame(true, OP_CONT, &z[10..]));
        assert_eq!(feed(&mut EchoReader::default(), &s, &e).unwrap(), 1);
    }

    #[test]
    fn rejects_wrong_compressed_echoes() {
        let e = json_expect(1024);
        let p = e.payloads[0].clone();
        let mut flipped = p.clone();
        flipped[700] ^= 1;
        let mut rsv1_cont = server_frame(false, OP_TEXT, &p[..10]);
        rsv1_cont.extend(server_frame(true, OP_CONT, &p[10..]));
        let cont_at = rsv1_cont.len() - (p.len() - 10) - 4;
        rsv1_cont[cont_at] |= 0x40;
        let mut ping_rsv1 = server_frame(true, OP_PONG, b"x");
        ping_rsv1[0] |= 0x40;
        let mut rsv2 = compressed_server_frame(OP_TEXT, &p);
        rsv2[0] |= 0x20;
        let bad = [
            compressed_server_frame(OP_TEXT, &flipped), // wrong content
            compressed_server_frame(OP_TEXT, &p[..1000]), // too short
            compressed_server_frame(OP_TEXT, &[p.clone(), vec![b'x']].concat()), // too long
            compressed_server_frame(OP_TEXT, &e.payloads[1]), // out of order
            compressed_server_frame(OP_BINARY, &p),     // wrong opcode
            {
                // Not deflate data at all.
                let mut f = server_frame(true, OP_TEXT, &[0xff; 40]);
                f[0] |= 0x40;
                f
            },
            rsv1_cont,
            ping_rsv1,
            rsv2,
        ];
        for (i, frame) in bad.iter().enumerate() {
            assert!(
                feed(&mut EchoReader::default(), frame, &e).is_err(),
                "case {i} accepted"
            );
        }
        // RSV1 when deflate was not agreed.
        let plain = Expect {
            deflate: false,
            ..json_expect(1024)
        };
        assert!(feed(
            &mut EchoReader::default(),
            &compressed_server_frame(OP_TEXT, &p),
            &plain
        )
        .is_err());
    }
}
