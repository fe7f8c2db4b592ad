//! `decode_header` on arbitrary bytes, for both roles and with RSV1 allowed or not.
//!
//! Invariants:
//! - it never panics;
//! - `Ok(Some((h, n)))` has `2 <= n <= input.len()` and `n <= MAX_HEADER_LEN`;
//! - re-encoding `h` with `encode_header` gives back exactly `input[..n]` (the
//!   decoder only accepts minimal lengths), and decoding that again gives `(h, n)`;
//! - the header obeys the rules the decoder promises to check (masking per role,
//!   control frames unfragmented, at most 125 bytes and without RSV1; RSV1 only
//!   when allowed and never on a continuation frame; a 64-bit length with its
//!   top bit clear);
//! - every strict prefix of an accepted header is "need more" (`Ok(None)`), and
//!   every prefix of an input that is rejected is "need more" or the same error.
#![no_main]

use lariat_proto::frame::{decode_header, encode_header, OpCode, Role, MAX_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for role in [Role::Server, Role::Client] {
        for rsv1_allowed in [false, true] {
            check(data, role, rsv1_allowed);
        }
    }
});

fn check(data: &[u8], role: Role, rsv1_allowed: bool) {
    let full = decode_header(data, role, rsv1_allowed);
    match &full {
        Ok(None) => assert!(
            data.len() < MAX_HEADER_LEN,
            "need more with {} bytes",
            data.len()
        ),
        Ok(Some((h, n))) => {
            let n = *n;
            assert!(
                (2..=MAX_HEADER_LEN).contains(&n) && n <= data.len(),
                "n = {n}"
            );
            assert_eq!(h.mask.is_some(), role == Role::Server, "masking rule");
            assert!(rsv1_allowed || !h.rsv1, "RSV1 accepted while not allowed");
            assert!(
                h.payload_len >> 63 == 0,
                "64-bit length with the top bit set"
            );
            if h.opcode.is_control() {
                // RFC 7692 §6.1: RSV1 never applies to control frames.
                assert!(!h.rsv1, "RSV1 on a control frame accepted");
                assert!(h.fin, "fragmented control frame accepted");
                assert!(h.payload_len <= 125, "long control frame accepted");
            }
            if h.opcode == OpCode::Continuation {
                assert!(!h.rsv1, "RSV1 on a continuation frame accepted");
            }

            let mut out = Vec::new();
            encode_header(&mut out, h.fin, h.rsv1, h.opcode, h.mask, h.payload_len);
            assert_eq!(out, &data[..n], "re-encoding differs from the input");
            let again = decode_header(&out, role, rsv1_allowed);
            assert_eq!(again, Ok(Some((*h, n))), "decode(encode(h)) != h");
        }
        Err(_) => {}
    }
    // The decoder never reads past what it is given: every prefix agrees.
    let upto = match &full {
        Ok(Some((_, n))) => *n,
        _ => data.len().min(MAX_HEADER_LEN),
    };
    for cut in 0..upto {
        let part = decode_header(&data[..cut], role, rsv1_allowed);
        match (&full, &part) {
            (_, Ok(None)) => {}
            (Err(a), Err(b)) => assert_eq!(a, b, "prefix {cut} fails differently"),
            _ => panic!("prefix {cut} of {data:x?} gave {part:?}, whole gave {full:?}"),
        }
    }
}
