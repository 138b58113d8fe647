//! The `vcguard` binary's start-up checks: bad configuration stops it with one clear message.

use std::process::Command;

fn vcguard(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_vcguard"))
        .args(args)
        .output()
        .expect("run vcguard");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn unknown_config_key_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("vcguard.toml");
    std::fs::write(
        &config,
        "[upstream]\nurl = \"https://vc.example.com\"\nthumbprnt = \"AA\"\n",
    )
    .expect("write");
    let (ok, stderr) = vcguard(&["serve", "--config", config.to_str().expect("utf-8")]);
    assert!(!ok);
    assert!(
        stderr.contains("vcguard.toml") && stderr.contains("thumbprnt"),
        "{stderr}"
    );
}

#[test]
fn missing_certificate_is_named() {
    let (ok, stderr) = vcguard(&[
        "serve",
        "--upstream",
        "https://vc.example.com",
        "--cert",
        "/nonexistent/gateway.pem",
        "--key",
        "/nonexistent/gateway.key",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("server.cert") && stderr.contains("/nonexistent/gateway.pem"),
        "{stderr}"
    );
}

#[test]
fn unreadable_key_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = vcguard::tls::SelfSigned::generate(&["localhost"]).expect("cert");
    let cert_path = dir.path().join("gateway.pem");
    let key_path = dir.path().join("gateway.key");
    std::fs::write(&cert_path, &cert.cert_pem).expect("write cert");
    std::fs::write(&key_path, "-----BEGIN NOTHING-----\n").expect("write key");
    let (ok, stderr) = vcguard(&[
        "serve",
        "--upstream",
        "https://vc.example.com",
        "--upstream-insecure",
        "--cert",
        cert_path.to_str().expect("utf-8"),
        "--key",
        key_path.to_str().expect("utf-8"),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("gateway.key") && stderr.contains("private key"),
        "{stderr}"
    );
}

#[test]
fn malformed_upstream_url_is_named() {
    let (ok, stderr) = vcguard(&[
        "serve",
        "--upstream",
        "vc.example.com:443",
        "--cert",
        "Cargo.toml",
        "--key",
        "Cargo.toml",
    ]);
    assert!(!ok);
    assert!(stderr.contains("upstream.url"), "{stderr}");
}
