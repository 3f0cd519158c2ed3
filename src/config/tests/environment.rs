use std::time::Duration;

use super::*;

const FILE_WITH_APP: &str = r#"
default_pool_size = 10
pool_mode = "session"
[databases.app]
host = "127.0.0.1"
dbname = "app"
"#;

#[test]
fn top_level_variables_override_the_file() {
    let settings = parse_with_env(
        FILE_WITH_APP,
        &[
            ("PGMUX_DEFAULT_POOL_SIZE", "50"),
            ("PGMUX_POOL_MODE", "transaction"),
            ("PGMUX_QUERY_WAIT_TIMEOUT", "3s"),
            ("PGMUX_SERVER_LIFETIME", "90"),
            ("PGMUX_APPLICATION_NAME_ADD_HOST", "true"),
            ("PGMUX_LISTEN_ADDR", "*"),
        ],
    );
    assert_eq!(settings.default_pool_size, 50);
    assert_eq!(settings.pool_mode, PoolMode::Transaction);
    assert_eq!(settings.query_wait_timeout, Duration::from_secs(3));
    assert_eq!(settings.server_lifetime, Duration::from_secs(90));
    assert!(settings.application_name_add_host);
    assert_eq!(settings.listen_addr, "0.0.0.0");
}

#[test]
fn nested_variables_override_or_add_database_and_user_keys() {
    let settings = parse_with_env(
        FILE_WITH_APP,
        &[
            ("PGMUX_DATABASES__APP__HOST", "db.internal"),
            ("PGMUX_DATABASES__APP__PORT", "6543"),
            ("PGMUX_DATABASES__APP__POOL_SIZE", "5"),
            (
                "PGMUX_DATABASES__REPORTS__URL",
                "postgres://r:pw@replica/reports",
            ),
            ("PGMUX_USERS__APP__PASSWORD", "from-env"),
            ("PGMUX_USERS__APP__POOL_MODE", "statement"),
        ],
    );
    let app = &settings.databases["app"];
    assert_eq!(
        (app.host.as_str(), app.port, app.dbname.as_str()),
        ("db.internal", 6543, "app")
    );
    assert_eq!(settings.pool_size_for("app"), 5);
    let reports = &settings.databases["reports"];
    assert_eq!(
        (reports.host.as_str(), reports.dbname.as_str()),
        ("replica", "reports")
    );
    assert_eq!(reports.password.as_deref(), Some("pw"));
    assert_eq!(settings.users["app"].password.as_deref(), Some("from-env"));
    assert_eq!(settings.pool_mode_for("app", "app"), PoolMode::Statement);
}

#[test]
fn lists_are_comma_separated_in_variables() {
    let settings = parse_with_env(
        "admin_users = [\"root\"]",
        &[
            ("PGMUX_ADMIN_USERS", "alice, bob"),
            ("PGMUX_STATS_USERS", "carol"),
            (
                "PGMUX_IGNORE_STARTUP_PARAMETERS",
                "extra_float_digits,options",
            ),
            ("PGMUX_TRACK_EXTRA_PARAMETERS", ""),
        ],
    );
    assert_eq!(settings.admin_users, ["alice", "bob"]);
    assert_eq!(settings.stats_users, ["carol"]);
    assert_eq!(
        settings.ignore_startup_parameters,
        ["extra_float_digits", "options"]
    );
    assert!(settings.track_extra_parameters.is_empty());
}

#[test]
fn an_empty_unix_socket_dir_variable_disables_the_socket() {
    let settings = parse_with_env("", &[("PGMUX_UNIX_SOCKET_DIR", "")]);
    assert_eq!(settings.unix_socket_dir, None);
}

#[test]
fn variables_without_the_prefix_are_ignored() {
    let settings = parse_with_env(
        "",
        &[
            ("PATH", "/usr/bin"),
            ("PGMUXY_WORKERS", "9"),
            ("DEFAULT_POOL_SIZE", "1"),
        ],
    );
    assert_eq!(settings, Settings::default());
}

#[test]
fn unknown_key_in_a_variable_names_the_variable() {
    let message = error_with_env("", &[("PGMUX_MAX_CLINET_CONN", "5")]);
    assert_eq!(
        message,
        "pooler.toml: unknown key `max_clinet_conn` (set by environment variable \
         PGMUX_MAX_CLINET_CONN) (did you mean `max_client_conn`?)"
    );

    let message = error_with_env(FILE_WITH_APP, &[("PGMUX_DATABASES__APP__HOTS", "db")]);
    assert!(
        message.contains("unknown key `databases.app.hots`"),
        "{message}"
    );
    assert!(message.contains("PGMUX_DATABASES__APP__HOTS"), "{message}");
    assert!(message.contains("did you mean `host`?"), "{message}");

    let message = error_with_env("", &[("PGMUX_LISTEN__ADDR", "x")]);
    assert!(message.contains("unknown key `listen`"), "{message}");
    assert!(message.contains("PGMUX_LISTEN__ADDR"), "{message}");
}

#[test]
fn bad_value_in_a_variable_names_the_variable_and_the_key() {
    let message = error_with_env(FILE_WITH_APP, &[("PGMUX_DATABASES__APP__PORT", "abc")]);
    assert_eq!(
        message,
        "pooler.toml: databases.app.port (set by environment variable \
         PGMUX_DATABASES__APP__PORT): invalid value \"abc\": expected a port number (1-65535)"
    );

    let message = error_with_env("", &[("PGMUX_DEFAULT_POOL_SIZE", "0")]);
    assert!(
        message.contains("default_pool_size (set by environment variable PGMUX_DEFAULT_POOL_SIZE)")
    );

    let message = error_with_env(
        FILE_WITH_APP,
        &[("PGMUX_DATABASES__APP__URL", "postgres://h/d")],
    );
    assert!(
        message.contains("databases.app.host: cannot be combined with `url`"),
        "{message}"
    );
}

#[test]
fn a_value_from_the_file_is_not_blamed_on_the_environment() {
    let message = error_with_env("workers = -1", &[("PGMUX_DEFAULT_POOL_SIZE", "3")]);
    assert_eq!(
        message,
        "pooler.toml: workers: invalid value -1: expected a whole number, 0 or more"
    );
}

#[test]
fn sigterm_shutdown_reads_like_the_other_choices() {
    let settings = parse_str(
        "",
        FILE,
        &env(&[("PGMUX_SIGTERM_SHUTDOWN", " WAIT_FOR_CLIENTS ")]),
    )
    .unwrap();
    assert_eq!(settings.sigterm_shutdown, SigtermShutdown::WaitForClients);
    let error = parse_str("", FILE, &env(&[("PGMUX_SIGTERM_SHUTDOWN", "later")])).unwrap_err();
    assert_eq!(error.key(), Some("sigterm_shutdown"));
}
