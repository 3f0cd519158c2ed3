//! SHOW DATABASES and SHOW USERS: the configured `[databases]` and `[users]` entries
//! (plus the console's), with their effective limits and the connections they use now.

use super::result::{ResultSet, Type, Value};
use super::show::sorted_pools;
use super::{Console, CONSOLE_NAME};

use Type::{Int4, Text};

pub(super) fn databases(console: &Console) -> ResultSet {
    let mut set = ResultSet::new(&[
        ("name", Text),
        ("host", Text),
        ("port", Int4),
        ("database", Text),
        ("force_user", Text),
        ("pool_size", Int4),
        ("min_pool_size", Int4),
        ("reserve_pool_size", Int4),
        ("server_lifetime", Int4),
        ("pool_mode", Text),
        ("load_balance_hosts", Text),
        ("max_connections", Int4),
        ("current_connections", Int4),
        ("max_client_connections", Int4),
        ("current_client_connections", Int4),
        ("paused", Int4),
        ("disabled", Int4),
    ]);
    let settings = console.shared.settings();
    let pools = sorted_pools(console);
    let clients = console.shared.registry.clients();
    let client_count = |db: &str| clients.iter().filter(|c| &*c.database == db).count();
    let control = &console.shared.control;
    let mut rows: Vec<(String, Vec<Value>)> = vec![(
        CONSOLE_NAME.into(),
        vec![
            CONSOLE_NAME.into(),
            Value::Null,
            settings.listen_port.into(),
            CONSOLE_NAME.into(),
            CONSOLE_NAME.into(),
            2i32.into(),
            0i32.into(),
            0i32.into(),
            settings.server_lifetime.as_secs().into(),
            "statement".into(),
            Value::Null,
            0i32.into(),
            0i32.into(),
            0i32.into(),
            client_count(CONSOLE_NAME).into(),
            0i32.into(),
            0i32.into(),
        ],
    )];
    for (name, db) in &settings.databases {
        let servers: usize = pools
            .iter()
            .filter(|p| &p.key.database == name)
            .map(|p| p.servers.all().len())
            .sum();
        rows.push((
            name.clone(),
            vec![
                name.as_str().into(),
                db.host.as_str().into(),
                db.port.into(),
                db.dbname.as_str().into(),
                db.user.as_deref().into(),
                settings.pool_size_for(name).into(),
                settings.min_pool_size_for(name).into(),
                settings.reserve_pool_size_for(name).into(),
                settings.server_lifetime.as_secs().into(),
                db.pool_mode.map(|m| m.as_str()).into(),
                Value::Null,
                settings.max_db_connections_for(name).into(),
                servers.into(),
                0i32.into(),
                client_count(name).into(),
                control.is_db_paused(name).into(),
                control.is_disabled(name).into(),
            ],
        ));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, row) in rows {
        set.row(row);
    }
    set
}

pub(super) fn users(console: &Console) -> ResultSet {
    let mut set = ResultSet::new(&[
        ("name", Text),
        ("pool_size", Text),
        ("reserve_pool_size", Text),
        ("pool_mode", Text),
        ("max_user_connections", Int4),
        ("current_connections", Int4),
        ("max_user_client_connections", Int4),
        ("current_client_connections", Int4),
    ]);
    let settings = console.shared.settings();
    let pools = sorted_pools(console);
    let clients = console.shared.registry.clients();
    let mut names: Vec<&str> = settings.users.keys().map(String::as_str).collect();
    names.push(CONSOLE_NAME);
    names.sort_unstable();
    names.dedup();
    for name in names {
        let servers: usize = pools
            .iter()
            .filter(|p| p.key.user == name)
            .map(|p| p.servers.all().len())
            .sum();
        let mode = settings.users.get(name).and_then(|u| u.pool_mode);
        set.row(vec![
            name.into(),
            "".into(),
            "".into(),
            mode.map(|m| m.as_str()).into(),
            settings.max_user_connections_for(name).into(),
            servers.into(),
            0i32.into(),
            clients.iter().filter(|c| &*c.user == name).count().into(),
        ]);
    }
    set
}
