//! The session: one WebSocket connection's protocol state, without I/O.
//!
//! Bytes and time go in; events and bytes come out. The driver (lariat's tokio
//! task, a test, a fuzzer) calls, in a loop:
//!
//! 1. [`Session::receive`] with whatever bytes arrived (any split: a byte at a
//!    time or many frames at once), or [`Session::receive_eof`] when the peer
//!    closed the stream;
//! 2. [`Session::poll_event`] until it returns `None`, acting on each event,
//!    and [`Session::send`] / [`Session::close`] for what it wants to send;
//! 3. [`Session::take_transmit`] and writes the bytes out (they coalesce every
//!    frame queued since the last call, so one write carries many frames);
//! 4. waits for more bytes, or until [`Session::poll_timeout`], then calls
//!    [`Session::handle_timeout`].
//!
//! When [`Session::is_closed`] is true and the transmit buffer is empty, the
//! driver closes the stream (RFC 6455 §7.1.1: the server closes TCP first).
//!
//! ```
//! use lariat_proto::{Session, Config, Role, Event, Message, Frame};
//! use std::time::Instant;
//! let now = Instant::now();
//! let mut server = Session::new(Role::Server, Config::default(), now);
//! // RFC 6455 §5.7: a masked "Hello".
//! server.receive(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58], now);
//! let Some(Event::Message(Message::Text(t))) = server.poll_event() else { panic!() };
//! assert_eq!(t, "Hello");
//! server.send(&Frame::text("Hi"), now).unwrap();
//! let mut out = Vec::new();
//! server.take_transmit(&mut out);
//! assert_eq!(out, [0x81, 0x02, b'H', b'i']);
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::close::{parse_close_payload, truncate_reason, CloseCode};
use crate::deflate::{Codec, DeflateConfig, DeflateParams};
use crate::error::{ProtocolError, UsageError};
use crate::frame::{decode_header, encode_header, FrameHeader, OpCode, Role, MAX_HEADER_LEN};
use crate::mask::apply_mask;
use crate::message::{Frame, Message, Text};
use crate::prepared::PreparedFrame;
use crate::utf8::Utf8Validator;

/// Limits and timers of a session. Every field can be changed while the
/// session runs (Cowboy's `set_options`) with [`Session::config_mut`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The largest frame payload accepted; a bigger one closes with 1009 (S9)
    /// as soon as its header is read. `None`: no limit.
    /// Default: 1 MiB.
    pub max_frame_size: Option<u64>,
    /// The largest message accepted, fragments added up; a bigger one closes
    /// with 1009. `None`: no limit. Default: 1 MiB.
    pub max_message_size: Option<u64>,
    /// The most fragments one message may have; more closes with 1009.
    /// `None`: no limit. Default: 16,384. Besides, every fragment after the
    /// first counts [`FRAGMENT_OVERHEAD`] bytes against `max_message_size`,
    /// so a flood of empty fragments is bounded even without this limit.
    pub max_fragments: Option<u32>,
    /// Close a connection that received nothing for this long (S8.3).
    /// `None`: never. Default: 60 s.
    pub idle_timeout: Option<Duration>,
    /// After sending a close frame, how long to wait for the peer's before
    /// dropping the connection. Default: 5 s.
    pub close_timeout: Duration,
}

/// 1 MiB: the default frame and message size limit.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 20;

/// What each fragment after a message's first counts against
/// [`Config::max_message_size`]: the cost of a frame header and its handling.
pub const FRAGMENT_OVERHEAD: u64 = 16;

/// Payloads (and pre-encoded frames) at least this long are queued by
/// reference, not copied into the output buffer; see
/// [`Session::take_transmit_spliced`].
pub const SPLICE_MIN: usize = 16 * 1024;

/// The most one [`Session::payload_buffer`] lends at a time.
const DIRECT_READ_MAX: usize = 256 * 1024;

/// Most room a small message takes for the messages after it in the same
/// read (see `begin_frame`): a kept message keeps at most this much alive.
const BATCH_ROOM_MAX: usize = 4096;

/// Largest buffer [`Session::recycle`] keeps for the next message: what a
/// connection that echoes small messages holds between them (hibernation
/// gives it back).
const RECYCLE_MAX: usize = 256;

/// The default [`Config::max_fragments`].
pub const DEFAULT_MAX_FRAGMENTS: u32 = 16_384;

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: Some(DEFAULT_MAX_SIZE),
            max_message_size: Some(DEFAULT_MAX_SIZE),
            max_fragments: Some(DEFAULT_MAX_FRAGMENTS),
            idle_timeout: Some(Duration::from_secs(60)),
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// Who or what ended the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCause {
    /// The peer sent a close frame first; the session answered it.
    Remote,
    /// This side sent a close frame first (the application asked).
    Local,
    /// The peer broke the protocol; the session failed the connection.
    Protocol(ProtocolError),
    /// Nothing arrived for the idle timeout (S8.3).
    IdleTimeout,
    /// The stream ended without a closing handshake that either side began.
    /// (When we began it and the peer never answered, or dropped the stream
    /// instead, the cause stays `Local` or `IdleTimeout`.)
    Abnormal,
}

/// The connection is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The code of the close: the peer's when it closed first (1005 when its
    /// frame had none), ours when we did (even if the peer never answered);
    /// 1006 when the stream ended with no close frame from either side.
    pub code: CloseCode,
    /// The reason that went with `code`.
    pub reason: String,
    /// What ended it.
    pub cause: CloseCause,
}

/// What the session reports to its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole message, ping or pong from the peer.
    Message(Message),
    /// The connection is closed; the last event.
    Closed(Closed),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// We sent a close frame and wait for the peer's, until the deadline.
    CloseSent {
        deadline: Instant,
    },
    Closed,
}

/// The frame whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct InFrame {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    /// Payload bytes still to come.
    remaining: u64,
    /// Payload bytes already read (for the mask phase).
    offset: usize,
    /// Data of a closing session is read and dropped.
    discard: bool,
}

/// One WebSocket connection's protocol state. See the [module docs](self).
#[derive(Debug)]
pub struct Session {
    role: Role,
    config: Config,
    state: State,
    rsv1_allowed: bool,

    header: [u8; MAX_HEADER_LEN],
    header_len: u8,
    frame: Option<InFrame>,

    /// The data message being assembled: its opcode, and its fragments so far.
    message_op: Option<OpCode>,
    /// The message being assembled is compressed (RSV1 on its first frame).
    message_compressed: bool,
    /// permessage-deflate, when negotiated (boxed: most sessions have none,
    /// and every idle connection carries this struct).
    deflate: Option<Box<Codec>>,
    /// Compress outgoing messages (Cowboy's `deflate` command turns it off).
    compress: bool,
    /// The peer will send nothing more: its close frame or the end of its
    /// stream arrived (see [`peer_finished`](Session::peer_finished)).
    peer_finished: bool,
    /// Compressed output before its header is known.
    scratch: Vec<u8>,
    message: BytesMut,
    /// `message` is the unshared buffer of an echoed message, handed back by
    /// [`recycle`](Session::recycle): kept while the connection waits.
    recycled: bool,
    /// Messages were split off `message`: it shares their allocation.
    message_split: bool,
    /// Where the last message handed out as a whole allocation starts (0:
    /// none); only that one may be recycled. The address's low 32 bits: the
    /// field then fits in the padding the struct has anyway, and two live
    /// allocations less than 4 GiB apart never share them. (Were two to
    /// match, the cost is bounded: a unique payload of at most 256 bytes
    /// whose allocation is larger would be kept while the connection waits.)
    handed_whole: u32,
    fragments: u32,
    utf8: Utf8Validator,
    control: Vec<u8>,

    events: VecDeque<Event>,
    /// Automatic replies (pongs): sent ahead of `data` not yet taken.
    urgent_out: Vec<u8>,
    data_out: Vec<u8>,
    /// Large payloads queued by reference, not copied: each goes at its
    /// offset of `data_out` (see [`take_transmit_spliced`](Self::take_transmit_spliced)).
    spliced: Vec<(usize, Bytes)>,

    /// A violation found in the input, applied once the events before it
    /// have been taken, so replies to earlier messages still go out first.
    failure: Option<ProtocolError>,
    /// The close frame we sent, and why: reported when the handshake ends.
    /// Boxed: only a closing session has one, and every session has the field.
    sent_close: Option<Box<(CloseCode, String, CloseCause)>>,
    last_activity: Instant,
    mask_seed: u64,
}

/// An idle session folded to the bone by [`Session::park`]: a few words,
/// with settings that differ from the defaults and the compression codec (if
/// any) in boxes of their own. [`Session::resume`] brings it back.
#[derive(Debug)]
pub struct ParkedSession {
    config: Option<Box<Config>>,
    deflate: Option<Box<Codec>>,
    last_activity: Instant,
    mask_seed: u64,
    role: Role,
    rsv1_allowed: bool,
    compress: bool,
}

impl ParkedSession {
    /// When the idle timeout (S8.3) falls, if there is one.
    pub fn idle_deadline(&self) -> Option<Instant> {
        let timeout = match &self.config {
            Some(c) => c.idle_timeout,
            None => Config::default().idle_timeout,
        };
        timeout.map(|t| self.last_activity + t)
    }
}

impl Session {
    /// A new open session (the handshake is done).
    pub fn new(role: Role, config: Config, now: Instant) -> Session {
        Session {
            role,
            config,
            state: State::Open,
            rsv1_allowed: false,
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            frame: None,
            message_op: None,
            message_compressed: false,
            deflate: None,
            compress: true,
            peer_finished: false,
            scratch: Vec::new(),
            message: BytesMut::new(),
            recycled: false,
            message_split: false,
            handed_whole: 0,
            fragments: 0,
            utf8: Utf8Validator::default(),
            control: Vec::new(),
            events: VecDeque::new(),
            urgent_out: Vec::new(),
            data_out: Vec::new(),
            spliced: Vec::new(),
            failure: None,
            sent_close: None,
            last_activity: now,
            mask_seed: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// When data last came from the peer (the idle timeout's start, S8.3).
    #[inline]
    pub fn last_activity(&self) -> Instant {
        self.last_activity
    }

    /// The limits and timers in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Change limits and timers while the session runs (Cowboy's `set_options`).
    /// A new limit applies from the next frame header.
    #[inline]
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// Use permessage-deflate with the agreed `params` (RFC 7692): RSV1 marks
    /// compressed messages both ways from now on.
    pub fn enable_deflate(&mut self, params: DeflateParams, config: &DeflateConfig) {
        self.deflate = Some(Box::new(Codec::new(params, config, self.role)));
        self.rsv1_allowed = true;
    }

    /// Is permessage-deflate in use?
    pub fn deflate_enabled(&self) -> bool {
        self.deflate.is_some()
    }

    /// Compress outgoing messages (when negotiated), or send them plain:
    /// Cowboy's `{deflate, false}`. Default: on.
    pub fn set_compression(&mut self, on: bool) {
        self.compress = on;
    }

    /// Seed the masking keys of a client-role session. (lariat serves; the
    /// client role exists for tests and tools, and its keys come from a
    /// xorshift generator, not a cryptographic one.)
    pub fn set_mask_seed(&mut self, seed: u64) {
        self.mask_seed = seed | 1;
    }

    /// True once the connection is over: nothing more will be read or queued.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// True once a close frame was sent or received: data may no longer be sent.
    #[inline]
    pub fn is_closing(&self) -> bool {
        self.state != State::Open
    }

    /// True once the peer has finished sending: its close frame (RFC 6455
    /// §5.5.1) or the end of its stream arrived. The driver may then close
    /// the socket at once after the last bytes (§7.1.1), without waiting for
    /// anything more from it.
    #[inline]
    pub fn peer_finished(&self) -> bool {
        self.peer_finished
    }

    /// Bytes queued for the peer and not yet taken by [`take_transmit`](Self::take_transmit).
    #[inline]
    pub fn buffered_amount(&self) -> usize {
        let queued = self.urgent_out.len() + self.data_out.len();
        if self.spliced.is_empty() {
            return queued;
        }
        queued + self.spliced.iter().map(|(_, b)| b.len()).sum::<usize>()
    }

    // ---------------------------------------------------------------- input

    /// Feed bytes received from the peer. Events become available from
    /// [`poll_event`](Self::poll_event). Bytes after the end of the connection
    /// are ignored.
    pub fn receive(&mut self, mut data: &[u8], now: Instant) {
        if !data.is_empty() {
            // S8.3: only data from the peer counts as activity.
            self.last_activity = now;
        }
        while !data.is_empty() && self.state != State::Closed && self.failure.is_none() {
            let step = match self.frame {
                None => self.read_header(data),
                Some(_) => self.read_payload(data),
            };
            match step {
                Ok(n) => data = &data[n..],
                Err(e) => {
                    self.note_failure(e);
                    return;
                }
            }
        }
    }

    /// Queue an event. The first one takes room for one only (a queue of
    /// four would be a 200-byte allocation kept by every connection that
    /// ever received a message); a reader of many frames at once grows it.
    #[inline]
    fn push_event(&mut self, e: Event) {
        if self.events.capacity() == 0 {
            self.events.reserve_exact(1);
        }
        self.events.push_back(e);
    }

    /// Everything after a violation is ignored; the connection fails once
    /// the events before it are taken.
    fn note_failure(&mut self, e: ProtocolError) {
        self.failure = Some(e);
        if self.events.is_empty() {
            self.fail(e);
        }
    }

    /// Zero-copy receive for large payloads: while the payload of a data
    /// frame with at least `min` bytes still to come is being read, the
    /// message buffer, and how many more bytes may be appended to it (at most
    /// the frame's remaining payload; the room is reserved). Read into its
    /// spare capacity, extend its length by exactly the bytes read, then call
    /// [`payload_received`](Self::payload_received). `None` otherwise: use
    /// [`receive`](Self::receive).
    pub fn payload_buffer(&mut self, min: usize) -> Option<(&mut BytesMut, usize)> {
        if self.failure.is_some() || self.state == State::Closed {
            return None;
        }
        let f = self.frame.as_ref()?;
        if f.opcode.is_control() || f.discard || f.remaining < min.max(1) as u64 {
            return None;
        }
        let room = f.remaining.min(DIRECT_READ_MAX as u64) as usize;
        self.message.reserve(room);
        Some((&mut self.message, room))
    }

    /// The data frame being read: its payload bytes still to come, and its
    /// whole payload length. `None` between frames, in a control frame, or
    /// once reading has failed. A driver reading large frames sizes a read
    /// that cannot go straight into the message buffer by it, so that the
    /// read ends just past the next frame's header and that frame's payload
    /// can.
    #[inline]
    pub fn data_frame_progress(&self) -> Option<(u64, u64)> {
        if self.failure.is_some() {
            return None;
        }
        self.frame
            .as_ref()
            .filter(|f| !f.opcode.is_control())
            .map(|f| (f.remaining, f.remaining + f.offset as u64))
    }

    /// `n` payload bytes were appended to the buffer that
    /// [`payload_buffer`](Self::payload_buffer) lent: take them as if they
    /// had come through [`receive`](Self::receive).
    pub fn payload_received(&mut self, n: usize, now: Instant) {
        if n == 0 {
            return;
        }
        self.last_activity = now;
        let start = self.message.len().saturating_sub(n);
        let fits = self
            .frame
            .as_ref()
            .is_some_and(|f| !f.opcode.is_control() && !f.discard && n as u64 <= f.remaining);
        assert!(fits, "payload_received without payload_buffer");
        if let Err(e) = self.payload_appended(start, n) {
            self.note_failure(e);
        }
    }

    /// The peer closed its end of the stream.
    pub fn receive_eof(&mut self) {
        self.peer_finished = true;
        if self.failure.is_some() {
            return;
        }
        match self.state {
            State::Closed => {}
            State::CloseSent { .. } => self.finish_close_sent(),
            State::Open => self.finish(Closed {
                code: CloseCode::ABNORMAL,
                reason: String::new(),
                cause: CloseCause::Abnormal,
            }),
        }
    }

    /// Take the next event.
    #[inline]
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        if event.is_none() {
            if let Some(e) = self.failure {
                if self.state != State::Closed {
                    self.fail(e);
                    return self.events.pop_front();
                }
            }
        }
        event
    }

    /// Parse a header from `data` (and any bytes of it kept from before).
    /// Returns how many bytes of `data` it used.
    fn read_header(&mut self, data: &[u8]) -> Result<usize, ProtocolError> {
        let kept = self.header_len as usize;
        let (header, used) = if kept == 0 {
            match decode_header(data, self.role, self.rsv1_allowed)? {
                Some((h, n)) => (h, n),
                None => {
                    // Less than a whole header: at most 13 bytes, kept.
                    self.header[..data.len()].copy_from_slice(data);
                    self.header_len = data.len() as u8;
                    return Ok(data.len());
                }
            }
        } else {
            let take = (MAX_HEADER_LEN - kept).min(data.len());
            self.header[kept..kept + take].copy_from_slice(&data[..take]);
            match decode_header(&self.header[..kept + take], self.role, self.rsv1_allowed)? {
                Some((h, n)) => {
                    self.header_len = 0;
                    (h, n - kept)
                }
                None => {
                    self.header_len = (kept + take) as u8;
                    return Ok(take);
                }
            }
        };
        self.begin_frame(header, data.len() - used)?;
        Ok(used)
    }

    /// Check a header against the message rules and the limits, before any of
    /// its payload is read.
    ///
    /// `following`: how many bytes of this read come after the header.
    fn begin_frame(&mut self, h: FrameHeader, following: usize) -> Result<(), ProtocolError> {
        let discard = self.state != State::Open && !h.opcode.is_control();
        if !h.opcode.is_control() && !discard {
            match (h.opcode, self.message_op) {
                // §5.4: a continuation needs a message to continue...
                (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
                // ...and a new message may not start inside another.
                (OpCode::Text | OpCode::Binary, Some(_)) => {
                    return Err(ProtocolError::ExpectedContinuation)
                }
                _ => {}
            }
            if let Some(max) = self.config.max_frame_size {
                if h.payload_len > max {
                    return Err(ProtocolError::FrameTooBig);
                }
            }
            if let Some(max) = self.config.max_message_size {
                let overhead = self.fragments as u64 * FRAGMENT_OVERHEAD;
                if self.message.len() as u64 + overhead + h.payload_len > max {
                    return Err(ProtocolError::MessageTooBig);
                }
            }
            if let Some(max) = self.config.max_fragments {
                if self.fragments >= max {
                    return Err(ProtocolError::TooManyFragments);
                }
            }
            self.fragments = self.fragments.saturating_add(1);
            if h.opcode != OpCode::Continuation {
                self.message_op = Some(h.opcode);
                self.message_compressed = h.rsv1;
            }
            // Grow with what arrives, not with what the header announces;
            // and take room for the rest of this read too: the messages it
            // holds are then split off one allocation, not one each (a
            // client that sends many small frames at once).
            let payload = h.payload_len.min(64 * 1024) as usize;
            self.message
                .reserve(payload.max(following.min(BATCH_ROOM_MAX)));
        }
        self.frame = Some(InFrame {
            opcode: h.opcode,
            fin: h.fin,
            mask: h.mask,
            remaining: h.payload_len,
            offset: 0,
            discard,
        });
        if h.payload_len == 0 {
            self.end_frame()?;
        }
        Ok(())
    }

    /// Read payload bytes of the current frame from `data`.
    fn read_payload(&mut self, data: &[u8]) -> Result<usize, ProtocolError> {
        let Some(f) = self.frame else {
            return Ok(0);
        };
        let take = (f.remaining.min(data.len() as u64)) as usize;
        let chunk = &data[..take];
        if f.opcode.is_control() {
            self.control.extend_from_slice(chunk);
            self.advance_frame(take)?;
        } else if f.discard {
            self.advance_frame(take)?;
        } else {
            let start = self.message.len();
            self.message.extend_from_slice(chunk);
            self.payload_appended(start, take)?;
        }
        Ok(take)
    }

    /// `n` bytes of the current data frame's payload are in the message at
    /// `start`, still masked: unmask and check them.
    fn payload_appended(&mut self, start: usize, n: usize) -> Result<(), ProtocolError> {
        let Some(f) = self.frame else {
            return Ok(());
        };
        let fresh = &mut self.message[start..start + n];
        if let Some(key) = f.mask {
            apply_mask(fresh, key, f.offset);
        }
        if self.message_op == Some(OpCode::Text) && !self.message_compressed {
            // §8.1, fail fast: mid-frame, before the message is complete.
            self.utf8
                .feed(fresh)
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        self.advance_frame(n)
    }

    /// The complete message in the message buffer, as `Bytes`. The whole
    /// buffer when little room is left after it (no allocation: a `BytesMut`
    /// that never shared its memory becomes `Bytes` as it is), or when it is
    /// a small recycled one (so that it can be recycled again); split off it
    /// when the rest of the room is for the messages after it in the same read.
    #[inline]
    fn take_message(&mut self, recycled: bool) -> Bytes {
        let room = self.message.capacity() - self.message.len();
        if room < 64 || (recycled && self.message.capacity() <= RECYCLE_MAX) {
            let whole = !std::mem::take(&mut self.message_split);
            let payload = std::mem::take(&mut self.message).freeze();
            self.handed_whole = if whole { payload.as_ptr() as u32 } else { 0 };
            payload
        } else {
            self.message_split = true;
            self.handed_whole = 0;
            self.message.split().freeze()
        }
    }

    /// `n` more payload bytes of the current frame were taken.
    fn advance_frame(&mut self, n: usize) -> Result<(), ProtocolError> {
        let Some(f) = self.frame.as_mut() else {
            return Ok(());
        };
        f.remaining -= n as u64;
        f.offset += n;
        if f.remaining == 0 {
            self.end_frame()?;
        }
        Ok(())
    }

    /// The current frame's payload is complete.
    fn end_frame(&mut self) -> Result<(), ProtocolError> {
        let Some(f) = self.frame.take() else {
            return Ok(());
        };
        match f.opcode {
            OpCode::Ping | OpCode::Pong | OpCode::Close => {
                if let Some(key) = f.mask {
                    apply_mask(&mut self.control, key, 0);
                }
                let result = self.end_control_frame(f.opcode);
                self.control.clear();
                result
            }
            _ if f.discard || !f.fin => Ok(()),
            _ => {
                let op = self.message_op.take();
                self.fragments = 0;
                let text = op == Some(OpCode::Text);
                // The buffer is handed out, or holds what was inflated.
                let recycled = std::mem::take(&mut self.recycled);
                self.handed_whole = 0;
                let payload = if std::mem::take(&mut self.message_compressed) {
                    // RFC 7692 §7.2.2: inflate, bounded by the message limit
                    // and checked as UTF-8 on the way.
                    let max = self.config.max_message_size;
                    let codec = self.deflate.as_mut().ok_or(ProtocolError::ReservedBits)?;
                    let plain = codec.decompress(&self.message, max, text)?;
                    self.message.clear();
                    Bytes::from(plain)
                } else {
                    if text {
                        self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                    }
                    self.take_message(recycled)
                };
                let message = if text {
                    Message::Text(Text::from_validated(payload))
                } else {
                    Message::Binary(payload)
                };
                self.push_event(Event::Message(message));
                Ok(())
            }
        }
    }

    fn end_control_frame(&mut self, opcode: OpCode) -> Result<(), ProtocolError> {
        match opcode {
            OpCode::Ping => {
                if self.state == State::Open {
                    // S8.1: answer every ping, ahead of queued data.
                    let mask = self.mask_key();
                    encode_frame(
                        &mut self.urgent_out,
                        OpCode::Pong,
                        false,
                        &self.control,
                        mask,
                    );
                    let payload = Bytes::copy_from_slice(&self.control);
                    self.push_event(Event::Message(Message::Ping(payload)));
                }
                Ok(())
            }
            OpCode::Pong => {
                if self.state == State::Open {
                    let payload = Bytes::copy_from_slice(&self.control);
                    self.push_event(Event::Message(Message::Pong(payload)));
                }
                Ok(())
            }
            _ => {
                let parsed = parse_close_payload(&self.control)?;
                let (code, reason) = match parsed {
                    Some((code, reason)) => (code, reason.to_owned()),
                    None => (CloseCode::NO_STATUS, String::new()),
                };
                // §5.5.1: nothing may follow the peer's close frame.
                self.peer_finished = true;
                match self.state {
                    State::Open => {
                        // §5.5.1: answer with a close frame, echoing the code.
                        let payload = match parsed {
                            Some((c, _)) => c.0.to_be_bytes().to_vec(),
                            None => Vec::new(),
                        };
                        let mask = self.mask_key();
                        encode_frame(&mut self.data_out, OpCode::Close, false, &payload, mask);
                        self.finish(Closed {
                            code,
                            reason,
                            cause: CloseCause::Remote,
                        });
                    }
                    // The closing handshake is complete.
                    State::CloseSent { .. } => self.finish_close_sent(),
                    State::Closed => {}
                }
                Ok(())
            }
        }
    }

    /// Fail the connection (RFC 6455 §7.1.7): send a close frame with the
    /// error's code, if none was sent yet, and end.
    fn fail(&mut self, e: ProtocolError) {
        let code = e.close_code();
        if self.state == State::Open {
            let mut payload = code.0.to_be_bytes().to_vec();
            payload.extend_from_slice(e.reason().as_bytes());
            let mask = self.mask_key();
            encode_frame(&mut self.data_out, OpCode::Close, false, &payload, mask);
        }
        self.finish(Closed {
            code,
            reason: e.reason().to_owned(),
            cause: CloseCause::Protocol(e),
        });
    }

    /// End a closing handshake we started: reported with our code and cause.
    fn finish_close_sent(&mut self) {
        let (code, reason, cause) = self.sent_close.take().map_or_else(
            || (CloseCode::NO_STATUS, String::new(), CloseCause::Local),
            |b| *b,
        );
        self.finish(Closed {
            code,
            reason,
            cause,
        });
    }

    fn finish(&mut self, closed: Closed) {
        self.state = State::Closed;
        self.frame = None;
        self.message_op = None;
        self.drop_message_buffer();
        self.control = Vec::new();
        self.push_event(Event::Closed(closed));
    }

    // --------------------------------------------------------------- output

    /// Queue a frame (S7.2, S7.3). A close frame starts the closing handshake
    /// (S11.2) and nothing may be sent after it (S11.3); `now` starts its timer.
    pub fn send(&mut self, frame: &Frame, now: Instant) -> Result<(), UsageError> {
        if self.state != State::Open {
            return Err(UsageError::SendAfterClose);
        }
        let (op, payload): (OpCode, &Bytes) = match frame {
            Frame::Text(t) => (OpCode::Text, t.as_bytes()),
            Frame::Binary(b) => (OpCode::Binary, b),
            Frame::Ping(b) => (OpCode::Ping, b),
            Frame::Pong(b) => (OpCode::Pong, b),
            Frame::Close(c) => {
                return match c {
                    Some(c) => self.close(Some(c.code), &c.reason, now),
                    None => self.close(None, "", now),
                };
            }
        };
        if op.is_control() && payload.len() > 125 {
            return Err(UsageError::ControlFrameTooLong);
        }
        self.send_data(op, payload);
        Ok(())
    }

    /// Queue a frame prepared for many sessions (pub/sub): a server without
    /// context takeover copies the shared encoding, compressed or not;
    /// otherwise the frame is encoded here as by [`send`](Self::send).
    pub fn send_prepared(&mut self, frame: &PreparedFrame) -> Result<(), UsageError> {
        if self.state != State::Open {
            return Err(UsageError::SendAfterClose);
        }
        let payload = frame.payload();
        if self.role == Role::Server {
            match self.deflate.as_mut() {
                Some(codec) if self.compress && codec.compresses(payload.len()) => {
                    if !codec.tx_takeover() {
                        match frame.compressed(codec) {
                            Some(bytes) => self.data_out.extend_from_slice(&bytes),
                            None => self.queue_encoded(frame.plain()),
                        }
                        return Ok(());
                    }
                }
                _ => {
                    self.queue_encoded(frame.plain());
                    return Ok(());
                }
            }
        }
        self.send_data(frame.opcode(), payload);
        Ok(())
    }

    /// Queue a whole encoded frame: by reference when large.
    fn queue_encoded(&mut self, frame: &Bytes) {
        if frame.len() >= SPLICE_MIN {
            self.spliced.push((self.data_out.len(), frame.clone()));
        } else {
            self.data_out.extend_from_slice(frame);
        }
    }

    /// Encode a text, binary, ping or pong frame onto the output, compressed
    /// when the message qualifies.
    fn send_data(&mut self, op: OpCode, payload: &Bytes) {
        let mask = self.mask_key();
        if let Some(codec) = self.deflate.as_mut() {
            if self.compress && !op.is_control() && codec.compresses(payload.len()) {
                self.scratch.clear();
                // Incompressible data would grow: without context takeover
                // nothing ties the peer's state to this message, so it may go
                // plain instead (RFC 7692 lets any message be uncompressed).
                let takeover = codec.tx_takeover();
                if codec.compress(payload, &mut self.scratch)
                    && (takeover || self.scratch.len() < payload.len())
                {
                    // RFC 7692 §6: RSV1 on the (only) frame of a compressed message.
                    encode_frame(&mut self.data_out, op, true, &self.scratch, mask);
                    return;
                }
            }
        }
        if mask.is_none() && payload.len() >= SPLICE_MIN {
            // The payload is not copied: only its header is written here.
            encode_header(
                &mut self.data_out,
                true,
                false,
                op,
                None,
                payload.len() as u64,
            );
            self.spliced.push((self.data_out.len(), payload.clone()));
            return;
        }
        encode_frame(&mut self.data_out, op, false, payload, mask);
    }

    /// Hand back the payload of a frame that [`send`](Self::send) has taken
    /// (copied into the output: a spliced payload is still shared and is not
    /// taken). If nothing else holds it, it is small (256 bytes at most) and no
    /// message is being read, its memory becomes the buffer the next message
    /// is read into, and stays while the connection waits: an echo then costs
    /// no allocation. Otherwise it is dropped.
    pub fn recycle(&mut self, payload: Bytes) {
        // Only the last message handed out whole, from its first byte: a
        // message split off a larger buffer would keep all of it alive.
        let whole = self.handed_whole != 0 && payload.as_ptr() as u32 == self.handed_whole;
        self.handed_whole = 0;
        if !whole
            || self.message.capacity() != 0
            || self.message_op.is_some()
            || payload.len() > RECYCLE_MAX
            || self.state != State::Open
        {
            return;
        }
        if let Ok(mut buf) = payload.try_into_mut() {
            if buf.capacity() <= RECYCLE_MAX {
                buf.clear();
                self.message = buf;
                self.recycled = true;
                self.message_split = false;
            }
        }
    }

    /// Start the closing handshake (S11.2, S11.4): queue a close frame with
    /// `code` and `reason` (cut to 123 bytes), stop sending, drop incoming
    /// data, and wait up to the close timeout for the peer's close frame.
    pub fn close(
        &mut self,
        code: Option<CloseCode>,
        reason: &str,
        now: Instant,
    ) -> Result<(), UsageError> {
        self.start_close(code, reason, now, CloseCause::Local)
    }

    fn start_close(
        &mut self,
        code: Option<CloseCode>,
        reason: &str,
        now: Instant,
        cause: CloseCause,
    ) -> Result<(), UsageError> {
        if self.state != State::Open {
            return Err(UsageError::SendAfterClose);
        }
        let mut payload = Vec::new();
        if let Some(code) = code {
            if !code.is_sendable() {
                return Err(UsageError::InvalidCloseCode(code.0));
            }
            payload.extend_from_slice(&code.0.to_be_bytes());
            payload.extend_from_slice(truncate_reason(reason).as_bytes());
        }
        let mask = self.mask_key();
        encode_frame(&mut self.data_out, OpCode::Close, false, &payload, mask);
        self.sent_close = Some(Box::new((
            code.unwrap_or(CloseCode::NO_STATUS),
            truncate_reason(reason).to_owned(),
            cause,
        )));
        self.state = State::CloseSent {
            deadline: now + self.config.close_timeout,
        };
        Ok(())
    }

    /// Drop the data frames queued and not yet taken by
    /// [`take_transmit`](Self::take_transmit) (whole frames only: what was
    /// taken may be on the wire already). For a peer that does not read, so
    /// that a close frame queued next is not stuck behind them. Returns the
    /// bytes dropped.
    pub fn discard_unsent(&mut self) -> usize {
        let n = self.data_out.len() + self.spliced.iter().map(|(_, b)| b.len()).sum::<usize>();
        self.data_out.clear();
        self.spliced.clear();
        n
    }

    /// Move every queued byte into `out`, automatic pongs first. When `out`
    /// is empty and no pong waits, the buffers are swapped, not copied
    /// (large payloads queued by reference are copied in at their place).
    pub fn take_transmit(&mut self, out: &mut Vec<u8>) {
        if self.spliced.is_empty() {
            let mut none = Vec::new();
            self.take_transmit_spliced(out, &mut none);
            return;
        }
        out.append(&mut self.urgent_out);
        let mut at = 0;
        for (offset, bytes) in self.spliced.drain(..) {
            out.extend_from_slice(&self.data_out[at..offset]);
            out.extend_from_slice(&bytes);
            at = offset;
        }
        out.extend_from_slice(&self.data_out[at..]);
        self.data_out.clear();
    }

    /// Like [`take_transmit`](Self::take_transmit), but large payloads
    /// (from [`SPLICE_MIN`] bytes) are not copied: each is added to
    /// `spliced` with the offset of `out` at which it goes, for a vectored
    /// write. Offsets are in increasing order; several may be equal.
    pub fn take_transmit_spliced(&mut self, out: &mut Vec<u8>, spliced: &mut Vec<(usize, Bytes)>) {
        let base = out.len() + self.urgent_out.len();
        if out.is_empty() && self.urgent_out.is_empty() {
            std::mem::swap(out, &mut self.data_out);
        } else {
            out.append(&mut self.urgent_out);
            out.append(&mut self.data_out);
        }
        if !self.spliced.is_empty() {
            spliced.extend(self.spliced.drain(..).map(|(o, b)| (o + base, b)));
        }
    }

    /// The key for the next frame we send: none for a server (§5.1).
    fn mask_key(&mut self) -> Option<[u8; 4]> {
        if self.role == Role::Server {
            return None;
        }
        let mut x = self.mask_seed;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.mask_seed = x;
        Some((x as u32).to_ne_bytes())
    }

    // ---------------------------------------------------------------- time

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    #[inline]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Open => self.config.idle_timeout.map(|t| self.last_activity + t),
            State::CloseSent { deadline } => Some(deadline),
            State::Closed => None,
        }
    }

    /// Let time pass: close an idle connection (S8.3), give up on a peer that
    /// does not answer our close frame.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Open => {
                if let Some(t) = self.config.idle_timeout {
                    if now >= self.last_activity + t {
                        // Cowboy closes an idle connection with 1000.
                        let _ = self.start_close(
                            Some(CloseCode::NORMAL),
                            "idle timeout",
                            now,
                            CloseCause::IdleTimeout,
                        );
                    }
                }
            }
            // The peer never answered our close frame: drop it.
            State::CloseSent { deadline } if now >= deadline => self.finish_close_sent(),
            _ => {}
        }
    }

    // ------------------------------------------------------------- memory

    /// Let the message buffer go if it holds nothing (no message is being
    /// received): the driver calls this before it waits, so that an idle
    /// connection does not keep the room its last read took (at most
    /// 4 KiB, shared with the messages split off it). A small buffer handed
    /// back by [`recycle`](Self::recycle) stays.
    #[inline]
    pub fn release_message_buffer(&mut self) {
        if self.message.is_empty() && self.message_op.is_none() && !self.recycled {
            self.drop_message_buffer();
        }
    }

    /// No message buffer: neither shared with split-off messages nor recycled.
    #[inline]
    fn drop_message_buffer(&mut self) {
        self.message = BytesMut::new();
        self.message_split = false;
        self.recycled = false;
    }

    /// Give back every buffer that holds nothing (S10: hibernate). Buffers
    /// holding part of a frame or message, or bytes not yet sent, are kept.
    pub fn shrink(&mut self) {
        if self.message.is_empty() && self.message_op.is_none() {
            self.drop_message_buffer();
        }
        if self.control.is_empty() {
            self.control = Vec::new();
        }
        if self.events.is_empty() {
            self.events = VecDeque::new();
        }
        if self.urgent_out.is_empty() {
            self.urgent_out = Vec::new();
        }
        if self.data_out.is_empty() {
            self.data_out = Vec::new();
        }
        if self.spliced.is_empty() {
            self.spliced = Vec::new();
        }
        self.scratch = Vec::new();
        if let Some(codec) = self.deflate.as_mut() {
            codec.shrink();
        }
    }

    /// True when nothing is in flight: open, no partial frame or message, no
    /// event untaken, nothing queued to send. Only then can the session be
    /// [parked](Self::park).
    #[inline]
    pub fn is_idle(&self) -> bool {
        self.state == State::Open
            && self.header_len == 0
            && self.frame.is_none()
            && self.message_op.is_none()
            && self.message.is_empty()
            && self.control.is_empty()
            && self.events.is_empty()
            && self.failure.is_none()
            && self.sent_close.is_none()
            && self.buffered_amount() == 0
    }

    /// Fold an [idle](Self::is_idle) session into what cannot be rebuilt —
    /// its role, settings, compression state and clock — and let every buffer
    /// go (S10: hibernate, to the bone). The session comes back unchanged
    /// when it is not idle.
    // The Err is the session handed back, as `TryFrom` would: boxing it would
    // cost an allocation for a check the caller has usually made.
    #[allow(clippy::result_large_err)]
    pub fn park(self) -> Result<ParkedSession, Session> {
        if !self.is_idle() {
            return Err(self);
        }
        let mut deflate = self.deflate;
        if let Some(codec) = deflate.as_mut() {
            codec.shrink();
        }
        let config = (self.config != Config::default()).then(|| Box::new(self.config));
        Ok(ParkedSession {
            config,
            deflate,
            last_activity: self.last_activity,
            mask_seed: self.mask_seed,
            role: self.role,
            rsv1_allowed: self.rsv1_allowed,
            compress: self.compress,
        })
    }

    /// Bring a parked session back: it goes on as if it had never been
    /// parked.
    pub fn resume(parked: ParkedSession) -> Session {
        let config = parked.config.map_or_else(Config::default, |c| *c);
        let mut s = Session::new(parked.role, config, parked.last_activity);
        s.deflate = parked.deflate;
        s.mask_seed = parked.mask_seed;
        s.rsv1_allowed = parked.rsv1_allowed;
        s.compress = parked.compress;
        s
    }

    /// Bytes of heap this session holds (buffers' capacity), for tests and
    /// the hibernate benchmark.
    pub fn heap_size(&self) -> usize {
        self.message.capacity()
            + self.control.capacity()
            + self.events.capacity() * std::mem::size_of::<Event>()
            + self.urgent_out.capacity()
            + self.data_out.capacity()
            + self.spliced.capacity() * std::mem::size_of::<(usize, Bytes)>()
            + self.scratch.capacity()
            + self
                .deflate
                .as_ref()
                .map_or(0, |d| std::mem::size_of::<Codec>() + d.owned_state())
    }
}

/// Append one unfragmented frame to `out` (RSV1 set for a compressed message).
fn encode_frame(out: &mut Vec<u8>, op: OpCode, rsv1: bool, payload: &[u8], mask: Option<[u8; 4]>) {
    encode_header(out, true, rsv1, op, mask, payload.len() as u64);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}
