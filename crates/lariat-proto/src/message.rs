//! Messages received and frames to send.

use bytes::Bytes;

use crate::close::CloseCode;

/// UTF-8 text backed by [`Bytes`]: cheap to clone, checked once.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Text(Bytes);

impl Text {
    /// Check `bytes` and wrap them.
    pub fn from_bytes(bytes: Bytes) -> Result<Text, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Text(bytes))
    }

    /// Wrap bytes the caller has already validated as UTF-8 (the session does,
    /// incrementally, as they arrive).
    pub(crate) fn from_validated(bytes: Bytes) -> Text {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Text(bytes)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor guarantees valid UTF-8: `from_bytes` checks,
        // `from_validated` is only called on bytes the session validated, and
        // the `From` impls take `str`/`String`.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The UTF-8 bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The UTF-8 bytes, owned.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(Bytes::from(s))
    }
}

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Text {
        Text(Bytes::from_static(s.as_bytes()))
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A message received from the peer: data messages arrive whole, however they
/// were fragmented (S5); pings and pongs are passed on for information (S8.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(Text),
    /// A binary message.
    Binary(Bytes),
    /// A ping (already answered with a pong by the session).
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
}

/// A close frame's code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, at most 123 bytes of UTF-8 (longer ones are cut).
    pub reason: String,
}

/// A frame to send (S7.3: any type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message.
    Text(Text),
    /// A binary message.
    Binary(Bytes),
    /// A ping, at most 125 bytes.
    Ping(Bytes),
    /// A pong, at most 125 bytes.
    Pong(Bytes),
    /// A close frame, with or without code and reason (S11.2, S11.4).
    Close(Option<CloseFrame>),
}

impl Frame {
    /// A text frame.
    pub fn text(s: impl Into<Text>) -> Frame {
        Frame::Text(s.into())
    }

    /// A binary frame.
    pub fn binary(b: impl Into<Bytes>) -> Frame {
        Frame::Binary(b.into())
    }

    /// A close frame with a code and reason.
    pub fn close(code: impl Into<CloseCode>, reason: impl Into<String>) -> Frame {
        Frame::Close(Some(CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }))
    }
}

impl From<Message> for Frame {
    fn from(m: Message) -> Frame {
        match m {
            Message::Text(t) => Frame::Text(t),
            Message::Binary(b) => Frame::Binary(b),
            Message::Ping(b) => Frame::Ping(b),
            Message::Pong(b) => Frame::Pong(b),
        }
    }
}

impl From<Text> for Frame {
    fn from(t: Text) -> Frame {
        Frame::Text(t)
    }
}

impl From<String> for Frame {
    fn from(s: String) -> Frame {
        Frame::Text(s.into())
    }
}

impl From<&'static str> for Frame {
    fn from(s: &'static str) -> Frame {
        Frame::Text(s.into())
    }
}
