//! SHOW PREPARED_STATEMENTS (pgmux's own): how the prepared-statement cache of each pool
//! is doing, so an operator can size `max_prepared_statements`. Many evictions against
//! few hits means the cache is too small for the statements clients use.

use super::result::{ResultSet, Type};
use super::show::sorted_pools;
use super::Console;
use crate::stats::PoolStats;

use Type::{Int8, Text};

pub(super) fn prepared_statements(console: &Console) -> ResultSet {
    let mut set = ResultSet::new(&[
        ("database", Text),
        ("user", Text),
        ("client_parses", Int8),
        ("server_parses", Int8),
        ("binds", Int8),
        ("cache_hits", Int8),
        ("evictions", Int8),
        ("on_idle_servers", Int8),
        ("max_prepared_statements", Int8),
    ]);
    let capacity = console.shared.settings().max_prepared_statements;
    for pool in sorted_pools(console) {
        let stats = &pool.stats;
        set.row(vec![
            pool.key.database.as_str().into(),
            pool.key.user.as_str().into(),
            PoolStats::get(&stats.client_parses).into(),
            PoolStats::get(&stats.server_parses).into(),
            PoolStats::get(&stats.binds).into(),
            PoolStats::get(&stats.prepared_cache_hits).into(),
            PoolStats::get(&stats.prepared_evictions).into(),
            pool.statements_on_idle_servers().into(),
            capacity.into(),
        ]);
    }
    set
}
