//! Sockets: one stream type for TCP and unix connections, both directions.
mod peer;
mod stream;
pub use peer::{own_os_user, peer_os_user};
pub use stream::Stream;
