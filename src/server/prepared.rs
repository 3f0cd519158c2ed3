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

    pub fn remove(&mut self, id: u64) {
        self.by_id.remove(&id);
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
}
