//! Session parameters pgmux keeps identical between a client and whichever server serves
//! its transaction (DESIGN.md fact 4).

use std::sync::Arc;

/// The parameters every client's startup values are replayed for. The server reports
/// all of these with ParameterStatus (GUC_REPORT), so a server's current value is known.
pub const TRACKED: [&str; 6] = [
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "IntervalStyle",
    "standard_conforming_strings",
];

/// One parameter: its name and value.
type Entry = (Box<str>, Box<str>);

/// A small ordered name → value map; a handful of entries, so a Vec beats hashing.
///
/// The entries are shared (copy on write): thousands of clients of one application
/// present the same parameters, and `Pool::intern_params` lets them hold one copy
/// (about 0.7 KB per idle client otherwise). `None` is the empty map, which costs no
/// allocation.
#[derive(Debug, Clone, Default)]
pub struct Params {
    entries: Option<Arc<Vec<Entry>>>,
}

impl PartialEq for Params {
    fn eq(&self, other: &Params) -> bool {
        self.entries() == other.entries()
    }
}

impl Eq for Params {}

impl Params {
    fn entries(&self) -> &[Entry] {
        self.entries.as_deref().map_or(&[], Vec::as_slice)
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries()
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// The entries to change, copied first when another holder shares them.
    fn entries_mut(&mut self) -> &mut Vec<Entry> {
        Arc::make_mut(self.entries.get_or_insert_with(Default::default))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|i| &*self.entries()[i].1)
    }

    /// Sets `name`; an unchanged value writes (and copies) nothing.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.position(name) {
            Some(i) if &*self.entries()[i].1 == value => {}
            Some(i) => self.entries_mut()[i].1 = value.into(),
            None => self.entries_mut().push((name.into(), value.into())),
        }
    }

    pub fn remove(&mut self, name: &str) {
        if self.position(name).is_some() {
            self.entries_mut()
                .retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries().iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    /// Whether both hold the very same shared entries (a pointer comparison).
    pub fn shares_with(&self, other: &Params) -> bool {
        match (&self.entries, &other.entries) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

/// The canonical spelling of a tracked parameter name (clients send `timezone`,
/// `datestyle`…; GUC names are case-insensitive), or None if it is not tracked.
pub fn canonical_name<'a>(name: &str, extra: &'a [String]) -> Option<&'a str> {
    TRACKED
        .iter()
        .copied()
        .find(|t| t.eq_ignore_ascii_case(name))
        .or_else(|| {
            extra
                .iter()
                .map(String::as_str)
                .find(|t| t.eq_ignore_ascii_case(name))
        })
}

/// The statements that bring a server's settings to what a client must see.
#[derive(Debug, Default)]
pub struct SyncPlan {
    resets: Vec<String>,
    sets: Vec<(String, String)>,
}

impl SyncPlan {
    /// Adds what differs between `wanted` and `current`: a SET for each wanted value the
    /// server lacks, and a RESET for each name the server has but the client does not
    /// want and `reset_if_unwanted` allows. (PostgreSQL before 18 does not report
    /// `search_path`, so for such a name no default is known: RESET restores it.)
    pub fn add(
        &mut self,
        wanted: &Params,
        current: &Params,
        reset_if_unwanted: impl Fn(&str) -> bool,
    ) {
        for (name, _) in current.iter() {
            if wanted.get(name).is_none() && reset_if_unwanted(name) {
                self.resets.push(name.to_owned());
            }
        }
        for (name, value) in wanted.iter() {
            if current.get(name) != Some(value) {
                self.sets.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    /// One simple query doing it all, or None when nothing differs. Values go through
    /// `set_config`, which parses list settings (`search_path = 'a, b'`) as SET would
    /// parse them unquoted.
    pub fn sql(&self) -> Option<String> {
        use crate::protocol::builders::{quote_ident, quote_literal};
        if self.resets.is_empty() && self.sets.is_empty() {
            return None;
        }
        let mut sql = String::new();
        for name in &self.resets {
            sql.push_str("RESET ");
            sql.push_str(&quote_ident(name));
            sql.push(';');
        }
        if !self.sets.is_empty() {
            let calls: Vec<String> = self
                .sets
                .iter()
                .map(|(name, value)| {
                    format!(
                        "pg_catalog.set_config({}, {}, false)",
                        quote_literal(name),
                        quote_literal(value)
                    )
                })
                .collect();
            sql.push_str("SELECT ");
            sql.push_str(&calls.join(", "));
        }
        Some(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_case_insensitively() {
        let mut params = Params::default();
        params.set("TimeZone", "UTC");
        assert_eq!(params.get("timezone"), Some("UTC"));
        params.set("timezone", "Europe/Paris");
        assert_eq!(params.len(), 1);
        assert_eq!(params.get("TimeZone"), Some("Europe/Paris"));
        assert_eq!(canonical_name("datestyle", &[]), Some("DateStyle"));
        let extra = vec!["search_path".to_owned()];
        assert_eq!(canonical_name("SEARCH_PATH", &extra), Some("search_path"));
        assert_eq!(canonical_name("work_mem", &extra), None);
    }

    #[test]
    fn only_differences_are_set() {
        let mut wanted = Params::default();
        wanted.set("application_name", "a'b");
        wanted.set("TimeZone", "UTC");
        let mut current = Params::default();
        current.set("TimeZone", "UTC");
        let mut plan = SyncPlan::default();
        plan.add(&wanted, &current, |_| false);
        assert_eq!(
            plan.sql().unwrap(),
            "SELECT pg_catalog.set_config('application_name', 'a''b', false)"
        );
        current.set("application_name", "a'b");
        let mut plan = SyncPlan::default();
        plan.add(&wanted, &current, |_| false);
        assert_eq!(plan.sql(), None);
    }

    #[test]
    fn names_another_client_set_are_reset_when_allowed() {
        let wanted = Params::default();
        let mut current = Params::default();
        current.set("search_path", "other_schema");
        current.set("TimeZone", "UTC");
        let mut plan = SyncPlan::default();
        plan.add(&wanted, &current, |name| name == "search_path");
        assert_eq!(plan.sql().unwrap(), "RESET search_path;");
    }

    #[test]
    fn a_shared_copy_is_unchanged_by_writes_to_the_other() {
        let mut first = Params::default();
        first.set("TimeZone", "UTC");
        let mut second = first.clone();
        assert!(second.shares_with(&first));
        second.set("TimeZone", "UTC");
        assert!(
            second.shares_with(&first),
            "an unchanged value copies nothing"
        );
        second.set("TimeZone", "Europe/Paris");
        second.remove("nothing");
        assert_eq!(first.get("TimeZone"), Some("UTC"));
        assert_eq!(second.get("TimeZone"), Some("Europe/Paris"));
        second.remove("timezone");
        assert!(second.is_empty());
        assert_eq!(first.len(), 1);
    }
}
