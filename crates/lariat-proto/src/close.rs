//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use crate::error::ProtocolError;
use crate::utf8::Utf8Validator;

/// A WebSocket close status code (RFC 6455 §7.4).
///
/// The constants name the codes of the IANA registry. Whether a code may be
/// *sent* or *received* on the wire is answered by [`CloseCode::is_sendable`]
/// and [`CloseCode::is_valid_on_wire`]: 1005, 1006 and 1015 only ever describe a
/// close locally, and 0-999, 1004, 1016-2999 and 5000+ are not allowed at all.
///
/// ```
/// use lariat_proto::CloseCode;
/// assert!(CloseCode::NORMAL.is_valid_on_wire());
/// assert!(CloseCode(4000).is_valid_on_wire()); // private use
/// assert!(!CloseCode::ABNORMAL.is_valid_on_wire()); // 1006 is never sent
/// assert!(!CloseCode(2000).is_valid_on_wire()); // reserved, unassigned
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigated away).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection dropped without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a text message (or close reason) was not valid UTF-8.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a frame or message was bigger than the endpoint accepts.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition (a crashed handler).
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (overload).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: a gateway received an invalid response.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: the TLS handshake failed (never sent on the wire).
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// May this code appear in a close frame on the wire (sent or received)?
    ///
    /// RFC 6455 §7.4.1-§7.4.2 and the IANA registry: 1000-1003 and 1007-1014
    /// are defined; 3000-3999 are registered for libraries and frameworks;
    /// 4000-4999 are for private use. Everything else is a protocol error.
    pub const fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// May an application send this code? The same set as
    /// [`is_valid_on_wire`](Self::is_valid_on_wire).
    pub const fn is_sendable(self) -> bool {
        self.is_valid_on_wire()
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The longest close reason that fits a control frame: 125 - 2 bytes of code.
pub const MAX_REASON_LEN: usize = 123;

/// Parse a received close frame's payload (RFC 6455 §5.5.1): empty, or a code
/// followed by a UTF-8 reason. A one-byte payload, a code not allowed on the
/// wire, or a reason that is not UTF-8 fail the connection.
///
/// Returns `None` for an empty payload (reported locally as 1005).
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(CloseCode, &str)>, ProtocolError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(ProtocolError::CloseFrameTooShort),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason = &payload[2..];
            let mut v = Utf8Validator::default();
            v.feed(reason)
                .and_then(|_| v.finish())
                .map_err(|_| ProtocolError::InvalidUtf8)?;
            // Validated just above.
            let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Some((code, reason)))
        }
    }
}

/// Cut `reason` to at most [`MAX_REASON_LEN`] bytes on a character boundary.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_ranges_rfc6455_7_4() {
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(code).is_valid_on_wire(), "{code}");
        }
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            assert!(CloseCode(code).is_valid_on_wire(), "{code}");
        }
    }

    #[test]
    fn close_payloads_rfc6455_5_5_1() {
        assert_eq!(parse_close_payload(b""), Ok(None));
        assert_eq!(
            parse_close_payload(b"\x03"),
            Err(ProtocolError::CloseFrameTooShort)
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8"),
            Ok(Some((CloseCode::NORMAL, "")))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8bye"),
            Ok(Some((CloseCode::NORMAL, "bye")))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xed"),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8\xff"),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn reason_truncates_on_char_boundary() {
        let long = "é".repeat(100); // 200 bytes
        let cut = truncate_reason(&long);
        assert!(cut.len() <= MAX_REASON_LEN);
        assert_eq!(cut.len(), 122);
    }
}
