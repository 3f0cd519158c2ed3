//! Stored credentials in the formats PostgreSQL keeps in `pg_authid.rolpassword`.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::AuthError;

const SCRAM_PREFIX: &str = "SCRAM-SHA-256$";
const MD5_PREFIX: &str = "md5";
const MD5_SECRET_LEN: usize = 35;

/// A user's stored credential from pooler.toml `[users.NAME] password = "..."`.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Plain(String),
    /// `"md5"` followed by 32 lowercase hex digits of md5(password + user).
    Md5(String),
    Scram(ScramSecret),
}

impl Secret {
    /// Classifies a stored password the way PostgreSQL's `get_password_type`
    /// does, except that a string announcing itself as a SCRAM secret but not
    /// parsing as one is an error rather than a plain password: in a config
    /// file that is a typo, not a password.
    pub fn parse(stored: &str) -> Result<Secret, AuthError> {
        if let Some(body) = stored.strip_prefix(SCRAM_PREFIX) {
            return ScramSecret::decode_body(body).map(Secret::Scram);
        }
        if is_md5_secret(stored) {
            return Ok(Secret::Md5(stored.to_owned()));
        }
        Ok(Secret::Plain(stored.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Plain(_) => f.write_str("Secret::Plain(<redacted>)"),
            Secret::Md5(_) => f.write_str("Secret::Md5(<redacted>)"),
            Secret::Scram(scram) => write!(f, "Secret::Scram({scram:?})"),
        }
    }
}

/// PostgreSQL accepts only lowercase hex here; anything else is a plain password.
fn is_md5_secret(stored: &str) -> bool {
    stored.len() == MD5_SECRET_LEN
        && stored.starts_with(MD5_PREFIX)
        && stored[MD5_PREFIX.len()..]
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A SCRAM-SHA-256 verifier: what the server keeps so that it can check a
/// client proof without knowing the password (RFC 5802 section 3).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramSecret {
    pub iterations: u32,
    pub salt: Vec<u8>,
    /// H(ClientKey): checks the ClientProof.
    pub stored_key: [u8; 32],
    /// Signs the server-final-message so the client knows the server holds the verifier.
    pub server_key: [u8; 32],
}

impl ScramSecret {
    pub const DEFAULT_ITERATIONS: u32 = 4096;

    /// Derives the verifier from a password, as PostgreSQL does on
    /// `CREATE ROLE ... PASSWORD`.
    ///
    /// PostgreSQL and libpq first normalise the password with SASLprep
    /// (RFC 4013), falling back to the raw bytes when it is not valid UTF-8 or
    /// contains prohibited characters. SASLprep leaves every ASCII string
    /// unchanged, so ASCII passwords match exactly; non-ASCII passwords are
    /// used unnormalised here and match only if SASLprep would not change them
    /// (non-ASCII spaces, soft hyphens or non-NFKC text would differ).
    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted_password = hi(password.as_bytes(), salt, iterations);
        Self::from_salted_password(&salted_password, salt.to_vec(), iterations)
    }

    /// A new verifier with a random 16-byte salt and 4096 iterations, like
    /// PostgreSQL's defaults. Normalises the password with full SASLprep.
    pub fn generate(password: &str) -> Self {
        let encoded = postgres_protocol::password::scram_sha_256(password.as_bytes());
        match Secret::parse(&encoded) {
            Ok(Secret::Scram(secret)) => secret,
            _ => unreachable!("postgres-protocol encodes SCRAM secrets in PostgreSQL's format"),
        }
    }

    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, the
    /// `pg_authid.rolpassword` format, accepted back by [`Secret::parse`].
    pub fn encode(&self) -> String {
        format!(
            "{SCRAM_PREFIX}{}:{}${}:{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(self.stored_key),
            STANDARD.encode(self.server_key),
        )
    }

    pub(super) fn from_salted_password(
        salted_password: &[u8; 32],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Self {
        let client_key = hmac_sha256(salted_password, b"Client Key");
        ScramSecret {
            iterations,
            salt,
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(salted_password, b"Server Key"),
        }
    }

    fn decode_body(body: &str) -> Result<Self, AuthError> {
        let invalid = |what: &str| AuthError::InvalidSecret(format!("SCRAM secret: {what}"));
        let (parameters, keys) = body
            .split_once('$')
            .ok_or_else(|| invalid("expected <iterations>:<salt>$<StoredKey>:<ServerKey>"))?;
        let (iterations, salt) = parameters
            .split_once(':')
            .ok_or_else(|| invalid("expected <iterations>:<salt>"))?;
        let (stored_key, server_key) = keys
            .split_once(':')
            .ok_or_else(|| invalid("expected <StoredKey>:<ServerKey>"))?;

        let iterations = iterations
            .parse::<u32>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| invalid("iteration count must be a positive integer"))?;
        let salt = STANDARD
            .decode(salt)
            .ok()
            .filter(|salt| !salt.is_empty())
            .ok_or_else(|| invalid("salt must be non-empty base64"))?;
        let decode_key = |key: &str| -> Result<[u8; 32], AuthError> {
            STANDARD
                .decode(key)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| invalid("keys must be 32 bytes of base64"))
        };
        Ok(ScramSecret {
            iterations,
            salt,
            stored_key: decode_key(stored_key)?,
            server_key: decode_key(server_key)?,
        })
    }
}

impl fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramSecret")
            .field("iterations", &self.iterations)
            .field("salt", &STANDARD.encode(&self.salt))
            .finish_non_exhaustive()
    }
}

/// Hi() of RFC 5802 section 2.2: PBKDF2 with HMAC-SHA-256 and one output
/// block, since the derived key is exactly one hash long.
pub(super) fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let keyed = Hmac::<Sha256>::new_from_slice(password).expect("HMAC accepts keys of any length");
    let mut block = keyed.clone();
    block.update(salt);
    block.update(&1u32.to_be_bytes());
    let mut previous: [u8; 32] = block.finalize().into_bytes().into();
    let mut result = previous;
    for _ in 1..iterations {
        let mut block = keyed.clone();
        block.update(&previous);
        previous = block.finalize().into_bytes().into();
        result.iter_mut().zip(previous).for_each(|(r, p)| *r ^= p);
    }
    result
}

pub(super) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub(super) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From postgres-protocol's own test of its password encryption.
    const SECRET_FOR_SECRET: &str = "SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32oY=:05L1f+yZbiN8O0AnO40Og85NNRhvzTS57naKRWCcsIA=";

    #[test]
    fn parses_plain_passwords() {
        for stored in ["hunter2", "", "md5", "md5short", "SCRAM-SHA-256"] {
            assert_eq!(Secret::parse(stored).unwrap(), Secret::Plain(stored.into()));
        }
    }

    #[test]
    fn parses_md5_secrets_only_with_lowercase_hex() {
        let md5 = "md54ab2c5d00339c4b2a4e921d2dc4edec7";
        assert_eq!(Secret::parse(md5).unwrap(), Secret::Md5(md5.into()));
        let upper = "md54AB2C5D00339C4B2A4E921D2DC4EDEC7";
        assert_eq!(Secret::parse(upper).unwrap(), Secret::Plain(upper.into()));
        let not_hex = "md54ab2c5d00339c4b2a4e921d2dc4edecz";
        assert_eq!(
            Secret::parse(not_hex).unwrap(),
            Secret::Plain(not_hex.into())
        );
        let too_long = "md54ab2c5d00339c4b2a4e921d2dc4edec70";
        assert_eq!(
            Secret::parse(too_long).unwrap(),
            Secret::Plain(too_long.into())
        );
    }

    #[test]
    fn parses_and_reencodes_scram_secrets() {
        let Secret::Scram(secret) = Secret::parse(SECRET_FOR_SECRET).unwrap() else {
            panic!("expected a SCRAM secret");
        };
        assert_eq!(secret.iterations, 4096);
        assert_eq!(secret.salt, (1..=16).collect::<Vec<u8>>());
        assert_eq!(secret.encode(), SECRET_FOR_SECRET);
    }

    #[test]
    fn rejects_malformed_scram_secrets() {
        let key = STANDARD.encode([7u8; 32]);
        let short_key = STANDARD.encode([7u8; 31]);
        let malformed = [
            "SCRAM-SHA-256$".to_owned(),
            format!("SCRAM-SHA-256$4096:AQID${key}"),
            format!("SCRAM-SHA-256$4096${key}:{key}"),
            format!("SCRAM-SHA-256$0:AQID${key}:{key}"),
            format!("SCRAM-SHA-256$-1:AQID${key}:{key}"),
            format!("SCRAM-SHA-256$many:AQID${key}:{key}"),
            format!("SCRAM-SHA-256$4096:${key}:{key}"),
            format!("SCRAM-SHA-256$4096:not*base64${key}:{key}"),
            format!("SCRAM-SHA-256$4096:AQID${short_key}:{key}"),
            format!("SCRAM-SHA-256$4096:AQID${key}:{short_key}"),
            format!("SCRAM-SHA-256$4096:AQID${key}:{key}:extra"),
        ];
        for stored in malformed {
            assert!(
                matches!(Secret::parse(&stored), Err(AuthError::InvalidSecret(_))),
                "{stored} should be rejected"
            );
        }
    }

    #[test]
    fn from_password_matches_known_postgres_secret() {
        let salt: Vec<u8> = (1..=16).collect();
        let secret = ScramSecret::from_password("secret", &salt, 4096);
        assert_eq!(secret.encode(), SECRET_FOR_SECRET);
    }

    #[test]
    fn from_password_matches_postgres_protocol_with_its_salt() {
        // SASLprep leaves these unchanged, the ASCII ones necessarily.
        for password in [
            "pencil",
            "correct horse battery staple",
            "p@ss,w=rd",
            "пароль",
        ] {
            let reference = postgres_protocol::password::scram_sha_256(password.as_bytes());
            let Secret::Scram(parsed) = Secret::parse(&reference).unwrap() else {
                panic!("expected a SCRAM secret");
            };
            let derived = ScramSecret::from_password(password, &parsed.salt, parsed.iterations);
            assert_eq!(derived.encode(), reference);
        }
    }

    #[test]
    fn generate_uses_fresh_salt_and_default_iterations() {
        let first = ScramSecret::generate("pw");
        let second = ScramSecret::generate("pw");
        assert_eq!(first.iterations, ScramSecret::DEFAULT_ITERATIONS);
        assert_eq!(first.salt.len(), 16);
        assert_ne!(first.salt, second.salt);
        assert_eq!(first, ScramSecret::from_password("pw", &first.salt, 4096));
    }

    #[test]
    fn debug_output_hides_password_material() {
        let plain = format!("{:?}", Secret::Plain("hunter2".into()));
        assert!(!plain.contains("hunter2"));
        let scram = ScramSecret::from_password("pw", b"salt", 1);
        let shown = format!("{:?}", Secret::Scram(scram.clone()));
        assert!(!shown.contains(&STANDARD.encode(scram.stored_key)));
        assert!(!shown.contains(&STANDARD.encode(scram.server_key)));
    }
}
