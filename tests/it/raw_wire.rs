//! Just enough of the PostgreSQL wire protocol to talk to pgmux without a client
//! library: hand-built StartupMessages (for parameters libraries don't send), simple
//! queries, and readers that show the raw message tags a client would see.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Anything pgmux should answer promptly; longer means it hangs.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// StartupMessage for protocol 3.0 with the given name/value pairs.
pub fn startup_message(params: &[(&str, &str)]) -> Vec<u8> {
    crate::wire::startup_packet(196_608, params)
}

/// A tagged message: `tag` + length + `body`.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

pub fn cstr(s: &str) -> Vec<u8> {
    let mut out = s.as_bytes().to_vec();
    out.push(0);
    out
}

/// The fields of an ErrorResponse/NoticeResponse body: `C` → SQLSTATE, `M` → message…
pub fn error_fields(body: &[u8]) -> HashMap<char, String> {
    body.split(|b| *b == 0)
        .filter(|field| !field.is_empty())
        .map(|field| {
            (
                field[0] as char,
                String::from_utf8_lossy(&field[1..]).into_owned(),
            )
        })
        .collect()
}

/// A server error seen on the raw connection.
#[derive(Debug)]
pub struct RawError {
    pub code: String,
    pub message: String,
}

pub struct RawConn {
    stream: TcpStream,
}

impl RawConn {
    /// Connects and sends a StartupMessage; read the answer with [`RawConn::read`].
    pub async fn start(addr: SocketAddr, params: &[(&str, &str)]) -> RawConn {
        let mut stream = TcpStream::connect(addr).await.expect("connect to pgmux");
        stream
            .write_all(&startup_message(params))
            .await
            .expect("send startup");
        RawConn { stream }
    }

    /// Logs in to a pgmux with `auth_type = "trust"`: expects AuthenticationOk and
    /// returns once ReadyForQuery arrives, or the login error.
    pub async fn login(addr: SocketAddr, params: &[(&str, &str)]) -> Result<RawConn, RawError> {
        let mut conn = RawConn::start(addr, params).await;
        conn.read_until_ready().await?;
        Ok(conn)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local addr")
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send to pgmux");
    }

    /// The next message as (tag, body); None when pgmux closed the connection.
    pub async fn read(&mut self) -> Option<(u8, Vec<u8>)> {
        let read = async {
            let mut header = [0u8; 5];
            self.stream.read_exact(&mut header).await.ok()?;
            let len = u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
            assert!(len >= 4, "bad message length {len}");
            let mut body = vec![0u8; len - 4];
            self.stream.read_exact(&mut body).await.ok()?;
            Some((header[0], body))
        };
        tokio::time::timeout(READ_TIMEOUT, read)
            .await
            .unwrap_or_else(|_| panic!("no message from pgmux within {READ_TIMEOUT:?}"))
    }

    /// Reads up to ReadyForQuery; the first ErrorResponse on the way is returned as
    /// the error (after ReadyForQuery, or at once if the connection closes).
    pub async fn read_until_ready(&mut self) -> Result<Vec<(u8, Vec<u8>)>, RawError> {
        let mut messages = Vec::new();
        let mut error = None;
        loop {
            let Some((tag, body)) = self.read().await else {
                return Err(error.unwrap_or(RawError {
                    code: String::new(),
                    message: "connection closed".into(),
                }));
            };
            match tag {
                b'E' if error.is_none() => {
                    let fields = error_fields(&body);
                    error = Some(RawError {
                        code: fields.get(&'C').cloned().unwrap_or_default(),
                        message: fields.get(&'M').cloned().unwrap_or_default(),
                    });
                }
                b'Z' => {
                    return match error {
                        Some(error) => Err(error),
                        None => Ok(messages),
                    }
                }
                _ => messages.push((tag, body)),
            }
        }
    }

    /// Runs a simple query; the text values of every DataRow (NULL → None).
    pub async fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, RawError> {
        self.send(&message(b'Q', &cstr(sql))).await;
        let messages = self.read_until_ready().await?;
        Ok(messages
            .iter()
            .filter(|(tag, _)| *tag == b'D')
            .map(|(_, body)| data_row(body))
            .collect())
    }

    /// The single value of a one-row, one-column simple query.
    pub async fn query_value(&mut self, sql: &str) -> String {
        let rows = self
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows[0][0].clone().expect("non-null value")
    }
}

fn data_row(body: &[u8]) -> Vec<Option<String>> {
    let count = u16::from_be_bytes([body[0], body[1]]) as usize;
    let mut at = 2;
    let mut values = Vec::with_capacity(count);
    for _ in 0..count {
        let len = i32::from_be_bytes(body[at..at + 4].try_into().unwrap());
        at += 4;
        if len < 0 {
            values.push(None);
        } else {
            let len = len as usize;
            values.push(Some(
                String::from_utf8_lossy(&body[at..at + len]).into_owned(),
            ));
            at += len;
        }
    }
    values
}
