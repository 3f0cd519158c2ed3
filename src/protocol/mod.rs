//! The PostgreSQL v3 wire protocol, as far as a pooler needs it: framing on `BytesMut`,
//! the startup packet, and builders for the messages pgmux writes itself. No sockets here.

pub mod builders;
pub mod frame;
pub mod sqlstate;
pub mod startup;

pub use frame::{FrameCursor, FrameError, Limits};
