//! Sockets: one stream type for TCP and unix connections, both directions.
mod stream;
pub use stream::Stream;
