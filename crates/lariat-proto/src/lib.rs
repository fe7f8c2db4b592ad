//! # lariat-proto
//!
//! lariat's WebSocket protocol core (RFC 6455): frames, masking, incremental
//! UTF-8, close codes, the opening handshake and the session state machine —
//! with no I/O, no async runtime and no clock. Bytes and time go in; events
//! and bytes come out. The `lariat` crate drives it over tokio; tests and
//! fuzzers drive it directly.
//!
//! ```
//! use lariat_proto::{Config, Event, Frame, Message, Role, Session};
//! use std::time::Instant;
//!
//! let now = Instant::now();
//! let mut client = Session::new(Role::Client, Config::default(), now);
//! let mut server = Session::new(Role::Server, Config::default(), now);
//!
//! client.send(&Frame::text("ping me"), now).unwrap();
//! let mut wire = Vec::new();
//! client.take_transmit(&mut wire);
//!
//! // Any split of the bytes gives the same events.
//! for byte in &wire {
//!     server.receive(std::slice::from_ref(byte), now);
//! }
//! assert_eq!(
//!     server.poll_event(),
//!     Some(Event::Message(Message::Text("ping me".into())))
//! );
//! ```
#![deny(missing_docs)]

pub mod close;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod prepared;
pub mod session;
pub mod utf8;

pub use close::CloseCode;
pub use error::{ProtocolError, UsageError};
pub use frame::{OpCode, Role};
pub use message::{CloseFrame, Frame, Message, Text};
pub use prepared::PreparedFrame;
pub use session::{CloseCause, Closed, Config, Event, ParkedSession, Session};
