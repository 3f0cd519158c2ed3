use std::net::IpAddr;
use std::path::Path;

use super::*;
use crate::config::Settings;

fn rules(text: &str) -> HbaRules {
    HbaRules::parse(text, Path::new("/etc/pgmux/hba.conf")).unwrap_or_else(|e| panic!("{e}"))
}

fn error(text: &str) -> HbaError {
    HbaRules::parse(text, Path::new("/etc/pgmux/hba.conf")).expect_err("should be refused")
}

fn tcp(address: &str) -> ClientOrigin {
    ClientOrigin::Tcp {
        address: address.parse::<IpAddr>().unwrap(),
        tls: false,
    }
}

fn tls(address: &str) -> ClientOrigin {
    ClientOrigin::Tcp {
        address: address.parse::<IpAddr>().unwrap(),
        tls: true,
    }
}

/// The method and line of the rule that decides, or None when no line matches.
fn decide(
    rules: &HbaRules,
    origin: ClientOrigin,
    db: &str,
    user: &str,
) -> Option<(HbaMethod, usize)> {
    rules
        .first_match(origin, db, user)
        .map(|rule| (rule.method, rule.line))
}

#[test]
fn each_line_form_parses() {
    let rules = rules(
        "# comment line\n\
         \n\
         local   all  all                       peer\n\
         host    all  all  127.0.0.1/32         trust   # trailing comment\n\
         hostssl app  app  ::1/128              scram-sha-256\n\
         hostnossl app app 10.0.0.0 255.0.0.0   md5\n\
         host    all  all  all                  password\n\
         hostssl all  all  0.0.0.0/0            cert\n\
         host    all  all  ::/0                 reject\n",
    );
    let kinds: Vec<_> = rules
        .rules
        .iter()
        .map(|r| (r.line, r.kind, r.method))
        .collect();
    assert_eq!(
        kinds,
        [
            (3, ConnectionKind::Local, HbaMethod::Peer),
            (4, ConnectionKind::Host, HbaMethod::Trust),
            (5, ConnectionKind::HostSsl, HbaMethod::ScramSha256),
            (6, ConnectionKind::HostNoSsl, HbaMethod::Md5),
            (7, ConnectionKind::Host, HbaMethod::Password),
            (8, ConnectionKind::HostSsl, HbaMethod::Cert),
            (9, ConnectionKind::Host, HbaMethod::Reject),
        ]
    );
}

#[test]
fn ipv4_masks_in_both_forms() {
    let rules = rules(
        "host all all 192.168.1.0/24 md5\n\
         host all all 10.1.0.0 255.255.0.0 trust\n\
         host all all 172.16.5.4/32 password\n\
         host all all 0.0.0.0/0 reject\n",
    );
    assert_eq!(
        decide(&rules, tcp("192.168.1.77"), "d", "u"),
        Some((HbaMethod::Md5, 1))
    );
    assert_eq!(
        decide(&rules, tcp("192.168.2.1"), "d", "u"),
        Some((HbaMethod::Reject, 4))
    );
    assert_eq!(
        decide(&rules, tcp("10.1.200.3"), "d", "u"),
        Some((HbaMethod::Trust, 2))
    );
    assert_eq!(
        decide(&rules, tcp("10.2.0.1"), "d", "u"),
        Some((HbaMethod::Reject, 4))
    );
    assert_eq!(
        decide(&rules, tcp("172.16.5.4"), "d", "u"),
        Some((HbaMethod::Password, 3))
    );
    assert_eq!(
        decide(&rules, tcp("172.16.5.5"), "d", "u"),
        Some((HbaMethod::Reject, 4))
    );
    // An IPv4 client seen through an IPv6 socket is still that IPv4 address.
    assert_eq!(
        decide(&rules, tcp("::ffff:192.168.1.9"), "d", "u"),
        Some((HbaMethod::Md5, 1))
    );
    // IPv4 rules never match IPv6 clients.
    assert_eq!(decide(&rules, tcp("::1"), "d", "u"), None);
}

#[test]
fn ipv6_masks_in_both_forms() {
    let rules = rules(
        "host all all ::1/128 trust\n\
         host all all fd00:1234::/32 md5\n\
         host all all 2001:db8:: ffff:ffff:ffff:ffff:: scram-sha-256\n",
    );
    assert_eq!(
        decide(&rules, tcp("::1"), "d", "u"),
        Some((HbaMethod::Trust, 1))
    );
    assert_eq!(decide(&rules, tcp("::2"), "d", "u"), None);
    assert_eq!(
        decide(&rules, tcp("fd00:1234:ab::9"), "d", "u"),
        Some((HbaMethod::Md5, 2))
    );
    assert_eq!(decide(&rules, tcp("fd00:1235::9"), "d", "u"), None);
    assert_eq!(
        decide(&rules, tcp("2001:db8:0:0:1::1"), "d", "u"),
        Some((HbaMethod::ScramSha256, 3))
    );
    assert_eq!(decide(&rules, tcp("2001:db8:0:1::1"), "d", "u"), None);
    assert_eq!(decide(&rules, tcp("127.0.0.1"), "d", "u"), None);
}

#[test]
fn the_first_matching_line_wins_and_no_match_is_none() {
    let rules = rules(
        "host app app 127.0.0.1/32 scram-sha-256\n\
         host app md5user 127.0.0.1/32 md5\n\
         host all other 0.0.0.0/0 reject\n\
         host all all 127.0.0.0/8 trust\n",
    );
    let local_tcp = tcp("127.0.0.1");
    assert_eq!(
        decide(&rules, local_tcp, "app", "app"),
        Some((HbaMethod::ScramSha256, 1))
    );
    assert_eq!(
        decide(&rules, local_tcp, "app", "md5user"),
        Some((HbaMethod::Md5, 2))
    );
    assert_eq!(
        decide(&rules, local_tcp, "app", "other"),
        Some((HbaMethod::Reject, 3))
    );
    assert_eq!(
        decide(&rules, local_tcp, "db2", "app"),
        Some((HbaMethod::Trust, 4))
    );
    assert_eq!(decide(&rules, tcp("10.0.0.1"), "app", "app"), None);
    // A unix-socket client matches no host line.
    assert_eq!(decide(&rules, ClientOrigin::Local, "app", "app"), None);
}

#[test]
fn connection_types_split_local_tls_and_plaintext() {
    let rules = rules(
        "local all all trust\n\
         hostssl all all all md5\n\
         hostnossl all all all reject\n",
    );
    assert_eq!(
        decide(&rules, ClientOrigin::Local, "d", "u"),
        Some((HbaMethod::Trust, 1))
    );
    assert_eq!(
        decide(&rules, tls("10.0.0.1"), "d", "u"),
        Some((HbaMethod::Md5, 2))
    );
    assert_eq!(
        decide(&rules, tcp("10.0.0.1"), "d", "u"),
        Some((HbaMethod::Reject, 3))
    );
}

#[test]
fn names_match_by_list_keyword_and_quote() {
    let rules = rules(
        "host \"all\" u1 all md5\n\
         host sameuser all all trust\n\
         host db1, db2,\"Db Three\" alice,\"bob\" all password\n\
         host replication all all reject\n",
    );
    let from = tcp("10.0.0.1");
    // A quoted keyword is an ordinary name: only the database literally named "all".
    assert_eq!(decide(&rules, from, "all", "u1"), Some((HbaMethod::Md5, 1)));
    assert_eq!(decide(&rules, from, "other", "u1"), None);
    assert_eq!(
        decide(&rules, from, "carol", "carol"),
        Some((HbaMethod::Trust, 2))
    );
    assert_eq!(
        decide(&rules, from, "db2", "alice"),
        Some((HbaMethod::Password, 3))
    );
    assert_eq!(
        decide(&rules, from, "Db Three", "bob"),
        Some((HbaMethod::Password, 3))
    );
    assert_eq!(
        decide(&rules, from, "db three", "bob"),
        None,
        "names are case-sensitive"
    );
    // `replication` covers only replication connections, which pgmux does not serve.
    assert_eq!(decide(&rules, from, "replication", "x"), None);
}

#[test]
fn names_from_at_files_relative_to_the_hba_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("admins.txt"),
        "alice, bob # the DBAs\ncarol\n@more.txt\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("more.txt"), "\"dave\"\n").unwrap();
    let path = dir.path().join("hba.conf");
    std::fs::write(&path, "host all @admins.txt 10.0.0.0/8 scram-sha-256\n").unwrap();
    let rules = HbaRules::load(&path).unwrap();
    for user in ["alice", "bob", "carol", "dave"] {
        assert_eq!(
            decide(&rules, tcp("10.9.9.9"), "app", user),
            Some((HbaMethod::ScramSha256, 1)),
            "{user}"
        );
    }
    assert_eq!(decide(&rules, tcp("10.9.9.9"), "app", "eve"), None);
}

#[test]
fn at_file_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hba.conf");
    std::fs::write(&path, "local all @missing.txt trust\n").unwrap();
    let error =
        ConfigError::from(HbaRules::parse("local all @missing.txt trust\n", &path).unwrap_err());
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("{}:1: cannot read @file", path.display())),
        "{text}"
    );

    std::fs::write(dir.path().join("users.txt"), "ok\n+group\n").unwrap();
    let error = HbaRules::parse("local all @users.txt trust\n", &path).unwrap_err();
    assert_eq!(error.path, dir.path().join("users.txt"));
    assert_eq!(error.line, 2);
    assert!(error.message.contains("+group"), "{}", error.message);

    std::fs::write(dir.path().join("loop.txt"), "@loop.txt\n").unwrap();
    let error = HbaRules::parse("local all @loop.txt trust\n", &path).unwrap_err();
    assert!(
        error.message.contains("nest more than"),
        "{}",
        error.message
    );
}

#[test]
fn backslash_continues_a_record_and_reports_its_first_line() {
    let rules = rules("# c\nhost all \\\n  all 127.0.0.1/32 \\\n  md5\nlocal all all trust\n");
    assert_eq!(
        decide(&rules, tcp("127.0.0.1"), "d", "u"),
        Some((HbaMethod::Md5, 2))
    );
    assert_eq!(
        decide(&rules, ClientOrigin::Local, "d", "u"),
        Some((HbaMethod::Trust, 5))
    );
}

#[test]
fn broken_lines_are_refused_with_their_line_number() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "local all all trust\nhots all all all md5\n",
            2,
            "invalid connection type \"hots\"",
        ),
        (
            "host all all 127.0.0.1/32 md6\n",
            1,
            "invalid authentication method \"md6\"",
        ),
        (
            "host all all 127.0.0.1/32 ldap\n",
            1,
            "ldap is not supported",
        ),
        (
            "\n\nhost all all 127.0.0.1/33 md5\n",
            3,
            "invalid prefix length \"/33\"",
        ),
        ("host all all ::1/129 md5\n", 1, "expected 0 to 128"),
        ("host all all 127.0.0.1 md5\n", 1, "needs a prefix length"),
        (
            "host all all 127.0.0.1 ffff:: md5\n",
            1,
            "netmask column of the same family",
        ),
        (
            "host all all db.example.com md5\n",
            1,
            "host names are not supported",
        ),
        ("host all all samenet md5\n", 1, "samenet is not supported"),
        (
            "host all all 10.0.0.0/8,10.1.0.0/16 md5\n",
            1,
            "one unquoted address per line",
        ),
        (
            "host all all all\n",
            1,
            "authentication method column is missing",
        ),
        ("local all\n", 1, "user column is missing"),
        ("host all all\n", 1, "address column is missing"),
        (
            "local all all peer map=omicron\n",
            1,
            "authentication option map is not supported",
        ),
        (
            "host all all all md5 extra\n",
            1,
            "unexpected column \"extra\"",
        ),
        (
            "host all all all peer\n",
            1,
            "peer authentication is only supported on local sockets",
        ),
        (
            "host all all all cert\n",
            1,
            "cert authentication is only supported on hostssl",
        ),
        ("local samerole all trust\n", 1, "samerole is not supported"),
        ("local all +admins trust\n", 1, "group membership (+admins)"),
        ("local /^db all trust\n", 1, "regular expressions"),
        ("local \"app all trust\n", 1, "unterminated quoted name"),
        ("local a\"b\" all trust\n", 1, "quote inside the name"),
        (
            "local \"a\"b all trust\n",
            1,
            "unexpected text right after the quoted name",
        ),
        ("local a,,b all trust\n", 1, "empty name"),
        (
            "local a, all trust\n",
            1,
            "authentication method column is missing",
        ),
        (
            "hostgssenc all all all trust\n",
            1,
            "hostgssenc is not supported",
        ),
        (
            "local all all \"trust\"\n",
            1,
            "invalid authentication method",
        ),
    ];
    for (text, line, needle) in cases {
        let error = error(text);
        assert_eq!(error.line, *line, "{text:?}: {error}");
        assert!(error.message.contains(needle), "{text:?}: {error}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("/etc/pgmux/hba.conf:{line}: ")),
            "{error}"
        );
    }
}

#[test]
fn a_file_without_rules_is_refused() {
    let error = error("# nothing but comments\n\n");
    assert!(error.message.contains("no rules"), "{error}");
    assert_eq!(
        ConfigError::from(error).to_string(),
        "/etc/pgmux/hba.conf: the file has no rules, so every login would be refused"
    );
}

/// The settings file and hba file in a fresh directory, loaded as at startup.
fn load_settings(toml: &str, hba: &str) -> Result<Settings, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let hba_path = dir.path().join("hba.conf");
    std::fs::write(&hba_path, hba).unwrap();
    let path = dir.path().join("pooler.toml");
    let toml = toml.replace("{HBA}", &hba_path.display().to_string());
    std::fs::write(&path, format!("{toml}\n[databases.app]\n")).unwrap();
    crate::config::load_with_env(&path, &[])
}

#[test]
fn settings_carry_the_rules_only_for_auth_type_hba() {
    let settings = load_settings(
        "auth_type = \"hba\"\nauth_hba_file = \"{HBA}\"",
        "local all all trust\n",
    )
    .unwrap();
    let rules = settings.hba.expect("rules loaded");
    assert_eq!(
        decide(&rules, ClientOrigin::Local, "app", "u"),
        Some((HbaMethod::Trust, 1))
    );

    // Another auth_type ignores the file, even a broken one.
    let settings =
        load_settings("auth_type = \"md5\"\nauth_hba_file = \"{HBA}\"", "oops\n").unwrap();
    assert!(settings.hba.is_none());
}

#[test]
fn settings_errors_name_the_hba_file_and_line() {
    let error = load_settings(
        "auth_type = \"hba\"\nauth_hba_file = \"{HBA}\"",
        "local all all trust\nhost all all\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("hba.conf:2: the address column is missing"),
        "{error}"
    );

    let error = load_settings("auth_type = \"hba\"", "")
        .unwrap_err()
        .to_string();
    assert!(
        error.ends_with("pooler.toml: auth_hba_file: required when auth_type = \"hba\""),
        "{error}"
    );

    let error = load_settings(
        "auth_type = \"hba\"\nauth_hba_file = \"/nonexistent/hba.conf\"",
        "",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("auth_hba_file /nonexistent/hba.conf: cannot read file"),
        "{error}"
    );

    // `cert` needs certificates that were verified against a CA.
    let error = load_settings(
        "auth_type = \"hba\"\nauth_hba_file = \"{HBA}\"",
        "hostssl all all all cert\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("auth_hba_file: a `cert` rule needs client_tls_sslmode"),
        "{error}"
    );
}
