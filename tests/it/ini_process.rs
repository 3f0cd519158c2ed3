//! The PgBouncer command line and process model on ini files: warnings for unsupported
//! settings, errors for unknown ones, `convert`, `-d` with `pidfile`, `-q`/`logfile`,
//! `--version`, and SIGQUIT.

use std::time::{Duration, Instant};

use crate::harness;
use crate::harness::ini::{alive, listening_addr, signal, IniFiles, LISTEN};

fn app_ini(extra_pgbouncer: &str) -> String {
    format!(
        "[databases]\napp = host=127.0.0.1 port={{PGPORT}} client_encoding=UTF8\n* = host=127.0.0.1 port={{PGPORT}}\n\n[pgbouncer]\n{LISTEN}auth_type = scram-sha-256\nauth_file = {{DIR}}/userlist.txt\npool_mode = transaction\n{extra_pgbouncer}"
    )
}

fn files_with(extra_pgbouncer: &str) -> (IniFiles, String) {
    let files = IniFiles::new();
    files.write("userlist.txt", "\"app\" \"secret\"\n");
    let ini = files.write("pgbouncer.ini", &app_ini(extra_pgbouncer));
    (files, ini.display().to_string())
}

#[tokio::test]
async fn unsupported_settings_log_one_warning_each_even_after_reload() {
    let _guard = harness::shared();
    let (files, ini) = files_with("dns_max_ttl = 30\nserver_round_robin = 1\ndisable_pqexec = 1\n");
    let pgmux = files.start(&[&ini]).await;
    let client = pgmux.connect("app", "secret", "app").await;
    client.query_one("select 1", &[]).await.unwrap();

    pgmux.signal("HUP");
    assert!(
        pgmux.wait_for_log("reloaded", Duration::from_secs(5)).await,
        "{}",
        pgmux.logs()
    );
    for setting in ["dns_max_ttl", "server_round_robin", "disable_pqexec"] {
        let line = format!("setting {setting} is not supported by pgmux and is ignored");
        assert_eq!(
            pgmux.count_log_lines(&line),
            1,
            "{setting}\n{}",
            pgmux.logs()
        );
    }
    assert_eq!(
        pgmux.count_log_lines("connection parameter client_encoding (database app) is not supported by pgmux and is ignored"),
        1,
        "{}",
        pgmux.logs()
    );
}

#[tokio::test]
async fn unknown_keys_fail_with_one_line_naming_file_and_key() {
    let _guard = harness::shared();
    let (files, ini) = files_with("max_client_connections = 10\n");
    let output = files.run(&["--check", &ini]);
    assert!(!output.success(), "{output:?}");
    let lines: Vec<&str> = output
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "{output:?}");
    assert!(lines[0].contains(&format!("{ini}:")), "{}", lines[0]);
    assert!(lines[0].contains("max_client_connections"), "{}", lines[0]);

    let files = IniFiles::new();
    let bad = files.write(
        "pgbouncer.ini",
        "[databases]\napp = host=x sslmode=require\n[pgbouncer]\n",
    );
    let output = files.run(&["--check", bad.to_str().unwrap()]);
    assert!(!output.success());
    assert!(
        output
            .stderr
            .contains("unrecognized connection parameter: sslmode"),
        "{output:?}"
    );
}

/// `pgmux convert` prints a pooler.toml that passes `--check` and serves the same clients.
#[tokio::test]
async fn convert_output_passes_check_and_serves_the_same_clients() {
    let _guard = harness::shared();
    let (files, ini) = files_with("default_pool_size = 3\ntcp_keepcnt = 3\n");
    let converted = files.run(&["convert", &ini]);
    converted.assert_success();
    assert!(
        converted.stdout.contains("default_pool_size = 3"),
        "{}",
        converted.stdout
    );
    assert!(
        converted.stdout.contains("# tcp_keepcnt = 3"),
        "{}",
        converted.stdout
    );
    let toml = files.write("pooler.toml", &converted.stdout);
    let toml = toml.to_str().unwrap().to_owned();
    let check = files.run(&["--check", &toml]);
    check.assert_success();
    assert!(check.stdout.contains(": ok"));

    let pgmux = files.start(&[&toml]).await;
    let client = pgmux.connect("app", "secret", "postgres").await;
    let row = client
        .query_one("select current_database()::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "postgres");
}

#[tokio::test]
async fn version_flags_print_the_version_line_first() {
    let _guard = harness::shared();
    let files = IniFiles::new();
    for flag in ["-V", "--version"] {
        let output = files.run(&[flag]);
        output.assert_success();
        assert_eq!(
            output.stdout.lines().next(),
            Some(concat!(
                "PgBouncer 1.25.0 (pgmux ",
                env!("CARGO_PKG_VERSION"),
                ")"
            )),
            "{flag}"
        );
    }
}

fn read_port_from_logfile(path: &std::path::Path, timeout: Duration) -> u16 {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if let Some(addr) = listening_addr(&lines) {
            return addr.port();
        }
        assert!(
            Instant::now() < deadline,
            "no listening line in logfile:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `-d` with `pidfile`: the command returns, the daemon's pid is in the file and it
/// serves clients; SIGTERM stops it and the pid file goes away.
#[tokio::test]
async fn daemon_mode_writes_pidfile_serves_and_stops_on_sigterm() {
    let _guard = harness::shared();
    let (files, ini) = files_with("pidfile = {DIR}/pgmux.pid\nlogfile = {DIR}/pgmux.log\n");
    let output = files.run(&["-d", &ini]);
    output.assert_success();
    let pidfile = files.path("pgmux.pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "no pid file");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(alive(pid));
    let port = read_port_from_logfile(&files.path("pgmux.log"), Duration::from_secs(10));
    let url = format!("postgres://app:secret@127.0.0.1:{port}/app");
    let client = crate::harness::ini::connect_url(&url).await.unwrap();
    client.query_one("select 1", &[]).await.unwrap();
    drop(client);

    signal(pid, "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "daemon still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!pidfile.exists(), "pid file left behind");
}

#[tokio::test]
async fn daemon_mode_without_pidfile_is_refused() {
    let _guard = harness::shared();
    let (files, ini) = files_with("");
    let output = files.run(&["-d", &ini]);
    assert!(!output.success());
    assert!(output.stderr.contains("pidfile"), "{output:?}");
}

/// `-q` silences stderr; the logfile still gets every line.
#[tokio::test]
async fn quiet_mode_logs_only_to_the_logfile() {
    let _guard = harness::shared();
    let (files, ini) = files_with("logfile = {DIR}/quiet.log\n");
    let logfile = files.path("quiet.log");
    let mut cmd = crate::harness::ini::pgmux_command();
    cmd.args(["-q", &ini]);
    let (mut child, logs, _readers) = spawn(&mut cmd);
    let port = read_port_from_logfile(&logfile, Duration::from_secs(10));
    let client =
        crate::harness::ini::connect_url(&format!("postgres://app:secret@127.0.0.1:{port}/app"))
            .await
            .unwrap();
    client.query_one("select 1", &[]).await.unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let captured = logs.lock().unwrap().join("\n");
    assert!(captured.trim().is_empty(), "stderr not quiet:\n{captured}");
}

type Captured = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

fn spawn(
    cmd: &mut std::process::Command,
) -> (
    std::process::Child,
    Captured,
    Vec<std::thread::JoinHandle<()>>,
) {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    let pipes: Vec<Box<dyn std::io::Read + Send>> = vec![
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    for pipe in pipes {
        let logs = logs.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                logs.lock().unwrap().push(line);
            }
        }));
    }
    (child, logs, readers)
}

/// SIGQUIT exits at once, without waiting for the open transaction (SIGTERM/SIGINT would
/// wait up to shutdown_timeout).
#[tokio::test]
async fn sigquit_exits_immediately_despite_an_open_transaction() {
    let _guard = harness::shared();
    // A long drain: SIGTERM would keep pgmux up for a minute with this transaction open.
    let (files, ini) = files_with("pidfile = {DIR}/quit.pid\nshutdown_timeout = 60\n");
    let mut pgmux = files.start(&[&ini]).await;
    let client = pgmux.connect("app", "secret", "app").await;
    client.batch_execute("begin; select 1").await.unwrap();
    pgmux.signal("QUIT");
    let status = pgmux.wait_exit(Duration::from_secs(5)).await;
    assert!(
        status.is_some(),
        "pgmux still running 5 s after SIGQUIT\n{}",
        pgmux.logs()
    );
    assert!(
        !pgmux.files.path("quit.pid").exists(),
        "pid file left behind"
    );
    assert!(client
        .query_one("select 1", &[])
        .await
        .expect_err("pgmux is gone")
        .is_closed());
}
