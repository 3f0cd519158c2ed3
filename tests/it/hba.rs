//! `auth_type = "hba"`: `auth_hba_file` rules in pg_hba.conf syntax decide who may log in
//! from where and with which method — over TCP, the unix socket and TLS, for pools and
//! the admin console, across reloads.

use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use crate::harness::pgmux::pgmux_command;
use crate::harness::{self, pgmux, run_tool, toml_path, Pgmux, PgmuxBuilder};
use crate::support::current_user;
use crate::wire::{connect, read_message, send, startup_packet, PROTOCOL_3_0};

const LOGIN_TIMEOUT: Duration = Duration::from_secs(20);
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// An hba file in its own directory (kept alive as long as the value).
pub struct HbaFile {
    _dir: TempDir,
    pub path: PathBuf,
}

impl HbaFile {
    pub fn new(rules: &str) -> HbaFile {
        let dir = tempfile::Builder::new()
            .prefix("pgmux-it-hba-")
            .tempdir()
            .expect("temp dir for the hba file");
        let path = dir.path().join("hba.conf");
        std::fs::write(&path, rules).expect("write hba file");
        HbaFile { _dir: dir, path }
    }

    /// Replaces the file in one step, so a reload never reads half of it.
    fn rewrite(&self, rules: &str) {
        let staging = self.path.with_extension("new");
        std::fs::write(&staging, rules).expect("write new hba file");
        std::fs::rename(&staging, &self.path).expect("replace hba file");
    }
}

/// The harness defaults with `auth_type = "hba"` and `file` as `auth_hba_file`.
pub fn hba_pgmux(file: &HbaFile) -> PgmuxBuilder {
    pgmux()
        .setting("auth_type", "\"hba\"")
        .setting("auth_hba_file", &toml_path(&file.path))
}

/// Logs in over pgmux's unix socket; `password` None sends none (trust, peer).
pub async fn unix_login(
    pgmux: &Pgmux,
    user: &str,
    password: Option<&str>,
    db: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(pgmux.socket_dir())
        .port(pgmux.port())
        .user(user)
        .dbname(db);
    if let Some(password) = password {
        config.password(password);
    }
    let (client, connection) =
        tokio::time::timeout(LOGIN_TIMEOUT, config.connect(tokio_postgres::NoTls))
            .await
            .expect("a unix-socket login must not hang")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The (SQLSTATE, message) of a refused login.
pub fn refusal<T>(result: Result<T, tokio_postgres::Error>) -> (String, String) {
    let Err(error) = result else {
        panic!("the login should have been refused");
    };
    let db = error
        .as_db_error()
        .unwrap_or_else(|| panic!("expected an ErrorResponse, got {error:?}"));
    (db.code().code().to_owned(), db.message().to_owned())
}

async fn answers(client: &tokio_postgres::Client) -> i32 {
    client.query_one("select 41 + 1", &[]).await.unwrap().get(0)
}

/// The first Authentication request pgmux sends `user` over TCP: 0 ok, 3 cleartext,
/// 5 md5, 10 SASL; or the ErrorResponse's SQLSTATE.
async fn first_auth_request(pgmux: &Pgmux, user: &str) -> Result<u32, String> {
    let mut stream = connect(pgmux.addr()).await;
    send(
        &mut stream,
        &startup_packet(PROTOCOL_3_0, &[("user", user), ("database", "app")]),
    )
    .await;
    match read_message(&mut stream).await {
        Some((b'R', body)) => Ok(u32::from_be_bytes(body[..4].try_into().unwrap())),
        Some((b'E', body)) => Err(crate::raw_wire::error_fields(&body)
            .remove(&'C')
            .unwrap_or_default()),
        other => panic!("unexpected answer {other:?}"),
    }
}

#[tokio::test]
async fn reject_line_refuses_tcp_while_local_trust_needs_no_password() {
    let _guard = harness::shared();
    let hba = HbaFile::new(
        "# TYPE DATABASE USER ADDRESS METHOD\n\
         local all all                trust\n\
         host  all all 127.0.0.1/32   reject\n\
         host  all all 0.0.0.0/0      trust\n",
    );
    let pgmux = hba_pgmux(&hba).start().await;

    // The right password does not help: the line refuses before any is asked.
    let (code, message) = refusal(pgmux.try_connect("app", "secret", "app").await);
    assert_eq!(code, "28000");
    assert_eq!(
        message,
        "auth_hba_file rejects connection for host \"127.0.0.1\", user \"app\", \
         database \"app\", no encryption"
    );
    // Same words for a user that does not exist: nothing is revealed.
    let (code, message) = refusal(pgmux.try_connect("nobody", "x", "app").await);
    assert_eq!(code, "28000");
    assert!(message.contains("user \"nobody\""), "{message}");
    // The log line may reach the harness a moment after the client got its error.
    assert!(
        pgmux
            .wait_for_log(
                &format!("login rejected by {}:3", hba.path.display()),
                std::time::Duration::from_secs(5)
            )
            .await,
        "the log names the rule:\n{}",
        pgmux.logs()
    );

    let local = unix_login(&pgmux, "app", None, "app")
        .await
        .unwrap_or_else(|e| panic!("local trust login: {e:?}\n{}", pgmux.logs()));
    assert_eq!(answers(&local).await, 42);
}

#[tokio::test]
async fn each_user_gets_the_method_of_its_line() {
    let _guard = harness::shared();
    let hba = HbaFile::new(
        "host app app     127.0.0.1/32 scram-sha-256\n\
         host app md5user 127.0.0.1/32 md5\n\
         host all other   0.0.0.0/0    reject\n\
         host app \"clearuser\" 127.0.0.1/32 password\n",
    );
    let pgmux = hba_pgmux(&hba).start().await;

    // What each client is asked for: SASL, md5, cleartext.
    assert_eq!(first_auth_request(&pgmux, "app").await, Ok(10));
    assert_eq!(first_auth_request(&pgmux, "md5user").await, Ok(5));
    assert_eq!(first_auth_request(&pgmux, "clearuser").await, Ok(3));
    assert_eq!(
        first_auth_request(&pgmux, "other").await,
        Err("28000".into())
    );

    // PgBouncer's texts and 08P01: SCRAM's for app, the password one for the others.
    for (user, password, failure) in [
        ("app", "secret", "SASL authentication failed"),
        ("md5user", "md5secret", "password authentication failed"),
        ("clearuser", "clearsecret", "password authentication failed"),
    ] {
        let client = pgmux.connect(user, password, "app").await;
        assert_eq!(answers(&client).await, 42, "{user}");
        let (code, message) = refusal(pgmux.try_connect(user, "wrong", "app").await);
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("08P01", failure),
            "{user}"
        );
    }
    let (code, message) = refusal(pgmux.try_connect("other", "othersecret", "app").await);
    assert_eq!(
        (code.as_str(), message.contains("rejects connection")),
        ("28000", true)
    );
    // No line covers app's other databases.
    let (code, message) = refusal(pgmux.try_connect("app", "secret", "postgres").await);
    assert_eq!(code, "28000");
    assert_eq!(
        message,
        "no auth_hba_file entry for host \"127.0.0.1\", user \"app\", database \"postgres\", \
         no encryption"
    );
}

#[tokio::test]
async fn netmask_column_matches_and_a_foreign_range_matches_nobody() {
    let _guard = harness::shared();
    let hba = HbaFile::new(
        "host all app 127.0.0.0 255.0.0.0 trust\n\
         host all all 10.0.0.0/8          trust\n",
    );
    let pgmux = hba_pgmux(&hba).start().await;
    // Trust through the mask form: no password needed.
    let client = pgmux
        .try_connect("app", "", "app")
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", pgmux.logs()));
    assert_eq!(answers(&client).await, 42);
    // 127.0.0.1 is not in 10.0.0.0/8, and no other line follows.
    let (code, message) = refusal(pgmux.try_connect("md5user", "md5secret", "app").await);
    assert_eq!(code, "28000");
    assert!(
        message.starts_with("no auth_hba_file entry for host \"127.0.0.1\""),
        "{message}"
    );
}

#[tokio::test]
async fn console_logins_follow_the_rules() {
    let _guard = harness::shared();
    let hba = HbaFile::new(
        "host pgbouncer all 127.0.0.1/32 reject\n\
         host all       all 127.0.0.1/32 scram-sha-256\n\
         local pgbouncer app           trust\n",
    );
    let pgmux = hba_pgmux(&hba)
        .setting("admin_users", "[\"app\"]")
        .start()
        .await;
    let (code, message) = refusal(pgmux.try_connect("app", "secret", "pgbouncer").await);
    assert_eq!(code, "28000");
    assert!(message.contains("database \"pgbouncer\""), "{message}");
    assert_eq!(answers(&pgmux.app().await).await, 42);

    let console = unix_login(&pgmux, "app", None, "pgbouncer")
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", pgmux.logs()));
    let rows = console.simple_query("SHOW VERSION").await.unwrap();
    assert!(!rows.is_empty());
}

/// The name of the OS user running the tests (and so pgmux and its unix-socket clients).
fn os_user() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn peer_lets_in_only_the_os_user_of_the_same_name() {
    let _guard = harness::shared();
    let me = os_user();
    assert!(!me.is_empty());
    let hba = HbaFile::new(&format!(
        "local all \"{me}\" peer\n\
         local all all    peer\n\
         host  all all    127.0.0.1/32 md5\n"
    ));
    // The OS user logs in to PostgreSQL as app: a database with a forced user.
    let pgmux = hba_pgmux(&hba)
        .database(
            "as_app",
            "host = \"127.0.0.1\"\nport = {PGPORT}\ndbname = \"app\"\nuser = \"app\"\npassword = \"secret\"",
        )
        .user(&me, "pool_mode = \"session\"")
        .start()
        .await;
    let client = unix_login(&pgmux, &me, None, "as_app")
        .await
        .unwrap_or_else(|e| panic!("peer login as {me}: {e:?}\n{}", pgmux.logs()));
    assert_eq!(current_user(&client).await, "app");

    if me != "app" {
        // Asking for another name than one's own: refused, whatever the password.
        let (code, message) = refusal(unix_login(&pgmux, "app", Some("secret"), "app").await);
        assert_eq!(code, "28000");
        assert_eq!(message, "Peer authentication failed for user \"app\"");
    }
    // peer is for unix sockets; over TCP the md5 line applies.
    assert_eq!(first_auth_request(&pgmux, &me).await, Ok(5));
}

#[tokio::test]
async fn reload_applies_new_rules_and_keeps_the_old_ones_when_broken() {
    let _guard = harness::shared();
    let hba = HbaFile::new("host all all 127.0.0.1/32 scram-sha-256\n");
    let pgmux = hba_pgmux(&hba).start().await;
    assert_eq!(answers(&pgmux.app().await).await, 42);

    hba.rewrite("# edited\nhost all all 127.0.0.1/99 trust\n");
    pgmux.signal("HUP");
    let expected = format!("{}:2: invalid prefix length \"/99\"", hba.path.display());
    assert!(
        pgmux.wait_for_log(&expected, RELOAD_TIMEOUT).await,
        "the broken file is reported with its line:\n{}",
        pgmux.logs()
    );
    assert!(pgmux
        .logs()
        .contains("reload failed, keeping the old settings"));
    // The old rules still apply: a password is still asked and accepted.
    assert_eq!(first_auth_request(&pgmux, "app").await, Ok(10));
    assert_eq!(answers(&pgmux.app().await).await, 42);

    hba.rewrite("host all all 127.0.0.1/32 reject\n");
    pgmux.signal("HUP");
    assert!(
        pgmux.wait_for_log("reloaded", RELOAD_TIMEOUT).await,
        "{}",
        pgmux.logs()
    );
    let (code, message) = refusal(pgmux.try_connect("app", "secret", "app").await);
    assert_eq!(code, "28000");
    assert!(message.contains("rejects connection"), "{message}");
}

#[tokio::test]
async fn broken_hba_file_stops_the_start_naming_file_and_line() {
    let _guard = harness::shared();
    let hba = HbaFile::new("local all all trust\nhost all all 127.0.0.1 md5\n");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pgmux.toml");
    std::fs::write(&config, hba_pgmux(&hba).toml()).unwrap();

    let mut cmd = pgmux_command();
    cmd.arg("--config").arg(&config);
    // A pgmux that ignored the file would serve forever; run_tool fails the test then.
    let out = run_tool(&mut cmd, Duration::from_secs(10));
    assert!(!out.success(), "pgmux started with a broken hba file");
    let expected = format!(
        "{}:2: the address 127.0.0.1 needs a prefix length",
        hba.path.display()
    );
    assert!(out.stderr.contains(&expected), "stderr: {}", out.stderr);
}
