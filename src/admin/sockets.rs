//! SHOW CLIENTS / SERVERS / SOCKETS / ACTIVE_SOCKETS / FDS: one row per connection with
//! PgBouncer's socket columns (`socket_header`/`socket_row` in `src/admin.c`).

use super::result::{ResultSet, Type, Value};
use super::show::{server_states, sorted_pools};
use super::Console;
use crate::logfmt::{client_ptr, server_ptr};
use crate::registry::{format_time, ClientInfo, ClientState};

use Type::{Bytea, Int4, Int8, Text};

const SOCKET_COLUMNS: [(&str, Type); 21] = [
    ("type", Text),
    ("user", Text),
    ("database", Text),
    ("replication", Text),
    ("state", Text),
    ("addr", Text),
    ("port", Int4),
    ("local_addr", Text),
    ("local_port", Int4),
    ("connect_time", Text),
    ("request_time", Text),
    ("wait", Int4),
    ("wait_us", Int4),
    ("close_needed", Int4),
    ("ptr", Text),
    ("link", Text),
    ("remote_pid", Int4),
    ("tls", Text),
    ("application_name", Text),
    ("prepared_statements", Int4),
    ("id", Int4),
];

/// SOCKETS adds PgBouncer's buffer positions; pgmux reports them as 0.
const DEBUG_COLUMNS: [(&str, Type); 7] = [
    ("recv_pos", Int4),
    ("pkt_pos", Int4),
    ("pkt_remain", Int4),
    ("send_pos", Int4),
    ("send_remain", Int4),
    ("pkt_avail", Int4),
    ("send_avail", Int4),
];

fn client_row(client: &ClientInfo, state: &str) -> Vec<Value> {
    let now = client.now();
    let wait = now.wait_started.map(|t| t.elapsed()).unwrap_or_default();
    let ends = &client.endpoints;
    vec![
        "C".into(),
        (&*client.user).into(),
        (&*client.database).into(),
        "none".into(),
        state.into(),
        (&*ends.addr).into(),
        ends.port.into(),
        (&*ends.local_addr).into(),
        ends.local_port.into(),
        format_time(client.connect_time).into(),
        format_time(now.request_time).into(),
        wait.as_secs().into(),
        wait.subsec_micros().into(),
        0i32.into(),
        client_ptr(client.id).into(),
        if now.link == 0 {
            String::new()
        } else {
            server_ptr(now.link)
        }
        .into(),
        0i32.into(),
        "".into(),
        (&*now.application_name).into(),
        0i32.into(),
        client.id.into(),
    ]
}

fn columns(debug: bool) -> Vec<(&'static str, Type)> {
    let mut columns = SOCKET_COLUMNS.to_vec();
    if debug {
        columns.extend(DEBUG_COLUMNS);
    }
    columns
}

fn client_rows(console: &Console, set: &mut ResultSet, debug: bool) {
    for client in console.shared.registry.clients() {
        let state = client.now().state;
        let name = match (debug, state) {
            (false, state) => state.as_str(),
            (true, ClientState::Waiting) => "cl_waiting",
            (true, _) => "cl_active",
        };
        let mut row = client_row(&client, name);
        if debug {
            row.extend(std::iter::repeat(Value::Int(0)).take(DEBUG_COLUMNS.len()));
        }
        set.row(row);
    }
}

fn server_rows(console: &Console, set: &mut ResultSet, debug: bool) {
    for pool in sorted_pools(console) {
        for (info, state) in server_states(&console.shared, &pool) {
            let now = info.now();
            let ends = &now.endpoints;
            let state = if debug {
                match state {
                    "new" => "sv_login".to_owned(),
                    other => format!("sv_{other}"),
                }
            } else {
                state.to_owned()
            };
            let mut row: Vec<Value> = vec![
                "S".into(),
                pool.key.user.as_str().into(),
                pool.key.database.as_str().into(),
                "none".into(),
                state.into(),
                (&*ends.addr).into(),
                ends.port.into(),
                (&*ends.local_addr).into(),
                ends.local_port.into(),
                format_time(info.connect_time).into(),
                format_time(now.request_time).into(),
                0i32.into(),
                0i32.into(),
                pool.close_needed(info.created).into(),
                server_ptr(info.id).into(),
                if now.link == 0 {
                    String::new()
                } else {
                    client_ptr(now.link)
                }
                .into(),
                now.remote_pid.into(),
                "".into(),
                "".into(),
                0i32.into(),
                info.id.into(),
            ];
            if debug {
                row.extend(std::iter::repeat(Value::Int(0)).take(DEBUG_COLUMNS.len()));
            }
            set.row(row);
        }
    }
}

pub(super) fn clients(console: &Console, debug: bool) -> ResultSet {
    let mut set = ResultSet::new(&columns(debug));
    client_rows(console, &mut set, debug);
    set
}

pub(super) fn servers(console: &Console, debug: bool) -> ResultSet {
    let mut set = ResultSet::new(&columns(debug));
    server_rows(console, &mut set, debug);
    set
}

pub(super) fn sockets(console: &Console) -> ResultSet {
    let mut set = ResultSet::new(&columns(true));
    client_rows(console, &mut set, true);
    server_rows(console, &mut set, true);
    set
}

/// PgBouncer lists sockets with unsent or unparsed bytes; pgmux does not expose its
/// buffers, so the list is empty.
pub(super) fn active_sockets() -> ResultSet {
    ResultSet::new(&columns(true))
}

/// SHOW FDS exists for PgBouncer's online restart (passing sockets to a new process),
/// which pgmux does not do: the columns, no rows.
pub(super) fn fds() -> ResultSet {
    ResultSet::new(&[
        ("fd", Int4),
        ("task", Text),
        ("user", Text),
        ("database", Text),
        ("addr", Text),
        ("port", Int4),
        ("cancel", Int8),
        ("link", Int4),
        ("client_encoding", Text),
        ("std_strings", Text),
        ("datestyle", Text),
        ("timezone", Text),
        ("password", Text),
        ("scram_client_key", Bytea),
        ("scram_server_key", Bytea),
    ])
}
