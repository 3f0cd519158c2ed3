use std::path::Path;
use std::time::Duration;

use super::{sections, translate};
use crate::config::{parse_str, AuthType, ConfigError, PoolMode, Settings};

fn load(text: &str) -> Result<(Settings, Vec<String>), ConfigError> {
    let translation = translate(Path::new("pgbouncer.ini"), text)?;
    let settings = parse_str(&translation.toml, "pgbouncer.ini", &[])?;
    let warnings = translation
        .warnings
        .into_iter()
        .map(|w| w.message)
        .collect();
    Ok((settings, warnings))
}

const REALISTIC: &str = r#"
;; a typical packaged pgbouncer.ini
[databases]
app = host=10.0.0.5 port=5433 dbname=app_prod pool_size=30 reserve_pool=3
forced = host=db user=svc password='p@ss w''rd' pool_mode=statement
"weird db" = dbname=x
* = host=db port=5432

[users]
report = pool_mode=session max_user_connections=4

[pgbouncer]
listen_addr = *
listen_port = 6543
auth_type = scram-sha-256
auth_file = /etc/pgbouncer/userlist.txt
pool_mode = transaction
# durations are seconds, possibly fractional
query_wait_timeout = 2.5
server_reset_query_always = 1
admin_users = alice, bob
so_reuseport = 1
log_connections = 1
"#;

#[test]
fn realistic_file_maps_onto_settings() {
    let (settings, _) = load(REALISTIC).unwrap();
    assert_eq!(settings.listen_addr, "0.0.0.0");
    assert_eq!(settings.listen_port, 6543);
    assert_eq!(settings.auth_type, AuthType::ScramSha256);
    assert_eq!(settings.pool_mode, PoolMode::Transaction);
    assert_eq!(settings.query_wait_timeout, Duration::from_millis(2500));
    assert!(settings.server_reset_query_always);
    assert_eq!(settings.admin_users, ["alice", "bob"]);
    assert_eq!(
        settings.auth_file.as_deref(),
        Some(Path::new("/etc/pgbouncer/userlist.txt"))
    );

    let app = &settings.databases["app"];
    assert_eq!((app.host.as_str(), app.port), ("10.0.0.5", 5433));
    assert_eq!(app.dbname, "app_prod");
    assert_eq!((app.pool_size, app.reserve_pool_size), (Some(30), Some(3)));
    let forced = &settings.databases["forced"];
    assert_eq!(forced.user.as_deref(), Some("svc"));
    assert_eq!(forced.password.as_deref(), Some("p@ss w'rd"));
    assert_eq!(forced.pool_mode, Some(PoolMode::Statement));
    // No host: PgBouncer connects through unix_socket_dir.
    assert_eq!(settings.databases["weird db"].host, "/tmp");
    assert_eq!(settings.users["report"].pool_mode, Some(PoolMode::Session));
    assert_eq!(settings.users["report"].max_user_connections, Some(4));
}

#[test]
fn wildcard_database_serves_any_name_on_the_same_server_database() {
    let (settings, _) = load(REALISTIC).unwrap();
    let other = settings.database("billing").unwrap();
    assert_eq!(
        (other.host.as_str(), other.dbname.as_str()),
        ("db", "billing")
    );
    assert_eq!(settings.database("app").unwrap().dbname, "app_prod");
}

#[test]
fn pgbouncer_defaults_apply_when_the_ini_omits_them() {
    let (settings, _) = load("[pgbouncer]\n[databases]\n").unwrap();
    // PgBouncer: no listen_addr means unix socket only.
    assert_eq!(settings.listen_addr, "");
    assert_eq!(settings.auth_type, AuthType::Md5);
    assert_eq!(settings.pool_mode, PoolMode::Session);
    assert_eq!(settings.listen_port, 6432);
    assert_eq!(settings.default_pool_size, 20);
}

#[test]
fn unsupported_settings_warn_once_each_and_defaults_stay_quiet() {
    let (settings, warnings) =
        load(&format!("{REALISTIC}tcp_keepcnt = 3\nso_reuseport = 1\n")).unwrap();
    let about = |needle: &str| warnings.iter().filter(|w| w.contains(needle)).count();
    assert_eq!(
        about("setting tcp_keepcnt is not supported by pgmux and is ignored"),
        1
    );
    // so_reuseport is implemented: applied, without a warning.
    assert!(settings.so_reuseport);
    assert_eq!(about("so_reuseport"), 0);
    // log_connections = 1 is PgBouncer's default: nothing to warn about.
    assert_eq!(about("log_connections"), 0);
}

#[test]
fn unknown_keys_and_sections_are_errors_naming_file_line_and_key() {
    let error = load("[pgbouncer]\nlisten_prot = 6432\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "pgbouncer.ini:2: unknown key `[pgbouncer] listen_prot` (did you mean `listen_port`?)"
    );
    let error = load("[pgbouncr]\n").unwrap_err().to_string();
    assert!(
        error.starts_with("pgbouncer.ini:1: unknown section [pgbouncr]"),
        "{error}"
    );
    let error = load("[databases]\napp = host=x colour=red\n")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("unrecognized connection parameter: colour"),
        "{error}"
    );
    let error = load("[users]\nbob = colour=red\n").unwrap_err().to_string();
    assert!(
        error.contains("unrecognized user parameter: colour"),
        "{error}"
    );
    let error = load("[databases]\npgbouncer = host=x\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("reserved"), "{error}");
}

#[test]
fn invalid_values_are_reported_with_pgmux_key_names() {
    let error = load("[pgbouncer]\ndefault_pool_size = lots\n")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("default_pool_size: invalid value \"lots\""),
        "{error}"
    );
}

#[test]
fn comments_quoting_and_later_lines_override() {
    let parsed = sections(
        Path::new("x.ini"),
        "# c\n; c\n[pgbouncer]\npool_mode = session ; not a comment\npool_mode=statement\n\"a \"\"b\"\"\" = 1\n",
    )
    .unwrap();
    assert_eq!(parsed["pgbouncer"]["pool_mode"], "statement");
    assert_eq!(parsed["pgbouncer"]["a \"b\""], "1");
}

#[test]
fn peers_are_checked_and_become_peer_tables() {
    let (settings, warnings) = load(
        "[peers]\n1 = host=/tmp/a\n2 = host=b port=6433 pool_size=4\n[pgbouncer]\npeer_id = 1\n",
    )
    .unwrap();
    assert_eq!(settings.peer_id, 1);
    assert_eq!(settings.peers.len(), 2, "{:?}", settings.peers);
    assert_eq!(
        warnings.iter().filter(|w| w.contains("pool_size")).count(),
        1,
        "{warnings:?}"
    );
    assert!(load("[peers]\n0 = host=a\n").is_err());
    assert!(load("[peers]\n1 = port=5\n").is_err());
}

#[test]
fn include_reads_another_file_in_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dbs.ini"),
        "[databases]\nincluded = host=h\n",
    )
    .unwrap();
    let main = dir.path().join("pgbouncer.ini");
    let text = format!(
        "[pgbouncer]\npool_mode = transaction\n%include {}\n[pgbouncer]\nlisten_port = 7000\n",
        dir.path().join("dbs.ini").display()
    );
    std::fs::write(&main, &text).unwrap();
    let translation = super::translate_file(&main).unwrap();
    let settings = parse_str(&translation.toml, "x", &[]).unwrap();
    assert!(settings.databases.contains_key("included"));
    assert_eq!(settings.listen_port, 7000);
}

#[test]
fn format_detection() {
    use super::looks_like_ini;
    assert!(looks_like_ini(
        Path::new("/etc/pgbouncer/pgbouncer.ini"),
        ""
    ));
    assert!(!looks_like_ini(Path::new("pooler.toml"), "[pgbouncer]"));
    assert!(looks_like_ini(
        Path::new("pgbouncer.conf"),
        "; x\n[pgbouncer]\n"
    ));
    assert!(!looks_like_ini(
        Path::new("pooler.conf"),
        "pool_mode = \"session\"\n"
    ));
}

#[test]
fn auth_query_settings_carry_through_globally_and_per_database() {
    let (settings, warnings) = load(
        "[databases]\n\
         app = host=db auth_user=per_db auth_dbname=authdb auth_query='SELECT * FROM f($1)'\n\
         authdb = host=db dbname=postgres\n\
         [pgbouncer]\n\
         auth_user = pgbouncer\n\
         auth_dbname = authdb\n\
         auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1\n",
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(settings.auth_user.as_deref(), Some("pgbouncer"));
    assert_eq!(settings.auth_dbname.as_deref(), Some("authdb"));
    assert_eq!(
        settings.auth_query,
        "SELECT usename, passwd FROM pg_shadow WHERE usename=$1"
    );
    let app = &settings.databases["app"];
    assert_eq!(app.auth_user.as_deref(), Some("per_db"));
    assert_eq!(app.auth_dbname.as_deref(), Some("authdb"));
    assert_eq!(app.auth_query.as_deref(), Some("SELECT * FROM f($1)"));
}
