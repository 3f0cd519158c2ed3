//! TLS between pgmux and PostgreSQL (`server_tls_sslmode`). The harness cluster runs
//! with `ssl = on` and a certificate for `localhost` only, from its own CA; pg_hba lets
//! role `certuser` in only with a client certificate over TLS.

use crate::harness::tls::TestPki;
use crate::harness::{self, pgmux, postgres, toml_path, Pgmux, PgmuxBuilder};
use crate::support::{current_user, sqlstate};

/// pgmux with database `app` reached through `host`, and the given server TLS settings.
fn with_server_tls(host: &str, settings: &[(&str, String)]) -> PgmuxBuilder {
    let mut builder = pgmux().database(
        "app",
        &format!("host = \"{host}\"\nport = {{PGPORT}}\ndbname = \"app\""),
    );
    for (key, value) in settings {
        builder = builder.setting(key, value);
    }
    builder
}

/// What PostgreSQL says about the encryption of the server connection pgmux uses.
async fn server_ssl(pgmux: &Pgmux) -> bool {
    let client = pgmux.app().await;
    client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn require_encrypts_server_connections() {
    let _guard = harness::shared();
    let pgmux = with_server_tls("127.0.0.1", &[("server_tls_sslmode", "\"require\"".into())])
        .start()
        .await;
    assert!(server_ssl(&pgmux).await, "{}", pgmux.logs());
}

#[tokio::test]
async fn disable_keeps_server_connections_in_plain_text() {
    let _guard = harness::shared();
    let pgmux = with_server_tls("127.0.0.1", &[("server_tls_sslmode", "\"disable\"".into())])
        .start()
        .await;
    assert!(!server_ssl(&pgmux).await);
}

#[tokio::test]
async fn default_prefer_uses_tls_when_postgres_offers_it() {
    let _guard = harness::shared();
    let pgmux = pgmux().start().await;
    assert!(server_ssl(&pgmux).await, "{}", pgmux.logs());
}

#[tokio::test]
async fn verify_full_checks_the_ca_and_the_host_name() {
    let _guard = harness::shared();
    let ca = toml_path(postgres().server_ca_file());
    let verify_full = |host| {
        with_server_tls(
            host,
            &[
                ("server_tls_sslmode", "\"verify-full\"".into()),
                ("server_tls_ca_file", ca.clone()),
            ],
        )
    };
    // The cluster's certificate names localhost.
    let pgmux = verify_full("localhost").start().await;
    assert!(server_ssl(&pgmux).await, "{}", pgmux.logs());

    // Same CA, but 127.0.0.1 is not a name on the certificate.
    let pgmux = verify_full("127.0.0.1").start().await;
    let error = pgmux
        .try_connect("app", "secret", "app")
        .await
        .expect_err("host name mismatch");
    let message = error.as_db_error().map(|e| e.message().to_owned());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("TLS handshake failed") && m.contains("not valid for name")),
        "{message:?}"
    );
}

#[tokio::test]
async fn verify_full_with_a_wrong_ca_fails_the_login_clearly() {
    let _guard = harness::shared();
    let stranger = TestPki::new("not the cluster's CA");
    let pgmux = with_server_tls(
        "localhost",
        &[
            ("server_tls_sslmode", "\"verify-full\"".into()),
            ("server_tls_ca_file", toml_path(stranger.ca_file())),
        ],
    )
    .start()
    .await;
    let error = pgmux
        .try_connect("app", "secret", "app")
        .await
        .expect_err("an unknown issuer must fail the server login");
    let db = error.as_db_error().expect("pgmux reports why");
    // pgmux's own error, so PgBouncer's 08P01.
    assert_eq!(db.code().code(), "08P01");
    assert!(
        db.message().contains("TLS handshake failed") && db.message().contains("UnknownIssuer"),
        "{}",
        db.message()
    );
}

#[tokio::test]
async fn verify_ca_accepts_the_cluster_certificate_under_another_name() {
    let _guard = harness::shared();
    let pgmux = with_server_tls(
        "127.0.0.1",
        &[
            ("server_tls_sslmode", "\"verify-ca\"".into()),
            ("server_tls_ca_file", toml_path(postgres().server_ca_file())),
        ],
    )
    .start()
    .await;
    assert!(server_ssl(&pgmux).await, "{}", pgmux.logs());
}

#[tokio::test]
async fn client_certificate_logs_pgmux_in_where_postgres_demands_one() {
    let _guard = harness::shared();
    let (cert, key) = postgres().certuser_files();
    // pg_hba `cert` for certuser: no password exists; only the certificate opens the door.
    let pgmux = with_server_tls(
        "localhost",
        &[
            ("server_tls_sslmode", "\"verify-full\"".into()),
            ("server_tls_ca_file", toml_path(postgres().server_ca_file())),
            ("server_tls_cert_file", toml_path(&cert)),
            ("server_tls_key_file", toml_path(&key)),
        ],
    )
    .user("certuser", "password = \"pgmux-side secret\"")
    .start()
    .await;
    let client = pgmux.connect("certuser", "pgmux-side secret", "app").await;
    assert_eq!(current_user(&client).await, "certuser");

    // Without the certificate PostgreSQL refuses certuser.
    let pgmux = with_server_tls("localhost", &[("server_tls_sslmode", "\"require\"".into())])
        .user("certuser", "password = \"pgmux-side secret\"")
        .start()
        .await;
    let error = pgmux
        .try_connect("certuser", "pgmux-side secret", "app")
        .await
        .expect_err("PostgreSQL asks for a certificate");
    assert_eq!(sqlstate(&error), "28000", "{error:?}");
}
