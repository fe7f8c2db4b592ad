//! `Utf8Validator` fed arbitrary splits of arbitrary bytes agrees with
//! `std::str::from_utf8`, and fails fast.
//!
//! Invariants, for any split:
//! - `feed` fails exactly once the bytes fed so far can no longer be the start
//!   of valid UTF-8 (never earlier: a valid prefix is never refused; never later:
//!   the piece that completes an impossible sequence is refused, RFC 6455 §8.1);
//! - when every piece was accepted, `finish` is `Ok` iff `from_utf8` is `Ok`.
//!
//! Input layout: `[n, size_1 .. size_n, text ..]` — `n % 8` piece sizes taken
//! from the first bytes, applied cyclically to the rest (size 0 feeds an empty
//! piece). `n % 8 == 0`: the text is fed whole.
#![no_main]

use lariat_proto::utf8::Utf8Validator;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = (n % 8) as usize;
    let (sizes, text) = rest.split_at(n.min(rest.len()));

    let expected = std::str::from_utf8(text);
    // The length of the shortest prefix of `text` that cannot be completed to
    // valid UTF-8 (`None`: every prefix can, the text is valid or cut short).
    let bad_at = match &expected {
        Err(e) if e.error_len().is_some() => {
            let start = e.valid_up_to();
            (start + 1..=text.len()).find(|&k| {
                std::str::from_utf8(&text[start..k]).is_err_and(|e| e.error_len().is_some())
            })
        }
        _ => None,
    };
    if let Err(e) = &expected {
        assert_eq!(bad_at.is_some(), e.error_len().is_some());
    }

    let mut v = Utf8Validator::default();
    let mut at = 0usize;
    let mut pieces = 0usize;
    loop {
        let size = match sizes.get(pieces % sizes.len().max(1)) {
            Some(&s) if pieces <= text.len() + 16 => s as usize,
            // No sizes, or too many empty pieces already: the rest at once.
            _ => text.len() - at,
        };
        pieces += 1;
        let end = (at + size).min(text.len());
        let r = v.feed(&text[at..end]);
        let impossible = bad_at.is_some_and(|b| end >= b);
        match r {
            Ok(()) => assert!(
                !impossible,
                "accepted {end} bytes, the first {} cannot be UTF-8: {text:x?}",
                bad_at.unwrap()
            ),
            Err(_) => {
                assert!(
                    impossible,
                    "refused {end} bytes that start valid UTF-8 (pieces of {sizes:?}): {text:x?}"
                );
                return;
            }
        }
        at = end;
        if at >= text.len() {
            break;
        }
    }
    let finished = v.finish();
    assert_eq!(
        finished.is_ok(),
        expected.is_ok(),
        "finish() = {finished:?}, from_utf8 = {expected:?}: {text:x?}"
    );
    // Finished, the validator is ready for the next message.
    assert!(v.feed(b"ok").is_ok() && v.finish().is_ok());
});
