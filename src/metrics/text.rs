//! The text exposition: the names the community pgbouncer_exporter publishes (so its
//! dashboards and alerts keep working), then pgmux's own histograms and process figures.

mod exporter_compat;
mod pgmux_only;

use std::fmt::Write;

use crate::context::Shared;
use exporter_compat::{config, databases, pools, stats};
use pgmux_only::{histograms, prepared, process};

/// Writes one metric family: HELP, TYPE, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape(val));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn render(shared: &Shared) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let mut f = Family { out: &mut out };
    f.head("pgbouncer_up", "gauge", "The pgbouncer scrape succeeded");
    f.sample("pgbouncer_up", &[], 1.0);
    f.head(
        "pgbouncer_version_info",
        "gauge",
        "The pgbouncer version info",
    );
    let version = format!(
        "{} (pgmux {})",
        crate::admin::PGBOUNCER_VERSION,
        env!("CARGO_PKG_VERSION")
    );
    f.sample("pgbouncer_version_info", &[("version", &version)], 1.0);
    pools(shared, &mut f);
    stats(shared, &mut f);
    prepared(shared, &mut f);
    databases(shared, &mut f);
    config(shared, &mut f);
    histograms(shared, &mut f);
    process(shared, &mut f);
    out
}
