//! pgmux in place of PgBouncer, driven as PgBouncer's documentation drives it: a packaged
//! `pgbouncer.ini` (per-database and per-user pool modes, a forced user, `%include`,
//! comments) with its `userlist.txt`, operated with psql on the console over the unix
//! socket (PAUSE/RESUME, RELOAD after editing the file, SET), log rotation by RELOAD or
//! SIGHUP, SIGINT, and the errors and log lines clients and operators see.

use std::process::Command;
use std::time::Duration;

use crate::harness::ini::{IniFiles, IniPgmux, LISTEN};
use crate::harness::{self, postgres, ToolOutput};
use crate::support::{current_user, message, sqlstate, within};

const WAIT: Duration = Duration::from_secs(5);

/// A packaged setup: the main file with a `%include`d database file, as distributions ship.
fn packaged(extra_pgbouncer: &str) -> IniFiles {
    let files = IniFiles::new();
    files.write(
        "userlist.txt",
        ";; made by mkauth\n\"app\" \"secret\"\n\"other\" \"othersecret\"\n\"admin\" \"adminpw\"\n",
    );
    files.write(
        "reporting.ini",
        "[databases]\n; read-only reports go through one forced role\nreports = host=127.0.0.1 port={PGPORT} dbname=app user=clearuser password=clearsecret pool_mode=statement\n",
    );
    files.write(
        "pgbouncer.ini",
        &format!(
            ";; pgbouncer.ini\n[databases]\napp = host=127.0.0.1 port={{PGPORT}} dbname=app\nsessions = host=127.0.0.1 port={{PGPORT}} dbname=app pool_mode=session\n%include {{DIR}}/reporting.ini\n\n[users]\nother = pool_mode=session\n\n[pgbouncer]\n{LISTEN}auth_type = scram-sha-256\nauth_file = {{DIR}}/userlist.txt\nadmin_users = admin\npool_mode = transaction\ndefault_pool_size = 5\n{extra_pgbouncer}"
        ),
    );
    files
}

async fn start(files: IniFiles) -> IniPgmux {
    let ini = files.path("pgbouncer.ini").display().to_string();
    files.start(&[&ini]).await
}

/// psql on the console over the unix socket as `pgbouncer`: the operator's runbook.
fn console(pgmux: &IniPgmux, sql: &str) -> ToolOutput {
    let mut cmd = Command::new(postgres().bin("psql"));
    cmd.env_remove("PGPASSWORD")
        .args(["-X", "-A", "-t", "-w", "-h"])
        .arg(pgmux.socket_dir())
        .args([
            "-p",
            &pgmux.port().to_string(),
            "-U",
            "pgbouncer",
            "pgbouncer",
        ])
        .args(["-c", sql]);
    harness::run_tool(&mut cmd, Duration::from_secs(20))
}

async fn expect_line(pgmux: &IniPgmux, needle: &str) {
    assert!(
        pgmux.wait_for_log(needle, WAIT).await,
        "no line with {needle:?}\n{}",
        pgmux.logs()
    );
}

#[tokio::test]
async fn pool_modes_come_from_databases_and_users_sections() {
    let _guard = harness::shared();
    let pgmux = start(packaged("")).await;
    // reports: statement mode and its forced role; a transaction block is refused with
    // PgBouncer's words.
    let reports = pgmux.connect("app", "secret", "reports").await;
    assert_eq!(current_user(&reports).await, "clearuser");
    let error = reports.batch_execute("begin").await.unwrap_err();
    assert_eq!(
        (sqlstate(&error), message(&error)),
        (
            "08P01".into(),
            "transaction blocks not allowed in statement pooling mode".into()
        )
    );
    // sessions: session mode keeps the server, so a temp table lives on.
    let sessions = pgmux.connect("app", "secret", "sessions").await;
    sessions
        .batch_execute("create temp table scratch (x int); insert into scratch values (1)")
        .await
        .unwrap();
    let row = sessions
        .query_one("select count(*) from scratch", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    // other: session mode from [users], on a transaction-mode database.
    let other = pgmux.connect("other", "othersecret", "app").await;
    other
        .batch_execute("create temp table mine (x int)")
        .await
        .unwrap();
    other.batch_execute("select * from mine").await.unwrap();
}

#[tokio::test]
async fn reload_after_editing_the_ini_applies_it_and_a_broken_ini_changes_nothing() {
    let _guard = harness::shared();
    let pgmux = start(packaged("")).await;
    let error = pgmux
        .try_connect("app", "secret", "newdb")
        .await
        .unwrap_err();
    assert_eq!(
        (sqlstate(&error), message(&error)),
        ("08P01".into(), "no such database: newdb".into())
    );

    let original = std::fs::read_to_string(pgmux.files.path("pgbouncer.ini")).unwrap();
    let added = original.replace(
        "[users]",
        "newdb = host=127.0.0.1 port={PGPORT} dbname=app\n\n[users]",
    );
    pgmux.files.write("pgbouncer.ini", &added);
    let admin = pgmux.connect("admin", "adminpw", "pgbouncer").await;
    admin.simple_query("RELOAD").await.unwrap();
    let newdb = pgmux.connect("app", "secret", "newdb").await;
    newdb.query_one("select 1", &[]).await.unwrap();

    // A typo: RELOAD answers PgBouncer's error and the running settings stay.
    let broken = added.replace("default_pool_size = 5", "default_pool_sise = 5");
    pgmux.files.write("pgbouncer.ini", &broken);
    let error = admin.simple_query("RELOAD").await.unwrap_err();
    assert_eq!(
        (sqlstate(&error), message(&error)),
        (
            "F0000".into(),
            "RELOAD failed, see logs for additional details".into()
        )
    );
    expect_line(&pgmux, "default_pool_sise").await;
    pgmux.connect("app", "secret", "newdb").await;

    // SIGHUP on the broken file: one error line, and pgmux keeps serving.
    pgmux.signal("HUP");
    expect_line(&pgmux, "got SIGHUP, re-reading config").await;
    assert!(
        within(WAIT, async {
            while pgmux.count_log_lines("default_pool_sise") < 2 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .is_some(),
        "{}",
        pgmux.logs()
    );
    newdb.query_one("select 2", &[]).await.unwrap();
    pgmux.connect("app", "secret", "newdb").await;
}

#[tokio::test]
async fn reload_and_sighup_reopen_the_logfile_for_rotation() {
    let _guard = harness::shared();
    let pgmux = start(packaged("logfile = {DIR}/pgbouncer.log\n")).await;
    let log = pgmux.files.path("pgbouncer.log");
    let rotated = pgmux.files.path("pgbouncer.log.1");
    drop(pgmux.connect("app", "secret", "app").await);
    expect_line(&pgmux, "closing because: client close request").await;
    std::fs::rename(&log, &rotated).unwrap();

    let reload = console(&pgmux, "RELOAD");
    reload.assert_success();
    drop(pgmux.connect("other", "othersecret", "app").await);
    let written = |path: &std::path::Path, needle: &str| {
        std::fs::read_to_string(path).is_ok_and(|text| text.contains(needle))
    };
    let in_new_file = "app/other@127.0.0.1";
    assert!(
        within(WAIT, async {
            while !written(&log, in_new_file) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .is_some(),
        "no new logfile after RELOAD\n{}",
        pgmux.logs()
    );
    assert!(written(&rotated, "app/app@127.0.0.1"));
    assert!(!written(&rotated, in_new_file));

    std::fs::rename(&log, pgmux.files.path("pgbouncer.log.2")).unwrap();
    pgmux.signal("HUP");
    expect_line(&pgmux, "got SIGHUP, re-reading config").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(pgmux.connect("app", "secret", "sessions").await);
    assert!(
        within(WAIT, async {
            while !written(&log, "sessions/app@127.0.0.1") {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .is_some(),
        "no new logfile after SIGHUP\n{}",
        pgmux.logs()
    );
}

#[tokio::test]
async fn pause_and_resume_on_the_console_or_by_signal_hold_clients_and_close_idle_servers() {
    let _guard = harness::shared();
    let pgmux = start(packaged("")).await;
    let client = pgmux.connect("app", "secret", "app").await;
    client.query_one("select 1", &[]).await.unwrap();

    console(&pgmux, "PAUSE").assert_success();
    // PgBouncer closes idle servers on PAUSE, and says why.
    expect_line(&pgmux, "closing because: pause mode").await;
    let held = tokio::spawn(async move { client.query_one("select 2", &[]).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "a query ran while paused");
    console(&pgmux, "RESUME").assert_success();
    within(WAIT, held)
        .await
        .expect("RESUME released the client")
        .unwrap()
        .unwrap();

    // The same by signal: SIGUSR1 pauses, SIGUSR2 resumes.
    let client = pgmux.connect("app", "secret", "app").await;
    pgmux.signal("USR1");
    expect_line(&pgmux, "got SIGUSR1").await;
    let held = tokio::spawn(async move { client.query_one("select 3", &[]).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "a query ran after SIGUSR1");
    pgmux.signal("USR2");
    within(WAIT, held)
        .await
        .expect("SIGUSR2 released the client")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn set_on_the_console_switches_log_lines_and_show_config_reports_it() {
    let _guard = harness::shared();
    let pgmux = start(packaged("stats_period = 1\n")).await;
    // The periodic stats line, in PgBouncer's words.
    expect_line(&pgmux, "stats: 0 xacts/s, 0 queries/s, 0 client parses/s").await;

    console(&pgmux, "SET log_connections = 0").assert_success();
    let config = console(&pgmux, "SHOW CONFIG");
    assert!(
        config
            .stdout
            .lines()
            .any(|l| l.starts_with("log_connections|0|")),
        "{}",
        config.stdout
    );
    drop(pgmux.connect("other", "othersecret", "sessions").await);
    expect_line(&pgmux, "sessions/other@127.0.0.1").await;
    assert_eq!(
        pgmux.count_log_lines("login attempt: db=sessions user=other"),
        0
    );

    console(&pgmux, "SET log_connections = 1").assert_success();
    drop(pgmux.connect("other", "othersecret", "app").await);
    expect_line(
        &pgmux,
        "login attempt: db=app user=other tls=no replication=no",
    )
    .await;
}

#[tokio::test]
async fn max_client_conn_refuses_clients_in_pgbouncers_words_but_not_the_console() {
    let _guard = harness::shared();
    let pgmux = start(packaged("max_client_conn = 1\n")).await;
    let first = pgmux.connect("app", "secret", "app").await;
    let error = pgmux.try_connect("app", "secret", "app").await.unwrap_err();
    assert_eq!(
        (sqlstate(&error), message(&error)),
        (
            "53300".into(),
            "no more connections allowed (max_client_conn)".into()
        )
    );
    expect_line(&pgmux, "(nodb)/(nouser)@127.0.0.1:").await;
    expect_line(
        &pgmux,
        "pooler error: no more connections allowed (max_client_conn)",
    )
    .await;
    // The operator still gets in to see why.
    let pools = console(&pgmux, "SHOW POOLS");
    pools.assert_success();
    assert!(pools.stdout.contains("app|app|1|"), "{}", pools.stdout);
    first.query_one("select 1", &[]).await.unwrap();
}

#[tokio::test]
async fn sigint_lets_the_open_transaction_finish_then_exits() {
    let _guard = harness::shared();
    let mut pgmux = start(packaged("")).await;
    let client = pgmux.connect("app", "secret", "app").await;
    client.batch_execute("begin; select 1").await.unwrap();
    pgmux.signal("INT");
    expect_line(&pgmux, "got SIGINT").await;
    client.batch_execute("select 2; commit").await.unwrap();
    let status = pgmux.wait_exit(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "{}", pgmux.logs());
}
