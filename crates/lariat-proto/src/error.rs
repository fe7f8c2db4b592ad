//! Everything that can fail a WebSocket connection, and the one place that maps
//! each failure to its close code (RFC 6455 §7.4.1).

use crate::close::CloseCode;

/// The peer broke RFC 6455. Each variant names the rule; [`ProtocolError::close_code`]
/// says which close code the connection is failed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An RSV bit was set that no negotiated extension claims (§5.2).
    ReservedBits,
    /// An opcode that RFC 6455 reserves (3-7, 0xB-0xF) (§5.2).
    ReservedOpcode(u8),
    /// A client frame without a mask, or a server frame with one (§5.1, §5.3).
    BadMasking,
    /// A 64-bit length with its most significant bit set (§5.2).
    LengthOverflow,
    /// A length not in its shortest form: RFC 6455 §5.2 says "the minimal number
    /// of bytes MUST be used to encode the length"; lariat holds peers to it.
    NonMinimalLength,
    /// A control frame with a payload over 125 bytes (§5.5).
    ControlFrameTooLong,
    /// A fragmented control frame (§5.5).
    FragmentedControlFrame,
    /// A continuation frame with no message to continue (§5.4).
    UnexpectedContinuation,
    /// A new data frame while a fragmented message is unfinished (§5.4).
    ExpectedContinuation,
    /// A close frame with a one-byte payload (§5.5.1).
    CloseFrameTooShort,
    /// A close code that may not appear on the wire (§7.4).
    InvalidCloseCode(u16),
    /// Text (or a close reason) that is not UTF-8 (§8.1).
    InvalidUtf8,
    /// A frame bigger than the configured maximum frame size.
    FrameTooBig,
    /// A message bigger than the configured maximum message size.
    MessageTooBig,
    /// A message split into more fragments than allowed.
    TooManyFragments,
    /// A compressed message that would not inflate (RFC 7692 §7.2.3).
    BadCompression,
}

impl ProtocolError {
    /// The close code the connection is failed with. The one mapping from
    /// failures to codes: 1007 for bad UTF-8, 1009 for anything too big, 1002
    /// for every other violation.
    pub const fn close_code(self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            ProtocolError::BadCompression => CloseCode::INVALID_PAYLOAD,
            ProtocolError::FrameTooBig
            | ProtocolError::MessageTooBig
            | ProtocolError::TooManyFragments => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// A short, fixed text for the close reason. It names the rule, never echoes
    /// the peer's data.
    pub const fn reason(self) -> &'static str {
        match self {
            ProtocolError::ReservedBits => "reserved bits set",
            ProtocolError::ReservedOpcode(_) => "reserved opcode",
            ProtocolError::BadMasking => "bad masking",
            ProtocolError::LengthOverflow => "length overflow",
            ProtocolError::NonMinimalLength => "non-minimal length",
            ProtocolError::ControlFrameTooLong => "control frame too long",
            ProtocolError::FragmentedControlFrame => "fragmented control frame",
            ProtocolError::UnexpectedContinuation => "unexpected continuation",
            ProtocolError::ExpectedContinuation => "expected continuation",
            ProtocolError::CloseFrameTooShort => "close frame too short",
            ProtocolError::InvalidCloseCode(_) => "invalid close code",
            ProtocolError::InvalidUtf8 => "invalid UTF-8",
            ProtocolError::FrameTooBig => "frame too big",
            ProtocolError::MessageTooBig => "message too big",
            ProtocolError::TooManyFragments => "too many fragments",
            ProtocolError::BadCompression => "bad compressed data",
        }
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::InvalidCloseCode(c) => write!(f, "invalid close code {c}"),
            other => f.write_str(other.reason()),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// The application asked for something the session cannot do: a caller's
/// mistake, distinct from anything the peer did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// A frame was sent after the close frame (RFC 6455 §5.5.1: nothing follows a close).
    SendAfterClose,
    /// A control frame payload over 125 bytes.
    ControlFrameTooLong,
    /// A close code that may not be sent (1005, 1006, 1015, unassigned ranges).
    InvalidCloseCode(u16),
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsageError::SendAfterClose => f.write_str("send after close"),
            UsageError::ControlFrameTooLong => f.write_str("control frame payload over 125 bytes"),
            UsageError::InvalidCloseCode(c) => write!(f, "close code {c} may not be sent"),
        }
    }
}

impl std::error::Error for UsageError {}
