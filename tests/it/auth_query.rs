//! auth_query: users not in `[users]` are looked up in PostgreSQL through `auth_user`,
//! authenticated against the secret found there (SCRAM or md5), and pooled under their
//! own name. Unknown, expired and NOLOGIN roles fail exactly like a wrong password.

use std::time::Duration;

use crate::admin_support::show;
use crate::harness::{self, pgmux, postgres, Pgmux, PgmuxBuilder};
use crate::support::{current_user, message, sqlstate};

pub const ROLE_PASSWORD: &str = "rolepw";
pub const AUTH_PASSWORD: &str = "authpw";

/// How PostgreSQL stores a role's password (`password_encryption` at CREATE ROLE).
#[derive(Clone, Copy)]
pub enum Stored {
    Md5,
    Scram,
}

/// A role created for this test with `ROLE_PASSWORD` and `attributes` (LOGIN, …).
pub async fn create_role(prefix: &str, stored: Stored, attributes: &str) -> String {
    let name = harness::unique_name(prefix);
    // md5-stored roles must join md5_roles: the harness's pg_hba lets them log in with
    // md5 over TCP, where its scram-sha-256 line would refuse them.
    let (encryption, group) = match stored {
        Stored::Md5 => ("md5", "IN ROLE md5_roles"),
        Stored::Scram => ("scram-sha-256", ""),
    };
    postgres()
        .superuser()
        .await
        .batch_execute(&format!(
            "SET password_encryption = '{encryption}';
             CREATE ROLE {name} {attributes} PASSWORD '{ROLE_PASSWORD}' {group};"
        ))
        .await
        .unwrap_or_else(|e| panic!("create role {name}: {e:?}"));
    name
}

/// An auth_user for the default auth_query, which reads pg_authid: a superuser.
pub async fn create_superuser_auth_role() -> String {
    let name = harness::unique_name("aq_auth_su");
    postgres()
        .superuser()
        .await
        .batch_execute(&format!(
            "CREATE ROLE {name} LOGIN SUPERUSER PASSWORD '{AUTH_PASSWORD}'"
        ))
        .await
        .unwrap();
    name
}

/// The default test pgmux with `auth_user` (its password in `[users]`) and the default
/// auth_query.
pub fn auth_query_pgmux(auth_user: &str) -> PgmuxBuilder {
    pgmux()
        .setting("auth_user", &format!("\"{auth_user}\""))
        .user(auth_user, &format!("password = \"{AUTH_PASSWORD}\""))
}

/// Refused with PgBouncer's 08P01 and text (SCRAM's or md5's), as any unknown user or
/// wrong password.
pub async fn assert_password_refused(pgmux: &Pgmux, user: &str, password: &str) {
    let error = pgmux
        .try_connect(user, password, "app")
        .await
        .expect_err("login refused");
    assert_eq!(sqlstate(&error), "08P01", "{user}: {error:?}");
    let text = message(&error);
    assert!(
        text == "SASL authentication failed" || text == "password authentication failed",
        "{user}: {text}"
    );
}

#[tokio::test]
async fn an_unlisted_role_with_a_scram_secret_logs_in_as_itself_and_gets_a_pool() {
    let _guard = harness::shared();
    let auth = create_superuser_auth_role().await;
    let role = create_role("aq_scram", Stored::Scram, "LOGIN").await;
    let pgmux = auth_query_pgmux(&auth)
        .setting("admin_users", "[\"app\"]")
        .start()
        .await;

    let client = pgmux.connect(&role, ROLE_PASSWORD, "app").await;
    assert_eq!(
        current_user(&client).await,
        role,
        "pooled under its own role"
    );
    let console = pgmux.connect("app", "secret", "pgbouncer").await;
    let pools = show(&console, "SHOW POOLS").await;
    assert_eq!(pools.get("user", &role, "database").as_deref(), Some("app"));

    assert_password_refused(&pgmux, &role, "not the password").await;
    // A role that does not exist fails the same way: nothing tells it apart.
    assert_password_refused(&pgmux, &harness::unique_name("aq_ghost"), ROLE_PASSWORD).await;
    // Listed users are unaffected.
    assert_eq!(current_user(&pgmux.app().await).await, "app");
}

#[tokio::test]
async fn md5_secrets_answer_md5_both_ways_and_scram_secrets_force_scram() {
    let _guard = harness::shared();
    let auth = create_superuser_auth_role().await;
    let md5_role = create_role("aq_md5", Stored::Md5, "LOGIN").await;
    let scram_role = create_role("aq_md5_scram", Stored::Scram, "LOGIN").await;
    let pgmux = auth_query_pgmux(&auth)
        .setting("auth_type", "\"md5\"")
        .start()
        .await;

    // The md5 hash from pg_authid checks the client and answers PostgreSQL's md5
    // challenge for the pool: no plaintext password anywhere.
    let client = pgmux.connect(&md5_role, ROLE_PASSWORD, "app").await;
    assert_eq!(current_user(&client).await, md5_role);
    let client = pgmux.connect(&scram_role, ROLE_PASSWORD, "app").await;
    assert_eq!(current_user(&client).await, scram_role);

    assert_password_refused(&pgmux, &md5_role, "not the password").await;
    assert_password_refused(&pgmux, &harness::unique_name("aq_ghost"), ROLE_PASSWORD).await;
}

#[tokio::test]
async fn a_security_definer_function_lets_a_plain_role_look_users_up_in_the_auth_database() {
    let _guard = harness::shared();
    let auth = harness::unique_name("aq_auth_fn");
    let lookup = harness::unique_name("aq_user_lookup");
    // Created in the server database `postgres` only: the `lookupdb` entry points there,
    // so the lookup works only if auth_dbname is honoured.
    postgres()
        .superuser()
        .await
        .batch_execute(&format!(
            "CREATE ROLE {auth} LOGIN PASSWORD '{AUTH_PASSWORD}';
             CREATE FUNCTION public.{lookup}(p_user text, OUT uname text, OUT phash text)
               RETURNS record LANGUAGE sql SECURITY DEFINER AS $$
                 SELECT rolname::text,
                        CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END
                 FROM pg_catalog.pg_authid WHERE rolname = p_user AND rolcanlogin
               $$;
             REVOKE ALL ON FUNCTION public.{lookup}(text) FROM PUBLIC;
             GRANT EXECUTE ON FUNCTION public.{lookup}(text) TO {auth};"
        ))
        .await
        .unwrap();
    let role = create_role("aq_fn_user", Stored::Scram, "LOGIN").await;
    let pgmux = pgmux()
        .database(
            "app",
            &format!(
                "host = \"127.0.0.1\"\nport = {{PGPORT}}\ndbname = \"app\"\n\
                 auth_user = \"{auth}\"\nauth_dbname = \"lookupdb\"\n\
                 auth_query = \"SELECT * FROM public.{lookup}($1)\""
            ),
        )
        .database(
            "lookupdb",
            "host = \"127.0.0.1\"\nport = {PGPORT}\ndbname = \"postgres\"",
        )
        .user(&auth, &format!("password = \"{AUTH_PASSWORD}\""))
        .start()
        .await;

    let client = pgmux.connect(&role, ROLE_PASSWORD, "app").await;
    assert_eq!(current_user(&client).await, role);
    // The function answers (NULL, NULL) for a missing role: still just a failed login.
    assert_password_refused(&pgmux, &harness::unique_name("aq_ghost"), ROLE_PASSWORD).await;
    // The name travels as a parameter, never as SQL text.
    assert_password_refused(&pgmux, "x' OR rolname <> '", ROLE_PASSWORD).await;
    assert_password_refused(&pgmux, &format!("{role}' --"), ROLE_PASSWORD).await;
}

#[tokio::test]
async fn a_changed_password_applies_after_the_cache_ttl_and_new_servers_use_it() {
    let _guard = harness::shared();
    let auth = create_superuser_auth_role().await;
    let role = create_role("aq_rotate", Stored::Scram, "LOGIN").await;
    let pgmux = auth_query_pgmux(&auth).start().await;
    let first = pgmux.connect(&role, ROLE_PASSWORD, "app").await;
    assert_eq!(current_user(&first).await, role);

    postgres()
        .superuser()
        .await
        .batch_execute(&format!("ALTER ROLE {role} PASSWORD 'rotatedpw'"))
        .await
        .unwrap();
    tokio::time::sleep(::pgmux::auth_query::CACHE_TTL + Duration::from_secs(1)).await;

    // The first client keeps its server and holds it, so the next query needs a new
    // server, which must log in with the new secret.
    first.batch_execute("BEGIN").await.unwrap();
    let second = pgmux.connect(&role, "rotatedpw", "app").await;
    let backends: Vec<i32> = futures_util::future::try_join_all([
        first.query_one("select pg_backend_pid()", &[]),
        second.query_one("select pg_backend_pid()", &[]),
    ])
    .await
    .unwrap()
    .iter()
    .map(|row| row.get(0))
    .collect();
    assert_ne!(
        backends[0], backends[1],
        "the second client got its own server"
    );
    assert_eq!(current_user(&second).await, role);
    first.batch_execute("COMMIT").await.unwrap();
    assert_password_refused(&pgmux, &role, ROLE_PASSWORD).await;
}

#[tokio::test]
async fn expired_and_nologin_roles_are_refused_like_unknown_ones() {
    let _guard = harness::shared();
    let auth = create_superuser_auth_role().await;
    let valid = create_role("aq_valid", Stored::Scram, "LOGIN VALID UNTIL 'infinity'").await;
    let expired = create_role(
        "aq_expired",
        Stored::Scram,
        "LOGIN VALID UNTIL '2000-01-01'",
    )
    .await;
    let nologin = create_role("aq_nologin", Stored::Scram, "NOLOGIN").await;
    let pgmux = auth_query_pgmux(&auth).start().await;

    let client = pgmux.connect(&valid, ROLE_PASSWORD, "app").await;
    assert_eq!(current_user(&client).await, valid);
    assert_password_refused(&pgmux, &expired, ROLE_PASSWORD).await;
    assert_password_refused(&pgmux, &nologin, ROLE_PASSWORD).await;
}
