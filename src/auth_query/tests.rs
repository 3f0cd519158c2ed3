use super::*;
use crate::config::{UserSettings, DEFAULT_AUTH_QUERY};

fn database(name: &str, host: &str, dbname: &str) -> DatabaseSettings {
    DatabaseSettings {
        name: name.to_owned(),
        host: host.to_owned(),
        port: 5432,
        dbname: dbname.to_owned(),
        user: None,
        password: None,
        pool_size: None,
        min_pool_size: None,
        reserve_pool_size: None,
        pool_mode: None,
        max_db_connections: None,
        auth_user: None,
        auth_dbname: None,
        auth_query: None,
    }
}

fn settings_with(databases: Vec<DatabaseSettings>) -> Settings {
    let mut settings = Settings::for_tests();
    for db in databases {
        settings.databases.insert(db.name.clone(), db);
    }
    settings.users.insert(
        "lookup".into(),
        UserSettings {
            name: "lookup".into(),
            password: Some("lookup-pw".into()),
            pool_mode: None,
            max_user_connections: None,
        },
    );
    settings
}

fn source(settings: &Settings, db: &str) -> Result<Option<AuthSource>, LookupError> {
    let db = settings.database(db).expect("configured database");
    AuthSource::for_database(settings, &db, ServerTls::disabled())
}

fn row(name: Option<&str>, secret: Option<&str>) -> Row {
    vec![name.map(str::to_owned), secret.map(str::to_owned)]
}

#[test]
fn no_auth_user_means_no_lookup() {
    let settings = settings_with(vec![database("app", "db1", "app")]);
    assert_eq!(source(&settings, "app"), Ok(None));
}

#[test]
fn the_global_auth_user_queries_the_clients_own_database_by_default() {
    let mut settings = settings_with(vec![database("app", "db1", "app_server")]);
    settings.auth_user = Some("lookup".into());
    let source = source(&settings, "app").unwrap().expect("a source");
    assert_eq!(source.target.host, "db1");
    assert_eq!(source.target.dbname, "app_server");
    assert_eq!(source.target.user, "lookup");
    assert_eq!(source.target.password.as_deref(), Some("lookup-pw"));
    assert_eq!(source.query, DEFAULT_AUTH_QUERY);
}

#[test]
fn database_overrides_win_and_auth_dbname_names_a_databases_entry() {
    let mut app = database("app", "db1", "app");
    app.auth_user = Some("per_db_auth".into());
    app.auth_dbname = Some("authdb".into());
    app.auth_query = Some("SELECT * FROM lookup($1)".into());
    let mut settings = settings_with(vec![app, database("authdb", "db2", "postgres")]);
    settings.auth_user = Some("lookup".into());
    settings.auth_dbname = Some("nowhere".into());
    let source = source(&settings, "app").unwrap().expect("a source");
    assert_eq!(
        (source.target.host.as_str(), source.target.dbname.as_str()),
        ("db2", "postgres")
    );
    assert_eq!(source.target.user, "per_db_auth");
    assert_eq!(
        source.target.password, None,
        "not configured: trust or peer"
    );
    assert_eq!(source.query, "SELECT * FROM lookup($1)");
}

#[test]
fn an_unknown_auth_dbname_is_a_lookup_error() {
    let mut settings = settings_with(vec![database("app", "db1", "app")]);
    settings.auth_user = Some("lookup".into());
    settings.auth_dbname = Some("missing".into());
    let error = source(&settings, "app").unwrap_err();
    assert!(
        error.to_string().contains("\"missing\" is not configured"),
        "{error}"
    );
}

#[test]
fn the_wildcard_entry_serves_as_auth_database_under_the_requested_name() {
    let mut settings = settings_with(vec![database("*", "db1", "*")]);
    settings.auth_user = Some("lookup".into());
    settings.auth_dbname = Some("postgres".into());
    let source = source(&settings, "anything").unwrap().expect("a source");
    assert_eq!(source.target.dbname, "postgres");
}

#[test]
fn the_first_rows_secret_is_the_answer() {
    let scram = "SCRAM-SHA-256$4096:c2FsdA==$a:b";
    assert_eq!(
        secret_from_rows(&[row(Some("u"), Some(scram)), row(Some("u"), Some("x"))]),
        Ok(Some(scram.to_owned()))
    );
}

#[test]
fn no_row_null_name_null_or_empty_secret_all_mean_no_login() {
    assert_eq!(secret_from_rows(&[]), Ok(None));
    assert_eq!(secret_from_rows(&[row(None, None)]), Ok(None));
    assert_eq!(secret_from_rows(&[row(None, Some("md5abc"))]), Ok(None));
    assert_eq!(secret_from_rows(&[row(Some("u"), None)]), Ok(None));
    assert_eq!(secret_from_rows(&[row(Some("u"), Some(""))]), Ok(None));
}

#[test]
fn a_query_without_two_columns_is_an_error() {
    let error = secret_from_rows(&[vec![Some("only".to_owned())]]).unwrap_err();
    assert!(error.to_string().contains("2 columns"), "{error}");
}
