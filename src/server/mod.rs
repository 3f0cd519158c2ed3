//! One backend connection: connect, log in, remember what the server reported
//! (ParameterStatus, BackendKeyData), and small request/response helpers for the
//! statements pgmux injects itself (parameter sync, health check, reset).

mod extended;
mod login;
pub mod prepared;

use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::Stream;
use crate::params::Params;
use crate::protocol::builders;
use crate::protocol::frame::{parameter_status, peek_whole, take_cstr};

pub use login::{connect, ServerTarget};

/// Largest message pgmux reads whole from a server on its own behalf.
const MAX_INJECTED_REPLY: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("could not connect to server: {0}")]
    Connect(std::io::Error),
    #[error("server connect timeout")]
    Timeout,
    #[error("{message}")]
    Refused { code: String, message: String },
    #[error("server login failed: {0}")]
    Login(String),
    #[error("server connection lost: {0}")]
    Io(#[from] std::io::Error),
    #[error("server closed the connection unexpectedly")]
    Closed,
    #[error("server protocol error: {0}")]
    Protocol(String),
    #[error("{0}")]
    Query(String),
}

/// A logged-in server connection, idle or serving one client.
#[derive(Debug)]
pub struct ServerConn {
    pub id: u64,
    pub stream: Stream,
    /// Bytes read from the server not yet relayed (normally empty between transactions).
    pub read_buf: BytesMut,
    /// What the server last reported through ParameterStatus.
    pub params: Params,
    pub process_id: i32,
    pub secret_key: i32,
    pub created_at: Instant,
    pub last_used: Instant,
    /// pgmux statements prepared on this server.
    pub statements: prepared::ServerStatements,
    /// Session settings a client made with SET (beyond the tracked parameters), as they
    /// now stand on this server.
    pub session: Params,
}

impl ServerConn {
    /// False when the server has closed or sent something while idle (a FATAL from
    /// `pg_terminate_backend`, a shutdown notice): such a server must not be handed out.
    pub fn is_idle_and_alive(&mut self) -> bool {
        if !self.read_buf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 64];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Runs a simple query of pgmux's own, consuming replies up to ReadyForQuery; returns
    /// its status byte. ParameterStatus updates are kept; an ErrorResponse fails it.
    pub async fn run_internal(&mut self, sql: &str) -> Result<u8, ServerError> {
        self.query_internal(sql).await.map(|(status, _)| status)
    }

    /// Like `run_internal`, also returning the rows' text values.
    pub async fn query_internal(&mut self, sql: &str) -> Result<(u8, Vec<Row>), ServerError> {
        let mut out = BytesMut::new();
        builders::query(&mut out, sql);
        self.stream.write_all(&out).await?;
        self.rows_until_ready().await
    }

    /// Reads the replies to statements just sent up to ReadyForQuery: the rows' text
    /// values and the transaction status, or the first error's message.
    pub(crate) async fn rows_until_ready(&mut self) -> Result<(u8, Vec<Row>), ServerError> {
        let mut failure = None;
        let mut rows = Vec::new();
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'Z' => {
                    let status = body.first().copied().unwrap_or(b'I');
                    return match failure {
                        Some(message) => Err(ServerError::Query(message)),
                        None => Ok((status, rows)),
                    };
                }
                b'D' => rows.push(data_row(&body)?),
                b'E' => failure = Some(error_message(&body)),
                b'S' => self.note_parameter(&body),
                // ParseComplete, BindComplete, CommandComplete, notices.
                _ => {}
            }
        }
    }

    /// Records a ParameterStatus body in `params`.
    pub fn note_parameter(&mut self, body: &[u8]) {
        if let Some((name, value)) = parameter_status(body) {
            self.params.set(name, value);
        }
    }

    /// Reads one whole message (cold paths only: login and injected statements).
    pub async fn read_message(&mut self) -> Result<(u8, BytesMut), ServerError> {
        loop {
            if let Some((_, _, total)) = peek_whole(&self.read_buf, MAX_INJECTED_REPLY)
                .map_err(|e| ServerError::Protocol(e.to_string()))?
            {
                let mut frame = self.read_buf.split_to(total);
                let tag = frame[0];
                let _ = frame.split_to(5);
                return Ok((tag, frame));
            }
            self.read_buf.reserve(8192);
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                return Err(ServerError::Closed);
            }
        }
    }

    /// Sends Terminate so the backend exits cleanly instead of logging an EOF, and waits
    /// (briefly) for it to close the socket: then the backend is really gone.
    pub async fn terminate(mut self) {
        let mut out = BytesMut::new();
        builders::terminate(&mut out);
        if self.stream.write_all(&out).await.is_err() {
            return;
        }
        let closed = async {
            let mut scratch = [0u8; 256];
            while matches!(self.stream.read(&mut scratch).await, Ok(n) if n > 0) {}
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), closed).await;
    }
}

/// The text values of one DataRow (NULL as None).
pub type Row = Vec<Option<String>>;

fn data_row(mut body: &[u8]) -> Result<Row, ServerError> {
    let malformed = || ServerError::Protocol("malformed DataRow".into());
    if body.len() < 2 {
        return Err(malformed());
    }
    let count = body.get_i16();
    let mut row = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        if body.len() < 4 {
            return Err(malformed());
        }
        let length = body.get_i32();
        if length < 0 {
            row.push(None);
            continue;
        }
        let length = length as usize;
        if body.len() < length {
            return Err(malformed());
        }
        row.push(Some(String::from_utf8_lossy(&body[..length]).into_owned()));
        body.advance(length);
    }
    Ok(row)
}

/// The `M` (message) field of an ErrorResponse/NoticeResponse body.
pub fn error_message(body: &[u8]) -> String {
    error_field(body, b'M')
        .unwrap_or("unknown server error")
        .to_owned()
}

/// One field of an ErrorResponse/NoticeResponse body, borrowed: the relay reads the
/// severity of every ErrorResponse it forwards.
pub fn error_field(mut body: &[u8], wanted: u8) -> Option<&str> {
    while let Some((&field, rest)) = body.split_first() {
        if field == 0 {
            break;
        }
        let (value, rest) = take_cstr(rest)?;
        if field == wanted {
            return Some(value);
        }
        body = rest;
    }
    None
}
