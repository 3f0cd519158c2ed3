//! Server side of PostgreSQL client authentication: pgmux checking the
//! password a connecting client proves, with md5, cleartext or
//! SCRAM-SHA-256.
//!
//! Sans-IO: functions here take the bodies of the client's PasswordMessage,
//! SASLInitialResponse and SASLResponse (without the trailing NUL of a
//! PasswordMessage string) and return the payloads to put into
//! Authentication messages. Framing and sockets belong to the caller.
//!
//! Do not tell the client why authentication failed: every mismatch, and
//! every user that does not exist, must look like [`AuthError::Failed`]
//! (SQLSTATE 28P01). For SCRAM use [`ScramServer::for_unknown_user`] so that
//! the exchange of a missing user runs to the end like a real one.

mod password;
mod scram;
mod scram_client;
mod secret;

pub use password::{md5_hash, verify_cleartext, verify_md5};
pub use scram::ScramServer;
pub use scram_client::ScramKeyClient;
pub use secret::{ScramSecret, Secret};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The client's message breaks the protocol grammar.
    #[error("malformed authentication message: {0}")]
    Malformed(String),
    /// Wrong password, or no such user: deliberately indistinguishable.
    #[error("password authentication failed")]
    Failed,
    /// Well-formed, but asks for something pgmux does not implement.
    #[error("unsupported authentication request: {0}")]
    Unsupported(String),
    /// A stored secret from the configuration cannot be used.
    #[error("invalid stored password: {0}")]
    InvalidSecret(String),
}

impl AuthError {
    /// SQLSTATE for the ErrorResponse sent to the client, as PostgreSQL uses
    /// for the same condition.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            AuthError::Malformed(_) => "08P01",
            AuthError::Failed => "28P01",
            AuthError::Unsupported(_) => "0A000",
            AuthError::InvalidSecret(_) => "F0000",
        }
    }
}

/// Compares without an early exit, so response time does not reveal how many
/// leading bytes of a guessed proof or hash were right. Only the length is
/// public, and the lengths compared here are fixed by the protocol.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn errors_map_to_postgres_sqlstates() {
        assert_eq!(AuthError::Malformed(String::new()).sqlstate(), "08P01");
        assert_eq!(AuthError::Failed.sqlstate(), "28P01");
        assert_eq!(AuthError::Unsupported(String::new()).sqlstate(), "0A000");
        assert_eq!(
            AuthError::Failed.to_string(),
            "password authentication failed"
        );
    }
}
