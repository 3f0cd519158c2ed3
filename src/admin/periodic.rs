//! The `stats_period` tick: rolls every pool's averaging window (what SHOW STATS
//! averages are computed over, as PgBouncer's `refresh_stats`) and, with `log_stats`,
//! writes PgBouncer's stats line.

use std::sync::Arc;

use crate::context::Shared;
use crate::stats::Totals;

pub async fn run(shared: Arc<Shared>) {
    loop {
        let period = shared.settings().stats_period;
        tokio::time::sleep(period).await;
        tick(&shared);
    }
}

/// One tick: the averages of the period that just ended, then a new window.
pub fn tick(shared: &Shared) {
    // As PgBouncer's refresh_stats: the window start moves to the previous tick, and the
    // line reports the period between the previous tick and this one.
    shared.stats_clock.tick();
    let (mut current, mut previous) = (Totals::default(), Totals::default());
    for pool in shared.pools() {
        pool.stats.roll_period();
        current = current + pool.stats.totals();
        previous = previous + pool.stats.older();
    }
    let avg = current.average_since(&previous, shared.stats_clock.window());
    if shared.settings().log_stats {
        tracing::info!("{}", stats_line(&avg));
    }
}

/// PgBouncer's line, word for word.
pub fn stats_line(avg: &Totals) -> String {
    crate::logfmt::stats(&crate::logfmt::Averages {
        xacts_per_sec: avg.transactions,
        queries_per_sec: avg.queries,
        client_parses_per_sec: avg.client_parses,
        server_parses_per_sec: avg.server_parses,
        binds_per_sec: avg.binds,
        bytes_in_per_sec: avg.bytes_received,
        bytes_out_per_sec: avg.bytes_sent,
        xact_us: avg.transaction_time_us,
        query_us: avg.query_time_us,
        wait_us: avg.wait_time_us,
    })
}
