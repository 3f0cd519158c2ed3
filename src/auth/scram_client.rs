//! The client side of SCRAM-SHA-256 driven by keys instead of a password: pgmux logs in
//! to PostgreSQL with the ClientKey a client proved to it in its own SCRAM exchange, as
//! PgBouncer does, so `[users]` needs only the `SCRAM-SHA-256$…` secret copied from
//! `pg_authid` and no plain-text password exists anywhere.
//!
//! It works when PostgreSQL stores the same secret (same salt and iteration count):
//! the keys are only valid for that salt, which is checked against server-first.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::secret::{hmac_sha256, sha256, ScramSecret};
use super::AuthError;

/// RFC 5802 client state, following postgres-protocol's `ScramSha256` call pattern:
/// `message()` → `update(server_first)` → `message()` → `finish(server_final)`.
pub struct ScramKeyClient {
    client_key: [u8; 32],
    secret: ScramSecret,
    client_first_bare: String,
    nonce: String,
    auth_message: Option<String>,
    message: Vec<u8>,
}

impl ScramKeyClient {
    pub fn new(client_key: [u8; 32], secret: ScramSecret) -> ScramKeyClient {
        let nonce = STANDARD.encode(rand::random::<[u8; 18]>());
        // PostgreSQL ignores the user name here (it comes from the startup packet).
        let client_first_bare = format!("n=,r={nonce}");
        let message = format!("n,,{client_first_bare}").into_bytes();
        ScramKeyClient {
            client_key,
            secret,
            client_first_bare,
            nonce,
            auth_message: None,
            message,
        }
    }

    /// The next message to send.
    pub fn message(&self) -> &[u8] {
        &self.message
    }

    /// Takes server-first and prepares client-final with the proof.
    pub fn update(&mut self, server_first: &[u8]) -> Result<(), AuthError> {
        let server_first =
            std::str::from_utf8(server_first).map_err(|_| malformed("server-first"))?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for field in server_first.split(',') {
            match field.split_once('=') {
                Some(("r", value)) => nonce = Some(value),
                Some(("s", value)) => {
                    salt = Some(STANDARD.decode(value).map_err(|_| malformed("salt"))?)
                }
                Some(("i", value)) => iterations = value.parse::<u32>().ok(),
                _ => {}
            }
        }
        let nonce = nonce
            .filter(|n| n.starts_with(&self.nonce))
            .ok_or_else(|| malformed("nonce"))?;
        if salt.as_deref() != Some(&self.secret.salt[..])
            || iterations != Some(self.secret.iterations)
        {
            return Err(AuthError::Unsupported(
                "the server's SCRAM secret differs from the one configured (salt or iterations)"
                    .into(),
            ));
        }
        let client_final_without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!(
            "{},{server_first},{client_final_without_proof}",
            self.client_first_bare
        );
        let signature = hmac_sha256(&sha256(&self.client_key), auth_message.as_bytes());
        let proof: Vec<u8> = self
            .client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        self.message =
            format!("{client_final_without_proof},p={}", STANDARD.encode(proof)).into_bytes();
        self.auth_message = Some(auth_message);
        Ok(())
    }

    /// Checks the server's signature: the server knows the same secret.
    pub fn finish(&self, server_final: &[u8]) -> Result<(), AuthError> {
        let auth_message = self
            .auth_message
            .as_ref()
            .ok_or_else(|| malformed("out of order"))?;
        let server_final =
            std::str::from_utf8(server_final).map_err(|_| malformed("server-final"))?;
        let verifier = server_final
            .strip_prefix("v=")
            .ok_or_else(|| malformed("server-final"))?;
        let expected = hmac_sha256(&self.secret.server_key, auth_message.as_bytes());
        match STANDARD.decode(verifier) {
            Ok(signature) if super::constant_time_eq(&signature, &expected) => Ok(()),
            _ => Err(AuthError::Failed),
        }
    }
}

fn malformed(what: &str) -> AuthError {
    AuthError::Malformed(format!("SCRAM {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ScramServer, Secret};

    /// A client proves a password to one ScramServer; the key it proved then logs in to
    /// another server holding the same secret, as PostgreSQL would.
    #[test]
    fn a_proven_client_key_logs_in_to_a_server_with_the_same_secret() {
        let secret = ScramSecret::generate("s3cret");
        let mut pgmux = ScramServer::new(&Secret::Scram(secret.clone())).unwrap();
        let mut client = postgres_protocol::authentication::sasl::ScramSha256::new(
            b"s3cret",
            postgres_protocol::authentication::sasl::ChannelBinding::unsupported(),
        );
        let first = pgmux.client_first(client.message()).unwrap();
        client.update(&first).unwrap();
        let last = pgmux.client_final(client.message()).unwrap();
        client.finish(&last).unwrap();
        let key = pgmux.client_key().expect("proven");

        let mut postgres = ScramServer::new(&Secret::Scram(secret.clone())).unwrap();
        let mut pgmux_as_client = ScramKeyClient::new(key, secret);
        let first = postgres.client_first(pgmux_as_client.message()).unwrap();
        pgmux_as_client.update(&first).unwrap();
        let last = postgres.client_final(pgmux_as_client.message()).unwrap();
        pgmux_as_client.finish(&last).unwrap();
    }

    #[test]
    fn a_different_server_secret_is_refused_before_any_proof_is_sent() {
        let mine = ScramSecret::generate("a");
        let theirs = ScramSecret::generate("a"); // same password, another salt
        let mut postgres = ScramServer::new(&Secret::Scram(theirs)).unwrap();
        let mut client = ScramKeyClient::new([7; 32], mine);
        let first = postgres.client_first(client.message()).unwrap();
        assert!(matches!(
            client.update(&first),
            Err(AuthError::Unsupported(_))
        ));
    }
}
