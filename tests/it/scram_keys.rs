//! Users configured with a SCRAM secret only (as in `pg_authid`): the client proves the
//! password to pgmux, and pgmux logs in to PostgreSQL with the ClientKey recovered from
//! that proof. No plaintext password is configured anywhere.

use crate::harness::{self, pgmux, postgres};
use crate::support::current_user;

#[tokio::test]
async fn scram_secret_only_user_reaches_postgres_with_the_proven_keys() {
    let _guard = harness::shared();
    let role = harness::unique_name("scramonly");
    let superuser = postgres().superuser().await;
    superuser
        .batch_execute(&format!(
            "SET password_encryption = 'scram-sha-256'; \
             CREATE ROLE {role} LOGIN PASSWORD 'only the client knows'"
        ))
        .await
        .unwrap();
    let secret: String = superuser
        .query_one(
            "select rolpassword from pg_authid where rolname = $1",
            &[&role],
        )
        .await
        .unwrap()
        .get(0);
    assert!(secret.starts_with("SCRAM-SHA-256$"));

    // Plain TCP to PostgreSQL (SCRAM-SHA-256) and TLS (SCRAM-SHA-256-PLUS).
    for server_tls in ["disable", "require"] {
        let pgmux = pgmux()
            .setting("server_tls_sslmode", &format!("\"{server_tls}\""))
            .user(&role, &format!("password = \"{secret}\""))
            .start()
            .await;
        let client = pgmux.connect(&role, "only the client knows", "app").await;
        assert_eq!(
            current_user(&client).await,
            role,
            "server_tls_sslmode {server_tls}"
        );

        let error = pgmux
            .try_connect(&role, "a wrong guess", "app")
            .await
            .expect_err("wrong password");
        // PgBouncer's code for a failed SCRAM exchange.
        assert_eq!(error.code().map(|c| c.code()), Some("08P01"));
    }
    superuser
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .ok();
}
