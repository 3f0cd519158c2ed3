//! Cancel keys (DESIGN.md fact 6). Each client gets a random BackendKeyData from pgmux;
//! a CancelRequest carrying it is forwarded, with the server's real key, to the server
//! that client is using at that moment — and dropped when it holds none.
//!
//! Peering (PgBouncer's `peer_id` and `[peers]`): behind one address (SO_REUSEPORT, a
//! load balancer), a client's CancelRequest arrives on a new connection that may land on
//! another instance. With `peer_id` set, the 8-byte key (process id, then secret, both
//! big-endian) carries the instance's id the way PgBouncer lays it out, so mixed fleets
//! interoperate: byte 1 holds the low 8 bits of the peer id, byte 2 the high 6 bits,
//! and the low 2 bits of byte 7 a hop budget (TTL, starting at 3) that stops forwarding
//! loops between misconfigured peers. The sign bit of the process id is always clear
//! (some clients dislike negative pids); every other bit is random.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::BytesMut;
use dashmap::DashMap;
use rand::{Rng, RngExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::config::PeerSettings;
use crate::protocol::builders;
use crate::server::ServerTarget;

/// The hop budget bits in the last byte of a peered cancel key.
const TTL_MASK: u8 = 0x03;
/// A peer that does not take a forwarded cancel within this long is skipped.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// A client's cancel key as the 8 bytes of BackendKeyData.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct KeyBytes([u8; 8]);

impl KeyBytes {
    fn new(process_id: i32, secret: i32) -> Self {
        let mut bytes = [0; 8];
        bytes[..4].copy_from_slice(&process_id.to_be_bytes());
        bytes[4..].copy_from_slice(&secret.to_be_bytes());
        KeyBytes(bytes)
    }

    fn pair(self) -> (i32, i32) {
        let [a, b, c, d, e, f, g, h] = self.0;
        (
            i32::from_be_bytes([a, b, c, d]),
            i32::from_be_bytes([e, f, g, h]),
        )
    }

    /// A fresh random key for an instance with `peer_id` (0 = not peered).
    fn random(rng: &mut impl Rng, peer_id: u16) -> Self {
        let mut bytes: [u8; 8] = rng.random();
        bytes[0] &= 0x7F;
        if peer_id != 0 {
            let [low, high] = peer_id.to_le_bytes();
            bytes[1] = low;
            bytes[2] = high;
            bytes[7] |= TTL_MASK;
        }
        KeyBytes(bytes)
    }

    fn peer_id(self) -> u16 {
        u16::from_le_bytes([self.0[1], self.0[2]])
    }

    fn ttl(self) -> u8 {
        self.0[7] & TTL_MASK
    }

    fn with_ttl(mut self, ttl: u8) -> Self {
        self.0[7] = (self.0[7] & !TTL_MASK) | (ttl & TTL_MASK);
        self
    }
}

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
    /// This instance's `peer_id`, fixed for the life of the process: keys already handed
    /// out carry it.
    peer_id: u16,
    /// Where the other instances listen; replaced on reload.
    peers: ArcSwap<BTreeMap<u16, PeerSettings>>,
}

impl CancelMap {
    /// Keys drawn by this map carry `peer_id` (0 = peering disabled).
    pub fn new(peer_id: u16) -> Self {
        CancelMap {
            peer_id,
            ..CancelMap::default()
        }
    }

    /// The instances cancel requests for other peer ids are forwarded to.
    pub fn set_peers(&self, peers: &BTreeMap<u16, PeerSettings>) {
        self.peers.store(Arc::new(peers.clone()));
    }

    /// Draws an unused random key for a new client.
    pub fn register(&self) -> ((i32, i32), Arc<CancelSlot>) {
        let slot = Arc::new(CancelSlot::default());
        let mut rng = rand::rng();
        loop {
            let key = KeyBytes::random(&mut rng, self.peer_id).pair();
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

    /// Forwards a CancelRequest: to the server of the client holding the key, or, when
    /// the key names another peer, to that peer. A wrong key, or a client between
    /// transactions, does nothing.
    pub async fn cancel(&self, process_id: i32, secret: &[u8]) {
        let Ok(secret) = <[u8; 4]>::try_from(secret) else {
            return;
        };
        let mut key = KeyBytes::new(process_id, i32::from_be_bytes(secret));
        if self.peer_id != 0 {
            let owner = key.peer_id();
            if owner != self.peer_id && owner != 0 {
                self.forward(owner, key).await;
                return;
            }
            // Forwarding spent some of the hop budget; our copy has it whole.
            key = key.with_ttl(TTL_MASK);
        }
        let Some(server) = self
            .clients
            .get(&key.pair())
            .and_then(|slot| slot.current())
        else {
            tracing::debug!("cancel request for no active server");
            return;
        };
        if let Err(error) = send_cancel(&server).await {
            tracing::warn!("could not forward cancel request: {error}");
        }
    }
}

impl CancelMap {
    /// Passes the request on, as a plain CancelRequest with one hop less, to the peer
    /// whose client holds the key.
    async fn forward(&self, owner: u16, key: KeyBytes) {
        let ttl = key.ttl();
        if ttl == 0 {
            tracing::warn!(
                peer = owner,
                "cancel request not forwarded: hop budget spent (a loop between peers?)"
            );
            return;
        }
        let Some(peer) = self.peers.load().get(&owner).cloned() else {
            tracing::debug!(peer = owner, "cancel request for an unknown peer");
            return;
        };
        let (process_id, secret) = key.with_ttl(ttl - 1).pair();
        tracing::debug!(peer = owner, "forwarding cancel request");
        let sent = tokio::time::timeout(
            FORWARD_TIMEOUT,
            send_cancel_to(&peer.host, peer.port, process_id, secret),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::warn!(
                peer = owner,
                "could not forward cancel request to {}:{}",
                peer.host,
                peer.port
            );
        }
    }
}

async fn send_cancel(server: &ServerKey) -> std::io::Result<()> {
    let target = &server.target;
    send_cancel_to(
        &target.host,
        target.port,
        server.process_id,
        server.secret_key,
    )
    .await
}

/// One CancelRequest to a PostgreSQL server or a pgmux peer; a host starting with '/'
/// is a unix socket directory.
async fn send_cancel_to(
    host: &str,
    port: u16,
    process_id: i32,
    secret: i32,
) -> std::io::Result<()> {
    let mut packet = BytesMut::with_capacity(16);
    builders::cancel_request(&mut packet, process_id, secret);
    if host.starts_with('/') {
        let path = format!("{host}/.s.PGSQL.{port}");
        write_and_close(tokio::net::UnixStream::connect(path).await?, &packet).await
    } else {
        write_and_close(tokio::net::TcpStream::connect((host, port)).await?, &packet).await
    }
}

async fn write_and_close(
    mut socket: impl AsyncWrite + Unpin,
    packet: &[u8],
) -> std::io::Result<()> {
    socket.write_all(packet).await?;
    socket.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(peer_id: u16) -> Vec<KeyBytes> {
        let map = CancelMap::new(peer_id);
        (0..256)
            .map(|_| {
                let (key, _) = map.register();
                KeyBytes::new(key.0, key.1)
            })
            .collect()
    }

    /// Bits that were 1 in some key and 0 in another: the random ones.
    fn varying_bits(keys: &[KeyBytes]) -> u64 {
        let as_u64 = |key: &KeyBytes| u64::from_be_bytes(key.0);
        let ones = keys.iter().map(as_u64).fold(0, |acc, k| acc | k);
        let zeros = keys.iter().map(as_u64).fold(0, |acc, k| acc | !k);
        ones & zeros
    }

    #[test]
    fn unpeered_keys_are_random_but_for_the_pid_sign_bit() {
        let keys = keys(0);
        assert_eq!(varying_bits(&keys), !(1u64 << 63));
        assert!(keys.iter().all(|key| key.pair().0 >= 0));
    }

    #[test]
    fn peered_keys_carry_the_peer_id_and_a_full_ttl_and_are_random_elsewhere() {
        let keys = keys(12345);
        for key in &keys {
            assert_eq!(key.peer_id(), 12345);
            assert_eq!(key.ttl(), 3);
            assert!(key.pair().0 >= 0);
        }
        // Sign bit, bytes 1-2 (peer id) and the two TTL bits are fixed; 44 bits random.
        let fixed: u64 = (1 << 63) | (0xFFFF << 40) | 0b11;
        assert_eq!(varying_bits(&keys), !fixed);
    }

    #[test]
    fn the_largest_peer_id_fits_its_14_bits() {
        let key = keys(crate::config::MAX_PEER_ID)[0];
        assert_eq!(key.peer_id(), 16383);
        assert_eq!(key.0[2] & 0xC0, 0);
    }

    /// A listener standing in for a server or a peer; yields the packets it receives.
    async fn catcher() -> (u16, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (send, receive) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut packet = Vec::new();
                let _ = socket.read_to_end(&mut packet).await;
                let _ = send.send(packet);
            }
        });
        (port, receive)
    }

    fn packet(process_id: i32, secret: i32) -> Vec<u8> {
        let mut buf = BytesMut::new();
        builders::cancel_request(&mut buf, process_id, secret);
        buf.to_vec()
    }

    async fn next(receive: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) -> Option<Vec<u8>> {
        tokio::time::timeout(Duration::from_millis(500), receive.recv())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn a_key_forwarded_by_a_peer_reaches_the_clients_server() {
        let (port, mut server) = catcher().await;
        let map = CancelMap::new(7);
        let (key, slot) = map.register();
        slot.attach(ServerKey {
            target: Arc::new(ServerTarget {
                host: "127.0.0.1".into(),
                port,
                dbname: "db".into(),
                user: "u".into(),
                password: None,
                tls: crate::tls::ServerTls::disabled(),
            }),
            process_id: 4242,
            secret_key: -99,
        });
        // One hop spent on the way here.
        let (process_id, secret) = KeyBytes::new(key.0, key.1).with_ttl(2).pair();
        map.cancel(process_id, &secret.to_be_bytes()).await;
        assert_eq!(next(&mut server).await, Some(packet(4242, -99)));
    }

    #[tokio::test]
    async fn a_key_of_another_peer_goes_to_that_peer_with_one_hop_less() {
        let (port, mut peer) = catcher().await;
        let map = CancelMap::new(1);
        let peers = BTreeMap::from([(
            2,
            PeerSettings {
                id: 2,
                host: "127.0.0.1".into(),
                port,
            },
        )]);
        map.set_peers(&peers);
        let theirs = KeyBytes::random(&mut rand::rng(), 2);
        let (process_id, secret) = theirs.pair();
        map.cancel(process_id, &secret.to_be_bytes()).await;
        let (p, s) = theirs.with_ttl(2).pair();
        assert_eq!(next(&mut peer).await, Some(packet(p, s)));

        // Out of hops (a forwarding loop): dropped.
        let (process_id, secret) = theirs.with_ttl(0).pair();
        map.cancel(process_id, &secret.to_be_bytes()).await;
        assert_eq!(next(&mut peer).await, None);

        // A peer id nobody configured: dropped.
        let (process_id, secret) = KeyBytes::random(&mut rand::rng(), 3).pair();
        map.cancel(process_id, &secret.to_be_bytes()).await;
        assert_eq!(next(&mut peer).await, None);
    }
}
