//! Property tests: encode→decode at arbitrary split points; the incremental
//! UTF-8 validator agrees with `std::str::from_utf8` across arbitrary splits.

use std::time::Instant;

use lariat_proto::frame::{encode_header, OpCode};
use lariat_proto::mask::apply_mask;
use lariat_proto::utf8::Utf8Validator;
use lariat_proto::{Config, Event, Message, Role, Session};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        any::<String>().prop_map(Msg::Text),
        proptest::collection::vec(any::<u8>(), 0..70_000).prop_map(Msg::Binary),
        proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Msg::Ping),
    ]
}

/// Encode `m` as masked client frames, data split into `pieces` fragments.
fn encode(m: &Msg, pieces: usize, key: [u8; 4], out: &mut Vec<u8>) {
    let (op, data): (OpCode, &[u8]) = match m {
        Msg::Text(s) => (OpCode::Text, s.as_bytes()),
        Msg::Binary(b) => (OpCode::Binary, b),
        Msg::Ping(b) => (OpCode::Ping, b),
    };
    let pieces = if op == OpCode::Ping { 1 } else { pieces.max(1) };
    let step = data.len().div_ceil(pieces).max(1);
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(step).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let first = i == 0;
        let fin = i + 1 == chunks.len();
        let opcode = if first { op } else { OpCode::Continuation };
        encode_header(out, fin, false, opcode, Some(key), chunk.len() as u64);
        let at = out.len();
        out.extend_from_slice(chunk);
        apply_mask(&mut out[at..], key, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn roundtrip_at_arbitrary_splits(
        msgs in proptest::collection::vec((msg(), 1usize..5), 1..6),
        key in any::<[u8; 4]>(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut wire = Vec::new();
        for (m, pieces) in &msgs {
            encode(m, *pieces, key, &mut wire);
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        let now = Instant::now();
        let config = Config { max_message_size: None, max_frame_size: None, ..Config::default() };
        let mut s = Session::new(Role::Server, config, now);
        for w in points.windows(2) {
            s.receive(&wire[w[0]..w[1]], now);
        }
        for (m, _) in &msgs {
            let got = s.poll_event();
            let want = match m {
                Msg::Text(t) => Message::Text(t.clone().into()),
                Msg::Binary(b) => Message::Binary(b.clone().into()),
                Msg::Ping(b) => Message::Ping(b.clone().into()),
            };
            prop_assert_eq!(got, Some(Event::Message(want)));
        }
        prop_assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn utf8_validator_agrees_with_std(
        parts in proptest::collection::vec(
            prop_oneof![
                any::<String>().prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..8),
                proptest::collection::vec(prop_oneof![Just(0x80u8), Just(0xbf), Just(0xc2), Just(0xe0), Just(0xed), Just(0xf0), Just(0xf4), Just(0xa0)], 0..6),
            ],
            0..6,
        ),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let bytes = parts.concat();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.push(0);
        points.push(bytes.len());
        points.sort_unstable();
        let mut v = Utf8Validator::default();
        let mut ok = true;
        for w in points.windows(2) {
            if v.feed(&bytes[w[0]..w[1]]).is_err() {
                ok = false;
                break;
            }
        }
        if ok {
            ok = v.finish().is_ok();
        }
        prop_assert_eq!(ok, std::str::from_utf8(&bytes).is_ok());
    }

    #[test]
    fn utf8_fails_at_the_first_bad_sequence(prefix in any::<String>(), tail in proptest::collection::vec(any::<u8>(), 0..20)) {
        // Once std reports a definite error (error_len is Some) within the
        // bytes fed so far, the validator must have failed by then.
        let bytes = [prefix.as_bytes(), &tail].concat();
        let mut v = Utf8Validator::default();
        for (i, b) in bytes.iter().enumerate() {
            let r = v.feed(std::slice::from_ref(b));
            let definite = matches!(std::str::from_utf8(&bytes[..=i]), Err(e) if e.error_len().is_some());
            prop_assert_eq!(r.is_err(), definite, "at byte {}", i);
            if r.is_err() { break; }
        }
    }
}
