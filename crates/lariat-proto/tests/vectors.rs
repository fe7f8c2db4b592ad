//! Byte-vector tests of the session (RFC 6455). Every vector is fed whole and
//! one byte at a time; both must give the same events and the same output.

use std::time::{Duration, Instant};

use lariat_proto::frame::{encode_header, OpCode};
use lariat_proto::mask::apply_mask;
use lariat_proto::{
    CloseCause, CloseCode, Closed, Config, Event, Frame, Message, ProtocolError, Role, Session,
    UsageError,
};

/// A client frame: masked, as a browser would send it.
fn frame(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
    let key = [0x11, 0x22, 0x33, 0x44];
    let mut out = Vec::new();
    encode_header(&mut out, fin, false, op, Some(key), payload.len() as u64);
    let at = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[at..], key, 0);
    out
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// Feed `input` to a fresh server session, whole and byte by byte; assert both
/// agree and return the events and transmitted bytes.
fn run_with(config: Config, input: &[u8]) -> (Vec<Event>, Vec<u8>) {
    let now = Instant::now();
    let mut results = Vec::new();
    for bytewise in [false, true] {
        let mut s = Session::new(Role::Server, config.clone(), now);
        if bytewise {
            for b in input {
                s.receive(std::slice::from_ref(b), now);
            }
        } else {
            s.receive(input, now);
        }
        let mut events = Vec::new();
        while let Some(e) = s.poll_event() {
            events.push(e);
        }
        let mut out = Vec::new();
        s.take_transmit(&mut out);
        results.push((events, out));
    }
    assert_eq!(results[0], results[1], "whole vs byte-at-a-time differ");
    results.pop().unwrap()
}

fn run(input: &[u8]) -> (Vec<Event>, Vec<u8>) {
    run_with(Config::default(), input)
}

fn text(s: &str) -> Event {
    Event::Message(Message::Text(s.to_string().into()))
}

/// The close frame a server sends for `e`: its code and its fixed reason.
fn server_close(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    let mut out = vec![0x88, p.len() as u8];
    out.extend_from_slice(&p);
    out
}

fn failed(e: ProtocolError) -> Event {
    Event::Closed(Closed {
        code: e.close_code(),
        reason: e.reason().to_string(),
        cause: CloseCause::Protocol(e),
    })
}

#[test]
fn rfc6455_5_7_masked_hello() {
    let (ev, out) = run(&[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ]);
    assert_eq!(ev, [text("Hello")]);
    assert!(out.is_empty());
}

#[test]
fn rfc6455_5_7_masked_ping_gets_pong_s8_1() {
    // The ping is answered automatically and still reported (S8.1).
    let (ev, out) = run(&[
        0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ]);
    assert_eq!(ev, [Event::Message(Message::Ping("Hello".into()))]);
    assert_eq!(out, [0x8a, 0x05, b'H', b'e', b'l', b'l', b'o']);
}

#[test]
fn fragments_with_interleaved_control_frames_rfc6455_5_4() {
    let input = cat(&[
        frame(false, OpCode::Text, b"Hel"),
        frame(true, OpCode::Ping, b"p"),
        frame(false, OpCode::Continuation, b""),
        frame(true, OpCode::Pong, b"q"),
        frame(true, OpCode::Continuation, b"lo"),
        frame(true, OpCode::Binary, &[0, 1, 2]),
    ]);
    let (ev, out) = run(&input);
    assert_eq!(
        ev,
        [
            Event::Message(Message::Ping("p".into())),
            Event::Message(Message::Pong("q".into())),
            text("Hello"),
            Event::Message(Message::Binary(vec![0u8, 1, 2].into())),
        ]
    );
    assert_eq!(out, [0x8a, 0x01, b'p']);
}

#[test]
fn lengths_16_and_64_bit() {
    let big = vec![7u8; 70_000];
    let mid = vec![9u8; 300];
    let (ev, _) = run(&cat(&[
        frame(true, OpCode::Binary, &mid),
        frame(true, OpCode::Binary, &big),
    ]));
    assert_eq!(
        ev,
        [
            Event::Message(Message::Binary(mid.into())),
            Event::Message(Message::Binary(big.into()))
        ]
    );
}

#[test]
fn remote_close_is_echoed_rfc6455_5_5_1() {
    let (ev, out) = run(&cat(&[
        frame(true, OpCode::Close, b"\x03\xe8bye"),
        frame(true, OpCode::Text, b"late"),
    ]));
    assert_eq!(
        ev,
        [Event::Closed(Closed {
            code: CloseCode::NORMAL,
            reason: "bye".into(),
            cause: CloseCause::Remote
        })]
    );
    assert_eq!(out, [0x88, 0x02, 0x03, 0xe8]);
    // An empty close is answered with an empty close, reported as 1005.
    let (ev, out) = run(&frame(true, OpCode::Close, b""));
    assert_eq!(
        ev,
        [Event::Closed(Closed {
            code: CloseCode::NO_STATUS,
            reason: String::new(),
            cause: CloseCause::Remote
        })]
    );
    assert_eq!(out, [0x88, 0x00]);
}

#[test]
fn protocol_errors_close_with_their_code() {
    use ProtocolError::*;
    let unmasked = vec![0x81, 0x02, b'h', b'i'];
    let mut rsv = frame(true, OpCode::Text, b"x");
    rsv[0] |= 0x20;
    let mut reserved_op = frame(true, OpCode::Text, b"x");
    reserved_op[0] = 0x83;
    let cases: Vec<(Vec<u8>, ProtocolError)> = vec![
        (unmasked, BadMasking),
        (rsv, ReservedBits),
        (reserved_op, ReservedOpcode(3)),
        (
            frame(true, OpCode::Continuation, b"x"),
            UnexpectedContinuation,
        ),
        (
            cat(&[
                frame(false, OpCode::Text, b"a"),
                frame(true, OpCode::Text, b"b"),
            ]),
            ExpectedContinuation,
        ),
        (frame(true, OpCode::Close, b"\x03"), CloseFrameTooShort),
        (
            frame(true, OpCode::Close, b"\x03\xed"),
            InvalidCloseCode(1005),
        ),
        (frame(true, OpCode::Close, b"\x03\xe8\xc0\xaf"), InvalidUtf8),
        (
            frame(true, OpCode::Text, b"\xce\xba\xed\xa0\x80"),
            InvalidUtf8,
        ),
        (frame(false, OpCode::Text, b"\xf4\x90\x80\x80"), InvalidUtf8),
        (
            cat(&[
                frame(false, OpCode::Text, b"\xe2\x82"),
                frame(true, OpCode::Continuation, b""),
            ]),
            InvalidUtf8,
        ),
    ];
    for (input, err) in cases {
        let (ev, out) = run(&input);
        assert_eq!(ev, [failed(err)], "{input:x?}");
        assert_eq!(
            out,
            server_close(err.close_code().0, err.reason()),
            "{input:x?}"
        );
    }
}

#[test]
fn registered_and_private_close_codes_are_accepted_rfc6455_7_4() {
    for code in [1000u16, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 4999] {
        let (ev, out) = run(&frame(true, OpCode::Close, &code.to_be_bytes()));
        assert_eq!(
            ev,
            [Event::Closed(Closed {
                code: CloseCode(code),
                reason: String::new(),
                cause: CloseCause::Remote
            })]
        );
        assert_eq!(out, [&[0x88, 2][..], &code.to_be_bytes()].concat());
    }
}

#[test]
fn invalid_utf8_fails_mid_frame_rfc6455_8_1() {
    // Only the header and the first bad bytes of a 1000-byte text frame arrive:
    // the session fails at once, it does not wait for the rest.
    let payload: Vec<u8> = [&b"\xf4\x90"[..], &[b'a'; 998]].concat();
    let f = frame(true, OpCode::Text, &payload);
    let (ev, out) = run(&f[..10]);
    assert_eq!(ev, [failed(ProtocolError::InvalidUtf8)]);
    assert_eq!(&out[..4], [0x88, 15, 0x03, 0xef]);
}

#[test]
fn size_limits_are_checked_from_the_header_s9() {
    // A header announcing 1 TB: refused from its 14 bytes.
    let mut h = Vec::new();
    encode_header(
        &mut h,
        true,
        false,
        OpCode::Binary,
        Some([1, 2, 3, 4]),
        1 << 40,
    );
    let (ev, out) = run(&h);
    assert_eq!(ev, [failed(ProtocolError::FrameTooBig)]);
    assert_eq!(&out[2..4], 1009u16.to_be_bytes());
    // Frame limit (S9: the seed's max_frame_size).
    let config = Config {
        max_frame_size: Some(8),
        ..Config::default()
    };
    let (ev, _) = run_with(config.clone(), &frame(true, OpCode::Text, b"123456789"));
    assert_eq!(ev, [failed(ProtocolError::FrameTooBig)]);
    let (ev, _) = run_with(config, &frame(true, OpCode::Text, b"12345678"));
    assert_eq!(ev, [text("12345678")]);
    // Message limit: fragments add up.
    let config = Config {
        max_message_size: Some(10),
        ..Config::default()
    };
    let (ev, _) = run_with(
        config,
        &cat(&[
            frame(false, OpCode::Binary, b"123456"),
            frame(true, OpCode::Continuation, b"78901"),
        ]),
    );
    assert_eq!(ev, [failed(ProtocolError::MessageTooBig)]);
    // Fragment count.
    let config = Config {
        max_fragments: Some(2),
        ..Config::default()
    };
    let (ev, _) = run_with(
        config,
        &cat(&[
            frame(false, OpCode::Binary, b"1"),
            frame(false, OpCode::Continuation, b"2"),
            frame(true, OpCode::Continuation, b"3"),
        ]),
    );
    assert_eq!(ev, [failed(ProtocolError::TooManyFragments)]);
    // No limit, explicitly.
    let config = Config {
        max_frame_size: None,
        max_message_size: None,
        ..Config::default()
    };
    let big = vec![1u8; 3 << 20];
    let (ev, _) = run_with(config, &frame(true, OpCode::Binary, &big));
    assert_eq!(ev, [Event::Message(Message::Binary(big.into()))]);
}

#[test]
fn after_close_nothing_is_sent_and_data_is_dropped_s11() {
    let now = Instant::now();
    let mut s = Session::new(Role::Server, Config::default(), now);
    s.send(&Frame::text("before"), now).unwrap();
    s.send(&Frame::close(1000u16, "some-reason"), now).unwrap();
    assert_eq!(
        s.send(&Frame::text("after"), now),
        Err(UsageError::SendAfterClose)
    );
    let mut out = Vec::new();
    s.take_transmit(&mut out);
    let mut expected = vec![0x81, 6];
    expected.extend_from_slice(b"before");
    expected.extend_from_slice(&server_close(1000, "some-reason"));
    assert_eq!(out, expected);
    // Data from the peer is dropped; its close completes the handshake.
    s.receive(&frame(true, OpCode::Text, b"dropped"), now);
    s.receive(&frame(true, OpCode::Close, b"\x03\xe8"), now);
    assert_eq!(
        s.poll_event(),
        Some(Event::Closed(Closed {
            code: CloseCode::NORMAL,
            reason: "some-reason".into(),
            cause: CloseCause::Local
        }))
    );
    assert_eq!(s.poll_event(), None);
    assert!(s.is_closed());
    assert_eq!(
        s.buffered_amount(),
        0,
        "no reply to the peer's close after ours"
    );
}

#[test]
fn invalid_close_codes_cannot_be_sent() {
    let now = Instant::now();
    let mut s = Session::new(Role::Server, Config::default(), now);
    assert_eq!(
        s.close(Some(CloseCode::ABNORMAL), "", now),
        Err(UsageError::InvalidCloseCode(1006))
    );
    assert_eq!(
        s.send(&Frame::Ping(vec![0u8; 126].into()), now),
        Err(UsageError::ControlFrameTooLong)
    );
    assert!(!s.is_closing());
}

#[test]
fn idle_timeout_closes_with_1000_s8_3() {
    let t0 = Instant::now();
    let config = Config {
        idle_timeout: Some(Duration::from_secs(30)),
        ..Config::default()
    };
    let mut s = Session::new(Role::Server, config, t0);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    // Data from the peer resets the timer.
    s.receive(
        &frame(true, OpCode::Text, b"hi"),
        t0 + Duration::from_secs(20),
    );
    s.poll_event();
    s.handle_timeout(t0 + Duration::from_secs(30));
    assert!(!s.is_closing());
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(50)));
    s.handle_timeout(t0 + Duration::from_secs(50));
    assert!(s.is_closing());
    let mut out = Vec::new();
    s.take_transmit(&mut out);
    assert_eq!(out, server_close(1000, "idle timeout"));
    // The peer never answers: dropped after the close timeout.
    let deadline = s.poll_timeout().unwrap();
    assert_eq!(deadline, t0 + Duration::from_secs(55));
    s.handle_timeout(deadline);
    assert_eq!(
        s.poll_event(),
        Some(Event::Closed(Closed {
            code: CloseCode::NORMAL,
            reason: "idle timeout".into(),
            cause: CloseCause::IdleTimeout
        }))
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn automatic_pong_goes_ahead_of_queued_data() {
    let now = Instant::now();
    let mut s = Session::new(Role::Server, Config::default(), now);
    s.send(&Frame::text("queued"), now).unwrap();
    s.receive(&frame(true, OpCode::Ping, b"!"), now);
    let mut out = Vec::new();
    s.take_transmit(&mut out);
    assert_eq!(&out[..3], [0x8a, 0x01, b'!']);
    assert_eq!(&out[3..], [&[0x81, 6][..], b"queued"].concat());
}

#[test]
fn eof_without_close_is_abnormal() {
    let now = Instant::now();
    let mut s = Session::new(Role::Server, Config::default(), now);
    s.receive(&frame(false, OpCode::Text, b"half"), now);
    s.receive_eof();
    assert_eq!(
        s.poll_event(),
        Some(Event::Closed(Closed {
            code: CloseCode::ABNORMAL,
            reason: String::new(),
            cause: CloseCause::Abnormal
        }))
    );
}

#[test]
fn hibernate_shrink_gives_buffers_back_s10() {
    let now = Instant::now();
    let mut s = Session::new(Role::Server, Config::default(), now);
    s.receive(&frame(true, OpCode::Binary, &[0u8; 5000]), now);
    s.receive(&frame(true, OpCode::Ping, b"x"), now);
    while s.poll_event().is_some() {}
    s.send(&Frame::binary(vec![0u8; 4000]), now).unwrap();
    let mut out = Vec::new();
    s.take_transmit(&mut out);
    assert!(s.heap_size() > 0);
    s.shrink();
    assert_eq!(s.heap_size(), 0);
    // A half-received message is kept.
    s.receive(&frame(false, OpCode::Binary, &[1u8; 100]), now);
    s.shrink();
    assert!(s.heap_size() >= 100);
}

#[test]
fn client_and_server_sessions_talk() {
    let now = Instant::now();
    let mut c = Session::new(Role::Client, Config::default(), now);
    let mut s = Session::new(Role::Server, Config::default(), now);
    c.send(&Frame::binary(vec![5u8; 1000]), now).unwrap();
    c.send(&Frame::Ping("hb".into()), now).unwrap();
    let mut wire = Vec::new();
    c.take_transmit(&mut wire);
    s.receive(&wire, now);
    assert_eq!(
        s.poll_event(),
        Some(Event::Message(Message::Binary(vec![5u8; 1000].into())))
    );
    assert_eq!(
        s.poll_event(),
        Some(Event::Message(Message::Ping("hb".into())))
    );
    let mut back = Vec::new();
    s.take_transmit(&mut back);
    c.receive(&back, now);
    assert_eq!(
        c.poll_event(),
        Some(Event::Message(Message::Pong("hb".into())))
    );
    // The client closes; the server echoes; both report the end.
    c.close(Some(CloseCode::GOING_AWAY), "bye", now).unwrap();
    wire.clear();
    c.take_transmit(&mut wire);
    s.receive(&wire, now);
    assert!(matches!(
        s.poll_event(),
        Some(Event::Closed(Closed {
            cause: CloseCause::Remote,
            ..
        }))
    ));
    back.clear();
    s.take_transmit(&mut back);
    c.receive(&back, now);
    assert_eq!(
        c.poll_event(),
        Some(Event::Closed(Closed {
            code: CloseCode::GOING_AWAY,
            reason: "bye".into(),
            cause: CloseCause::Local
        }))
    );
}

#[test]
fn messages_before_a_violation_are_delivered_and_answered_first() {
    // Autobahn 3.2 / 4.1.3 / 5.15: a good message, then a bad frame, in one
    // read. The good message is delivered, and a reply to it goes out before
    // the close frame.
    let now = Instant::now();
    let mut s = Session::new(Role::Server, Config::default(), now);
    let mut bad = frame(true, OpCode::Text, b"x");
    bad[0] |= 0x20;
    s.receive(
        &cat(&[
            frame(true, OpCode::Text, b"first"),
            bad,
            frame(true, OpCode::Ping, b""),
        ]),
        now,
    );
    assert_eq!(s.poll_event(), Some(text("first")));
    s.send(&Frame::text("first"), now).unwrap();
    assert_eq!(s.poll_event(), Some(failed(ProtocolError::ReservedBits)));
    let mut out = Vec::new();
    s.take_transmit(&mut out);
    let reply = [&[0x81, 5][..], b"first"].concat();
    assert_eq!(
        out,
        [reply, server_close(1002, "reserved bits set")].concat()
    );
}

#[test]
fn discard_unsent_puts_a_close_next_in_line() {
    let now = Instant::now();
    let mut s = Session::new(Role::Server, Config::default(), now);
    s.send(&Frame::binary(vec![1u8; 100]), now).unwrap();
    let mut out = Vec::new();
    s.take_transmit(&mut out); // on its way
    s.send(&Frame::binary(vec![2u8; 1000]), now).unwrap();
    s.send(&Frame::binary(vec![3u8; 1000]), now).unwrap();
    assert_eq!(s.discard_unsent(), 2 * (4 + 1000));
    s.close(Some(CloseCode::POLICY_VIOLATION), "send queue full", now)
        .unwrap();
    let mut next = Vec::new();
    s.take_transmit(&mut next);
    assert_eq!(next, server_close(1008, "send queue full"));
}

/// Large payloads are queued by reference (`SPLICE_MIN`) and small frames
/// copied, in one order: the peer decodes exactly what was sent, whether
/// the output is taken flat or spliced (RFC 6455 §5.2 framing unchanged).
#[test]
fn spliced_large_payloads_keep_frame_order() {
    use lariat_proto::session::SPLICE_MIN;
    use lariat_proto::{Config, Event, Frame, Message, Role, Session};
    let now = std::time::Instant::now();
    let frames = vec![
        Frame::text("a"),
        Frame::binary(vec![7u8; SPLICE_MIN]),
        Frame::binary(vec![8u8; SPLICE_MIN * 4 + 3]),
        Frame::text("b".repeat(SPLICE_MIN + 1)),
        Frame::Ping(bytes::Bytes::from_static(b"p")),
        Frame::binary(vec![9u8; 10]),
    ];
    for spliced in [false, true] {
        let unlimited = Config {
            max_frame_size: None,
            max_message_size: None,
            ..Config::default()
        };
        let mut server = Session::new(Role::Server, unlimited.clone(), now);
        for f in &frames {
            server.send(f, now).unwrap();
        }
        let mut wire = Vec::new();
        if spliced {
            let mut parts = Vec::new();
            server.take_transmit_spliced(&mut wire, &mut parts);
            assert_eq!(parts.len(), 3);
            // Put the payloads in at their offsets, last first.
            for (offset, bytes) in parts.into_iter().rev() {
                wire.splice(offset..offset, bytes.iter().copied());
            }
        } else {
            server.take_transmit(&mut wire);
        }
        let mut client = Session::new(Role::Client, unlimited, now);
        client.receive(&wire, now);
        let mut got = Vec::new();
        while let Some(Event::Message(m)) = client.poll_event() {
            got.push(m);
        }
        let want: Vec<Message> = frames
            .iter()
            .map(|f| match f {
                Frame::Text(t) => Message::Text(t.clone()),
                Frame::Binary(b) => Message::Binary(b.clone()),
                Frame::Ping(b) => Message::Ping(b.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, want, "spliced: {spliced}");
    }
}

/// Feed `input` through [`Session::payload_buffer`] wherever the session
/// lends it (in `chunk`-byte reads) and through `receive` elsewhere.
fn run_direct(input: &[u8], chunk: usize) -> (Vec<Event>, Vec<u8>) {
    let now = Instant::now();
    let mut s = Session::new(Role::Server, Config::default(), now);
    let mut at = 0;
    while at < input.len() {
        if let Some((buf, room)) = s.payload_buffer(1) {
            let n = room.min(chunk).min(input.len() - at);
            // Appending exactly `n` bytes is what a read into the spare
            // capacity does.
            buf.extend_from_slice(&input[at..at + n]);
            s.payload_received(n, now);
            at += n;
        } else {
            // A header (and whatever follows, up to `chunk`).
            let n = chunk.min(input.len() - at).min(7);
            s.receive(&input[at..at + n], now);
            at += n;
        }
    }
    let mut events = Vec::new();
    while let Some(e) = s.poll_event() {
        events.push(e);
    }
    let mut out = Vec::new();
    s.take_transmit(&mut out);
    (events, out)
}

/// Reading a large payload straight into the message buffer gives what
/// `receive` gives: unmasked (RFC 6455 §5.3) at any offset, UTF-8 checked
/// across reads (§8.1), fragments and pings between them (§5.4), and an
/// invalid byte still fails mid-frame with 1007.
#[test]
fn payload_read_in_place_equals_receive() {
    let big_text = "añb€c𝄞".repeat(9_000);
    let input = cat(&[
        frame(true, OpCode::Binary, &vec![0xa5; 70_000]),
        frame(false, OpCode::Text, &big_text.as_bytes()[..30_001]),
        frame(true, OpCode::Ping, b"mid"),
        frame(true, OpCode::Continuation, &big_text.as_bytes()[30_001..]),
        frame(true, OpCode::Text, b"small"),
    ]);
    let want = run(&input);
    assert_eq!(want.0.len(), 4, "{:?}", want.0.len());
    for chunk in [1, 3, 1000, 65_536, 1 << 20] {
        assert_eq!(run_direct(&input, chunk), want, "chunk {chunk}");
    }
    let mut bad = big_text.as_bytes().to_vec();
    bad[40_000] = 0xff;
    let input = frame(true, OpCode::Text, &bad);
    let want = run(&input);
    assert_eq!(want.0.last(), Some(&failed(ProtocolError::InvalidUtf8)));
    for chunk in [1, 4096, 1 << 20] {
        assert_eq!(run_direct(&input, chunk), want, "chunk {chunk}");
    }
}

/// S10 (hibernate): an idle session parks into a few words and resumes as if
/// nothing happened — settings, the idle clock and the rest of a fragmented
/// message's rules carry over; a session with anything in flight refuses.
#[test]
fn park_and_resume_keep_the_session_s10() {
    let t0 = Instant::now();
    let config = Config {
        max_frame_size: Some(10),
        idle_timeout: Some(Duration::from_secs(7)),
        ..Config::default()
    };
    let mut s = Session::new(Role::Server, config.clone(), t0);
    assert!(s.is_idle());
    // Half a frame: not idle, and park gives the session back.
    let hello = frame(true, OpCode::Text, b"hello");
    s.receive(&hello[..3], t0);
    assert!(!s.is_idle());
    let mut s = s.park().expect_err("a partial frame cannot be parked");
    let t1 = t0 + Duration::from_secs(1);
    s.receive(&hello[3..], t1);
    assert_eq!(s.poll_event(), Some(text("hello")));
    // A reply not yet taken: still not idle.
    s.send(&Frame::text("hi"), t1).unwrap();
    assert!(s.park().is_err_and(|mut s| {
        let mut out = Vec::new();
        s.take_transmit(&mut out);
        out == [0x81, 0x02, b'h', b'i']
    }));

    let mut s = Session::new(Role::Server, config.clone(), t0);
    s.receive(&hello, t1);
    assert_eq!(s.poll_event(), Some(text("hello")));
    let parked = s.park().expect("idle");
    assert!(std::mem::size_of_val(&parked) <= 48);
    // The idle clock runs from the last data, parked or not (S8.3).
    assert_eq!(parked.idle_deadline(), Some(t1 + Duration::from_secs(7)));
    let mut s = Session::resume(parked);
    assert_eq!(s.config(), &config);
    assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(7)));
    // The limits still hold: an 11-byte frame is too big (S9).
    s.receive(&frame(true, OpCode::Binary, &[0; 11]), t1);
    assert!(matches!(
        s.poll_event(),
        Some(Event::Closed(Closed {
            code: CloseCode::MESSAGE_TOO_BIG,
            ..
        }))
    ));
    // Default settings take no box.
    let s = Session::new(Role::Server, Config::default(), t0);
    let parked = s.park().unwrap();
    assert_eq!(Session::resume(parked).config(), &Config::default());
}

/// RFC 6455 §7.1.1: the driver may close TCP at once only when the peer has
/// finished sending: after its close frame (whether it began the closing or
/// answered ours) or its end of stream, not after we failed the connection
/// or gave up waiting for its answer.
#[test]
fn peer_finished_after_its_close_frame_or_eof_only_rfc6455_7_1_1() {
    let now = Instant::now();
    // The peer begins the closing handshake.
    let mut s = Session::new(Role::Server, Config::default(), now);
    assert!(!s.peer_finished());
    s.receive(&frame(true, OpCode::Close, b"\x03\xe8"), now);
    assert!(s.is_closed() && s.peer_finished());
    // We begin it; the peer answers.
    let mut s = Session::new(Role::Server, Config::default(), now);
    s.send(&Frame::close(1000u16, ""), now).unwrap();
    assert!(
        !s.peer_finished(),
        "our close alone does not finish the peer"
    );
    s.receive(&frame(true, OpCode::Close, b"\x03\xe8"), now);
    assert!(s.is_closed() && s.peer_finished());
    // We begin it; the peer never answers (the close timeout falls).
    let mut s = Session::new(Role::Server, Config::default(), now);
    s.send(&Frame::close(1000u16, ""), now).unwrap();
    s.handle_timeout(now + Duration::from_secs(3600));
    assert!(s.is_closed() && !s.peer_finished());
    // The peer breaks the protocol (§5.2: a reserved opcode): failed, and
    // it may still be sending.
    let mut s = Session::new(Role::Server, Config::default(), now);
    s.receive(&[0x83, 0x80, 1, 2, 3, 4], now);
    while s.poll_event().is_some() {}
    assert!(s.is_closed() && !s.peer_finished());
    // The stream ends.
    let mut s = Session::new(Role::Server, Config::default(), now);
    s.receive_eof();
    assert!(s.is_closed() && s.peer_finished());
}

/// An echoed payload, handed back once sent, is the buffer the next message
/// is read into (no allocation per echo); it stays while the connection
/// waits, and hibernation (S10) gives it back. A payload still held elsewhere,
/// or too large, is not taken.
#[test]
fn an_echoed_payload_is_read_into_again() {
    let now = Instant::now();
    let mut s = Session::new(Role::Server, Config::default(), now);
    let next = |s: &mut Session, payload: &[u8]| -> Message {
        s.receive(&frame(true, OpCode::Text, payload), now);
        match s.poll_event() {
            Some(Event::Message(m)) => m,
            e => panic!("expected a message, got {e:?}"),
        }
    };
    let Message::Text(first) = next(&mut s, b"first message") else {
        panic!("text")
    };
    s.send(&Frame::Text(first.clone()), now).unwrap();
    let at = first.as_bytes().as_ptr();
    let before = s.heap_size();
    s.recycle(first.into_bytes());
    s.release_message_buffer();
    assert_eq!(s.heap_size(), before + 13, "the recycled buffer stays");
    let Message::Text(second) = next(&mut s, b"second") else {
        panic!("text")
    };
    assert_eq!(second.as_str(), "second");
    assert_eq!(second.as_bytes().as_ptr(), at, "read into the same memory");
    let mut out = Vec::new();
    s.take_transmit(&mut out);
    assert_eq!(out, [&[0x81, 13][..], b"first message"].concat());

    // A recycled buffer that a shorter message leaves room in is still
    // handed out whole, and recycled again: every echo reuses it.
    s.recycle(second.clone().into_bytes()); // held by `second`: not taken
    let Message::Text(long) = next(&mut s, &[b'l'; 200]) else {
        panic!("text")
    };
    let at = long.as_bytes().as_ptr();
    s.recycle(long.into_bytes());
    for word in ["short", "tiny", "x"] {
        let Message::Text(t) = next(&mut s, word.as_bytes()) else {
            panic!("text")
        };
        assert_eq!((t.as_str(), t.as_bytes().as_ptr()), (word, at));
        s.recycle(t.into_bytes());
    }

    // Held elsewhere: not taken, and the next message is unaffected.
    let kept = second.clone();
    s.recycle(second.into_bytes());
    assert_eq!(kept.as_str(), "second");
    let Message::Text(third) = next(&mut s, b"third") else {
        panic!("text")
    };
    assert_eq!((third.as_str(), kept.as_str()), ("third", "second"));
    assert_ne!(third.as_bytes().as_ptr(), kept.as_bytes().as_ptr());

    // Too large to keep: the buffer is let go before the wait.
    let big = next(&mut s, &[b'x'; 1000]);
    let Message::Text(big) = big else {
        panic!("text")
    };
    s.release_message_buffer();
    let before = s.heap_size();
    s.recycle(big.into_bytes());
    s.release_message_buffer();
    assert_eq!(s.heap_size(), before);

    // Messages that arrived in one read share one allocation: the last of
    // them, even once it is the only one left, is not kept (it would keep
    // the whole allocation alive).
    s.receive(
        &cat(&[
            frame(true, OpCode::Binary, b"aaaa"),
            frame(true, OpCode::Binary, &[b'b'; 100]),
        ]),
        now,
    );
    let (Some(Event::Message(a)), Some(Event::Message(b))) = (s.poll_event(), s.poll_event())
    else {
        panic!("two messages")
    };
    drop(a);
    s.release_message_buffer();
    let before = s.heap_size();
    let Message::Binary(b) = b else {
        panic!("binary")
    };
    s.recycle(b);
    s.release_message_buffer();
    assert_eq!(s.heap_size(), before);

    // S10: hibernation gives a recycled buffer back.
    let Message::Text(small) = next(&mut s, b"small") else {
        panic!("text")
    };
    s.recycle(small.into_bytes());
    s.release_message_buffer();
    assert!(s.heap_size() > before);
    s.shrink();
    assert_eq!(s.heap_size(), 0);
}

/// §8.1 on short pieces, which take the ASCII shortcut when they can: a
/// non-ASCII byte in a short piece is still checked, and a code point cut
/// between two short pieces is still joined.
#[test]
fn short_text_pieces_are_still_validated_rfc6455_8_1() {
    let euro = "€".as_bytes();
    let msg = [b"price: 5".as_slice(), euro].concat();
    let (events, _) = run(&frame(true, OpCode::Text, &msg));
    assert_eq!(events, vec![text("price: 5€")]);
    let (events, _) = run(&cat(&[
        frame(
            false,
            OpCode::Text,
            &[b"ab".as_slice(), &euro[..2]].concat(),
        ),
        frame(
            true,
            OpCode::Continuation,
            &[&euro[2..], b"cd".as_slice()].concat(),
        ),
    ]));
    assert_eq!(events, vec![text("ab€cd")]);
    let (events, _) = run(&frame(true, OpCode::Text, b"abc\xc0\xafdef"));
    assert_eq!(events, vec![failed(ProtocolError::InvalidUtf8)]);
    let (events, _) = run(&frame(true, OpCode::Text, b"abc\xe2\x82"));
    assert_eq!(events, vec![failed(ProtocolError::InvalidUtf8)]);
}

/// The driver sizes reads by how much of a data frame's payload is still to
/// come (RFC 6455 §5.2: the header gives the length): nothing between
/// frames or in a control frame.
#[test]
fn data_frame_progress_follows_the_payload_rfc6455_5_2() {
    let now = Instant::now();
    let mut s = Session::new(Role::Server, Config::default(), now);
    assert_eq!(s.data_frame_progress(), None);
    let payload = vec![7u8; 70_000];
    let wire = frame(true, OpCode::Binary, &payload);
    let header = wire.len() - payload.len();
    s.receive(&wire[..header + 100], now);
    assert_eq!(s.data_frame_progress(), Some((69_900, 70_000)));
    s.receive(&wire[header + 100..header + 60_000], now);
    assert_eq!(s.data_frame_progress(), Some((10_000, 70_000)));
    s.receive(&wire[header + 60_000..], now);
    assert_eq!(s.data_frame_progress(), None, "between frames");
    let ping = frame(true, OpCode::Ping, b"12345678");
    s.receive(&ping[..ping.len() - 4], now);
    assert_eq!(s.data_frame_progress(), None, "in a control frame");
}
