//! Client authentication against `[users]`, and the server-side login methods pgmux
//! uses towards PostgreSQL (SCRAM for `app`, md5 for `md5user`, cleartext for `clearuser`).

use crate::harness::{self, pgmux};
use crate::support::{current_user, message, sqlstate};

async fn each_user_logs_in_and_queries(auth_type: &str) {
    let pgmux = pgmux()
        .setting("auth_type", &format!("\"{auth_type}\""))
        .start()
        .await;
    for (user, password) in [
        ("app", "secret"),
        ("md5user", "md5secret"),
        ("clearuser", "clearsecret"),
    ] {
        let client = pgmux.connect(user, password, "app").await;
        assert_eq!(current_user(&client).await, user, "auth_type {auth_type}");
    }
}

#[tokio::test]
async fn scram_clients_log_in_and_reach_postgres_with_every_server_method() {
    let _guard = harness::shared();
    each_user_logs_in_and_queries("scram-sha-256").await;
}

#[tokio::test]
async fn md5_clients_log_in() {
    let _guard = harness::shared();
    each_user_logs_in_and_queries("md5").await;
}

#[tokio::test]
async fn trust_lets_known_users_in_without_a_password() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("auth_type", "\"trust\"").start().await;
    let client = pgmux
        .connect("app", "wrong password is not asked for", "app")
        .await;
    assert_eq!(
        client
            .query_one("select 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    let error = pgmux
        .try_connect("nosuchuser", "x", "app")
        .await
        .expect_err("unknown user refused");
    // PgBouncer's words and code.
    assert_eq!(
        (sqlstate(&error), message(&error)),
        ("08P01".into(), "\"trust\" authentication failed".into())
    );
}

/// PgBouncer's words and code (08P01, where PostgreSQL says 28P01): scripts and
/// alerts written against PgBouncer keep matching.
#[tokio::test]
async fn wrong_passwords_are_refused_in_pgbouncers_words() {
    let _guard = harness::shared();
    for (auth_type, text) in [
        ("md5", "password authentication failed"),
        ("scram-sha-256", "SASL authentication failed"),
    ] {
        let pgmux = pgmux()
            .setting("auth_type", &format!("\"{auth_type}\""))
            .start()
            .await;
        let error = pgmux
            .try_connect("app", "not the password", "app")
            .await
            .expect_err("refused");
        assert_eq!(
            (sqlstate(&error), message(&error)),
            ("08P01".into(), text.into()),
            "{auth_type}"
        );
        // An unknown user fails exactly like a wrong password: nothing reveals who exists.
        let error = pgmux
            .try_connect("ghost", "whatever", "app")
            .await
            .expect_err("refused");
        assert_eq!(
            (sqlstate(&error), message(&error)),
            ("08P01".into(), text.into()),
            "{auth_type}"
        );
    }
}

#[tokio::test]
async fn scram_secrets_and_md5_hashes_work_as_stored_passwords() {
    let _guard = harness::shared();
    let scram_secret = ::pgmux::auth::ScramSecret::generate("secret").encode();
    let pgmux = pgmux()
        .setting("auth_type", "\"scram-sha-256\"")
        .user("app", &format!("password = \"{scram_secret}\""))
        .database("app", "host = \"127.0.0.1\"\nport = {PGPORT}\ndbname = \"app\"\nuser = \"clearuser\"\npassword = \"clearsecret\"")
        .start()
        .await;
    let client = pgmux.connect("app", "secret", "app").await;
    assert_eq!(
        current_user(&client).await,
        "clearuser",
        "forced user logs in to PostgreSQL"
    );
    let error = pgmux
        .try_connect("app", "nope", "app")
        .await
        .expect_err("the SCRAM secret checks the password");
    assert_eq!(
        (sqlstate(&error), message(&error)),
        ("08P01".into(), "SASL authentication failed".into())
    );

    let md5 = ::pgmux::auth::md5_hash("md5user", "md5secret");
    let pgmux = pgmux_with_md5_user(&md5).await;
    let client = pgmux.connect("md5user", "md5secret", "app").await;
    assert_eq!(
        current_user(&client).await,
        "md5user",
        "md5 hash logs in to PostgreSQL's md5 auth"
    );
}

async fn pgmux_with_md5_user(hash: &str) -> harness::Pgmux {
    pgmux()
        .setting("auth_type", "\"md5\"")
        .user("md5user", &format!("password = \"{hash}\""))
        .start()
        .await
}

#[tokio::test]
async fn unknown_database_is_refused_in_pgbouncers_words() {
    let _guard = harness::shared();
    let pgmux = pgmux().start().await;
    let error = pgmux
        .try_connect("app", "secret", "nosuchdb")
        .await
        .expect_err("refused");
    assert_eq!(
        (sqlstate(&error), message(&error)),
        ("08P01".into(), "no such database: nosuchdb".into())
    );
    // Only a client that proved its password learns that: anyone else gets the password
    // failure, whether or not the database exists.
    for database in ["nosuchdb", "app"] {
        let error = pgmux
            .try_connect("app", "wrong", database)
            .await
            .expect_err("refused");
        assert_eq!(
            (sqlstate(&error), message(&error)),
            ("08P01".into(), "SASL authentication failed".into()),
            "{database}"
        );
    }
}

#[tokio::test]
async fn server_side_login_failure_reaches_the_client_with_its_sqlstate() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .user("other", "password = \"not what postgres has\"")
        .start()
        .await;
    let error = pgmux
        .try_connect("other", "not what postgres has", "app")
        .await
        .expect_err("refused");
    assert_eq!(sqlstate(&error), "28P01", "{error}");
}

#[tokio::test]
async fn a_failed_server_login_is_not_retried_before_server_login_retry() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .user("other", "password = \"not what postgres has\"")
        .setting("server_login_retry", "30")
        .start()
        .await;
    // Only the first client makes pgmux try PostgreSQL and gets its refusal; the others
    // fail at once with PgBouncer's "server login has been failing" and the cached error.
    let error = pgmux
        .try_connect("other", "not what postgres has", "app")
        .await
        .expect_err("refused");
    assert_eq!(sqlstate(&error), "28P01", "{error:?}");
    for _ in 0..2 {
        let error = pgmux
            .try_connect("other", "not what postgres has", "app")
            .await
            .expect_err("refused");
        assert_eq!(
            (sqlstate(&error), message(&error)),
            (
                "08P01".into(),
                "server login has been failing, cached error: password authentication failed \
                 for user \"other\" (server_login_retry)"
                    .into()
            ),
        );
    }
    assert_eq!(
        pgmux.count_log_lines("server login failed"),
        1,
        "{}",
        pgmux.logs()
    );
}
