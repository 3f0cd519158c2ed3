//! ClientKeys that clients proved to pgmux, so that a user configured with only a
//! `SCRAM-SHA-256$…` secret can be logged in to PostgreSQL with
//! [`crate::auth::ScramKeyClient`]: no plaintext password anywhere.

use std::sync::OnceLock;

use dashmap::DashMap;

use super::super::secret::ScramSecret;

/// By StoredKey (= H(ClientKey)): a key is only ever stored under the verifier it was
/// checked against, so entries of different users or secrets cannot be confused, and a
/// changed secret simply finds no key until a client proves the new one.
fn proven() -> &'static DashMap<[u8; 32], [u8; 32]> {
    static PROVEN: OnceLock<DashMap<[u8; 32], [u8; 32]>> = OnceLock::new();
    PROVEN.get_or_init(DashMap::new)
}

/// Records the ClientKey a client just proved against `secret`.
pub fn remember_client_key(secret: &ScramSecret, client_key: [u8; 32]) {
    proven().insert(secret.stored_key, client_key);
}

/// The ClientKey some client proved for `secret`, if any has logged in since start.
pub fn proven_client_key(secret: &ScramSecret) -> Option<[u8; 32]> {
    proven().get(&secret.stored_key).map(|key| *key)
}
