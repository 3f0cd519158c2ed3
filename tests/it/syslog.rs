//! PgBouncer's `syslog = 1`: the log lines reach the syslog daemon, tagged with
//! `syslog_ident[pid]` and sent with `syslog_facility`'s priority. The "daemon" here is a
//! datagram socket the test binds (`syslog_socket`; `/dev/log` by default).

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::harness::ini::{IniFiles, LISTEN};
use crate::harness::{self, pgmux, toml_path};

/// Datagrams received until one contains `needle` (or the time is up).
fn received_until(daemon: &UnixDatagram, needle: &str) -> Vec<String> {
    daemon
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 8192];
    while Instant::now() < deadline {
        if let Ok(n) = daemon.recv(&mut buf) {
            let line = String::from_utf8_lossy(&buf[..n]).into_owned();
            let found = line.contains(needle);
            lines.push(line);
            if found {
                break;
            }
        }
    }
    lines
}

#[tokio::test]
async fn log_lines_go_to_syslog_with_ident_and_facility() {
    let _guard = harness::shared();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("log");
    let daemon = UnixDatagram::bind(&socket).unwrap();
    let pgmux = pgmux()
        .setting("syslog", "true")
        .setting("syslog_ident", "\"pgbouncer\"")
        .setting("syslog_facility", "\"local0\"")
        .setting("syslog_socket", &toml_path(&socket))
        .start()
        .await;
    let client = pgmux.app().await;
    client.simple_query("select 1").await.unwrap();
    drop(client);
    let daemon = tokio::task::spawn_blocking(move || received_until(&daemon, "login attempt"))
        .await
        .unwrap();
    // local0 (16) × 8 + info (6) = 134.
    let login = daemon
        .iter()
        .find(|line| line.contains("login attempt: db=app user=app"))
        .unwrap_or_else(|| panic!("no login line in syslog: {daemon:#?}"));
    let pid = pgmux.pid();
    assert!(
        login.starts_with(&format!("<134>pgbouncer[{pid}]: ")),
        "{login}"
    );
}

#[tokio::test]
async fn a_pgbouncer_ini_with_syslog_tags_lines_pgbouncer() {
    let _guard = harness::shared();
    let files = IniFiles::new();
    let socket = files.path("syslog.sock");
    let daemon = UnixDatagram::bind(&socket).unwrap();
    files.write("userlist.txt", "\"app\" \"secret\"\n");
    files.write(
        "pgbouncer.ini",
        &format!(
            "[databases]\napp = host=127.0.0.1 port={{PGPORT}} dbname=app\n\n[pgbouncer]\n{LISTEN}auth_type = scram-sha-256\nauth_file = {{DIR}}/userlist.txt\nsyslog = 1\nsyslog_socket = {}\n",
            socket.display()
        ),
    );
    let ini = files.path("pgbouncer.ini").display().to_string();
    let pgmux = files.start(&[&ini]).await;
    let client = pgmux.connect("app", "secret", "app").await;
    client.simple_query("select 1").await.unwrap();
    let daemon = tokio::task::spawn_blocking(move || received_until(&daemon, "login attempt"))
        .await
        .unwrap();
    // PgBouncer's defaults: ident pgbouncer, facility daemon (3 × 8 + info 6 = 30).
    assert!(
        daemon
            .iter()
            .any(|line| line.starts_with("<30>pgbouncer[") && line.contains("login attempt")),
        "{daemon:#?}"
    );
}
