//! The settings shipped for containers: the image's pooler.toml with the variables
//! docker-compose.test.yml sets, and the Kubernetes ConfigMap with the Secret's.
//! `.ci/run` validates the YAML itself; this checks that pgmux accepts what it carries.

use super::*;

const IMAGE_TOML: &str = include_str!("../../../deploy/docker/pooler.toml");
const COMPOSE: &str = include_str!("../../../docker-compose.test.yml");
const CONFIGMAP: &str = include_str!("../../../deploy/kubernetes/configmap.yaml");
const SECRET: &str = include_str!("../../../deploy/kubernetes/secret.yaml");
const DEPLOYMENT: &str = include_str!("../../../deploy/kubernetes/deployment.yaml");

/// The number after `key:` in a YAML text.
fn yaml_number(yaml: &str, key: &str) -> u64 {
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix(key)?.trim().strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in the manifest"))
}

/// `PGMUX_X: value` lines of a YAML mapping, unquoted.
fn pgmux_variables(yaml: &str) -> Vec<(String, String)> {
    yaml.lines()
        .filter_map(|line| line.trim().split_once(": "))
        .filter(|(key, _)| key.starts_with("PGMUX_"))
        .map(|(key, value)| (key.to_owned(), value.trim().trim_matches('"').to_owned()))
        .collect()
}

/// The block under `pooler.toml: |`, de-indented.
fn configmap_toml(yaml: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != "pooler.toml: |");
    lines.next();
    lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.get(4..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn load(toml_text: &str, env: &[(String, String)]) -> Settings {
    parse_str(toml_text, FILE, env).unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn the_image_configured_by_compose_variables_has_its_database_and_user() {
    let env = pgmux_variables(COMPOSE);
    assert!(env.len() >= 4, "{env:?}");
    let settings = load(IMAGE_TOML, &env);
    assert_eq!(settings.listen_addr, "0.0.0.0");
    // The HEALTHCHECK and the probes ask port 9127.
    assert_eq!(settings.metrics_listen.as_deref(), Some("0.0.0.0:9127"));
    assert_eq!(settings.unix_socket_dir, None);
    let app = &settings.databases["app"];
    assert_eq!((app.host.as_str(), app.port), ("postgres", 5432));
    assert_eq!(settings.users["app"].password.as_deref(), Some("secret"));
    assert_eq!(settings.default_pool_size, 20);
    assert_eq!(settings.pool_mode, PoolMode::Transaction);
    // docker stop waits 10 s before SIGKILL.
    assert!(settings.shutdown_timeout < std::time::Duration::from_secs(10));
}

#[test]
fn the_configmap_with_the_secret_has_its_database_and_password() {
    let toml_text = configmap_toml(CONFIGMAP);
    assert!(toml_text.contains("[databases.app]"), "{toml_text}");
    let settings = load(&toml_text, &pgmux_variables(SECRET));
    assert_eq!(settings.users["app"].password.as_deref(), Some("change-me"));
    assert_eq!(settings.databases["app"].port, 5432);
    assert_eq!(settings.metrics_listen.as_deref(), Some("0.0.0.0:9127"));
    // The kubelet sends SIGTERM after the preStop sleep and SIGKILL at the end of the
    // grace period: the drain must fit between the two.
    let grace = yaml_number(DEPLOYMENT, "terminationGracePeriodSeconds");
    let pre_stop: u64 = DEPLOYMENT
        .lines()
        .find_map(|l| l.trim().strip_prefix("command: [\"sleep\", \""))
        .and_then(|rest| rest.trim_end_matches("\"]").parse().ok())
        .expect("a preStop sleep");
    assert!(
        pre_stop + settings.shutdown_timeout.as_secs() + 5 <= grace,
        "preStop {pre_stop} s + shutdown_timeout {:?} does not fit {grace} s",
        settings.shutdown_timeout
    );
}
