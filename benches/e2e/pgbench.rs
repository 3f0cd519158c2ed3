//! One pgbench run: its TPS from the summary, exact latency percentiles from the
//! per-transaction logs (`--log`), and the pooler's CPU time and peak memory around it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{DATABASE, PASSWORD, USER};
use crate::procfs;

/// What to run: pgbench options besides connection, duration and logging.
#[derive(Debug, Clone)]
pub struct Load {
    pub select_only: bool,
    /// `-M simple` or `-M extended`.
    pub protocol: &'static str,
    pub clients: u32,
    /// `-C`: a new connection for every transaction.
    pub reconnect: bool,
    pub seconds: u64,
}

impl Load {
    pub fn label(&self) -> String {
        let script = if self.select_only { "-S" } else { "tpcb" };
        let churn = if self.reconnect { " -C" } else { "" };
        format!("{script} -M {}{churn}", self.protocol)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub tps: f64,
    pub transactions: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Pooler CPU (user + system) per transaction, µs; None for direct runs.
    pub cpu_us_per_tx: Option<f64>,
    pub peak_rss_kib: Option<u64>,
    /// Set when pgbench failed or reported failed transactions.
    pub error: Option<String>,
}

pub struct Runner {
    pub pgbench: PathBuf,
    pub work_dir: PathBuf,
    pub runs: u32,
}

impl Runner {
    /// Runs `load` against 127.0.0.1:`port`, measuring process `pooler_pid` if given.
    pub fn run(&mut self, load: &Load, port: u16, pooler_pid: Option<u32>) -> Outcome {
        self.runs += 1;
        let dir = self.work_dir.join(format!("run-{}", self.runs));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return failed(format!("create {dir:?}: {e}"));
        }
        let threads = load.clients.min(2);
        let mut cmd = Command::new(&self.pgbench);
        cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", USER])
            .args([
                "-n",
                "-c",
                &load.clients.to_string(),
                "-j",
                &threads.to_string(),
            ])
            .args(["-T", &load.seconds.to_string(), "-M", load.protocol])
            .arg("--log")
            .arg(format!("--log-prefix={}", dir.join("tx").display()))
            .env("PGPASSWORD", PASSWORD)
            .current_dir(&dir);
        if load.select_only {
            cmd.arg("-S");
        }
        if load.reconnect {
            cmd.arg("-C");
        }
        cmd.arg(DATABASE);

        if let Some(pid) = pooler_pid {
            procfs::reset_peak(pid);
        }
        let cpu_before = pooler_pid.and_then(procfs::cpu_micros);
        let output = run_with_timeout(cmd, &dir, Duration::from_secs(load.seconds + 180));
        let cpu_after = pooler_pid.and_then(procfs::cpu_micros);
        let peak_rss_kib = pooler_pid.and_then(procfs::peak_rss_kib);

        let (ok, stdout) = match output {
            Ok(out) => out,
            Err(e) => return failed(e),
        };
        let transactions = summary_value(&stdout, "number of transactions actually processed:")
            .map_or(0, |v| v as u64);
        let tps = summary_value(&stdout, "tps =").unwrap_or(0.0);
        let failures = summary_value(&stdout, "number of failed transactions:").unwrap_or(0.0);
        let mut latencies = read_latencies(&dir);
        latencies.sort_unstable();
        let error = if !ok || transactions == 0 {
            Some(format!(
                "pgbench failed: {}",
                last_lines(&dir.join("stderr"), 3)
            ))
        } else if failures > 0.0 {
            Some(format!("{failures} failed transactions"))
        } else {
            None
        };
        let cpu_us_per_tx = match (cpu_before, cpu_after) {
            (Some(before), Some(after)) if transactions > 0 => {
                Some(after.saturating_sub(before) as f64 / transactions as f64)
            }
            _ => None,
        };
        // The per-transaction logs can be large; the numbers are all we keep.
        let _ = std::fs::remove_dir_all(&dir);
        Outcome {
            tps,
            transactions,
            p50_ms: percentile(&latencies, 0.50),
            p99_ms: percentile(&latencies, 0.99),
            cpu_us_per_tx,
            peak_rss_kib,
            error,
        }
    }
}

fn failed(error: String) -> Outcome {
    Outcome {
        error: Some(error),
        ..Outcome::default()
    }
}

/// Runs to completion (killed after `timeout`); (exit success, stdout).
fn run_with_timeout(
    mut cmd: Command,
    dir: &Path,
    timeout: Duration,
) -> Result<(bool, String), String> {
    let stdout_path = dir.join("stdout");
    let stdout = std::fs::File::create(&stdout_path).map_err(|e| e.to_string())?;
    let stderr = std::fs::File::create(dir.join("stderr")).map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("start pgbench: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("pgbench did not finish within {timeout:?}"));
            }
        }
    };
    let text = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    Ok((status.success(), text))
}

/// The number after `key` on the summary line starting with it.
fn summary_value(stdout: &str, key: &str) -> Option<f64> {
    stdout.lines().find_map(|line| {
        let rest = line.trim().strip_prefix(key)?;
        let number: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        number.parse().ok()
    })
}

/// Latencies (µs) of every transaction in the `tx.*` logs: `client tx time script …`.
fn read_latencies(dir: &Path) -> Vec<u32> {
    let mut latencies = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return latencies;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("tx.") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        latencies.extend(
            text.lines()
                .filter_map(|line| line.split(' ').nth(2)?.parse::<u32>().ok()),
        );
    }
    latencies
}

/// Nearest-rank percentile of sorted µs values, in ms.
fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

fn last_lines(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
