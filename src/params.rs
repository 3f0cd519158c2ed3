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

/// The statements that bring a server's `current` values to the client's `wanted` ones,
/// joined into one simple query; None when nothing differs. A tracked extra the client
/// never asked for but another client set on this server (PostgreSQL before 18 does not
/// report `search_path`, so no default is known for it) is `RESET`.
pub fn sync_statements(wanted: &Params, current: &Params, extras: &[String]) -> Option<String> {
    let mut sql = String::new();
    for name in extras {
        if wanted.get(name).is_none() && current.get(name).is_some() {
            sql.push_str("RESET ");
            sql.push_str(&crate::protocol::builders::quote_ident(name));
            sql.push(';');
        }
    }
    for (name, value) in wanted.iter() {
        if current.get(name) != Some(value) {
            sql.push_str("SET ");
            sql.push_str(&crate::protocol::builders::quote_ident(name));
            sql.push_str(" = ");
            sql.push_str(&crate::protocol::builders::quote_literal(value));
            sql.push(';');
        }
    }
    (!sql.is_empty()).then_some(sql)
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
        assert_eq!(
            sync_statements(&wanted, &current, &[]).unwrap(),
            "SET application_name = 'a''b';"
        );
        current.set("application_name", "a'b");
        assert_eq!(sync_statements(&wanted, &current, &[]), None);
    }

    #[test]
    fn extras_set_by_another_client_are_reset() {
        let wanted = Params::default();
        let mut current = Params::default();
        current.set("search_path", "other_schema");
        let extras = vec!["search_path".to_owned()];
        assert_eq!(
            sync_statements(&wanted, &current, &extras).unwrap(),
            "RESET search_path;"
        );
    }
}
