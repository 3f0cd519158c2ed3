//! Statements pgmux runs with parameters of its own (auth_query): the extended protocol
//! keeps a value such as a client-chosen user name out of the SQL text, so it cannot
//! inject anything, whatever it contains.

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;
use tokio::io::AsyncWriteExt;

use super::{Row, ServerConn, ServerError};

/// Parameters are sent as text with their type left for the server to infer (OID 0),
/// as PgBouncer does for its auth_query.
const INFERRED_TYPE: u32 = 0;
const TEXT_FORMAT: i16 = 0;

impl ServerConn {
    /// Parse/Bind/Execute/Sync of `sql` on the unnamed statement with `params` as text
    /// values; returns the rows' text values. An ErrorResponse fails it, after the
    /// server's ReadyForQuery, so the connection stays usable.
    pub async fn query_with_params(
        &mut self,
        sql: &str,
        params: &[&str],
    ) -> Result<Vec<Row>, ServerError> {
        let mut out = BytesMut::new();
        let protocol = |e: std::io::Error| ServerError::Protocol(e.to_string());
        frontend::parse("", sql, params.iter().map(|_| INFERRED_TYPE), &mut out)
            .map_err(protocol)?;
        frontend::bind(
            "",
            "",
            [TEXT_FORMAT],
            params.iter().copied(),
            |value: &str, buf: &mut BytesMut| {
                buf.extend_from_slice(value.as_bytes());
                Ok(IsNull::No)
            },
            [TEXT_FORMAT],
            &mut out,
        )
        .map_err(|_| ServerError::Protocol("cannot encode a statement parameter".into()))?;
        frontend::execute("", 0, &mut out).map_err(protocol)?;
        frontend::sync(&mut out);
        self.stream.write_all(&out).await?;
        let (_, rows) = self.rows_until_ready().await?;
        Ok(rows)
    }
}
