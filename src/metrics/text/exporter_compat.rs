//! The families the community pgbouncer_exporter publishes, with its names, labels and
//! help texts, so its dashboards and alerts work unchanged against pgmux: pools, stats
//! per database, databases and config.

use super::Family;
use crate::admin::{per_database, pool_counts, ServerCounts};
use crate::context::Shared;
use crate::stats::Totals;

pub(super) fn pools(shared: &Shared, f: &mut Family<'_>) {
    let (pools, others) = pool_counts(shared);
    let no_servers = ServerCounts::default();
    // Clients of a pair with no pool (the console's) are published too, without servers.
    let mut rows: Vec<(String, String, [f64; 12])> = pools
        .iter()
        .map(|pool| (&pool.database, &pool.user, &pool.clients, &pool.servers))
        .chain(
            others
                .iter()
                .map(|((db, user), clients)| (db, user, clients, &no_servers)),
        )
        .map(|(db, user, clients, servers)| {
            let values = [
                clients.active,
                clients.waiting,
                0,
                0,
                servers.active,
                0,
                0,
                servers.idle,
                servers.used,
                servers.tested,
                servers.login,
                clients.max_wait.as_secs() as usize,
            ]
            .map(|count| count as f64);
            (db.clone(), user.clone(), values)
        })
        .collect();
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
    let by_db = per_database(shared);
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
        for (db, totals, _) in &by_db {
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
