//! auth_query in operation: a broken auth connection refuses only the clients that need
//! a lookup, RELOAD applies new auth settings at once, and a pgbouncer.ini with
//! auth_user/auth_query and a one-line userlist.txt serves psql clients.

use std::time::Duration;

use crate::auth_query::{
    assert_password_refused, auth_query_pgmux, create_role, create_superuser_auth_role, Stored,
    AUTH_PASSWORD, ROLE_PASSWORD,
};
use crate::harness::ini::{IniFiles, LISTEN};
use crate::harness::{self, postgres, run_tool};
use crate::support::{current_user, message, sqlstate};

const LOOKUP_FAILED: &str = "authentication lookup failed (auth_query); see the pooler log";
const WRONG_AUTH_PASSWORD: &str = "not-the-auth-password";

#[tokio::test]
async fn a_failing_auth_connection_refuses_lookups_clearly_and_reload_repairs_it() {
    let _guard = harness::shared();
    let auth = create_superuser_auth_role().await;
    let role = create_role("aq_reload", Stored::Scram, "LOGIN").await;
    let builder =
        auth_query_pgmux(&auth).user(&auth, &format!("password = \"{WRONG_AUTH_PASSWORD}\""));
    let broken = builder.toml();
    let pgmux = builder.start().await;

    let error = pgmux
        .try_connect(&role, ROLE_PASSWORD, "app")
        .await
        .expect_err("lookup fails");
    assert_eq!(
        (sqlstate(&error).as_str(), message(&error).as_str()),
        ("08P01", LOOKUP_FAILED)
    );
    // The log names the real cause and the client's address.
    let cause = format!("password authentication failed for user \"{auth}\"");
    assert!(
        pgmux.wait_for_log(&cause, Duration::from_secs(5)).await,
        "{}",
        pgmux.logs()
    );
    assert!(pgmux
        .logs()
        .lines()
        .any(|line| line.contains("auth_query lookup failed") && line.contains("127.0.0.1")));
    // Users with a configured password never need the lookup.
    assert_eq!(current_user(&pgmux.app().await).await, "app");

    // A query that finds no password: the auth connection works, the role cannot log in.
    let repaired = broken.replace(WRONG_AUTH_PASSWORD, AUTH_PASSWORD);
    reload(
        &pgmux,
        &format!(
            "auth_query = \"SELECT rolname, NULL FROM pg_authid WHERE rolname = $1\"\n{repaired}"
        ),
        1,
    )
    .await;
    assert_password_refused(&pgmux, &role, ROLE_PASSWORD).await;
    // The default query again: no stale negative answer survives the reload.
    reload(&pgmux, &repaired, 2).await;
    let client = pgmux.connect(&role, ROLE_PASSWORD, "app").await;
    assert_eq!(current_user(&client).await, role);
    // A reload that changes nothing keeps the looked-up user's pool and its clients.
    reload(&pgmux, &repaired, 3).await;
    assert_eq!(current_user(&client).await, role);
}

#[tokio::test]
async fn trust_admits_roles_the_lookup_finds_and_refuses_the_others() {
    let _guard = harness::shared();
    let auth = create_superuser_auth_role().await;
    // md5-stored: with no password exchange there are no proven SCRAM keys, and the md5
    // hash alone must log the pool in to PostgreSQL.
    let role = create_role("aq_trust", Stored::Md5, "LOGIN").await;
    let pgmux = auth_query_pgmux(&auth)
        .setting("auth_type", "\"trust\"")
        .start()
        .await;
    let client = pgmux.connect(&role, "not asked for", "app").await;
    assert_eq!(current_user(&client).await, role);
    let ghost = harness::unique_name("aq_ghost");
    let error = pgmux
        .try_connect(&ghost, "x", "app")
        .await
        .expect_err("refused");
    assert_eq!(
        (sqlstate(&error), message(&error)),
        ("08P01".into(), "\"trust\" authentication failed".into())
    );
}

async fn reload(pgmux: &harness::Pgmux, toml: &str, nth: usize) {
    pgmux.rewrite_config(toml);
    pgmux.signal("HUP");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while pgmux.count_log_lines("reloaded") < nth {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reload:\n{}",
            pgmux.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn pgbouncer_ini_with_auth_user_and_auth_query_serves_psql_clients() {
    let _guard = harness::shared();
    let auth = create_superuser_auth_role().await;
    let md5_role = create_role("aq_ini_md5", Stored::Md5, "LOGIN").await;
    let scram_role = create_role("aq_ini_scram", Stored::Scram, "LOGIN").await;
    let files = IniFiles::new();
    // Only the auth user is listed, as PgBouncer's docs set it up.
    files.write("userlist.txt", &format!("\"{auth}\" \"{AUTH_PASSWORD}\"\n"));
    let ini = files.write(
        "pgbouncer.ini",
        &format!(
            "[databases]\n\
             app = host=127.0.0.1 port={{PGPORT}} dbname=app\n\
             \n\
             [pgbouncer]\n\
             {LISTEN}\
             pool_mode = transaction\n\
             auth_type = md5\n\
             auth_file = {{DIR}}/userlist.txt\n\
             auth_user = {auth}\n\
             auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1\n"
        ),
    );
    let pgmux = files.start(&[ini.to_str().unwrap()]).await;

    let psql = postgres().bin("psql");
    for role in [&md5_role, &scram_role] {
        let mut cmd = pgmux.tool_command(&psql, role, ROLE_PASSWORD, "app");
        cmd.args(["-X", "-A", "-t", "-c", "select current_user"]);
        let output =
            tokio::task::spawn_blocking(move || run_tool(&mut cmd, Duration::from_secs(15)))
                .await
                .unwrap();
        output.assert_success();
        assert_eq!(output.stdout.trim(), role.as_str());
    }
    let mut cmd = pgmux.tool_command(&psql, &md5_role, "wrong", "app");
    cmd.args(["-X", "-c", "select 1"]);
    let output = tokio::task::spawn_blocking(move || run_tool(&mut cmd, Duration::from_secs(15)))
        .await
        .unwrap();
    assert!(!output.success());
    assert!(
        output.stderr.contains("password authentication failed"),
        "{}",
        output.stderr
    );
}
