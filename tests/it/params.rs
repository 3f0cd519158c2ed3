//! Startup parameters: each client sees its own values on whichever server runs its
//! transaction (DESIGN.md fact 4), the ParameterStatus set at login, and the
//! `ignore_startup_parameters` / `track_extra_parameters` / `application_name_add_host`
//! settings.

use std::process::Command;
use std::time::Duration;

use futures_util::future::join_all;

use crate::harness::{self, pgmux, run_tool, Pgmux};
use crate::raw_wire::{error_fields, RawConn};

const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// `SHOW name` as a simple query: tokio-postgres' extended queries prepare a named
/// statement in one transaction and use it in the next, which is a different feature
/// (DESIGN.md fact 3) from the one these tests are about.
async fn show(client: &tokio_postgres::Client, name: &str) -> String {
    let messages = client.simple_query(&format!("show {name}")).await.unwrap();
    messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("a row")
}

#[tokio::test]
async fn six_clients_on_two_servers_each_always_see_their_own_application_name() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "2").start().await;
    let mut clients = Vec::new();
    for i in 0..6 {
        let name = format!("param_client_{i}");
        let mut config: tokio_postgres::Config = pgmux.url("app", "secret", "app").parse().unwrap();
        config.application_name(&name);
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        clients.push((name, client));
    }
    // Six clients share two servers, so most transactions land on a server the
    // previous transaction of another client left with that client's name.
    let runs = clients.iter_mut().map(|(name, client)| async move {
        for round in 0..20 {
            let seen = if round % 2 == 0 {
                show(client, "application_name").await
            } else {
                // Inside a transaction the prepared statement stays on one server.
                let tx = client.transaction().await.unwrap();
                let seen: String = tx
                    .query_one("show application_name", &[])
                    .await
                    .unwrap()
                    .get(0);
                tx.commit().await.unwrap();
                seen
            };
            assert_eq!(
                &seen, name,
                "round {round}: saw another client's application_name"
            );
        }
    });
    join_all(runs).await;
}

/// Runs each of `commands` as its own `-c` (so each is its own transaction, which may
/// land on any server) with psql `-X -A -t` under `env`, directly against PostgreSQL
/// when `through` is None; returns the non-empty output lines.
fn psql_lines(through: Option<&Pgmux>, env: &[(&str, &str)], commands: &[&str]) -> Vec<String> {
    let psql = harness::postgres().bin("psql");
    let mut cmd = match through {
        Some(pgmux) => pgmux.tool_command(&psql, "app", "secret", "app"),
        None => {
            let mut cmd = Command::new(&psql);
            cmd.env("PGHOST", "127.0.0.1")
                .env("PGPORT", harness::postgres().port().to_string())
                .env("PGUSER", "app")
                .env("PGPASSWORD", "secret")
                .env("PGDATABASE", "app")
                .env("PGSSLMODE", "disable");
            cmd
        }
    };
    for var in [
        "PGAPPNAME",
        "PGTZ",
        "PGDATESTYLE",
        "PGOPTIONS",
        "PGCLIENTENCODING",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"]);
    for command in commands {
        cmd.arg("-c").arg(command);
    }
    let out = run_tool(&mut cmd, TOOL_TIMEOUT);
    out.assert_success();
    out.stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn psql_timezone_datestyle_and_appname_from_the_environment_follow_each_client() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "1").start().await;
    let one_round = ["show timezone", "show datestyle", "show application_name"];
    let envs: [&[(&str, &str)]; 2] = [
        &[
            ("PGAPPNAME", "psql_a"),
            ("PGTZ", "Asia/Tokyo"),
            ("PGDATESTYLE", "German"),
        ],
        &[
            ("PGAPPNAME", "psql_b"),
            ("PGTZ", "America/Sao_Paulo"),
            ("PGDATESTYLE", "SQL, MDY"),
        ],
    ];
    // What PostgreSQL itself answers for the same environment (its canonical spelling,
    // e.g. "German, DMY" for PGDATESTYLE=German).
    let direct: Vec<Vec<String>> = envs
        .iter()
        .map(|env| psql_lines(None, env, &one_round))
        .collect();
    assert_eq!(
        direct[0][1], "German, DMY",
        "sanity: PostgreSQL canonicalizes DateStyle"
    );

    // Both psql sessions interleave on the single server for 30 rounds each.
    let script: Vec<&'static str> = one_round.repeat(30);
    let pgmux = std::sync::Arc::new(pgmux);
    let runs = envs.iter().map(|env| {
        let (pgmux, env, script) = (pgmux.clone(), env.to_vec(), script.clone());
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            psql_lines(Some(&pgmux), &env, &script)
        })
    });
    // Meanwhile a client that asked for nothing must keep seeing the server defaults.
    let plain = pgmux.app().await;
    let defaults = (
        show(&plain, "timezone").await,
        show(&plain, "datestyle").await,
    );
    let mut plain_rounds = 0;
    let handles: Vec<_> = runs.collect();
    while handles.iter().any(|h| !h.is_finished()) && plain_rounds < 500 {
        assert_eq!(
            (
                show(&plain, "timezone").await,
                show(&plain, "datestyle").await
            ),
            defaults
        );
        assert_eq!(show(&plain, "application_name").await, "");
        plain_rounds += 1;
    }
    for (i, handle) in handles.into_iter().enumerate() {
        let lines = handle.await.unwrap();
        assert_eq!(lines.len(), 90, "psql {i} output: {lines:?}");
        for (round, chunk) in lines.chunks(3).enumerate() {
            assert_eq!(chunk, &direct[i][..], "psql {i} round {round}");
        }
    }
    assert_ne!(
        defaults.0, direct[0][0],
        "the default timezone must differ from the tested ones"
    );
}

#[tokio::test]
async fn psql_gets_server_version_and_client_encoding_as_postgresql_reports_them() {
    let _guard = harness::shared();
    let pgmux = pgmux().start().await;
    // SERVER_VERSION_NAME and ENCODING are psql variables filled from the
    // ParameterStatus messages of the login, not from a query.
    let script = [
        "show server_version",
        "show client_encoding",
        "select current_setting('server_version')",
        "\\echo :SERVER_VERSION_NAME :ENCODING",
    ];
    let env = [("PGCLIENTENCODING", "UTF8")];
    let pgmux = std::sync::Arc::new(pgmux);
    let through = {
        let pgmux = pgmux.clone();
        tokio::task::spawn_blocking(move || psql_lines(Some(&pgmux), &env, &script))
            .await
            .unwrap()
    };
    let direct = tokio::task::spawn_blocking(move || psql_lines(None, &env, &script))
        .await
        .unwrap();
    assert_eq!(through, direct);
    assert_eq!(through[1], "UTF8");
    assert_eq!(
        through[3],
        format!("{} UTF8", through[0]),
        "ParameterStatus server_version/client_encoding"
    );
    // `\encoding` with no argument prints what psql learned from ParameterStatus.
    let encoding =
        tokio::task::spawn_blocking(move || psql_lines(Some(&pgmux), &env, &["\\encoding"]))
            .await
            .unwrap();
    assert_eq!(encoding, ["UTF8"]);
}

#[tokio::test]
async fn unknown_startup_parameters_are_refused_unless_ignored_and_extra_float_digits_is_tracked() {
    let _guard = harness::shared();
    // JDBC and sqlx send extra_float_digits in their startup packet: tracked by default,
    // so the session really runs with it.
    let login = [
        ("user", "app"),
        ("database", "app"),
        ("extra_float_digits", "3"),
    ];
    let tracking = pgmux().setting("auth_type", "\"trust\"").start().await;
    let mut conn = RawConn::login(tracking.addr(), &login).await.unwrap();
    assert_eq!(conn.query_value("show extra_float_digits").await, "3");
    // A parameter nobody configured is refused, as PgBouncer does.
    let strict = pgmux()
        .setting("track_extra_parameters", "[]")
        .start()
        .await;
    let mut conn = RawConn::start(strict.addr(), &login).await;
    let (tag, body) = conn.read().await.expect("an answer to the startup packet");
    assert_eq!(tag, b'E', "expected an ErrorResponse");
    let fields = error_fields(&body);
    assert_eq!(
        fields.get(&'C').map(String::as_str),
        Some("08P01"),
        "{fields:?}"
    );
    assert_eq!(
        fields.get(&'M').map(String::as_str),
        Some("unsupported startup parameter: extra_float_digits")
    );

    let lenient = pgmux()
        .setting("ignore_startup_parameters", "[\"extra_float_digits\"]")
        .start()
        .await;
    let mut conn = RawConn::start(lenient.addr(), &login).await;
    let (tag, body) = conn.read().await.expect("an answer to the startup packet");
    assert_eq!(
        tag,
        b'R',
        "expected an authentication request, got {:?}",
        error_fields(&body)
    );
    assert_eq!(
        &body[..4],
        &10u32.to_be_bytes(),
        "expected AuthenticationSASL"
    );

    // Ignored means not passed on either: the session keeps the server's default.
    let trusting = pgmux()
        .setting("auth_type", "\"trust\"")
        .setting("ignore_startup_parameters", "[\"extra_float_digits\"]")
        .start()
        .await;
    let mut conn = RawConn::login(trusting.addr(), &login).await.unwrap();
    assert_eq!(conn.query_value("show extra_float_digits").await, "1");
}

#[tokio::test]
async fn track_extra_parameters_keeps_each_clients_search_path_on_a_shared_server() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .setting("auth_type", "\"trust\"")
        .setting("default_pool_size", "1")
        .setting("track_extra_parameters", "[\"search_path\"]")
        .start()
        .await;
    let schemas = [harness::unique_name("sp_a"), harness::unique_name("sp_b")];
    let mut setup = RawConn::login(pgmux.addr(), &[("user", "app"), ("database", "app")])
        .await
        .unwrap();
    for schema in &schemas {
        setup
            .query(&format!(
                "create schema {schema}; create table {schema}.t as select '{schema}'::text as v"
            ))
            .await
            .unwrap();
    }
    let default_path = setup.query_value("show search_path").await;
    let mut clients = Vec::new();
    for schema in &schemas {
        let params = [
            ("user", "app"),
            ("database", "app"),
            ("search_path", schema.as_str()),
        ];
        clients.push((
            schema.clone(),
            RawConn::login(pgmux.addr(), &params).await.unwrap(),
        ));
    }
    // Turns on the one server: a, b, the client without search_path, a, b, …
    for round in 0..5 {
        for (schema, conn) in clients.iter_mut() {
            assert_eq!(
                &conn.query_value("show search_path").await,
                schema,
                "round {round}"
            );
            // Unqualified names resolve in the client's own schema.
            assert_eq!(
                &conn.query_value("select v from t").await,
                schema,
                "round {round}"
            );
        }
        assert_eq!(
            setup.query_value("show search_path").await,
            default_path,
            "round {round}"
        );
    }
    for schema in &schemas {
        setup
            .query(&format!("drop schema {schema} cascade"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn application_name_add_host_appends_the_client_address_and_port() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .setting("auth_type", "\"trust\"")
        .setting("default_pool_size", "1")
        .setting("application_name_add_host", "true")
        .start()
        .await;
    let mut named = RawConn::login(
        pgmux.addr(),
        &[
            ("user", "app"),
            ("database", "app"),
            ("application_name", "reporting"),
        ],
    )
    .await
    .unwrap();
    let mut unnamed = RawConn::login(pgmux.addr(), &[("user", "app"), ("database", "app")])
        .await
        .unwrap();
    let named_expected = format!("reporting - 127.0.0.1:{}", named.local_addr().port());
    let unnamed_port = format!(" - 127.0.0.1:{}", unnamed.local_addr().port());
    // Both share the one server; each keeps its own decorated name.
    for _ in 0..3 {
        assert_eq!(
            named.query_value("show application_name").await,
            named_expected
        );
        let seen = unnamed.query_value("show application_name").await;
        assert!(
            seen.ends_with(&unnamed_port),
            "{seen:?} should end with {unnamed_port:?}"
        );
    }
    // PostgreSQL sees it too (what pg_stat_activity shows operators).
    let seen = named
        .query_value("select application_name from pg_stat_activity where pid = pg_backend_pid()")
        .await;
    assert_eq!(seen, named_expected);

    // And with SCRAM through tokio-postgres, whose client port we don't know.
    let scram = harness::pgmux()
        .setting("application_name_add_host", "true")
        .start()
        .await;
    let mut config: tokio_postgres::Config = scram.url("app", "secret", "app").parse().unwrap();
    config.application_name("tp");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let seen = show(&client, "application_name").await;
    assert!(seen.starts_with("tp - 127.0.0.1:"), "{seen:?}");
}
