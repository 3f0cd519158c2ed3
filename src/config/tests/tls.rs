use super::*;

#[test]
fn tls_defaults_follow_pgbouncer() {
    let settings = parse("");
    assert_eq!(settings.tls.client_tls_sslmode, SslMode::Disable);
    assert_eq!(settings.tls.server_tls_sslmode, SslMode::Prefer);
    assert_eq!(settings.tls.client_tls_cert_file, None);
}

#[test]
fn tls_modes_parse_from_file_and_environment() {
    let settings = parse_with_env(
        "client_tls_sslmode = \"Require\"\nclient_tls_cert_file = \"c.pem\"\n\
         client_tls_key_file = \"k.pem\"",
        &[
            ("PGMUX_SERVER_TLS_SSLMODE", "verify-ca"),
            ("PGMUX_SERVER_TLS_CA_FILE", "ca.pem"),
        ],
    );
    assert_eq!(settings.tls.client_tls_sslmode, SslMode::Require);
    assert_eq!(settings.tls.server_tls_sslmode, SslMode::VerifyCa);
    assert_eq!(
        settings.tls.server_tls_ca_file.as_deref(),
        Some(std::path::Path::new("ca.pem"))
    );
}

#[test]
fn tls_settings_that_cannot_work_are_refused() {
    assert!(error("client_tls_sslmode = \"sometimes\"")
        .contains("client_tls_sslmode: invalid value \"sometimes\": expected one of \"disable\""));
    assert!(error("client_tls_sslmode = \"require\"")
        .contains("client_tls_key_file: required when client_tls_sslmode is \"require\""));
    assert!(error(
        "client_tls_sslmode = \"verify-ca\"\nclient_tls_cert_file = \"c\"\nclient_tls_key_file = \"k\""
    )
    .contains("client_tls_ca_file: required"));
    assert!(error("server_tls_sslmode = \"verify-full\"").contains("server_tls_ca_file: required"));
    assert!(error("server_tls_cert_file = \"c\"").contains("go together"));
}
