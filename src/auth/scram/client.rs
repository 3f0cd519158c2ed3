//! The client side of SCRAM-SHA-256 from keys instead of a password: after a client
//! proved a user's stored SCRAM secret to pgmux, its ClientKey (recovered from the proof)
//! and the secret's ServerKey log pgmux in to PostgreSQL, which holds the same verifier
//! (same salt and iteration count), without a plaintext password anywhere. PgBouncer
//! does the same for `auth_query` users.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use dashmap::DashMap;

use super::super::secret::{hmac_sha256, ScramSecret};
use super::{random_bytes, AuthError, TLS_SERVER_END_POINT};

/// ClientKeys proven by clients, by StoredKey (= H(ClientKey)): a key is only ever
/// stored under the verifier it was checked against, so entries cannot be confused.
fn proven() -> &'static DashMap<[u8; 32], [u8; 32]> {
    static PROVEN: OnceLock<DashMap<[u8; 32], [u8; 32]>> = OnceLock::new();
    PROVEN.get_or_init(DashMap::new)
}

/// Records the ClientKey a client just proved against `secret`.
pub fn remember_client_key(secret: &ScramSecret, client_key: [u8; 32]) {
    proven().insert(secret.stored_key, client_key);
}

/// A SCRAM-SHA-256 client that logs in with a stored secret plus a proven ClientKey.
pub struct ScramKeyClient {
    secret: ScramSecret,
    client_key: [u8; 32],
    gs2_header: String,
    /// Channel-binding data (`tls-server-end-point`) appended to the gs2-header in `c=`.
    binding: Vec<u8>,
    nonce: String,
    /// After server-first: the ServerSignature server-final must carry.
    expected_server_signature: Option<[u8; 32]>,
}

impl ScramKeyClient {
    /// None until some client has logged in to pgmux with this secret.
    /// `binding`: `Some(data)` to use SCRAM-SHA-256-PLUS with `tls-server-end-point`.
    pub fn new(secret: &ScramSecret, binding: Option<Vec<u8>>) -> Option<ScramKeyClient> {
        let client_key = *proven().get(&secret.stored_key)?;
        let (gs2_header, binding) = match binding {
            Some(data) => (format!("p={TLS_SERVER_END_POINT},,"), data),
            None => ("n,,".to_owned(), Vec::new()),
        };
        Some(ScramKeyClient {
            secret: secret.clone(),
            client_key,
            gs2_header,
            binding,
            nonce: STANDARD.encode(random_bytes::<18>()),
            expected_server_signature: None,
        })
    }

    fn client_first_bare(&self) -> String {
        format!("n=,r={}", self.nonce)
    }

    /// The client-first-message for SASLInitialResponse.
    pub fn client_first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2_header, self.client_first_bare()).into_bytes()
    }

    /// Takes server-first-message, returns client-final-message.
    pub fn server_first(&mut self, message: &[u8]) -> Result<Vec<u8>, AuthError> {
        let text = std::str::from_utf8(message).map_err(|_| malformed("not UTF-8"))?;
        let mut fields = text.split(',');
        let mut field = |name: &str| {
            fields
                .next()
                .and_then(|f| f.strip_prefix(name))
                .ok_or_else(|| malformed("server-first-message"))
        };
        let nonce = field("r=")?;
        let salt = STANDARD
            .decode(field("s=")?)
            .map_err(|_| malformed("salt"))?;
        let iterations: u32 = field("i=")?.parse().map_err(|_| malformed("iterations"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(malformed("server nonce does not extend ours"));
        }
        if salt != self.secret.salt || iterations != self.secret.iterations {
            return Err(AuthError::InvalidSecret(
                "PostgreSQL's SCRAM verifier for this user differs from the configured secret"
                    .into(),
            ));
        }
        let mut cbind = self.gs2_header.as_bytes().to_vec();
        cbind.extend_from_slice(&self.binding);
        let without_proof = format!("c={},r={nonce}", STANDARD.encode(cbind));
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare());
        let mut proof = hmac_sha256(&self.secret.stored_key, auth_message.as_bytes());
        proof
            .iter_mut()
            .zip(self.client_key)
            .for_each(|(p, k)| *p ^= k);
        self.expected_server_signature = Some(hmac_sha256(
            &self.secret.server_key,
            auth_message.as_bytes(),
        ));
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks server-final-message: the server knew the verifier too.
    pub fn server_final(&self, message: &[u8]) -> Result<(), AuthError> {
        let expected = self
            .expected_server_signature
            .ok_or_else(|| malformed("server-final before server-first"))?;
        let signature = std::str::from_utf8(message)
            .ok()
            .and_then(|m| m.strip_prefix("v="))
            .and_then(|v| STANDARD.decode(v).ok())
            .ok_or_else(|| malformed("server-final-message"))?;
        if super::super::constant_time_eq(&signature, &expected) {
            Ok(())
        } else {
            Err(AuthError::Failed)
        }
    }
}

fn malformed(what: &str) -> AuthError {
    AuthError::Malformed(format!("SCRAM from PostgreSQL: {what}"))
}

#[cfg(test)]
mod tests {
    use super::super::ScramServer;
    use super::*;
    use crate::auth::Secret;

    #[test]
    fn logs_in_with_a_proven_key_and_no_password() {
        let secret = ScramSecret::generate("key client test password");
        // A client proves the password to pgmux...
        let mut pgmux_side = ScramServer::new(&Secret::Scram(secret.clone())).unwrap();
        let mut app = postgres_protocol::authentication::sasl::ScramSha256::new(
            b"key client test password",
            postgres_protocol::authentication::sasl::ChannelBinding::unsupported(),
        );
        let first = pgmux_side.client_first(app.message()).unwrap();
        app.update(&first).unwrap();
        pgmux_side.client_final(app.message()).unwrap();
        remember_client_key(&secret, pgmux_side.client_key().unwrap());

        // ...and pgmux, knowing no password, logs in to a server with the same verifier.
        let mut server = ScramServer::new(&Secret::Scram(secret.clone())).unwrap();
        let mut client = ScramKeyClient::new(&secret, None).expect("key proven");
        let server_first = server.client_first(&client.client_first()).unwrap();
        let client_final = client.server_first(&server_first).unwrap();
        let server_final = server.client_final(&client_final).unwrap();
        client.server_final(&server_final).unwrap();
    }

    #[test]
    fn unknown_secret_has_no_key() {
        let secret = ScramSecret::generate("never proven");
        assert!(ScramKeyClient::new(&secret, None).is_none());
    }
}
