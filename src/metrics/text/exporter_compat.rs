//! The families the community pgbouncer_exporter publishes, with its names, labels and
//! help texts, so its dashboards and alerts work unchanged against pgmux: pools, stats
//! per database, databases and config.

use std::collections::BTreeMap;

use super::Family;
use crate::context::Shared;
use crate::pool::ServerInfo;
use crate::registry::ClientState;
use crate::stats::Totals;

pub(super) fn pools(shared: &Shared, f: &mut Family<'_>) {
    let settings = shared.settings();
    let check = !settings.server_check_query.is_empty();
    let mut clients: BTreeMap<(String, String), (usize, usize, f64)> = BTreeMap::new();
    for client in shared.registry.clients() {
        let now = client.now();
        let entry = clients
            .entry((client.database.to_string(), client.pool_user.to_string()))
            .or_default();
        if now.state == ClientState::Waiting {
            entry.1 += 1;
            let waited = now
                .wait_started
                .map(|t| t.elapsed().as_secs_f64())
                .unwrap_or(0.0);
            entry.2 = entry.2.max(waited);
        } else {
            entry.0 += 1;
        }
    }
    let mut rows: Vec<(String, String, [f64; 12])> = Vec::new();
    for pool in shared.pools() {
        let key = (pool.key.database.clone(), pool.key.user.clone());
        let (active, waiting, maxwait) = clients.remove(&key).unwrap_or_default();
        let states: Vec<&str> = pool
            .servers
            .all()
            .iter()
            .map(|info| ServerInfo::state_name(&info.now(), settings.server_check_delay, check))
            .collect();
        let count = |name: &str| states.iter().filter(|s| **s == name).count() as f64;
        rows.push((
            key.0,
            key.1,
            [
                active as f64,
                waiting as f64,
                0.0,
                0.0,
                count("active"),
                0.0,
                0.0,
                count("idle"),
                count("used"),
                count("tested"),
                count("new"),
                maxwait.floor(),
            ],
        ));
    }
    for ((db, user), (active, waiting, maxwait)) in clients {
        rows.push((
            db,
            user,
            [
                active as f64,
                waiting as f64,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                maxwait.floor(),
            ],
        ));
    }
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let families = [
        ("client_active_connections", "Client connections linked to server connection and able to process queries, shown as connection"),
        ("client_waiting_connections", "Client connections waiting on a server connection, shown as connection"),
        ("client_active_cancel_connections", "Client connections that have forwarded query cancellations to the server and are waiting for the server response"),
        ("client_waiting_cancel_connections", "Client connections that have not forwarded query cancellations to the server yet"),
        ("server_active_connections", "Server connections linked to a client connection, shown as connection"),
        ("server_active_cancel_connections", "Server connections that are currently forwarding a cancel request"),
        ("server_being_canceled_connections", "Servers waiting for in-flight cancel requests to complete"),
        ("server_idle_connections", "Server connections idle and ready for a client query, shown as connection"),
        ("server_used_connections", "Server connections idle more than server_check_delay, needing server_check_query, shown as connection"),
        ("server_testing_connections", "Server connections currently running either server_reset_query or server_check_query, shown as connection"),
        ("server_login_connections", "Server connections currently in the process of logging in, shown as connection"),
        ("client_maxwait_seconds", "Age of oldest unserved client connection, shown as second"),
    ];
    for (index, (name, help)) in families.iter().enumerate() {
        let name = format!("pgbouncer_pools_{name}");
        f.head(&name, "gauge", help);
        for (db, user, values) in &rows {
            f.sample(&name, &[("database", db), ("user", user)], values[index]);
        }
    }
}

pub(super) fn stats(shared: &Shared, f: &mut Family<'_>) {
    let mut by_db: BTreeMap<String, Totals> = BTreeMap::new();
    for pool in shared.pools() {
        let entry = by_db.entry(pool.key.database.clone()).or_default();
        *entry = *entry + pool.stats.totals();
    }
    type Pick = fn(&Totals) -> u64;
    let families: [(&str, Pick, f64, &str); 11] = [
        ("queries_pooled_total", |t| t.queries, 1.0, "Total number of SQL queries pooled"),
        ("queries_duration_seconds_total", |t| t.query_time_us, 1e-6, "Total number of seconds spent by pgbouncer when actively connected to PostgreSQL, executing queries"),
        ("received_bytes_total", |t| t.bytes_received, 1.0, "Total volume in bytes of network traffic received by pgbouncer, shown as bytes"),
        ("sent_bytes_total", |t| t.bytes_sent, 1.0, "Total volume in bytes of network traffic sent by pgbouncer, shown as bytes"),
        ("client_wait_seconds_total", |t| t.wait_time_us, 1e-6, "Time spent by clients waiting for a server in seconds"),
        ("sql_transactions_pooled_total", |t| t.transactions, 1.0, "Total number of SQL transactions pooled"),
        ("server_in_transaction_seconds_total", |t| t.transaction_time_us, 1e-6, "Total number of seconds spent by pgbouncer when connected to PostgreSQL in a transaction, either idle in transaction or executing queries"),
        ("client_parses_total", |t| t.client_parses, 1.0, "Total number of prepared statement Parse messages received from clients"),
        ("server_parses_total", |t| t.server_parses, 1.0, "Total number of prepared statement Parse messages sent by pgbouncer to PostgreSQL"),
        ("binds_total", |t| t.binds, 1.0, "Total number of prepared statements readied for execution with a Bind message"),
        ("server_assignments_total", |t| t.server_assignments, 1.0, "Total number of times a server was assigned to a client"),
    ];
    for (name, pick, factor, help) in families {
        let name = format!("pgbouncer_stats_{name}");
        f.head(&name, "counter", help);
        for (db, totals) in &by_db {
            f.sample(&name, &[("database", db)], pick(totals) as f64 * factor);
        }
    }
}

pub(super) fn databases(shared: &Shared, f: &mut Family<'_>) {
    let settings = shared.settings();
    let pools = shared.pools();
    type Pick<'a> = Box<dyn Fn(&str) -> f64 + 'a>;
    let families: [(&str, Pick<'_>, &str); 6] = [
        (
            "pool_size",
            Box::new(|db| settings.pool_size_for(db) as f64),
            "Maximum number of server connections",
        ),
        (
            "reserve_pool",
            Box::new(|db| settings.reserve_pool_size_for(db) as f64),
            "Maximum number of additional connections for this database",
        ),
        (
            "max_connections",
            Box::new(|db| settings.max_db_connections_for(db) as f64),
            "Maximum number of allowed connections for this database",
        ),
        (
            "current_connections",
            Box::new(|db| {
                pools
                    .iter()
                    .filter(|p| p.key.database == db)
                    .map(|p| p.servers.all().len())
                    .sum::<usize>() as f64
            }),
            "Current number of connections for this database",
        ),
        (
            "paused",
            Box::new(|db| f64::from(u8::from(shared.control.is_db_paused(db)))),
            "1 if this database is currently paused, else 0",
        ),
        (
            "disabled",
            Box::new(|db| f64::from(u8::from(shared.control.is_disabled(db)))),
            "1 if this database is currently disabled, else 0",
        ),
    ];
    for (name, pick, help) in families {
        let name = format!("pgbouncer_databases_{name}");
        f.head(&name, "gauge", help);
        for (db, entry) in &settings.databases {
            let port = entry.port.to_string();
            let mode = entry.pool_mode.map(|m| m.as_str()).unwrap_or("");
            let labels = [
                ("name", db.as_str()),
                ("host", entry.host.as_str()),
                ("port", port.as_str()),
                ("database", entry.dbname.as_str()),
                ("force_user", entry.user.as_deref().unwrap_or("")),
                ("pool_mode", mode),
            ];
            f.sample(&name, &labels, pick(db));
        }
    }
}

pub(super) fn config(shared: &Shared, f: &mut Family<'_>) {
    let settings = shared.settings();
    f.head(
        "pgbouncer_config_max_client_connections",
        "gauge",
        "Config maximum number of client connections",
    );
    f.sample(
        "pgbouncer_config_max_client_connections",
        &[],
        settings.max_client_conn as f64,
    );
    f.head(
        "pgbouncer_config_max_user_connections",
        "gauge",
        "Config maximum number of server connections per user",
    );
    f.sample(
        "pgbouncer_config_max_user_connections",
        &[],
        settings.max_user_connections as f64,
    );
    f.head("pgbouncer_used_clients", "gauge", "Count of used clients");
    f.sample(
        "pgbouncer_used_clients",
        &[],
        shared.registry.clients().len() as f64,
    );
    f.head("pgbouncer_pools", "gauge", "Count of pools");
    f.sample("pgbouncer_pools", &[], shared.pools().len() as f64);
    f.head("pgbouncer_databases", "gauge", "Count of databases");
    f.sample("pgbouncer_databases", &[], settings.databases.len() as f64);
}
