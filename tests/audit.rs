//! End-to-end: every call leaves records in the tamper-evident audit log; secrets never do;
//! an unwritable log refuses guarded calls.

mod common;

use std::process::Command;

use common::{ADMIN_PASSWORD, ADMIN_USER, Harness, Options, soap_login_envelope};
use serde_json::Value;

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("audit file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON record per line"))
        .collect()
}

fn vcguard(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_vcguard"))
        .args(args)
        .output()
        .expect("run vcguard");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn calls_leave_verifiable_records_without_secrets() {
    let mut harness = Harness::start().await;
    let client = harness.client();
    let token = harness.login(&client).await;
    let strict = client
        .post(format!(
            "{}/HostAccessManager/ham-21/ChangeLockdownMode",
            harness.vim()
        ))
        .header("vmware-api-session-id", &token)
        .json(&serde_json::json!({"mode": "lockdownStrict"}))
        .send()
        .await
        .expect("strict");
    assert_eq!(strict.status(), 500);
    let denied_id = strict.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    let maintenance = client
        .post(format!(
            "{}/HostSystem/host-21/EnterMaintenanceMode_Task",
            harness.vim()
        ))
        .header("vmware-api-session-id", &token)
        .header("X-Change-Ticket", "CHG0012345")
        .json(&serde_json::json!({"timeout": 0}))
        .send()
        .await
        .expect("maintenance");
    assert_eq!(maintenance.status(), 200);
    let allowed_id = maintenance.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    let login = client
        .post(format!("{}/sdk", harness.base()))
        .body(soap_login_envelope(ADMIN_USER, ADMIN_PASSWORD))
        .send()
        .await
        .expect("soap login");
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let soap = client
        .post(format!("{}/sdk", harness.base()))
        .header("Cookie", &cookie)
        .body(r#"<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><ChangeLockdownMode xmlns="urn:vim25"><_this type="HostAccessManager">ham-22</_this><mode>lockdownNormal</mode></ChangeLockdownMode></soapenv:Body></soapenv:Envelope>"#)
        .send()
        .await
        .expect("soap lockdown");
    assert_eq!(soap.status(), 200);
    assert!(harness.shutdown().await);

    let path = harness.audit_path.clone();
    let all = records(&path);
    let kinds: Vec<&str> = all.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"start"));
    assert_eq!(kinds.last(), Some(&"stop"));

    let of = |id: &str, kind: &str| {
        all.iter()
            .find(|r| r["request_id"] == id && r["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} record for {id}"))
    };
    let denial = of(&denied_id, "decision");
    assert_eq!(denial["decision"], "deny");
    assert_eq!(denial["policies"][0], "lockdown-no-strict");
    assert_eq!(denial["principal"], "VSPHERE.LOCAL\\Administrator");
    assert_eq!(denial["mo_id"], "ham-21");
    assert_eq!(of(&denied_id, "outcome")["status"], 500);

    let decision = of(&allowed_id, "decision");
    assert_eq!(decision["decision"], "allow");
    assert_eq!(decision["ticket"]["id"], "CHG0012345");
    assert_eq!(decision["ticket"]["kind"], "pattern");
    assert!(
        decision["ticket"]["hash"]
            .as_str()
            .is_some_and(|h| !h.is_empty())
    );
    let outcome = of(&allowed_id, "outcome");
    assert_eq!(outcome["status"], 200);
    assert!(
        outcome["task"]
            .as_str()
            .is_some_and(|t| t.starts_with("task-")),
        "{outcome}"
    );
    let seq = |r: &Value| r["seq"].as_u64().expect("seq");
    assert!(
        seq(&decision) < seq(&outcome),
        "the decision is written before the outcome"
    );

    let soap_decision = all
        .iter()
        .find(|r| r["kind"] == "decision" && r["protocol"] == "soap")
        .expect("a SOAP decision record");
    assert_eq!(soap_decision["mo_id"], "ham-22");
    assert_eq!(soap_decision["principal"], "VSPHERE.LOCAL\\Administrator");

    let bytes = std::fs::read_to_string(&path).expect("read");
    let soap_token = cookie.split('"').nth(1).expect("cookie value");
    for secret in [ADMIN_PASSWORD, token.as_str(), soap_token] {
        assert!(!bytes.contains(secret), "a secret reached the audit log");
    }

    let file = path.to_str().expect("utf-8");
    let (ok, text) = vcguard(&["audit", "verify", file]);
    assert!(ok, "{text}");
    assert!(text.contains("records, chain intact"), "{text}");
    let (ok, text) = vcguard(&["audit", "query", file, "--decision", "deny"]);
    assert!(
        ok && text.contains("ChangeLockdownMode") && text.contains("ham-21"),
        "{text}"
    );

    // Tampering: an edited field is caught and located.
    let edited = path.with_file_name("edited.jsonl");
    std::fs::write(&edited, bytes.replacen("\"deny\"", "\"allow\"", 1)).expect("write");
    let (ok, text) = vcguard(&["audit", "verify", edited.to_str().expect("utf-8")]);
    assert!(!ok, "{text}");
    assert!(text.contains("edited.jsonl:"), "{text}");
    // A deleted line too.
    let mut lines: Vec<&str> = bytes.lines().collect();
    lines.remove(3);
    std::fs::write(&edited, lines.join("\n") + "\n").expect("write");
    let (ok, text) = vcguard(&["audit", "verify", edited.to_str().expect("utf-8")]);
    assert!(!ok, "{text}");
}

#[tokio::test]
async fn an_unwritable_audit_log_refuses_guarded_calls() {
    let harness = Harness::start_with(Options {
        audit_rotate_bytes: Some(1),
        ..Options::default()
    })
    .await;
    let client = harness.client();
    let token = harness.login(&client).await;

    // The log's directory disappears (disk gone, volume unmounted): rotation cannot happen.
    let dir = harness.audit_path.parent().expect("dir").to_owned();
    std::fs::rename(&dir, dir.with_extension("gone")).expect("move the log dir away");
    std::fs::write(&dir, b"not a directory").expect("block the path");

    let response = client
        .post(format!(
            "{}/HostAccessManager/ham-21/ChangeLockdownMode",
            harness.vim()
        ))
        .header("vmware-api-session-id", &token)
        .json(&serde_json::json!({"mode": "lockdownNormal"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 503);
    let fault: Value = response.json().await.expect("fault");
    assert!(
        fault["faultstring"]
            .as_str()
            .unwrap_or_default()
            .contains("audit log"),
        "{fault}"
    );
    assert_eq!(
        harness.sim().simulator.lockdown_mode("ham-21").as_deref(),
        Some("lockdownDisabled")
    );
    assert!(
        !harness
            .sim()
            .simulator
            .journal()
            .iter()
            .any(|r| r.vim_method.as_deref() == Some("ChangeLockdownMode")),
        "vCenter never saw the call"
    );

    // Pass-through calls keep working.
    let read = client
        .get(format!("{}/HostSystem/host-21/name", harness.vim()))
        .header("vmware-api-session-id", &token)
        .send()
        .await
        .expect("read");
    assert_eq!(read.status(), 200);
}

#[tokio::test]
async fn a_monitor_mode_match_is_forwarded_and_recorded_as_would_deny() {
    let mut harness = Harness::start().await;
    let client = harness.client();
    let token = harness.login(&client).await;
    let response = client
        .post(format!("{}/HostSystem/host-23/EnterMaintenanceMode_Task", harness.vim()))
        .header("vmware-api-session-id", &token)
        .header("X-Change-Ticket", "CHG0012345")
        .json(&serde_json::json!({"timeout": 0, "maintenanceSpec": {"vsanMode": {"objectAction": "noAction"}}}))
        .send()
        .await
        .expect("maintenance");
    assert_eq!(response.status(), 200, "monitor mode never blocks");
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-23"),
        Some(true)
    );
    assert!(harness.shutdown().await);

    let decision = records(&harness.audit_path)
        .into_iter()
        .find(|r| r["kind"] == "decision" && r["mo_id"] == "host-23")
        .expect("decision record");
    assert_eq!(decision["decision"], "allow");
    assert_eq!(decision["monitor"][0], "vsan-no-action-monitor");
    let file = harness.audit_path.to_str().expect("utf-8");
    let (ok, text) = vcguard(&["audit", "query", file, "--decision", "would-deny"]);
    assert!(ok && text.contains("host-23"), "{text}");
}

#[tokio::test]
async fn a_client_that_leaves_before_vcenter_answers_and_a_refusal_before_the_decision_are_recorded()
 {
    let harness = Harness::start_with(Options {
        sim: vcsim_lite::SimConfig {
            response_delay: Some(std::time::Duration::from_millis(1500)),
            ..Default::default()
        },
        ..Options::default()
    })
    .await;
    let client = harness.client();
    let read = client
        .get(format!(
            "{}/ServiceInstance/ServiceInstance/content",
            harness.vim()
        ))
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(read.is_err(), "the client gave up before vCenter answered");

    let compressed = client
        .post(format!("{}/sdk", harness.base()))
        .header("content-type", "text/xml")
        .header("content-encoding", "gzip")
        .body("not really gzip")
        .send()
        .await
        .expect("request");
    assert_eq!(compressed.status(), 415);

    // The abort record is written when the gateway notices the client has gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let all = records(&harness.audit_path);
        let aborted = all
            .iter()
            .any(|r| r["error"] == "client_aborted" && r["mo_id"] == "ServiceInstance");
        let refused = all.iter().any(|r| {
            r["status"] == 415 && r["error"] == "encoding" && r["fault"] == "InvalidRequest"
        });
        if aborted && refused {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "aborted {aborted}, refused {refused}: {all:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
