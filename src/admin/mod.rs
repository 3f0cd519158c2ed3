//! The admin console: the virtual database `pgbouncer` (alias `pgmux`) where operators
//! and PgBouncer tooling run `SHOW …` and control commands over the simple query
//! protocol.
//!
//! ```text
//! startup (database pgbouncer) ─▶ normal auth against [users] ─▶ admin_users / stats_users?
//!   ─▶ welcome ─▶ Query ─▶ split at ';' ─▶ parse ─▶ permission ─▶ execute ─▶ rows/notice
//!   ─▶ … ReadyForQuery
//! ```

mod commands;
mod config_table;
mod parse;
pub mod periodic;
mod reload;
mod result;
mod show;
mod show_databases_users;
mod show_pools;
mod show_prepared;
mod show_stats;
mod sockets;

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::context::Shared;
use crate::net::Stream;
use crate::protocol::builders::{self, Severity};
use crate::protocol::frame::{peek_whole, take_cstr};
use crate::registry::{ClientHandle, Endpoints, NewClient};
use parse::Command;
pub use reload::reload;
use result::ResultSet;
pub(crate) use show_pools::{pool_counts, ServerCounts};
pub(crate) use show_stats::per_database;

/// The pseudo pool the console's own clients are listed under, as in PgBouncer.
pub const CONSOLE_NAME: &str = "pgbouncer";
pub use crate::version::PGBOUNCER_VERSION;
/// Admin queries are short; anything larger is not a console command.
const MAX_QUERY: usize = 64 * 1024;

pub use crate::config::{is_console, ConsoleRole as Role};

/// An error the console reports (ERROR severity; the session goes on).
#[derive(Debug)]
pub(crate) struct AdminError {
    code: &'static str,
    message: String,
    /// More for the operator (the DETAIL field), e.g. why a RELOAD failed.
    detail: Option<String>,
}

impl AdminError {
    /// PgBouncer reports console errors with 08P01.
    fn new(message: impl Into<String>) -> AdminError {
        AdminError {
            code: crate::protocol::sqlstate::PROTOCOL_VIOLATION,
            message: message.into(),
            detail: None,
        }
    }

    /// A stats user tried a command only admins may run; PgBouncer's 08P01 too.
    fn denied() -> AdminError {
        AdminError::new("admin access needed")
    }
}

/// What a command answers.
pub(crate) enum Reply {
    Rows(ResultSet),
    /// CommandComplete with this tag.
    Done(String),
    /// A notice, then CommandComplete with the tag.
    Notice {
        text: String,
        detail: Option<String>,
        tag: String,
    },
    /// SHUTDOWN: no answer; the connection stays open until the process exits.
    Hang,
}

pub(crate) struct Console {
    pub shared: Arc<Shared>,
    pub role: Role,
    pub client: ClientHandle,
}

/// How a console session ended, for its closing log line.
pub struct Ended {
    pub reason: String,
    /// Whether the client was sent the reason as an error.
    pub told: bool,
}

impl Ended {
    fn quietly(reason: &str) -> Ended {
        Ended {
            reason: reason.to_owned(),
            told: false,
        }
    }

    fn told(reason: &str) -> Ended {
        Ended {
            reason: reason.to_owned(),
            told: true,
        }
    }
}

/// Serves one console session after login; `id` is the client's registry id.
pub async fn serve(
    shared: Arc<Shared>,
    mut stream: Stream,
    role: Role,
    user: String,
    id: u64,
) -> Ended {
    let endpoints = Endpoints::of(&stream, shared.settings().listen_port);
    let client = shared.registry.register(NewClient {
        id,
        database: CONSOLE_NAME,
        user: &user,
        pool_user: CONSOLE_NAME,
        endpoints,
        application_name: "",
    });
    client.info.set_active(0, None);
    let console = Console {
        shared,
        role,
        client,
    };
    let info = Arc::clone(&console.client.info);
    tokio::select! {
        ended = console.run(&mut stream) => ended,
        reason = info.killed() => {
            crate::net::send_fatal(&mut stream, crate::protocol::sqlstate::ADMIN_SHUTDOWN, &reason, None).await;
            Ended::told(&reason)
        }
    }
}

impl Console {
    async fn run(&self, stream: &mut Stream) -> Ended {
        use crate::logfmt::reason::{CLIENT_CLOSE_REQUEST, CLIENT_UNEXPECTED_EOF};
        let mut out = BytesMut::new();
        welcome(&mut out);
        if stream.write_all(&out).await.is_err() {
            return Ended::quietly(CLIENT_UNEXPECTED_EOF);
        }
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            let (tag, body) = match peek_whole(&buf, MAX_QUERY) {
                Ok(Some((tag, body, total))) => {
                    let body = body.to_vec();
                    buf.advance(total);
                    (tag, body)
                }
                Ok(None) => match stream.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return Ended::quietly(CLIENT_UNEXPECTED_EOF),
                    Ok(_) => continue,
                },
                Err(error) => {
                    let _ = fatal(stream, &error.to_string()).await;
                    return Ended::told(&error.to_string());
                }
            };
            let mut out = BytesMut::new();
            match tag {
                b'Q' => {
                    let query = take_cstr(&body).map(|(q, _)| q).unwrap_or("");
                    if !self.run_query(query, &mut out).await {
                        let _ = stream.write_all(&out).await;
                        // SHUTDOWN: hold the connection until the process exits.
                        std::future::pending::<()>().await;
                    }
                    builders::ready_for_query(&mut out, b'I');
                }
                b'X' => return Ended::quietly(CLIENT_CLOSE_REQUEST),
                b'P' | b'B' | b'E' => {
                    let _ = fatal(
                        stream,
                        "extended query protocol not supported by admin console",
                    )
                    .await;
                    return Ended::told("bad packet");
                }
                other => {
                    let text = format!(
                        "unsupported packet type for admin console: {}",
                        other as char
                    );
                    let _ = fatal(stream, &text).await;
                    return Ended::told("bad packet");
                }
            }
            if stream.write_all(&out).await.is_err() {
                return Ended::quietly(CLIENT_UNEXPECTED_EOF);
            }
        }
    }

    /// Runs every command of one query string, stopping at the first error, as a
    /// multi-statement simple query does in PostgreSQL. False: SHUTDOWN was issued.
    async fn run_query(&self, query: &str, out: &mut BytesMut) -> bool {
        let statements = parse::statements(query);
        if statements.is_empty() {
            result::empty_query(out);
        }
        for statement in statements {
            let reply = match parse::command(statement) {
                Some(command) => self.execute(command).await,
                None => Err(syntax_error(statement)),
            };
            match reply {
                Ok(Reply::Rows(set)) => set.write(out),
                Ok(Reply::Done(tag)) => result::command_complete(out, &tag),
                Ok(Reply::Notice { text, detail, tag }) => {
                    result::notice(out, &text, detail.as_deref());
                    result::command_complete(out, &tag);
                }
                Ok(Reply::Hang) => return false,
                Err(error) => {
                    if self.shared.settings().log_pooler_errors {
                        tracing::warn!(user = %self.client.info.user, "admin console: {}", error.message);
                    }
                    result::error(out, error.code, &error.message, error.detail.as_deref());
                    break;
                }
            }
        }
        true
    }

    async fn execute(&self, command: Command) -> Result<Reply, AdminError> {
        let (name, arg) = match command {
            Command::Set { key, value } => return config_table::set(self, &key, &value),
            Command::Plain { name, arg } => (name, arg),
        };
        if name == "show" || name == "select" {
            return show::show(self, &arg);
        }
        let known = [
            "pause",
            "resume",
            "suspend",
            "disable",
            "enable",
            "reconnect",
            "kill",
            "kill_client",
            "wait_close",
            "reload",
            "shutdown",
        ];
        if !known.contains(&name.as_str()) {
            return Err(syntax_error(&format!("{name} {arg}")));
        }
        self.require_admin()?;
        commands::run(self, &name, &arg).await
    }

    fn require_admin(&self) -> Result<(), AdminError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Stats => Err(AdminError::denied()),
        }
    }
}

fn syntax_error(statement: &str) -> AdminError {
    AdminError::new(format!(
        "invalid command '{}', use SHOW HELP;",
        statement.trim()
    ))
}

/// What PgBouncer's console reports at login; drivers read these.
fn welcome(out: &mut BytesMut) {
    builders::authentication_ok(out);
    for (name, value) in [
        ("server_version", format!("{PGBOUNCER_VERSION}/bouncer")),
        ("client_encoding", "UTF8".into()),
        ("server_encoding", "UTF8".into()),
        ("DateStyle", "ISO".into()),
        ("TimeZone", "GMT".into()),
        ("standard_conforming_strings", "on".into()),
        ("is_superuser", "on".into()),
    ] {
        builders::parameter_status(out, name, &value);
    }
    builders::backend_key_data(out, rand::random(), rand::random());
    builders::ready_for_query(out, b'I');
}

async fn fatal(stream: &mut Stream, message: &str) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    builders::error_response(
        &mut out,
        Severity::Fatal,
        crate::protocol::sqlstate::PROTOCOL_VIOLATION,
        message,
        None,
    );
    stream.write_all(&out).await
}
