//! Session parameters pgmux keeps identical between a client and whichever server serves
//! its transaction (DESIGN.md fact 4).

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

/// A small ordered name → value map; a handful of entries, so a Vec beats hashing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    entries: Vec<(String, String)>,
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, name: &str, value: &str) {
        match self
            .entries
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(entry) if entry.1 != value => entry.1 = value.to_owned(),
            Some(_) => {}
            None => self.entries.push((name.to_owned(), value.to_owned())),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.entries.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
}
