mod deploy;
mod environment;
mod errors;
mod files;
mod parsing;
mod scale_out;
mod tls;

use super::*;

const FILE: &str = "pooler.toml";

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn parse(toml_text: &str) -> Settings {
    parse_str(toml_text, FILE, &[]).unwrap_or_else(|error| panic!("{error}"))
}

fn parse_with_env(toml_text: &str, pairs: &[(&str, &str)]) -> Settings {
    parse_str(toml_text, FILE, &env(pairs)).unwrap_or_else(|error| panic!("{error}"))
}

fn error(toml_text: &str) -> String {
    error_with_env(toml_text, &[])
}

fn error_with_env(toml_text: &str, pairs: &[(&str, &str)]) -> String {
    let message = parse_str(toml_text, FILE, &env(pairs))
        .expect_err("configuration should be refused")
        .to_string();
    assert!(!message.contains('\n'), "error spans lines: {message}");
    assert!(message.starts_with("pooler.toml: "), "{message}");
    message
}
