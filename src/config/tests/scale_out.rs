//! `so_reuseport`, `peer_id` and `[peers.ID]`: the settings for several instances
//! behind one address.

use super::*;

#[test]
fn scale_out_is_off_by_default() {
    let settings = parse("");
    assert!(!settings.so_reuseport);
    assert_eq!(settings.peer_id, 0);
    assert!(settings.peers.is_empty());
}

#[test]
fn peers_are_read_from_the_file_and_the_environment() {
    let settings = parse_with_env(
        r#"
so_reuseport = true
peer_id = 1
[peers.1]
host = "10.0.0.1"
[peers.2]
host = "/var/run/pgmux"
port = 6433
"#,
        &[
            ("PGMUX_PEER_ID", "2"),
            ("PGMUX_PEERS__3__HOST", "pgmux-3.pgmux"),
            ("PGMUX_PEERS__3__PORT", "7432"),
        ],
    );
    assert!(settings.so_reuseport);
    assert_eq!(settings.peer_id, 2);
    let peers: Vec<_> = settings
        .peers
        .values()
        .map(|peer| (peer.id, peer.host.as_str(), peer.port))
        .collect();
    assert_eq!(
        peers,
        [
            (1, "10.0.0.1", 6432),
            (2, "/var/run/pgmux", 6433),
            (3, "pgmux-3.pgmux", 7432)
        ]
    );
}

#[test]
fn peer_id_must_fit_the_cancel_key() {
    let message = error("peer_id = 16384");
    assert!(message.contains("peer_id"), "{message}");
    assert!(message.contains("16383"), "{message}");
    assert_eq!(parse("peer_id = 16383").peer_id, 16383);
}

#[test]
fn a_peer_is_named_by_a_valid_peer_id_and_needs_a_host() {
    for file in [
        "[peers.zero]\nhost = \"h\"",
        "[peers.0]\nhost = \"h\"",
        "[peers.20000]\nhost = \"h\"",
    ] {
        let message = error(file);
        assert!(message.contains("peers."), "{message}");
        assert!(message.contains("1 to 16383"), "{message}");
    }
    let message = error("[peers.2]\nport = 6432");
    assert!(message.contains("peers.2.host"), "{message}");
    let message = error("[peers.2]\nhost = \"h\"\nadress = \"x\"");
    assert!(message.contains("adress"), "{message}");
}
