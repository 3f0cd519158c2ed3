use super::*;

#[test]
fn unknown_key_in_the_file() {
    assert_eq!(
        error("max_clinet_conn = 5"),
        "pooler.toml: unknown key `max_clinet_conn` (did you mean `max_client_conn`?)"
    );
    assert_eq!(
        error("frobnicate = 1"),
        "pooler.toml: unknown key `frobnicate`"
    );
    assert_eq!(
        error("[databases.app]\nhots = \"db\""),
        "pooler.toml: unknown key `databases.app.hots` (did you mean `host`?)"
    );
    assert!(error("[users.bob]\npasword = \"x\"").contains("unknown key `users.bob.pasword`"));
    assert!(error("[pgbouncer]\nlisten_port = 1").contains("unknown key `pgbouncer`"));
}

#[test]
fn bad_values_name_the_key_and_what_was_expected() {
    assert_eq!(
        error("[databases.app]\nport = \"abc\""),
        "pooler.toml: databases.app.port: invalid value \"abc\": expected a port number (1-65535)"
    );
    assert_eq!(
        error("[databases.app]\nport = 0"),
        "pooler.toml: databases.app.port: invalid value 0: expected a port number (1-65535)"
    );
    assert_eq!(
        error("listen_port = 70000"),
        "pooler.toml: listen_port: invalid value 70000: expected a port number (0-65535)"
    );
    assert_eq!(
        error("default_pool_size = 0"),
        "pooler.toml: default_pool_size: invalid value 0: expected a whole number, 1 or more"
    );
    assert_eq!(
        error("[databases.app]\npool_size = 0"),
        "pooler.toml: databases.app.pool_size: invalid value 0: expected a whole number, 1 or more"
    );
    assert_eq!(
        error("pool_mode = \"txn\""),
        "pooler.toml: pool_mode: invalid value \"txn\": expected one of \"session\", \"transaction\", \"statement\""
    );
    assert_eq!(
        error("[users.bob]\npool_mode = \"sessions\""),
        "pooler.toml: users.bob.pool_mode: invalid value \"sessions\": expected one of \"session\", \"transaction\", \"statement\""
    );
    assert_eq!(
        error("auth_type = \"scram\""),
        "pooler.toml: auth_type: invalid value \"scram\": expected one of \"any\", \"trust\", \"plain\", \"md5\", \"scram-sha-256\", \"hba\""
    );
    assert_eq!(
        error("server_reset_query_always = \"maybe\""),
        "pooler.toml: server_reset_query_always: invalid value \"maybe\": expected true or false"
    );
    assert!(error("max_client_conn = 1.5").contains("max_client_conn: invalid value 1.5"));
    assert!(error("listen_addr = \"a, b\"").contains("expected one IP address or host name"));
    assert!(error("server_check_query = 1")
        .contains("server_check_query: invalid value 1: expected a string"));
    assert!(
        error("[databases.app]\nhost = \"\"").contains("databases.app.host: invalid value \"\"")
    );
}

#[test]
fn values_of_the_wrong_shape_name_the_key() {
    let message = error("listen_port = [1, 2]");
    assert!(
        message.starts_with("pooler.toml: listen_port: invalid type"),
        "{message}"
    );
    let message = error("admin_users = 5");
    assert!(
        message.starts_with("pooler.toml: admin_users: invalid type"),
        "{message}"
    );
    let message = error("databases = 5");
    assert!(message.starts_with("pooler.toml: databases: "), "{message}");
    let message = error("[databases]\napp = \"postgres://h/d\"");
    assert!(
        message.starts_with("pooler.toml: databases.app: "),
        "{message}"
    );
}

#[test]
fn empty_names_are_refused() {
    assert_eq!(
        error("[databases.\"\"]\nhost = \"h\""),
        "pooler.toml: databases: a database name must not be empty"
    );
    assert_eq!(
        error("[users.\" \"]"),
        "pooler.toml: users: a user name must not be empty"
    );
}

#[test]
fn url_conflicts_and_bad_urls() {
    assert_eq!(
        error("[databases.app]\nurl = \"postgres://h/d\"\nport = 5433"),
        "pooler.toml: databases.app.port: cannot be combined with `url`; put the port in the URL instead"
    );
    let message = error("[databases.app]\nurl = \"mysql://u:hunter2@h/d\"");
    assert_eq!(
        message,
        "pooler.toml: databases.app.url: unsupported URL scheme `mysql`: expected postgres:// or postgresql://"
    );
    let message = error("[databases.app]\nurl = \"postgres://u:hunter2@h:0/d\"");
    assert!(
        message.starts_with("pooler.toml: databases.app.url: "),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn secrets_are_not_echoed() {
    assert_eq!(
        error("[users.bob]\npassword = 12345"),
        "pooler.toml: users.bob.password: invalid value (hidden): expected a string"
    );
}

#[test]
fn toml_syntax_errors_are_one_line_with_a_position() {
    let message = error("listen_port = 6432\npool_mode = \n");
    assert!(
        message.starts_with("pooler.toml: invalid TOML: at line 2"),
        "{message}"
    );
    let message = error("workers = 1\nworkers = 2\n");
    assert!(
        message.starts_with("pooler.toml: invalid TOML: "),
        "{message}"
    );
}

#[test]
fn missing_file_names_the_file_and_the_os_reason() {
    let path = std::path::Path::new("/nonexistent/pgmux/pooler.toml");
    let error = load_with_env(path, &[]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "/nonexistent/pgmux/pooler.toml: cannot read file: No such file or directory (os error 2)"
    );
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(load(path).is_err());
}

#[test]
fn errors_expose_their_key_and_variable() {
    let error = parse_str("", FILE, &env(&[("PGMUX_WORKERS", "many")])).unwrap_err();
    assert_eq!(error.key(), Some("workers"));
    assert_eq!(error.env_var(), Some("PGMUX_WORKERS"));
}

#[test]
fn a_pgbouncer_connection_string_is_refused_without_echoing_it() {
    let message = error("[databases]\napp = \"host=db password=hun\\\"ter2\"");
    assert_eq!(
        message,
        "pooler.toml: databases.app: invalid type: a string, \
         expected a [databases.NAME] table of host, port, dbname… or url"
    );
}
