//! Control commands with PgBouncer's semantics and error texts (`src/admin.c`).

use std::time::Duration;

use super::{is_console, syntax_error, AdminError, Console, Reply};
use crate::control::{PauseMode, ShutdownMode};
use crate::pool::ServerState;

/// How often the commands that wait (PAUSE, WAIT_CLOSE) look again.
const POLL: Duration = Duration::from_millis(20);

pub(super) async fn run(console: &Console, name: &str, arg: &str) -> Result<Reply, AdminError> {
    match name {
        "pause" => pause(console, arg).await,
        "resume" => resume(console, arg),
        "suspend" => suspend(console, arg),
        "disable" | "enable" => enable(console, arg, name == "enable"),
        "reconnect" => reconnect(console, arg),
        "kill" => kill(console, arg),
        "kill_client" => kill_client(console, arg),
        "wait_close" => wait_close(console, arg).await,
        "reload" => reload(console, arg),
        "shutdown" => shutdown(console, arg),
        _ => Err(syntax_error(name)),
    }
}

fn done(tag: &str) -> Result<Reply, AdminError> {
    Ok(Reply::Done(tag.to_owned()))
}

/// The database an argument names; the console itself may not be targeted by `verb`.
fn database(console: &Console, arg: &str, verb: &str) -> Result<String, AdminError> {
    if is_console(arg) {
        return Err(AdminError::new(format!("cannot {verb} admin db: {arg}")));
    }
    if !console.shared.settings().databases.contains_key(arg) {
        return Err(AdminError::new(format!("no such database: {arg}")));
    }
    Ok(arg.to_owned())
}

/// PAUSE [db]: new transactions wait; returns once no server of the scope is in use,
/// closing idle servers meanwhile (PgBouncer disconnects from the servers).
async fn pause(console: &Console, arg: &str) -> Result<Reply, AdminError> {
    let control = &console.shared.control;
    if control.mode() != PauseMode::None {
        return Err(AdminError::new("already suspended/paused"));
    }
    let scope = if arg.is_empty() {
        tracing::info!("PAUSE command issued");
        control.set_mode(PauseMode::Pause);
        None
    } else {
        let db = database(console, arg, "pause")?;
        tracing::info!("PAUSE '{db}' command issued");
        control.set_db_paused(&db, true);
        Some(db)
    };
    loop {
        let mut busy = 0;
        for pool in console.shared.pools() {
            if scope.as_deref().is_some_and(|db| db != pool.key.database) {
                continue;
            }
            pool.close_idle(crate::logfmt::reason::PAUSE_MODE);
            busy += pool.servers.all().len();
        }
        if busy == 0 {
            return done("PAUSE");
        }
        // RESUME from another console ends the wait too.
        let still = match &scope {
            None => control.mode() == PauseMode::Pause,
            Some(db) => control.is_db_paused(db),
        };
        if !still {
            return done("PAUSE");
        }
        tokio::time::sleep(POLL).await;
    }
}

fn resume(console: &Console, arg: &str) -> Result<Reply, AdminError> {
    let control = &console.shared.control;
    if arg.is_empty() {
        tracing::info!("RESUME command issued");
        if control.shutdown_requested().is_some() {
            return Err(AdminError::new("pooler is shutting down"));
        }
        if control.mode() == PauseMode::None {
            return Err(AdminError::new("pooler is not paused/suspended"));
        }
        control.set_mode(PauseMode::None);
    } else {
        tracing::info!("RESUME '{arg}' command issued");
        if !console.shared.settings().databases.contains_key(arg) {
            return Err(AdminError::new(format!("no such database: {arg}")));
        }
        if !control.is_db_paused(arg) {
            return Err(AdminError::new(format!("database {arg} is not paused")));
        }
        control.set_db_paused(arg, false);
    }
    done("RESUME")
}

/// SUSPEND holds new transactions like PAUSE but keeps the servers (PgBouncer uses it
/// around an online restart; pgmux has nothing to flush).
fn suspend(console: &Console, arg: &str) -> Result<Reply, AdminError> {
    if !arg.is_empty() {
        return Err(syntax_error(&format!("suspend {arg}")));
    }
    let control = &console.shared.control;
    if control.mode() != PauseMode::None {
        return Err(AdminError::new("already suspended/paused"));
    }
    if control.paused_count() > 0 {
        return Err(AdminError::new("cannot suspend with paused databases"));
    }
    tracing::info!("SUSPEND command issued");
    control.set_mode(PauseMode::Suspend);
    done("SUSPEND")
}

/// DISABLE db refuses new client logins to db; ENABLE allows them again.
fn enable(console: &Console, arg: &str, enable: bool) -> Result<Reply, AdminError> {
    if arg.is_empty() {
        return Err(AdminError::new("a database is required"));
    }
    let verb = if enable { "ENABLE" } else { "DISABLE" };
    tracing::info!("{verb} '{arg}' command issued");
    let db = database(console, arg, &verb.to_ascii_lowercase())?;
    console.shared.control.set_disabled(&db, !enable);
    done(verb)
}

/// RECONNECT [db]: every server of the scope closes once released; new ones replace them.
fn reconnect(console: &Console, arg: &str) -> Result<Reply, AdminError> {
    let scope = if arg.is_empty() {
        tracing::info!("RECONNECT command issued");
        None
    } else {
        tracing::info!("RECONNECT '{arg}' command issued");
        Some(database(console, arg, "reconnect")?)
    };
    for pool in console.shared.pools() {
        if scope.as_deref().map_or(true, |db| db == pool.key.database) {
            pool.reconnect();
        }
    }
    done("RECONNECT")
}

/// KILL [db]: drops the clients and servers of the scope at once and pauses it, so new
/// clients wait for RESUME.
fn kill(console: &Console, arg: &str) -> Result<Reply, AdminError> {
    let control = &console.shared.control;
    if control.mode() != PauseMode::None {
        return Err(AdminError::new("already suspended/paused"));
    }
    let scope = if arg.is_empty() {
        tracing::info!("KILL command issued");
        None
    } else {
        tracing::info!("KILL '{arg}' command issued");
        Some(database(console, arg, "kill")?)
    };
    let settings = console.shared.settings();
    for db in settings.databases.keys() {
        if scope.as_deref().map_or(true, |s| s == db) {
            control.set_db_paused(db, true);
        }
    }
    for client in console.shared.registry.clients() {
        let hit = scope
            .as_deref()
            .map_or(!is_console(&client.database), |db| *db == *client.database);
        if hit {
            client.kill("database removed");
        }
    }
    console.shared.remove_pools(scope.as_deref());
    done("KILL")
}

fn kill_client(console: &Console, arg: &str) -> Result<Reply, AdminError> {
    let id: u64 = arg
        .parse()
        .map_err(|_| AdminError::new("invalid client pointer supplied"))?;
    let client = console
        .shared
        .registry
        .client(id)
        .ok_or_else(|| AdminError::new("client not found"))?;
    tracing::info!("KILL_CLIENT {id} command issued");
    client.kill("admin forced disconnect");
    done("KILL_CLIENT")
}

/// WAIT_CLOSE [db]: returns once no server of the scope is marked `close_needed`
/// (by RECONNECT or a reload that changed its database).
async fn wait_close(console: &Console, arg: &str) -> Result<Reply, AdminError> {
    let scope = if arg.is_empty() {
        tracing::info!("WAIT_CLOSE command issued");
        None
    } else {
        tracing::info!("WAIT_CLOSE '{arg}' command issued");
        Some(database(console, arg, "wait in")?)
    };
    loop {
        let pending = console.shared.pools().iter().any(|pool| {
            scope.as_deref().map_or(true, |db| db == pool.key.database)
                && pool.servers.all().iter().any(|info| {
                    pool.close_needed(info.created) || info.now().state == ServerState::Login
                })
        });
        if !pending {
            return done("WAIT_CLOSE");
        }
        tokio::time::sleep(POLL).await;
    }
}

fn reload(console: &Console, arg: &str) -> Result<Reply, AdminError> {
    if !arg.is_empty() {
        return Err(syntax_error(&format!("reload {arg}")));
    }
    tracing::info!("RELOAD command issued");
    match super::reload(&console.shared) {
        Ok(()) => done("RELOAD"),
        Err(error) => Err(AdminError {
            // PgBouncer: F0000 (config_file_error), and its words exactly; the reason
            // is in the log and, for psql users, in DETAIL.
            code: "F0000",
            message: "RELOAD failed, see logs for additional details".to_owned(),
            detail: Some(error),
        }),
    }
}

fn shutdown(console: &Console, arg: &str) -> Result<Reply, AdminError> {
    let mode = match arg.to_ascii_lowercase().as_str() {
        "" => ShutdownMode::Immediate,
        "wait_for_clients" => ShutdownMode::WaitForClients,
        "wait_for_servers" => ShutdownMode::WaitForServers,
        _ => return Err(syntax_error(&format!("shutdown {arg}"))),
    };
    tracing::info!("SHUTDOWN {arg} command issued");
    if mode == ShutdownMode::WaitForServers {
        console.shared.control.set_mode(PauseMode::Pause);
    }
    console.shared.control.request_shutdown(mode);
    match mode {
        ShutdownMode::Immediate => Ok(Reply::Hang),
        _ => done("SHUTDOWN"),
    }
}
