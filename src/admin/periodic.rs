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
    format!(
        "stats: {} xacts/s, {} queries/s, {} client parses/s, {} server parses/s, {} binds/s, \
         in {} B/s, out {} B/s, xact {} us, query {} us, wait {} us",
        avg.transactions,
        avg.queries,
        avg.client_parses,
        avg.server_parses,
        avg.binds,
        avg.bytes_received,
        avg.bytes_sent,
        avg.transaction_time_us,
        avg.query_time_us,
        avg.wait_time_us
    )
}
