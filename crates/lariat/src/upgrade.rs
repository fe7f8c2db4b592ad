//! What a route's init returns (S1): upgrade, with options, or a plain response.

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use lariat_proto::deflate::{DeflateConfig, DeflateParams};
use lariat_proto::Config;

use crate::handle::MailboxOverflow;
use crate::handler::Handler;
use crate::request::Response;

/// What happens to a frame sent while the send queue is over its hard limit
/// (a client that does not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendQueueFull {
    /// Close the connection with 1008 and end it (terminate gets
    /// [`TerminateReason::SlowConsumer`](crate::TerminateReason::SlowConsumer)). The default.
    #[default]
    Close,
    /// Drop the frame; the connection goes on. [`Context::dropped_frames`](crate::Context::dropped_frames) counts them.
    Drop,
}

/// Per-connection flow-control settings (not part of the protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flow {
    pub(crate) backpressure_limit: usize,
    pub(crate) send_queue_limit: usize,
    pub(crate) on_full: SendQueueFull,
    /// `usize::MAX`: unbounded (no Option: every connection keeps a Flow).
    pub(crate) mailbox_capacity: usize,
    pub(crate) mailbox_overflow: MailboxOverflow,
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            backpressure_limit: 64 * 1024,
            send_queue_limit: 1 << 20,
            on_full: SendQueueFull::Close,
            mailbox_capacity: usize::MAX,
            mailbox_overflow: MailboxOverflow::Reject,
        }
    }
}

/// The result of a route's init (S1): upgrade to WebSocket with a handler, or
/// answer plain HTTP (S2.2).
pub enum Init<H> {
    /// Perform the handshake at once (S1.1) and run `H` on the connection.
    Upgrade(Upgrade<H>),
    /// Answer with this response; no WebSocket.
    Respond(Response),
}

impl<H: Handler> Init<H> {
    /// Upgrade with default options.
    pub fn upgrade(handler: H) -> Init<H> {
        Init::Upgrade(Upgrade::new(handler))
    }

    /// Answer plain HTTP.
    pub fn respond(response: Response) -> Init<H> {
        Init::Respond(response)
    }
}

impl<H: Handler> From<Upgrade<H>> for Init<H> {
    fn from(u: Upgrade<H>) -> Init<H> {
        Init::Upgrade(u)
    }
}

impl<H: Handler> From<Response> for Init<H> {
    fn from(r: Response) -> Init<H> {
        Init::Respond(r)
    }
}

/// An upgrade, with its options (S8.3, S9) and subprotocol (S2.1).
///
/// ```
/// # use lariat::{Context, Handler, Message, Reply, Upgrade};
/// # struct Chat;
/// # impl Handler for Chat { type Info = ();
/// #   async fn handle(&mut self, _: Message, _: &mut Context<()>) -> Reply { Reply::ok() } }
/// use std::time::Duration;
/// let up = Upgrade::new(Chat)
///     .idle_timeout(Duration::from_secs(30))
///     .max_frame_size(8_000_000);
/// ```
pub struct Upgrade<H> {
    pub(crate) handler: H,
    pub(crate) protocol: Option<String>,
    pub(crate) config: Config,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) flow: Flow,
    pub(crate) deflate: Option<DeflateConfig>,
    /// What was agreed with the client, set by the server at the handshake.
    pub(crate) deflate_params: Option<DeflateParams>,
}

impl<H: Handler> Upgrade<H> {
    /// Upgrade to `handler` with the defaults: idle timeout 60 s (S8.3), frames
    /// and messages up to 1 MiB (S9), close handshake timeout 5 s.
    pub fn new(handler: H) -> Upgrade<H> {
        Upgrade {
            handler,
            protocol: None,
            config: Config::default(),
            headers: Vec::new(),
            flow: Flow::default(),
            deflate: None,
            deflate_params: None,
        }
    }

    /// Offer permessage-deflate (RFC 7692): when the client offers it, the
    /// first acceptable offer is taken with `config`; otherwise, or if no
    /// offer is acceptable, the connection goes on uncompressed.
    pub fn deflate(mut self, config: DeflateConfig) -> Self {
        self.deflate = Some(config);
        self
    }

    /// Answer with this subprotocol (S2.1). It must be one the client offered
    /// (S2.4): one that was not is left out of the response, with a warning.
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }

    /// Close the connection after this long without data from the client (S8.3).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = Some(timeout);
        self
    }

    /// Never close for idleness.
    pub fn no_idle_timeout(mut self) -> Self {
        self.config.idle_timeout = None;
        self
    }

    /// Largest frame payload accepted; bigger closes with 1009 (S9). Also
    /// raises the message limit to at least this.
    pub fn max_frame_size(mut self, bytes: u64) -> Self {
        self.config.max_frame_size = Some(bytes);
        if let Some(m) = self.config.max_message_size {
            self.config.max_message_size = Some(m.max(bytes));
        }
        self
    }

    /// Largest message accepted, fragments added up; bigger closes with 1009.
    pub fn max_message_size(mut self, bytes: u64) -> Self {
        self.config.max_message_size = Some(bytes);
        self
    }

    /// Most fragments one message may have; more closes with 1009.
    pub fn max_fragments(mut self, count: u32) -> Self {
        self.config.max_fragments = Some(count);
        self
    }

    /// Accept frames and messages of any size (Cowboy's historical default;
    /// memory is then bounded by nothing but the client's goodwill).
    pub fn unlimited_size(mut self) -> Self {
        self.config.max_frame_size = None;
        self.config.max_message_size = None;
        self
    }

    /// How long to wait for the client's close frame after sending ours.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.config.close_timeout = timeout;
        self
    }

    /// Add a header to the 101 response (Cowboy's `set_resp_header`).
    /// Ignored if name or value are not valid header text.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            self.headers.push((n, v));
        }
        self
    }

    /// Above this many bytes queued for the client and not yet written, the
    /// connection is *backpressured* ([`Context::is_backpressured`](crate::Context::is_backpressured)):
    /// it stops reading from the client (so a client that floods without
    /// reading its replies is slowed by TCP, not cut off), and once the queue
    /// drains below it again the handler's [`drain`](crate::Handler::drain)
    /// runs. Default: 64 KiB.
    pub fn backpressure_limit(mut self, bytes: usize) -> Self {
        self.flow.backpressure_limit = bytes;
        self
    }

    /// The hard limit of the send queue: a frame sent while more than this
    /// is queued gets `policy` (uWebSockets' `maxBackpressure`). Replies to
    /// the client's own messages rarely reach it (reading pauses at the
    /// backpressure limit); what does is data pushed at a client that does
    /// not read (messages to the handle, timers, broadcasts). One frame
    /// may take the queue past the limit, so the memory bound is the limit
    /// plus one frame. Default: 1 MiB, [`SendQueueFull::Close`].
    pub fn send_queue_limit(mut self, bytes: usize, policy: SendQueueFull) -> Self {
        self.flow.send_queue_limit = bytes;
        self.flow.on_full = policy;
        self
    }

    /// Bound the mailbox to `capacity` messages, with `policy` for a message
    /// that does not fit. Default: unbounded.
    pub fn mailbox_capacity(mut self, capacity: usize, policy: MailboxOverflow) -> Self {
        self.flow.mailbox_capacity = capacity;
        self.flow.mailbox_overflow = policy;
        self
    }

    /// The protocol options in force.
    pub fn config(&self) -> &Config {
        &self.config
    }
}
