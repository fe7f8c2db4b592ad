//! Incremental, fail-fast UTF-8 validation (RFC 6455 §8.1).
//!
//! A text message may arrive in many frames and each frame in many reads. The
//! validator is fed the pieces in order and reports the first invalid byte
//! sequence as soon as it is seen, so a connection is failed with 1007 mid-frame,
//! not when the message completes. Up to three bytes of a code point that is cut
//! by a piece boundary are carried to the next piece.

/// The text was not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl std::fmt::Display for InvalidUtf8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for InvalidUtf8 {}

/// Pieces up to this long are first checked for being ASCII only.
const SHORT: usize = 64;

/// Validates a byte stream as UTF-8, piece by piece.
///
/// ```
/// use lariat_proto::utf8::Utf8Validator;
/// let mut v = Utf8Validator::default();
/// let euro = "€".as_bytes(); // three bytes
/// v.feed(&euro[..1]).unwrap();
/// v.feed(&euro[1..]).unwrap();
/// v.finish().unwrap();
/// // A byte that can never start or continue a sequence fails at once.
/// assert!(v.feed(&[0xff]).is_err());
/// ```
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

impl Utf8Validator {
    /// Validate the next piece. Fails at the first byte sequence that cannot be
    /// part of valid UTF-8, whatever follows it.
    #[inline]
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            let have = self.pending_len as usize;
            let width = sequence_width(self.pending[0]);
            let take = (width - have).min(data.len());
            self.pending[have..have + take].copy_from_slice(&data[..take]);
            let len = have + take;
            data = &data[take..];
            match std::str::from_utf8(&self.pending[..len]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_none() => {
                    // Still a valid prefix, and `data` is exhausted.
                    self.pending_len = len as u8;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
        }
        // A short ASCII piece (most chat and control traffic) needs no more
        // than a word-at-a-time look; long pieces go to the SIMD pass at once.
        if data.len() <= SHORT && data.is_ascii() {
            return Ok(());
        }
        // Validate up to the start of a possibly cut final sequence in one
        // SIMD pass; the cut tail (at most 3 bytes) is checked on its own.
        let (body, tail) = data.split_at(cut_point(data));
        if simdutf8::basic::from_utf8(body).is_err() {
            // `body` ends on a sequence boundary: any error in it is final.
            return Err(InvalidUtf8);
        }
        match std::str::from_utf8(tail) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() && e.valid_up_to() == 0 => {
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// The stream has ended: a code point cut short is an error.
    #[inline]
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let cut = self.pending_len != 0;
        self.pending_len = 0;
        if cut {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }

    /// Forget any carried bytes (for reuse on the next message).
    #[inline]
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }
}

/// Where the last, possibly unfinished, multi-byte sequence of `data` starts
/// (`data.len()` if it ends on an ASCII byte or has no lead byte in its last
/// three bytes).
fn cut_point(data: &[u8]) -> usize {
    let len = data.len();
    for i in (len.saturating_sub(3)..len).rev() {
        match data[i] {
            0x00..=0x7f => return len,
            0xc0..=0xff => return i,
            _ => {} // a continuation byte: look further back
        }
    }
    len
}

/// Length of the sequence a valid lead byte starts (only called on bytes that
/// `from_utf8` accepted as the start of an incomplete sequence).
fn sequence_width(lead: u8) -> usize {
    match lead {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_splits(bytes: &[u8]) -> Vec<Result<(), InvalidUtf8>> {
        let mut out = Vec::new();
        for cut in 0..=bytes.len() {
            let mut v = Utf8Validator::default();
            out.push(
                v.feed(&bytes[..cut])
                    .and_then(|_| v.feed(&bytes[cut..]))
                    .and_then(|_| v.finish()),
            );
        }
        out
    }

    #[test]
    fn valid_text_at_every_split() {
        let s = "κόσμε — €100 𝄞 ok";
        for r in all_splits(s.as_bytes()) {
            assert_eq!(r, Ok(()));
        }
    }

    #[test]
    fn invalid_sequences_at_every_split() {
        // Autobahn 6.x style cases: overlong, surrogate, beyond U+10FFFF, lone continuation.
        for bad in [
            &b"\xc0\xaf"[..],
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"a\x80b",
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
        ] {
            for r in all_splits(bad) {
                assert_eq!(r, Err(InvalidUtf8), "{bad:x?}");
            }
        }
    }

    #[test]
    fn fails_fast_before_the_end() {
        // RFC 6455 §8.1: fail as soon as the bytes cannot be UTF-8.
        let mut v = Utf8Validator::default();
        v.feed(b"hello ").unwrap();
        // 0xf4 0x90 is already beyond U+10FFFF, before the sequence completes.
        assert_eq!(v.feed(b"\xf4\x90"), Err(InvalidUtf8));
    }

    #[test]
    fn truncated_sequence_fails_at_finish() {
        let mut v = Utf8Validator::default();
        v.feed(b"\xe2\x82").unwrap();
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }
}
