//! Start-up refusals that name what is wrong: a key that does not fit its certificate, an
//! out-of-range port, an open-file limit too low for the configured connections.

use std::path::Path;
use std::process::Command;

use vcguard::tls::SelfSigned;

fn run(command: &mut Command) -> (bool, String) {
    let output = command.output().expect("run vcguard");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn vcguard(args: &[&str]) -> (bool, String) {
    run(Command::new(env!("CARGO_BIN_EXE_vcguard")).args(args))
}

/// Writes a certificate and its own key into `dir`; returns their paths as strings.
fn pair(dir: &Path, stem: &str) -> (String, String, SelfSigned) {
    let cert = SelfSigned::generate(&["localhost"]).expect("cert");
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}.key"));
    std::fs::write(&cert_path, &cert.cert_pem).expect("write cert");
    std::fs::write(&key_path, &cert.key_pem).expect("write key");
    (
        cert_path.to_str().expect("utf-8").to_owned(),
        key_path.to_str().expect("utf-8").to_owned(),
        cert,
    )
}

#[test]
fn a_key_of_another_certificate_names_both_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, _, _) = pair(dir.path(), "gateway");
    let (_, other_key, _) = pair(dir.path(), "someone-else");
    let audit = dir.path().join("audit.jsonl");
    let (ok, stderr) = vcguard(&[
        "serve",
        "--upstream",
        "https://vc.example.com",
        "--cert",
        &cert,
        "--key",
        &other_key,
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--policies",
        concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        "--audit",
        audit.to_str().expect("utf-8"),
    ]);
    assert!(!ok, "a mismatched key must stop start-up");
    assert!(
        stderr.contains("gateway.pem") && stderr.contains("someone-else.key"),
        "{stderr}"
    );
}

#[test]
fn an_upstream_port_out_of_range_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key, _) = pair(dir.path(), "gateway");
    for url in ["https://127.0.0.1:99999", "https://127.0.0.1:0"] {
        let (ok, stderr) = vcguard(&["serve", "--upstream", url, "--cert", &cert, "--key", &key]);
        assert!(!ok, "{url} accepted");
        assert!(
            stderr.contains("upstream.url") && stderr.contains("port"),
            "{url}: {stderr}"
        );
    }
}

#[test]
fn a_listen_port_out_of_range_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key, _) = pair(dir.path(), "gateway");
    let (ok, stderr) = vcguard(&[
        "serve",
        "--upstream",
        "https://vc.example.com",
        "--cert",
        &cert,
        "--key",
        &key,
        "--listen",
        "0.0.0.0:84430",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("server.listen") && stderr.contains("port"),
        "{stderr}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn an_open_file_limit_below_the_upstream_connections_refuses_start_up() {
    if !Command::new("sh")
        .args(["-c", "ulimit -n 100"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("SKIPPED: no POSIX sh with ulimit -n available");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key, _) = pair(dir.path(), "gateway");
    let audit = dir.path().join("audit.jsonl");
    // Defaults: upstream.max_connections 128 + upstream.pool_max_idle 128 + 64 > 100.
    let (ok, stderr) = run(Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 100 && exec \"$0\" serve --upstream https://vc.example.com --cert \"$1\" --key \"$2\" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --audit \"$3\"")
        .arg(env!("CARGO_BIN_EXE_vcguard"))
        .arg(&cert)
        .arg(&key)
        .arg(&audit));
    assert!(!ok, "start-up must be refused:\n{stderr}");
    for key in [
        "server.max_connections",
        "upstream.max_connections",
        "upstream.pool_max_idle",
        "RLIMIT_NOFILE) is 100",
    ] {
        assert!(stderr.contains(key), "{key} not named:\n{stderr}");
    }
}
