//! The results as a Markdown table (pgmux and PgBouncer side by side, with ratios) and as
//! JSON, one object per run.

use std::fmt::Write;

use crate::pgbench::Outcome;

#[derive(Debug, Clone)]
pub struct Record {
    /// "throughput", "churn" or "idle".
    pub section: &'static str,
    pub workload: String,
    pub clients: u32,
    /// Idle client connections held open during the run (idle section).
    pub idle: usize,
    /// "pgmux", "pgbouncer" or "direct".
    pub target: &'static str,
    pub outcome: Outcome,
    /// Idle section: the same load before any idle client connected.
    pub baseline: Option<Outcome>,
    pub bytes_per_idle: Option<f64>,
}

pub struct Report {
    pub header: Vec<String>,
    pub records: Vec<Record>,
    pub notes: Vec<String>,
}

fn find<'a>(records: &'a [Record], like: &Record, target: &str) -> Option<&'a Record> {
    records.iter().find(|r| {
        r.section == like.section
            && r.workload == like.workload
            && r.clients == like.clients
            && r.idle == like.idle
            && r.target == target
    })
}

fn num(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "–".to_owned(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() => format!("{:.2}", a / b),
        _ => "–".to_owned(),
    }
}

fn ok(record: Option<&Record>) -> Option<&Outcome> {
    record.map(|r| &r.outcome).filter(|o| o.error.is_none())
}

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| k as f64 / 1024.0)
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(
            out,
            "\n| workload | clients | TPS pgmux | TPS PgBouncer | TPS direct | TPS ratio \
             | p50 ms pgmux / PgB | p99 ms pgmux / PgB | p99 ratio | CPU µs/tx pgmux / PgB \
             | CPU ratio | peak RSS MiB pgmux / PgB |"
        );
        let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        let rows = self
            .records
            .iter()
            .filter(|r| r.section != "idle" && r.target == "pgmux");
        for row in rows {
            let m = ok(Some(row));
            let b = ok(find(&self.records, row, "pgbouncer"));
            let d = ok(find(&self.records, row, "direct"));
            let _ =
                writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {} | {} / {} | {} | {} / {} |",
                row.workload,
                row.clients,
                num(m.map(|o| o.tps), 0),
                num(b.map(|o| o.tps), 0),
                num(d.map(|o| o.tps), 0),
                ratio(m.map(|o| o.tps), b.map(|o| o.tps)),
                num(m.map(|o| o.p50_ms), 2),
                num(b.map(|o| o.p50_ms), 2),
                num(m.map(|o| o.p99_ms), 2),
                num(b.map(|o| o.p99_ms), 2),
                ratio(m.map(|o| o.p99_ms), b.map(|o| o.p99_ms)),
                num(m.and_then(|o| o.cpu_us_per_tx), 1),
                num(b.and_then(|o| o.cpu_us_per_tx), 1),
                ratio(m.and_then(|o| o.cpu_us_per_tx), b.and_then(|o| o.cpu_us_per_tx)),
                num(mib(m.and_then(|o| o.peak_rss_kib)), 1),
                num(mib(b.and_then(|o| o.peak_rss_kib)), 1),
            );
        }
        let idle_rows: Vec<&Record> = self
            .records
            .iter()
            .filter(|r| r.section == "idle" && r.target == "pgmux")
            .collect();
        if !idle_rows.is_empty() {
            let _ = writeln!(
                out,
                "\n| idle clients | bytes/idle client pgmux | PgBouncer | ratio \
                 | active TPS pgmux (0 idle → N) | PgBouncer (0 idle → N) \
                 | active p99 ms pgmux (0 → N) | PgBouncer (0 → N) | peak RSS MiB pgmux / PgB |"
            );
            let _ = writeln!(out, "|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
            for row in idle_rows {
                let b = find(&self.records, row, "pgbouncer");
                let active = |r: Option<&Record>, f: fn(&Outcome) -> f64, d: usize| {
                    let before = r.and_then(|r| r.baseline.as_ref()).map(f);
                    let after = ok(r).map(f);
                    format!("{} → {}", num(before, d), num(after, d))
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
                    row.idle,
                    num(row.bytes_per_idle, 0),
                    num(b.and_then(|r| r.bytes_per_idle), 0),
                    ratio(row.bytes_per_idle, b.and_then(|r| r.bytes_per_idle)),
                    active(Some(row), |o| o.tps, 0),
                    active(b, |o| o.tps, 0),
                    active(Some(row), |o| o.p99_ms, 2),
                    active(b, |o| o.p99_ms, 2),
                    num(mib(row.outcome.peak_rss_kib), 1),
                    num(mib(b.and_then(|r| r.outcome.peak_rss_kib)), 1),
                );
            }
        }
        let errors = self.records.iter().filter_map(|r| {
            let e = r.outcome.error.as_ref()?;
            Some(format!(
                "{} {} c={} idle={}: {e}",
                r.target, r.workload, r.clients, r.idle
            ))
        });
        let notes: Vec<String> = self.notes.iter().cloned().chain(errors).collect();
        if !notes.is_empty() {
            let _ = writeln!(out);
            for note in notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }

    pub fn json(&self) -> String {
        let mut out = String::from("[\n");
        for (i, r) in self.records.iter().enumerate() {
            let o = &r.outcome;
            let opt = |v: Option<f64>| {
                v.filter(|v| v.is_finite())
                    .map_or("null".to_owned(), |v| format!("{v:.3}"))
            };
            let _ = writeln!(
                out,
                "  {{\"section\": {}, \"workload\": {}, \"clients\": {}, \"idle_clients\": {}, \
                 \"target\": {}, \"tps\": {:.1}, \"transactions\": {}, \"p50_ms\": {:.3}, \
                 \"p99_ms\": {:.3}, \"cpu_us_per_tx\": {}, \"peak_rss_kib\": {}, \
                 \"bytes_per_idle_client\": {}, \"baseline_tps\": {}, \"baseline_p99_ms\": {}, \
                 \"error\": {}}}{}",
                quote(r.section),
                quote(&r.workload),
                r.clients,
                r.idle,
                quote(r.target),
                o.tps,
                o.transactions,
                o.p50_ms,
                o.p99_ms,
                opt(o.cpu_us_per_tx),
                o.peak_rss_kib.map_or("null".to_owned(), |v| v.to_string()),
                opt(r.bytes_per_idle),
                opt(r.baseline.as_ref().map(|b| b.tps)),
                opt(r.baseline.as_ref().map(|b| b.p99_ms)),
                o.error.as_deref().map_or("null".to_owned(), quote),
                if i + 1 < self.records.len() { "," } else { "" },
            );
        }
        out.push_str("]\n");
        out
    }
}

fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
