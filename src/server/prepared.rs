//! Which pgmux statements one server connection has prepared: a bounded cache
//! (`max_prepared_statements`) that evicts the least recently used.

use std::collections::HashMap;
use std::sync::Arc;

use crate::statements::StatementDef;

#[derive(Debug, Default)]
pub struct ServerStatements {
    by_id: HashMap<u64, (Arc<StatementDef>, u64)>,
    clock: u64,
}

impl ServerStatements {
    /// True when the server has it; marks it recently used.
    pub fn touch(&mut self, id: u64) -> bool {
        self.clock += 1;
        match self.by_id.get_mut(&id) {
            Some(entry) => {
                entry.1 = self.clock;
                true
            }
            None => false,
        }
    }

    /// Records a statement being prepared; returns the one to close when over `capacity`.
    pub fn insert(
        &mut self,
        statement: Arc<StatementDef>,
        capacity: usize,
    ) -> Option<Arc<StatementDef>> {
        self.clock += 1;
        let evicted = if self.by_id.len() >= capacity.max(1) {
            let oldest = self
                .by_id
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| *id);
            oldest
                .and_then(|id| self.by_id.remove(&id))
                .map(|(statement, _)| statement)
        } else {
            None
        };
        self.by_id.insert(statement.id, (statement, self.clock));
        evicted
    }

    pub fn remove(&mut self, id: u64) -> Option<Arc<StatementDef>> {
        self.by_id.remove(&id).map(|(statement, _)| statement)
    }

    /// Puts statement `id` back as it was (`None`: absent) when the server discarded
    /// the request that changed it; as recently used, the LRU order being a heuristic.
    pub fn restore(&mut self, id: u64, was: Option<Arc<StatementDef>>) {
        match was {
            Some(statement) => {
                self.clock += 1;
                self.by_id.insert(id, (statement, self.clock));
            }
            None => {
                self.by_id.remove(&id);
            }
        }
    }

    /// Takes out the least recently used statements beyond `capacity` (lowered by a
    /// reload), to be closed on the server.
    pub fn excess(&mut self, capacity: usize) -> Vec<Arc<StatementDef>> {
        let capacity = capacity.max(1);
        let mut excess = Vec::new();
        while self.by_id.len() > capacity {
            let oldest = self
                .by_id
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| *id)
                .expect("not empty");
            excess.extend(self.remove(oldest));
        }
        excess
    }

    /// After DISCARD ALL / DEALLOCATE ALL the server has none left.
    pub fn clear(&mut self) {
        self.by_id.clear();
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_is_evicted() {
        let mut cache = ServerStatements::default();
        let [a, b, c] = [1, 2, 3].map(|id| Arc::new(StatementDef::for_tests(id)));
        assert!(cache.insert(Arc::clone(&a), 2).is_none());
        assert!(cache.insert(Arc::clone(&b), 2).is_none());
        assert!(cache.touch(1), "a used again: b is now the oldest");
        let evicted = cache.insert(c, 2).expect("over capacity");
        assert_eq!(evicted.id, 2);
        assert!(cache.touch(1) && cache.touch(3) && !cache.touch(2));
    }

    #[test]
    fn a_lowered_capacity_gives_up_the_oldest_and_restore_undoes() {
        let mut cache = ServerStatements::default();
        for id in 1..=4 {
            cache.insert(Arc::new(StatementDef::for_tests(id)), 10);
        }
        let excess: Vec<u64> = cache.excess(2).iter().map(|s| s.id).collect();
        assert_eq!(excess, [1, 2]);
        cache.restore(1, Some(Arc::new(StatementDef::for_tests(1))));
        cache.restore(4, None);
        assert!(cache.touch(1) && cache.touch(3) && !cache.touch(4));
    }
}
