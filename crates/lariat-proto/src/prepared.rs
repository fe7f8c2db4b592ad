//! A data frame prepared once and sent on many sessions: pub/sub fan-out.
//!
//! The server's encoding of a frame is the same for every connection (server
//! frames are not masked), and so is its compressed form for every connection
//! that agreed permessage-deflate *without* server context takeover at the
//! same window size (each message is compressed on its own, RFC 7692 §7.1.1.1).
//! A [`PreparedFrame`] computes each encoding once, on first use, and every
//! [`Session::send_prepared`](crate::Session::send_prepared) copies the bytes.
//! Connections with context takeover, and clients (whose frames are masked
//! with a fresh key each), encode it themselves.
//!
//! ```
//! use lariat_proto::{Config, Frame, PreparedFrame, Role, Session};
//! use std::time::Instant;
//!
//! let p = PreparedFrame::new(Frame::text("to everyone")).unwrap();
//! let now = Instant::now();
//! let (mut a, mut b) = (
//!     Session::new(Role::Server, Config::default(), now),
//!     Session::new(Role::Server, Config::default(), now),
//! );
//! a.send_prepared(&p).unwrap();
//! b.send_prepared(&p).unwrap();
//! let (mut wa, mut wb) = (Vec::new(), Vec::new());
//! a.take_transmit(&mut wa);
//! b.take_transmit(&mut wb);
//! assert_eq!(wa, wb);
//! assert_eq!(&wa[2..], b"to everyone");
//! ```

use std::sync::{Mutex, OnceLock};

use bytes::Bytes;

use crate::deflate::Codec;
use crate::frame::{encode_header, OpCode};
use crate::message::Frame;

/// A text or binary frame with its server-side encodings cached.
#[derive(Debug)]
pub struct PreparedFrame {
    op: OpCode,
    payload: Bytes,
    /// Header and payload, unmasked, no RSV bit.
    plain: OnceLock<Bytes>,
    /// Compressed encodings by (level, window bits); `None` where the
    /// message does not shrink and goes plain.
    compressed: Mutex<Vec<(u32, u8, Option<Bytes>)>>,
}

impl PreparedFrame {
    /// Prepare a text or binary frame. Control frames are given back: they
    /// belong to one connection's conversation, not to a broadcast.
    pub fn new(frame: Frame) -> Result<PreparedFrame, Frame> {
        let (op, payload) = match frame {
            Frame::Text(t) => (OpCode::Text, t.into_bytes()),
            Frame::Binary(b) => (OpCode::Binary, b),
            other => return Err(other),
        };
        Ok(PreparedFrame {
            op,
            payload,
            plain: OnceLock::new(),
            compressed: Mutex::new(Vec::new()),
        })
    }

    /// Text or binary.
    pub fn opcode(&self) -> OpCode {
        self.op
    }

    /// The message's bytes (UTF-8 for text).
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The frame again (cheap: the payload is shared).
    pub fn to_frame(&self) -> Frame {
        match self.op {
            OpCode::Text => Frame::Text(crate::message::Text::from_validated(self.payload.clone())),
            _ => Frame::Binary(self.payload.clone()),
        }
    }

    /// The plain server encoding.
    pub(crate) fn plain(&self) -> &Bytes {
        self.plain.get_or_init(|| {
            let mut out = Vec::with_capacity(self.payload.len() + 10);
            encode_header(
                &mut out,
                true,
                false,
                self.op,
                None,
                self.payload.len() as u64,
            );
            out.extend_from_slice(&self.payload);
            Bytes::from(out)
        })
    }

    /// The compressed server encoding for `codec`'s level and window (which
    /// must compress without context takeover), or `None` if compressing
    /// does not make the message smaller.
    pub(crate) fn compressed(&self, codec: &mut Codec) -> Option<Bytes> {
        let key = codec.tx_key();
        let mut cache = self.compressed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, c)) = cache.iter().find(|(l, b, _)| (*l, *b) == key) {
            return c.clone();
        }
        let mut body = Vec::new();
        let encoded = (codec.compress(&self.payload, &mut body) && body.len() < self.payload.len())
            .then(|| {
                let mut out = Vec::with_capacity(body.len() + 10);
                // RFC 7692 §6: RSV1 marks the compressed message.
                encode_header(&mut out, true, true, self.op, None, body.len() as u64);
                out.extend_from_slice(&body);
                Bytes::from(out)
            });
        cache.push((key.0, key.1, encoded.clone()));
        encoded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deflate::{negotiate, DeflateConfig};
    use crate::handshake::parse_extensions;
    use crate::{Config, Event, Message, Role, Session};
    use std::time::Instant;

    fn pair(offer: &[u8], config: &DeflateConfig) -> (Session, Session) {
        let now = Instant::now();
        let params = negotiate(&parse_extensions(offer).unwrap(), config).unwrap();
        let mut server = Session::new(Role::Server, Config::default(), now);
        server.enable_deflate(params, config);
        let mut client = Session::new(Role::Client, Config::default(), now);
        client.enable_deflate(params, config);
        (server, client)
    }

    fn deliver(from: &mut Session, to: &mut Session) -> (Vec<u8>, Vec<Message>) {
        let mut wire = Vec::new();
        from.take_transmit(&mut wire);
        to.receive(&wire, Instant::now());
        let mut got = Vec::new();
        while let Some(Event::Message(m)) = to.poll_event() {
            got.push(m);
        }
        (wire, got)
    }

    fn text() -> String {
        (0..40)
            .map(|i| format!("{{\"n\":{i},\"msg\":\"hello room\"}}"))
            .collect()
    }

    /// RFC 7692 §7.1.1.1: without server context takeover every connection
    /// gets the same compressed bytes (RSV1 set), compressed once.
    #[test]
    fn compressed_once_for_all_no_takeover_sessions() {
        let config = DeflateConfig::default();
        let (mut s1, mut c1) = pair(b"permessage-deflate", &config);
        let (mut s2, mut c2) = pair(b"permessage-deflate", &config);
        let p = PreparedFrame::new(Frame::text(text())).unwrap();
        s1.send_prepared(&p).unwrap();
        s2.send_prepared(&p).unwrap();
        let (w1, m1) = deliver(&mut s1, &mut c1);
        let (w2, m2) = deliver(&mut s2, &mut c2);
        assert_eq!(w1, w2);
        assert_eq!(w1[0], 0x80 | 0x40 | 0x1, "FIN, RSV1, text");
        assert!(w1.len() < text().len() / 2);
        assert_eq!(m1, vec![Message::Text(text().into())]);
        assert_eq!(m1, m2);
        assert_eq!(p.compressed.lock().unwrap().len(), 1);
    }

    /// With context takeover the session compresses it itself, in its stream.
    #[test]
    fn takeover_sessions_encode_their_own() {
        let config = DeflateConfig {
            server_no_context_takeover: false,
            ..DeflateConfig::default()
        };
        let (mut s, mut c) = pair(b"permessage-deflate", &config);
        let p = PreparedFrame::new(Frame::text(text())).unwrap();
        s.send_prepared(&p).unwrap();
        s.send_prepared(&p).unwrap();
        let (wire, got) = deliver(&mut s, &mut c);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|m| *m == Message::Text(text().into())));
        // The second copy refers back to the first: far smaller.
        assert!(wire.len() < text().len() / 2);
        assert!(p.compressed.lock().unwrap().is_empty());
    }

    #[test]
    fn plain_and_small_messages_share_the_plain_encoding() {
        let config = DeflateConfig::default();
        let (mut s, mut c) = pair(b"permessage-deflate", &config);
        let p = PreparedFrame::new(Frame::binary(vec![7u8; 20])).unwrap();
        s.send_prepared(&p).unwrap();
        let (wire, got) = deliver(&mut s, &mut c);
        assert_eq!(wire[0], 0x82, "below the threshold: no RSV1");
        assert_eq!(got, vec![Message::Binary(vec![7u8; 20].into())]);
        assert!(PreparedFrame::new(Frame::Ping(Bytes::new())).is_err());
    }

    #[test]
    fn nothing_after_close() {
        let now = Instant::now();
        let mut s = Session::new(Role::Server, Config::default(), now);
        s.close(None, "", now).unwrap();
        let p = PreparedFrame::new(Frame::text("late")).unwrap();
        assert!(s.send_prepared(&p).is_err());
    }
}
