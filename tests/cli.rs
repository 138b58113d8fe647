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

fn policies_with_typo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for name in ["schema.cedarschema", "baseline-permit.cedar"] {
        std::fs::copy(shipped.join(name), dir.path().join(name)).expect("copy");
    }
    std::fs::write(
        dir.path().join("lockdown.cedar"),
        "@id(\"lockdown-no-strict\")\n@reason(\"r\")\nforbid (principal, action == VSphere::Action::\"ChangeLockdownMode\", resource)\nwhen { context.body.mdoe == \"lockdownStrict\" };\n",
    )
    .expect("write");
    dir
}

#[test]
fn policy_check_names_a_typo_with_file_and_line() {
    let dir = policies_with_typo();
    let path = dir.path().to_str().expect("utf-8");
    let output = Command::new(env!("CARGO_BIN_EXE_vcguard"))
        .args(["policy", "check", path])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("lockdown.cedar:4"), "{stderr}");
    assert!(stderr.contains("mdoe"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_vcguard"))
        .args([
            "policy",
            "check",
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        ])
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn start_up_refuses_invalid_policies() {
    let dir = policies_with_typo();
    let cert = vcguard::tls::SelfSigned::generate(&["localhost"]).expect("cert");
    let cert_path = dir.path().join("gateway.pem");
    let key_path = dir.path().join("gateway.key");
    std::fs::write(&cert_path, &cert.cert_pem).expect("write cert");
    std::fs::write(&key_path, &cert.key_pem).expect("write key");
    let (ok, stderr) = vcguard(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--upstream",
        "https://vc.example.com",
        "--upstream-insecure",
        "--cert",
        cert_path.to_str().expect("utf-8"),
        "--key",
        key_path.to_str().expect("utf-8"),
        "--policies",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("lockdown.cedar:4") && stderr.contains("mdoe"),
        "{stderr}"
    );
}

#[test]
fn shipped_policy_tests_pass() {
    let output = Command::new(env!("CARGO_BIN_EXE_vcguard"))
        .args([
            "policy",
            "test",
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        ])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.trim_end().ends_with(", 0 failed"), "{stdout}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Runs `vcguard serve` (upstream down), sends a pass-through GET (502) and a guarded call
/// without a session (denied), stops it and returns its stderr.
fn serve_two_requests(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = vcguard::tls::SelfSigned::generate(&["localhost"]).expect("cert");
    let cert_path = dir.path().join("gateway.pem");
    let key_path = dir.path().join("gateway.key");
    std::fs::write(&cert_path, &cert.cert_pem).expect("write cert");
    std::fs::write(&key_path, &cert.key_pem).expect("write key");
    let stderr_path = dir.path().join("stderr.log");
    let (port, admin) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let admin_listen = format!("127.0.0.1:{admin}");
    let audit = dir.path().join("audit.jsonl");
    let mut args = vec![
        "serve",
        "--listen",
        &listen,
        "--admin-listen",
        &admin_listen,
        "--cert",
        cert_path.to_str().expect("utf-8"),
        "--key",
        key_path.to_str().expect("utf-8"),
        "--upstream",
        "http://127.0.0.1:9",
        "--policies",
        concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        "--audit",
        audit.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    let mut child = Command::new(env!("CARGO_BIN_EXE_vcguard"))
        .args(&args)
        .env_remove("RUST_LOG")
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("start vcguard");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let statuses = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .build()
            .expect("client");
        let base = format!("https://127.0.0.1:{port}/sdk/vim25/8.0.3.0");
        let mut get = 0;
        for _ in 0..100 {
            if let Ok(response) = client
                .get(format!("{base}/HostSystem/host-21/name"))
                .send()
                .await
            {
                get = response.status().as_u16();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let guarded = client
            .post(format!(
                "{base}/HostAccessManager/ham-21/ChangeLockdownMode"
            ))
            .json(&serde_json::json!({"mode": "lockdownStrict"}))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        (get, guarded)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(statuses, (502, 500), "upstream down; guarded call denied");
    std::fs::read_to_string(&stderr_path).expect("stderr")
}

#[test]
fn access_log_line_only_when_asked() {
    let quiet = serve_two_requests(&[]);
    assert!(!quiet.contains("request finished"), "{quiet}");
    // Warnings still name the request; a guarded call's lines carry its span.
    let unreachable = quiet
        .lines()
        .find(|l| l.contains("vCenter unreachable"))
        .unwrap_or_else(|| panic!("{quiet}"));
    assert!(unreachable.contains("request="), "{unreachable}");
    let denied = quiet
        .lines()
        .find(|l| l.contains("denied"))
        .unwrap_or_else(|| panic!("{quiet}"));
    assert!(
        denied.contains("request{id=") && denied.contains("guarded=\"ChangeLockdownMode\""),
        "{denied}"
    );

    let loud = serve_two_requests(&["--access-log"]);
    assert!(
        loud.contains("request finished") && loud.contains("status=502"),
        "{loud}"
    );
    let denied = loud
        .lines()
        .find(|l| l.contains("denied"))
        .unwrap_or_else(|| panic!("{loud}"));
    assert!(
        denied.contains("guarded=\"ChangeLockdownMode\""),
        "{denied}"
    );
}
