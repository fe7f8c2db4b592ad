//! Frame headers: decoding and encoding (RFC 6455 §5.2).
//!
//! The decoder works on bytes, not streams: [`decode_header`] returns
//! `Ok(None)` when it needs more bytes, and never reads past what it is given.

use crate::error::ProtocolError;

/// A frame opcode (RFC 6455 §5.2, §11.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: a text data frame.
    Text,
    /// 0x2: a binary data frame.
    Binary,
    /// 0x8: a close control frame.
    Close,
    /// 0x9: a ping control frame.
    Ping,
    /// 0xA: a pong control frame.
    Pong,
}

impl OpCode {
    /// Decode the 4-bit opcode; reserved values are a protocol error.
    pub const fn from_u8(op: u8) -> Result<OpCode, ProtocolError> {
        Ok(match op {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// The 4-bit wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong (§5.5).
    pub const fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// Which end of the connection a session plays; it decides the masking rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Receives masked frames, sends unmasked ones.
    Server,
    /// Receives unmasked frames, sends masked ones.
    Client,
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: the last frame of a message.
    pub fin: bool,
    /// RSV1 (claimed by permessage-deflate, RFC 7692).
    pub rsv1: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, when the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

/// The largest header: 2 bytes + 8 of extended length + 4 of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// Decode a frame header from the start of `buf`.
///
/// `Ok(None)`: `buf` holds only part of a header. `Ok(Some((header, n)))`: the
/// header took `n` bytes. `rsv1_allowed` is true when an extension (deflate)
/// claims RSV1. Every rule that can be checked from the header is checked here,
/// so a frame is refused before any of its payload is buffered.
///
/// ```
/// use lariat_proto::frame::{decode_header, OpCode, Role};
/// // RFC 6455 §5.7: a single-frame masked text message "Hello".
/// let bytes = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
/// let (h, n) = decode_header(&bytes, Role::Server, false).unwrap().unwrap();
/// assert_eq!((h.fin, h.opcode, h.payload_len, n), (true, OpCode::Text, 5, 6));
/// assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
/// ```
#[inline]
pub fn decode_header(
    buf: &[u8],
    role: Role,
    rsv1_allowed: bool,
) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let b0 = buf[0];
    let b1 = buf[1];
    let fin = b0 & 0x80 != 0;
    let rsv1 = b0 & 0x40 != 0;
    // §5.2: RSV2 and RSV3 are claimed by no extension lariat knows.
    if b0 & 0x30 != 0 || (rsv1 && !rsv1_allowed) {
        return Err(ProtocolError::ReservedBits);
    }
    let opcode = OpCode::from_u8(b0 & 0x0f)?;
    let masked = b1 & 0x80 != 0;
    // §5.1: clients MUST mask, servers MUST NOT.
    if masked != (role == Role::Server) {
        return Err(ProtocolError::BadMasking);
    }
    let len7 = b1 & 0x7f;
    if opcode.is_control() {
        // RFC 7692 §6.1: an extension's RSV1 never applies to control frames.
        if rsv1 {
            return Err(ProtocolError::ReservedBits);
        }
        // §5.5: control frames are never fragmented and carry at most 125 bytes.
        if !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        if len7 > 125 {
            return Err(ProtocolError::ControlFrameTooLong);
        }
    } else if rsv1 && opcode == OpCode::Continuation {
        // RFC 7692 §6.1: RSV1 is set on the first frame of a message only.
        return Err(ProtocolError::ReservedBits);
    }
    let (payload_len, mut at) = match len7 {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            let len = u16::from_be_bytes([buf[2], buf[3]]) as u64;
            if len < 126 {
                return Err(ProtocolError::NonMinimalLength);
            }
            (len, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(b);
            // §5.2: the most significant bit MUST be 0.
            if len >> 63 != 0 {
                return Err(ProtocolError::LengthOverflow);
            }
            if len <= 0xffff {
                return Err(ProtocolError::NonMinimalLength);
            }
            (len, 10)
        }
        n => (n as u64, 2),
    };
    let mask = if masked {
        if buf.len() < at + 4 {
            return Ok(None);
        }
        let key = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        Some(key)
    } else {
        None
    };
    Ok(Some((
        FrameHeader {
            fin,
            rsv1,
            opcode,
            mask,
            payload_len,
        },
        at,
    )))
}

/// Append a frame header to `out`. The caller appends the payload (masked with
/// `mask` when given).
///
/// ```
/// use lariat_proto::frame::{encode_header, OpCode};
/// let mut out = Vec::new();
/// encode_header(&mut out, true, false, OpCode::Text, None, 5);
/// out.extend_from_slice(b"Hello");
/// // RFC 6455 §5.7: a single-frame unmasked text message.
/// assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
/// ```
#[inline]
pub fn encode_header(
    out: &mut Vec<u8>,
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload_len: u64,
) {
    let b0 = (fin as u8) << 7 | (rsv1 as u8) << 6 | opcode.as_u8();
    let m = if mask.is_some() { 0x80 } else { 0 };
    if payload_len < 126 {
        out.extend_from_slice(&[b0, m | payload_len as u8]);
    } else if payload_len <= 0xffff {
        let l = (payload_len as u16).to_be_bytes();
        out.extend_from_slice(&[b0, m | 126, l[0], l[1]]);
    } else {
        out.extend_from_slice(&[b0, m | 127]);
        out.extend_from_slice(&payload_len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all_prefixes(
        bytes: &[u8],
        role: Role,
    ) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        // Every strict prefix of a complete header is "need more" (or the same error).
        let full = decode_header(bytes, role, false);
        for cut in 0..bytes.len() {
            let part = decode_header(&bytes[..cut], role, false);
            match (&full, &part) {
                (_, Ok(None)) => {}
                (Err(a), Err(b)) => assert_eq!(a, b),
                (Ok(Some((_, n))), _) if cut >= *n => {}
                _ => panic!("prefix {cut} of {bytes:x?} gave {part:?}, whole gave {full:?}"),
            }
        }
        full
    }

    #[test]
    fn rfc6455_5_7_examples() {
        // Unmasked "Hello" (client role receives unmasked).
        let (h, n) = decode_all_prefixes(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f], Role::Client)
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.payload_len, h.mask, n),
            (true, OpCode::Text, 5, None, 2)
        );
        // Fragmented unmasked "Hel" + "lo".
        let (h, _) = decode_all_prefixes(&[0x01, 0x03, 0x48, 0x65, 0x6c], Role::Client)
            .unwrap()
            .unwrap();
        assert_eq!((h.fin, h.opcode, h.payload_len), (false, OpCode::Text, 3));
        let (h, _) = decode_all_prefixes(&[0x80, 0x02, 0x6c, 0x6f], Role::Client)
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.payload_len),
            (true, OpCode::Continuation, 2)
        );
        // Masked ping "Hello".
        let (h, n) = decode_all_prefixes(
            &[
                0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ],
            Role::Server,
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.opcode, h.payload_len, n), (OpCode::Ping, 5, 6));
        // 256 bytes binary in a single unmasked frame: 16-bit length.
        let (h, n) = decode_all_prefixes(&[0x82, 0x7e, 0x01, 0x00], Role::Client)
            .unwrap()
            .unwrap();
        assert_eq!((h.opcode, h.payload_len, n), (OpCode::Binary, 256, 4));
        // 64 KiB binary: 64-bit length.
        let (h, n) = decode_all_prefixes(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0], Role::Client)
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn header_rules() {
        use ProtocolError::*;
        let cases: &[(&[u8], Role, ProtocolError)] = &[
            (&[0x81, 0x05], Role::Server, BadMasking),
            (&[0x81, 0x85, 0, 0, 0, 0], Role::Client, BadMasking),
            (&[0xc1, 0x80, 0, 0, 0, 0], Role::Server, ReservedBits),
            (&[0xa1, 0x80, 0, 0, 0, 0], Role::Server, ReservedBits),
            (&[0x91, 0x80, 0, 0, 0, 0], Role::Server, ReservedBits),
            (&[0x83, 0x80, 0, 0, 0, 0], Role::Server, ReservedOpcode(3)),
            (&[0x8b, 0x80, 0, 0, 0, 0], Role::Server, ReservedOpcode(0xb)),
            (
                &[0x09, 0x80, 0, 0, 0, 0],
                Role::Server,
                FragmentedControlFrame,
            ),
            (&[0x89, 0xfe, 0, 126], Role::Server, ControlFrameTooLong),
            (
                &[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0],
                Role::Server,
                LengthOverflow,
            ),
            (&[0x82, 0xfe, 0, 125], Role::Server, NonMinimalLength),
            (
                &[0x82, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff],
                Role::Server,
                NonMinimalLength,
            ),
        ];
        for (bytes, role, err) in cases {
            assert_eq!(decode_all_prefixes(bytes, *role), Err(*err), "{bytes:x?}");
        }
    }

    #[test]
    fn a_terabyte_header_costs_nothing() {
        // 1 TB announced: decoded from 14 bytes, the size limit is checked by the caller.
        let mut b = vec![0x82, 0xff];
        b.extend_from_slice(&(1u64 << 40).to_be_bytes());
        b.extend_from_slice(&[1, 2, 3, 4]);
        let (h, n) = decode_header(&b, Role::Server, false).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (1 << 40, 14));
    }

    #[test]
    fn encode_then_decode_lengths() {
        for len in [0u64, 1, 125, 126, 127, 65535, 65536, 1 << 40] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let mut out = Vec::new();
                encode_header(&mut out, true, false, OpCode::Binary, mask, len);
                let role = if mask.is_some() {
                    Role::Server
                } else {
                    Role::Client
                };
                let (h, n) = decode_header(&out, role, false).unwrap().unwrap();
                assert_eq!((h.payload_len, h.mask, n), (len, mask, out.len()));
            }
        }
    }
}
