//! A server `Session` fed arbitrary bytes, split at points chosen by the input.
//!
//! Input layout: `[limits, actions, n, size_1 .. size_n, wire ..]`
//! - `limits` bits 0-2 / 3-5: max frame / message size from `SIZES`; bits 6-7
//!   and `actions` bits 0-1: max fragments from `FRAGMENTS`.
//! - `actions` bit 2: `receive_eof` after the last byte; bit 3: `shrink` after
//!   every piece; bit 4: the application calls `close` after piece `n`
//!   (with a code from `CODES`, some not sendable); bit 5: time goes on by
//!   30 s a piece, with `handle_timeout` when due; bit 6: echo every data
//!   message back (an echo server).
//! - `n % 8` piece sizes, applied cyclically to `wire` (`n % 8 == 0`: one piece).
//!
//! Invariants: never panics; nothing follows `Event::Closed` (no event, no
//! byte to send), and `is_closed` agrees with it; `Text` messages are UTF-8 and
//! messages respect `max_message_size`; a protocol failure is closed with its
//! own code; the bytes sent parse as complete, unmasked server frames (decoded
//! with `Role::Client`), with one pong per ping event echoing its payload, at
//! most one close frame, last, with a valid payload; the heap stays bounded by
//! the limits, not by what headers announce; and when the application does
//! nothing but read, any split gives the same events and bytes as one piece.
#![no_main]

use std::time::{Duration, Instant};

use lariat_proto::close::parse_close_payload;
use lariat_proto::frame::{decode_header, OpCode, Role};
use lariat_proto::{CloseCause, CloseCode, Config, Event, Frame, Message, Session};
use libfuzzer_sys::fuzz_target;

const SIZES: [Option<u64>; 8] = [
    None,
    Some(0),
    Some(1),
    Some(125),
    Some(126),
    Some(1000),
    Some(65_536),
    Some(1 << 20),
];
const FRAGMENTS: [Option<u32>; 16] = [
    None,
    None,
    None,
    None,
    Some(0),
    Some(1),
    Some(2),
    Some(3),
    Some(4),
    Some(5),
    Some(8),
    Some(16),
    Some(100),
    None,
    None,
    None,
];
const CODES: [Option<u16>; 8] = [
    None,
    Some(1000),
    Some(1001),
    Some(1005),
    Some(1006),
    Some(3000),
    Some(4999),
    Some(5000),
];

struct Run {
    events: Vec<Event>,
    wire_out: Vec<u8>,
}

struct Plan<'a> {
    config: Config,
    eof: bool,
    shrink: bool,
    close_after: Option<(usize, Option<u16>)>,
    timers: bool,
    echo: bool,
    sizes: &'a [u8],
}

fuzz_target!(|data: &[u8]| {
    let [limits, actions, n, rest @ ..] = data else {
        return;
    };
    let n = (n % 8) as usize;
    let (sizes, wire) = rest.split_at(n.min(rest.len()));
    let config = Config {
        max_frame_size: SIZES[(limits & 7) as usize],
        max_message_size: SIZES[((limits >> 3) & 7) as usize],
        max_fragments: FRAGMENTS[((limits >> 6) | ((actions & 3) << 2)) as usize],
        ..Config::default()
    };
    let plan = Plan {
        config,
        eof: actions & 4 != 0,
        shrink: actions & 8 != 0,
        close_after: (actions & 16 != 0).then(|| (n, CODES[(actions >> 5) as usize & 7])),
        timers: actions & 32 != 0,
        echo: actions & 64 != 0,
        sizes,
    };
    let split = run(&plan, wire);
    if plan.close_after.is_none() && !plan.timers && !plan.echo {
        // Split invariance: one piece gives the same events and bytes.
        let whole = run(
            &Plan {
                sizes: &[],
                shrink: false,
                ..plan
            },
            wire,
        );
        assert_eq!(split.events, whole.events, "events depend on the split");
        assert_eq!(
            split.wire_out, whole.wire_out,
            "bytes sent depend on the split"
        );
    }
});

fn run(plan: &Plan, wire: &[u8]) -> Run {
    let mut now = Instant::now();
    let config = plan.config.clone();
    let max_message = config.max_message_size;
    let mut s = Session::new(Role::Server, config, now);
    let mut events = Vec::new();
    let mut wire_out = Vec::new();
    let mut closed = false;
    let mut received = 0usize;
    let mut largest_piece = 0usize;

    let mut at = 0usize;
    let mut piece = 0usize;
    loop {
        let size = match plan.sizes.get(piece % plan.sizes.len().max(1)) {
            Some(&sz) if piece <= wire.len() + 16 => sz as usize,
            _ => wire.len() - at,
        };
        let end = (at + size).min(wire.len());
        let chunk = &wire[at..end];
        largest_piece = largest_piece.max(chunk.len());
        received += chunk.len();
        s.receive(chunk, now);
        at = end;
        piece += 1;
        let last = at >= wire.len();
        if last && plan.eof {
            s.receive_eof();
        }

        drain(&mut s, plan, now, &mut events, &mut closed, max_message);
        if let Some((after, code)) = plan.close_after {
            if piece == after.max(1) {
                let open = !s.is_closing();
                let r = s.close(code.map(CloseCode), "application close", now);
                let sendable = code.is_none_or(|c| CloseCode(c).is_sendable());
                assert_eq!(r.is_ok(), open && sendable, "close({code:?}): {r:?}");
                assert!(!(r.is_ok() && closed), "close() accepted after Closed");
            }
        }
        if plan.timers {
            now += Duration::from_secs(30);
            if s.poll_timeout().is_some_and(|t| now >= t) {
                s.handle_timeout(now);
            }
            drain(&mut s, plan, now, &mut events, &mut closed, max_message);
        }
        if plan.shrink {
            s.shrink();
        }

        s.take_transmit(&mut wire_out);
        assert_eq!(s.buffered_amount(), 0, "take_transmit left bytes behind");

        // Memory: bounded by what arrived and the message limit, never by
        // what a header announced.
        let stored = max_message.map_or(received, |m| (m as usize).min(received));
        let bound = 2 * (stored + 64 * 1024) + 64 * largest_piece + 4096;
        assert!(
            s.heap_size() <= bound,
            "heap {} > {bound} (received {received}, max message {max_message:?})",
            s.heap_size()
        );
        if last {
            break;
        }
    }
    // After the end, nothing more happens.
    if closed {
        s.receive(b"\x89\x80\0\0\0\0", now);
        s.receive_eof();
        s.handle_timeout(now + Duration::from_secs(3600));
        assert_eq!(s.poll_event(), None, "an event after Closed");
        let mut more = Vec::new();
        s.take_transmit(&mut more);
        assert!(more.is_empty(), "bytes queued after Closed");
    }
    let local_close = plan.close_after.is_some() || plan.timers;
    check_output(&wire_out, &events, local_close);
    Run { events, wire_out }
}

fn drain(
    s: &mut Session,
    plan: &Plan,
    now: Instant,
    events: &mut Vec<Event>,
    closed: &mut bool,
    max_message: Option<u64>,
) {
    while let Some(ev) = s.poll_event() {
        assert!(!*closed, "event after Closed: {ev:?}");
        match &ev {
            Event::Message(m) => {
                let len = match m {
                    Message::Text(t) => {
                        assert!(std::str::from_utf8(t.as_bytes()).is_ok());
                        t.len()
                    }
                    Message::Binary(b) => b.len(),
                    Message::Ping(b) | Message::Pong(b) => {
                        assert!(b.len() <= 125);
                        0
                    }
                };
                if let Some(max) = max_message {
                    assert!(
                        len as u64 <= max,
                        "a {len}-byte message over the {max} limit"
                    );
                }
                if plan.echo {
                    if let Message::Text(_) | Message::Binary(_) = m {
                        let r = s.send(&Frame::from(m.clone()), now);
                        assert_eq!(r.is_ok(), !s.is_closing(), "send: {r:?}");
                    }
                }
            }
            Event::Closed(c) => {
                *closed = true;
                match c.cause {
                    CloseCause::Protocol(e) => {
                        assert_eq!(c.code, e.close_code());
                        assert_eq!(c.reason, e.reason());
                    }
                    CloseCause::Remote => {
                        assert!(c.code.is_valid_on_wire() || c.code == CloseCode::NO_STATUS)
                    }
                    CloseCause::Abnormal => assert_eq!(c.code, CloseCode::ABNORMAL),
                    CloseCause::Local | CloseCause::IdleTimeout => {}
                }
            }
        }
        events.push(ev);
    }
    assert_eq!(
        s.is_closed(),
        *closed,
        "is_closed() disagrees with the events"
    );
}

/// The bytes a server sent: complete unmasked frames; one pong per ping event
/// with its payload; at most one close frame, last, with a valid payload.
fn check_output(out: &[u8], events: &[Event], local_close: bool) {
    let mut rest = out;
    let mut pongs = Vec::new();
    let mut close: Option<Vec<u8>> = None;
    while !rest.is_empty() {
        assert!(close.is_none(), "a frame after the close frame: {out:x?}");
        let (h, n) = match decode_header(rest, Role::Client, false) {
            Ok(Some(x)) => x,
            other => panic!("bad frame sent: {other:?} in {out:x?}"),
        };
        assert!(h.fin, "the server fragments nothing");
        let len = h.payload_len as usize;
        assert!(rest.len() - n >= len, "a frame cut short: {out:x?}");
        let payload = &rest[n..n + len];
        match h.opcode {
            OpCode::Pong => pongs.push(payload.to_vec()),
            OpCode::Close => close = Some(payload.to_vec()),
            OpCode::Text => assert!(std::str::from_utf8(payload).is_ok()),
            OpCode::Binary => {}
            op => panic!("unexpected {op:?} frame sent"),
        }
        rest = &rest[n + len..];
    }
    let pings: Vec<Vec<u8>> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message(Message::Ping(p)) => Some(p.to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(pongs, pings, "pongs sent differ from pings received");
    if let Some(payload) = &close {
        let parsed = parse_close_payload(payload);
        assert!(
            matches!(parsed, Ok(Some((c, _))) if c.is_sendable()) || matches!(parsed, Ok(None)),
            "close frame sent with a bad payload {payload:x?}: {parsed:?}"
        );
    }
    // The close that ended the session is the one sent (when one was sent).
    if let Some(Event::Closed(c)) = events.last() {
        match c.cause {
            // A failure is announced with its own code and reason, unless
            // this side had already sent a close frame.
            CloseCause::Protocol(e) if !local_close => {
                let p = close.as_ref().expect("a failure sends a close frame");
                let mut expected = e.close_code().0.to_be_bytes().to_vec();
                expected.extend_from_slice(e.reason().as_bytes());
                assert_eq!(*p, expected, "the close frame sent for {e:?}");
            }
            CloseCause::Remote => {
                let p = close.as_ref().expect("a remote close is answered");
                if c.code == CloseCode::NO_STATUS {
                    assert!(p.is_empty());
                } else {
                    assert_eq!(
                        p[..],
                        c.code.0.to_be_bytes()[..],
                        "the echo has the peer's code"
                    );
                }
            }
            _ => {}
        }
    }
}
