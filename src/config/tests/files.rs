use super::*;

#[test]
fn example_pooler_toml_is_valid() {
    let settings = parse(include_str!("../../../pooler.toml"));
    assert_eq!(
        (settings.listen_addr.as_str(), settings.listen_port),
        ("127.0.0.1", 6432)
    );
    assert_eq!(settings.pool_mode, PoolMode::Transaction);
    assert_eq!(settings.default_pool_size, 25);
    assert_eq!(settings.max_client_conn, 10000);
    assert_eq!(settings.auth_type, AuthType::ScramSha256);
    let app = &settings.databases["app"];
    assert_eq!(
        (app.host.as_str(), app.port, app.dbname.as_str()),
        ("127.0.0.1", 5432, "app")
    );
    assert_eq!(settings.databases["postgres"].dbname, "postgres");
    assert_eq!(settings.users["app"].password.as_deref(), Some("secret"));
    let defaults = Settings::default();
    assert_eq!(settings.unix_socket_dir, defaults.unix_socket_dir);
    assert_eq!(settings.server_reset_query, defaults.server_reset_query);
    assert_eq!(
        settings.track_extra_parameters,
        defaults.track_extra_parameters
    );
}

#[test]
fn load_reads_the_file_and_records_its_path() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("pooler.toml");
    std::fs::write(&path, "\u{feff}default_pool_size = 7\n[databases.app]\n").unwrap();

    let settings = load_with_env(&path, &env(&[("PGMUX_WORKERS", "3")])).unwrap();
    assert_eq!(settings.source.as_deref(), Some(path.as_path()));
    assert_eq!((settings.default_pool_size, settings.workers), (7, 3));

    // The process environment of a test run carries no PGMUX_* variables.
    let settings = load(&path).unwrap();
    assert_eq!(settings.source.as_deref(), Some(path.as_path()));
    assert_eq!(settings.default_pool_size, 7);
}
