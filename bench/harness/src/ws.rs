//! The client side of RFC 6455, as much as the load generator needs: the upgrade request
//! and its check, masked frames built once, and a streaming reader that verifies every
//! echo against what was sent.

use std::fmt::Write as _;

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

/// The HTTP/1.1 upgrade request for `path` on `host` (e.g. "127.0.0.1:9000").
pub fn upgrade_request(host: &str, path: &str) -> Vec<u8> {
    let mut r = String::new();
    let _ = write!(
        r,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    r.into_bytes()
}

/// The length of the response head (through the blank line), once `buf` holds all of it.
pub fn head_len(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Checks an upgrade response head: status 101, `Upgrade: websocket`, and the right
/// `Sec-WebSocket-Accept`.
pub fn check_upgrade_response(head: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(format!("upgrade refused: {status:?}"));
    }
    let (mut upgrade, mut accept) = (false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade = value.eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept = value == ACCEPT;
        }
    }
    match (upgrade, accept) {
        (true, true) => Ok(()),
        (false, _) => Err("101 without `Upgrade: websocket`".into()),
        (_, false) => Err("101 with a missing or wrong Sec-WebSocket-Accept".into()),
    }
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

/// The masked close frame a client sends to end a connection cleanly (code 1000).
pub fn close_frame() -> Vec<u8> {
    masked_frame(OP_CLOSE, &1000u16.to_be_bytes(), [0x5a, 0x17, 0xc3, 0x9e])
}

/// One of the distinct payloads a connection cycles through: `variant` selects which, so
/// an echo that comes back reordered, duplicated or from another message does not match.
/// Text payloads are printable ASCII; binary ones pseudo-random bytes.
pub fn payload(binary: bool, size: usize, variant: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (variant as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (0..size)
        .map(|_| {
            // xorshift64*: cheap, deterministic, good enough to tell payloads apart.
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let r = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
            if binary {
                r
            } else {
                b' ' + r % 95
            }
        })
        .collect()
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
}

impl Expect {
    fn payload(&self, seq: u64) -> &[u8] {
        &self.payloads[(seq % self.payloads.len() as u64) as usize]
    }
}

/// Streaming reader of server frames for one connection: it keeps only the parse state,
/// so any read buffer can be shared by every connection, and compares payload bytes with
/// the expected ones as they arrive (no reassembly). Fragmented echoes are accepted.
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
    /// Payload bytes of the message in progress checked so far.
    msg_pos: usize,
    /// Index of the message in progress (the count of messages completed before it).
    pub seq: u64,
}

impl EchoReader {
    /// Feeds the bytes just read; returns how many messages they completed, each checked
    /// against `expect`, or what was wrong.
    pub fn feed(&mut self, mut buf: &[u8], expect: &Expect) -> Result<u32, String> {
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
            }
            if self.remaining == 0 {
                self.in_payload = false;
                self.hdr_len = 0;
                if let Some((op, body)) = self.control.take() {
                    control_frame(op, &body)?;
                } else if self.fin {
                    let want = expect.payload(self.seq).len();
                    if self.msg_pos != want {
                        return Err(format!(
                            "echo of message {} has {} bytes, sent {want}",
                            self.seq, self.msg_pos
                        ));
                    }
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
        if b0 & 0x70 != 0 {
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
            (0, op) => self.msg_opcode = op,
            (_, OP_CONT) => {}
            (_, op) => return Err(format!("opcode {op:#x} inside a fragmented message")),
        }
        let want = expect.payload(self.seq).len();
        if self.msg_pos as u64 + len > want as u64 {
            return Err(format!(
                "echo of message {} is longer than the {want} bytes sent",
                self.seq
            ));
        }
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
        }
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
            assert_eq!(r.feed(&stream, &e).unwrap(), 6);
            let mut r = EchoReader::default();
            let n: u32 = stream.chunks(7).map(|c| r.feed(c, &e).unwrap()).sum();
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
        assert_eq!(EchoReader::default().feed(&s, &e).unwrap(), 1);
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
                EchoReader::default().feed(frame, &e).is_err(),
                "case {i} accepted"
            );
        }
    }

    #[test]
    fn upgrade_response_check() {
        let ok = format!("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: {ACCEPT}\r\n\r\n");
        assert_eq!(head_len(ok.as_bytes()), Some(ok.len()));
        check_upgrade_response(ok.as_bytes()).unwrap();
        assert!(check_upgrade_response(b"HTTP/1.1 404 Not Found\r\n\r\n").is_err());
        let wrong = ok.replace(ACCEPT, "AAAA");
        assert!(check_upgrade_response(wrong.as_bytes()).is_err());
    }
}
