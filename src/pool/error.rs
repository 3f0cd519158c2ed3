//! What a checkout can fail with, and how a failed server login becomes one.

use crate::logfmt::reason;
use crate::protocol::sqlstate::PROTOCOL_VIOLATION;
use crate::server::ServerError;

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("query_wait_timeout")]
    QueryWaitTimeout,
    /// The server refused the login, or could not be reached: `code` is its SQLSTATE.
    #[error("{message}")]
    Server { code: String, message: String },
    #[error("database removed")]
    Closed,
}

pub(super) fn checkout_error(error: &ServerError) -> CheckoutError {
    match error {
        ServerError::Refused { code, message } => CheckoutError::Server {
            code: code.clone(),
            message: message.clone(),
        },
        // PgBouncer sends its own errors with 08P01, and this one is pgmux's.
        other => CheckoutError::Server {
            code: PROTOCOL_VIOLATION.to_owned(),
            message: format!("pgmux cannot connect to server: {other}"),
        },
    }
}

impl CheckoutError {
    pub(super) fn clone_for_waiter(&self) -> CheckoutError {
        match self {
            CheckoutError::QueryWaitTimeout => CheckoutError::QueryWaitTimeout,
            CheckoutError::Server { code, message } => CheckoutError::Server {
                code: code.clone(),
                message: message.clone(),
            },
            CheckoutError::Closed => CheckoutError::Closed,
        }
    }

    /// What a client arriving within `server_login_retry` of this failure is told.
    pub(super) fn cached(&self) -> CheckoutError {
        match self {
            CheckoutError::Server { message, .. } => CheckoutError::Server {
                code: PROTOCOL_VIOLATION.to_owned(),
                message: reason::login_failing(message),
            },
            other => other.clone_for_waiter(),
        }
    }
}
