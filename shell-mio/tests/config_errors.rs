//! Bad configuration and bad arguments: a clear one-line error naming the place, non-zero exit.

mod common;

use common::*;
use std::process::Command;

fn pharosd(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(PHAROSD).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_nodes_file_names_the_line() {
    let d = Scratch::new("badnodes");
    let nodes = d.0.join("nodes");
    write(&nodes, "127.0.0.1\n\n127.0.0.300\n");
    let sock = d.0.join("s.sock");
    let (code, err) = pharosd(&[
        "--nodes",
        nodes.to_str().unwrap(),
        "--socket",
        sock.to_str().unwrap(),
    ]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains(&format!("{}:3: invalid node address", nodes.display())),
        "{err}"
    );
    assert!(!sock.exists());
}

#[test]
fn bad_config_file_and_flags() {
    let d = Scratch::new("badconfig");
    write(&d.0.join("nodes"), "127.0.0.1\n");
    let cfg = d.0.join("pharos.toml");
    write(
        &cfg,
        "nodes = \"nodes\"\n[tunables]\nKeepaliveInterval = \"soon\"\n",
    );
    let (code, err) = pharosd(&["--config", cfg.to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("pharos.toml:3:") && err.contains("invalid duration"),
        "{err}"
    );
    let (code, err) = pharosd(&["--config", cfg.to_str().unwrap(), "--tunable", "Bogus=1"]);
    assert_ne!(code, Some(0));
    assert!(!err.is_empty());
    let (code, err) = pharosd(&["--port", "notaport"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("notaport"), "{err}");
    let (code, err) = pharosd(&["--nodes", d.0.join("missing").to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn no_bindable_address_is_an_error() {
    let d = Scratch::new("nobind");
    // TEST-NET-3: never configured on this host, so bind fails; nothing is sent anywhere.
    write(&d.0.join("nodes"), "203.0.113.7\n");
    let (code, err) = pharosd(&[
        "--nodes",
        d.0.join("nodes").to_str().unwrap(),
        "--socket",
        d.0.join("s.sock").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("could not bind"), "{err}");
}

/// Issue 9 item 9: an etcd lock passed validation and failed only after binding, leaving a
/// stale socket; `port = 0` was accepted (and bound a random port).
#[test]
fn unsupported_lock_and_port_zero_are_refused_before_binding() {
    let d = Scratch::new("refused-early");
    write(&d.0.join("nodes"), "127.0.0.1\n");
    let sock = d.0.join("s.sock");
    let cfg = d.0.join("pharos.toml");
    write(
        &cfg,
        &format!(
            "nodes = \"nodes\"\nsocket = \"{}\"\ncluster_lock = \"etcd:127.0.0.1:2379/pharos\"\n",
            sock.display()
        ),
    );
    let (code, err) = pharosd(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("pharos.toml:3: cluster lock") && err.contains("etcd lock comes with"),
        "{err}"
    );
    assert!(!sock.exists(), "a socket was bound");
    write(
        &cfg,
        &format!(
            "nodes = \"nodes\"\nsocket = \"{}\"\nport = 0\n",
            sock.display()
        ),
    );
    let (code, err) = pharosd(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("pharos.toml:3: port 0 is not a port"), "{err}");
    assert!(!sock.exists());
}
