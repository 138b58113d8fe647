//! pyVmomi, the most used vSphere client, through the gateway (SOAP, real TLS).
//!
//! Needs Python with pyVmomi: `.ci/run` installs it into a virtualenv and runs
//! `VCGUARD_PYTHON=.venv/bin/python cargo test --test interop_pyvmomi -- --ignored`.

mod common;

use common::{ADMIN_PASSWORD, ADMIN_USER, Harness};

#[tokio::test]
#[ignore = "needs pyVmomi: run with VCGUARD_PYTHON=<python with pyvmomi> and --ignored (see README)"]
async fn pyvmomi_is_held_to_the_policies_through_the_gateway() {
    let python = std::env::var("VCGUARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let harness = Harness::start().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/pyvmomi_gateway.py"
    );
    let port = harness.gateway.port().to_string();
    let output = tokio::process::Command::new(&python)
        .args([
            script,
            "127.0.0.1",
            &port,
            ADMIN_USER,
            ADMIN_PASSWORD,
            "CHG0012345",
        ])
        .output()
        .await
        .unwrap_or_else(|err| panic!("cannot run {python}: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "pyVmomi script failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("PASS pyvmomi through the gateway"),
        "{stdout}"
    );
    assert_eq!(
        harness.sim().simulator.lockdown_mode("ham-21").as_deref(),
        Some("lockdownNormal")
    );
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-21"),
        Some(true)
    );
}
