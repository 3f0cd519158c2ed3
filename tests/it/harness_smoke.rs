//! Proves the harness itself works: the shared cluster, its login methods, and the
//! pgmux config builder. Needs no pgmux behaviour.

use std::time::Duration;

use crate::harness::{self, postgres, run_tool, unique_name};

/// Direct (not through pgmux) login to the harness PostgreSQL over TCP.
async fn connect_directly(
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let url = format!(
        "postgres://{user}:{password}@127.0.0.1:{}/app",
        postgres().port()
    );
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

#[tokio::test]
async fn superuser_answers_select_1() {
    let _guard = harness::shared();
    let client = postgres().superuser().await;
    let row = client.query_one("select 1::int4", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}

/// pgmux logs in to PostgreSQL with SCRAM, md5 and cleartext; each role here is
/// routed to one of those methods by pg_hba.conf.
#[tokio::test]
async fn password_roles_log_in_directly_over_tcp() {
    let _guard = harness::shared();
    for (user, password) in [
        ("app", "secret"),
        ("md5user", "md5secret"),
        ("clearuser", "clearsecret"),
        ("other", "othersecret"),
    ] {
        let client = connect_directly(user, password).await.unwrap_or_else(|e| {
            panic!("{user} could not log in: {e:?}\n{}", postgres().log_tail())
        });
        let row = client
            .query_one("select current_user::text, current_database()::text", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), user);
        assert_eq!(row.get::<_, String>(1), "app");
    }
}

/// Without this a misconfigured pg_hba (trust) would make every login test vacuous.
#[tokio::test]
async fn wrong_passwords_are_rejected() {
    let _guard = harness::shared();
    for user in ["app", "md5user", "clearuser", "other"] {
        let err = connect_directly(user, "wrong")
            .await
            .err()
            .unwrap_or_else(|| panic!("{user} logged in with a wrong password"));
        let code = err.as_db_error().map(|db| db.code().code().to_string());
        assert_eq!(code.as_deref(), Some("28P01"), "{user}: {err:?}");
    }
}

/// A SCRAM-stored secret would silently turn md5user's md5 pg_hba entry into SCRAM.
#[tokio::test]
async fn md5user_secret_is_stored_as_md5() {
    let _guard = harness::shared();
    let client = postgres().superuser().await;
    let rows = client
        .query("select rolname::text, left(rolpassword, 13) from pg_authid where rolname in ('app', 'md5user') order by 1", &[])
        .await
        .unwrap();
    let prefixes: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(prefixes[0].1.starts_with("SCRAM-SHA-256"), "{prefixes:?}");
    assert!(prefixes[1].1.starts_with("md5"), "{prefixes:?}");
}

#[tokio::test]
async fn non_owner_roles_can_create_tables_in_app() {
    let _guard = harness::shared();
    let client = connect_directly("other", "othersecret").await.unwrap();
    let table = unique_name("smoke");
    client
        .batch_execute(&format!(
            "create table {table} (id int); drop table {table};"
        ))
        .await
        .unwrap();
}

#[test]
fn psql_from_the_cluster_bin_dir_runs() {
    let _guard = harness::shared();
    let pg = postgres();
    let out = run_tool(
        std::process::Command::new(pg.bin("psql"))
            .args(["-X", "-A", "-t", "-c", "select 40 + 2"])
            .arg(pg.superuser_url()),
        Duration::from_secs(30),
    );
    out.assert_success();
    assert_eq!(out.stdout.trim(), "42");
}

#[tokio::test]
async fn restart_keeps_port_and_roles() {
    let _guard = harness::exclusive();
    let pg = postgres();
    let before = pg.superuser().await;
    pg.restart();
    assert!(
        before.simple_query("select 1").await.is_err(),
        "old connection survived a restart"
    );
    connect_directly("app", "secret")
        .await
        .expect("app login after restart");
}

#[test]
fn unique_names_differ() {
    assert_ne!(unique_name("t"), unique_name("t"));
}

#[test]
fn pgmux_config_has_defaults_and_overrides() {
    let _guard = harness::shared();
    let toml = harness::pgmux()
        .setting("pool_mode", "\"session\"")
        .setting("default_pool_size", "25")
        .database(
            "direct",
            "host = \"127.0.0.1\"\nport = {PGPORT}\ndbname = \"postgres\"",
        )
        .user("app", "password = \"changed\"")
        .toml();
    let port_line = format!("port = {}", postgres().port());
    for expected in [
        "listen_port = 0",
        "pool_mode = \"session\"",
        "default_pool_size = 25",
        "[databases.app]",
        "[databases.direct]",
        "[users.md5user]",
        "password = \"changed\"",
    ] {
        assert!(toml.contains(expected), "missing `{expected}` in:\n{toml}");
    }
    assert_eq!(toml.matches(&port_line).count(), 2, "{toml}");
    assert_eq!(
        toml.matches("pool_mode").count(),
        1,
        "override must replace, not append:\n{toml}"
    );
    assert!(
        !toml.contains("password = \"secret\""),
        "user override must replace the default:\n{toml}"
    );
    // TOML forbids top-level keys after the first table.
    let first_table = toml.find('[').unwrap();
    assert!(!toml[first_table..].contains("listen_addr"), "{toml}");
}
