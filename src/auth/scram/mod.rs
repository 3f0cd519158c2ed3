//! Server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it:
//! the user name in client-first-message is ignored in favour of the startup
//! packet's, and channel binding (SCRAM-SHA-256-PLUS) is not offered.

mod messages;
#[cfg(test)]
mod tests;

use std::mem;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::Rng;

use super::secret::{hmac_sha256, sha256, ScramSecret, Secret};
use super::{constant_time_eq, AuthError};
use messages::{parse_client_final, parse_client_first};

/// Random bytes in the server's half of the nonce, as in PostgreSQL.
const SERVER_NONCE_BYTES: usize = 18;
const MOCK_SALT_BYTES: usize = 16;

pub struct ScramServer {
    secret: ScramSecret,
    /// Set for a user that does not exist or cannot use SCRAM: the exchange
    /// runs normally so the client cannot tell, then fails.
    doomed: bool,
    state: State,
}

enum State {
    AwaitingClientFirst,
    AwaitingClientFinal {
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    Authenticated {
        client_key: [u8; 32],
    },
    /// Failed or broken off; accepts no further messages.
    Ended,
}

impl ScramServer {
    pub const MECHANISM: &'static str = "SCRAM-SHA-256";

    /// A plain password gets a verifier with a fresh random salt on every
    /// call. That costs a PBKDF2 run per login and, since the salt changes
    /// between attempts while a stored verifier's does not, lets a client
    /// notice a plain-password user. Converting plain passwords once with
    /// [`ScramSecret::generate`] at config load avoids both.
    ///
    /// An md5 secret cannot produce SCRAM keys: `Unsupported`. To hide that
    /// from the client, continue with [`ScramServer::for_unknown_user`].
    pub fn new(secret: &Secret) -> Result<Self, AuthError> {
        let secret = match secret {
            Secret::Plain(password) => ScramSecret::generate(password),
            Secret::Scram(secret) => secret.clone(),
            Secret::Md5(_) => {
                return Err(AuthError::Unsupported(
                    "SCRAM-SHA-256 authentication with an md5-hashed stored password".into(),
                ))
            }
        };
        Ok(Self::with_secret(secret, false))
    }

    /// An exchange that ends in `Failed` but looks like a real one, for users
    /// that do not exist. As in PostgreSQL's mock authentication, the salt is
    /// derived from the user name and a per-process secret, so repeated
    /// attempts see the same salt just as they would for a real user.
    pub fn for_unknown_user(user: &str) -> Self {
        static MOCK_KEY: OnceLock<[u8; 32]> = OnceLock::new();
        let mock_key = MOCK_KEY.get_or_init(random_bytes::<32>);
        let salt = hmac_sha256(mock_key, user.as_bytes())[..MOCK_SALT_BYTES].to_vec();
        let secret = ScramSecret {
            iterations: ScramSecret::DEFAULT_ITERATIONS,
            salt,
            stored_key: random_bytes(),
            server_key: random_bytes(),
        };
        Self::with_secret(secret, true)
    }

    fn with_secret(secret: ScramSecret, doomed: bool) -> Self {
        ScramServer {
            secret,
            doomed,
            state: State::AwaitingClientFirst,
        }
    }

    /// Takes SASLInitialResponse's data (client-first-message) and returns
    /// the server-first-message for AuthenticationSASLContinue.
    pub fn client_first(&mut self, client_first: &[u8]) -> Result<Vec<u8>, AuthError> {
        let server_nonce = STANDARD.encode(random_bytes::<SERVER_NONCE_BYTES>());
        self.client_first_with_server_nonce(client_first, &server_nonce)
    }

    fn client_first_with_server_nonce(
        &mut self,
        client_first: &[u8],
        server_nonce: &str,
    ) -> Result<Vec<u8>, AuthError> {
        if !matches!(self.state, State::AwaitingClientFirst) {
            return Err(out_of_order("client-first-message"));
        }
        self.state = State::Ended;
        let client_first = parse_client_first(as_text(client_first)?)?;

        // RFC 5802 section 5.1: the server appends its own nonce so neither
        // side alone chooses the value both proofs are bound to.
        let nonce = format!("{}{server_nonce}", client_first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&self.secret.salt),
            self.secret.iterations
        );
        self.state = State::AwaitingClientFinal {
            gs2_header: client_first.gs2_header.to_owned(),
            client_first_bare: client_first.bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok(server_first.into_bytes())
    }

    /// Takes SASLResponse's data (client-final-message) and, only if the
    /// ClientProof verifies, returns the server-final-message (`v=...`) for
    /// AuthenticationSASLFinal. A wrong proof is `Failed`; PostgreSQL reports
    /// it with an ErrorResponse rather than an `e=` server-final-message.
    pub fn client_final(&mut self, client_final: &[u8]) -> Result<Vec<u8>, AuthError> {
        let State::AwaitingClientFinal {
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
        } = mem::replace(&mut self.state, State::Ended)
        else {
            return Err(out_of_order("client-final-message"));
        };
        let client_final = parse_client_final(as_text(client_final)?)?;

        // Without channel binding, c= carries just the gs2-header again;
        // a different one means a tampered or confused client-first-message.
        if client_final.channel_binding != gs2_header.as_bytes() {
            return Err(AuthError::Malformed(
                "SCRAM channel-binding attribute does not repeat the gs2-header".into(),
            ));
        }
        if client_final.nonce != nonce {
            return Err(AuthError::Malformed("SCRAM nonce does not match".into()));
        }

        // RFC 5802 section 3: AuthMessage binds the proof to this exchange;
        // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage), and the
        // client knew the password iff H(ClientKey) == StoredKey.
        let auth_message = format!(
            "{client_first_bare},{server_first},{}",
            client_final.without_proof
        );
        let client_signature = hmac_sha256(&self.secret.stored_key, auth_message.as_bytes());
        let mut client_key = client_final.proof;
        client_key
            .iter_mut()
            .zip(client_signature)
            .for_each(|(key, signature)| *key ^= signature);
        let proof_verifies = constant_time_eq(&sha256(&client_key), &self.secret.stored_key);
        if !proof_verifies || self.doomed {
            return Err(AuthError::Failed);
        }

        let server_signature = hmac_sha256(&self.secret.server_key, auth_message.as_bytes());
        self.state = State::Authenticated { client_key };
        Ok(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
    }

    /// After a successful exchange, the ClientKey the client proved. Since
    /// StoredKey = H(ClientKey), it suffices to compute a ClientProof towards
    /// a PostgreSQL server holding the same verifier (same salt and iteration
    /// count), logging in as this user without knowing the password. A
    /// [`Secret::Plain`] gets a fresh salt, so its ClientKey is of no use there.
    pub fn client_key(&self) -> Option<[u8; 32]> {
        match self.state {
            State::Authenticated { client_key } => Some(client_key),
            _ => None,
        }
    }
}

fn as_text(message: &[u8]) -> Result<&str, AuthError> {
    std::str::from_utf8(message)
        .map_err(|_| AuthError::Malformed("SCRAM message is not valid UTF-8".into()))
}

fn out_of_order(message: &str) -> AuthError {
    AuthError::Malformed(format!("unexpected SCRAM {message}"))
}

/// ThreadRng: a CSPRNG seeded from, and periodically reseeded by, the OS.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}
