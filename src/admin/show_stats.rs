//! SHOW STATS / STATS_TOTALS / STATS_AVERAGES / TOTALS: per-database sums of the pools'
//! counters, and per-second averages over the `stats_period` window as PgBouncer's
//! `calc_average` computes them (`src/stats.c`).

use std::collections::BTreeMap;

use super::result::{ResultSet, Type, Value};
use super::Console;
use crate::context::Shared;
use crate::stats::Totals;

use Type::{Numeric, Text};

/// Current and window-start totals per database, in database order.
pub(crate) fn per_database(shared: &Shared) -> Vec<(String, Totals, Totals)> {
    let mut by_db: BTreeMap<String, (Totals, Totals)> = BTreeMap::new();
    for pool in shared.pools() {
        let entry = by_db.entry(pool.key.database.clone()).or_default();
        entry.0 = entry.0 + pool.stats.totals();
        entry.1 = entry.1 + pool.stats.older();
    }
    by_db
        .into_iter()
        .map(|(db, (now, old))| (db, now, old))
        .collect()
}

fn counters(t: &Totals) -> [u64; 11] {
    [
        t.server_assignments,
        t.transactions,
        t.queries,
        t.bytes_received,
        t.bytes_sent,
        t.transaction_time_us,
        t.query_time_us,
        t.wait_time_us,
        t.client_parses,
        t.server_parses,
        t.binds,
    ]
}

const TOTAL_NAMES: [&str; 11] = [
    "server_assignment_count",
    "xact_count",
    "query_count",
    "received",
    "sent",
    "xact_time",
    "query_time",
    "wait_time",
    "client_parse_count",
    "server_parse_count",
    "bind_count",
];

pub(super) fn stats(console: &Console) -> ResultSet {
    let mut columns = vec![("database", Text)];
    columns.extend([
        ("total_server_assignment_count", Numeric),
        ("total_xact_count", Numeric),
        ("total_query_count", Numeric),
        ("total_received", Numeric),
        ("total_sent", Numeric),
        ("total_xact_time", Numeric),
        ("total_query_time", Numeric),
        ("total_wait_time", Numeric),
        ("total_client_parse_count", Numeric),
        ("total_server_parse_count", Numeric),
        ("total_bind_count", Numeric),
        ("avg_server_assignment_count", Numeric),
        ("avg_xact_count", Numeric),
        ("avg_query_count", Numeric),
        ("avg_recv", Numeric),
        ("avg_sent", Numeric),
        ("avg_xact_time", Numeric),
        ("avg_query_time", Numeric),
        ("avg_wait_time", Numeric),
        ("avg_client_parse_count", Numeric),
        ("avg_server_parse_count", Numeric),
        ("avg_bind_count", Numeric),
    ]);
    let mut set = ResultSet::new(&columns);
    let window = console.shared.stats_clock.window();
    for (db, now, old) in per_database(&console.shared) {
        let avg = now.average_since(&old, window);
        let mut row: Vec<Value> = vec![db.into()];
        row.extend(counters(&now).into_iter().map(Value::from));
        row.extend(counters(&avg).into_iter().map(Value::from));
        set.row(row);
    }
    set
}

pub(super) fn stats_totals(console: &Console) -> ResultSet {
    let names = [
        "server_assignment_count",
        "xact_count",
        "query_count",
        "bytes_received",
        "bytes_sent",
        "xact_time",
        "query_time",
        "wait_time",
        "client_parse_count",
        "server_parse_count",
        "bind_count",
    ];
    per_db_set(console, &names, false)
}

pub(super) fn stats_averages(console: &Console) -> ResultSet {
    let names = [
        "server_assignment_count",
        "xact_count",
        "query_count",
        "bytes_received",
        "bytes_sent",
        "xact_time",
        "query_time",
        "wait_time",
        "avg_client_parse_count",
        "avg_server_parse_count",
        "avg_bind_count",
    ];
    per_db_set(console, &names, true)
}

fn per_db_set(console: &Console, names: &[&'static str; 11], averages: bool) -> ResultSet {
    let mut columns = vec![("database", Text)];
    columns.extend(names.iter().map(|n| (*n, Numeric)));
    let mut set = ResultSet::new(&columns);
    let window = console.shared.stats_clock.window();
    for (db, now, old) in per_database(&console.shared) {
        let shown = if averages {
            now.average_since(&old, window)
        } else {
            now
        };
        let mut row: Vec<Value> = vec![db.into()];
        row.extend(counters(&shown).into_iter().map(Value::from));
        set.row(row);
    }
    set
}

/// SHOW TOTALS: name/value rows over every pool (PgBouncer's `show_stat_totals`).
pub(super) fn totals(console: &Console) -> ResultSet {
    let (mut now, mut old) = (Totals::default(), Totals::default());
    for (_, n, o) in per_database(&console.shared) {
        now = now + n;
        old = old + o;
    }
    let avg = now.average_since(&old, console.shared.stats_clock.window());
    // PgBouncer names these after its struct fields.
    let names = TOTAL_NAMES.map(|n| match n {
        "received" => "client_bytes",
        "sent" => "server_bytes",
        "client_parse_count" => "ps_client_parse_count",
        "server_parse_count" => "ps_server_parse_count",
        "bind_count" => "ps_bind_count",
        other => other,
    });
    let mut set = ResultSet::new(&[("name", Text), ("value", Numeric)]);
    for (prefix, values) in [("total_", counters(&now)), ("avg_", counters(&avg))] {
        for (name, value) in names.iter().zip(values) {
            set.row(vec![format!("{prefix}{name}").into(), value.into()]);
        }
    }
    set
}
