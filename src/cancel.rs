//! Cancel keys (DESIGN.md fact 6). Each client gets a random BackendKeyData from pgmux;
//! a CancelRequest carrying it is forwarded, with the server's real key, to the server
//! that client is using at that moment — and dropped when it holds none.

use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use dashmap::DashMap;
use rand::RngExt;
use tokio::io::AsyncWriteExt;

use crate::protocol::builders;
use crate::server::ServerTarget;

/// Where a cancel for one client must go right now.
#[derive(Debug, Clone)]
pub struct ServerKey {
    pub target: Arc<ServerTarget>,
    pub process_id: i32,
    pub secret_key: i32,
}

/// One client's entry: which server (if any) it is using.
#[derive(Debug, Default)]
pub struct CancelSlot {
    server: Mutex<Option<ServerKey>>,
}

impl CancelSlot {
    pub fn attach(&self, key: ServerKey) {
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(key);
    }

    pub fn detach(&self) {
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn current(&self) -> Option<ServerKey> {
        self.server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[derive(Debug, Default)]
pub struct CancelMap {
    clients: DashMap<(i32, i32), Arc<CancelSlot>>,
}

impl CancelMap {
    /// Draws an unused random key for a new client.
    pub fn register(&self) -> ((i32, i32), Arc<CancelSlot>) {
        let slot = Arc::new(CancelSlot::default());
        let mut rng = rand::rng();
        loop {
            let key = (rng.random::<i32>() & i32::MAX, rng.random::<i32>());
            if let dashmap::Entry::Vacant(entry) = self.clients.entry(key) {
                entry.insert(Arc::clone(&slot));
                return (key, slot);
            }
        }
    }

    pub fn unregister(&self, key: (i32, i32)) {
        self.clients.remove(&key);
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Forwards a CancelRequest. A wrong key, or a client between transactions, does nothing.
    pub async fn cancel(&self, process_id: i32, secret: &[u8]) {
        let Ok(secret) = <[u8; 4]>::try_from(secret) else {
            return;
        };
        let key = (process_id, i32::from_be_bytes(secret));
        let Some(server) = self.clients.get(&key).and_then(|slot| slot.current()) else {
            tracing::debug!("cancel request for no active server");
            return;
        };
        if let Err(error) = send_cancel(&server).await {
            tracing::warn!("could not forward cancel request: {error}");
        }
    }
}

async fn send_cancel(server: &ServerKey) -> std::io::Result<()> {
    let mut packet = BytesMut::with_capacity(16);
    builders::cancel_request(&mut packet, server.process_id, server.secret_key);
    let target = &server.target;
    if target.host.starts_with('/') {
        let mut socket = tokio::net::UnixStream::connect(target.address()).await?;
        socket.write_all(&packet).await
    } else {
        let mut socket =
            tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await?;
        socket.write_all(&packet).await
    }
}
