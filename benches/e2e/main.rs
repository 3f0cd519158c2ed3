//! End-to-end benchmark: pgmux and PgBouncer side by side in front of a throwaway
//! PostgreSQL, driven by pgbench. `cargo bench --bench e2e`; see README "Performance".
//!
//! Environment: E2E_SECONDS (per run, default 10), E2E_QUICK=1 (2 s runs, fewer cells),
//! E2E_CLIENTS=50,200 and E2E_IDLE=1000,10000 (override the cells), E2E_PGMUX (binary).
//! Results: stdout and target/bench/e2e.md, target/bench/e2e.json.

mod cluster;
mod idle;
mod pgbench;
mod pooler;
mod process;
mod procfs;
mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pgbench::{Load, Outcome, Runner};
use pooler::{Kind, Launcher, Pooler};
use report::{Record, Report};

struct Plan {
    seconds: u64,
    /// (select-only, protocol) pairs.
    scripts: Vec<(bool, &'static str)>,
    clients: Vec<u32>,
    churn_clients: u32,
    idle: Vec<usize>,
    active_clients: u32,
}

impl Plan {
    fn from_env() -> Plan {
        let quick = std::env::var("E2E_QUICK").is_ok_and(|v| v != "0" && !v.is_empty());
        let seconds = std::env::var("E2E_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick { 2 } else { 10 });
        let list = |name: &str, default: &[usize]| -> Vec<usize> {
            std::env::var(name)
                .ok()
                .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
                .unwrap_or_else(|| default.to_vec())
        };
        let (scripts, clients, idle): (Vec<_>, &[usize], &[usize]) = if quick {
            (
                vec![(true, "extended"), (false, "simple")],
                &[50, 200],
                &[1_000],
            )
        } else {
            (
                vec![
                    (true, "simple"),
                    (true, "extended"),
                    (false, "simple"),
                    (false, "extended"),
                ],
                &[50, 200, 1_000],
                &[1_000, 10_000, 50_000],
            )
        };
        Plan {
            seconds,
            scripts,
            clients: list("E2E_CLIENTS", clients)
                .into_iter()
                .map(|c| c as u32)
                .collect(),
            churn_clients: 50,
            idle: list("E2E_IDLE", idle),
            active_clients: 4,
        }
    }
}

fn main() {
    // `cargo test --benches` runs this without --bench: nothing to check, do not spend minutes.
    if !std::env::args().any(|a| a == "--bench") {
        println!("e2e: a benchmark; run it with `cargo bench --bench e2e`");
        return;
    }
    match run() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("e2e: {e}");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<(), String> {
    let plan = Plan::from_env();
    let started = Instant::now();
    let file_limit = procfs::raise_file_limit();
    let as_service_user = process::running_as_root();
    let service_ids = if as_service_user {
        Some(process::service_ids(process::SERVICE_USER)?)
    } else {
        None
    };
    let pgmux = std::env::var_os("E2E_PGMUX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pgmux")));
    let pgbouncer = process::find_program("pgbouncer");
    if pgbouncer.is_none() {
        eprintln!("e2e: PgBouncer not installed, skipping it (apt-get install pgbouncer)");
    }
    let root = tempfile::Builder::new()
        .prefix("pgmux-e2e-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let root_path = root.path().to_path_buf();
    let pids_file = root_path.join("pids");
    cluster::hand_over(&root_path, as_service_user)?;

    let bin_dir = process::postgres_bin_dir();
    let mut pg = cluster::Cluster::new(&root_path, bin_dir, process::free_port(), as_service_user);
    process::spawn_watchdog(&root_path, &pids_file, &pg.stop_command())?;
    eprintln!(
        "e2e: starting PostgreSQL and loading pgbench scale {}",
        cluster::SCALE
    );
    pg.start()?;
    pg.load_pgbench()?;
    let bench_dir = root_path.join("pgbench");
    std::fs::create_dir_all(&bench_dir).map_err(|e| e.to_string())?;
    let mut runner = Runner {
        pgbench: pg.bin("pgbench"),
        work_dir: bench_dir,
        runs: 0,
    };
    let launcher = Launcher {
        pgmux: pgmux.clone(),
        pgbouncer: pgbouncer.clone(),
        service_ids,
        pg_port: pg.port,
        root: root_path.clone(),
        pids_file,
    };
    let kinds: Vec<Kind> = if pgbouncer.is_some() {
        vec![Kind::Pgmux, Kind::PgBouncer]
    } else {
        vec![Kind::Pgmux]
    };

    let mut header = vec![
        "## pgmux vs PgBouncer, end to end (pgbench)".to_owned(),
        String::new(),
        format!(
            "- machine: {} cores, {}; load average at start {}",
            procfs::cores(),
            procfs::cpu_model(),
            procfs::load_average()
        ),
        format!(
            "- PostgreSQL {} (throwaway cluster: fsync=off, synchronous_commit=off, \
             full_page_writes=off, max_connections={}), pgbench scale {}",
            pg.version(),
            cluster::MAX_CONNECTIONS,
            cluster::SCALE
        ),
        format!(
            "- {}; pgmux {} ({})",
            pgbouncer
                .as_deref()
                .map_or("PgBouncer not installed".to_owned(), process::version_of),
            git_revision(),
            pgmux.display()
        ),
        format!(
            "- both poolers: transaction pooling, default_pool_size {}, max_client_conn {}, \
             md5 client auth, TCP on 127.0.0.1, logging at warning level; pgbench -j 2, \
             {} s per run, pooler/pgbench order alternating per cell",
            pooler::POOL_SIZE,
            pooler::MAX_CLIENT_CONN,
            plan.seconds
        ),
        format!("- open-file limit {file_limit}"),
    ];
    let mut notes = Vec::new();
    let mut records = Vec::new();

    // Throughput and churn: one long-lived instance of each pooler, pools warmed first.
    let mut poolers: Vec<Pooler> = Vec::new();
    for &kind in &kinds {
        let pooler = launcher.start(kind, "main")?;
        let warm = Load {
            select_only: true,
            protocol: "simple",
            clients: 50,
            reconnect: false,
            seconds: 2,
        };
        runner.run(&warm, pooler.port, None);
        poolers.push(pooler);
    }
    let mut cell = 0;
    let mut cells: Vec<(&'static str, Load)> = Vec::new();
    for &(select_only, protocol) in &plan.scripts {
        for &clients in &plan.clients {
            cells.push((
                "throughput",
                Load {
                    select_only,
                    protocol,
                    clients,
                    reconnect: false,
                    seconds: plan.seconds,
                },
            ));
        }
    }
    cells.push((
        "churn",
        Load {
            select_only: true,
            protocol: "simple",
            clients: plan.churn_clients,
            reconnect: true,
            seconds: plan.seconds,
        },
    ));
    for (section, load) in &cells {
        let mut order: Vec<Option<usize>> = (0..poolers.len()).map(Some).collect();
        if cell % 2 == 1 {
            order.reverse();
        }
        order.push(None); // direct to PostgreSQL: the ceiling
        cell += 1;
        for target in order {
            let (name, port, pid) = match target {
                Some(i) => (
                    poolers[i].kind.name(),
                    poolers[i].port,
                    Some(poolers[i].pid()),
                ),
                None => ("direct", pg.port, None),
            };
            let outcome = runner.run(load, port, pid);
            progress(name, &load.label(), load.clients, 0, &outcome);
            records.push(Record {
                section,
                workload: load.label(),
                clients: load.clients,
                idle: 0,
                target: name,
                outcome,
                baseline: None,
                bytes_per_idle: None,
            });
        }
    }
    drop(poolers);

    // Idle scale: a fresh pooler per cell, so its memory baseline is its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let max_idle = (file_limit.saturating_sub(1_000) / 1_000 * 1_000) as usize;
    let mut idle_cells: Vec<usize> = Vec::new();
    for &n in &plan.idle {
        if n > max_idle {
            notes.push(format!(
                "idle cell of {n} clients skipped: it needs an open-file limit above {n} for both \
                 the pooler and the benchmark, and the hard limit here is {file_limit} \
                 (raising it needs CAP_SYS_RESOURCE); measured {max_idle} instead"
            ));
            if !idle_cells.contains(&max_idle) && max_idle > 0 {
                idle_cells.push(max_idle);
            }
        } else if !idle_cells.contains(&n) {
            idle_cells.push(n);
        }
    }
    idle_cells.sort_unstable();
    for (i, &n) in idle_cells.iter().enumerate() {
        let mut order = kinds.clone();
        if i % 2 == 1 {
            order.reverse();
        }
        for kind in order {
            let record = idle_cell(&launcher, &mut runner, &runtime, kind, n, &plan)?;
            records.push(record);
        }
    }

    header[2].push_str(&format!(", at end {}", procfs::load_average()));
    header.push(format!(
        "- benchmark took {:.0?}; CPU µs/tx is the pooler's user+system time over the run \
         (including client logins) divided by transactions; p50/p99 from pgbench's \
         per-transaction logs; ratios are pgmux / PgBouncer",
        started.elapsed()
    ));
    let report = Report {
        header,
        records,
        notes,
    };
    let markdown = report.markdown();
    println!("\n{markdown}");
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("create {out_dir:?}: {e}"))?;
    std::fs::write(out_dir.join("e2e.md"), &markdown).map_err(|e| e.to_string())?;
    std::fs::write(out_dir.join("e2e.json"), report.json()).map_err(|e| e.to_string())?;
    eprintln!("e2e: wrote {}/e2e.md and e2e.json", out_dir.display());
    drop(pg);
    drop(root);
    Ok(())
}

/// N idle logged-in clients on a fresh pooler while a few clients run `pgbench -S`.
fn idle_cell(
    launcher: &Launcher,
    runner: &mut Runner,
    runtime: &tokio::runtime::Runtime,
    kind: Kind,
    n: usize,
    plan: &Plan,
) -> Result<Record, String> {
    let pooler = launcher.start(kind, &format!("idle-{n}"))?;
    let load = Load {
        select_only: true,
        protocol: "simple",
        clients: plan.active_clients,
        reconnect: false,
        seconds: plan.seconds,
    };
    runner.run(
        &Load {
            seconds: 1,
            ..load.clone()
        },
        pooler.port,
        None,
    );
    let baseline = runner.run(&load, pooler.port, Some(pooler.pid()));
    let rss_before = procfs::rss_kib(pooler.pid());
    let idle = runtime.block_on(idle::open(pooler.port, n));
    std::thread::sleep(Duration::from_secs(1));
    let rss_after = procfs::rss_kib(pooler.pid());
    let mut outcome = runner.run(&load, pooler.port, Some(pooler.pid()));
    let held = idle.streams.len();
    if idle.failures > 0 {
        let message = format!(
            "{} of {n} idle logins failed (first: {})",
            idle.failures,
            idle.first_error.as_deref().unwrap_or("?")
        );
        outcome.error = Some(
            outcome
                .error
                .map_or(message.clone(), |e| format!("{e}; {message}")),
        );
    }
    let bytes_per_idle = match (rss_before, rss_after) {
        (Some(before), Some(after)) if held > 0 => {
            Some((after as f64 - before as f64) * 1024.0 / held as f64)
        }
        _ => None,
    };
    progress(kind.name(), &load.label(), load.clients, n, &outcome);
    eprintln!(
        "      idle {held}: RSS {} → {} KiB, {:.0} bytes per idle client",
        rss_before.unwrap_or(0),
        rss_after.unwrap_or(0),
        bytes_per_idle.unwrap_or(f64::NAN)
    );
    // Close the idle clients before the pooler, inside the runtime that owns them.
    runtime.block_on(async { drop(idle) });
    drop(pooler);
    Ok(Record {
        section: "idle",
        workload: load.label(),
        clients: load.clients,
        idle: n,
        target: kind.name(),
        outcome,
        baseline: Some(baseline),
        bytes_per_idle,
    })
}

fn progress(target: &str, workload: &str, clients: u32, idle: usize, o: &Outcome) {
    let idle = if idle > 0 {
        format!(" +{idle} idle")
    } else {
        String::new()
    };
    eprintln!(
        "e2e: {target:9} {workload:22} c={clients:<5}{idle} tps={:>8.0} p50={:.2}ms p99={:.2}ms cpu/tx={}µs{}",
        o.tps,
        o.p50_ms,
        o.p99_ms,
        o.cpu_us_per_tx.map_or("–".to_owned(), |c| format!("{c:.1}")),
        o.error.as_deref().map_or(String::new(), |e| format!("  ERROR {e}")),
    );
}

fn git_revision() -> String {
    std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "describe",
            "--always",
            "--dirty",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}
