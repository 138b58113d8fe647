//! pyVmomi, the most used vSphere client, through the gateway (SOAP, real TLS).
//!
//! Needs Python with pyVmomi: `.ci/run` installs it into a virtualenv and runs
//! `VCGUARD_PYTHON=.venv/bin/python cargo test --test interop_pyvmomi -- --ignored`.

mod common;

use std::time::Duration;

use common::{ADMIN_PASSWORD, ADMIN_USER, Harness, Options};
use vcsim_lite::SimConfig;

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

#[tokio::test]
#[ignore = "needs pyVmomi: run with VCGUARD_PYTHON=<python with pyvmomi> and --ignored (see README)"]
async fn pyvmomi_wait_for_task_outlasts_the_response_timeout() {
    let python = std::env::var("VCGUARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let response_timeout = Duration::from_secs(2);
    let task_duration = Duration::from_secs(5);
    let harness = Harness::start_with(Options {
        response_timeout,
        sim: SimConfig {
            task_duration,
            ..SimConfig::default()
        },
        ..Options::default()
    })
    .await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/pyvmomi_long_task.py"
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
        output.status.success() && stdout.contains("PASS waited"),
        "WaitForTask through the gateway failed:\n{stdout}\n{stderr}"
    );
    let waited: f64 = stdout
        .split("PASS waited ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|secs| secs.parse().ok())
        .expect("seconds waited");
    assert!(
        waited >= response_timeout.as_secs_f64() * 2.0,
        "the wait ({waited} s) must outlast the response timeout to prove anything"
    );
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-21"),
        Some(true)
    );
}

/// Runs `tests/interop/pyvmomi_vcsim.py` against `port` and returns its step lines.
async fn pyvmomi_vcsim_steps(python: &str, port: u16) -> Vec<String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/pyvmomi_vcsim.py"
    );
    let output = tokio::process::Command::new(python)
        .args([
            script,
            "127.0.0.1",
            &port.to_string(),
            ADMIN_USER,
            ADMIN_PASSWORD,
            "CHG0012345",
        ])
        .output()
        .await
        .unwrap_or_else(|err| panic!("cannot run {python}: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("DONE"),
        "pyVmomi script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter(|l| *l != "DONE")
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
#[ignore = "needs pyVmomi: run with VCGUARD_PYTHON=<python with pyvmomi> and --ignored (see README)"]
async fn pyvmomi_sees_vcsim_the_same_through_the_gateway_except_refusals() {
    let Some(binary) = common::vcsim::vcsim_binary() else {
        eprintln!("{}", common::vcsim::SKIP_MESSAGE);
        return;
    };
    let python = std::env::var("VCGUARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let direct_sim = common::vcsim::Vcsim::start(&binary);
    let guarded_sim = common::vcsim::Vcsim::start(&binary);
    let gateway = common::vcsim::ServedGateway::start(
        &guarded_sim.base,
        common::vcsim::UpstreamPin::Thumbprint(&guarded_sim.thumbprint),
    );
    let port = |base: &str| {
        base.rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .expect("port")
    };
    let direct = pyvmomi_vcsim_steps(&python, port(&direct_sim.base)).await;
    let through = pyvmomi_vcsim_steps(&python, gateway.addr.port()).await;
    println!(
        "direct:\n{}\nthrough the gateway:\n{}",
        direct.join("\n"),
        through.join("\n")
    );

    // What the gateway must answer differently; every other line is identical.
    let refused = [
        (
            "EnterMaintenanceMode_Task without a ticket: task success",
            "EnterMaintenanceMode_Task without a ticket: fault RestrictedByAdministrator (maintenance-needs-ticket)",
        ),
        (
            "inMaintenanceMode after it: True",
            "inMaintenanceMode after it: False",
        ),
        (
            "ChangeLockdownMode lockdownStrict: fault ManagedObjectNotFound",
            "ChangeLockdownMode lockdownStrict: fault RestrictedByAdministrator (lockdown-no-strict)",
        ),
    ];
    assert_eq!(direct.len(), through.len(), "{direct:#?}\n{through:#?}");
    for (want, got) in direct.iter().zip(&through) {
        match refused.iter().find(|(d, _)| d == want) {
            Some((_, gateway_answer)) => assert_eq!(got, gateway_answer),
            None => assert_eq!(got, want, "pyVmomi through the gateway"),
        }
    }
    for (direct_line, _) in refused {
        assert!(
            direct.iter().any(|l| l == direct_line),
            "direct: {direct:#?}"
        );
    }
    // Both ExitMaintenanceMode_Task calls come after the refused ones: once they are in the
    // simulator's log, so would the refused calls be.
    let calls = guarded_sim.calls_after("ExitMaintenanceMode_Task", 2).await;
    assert_eq!(
        calls.iter().filter(|c| *c == "ChangeLockdownMode").count(),
        0,
        "strict lockdown reached vcsim: {calls:?}"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| *c == "EnterMaintenanceMode_Task")
            .count(),
        1,
        "only the ticketed maintenance call reached vcsim: {calls:?}"
    );
}

/// Runs `tests/interop/pyvmomi_change_control.py MODE` against the harness; returns its output.
async fn change_control_step(harness: &Harness, mode: &str) -> String {
    let python = std::env::var("VCGUARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/pyvmomi_change_control.py"
    );
    let output = tokio::process::Command::new(&python)
        .args([
            script,
            mode,
            "127.0.0.1",
            &harness.gateway.port().to_string(),
            ADMIN_USER,
            ADMIN_PASSWORD,
        ])
        .output()
        .await
        .unwrap_or_else(|err| panic!("cannot run {python}: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{stdout}");
    assert!(
        output.status.success() && stdout.contains(&format!("PASS {mode}")),
        "pyVmomi {mode} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
#[ignore = "needs pyVmomi: run with VCGUARD_PYTHON=<python with pyvmomi> and --ignored (see README)"]
async fn pyvmomi_without_custom_headers_uses_approvals_and_ticket_claims() {
    use std::time::SystemTime;
    use vcguard::approval::ChangeControl;
    use vcguard::policy::PolicySet;
    use vcguard::state::{Decider, NewClaim, Verdict};

    let harness = Harness::start().await;
    let requested = change_control_step(&harness, "request").await;
    let id = requested
        .lines()
        .find_map(|l| l.strip_prefix("APPROVAL "))
        .expect("an approval id")
        .trim()
        .to_owned();
    let policies = PolicySet::load(&common::shipped_policies()).expect("policies");
    let approver = "VSPHERE.LOCAL\\approver";
    harness
        .control
        .decide_approval(
            &id,
            &Decider {
                user: approver.into(),
                groups: ChangeControl::groups_of(approver, &[], &policies),
            },
            Verdict::Approve,
            "pyVmomi interop",
            SystemTime::now(),
        )
        .await
        .expect("approve");
    change_control_step(&harness, "retry").await;
    assert_eq!(
        harness.sim().simulator.lockdown_mode("ham-21").as_deref(),
        Some("lockdownDisabled")
    );

    let now = SystemTime::now();
    harness
        .control
        .claim_ticket(
            NewClaim {
                user: "VSPHERE.LOCAL\\Administrator".into(),
                ticket_id: "CHG0012345".into(),
                ticket_kind: "pattern".into(),
                ticket_context: serde_json::json!({"id": "CHG0012345", "kind": "pattern",
                    "verified": true, "covers_target": true, "covers_action": true}),
                hosts: vec!["host-21".into()],
                actions: vec![],
                until: now + Duration::from_secs(3600),
            },
            now,
        )
        .await
        .expect("claim");
    change_control_step(&harness, "claimed").await;
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-21"),
        Some(true)
    );
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-22"),
        Some(false)
    );
}
