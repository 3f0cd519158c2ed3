//! What pgmux publishes beyond pgbouncer_exporter: prepared-statement cache counters,
//! per-pool latency histograms, and process figures (connections, draining, start time,
//! memory, descriptors, CPU).

use super::Family;
use crate::context::Shared;
use crate::stats::{HistogramSnapshot, BUCKETS_US};

/// pgmux's prepared-statement cache per pool: no exporter has these.
pub(super) fn prepared(shared: &Shared, f: &mut Family<'_>) {
    type Pick = fn(&crate::stats::PoolStats) -> u64;
    let families: [(&str, Pick, &str); 2] = [
        (
            "pgmux_prepared_cache_hits_total",
            |s| crate::stats::PoolStats::get(&s.prepared_cache_hits),
            "Client Parses answered from a server's prepared-statement cache",
        ),
        (
            "pgmux_prepared_evictions_total",
            |s| crate::stats::PoolStats::get(&s.prepared_evictions),
            "Prepared statements closed on servers to stay under max_prepared_statements",
        ),
    ];
    let pools = shared.pools();
    for (name, pick, help) in families {
        f.head(name, "counter", help);
        for pool in &pools {
            let labels = [
                ("database", pool.key.database.as_str()),
                ("user", pool.key.user.as_str()),
            ];
            f.sample(name, &labels, pick(&pool.stats) as f64);
        }
    }
}

/// What no exporter can give: per-pool latency distributions.
pub(super) fn histograms(shared: &Shared, f: &mut Family<'_>) {
    let mut pools = shared.pools();
    pools.sort_by(|a, b| a.key.cmp(&b.key));
    type Pick = fn(&crate::stats::Latencies) -> HistogramSnapshot;
    let families: [(&str, Pick, &str); 3] = [
        (
            "pgmux_client_wait_seconds",
            |l| l.wait.snapshot(),
            "Time clients waited for a server connection",
        ),
        (
            "pgmux_query_duration_seconds",
            |l| l.query.snapshot(),
            "Duration of queries relayed to a server",
        ),
        (
            "pgmux_transaction_duration_seconds",
            |l| l.transaction.snapshot(),
            "Duration of transactions on a server",
        ),
    ];
    for (name, pick, help) in families {
        f.head(name, "histogram", help);
        for pool in &pools {
            let snapshot = pick(&pool.stats.latencies);
            let (db, user) = (pool.key.database.as_str(), pool.key.user.as_str());
            let bucket = format!("{name}_bucket");
            for (index, count) in snapshot.cumulative.iter().enumerate() {
                let le = BUCKETS_US
                    .get(index)
                    .map(|us| format!("{}", *us as f64 / 1e6))
                    .unwrap_or_else(|| "+Inf".into());
                f.sample(
                    &bucket,
                    &[("database", db), ("user", user), ("le", &le)],
                    *count as f64,
                );
            }
            let labels = [("database", db), ("user", user)];
            f.sample(
                &format!("{name}_sum"),
                &labels,
                snapshot.sum_us as f64 / 1e6,
            );
            f.sample(&format!("{name}_count"), &labels, snapshot.count as f64);
        }
    }
}

pub(super) fn process(shared: &Shared, f: &mut Family<'_>) {
    f.head(
        "pgmux_client_connections",
        "gauge",
        "Client connections open, logging in or logged in",
    );
    f.sample(
        "pgmux_client_connections",
        &[],
        shared.client_count() as f64,
    );
    let servers: usize = shared.pools().iter().map(|p| p.servers.all().len()).sum();
    f.head(
        "pgmux_server_connections",
        "gauge",
        "Server connections open or opening",
    );
    f.sample("pgmux_server_connections", &[], servers as f64);
    f.head("pgmux_draining", "gauge", "1 while pgmux is shutting down");
    f.sample(
        "pgmux_draining",
        &[],
        f64::from(u8::from(shared.is_stopping())),
    );
    if let Ok(elapsed) = shared.started.elapsed() {
        f.head(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds",
        );
        let start = std::time::SystemTime::now() - elapsed;
        let secs = start
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        f.sample("process_start_time_seconds", &[], secs);
    }
    if let Some((rss, fds, cpu)) = proc_figures() {
        f.head(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes",
        );
        f.sample("process_resident_memory_bytes", &[], rss);
        f.head(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors",
        );
        f.sample("process_open_fds", &[], fds);
        f.head(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds",
        );
        f.sample("process_cpu_seconds_total", &[], cpu);
    }
}

/// Resident memory, open descriptors and CPU seconds from /proc (Linux only).
fn proc_figures() -> Option<(f64, f64, f64)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    let fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit(')').next()?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the ")".
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: as above.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((pages * page_size, fds, ticks / hz))
}
