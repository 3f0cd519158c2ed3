//! `/metrics` scraped and parsed: the community pgbouncer_exporter's names with the
//! pool's real figures, pgmux's latency histograms, process figures; `/health` and
//! `/ready` for container probes, still answered while draining; log settings.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::admin_support::admin_pgmux;
use crate::harness::{self, Pgmux};

async fn metrics_addr(pgmux: &Pgmux) -> String {
    let marker = "metrics endpoint on http://";
    let line = pgmux
        .wait_for_line(&[marker], Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("{}", pgmux.logs()));
    line.rsplit(marker)
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// GET over plain HTTP/1.1; (status code, body).
async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to metrics");
    let request = format!("GET {path} HTTP/1.1\r\nHost: pgmux\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("metrics answer")
    .unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Samples by their full name with labels, as printed.
fn parse(body: &str) -> HashMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').expect("name value");
            (
                name.to_owned(),
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line}")),
            )
        })
        .collect()
}

#[tokio::test]
async fn metrics_carry_exporter_names_histograms_and_process_figures() {
    let _guard = harness::shared();
    let pgmux = admin_pgmux()
        .setting("metrics_listen", "\"127.0.0.1:0\"")
        .start()
        .await;
    let addr = metrics_addr(&pgmux).await;
    let app = pgmux.app().await;
    for _ in 0..10 {
        app.simple_query("select 1").await.unwrap();
    }
    let (status, body) = get(&addr, "/metrics").await;
    assert_eq!(status, 200);
    let samples = parse(&body);
    let at = |name: &str| {
        *samples
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing:\n{body}"))
    };
    assert_eq!(at("pgbouncer_up"), 1.0);
    assert_eq!(
        at("pgbouncer_pools_client_active_connections{database=\"app\",user=\"app\"}"),
        1.0
    );
    assert_eq!(
        at("pgbouncer_pools_client_waiting_connections{database=\"app\",user=\"app\"}"),
        0.0
    );
    assert_eq!(
        at("pgbouncer_pools_server_idle_connections{database=\"app\",user=\"app\"}"),
        1.0
    );
    assert!(at("pgbouncer_stats_queries_pooled_total{database=\"app\"}") >= 10.0);
    assert!(at("pgbouncer_stats_sql_transactions_pooled_total{database=\"app\"}") >= 10.0);
    assert!(at("pgbouncer_stats_received_bytes_total{database=\"app\"}") > 0.0);
    assert!(samples
        .keys()
        .any(|k| k.starts_with("pgbouncer_databases_pool_size{name=\"app\"")));
    assert_eq!(at("pgbouncer_config_max_client_connections"), 100.0);
    // Wait histogram: one observation per checkout, buckets cumulative up to +Inf.
    let labels = "database=\"app\",user=\"app\"";
    let count = at(&format!("pgmux_client_wait_seconds_count{{{labels}}}"));
    assert!(count >= 10.0, "{count}");
    assert_eq!(
        at(&format!(
            "pgmux_client_wait_seconds_bucket{{{labels},le=\"+Inf\"}}"
        )),
        count
    );
    let buckets: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with("pgmux_client_wait_seconds_bucket{database=\"app\""))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
        .collect();
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "cumulative: {buckets:?}"
    );
    for family in [
        "pgmux_query_duration_seconds",
        "pgmux_transaction_duration_seconds",
    ] {
        assert!(
            body.contains(&format!("# TYPE {family} histogram")),
            "{family}"
        );
        // Ten single-statement transactions: each observed once as a query and once
        // as a transaction.
        let count = at(&format!("{family}_count{{{labels}}}"));
        assert!(count >= 10.0, "{family}: {count}");
        assert_eq!(
            at(&format!("{family}_bucket{{{labels},le=\"+Inf\"}}")),
            count,
            "{family}"
        );
    }
    assert!(at("process_resident_memory_bytes") > 0.0);
    assert!(at("process_open_fds") > 0.0);
}

#[tokio::test]
async fn health_and_ready_answer_and_ready_turns_503_while_draining() {
    let _guard = harness::shared();
    let pgmux = admin_pgmux()
        .setting("metrics_listen", "\"127.0.0.1:0\"")
        .setting("shutdown_timeout", "20")
        .start()
        .await;
    let addr = metrics_addr(&pgmux).await;
    assert_eq!(get(&addr, "/health").await.0, 200);
    assert_eq!(get(&addr, "/ready").await.0, 200);
    assert_eq!(get(&addr, "/nothing").await.0, 404);
    let app = pgmux.app().await;
    app.batch_execute("begin; select 1").await.unwrap();
    pgmux.signal("TERM");
    assert!(
        pgmux
            .wait_for_log("got SIGTERM", Duration::from_secs(5))
            .await
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while get(&addr, "/ready").await.0 != 503 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        get(&addr, "/ready").await.0,
        503,
        "not ready while draining"
    );
    assert_eq!(get(&addr, "/health").await.0, 200, "still alive");
    assert_eq!(
        get(&addr, "/metrics").await.0,
        200,
        "scrapes answered during shutdown"
    );
    app.batch_execute("commit").await.unwrap();
}

#[tokio::test]
async fn log_settings_silence_connection_lines_and_json_format_writes_objects() {
    let _guard = harness::shared();
    let quiet = admin_pgmux()
        .setting("log_connections", "false")
        .setting("log_disconnections", "false")
        .start()
        .await;
    drop(quiet.app().await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!quiet.logs().contains("login attempt"), "{}", quiet.logs());
    assert!(
        !quiet.logs().contains("closing because"),
        "{}",
        quiet.logs()
    );
    assert!(
        !quiet.logs().contains("new connection to server"),
        "{}",
        quiet.logs()
    );

    // The harness reads text logs, so the JSON run is a bare process of our own.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pooler.toml");
    std::fs::write(
        &config,
        "listen_port = 0\nunix_socket_dir = \"\"\nlog_format = \"json\"\n[databases.app]\nport = 1\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pgmux"))
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start pgmux");
    let stderr = child.stderr.take().unwrap();
    let first = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .next()
            .map(|l| l.unwrap())
    });
    let line = tokio::task::spawn_blocking(move || first.join().unwrap())
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a log line");
    assert!(
        line.starts_with('{')
            && line.contains("\"level\":\"INFO\"")
            && line.contains("listening on"),
        "{line}"
    );
}
