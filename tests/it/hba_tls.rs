//! `auth_hba_file` rules that depend on TLS: `hostssl` / `hostnossl`, and the `cert`
//! method (the verified client certificate's common name is the user name), with psql.

use std::time::Duration;

use crate::harness::tls::{CertFiles, TestPki};
use crate::harness::{self, postgres, run_tool, Pgmux, ToolOutput};
use crate::hba::{hba_pgmux, refusal, HbaFile};

const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

async fn tls_hba_pgmux(hba: &HbaFile, mode: &str, pki: &TestPki) -> Pgmux {
    hba_pgmux(hba)
        .client_tls(mode, pki, &pki.server_cert("pgmux"))
        .start()
        .await
}

/// psql over TCP as `user` (no password in the environment) with extra libpq options.
fn psql(pgmux: &Pgmux, user: &str, options: &str) -> ToolOutput {
    let conninfo = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user={user} dbname=app {options}",
        pgmux.port()
    );
    let mut cmd = pgmux.tool_command(&postgres().bin("psql"), user, "", "app");
    cmd.env_remove("PGPASSWORD")
        .args(["-X", "-At", "-w", "-d", &conninfo, "-c", "select 40 + 2"]);
    run_tool(&mut cmd, TOOL_TIMEOUT)
}

fn with_certificate(pki: &TestPki, client: &CertFiles) -> String {
    format!(
        "sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        pki.ca_file().display(),
        client.cert.display(),
        client.key.display()
    )
}

#[tokio::test]
async fn hostssl_trusts_tls_clients_and_hostnossl_rejects_plaintext() {
    let _guard = harness::shared();
    let pki = TestPki::new("hba hostssl CA");
    let hba = HbaFile::new(
        "hostssl   all all all trust\n\
         hostnossl all all all reject\n",
    );
    let pgmux = tls_hba_pgmux(&hba, "prefer", &pki).await;

    let out = psql(&pgmux, "app", "sslmode=require");
    assert_eq!(out.assert_success().stdout.trim(), "42");

    let out = psql(&pgmux, "app", "sslmode=disable");
    assert!(!out.success(), "a plaintext login got in: {}", out.stdout);
    assert!(
        out.stderr.contains(
            "auth_hba_file rejects connection for host \"127.0.0.1\", user \"app\", \
             database \"app\", no encryption"
        ),
        "{}",
        out.stderr
    );
    let (code, _) = refusal(pgmux.try_connect("app", "secret", "app").await);
    assert_eq!(code, "28000");
}

#[tokio::test]
async fn cert_logs_in_the_user_named_by_the_client_certificate() {
    let _guard = harness::shared();
    let pki = TestPki::new("hba cert CA");
    let hba = HbaFile::new("hostssl all all all cert\n");
    let pgmux = tls_hba_pgmux(&hba, "verify-ca", &pki).await;

    let app_cert = pki.client_cert("app-client", "app");
    let out = psql(&pgmux, "app", &with_certificate(&pki, &app_cert));
    assert_eq!(out.assert_success().stdout.trim(), "42");

    // A valid certificate for someone else does not make its holder `app`.
    let other_cert = pki.client_cert("other-client", "other");
    let out = psql(&pgmux, "app", &with_certificate(&pki, &other_cert));
    assert!(!out.success(), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("certificate authentication failed for user \"app\""),
        "{}",
        out.stderr
    );
}
