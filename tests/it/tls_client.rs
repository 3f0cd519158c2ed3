//! TLS between clients and pgmux: `client_tls_sslmode`, certificates, client
//! certificates, reload, and SCRAM-SHA-256-PLUS channel binding, with psql and with
//! tokio-postgres over rustls.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::harness::tls::{CertFiles, TestPki};
use crate::harness::{self, pgmux, postgres, run_tool, toml_path, Pgmux, ToolOutput};

const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// pgmux serving TLS to clients with a certificate for localhost/127.0.0.1.
async fn tls_pgmux(mode: &str, pki: &TestPki, cert: &CertFiles) -> Pgmux {
    pgmux().client_tls(mode, pki, cert).start().await
}

/// psql through pgmux as `app` with extra libpq connection options; runs `sql`.
fn psql(pgmux: &Pgmux, options: &str, sql: &str) -> ToolOutput {
    let conninfo = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=app dbname=app {options}",
        pgmux.port()
    );
    let mut cmd = pgmux.tool_command(&postgres().bin("psql"), "app", "secret", "app");
    cmd.args(["-X", "-At", "-d", &conninfo, "-c", sql]);
    run_tool(&mut cmd, TOOL_TIMEOUT)
}

fn verify_full(ca: &Path) -> String {
    format!("sslmode=verify-full sslrootcert={}", ca.display())
}

#[tokio::test]
async fn psql_verify_full_connects_over_tls_and_plaintext_is_refused_under_require() {
    let _guard = harness::shared();
    let pki = TestPki::new("client side CA");
    let cert = pki.server_cert("pgmux");
    let pgmux = tls_pgmux("require", &pki, &cert).await;

    let out = psql(&pgmux, &verify_full(pki.ca_file()), "\\conninfo");
    out.assert_success();
    assert!(
        out.stdout.contains("SSL connection"),
        "psql should report an SSL connection: {}",
        out.stdout
    );
    let out = psql(&pgmux, &verify_full(pki.ca_file()), "select 40 + 2");
    assert_eq!(out.assert_success().stdout.trim(), "42");

    // PgBouncer's text and code, as a FATAL 08P01 before any password is asked.
    let out = psql(&pgmux, "sslmode=disable", "select 1");
    assert!(!out.success(), "plaintext login must fail: {}", out.stdout);
    assert!(
        out.stderr.contains("SSL required"),
        "stderr: {}",
        out.stderr
    );
    let error = pgmux
        .try_connect("app", "secret", "app")
        .await
        .expect_err("tokio-postgres without TLS is refused");
    assert_eq!(error.code().map(|c| c.code()), Some("08P01"));
}

#[tokio::test]
async fn psql_with_channel_binding_require_logs_in_with_scram_sha_256_plus() {
    let _guard = harness::shared();
    let pki = TestPki::new("channel binding CA");
    let cert = pki.server_cert("pgmux");
    let pgmux = tls_pgmux("require", &pki, &cert).await;
    // libpq refuses to finish unless the server offered and completed -PLUS.
    let options = format!("{} channel_binding=require", verify_full(pki.ca_file()));
    let out = psql(&pgmux, &options, "select current_user");
    assert_eq!(out.assert_success().stdout.trim(), "app");

    // Wrong password with binding: still an ordinary failed SCRAM exchange.
    let mut cmd = pgmux.tool_command(&postgres().bin("psql"), "app", "wrong", "app");
    cmd.args([
        "-X",
        "-d",
        &format!("host=127.0.0.1 port={} {options}", pgmux.port()),
        "-c",
        "select 1",
    ]);
    let out = run_tool(&mut cmd, TOOL_TIMEOUT);
    assert!(!out.success());
    assert!(
        out.stderr.contains("SASL authentication failed"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn channel_binding_require_fails_without_tls_to_pgmux() {
    // The other half of the previous test: -PLUS exists only on TLS connections.
    let _guard = harness::shared();
    let pki = TestPki::new("prefer CA");
    let cert = pki.server_cert("pgmux");
    let pgmux = tls_pgmux("prefer", &pki, &cert).await;
    let out = psql(
        &pgmux,
        "sslmode=disable channel_binding=require",
        "select 1",
    );
    assert!(!out.success(), "{}", out.stdout);
    assert!(out.stderr.contains("channel binding"), "{}", out.stderr);
    // prefer still serves plaintext clients.
    let out = psql(&pgmux, "sslmode=disable", "select 1");
    assert_eq!(out.assert_success().stdout.trim(), "1");
}

fn rustls_connector(ca: &Path) -> tokio_postgres_rustls::MakeRustlsConnect {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for cert in rustls_pemfile_certs(&pem) {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn rustls_connect(
    pgmux: &Pgmux,
    ca: &Path,
    extra: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let config = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=app password=secret dbname=app \
         sslmode=require {extra}",
        pgmux.port()
    );
    let attempt = tokio_postgres::connect(&config, rustls_connector(ca));
    let (client, connection) = tokio::time::timeout(Duration::from_secs(20), attempt)
        .await
        .expect("TLS login must not hang")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

#[tokio::test]
async fn tokio_postgres_over_rustls_verifies_pgmux_and_binds_the_channel() {
    let _guard = harness::shared();
    let pki = TestPki::new("tokio-postgres CA");
    let cert = pki.server_cert("pgmux");
    let pgmux = tls_pgmux("require", &pki, &cert).await;

    let client = rustls_connect(&pgmux, pki.ca_file(), "channel_binding=require")
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", pgmux.logs()));
    let row = client.query_one("select 1 + 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
    // PgBouncer's `tls=` field of the login line: version/cipher/key exchange.
    // (TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519 with today's rustls defaults).
    let login = pgmux
        .wait_for_line(
            &["login attempt: db=app user=app tls=TLSv1.3/TLS_"],
            Duration::from_secs(5),
        )
        .await
        .unwrap_or_else(|| panic!("{}", pgmux.logs()));
    assert!(
        login.contains("/ECDH=") && login.ends_with(" replication=no"),
        "{login}"
    );

    // Another CA does not vouch for pgmux's certificate.
    let stranger = TestPki::new("unrelated CA");
    let error = rustls_connect(&pgmux, stranger.ca_file(), "")
        .await
        .expect_err("certificate from an unknown CA is rejected");
    assert!(format!("{error:?}").contains("UnknownIssuer"), "{error:?}");
}

#[tokio::test]
async fn verify_ca_requires_a_client_certificate_from_the_configured_ca() {
    let _guard = harness::shared();
    let pki = TestPki::new("client certificate CA");
    let cert = pki.server_cert("pgmux");
    let client_cert = pki.client_cert("client", "app");
    let pgmux = tls_pgmux("verify-ca", &pki, &cert).await;

    let out = psql(&pgmux, &verify_full(pki.ca_file()), "select 1");
    assert!(!out.success(), "no client certificate: {}", out.stdout);

    let with_cert = format!(
        "{} sslcert={} sslkey={}",
        verify_full(pki.ca_file()),
        client_cert.cert.display(),
        client_cert.key.display()
    );
    let out = psql(&pgmux, &with_cert, "select 7");
    assert_eq!(out.assert_success().stdout.trim(), "7");

    // A certificate from another CA is refused.
    let stranger = TestPki::new("stranger CA").client_cert("client", "app");
    let foreign = format!(
        "{} sslcert={} sslkey={}",
        verify_full(pki.ca_file()),
        stranger.cert.display(),
        stranger.key.display()
    );
    let out = psql(&pgmux, &foreign, "select 1");
    assert!(!out.success(), "foreign client certificate: {}", out.stdout);
}

#[tokio::test]
async fn renewed_certificate_is_served_after_sighup() {
    let _guard = harness::shared();
    let old_ca = TestPki::new("old CA");
    let cert = old_ca.server_cert("pgmux");
    let pgmux = tls_pgmux("require", &old_ca, &cert).await;
    let out = psql(&pgmux, &verify_full(old_ca.ca_file()), "select 1");
    out.assert_success();

    // Renewal in place: same file names, a certificate from a new CA.
    let new_ca = TestPki::new("new CA");
    let renewed = new_ca.server_cert("pgmux");
    std::fs::copy(&renewed.cert, &cert.cert).unwrap();
    std::fs::copy(&renewed.key, &cert.key).unwrap();
    pgmux.signal("HUP");
    assert!(
        pgmux
            .wait_for_log("reloaded", Duration::from_secs(10))
            .await,
        "{}",
        pgmux.logs()
    );
    let out = psql(&pgmux, &verify_full(new_ca.ca_file()), "select 2");
    assert_eq!(out.assert_success().stdout.trim(), "2");
    let out = psql(&pgmux, &verify_full(old_ca.ca_file()), "select 3");
    assert!(!out.success(), "the old certificate is no longer served");
}

#[tokio::test]
async fn unreadable_key_file_fails_the_configuration_check() {
    let _guard = harness::shared();
    let pki = TestPki::new("check CA");
    let cert = pki.server_cert("pgmux");
    let config = pki.dir().join("pooler.toml");
    std::fs::write(
        &config,
        format!(
            "client_tls_sslmode = \"require\"\nclient_tls_cert_file = {}\n\
             client_tls_key_file = {}\n",
            toml_path(&cert.cert),
            toml_path(&pki.dir().join("missing.key"))
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pgmux"));
    cmd.arg("--check").arg(&config);
    let out = run_tool(&mut cmd, TOOL_TIMEOUT);
    assert!(!out.success());
    assert!(
        out.stderr.contains("client_tls_key_file") && out.stderr.contains("missing.key"),
        "{}",
        out.stderr
    );
}
