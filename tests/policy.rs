//! End-to-end: Cedar policies decide on guarded calls from both protocols.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{ADMIN_PASSWORD, ADMIN_USER, Harness, Options, shipped_policies, soap_login_envelope};
use serde_json::Value;

fn soap_envelope(method_xml: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
<soapenv:Body>{method_xml}</soapenv:Body>
</soapenv:Envelope>"#
    )
}

fn soap_lockdown(ham: &str, mode: &str) -> String {
    soap_envelope(&format!(
        r#"<ChangeLockdownMode xmlns="urn:vim25"><_this versionId="8.0.3.0" type="HostAccessManager">{ham}</_this><mode versionId="8.0.3.0">{mode}</mode></ChangeLockdownMode>"#
    ))
}

async fn soap_session(harness: &Harness, client: &reqwest::Client) -> String {
    let response = client
        .post(format!("{}/sdk", harness.base()))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(soap_login_envelope(ADMIN_USER, ADMIN_PASSWORD))
        .send()
        .await
        .expect("soap login");
    assert_eq!(response.status(), 200);
    response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

async fn json_lockdown(
    harness: &Harness,
    client: &reqwest::Client,
    token: &str,
    ham: &str,
    mode: &str,
) -> reqwest::Response {
    client
        .post(format!(
            "{}/HostAccessManager/{ham}/ChangeLockdownMode",
            harness.vim()
        ))
        .header("vmware-api-session-id", token)
        .json(&serde_json::json!({"_typeName": "ChangeLockdownModeRequestType", "mode": mode}))
        .send()
        .await
        .expect("lockdown call")
}

#[tokio::test]
async fn strict_lockdown_is_refused_on_vi_json_with_a_readable_fault() {
    let harness = Harness::start().await;
    let client = harness.client();
    let token = harness.login(&client).await;

    let response = json_lockdown(&harness, &client, &token, "ham-21", "lockdownStrict").await;
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["content-type"], "application/json");
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    let fault: Value = response.json().await.expect("json fault");
    assert_eq!(fault["_typeName"], "RestrictedByAdministrator");
    let text = fault["faultstring"].as_str().expect("faultstring");
    assert!(
        text.starts_with(
            "Blocked by vcguard policy lockdown-no-strict: strict lockdown stops the DCUI"
        ),
        "{text}"
    );
    assert!(text.ends_with(&format!("(request {request_id})")), "{text}");
    assert_eq!(fault["details"], fault["faultstring"]);
    assert_eq!(fault["faultMessage"][0]["_typeName"], "LocalizableMessage");
    assert_eq!(fault["faultMessage"][0]["key"], "vcguard.policy.denied");
    assert_eq!(fault["faultMessage"][0]["message"], fault["faultstring"]);
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
        "vCenter never saw the refused call"
    );

    let response = json_lockdown(&harness, &client, &token, "ham-21", "lockdownNormal").await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        harness.sim().simulator.lockdown_mode("ham-21").as_deref(),
        Some("lockdownNormal")
    );
}

#[tokio::test]
async fn strict_lockdown_is_refused_on_soap_with_a_fault_pyvmomi_reads() {
    let harness = Harness::start().await;
    let client = harness.client();
    let cookie = soap_session(&harness, &client).await;
    let response = client
        .post(format!("{}/sdk", harness.base()))
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", "\"urn:vim25/8.0.3.0\"")
        .header("Cookie", &cookie)
        .body(soap_lockdown("ham-23", "lockdownStrict"))
        .send()
        .await
        .expect("soap call");
    assert_eq!(response.status(), 500);
    assert_eq!(
        response.headers()["content-type"],
        "text/xml; charset=utf-8"
    );
    let body = response.text().await.expect("body");
    let text_start =
        "<faultstring>Blocked by vcguard policy lockdown-no-strict: strict lockdown stops the DCUI";
    assert!(
        body.contains("<faultcode>ServerFaultCode</faultcode>"),
        "{body}"
    );
    assert!(body.contains(text_start), "{body}");
    assert!(body.contains(r#"<detail><RestrictedByAdministratorFault xmlns="urn:vim25" xsi:type="RestrictedByAdministrator"><faultMessage><key>vcguard.policy.denied</key><message>Blocked by vcguard policy lockdown-no-strict"#), "{body}");
    assert!(
        body.contains(
            "</message></faultMessage><details>Blocked by vcguard policy lockdown-no-strict"
        ),
        "{body}"
    );
    assert_eq!(
        harness.sim().simulator.lockdown_mode("ham-23").as_deref(),
        Some("lockdownDisabled")
    );

    let response = client
        .post(format!("{}/sdk", harness.base()))
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("Cookie", &cookie)
        .body(soap_lockdown("ham-23", "lockdownNormal"))
        .send()
        .await
        .expect("soap call");
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    assert_eq!(
        harness.sim().simulator.lockdown_mode("ham-23").as_deref(),
        Some("lockdownNormal")
    );
}

#[tokio::test]
async fn maintenance_without_a_ticket_is_refused_in_both_protocols() {
    let harness = Harness::start().await;
    let client = harness.client();
    let token = harness.login(&client).await;
    let response = client
        .post(format!(
            "{}/HostSystem/host-21/EnterMaintenanceMode_Task",
            harness.vim()
        ))
        .header("vmware-api-session-id", &token)
        .json(&serde_json::json!({"timeout": 0}))
        .send()
        .await
        .expect("json call");
    assert_eq!(response.status(), 500);
    let fault: Value = response.json().await.expect("fault");
    assert!(
        fault["faultstring"]
            .as_str()
            .unwrap_or_default()
            .contains("maintenance-needs-ticket"),
        "{fault}"
    );

    let cookie = soap_session(&harness, &client).await;
    let envelope = soap_envelope(
        r#"<EnterMaintenanceMode_Task xmlns="urn:vim25"><_this versionId="9.1.1.0" type="HostSystem">host-21</_this><timeout versionId="9.1.1.0">0</timeout></EnterMaintenanceMode_Task>"#,
    );
    let response = client
        .post(format!("{}/sdk", harness.base()))
        .header("Cookie", &cookie)
        .body(envelope)
        .send()
        .await
        .expect("soap call");
    assert_eq!(response.status(), 500);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("maintenance-needs-ticket")
    );
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-21"),
        Some(false)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[tokio::test]
async fn hot_reload_applies_valid_rules_and_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&shipped_policies(), dir.path());
    let harness = Harness::start_with(Options {
        policies: dir.path().to_owned(),
        policy_poll: Some(Duration::from_millis(100)),
        ..Options::default()
    })
    .await;
    let client = harness.client();
    let token = harness.login(&client).await;

    // A broken file: the reload is rejected, decisions stay the same.
    std::fs::write(
        dir.path().join("broken.cedar"),
        "@id(\"broken\")\nforbid (principal, action == VSphere::Action::\"ChangeLockdownMode\", resource)\nwhen { context.body.mdoe == \"lockdownNormal\" };\n",
    )
    .expect("write broken policy");
    let metrics_url = format!("http://{}/metrics", harness.admin);
    wait_for(|| async {
        reqwest::get(&metrics_url)
            .await
            .ok()?
            .text()
            .await
            .ok()
            .filter(|m| m.contains(r#"vcguard_policy_reloads_total{result="rejected"} 1"#))
    })
    .await;
    let response = json_lockdown(&harness, &client, &token, "ham-22", "lockdownNormal").await;
    assert_eq!(
        response.status(),
        204,
        "the last good set still allows normal lockdown"
    );

    // A valid new rule: decisions change without a restart.
    std::fs::remove_file(dir.path().join("broken.cedar")).expect("remove");
    std::fs::write(
        dir.path().join("no-normal.cedar"),
        "@id(\"lockdown-change-freeze\")\n@reason(\"change freeze\")\nforbid (principal, action == VSphere::Action::\"ChangeLockdownMode\", resource)\nwhen { context.body.mode == \"lockdownDisabled\" };\n",
    )
    .expect("write new policy");
    wait_for(|| async {
        reqwest::get(&metrics_url)
            .await
            .ok()?
            .text()
            .await
            .ok()
            .filter(|m| m.contains(r#"vcguard_policy_reloads_total{result="applied"} 1"#))
    })
    .await;
    let response = json_lockdown(&harness, &client, &token, "ham-22", "lockdownDisabled").await;
    assert_eq!(response.status(), 500);
    let fault: Value = response.json().await.expect("fault");
    assert!(
        fault["faultstring"]
            .as_str()
            .unwrap_or_default()
            .contains("lockdown-change-freeze: change freeze"),
        "{fault}"
    );
    let ready: Value = reqwest::get(format!("http://{}/readyz", harness.admin))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["policy_set"].as_str().map(str::len), Some(64));
}

#[tokio::test]
async fn an_evaluation_error_denies() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&shipped_policies(), dir.path());
    // Passes strict validation, overflows at run time: Cedar would skip it; vcguard denies.
    std::fs::write(
        dir.path().join("overflow.cedar"),
        "@id(\"overflow\")\nforbid (principal, action == VSphere::Action::\"ChangeLockdownMode\", resource)\nwhen { context.hour_utc + 9223372036854775807 + 9223372036854775807 > 0 };\n",
    )
    .expect("write");
    let harness = Harness::start_with(Options {
        policies: dir.path().to_owned(),
        ..Options::default()
    })
    .await;
    let client = harness.client();
    let token = harness.login(&client).await;
    let response = json_lockdown(&harness, &client, &token, "ham-21", "lockdownNormal").await;
    assert_eq!(response.status(), 500);
    let fault: Value = response.json().await.expect("fault");
    let text = fault["faultstring"].as_str().unwrap_or_default();
    assert!(
        text.contains("policy evaluation failed") && text.contains("overflow"),
        "{text}"
    );
    assert_eq!(fault["_typeName"], "RestrictedByAdministrator");
    assert_eq!(
        harness.sim().simulator.lockdown_mode("ham-21").as_deref(),
        Some("lockdownDisabled")
    );
}

async fn wait_for<F, Fut, T>(mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached within 10 s");
}

#[tokio::test]
async fn a_request_in_flight_keeps_its_policy_snapshot_and_a_new_one_sees_the_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&shipped_policies(), dir.path());
    let harness = Harness::start_with(Options {
        policies: dir.path().to_owned(),
        policy_poll: Some(Duration::from_millis(100)),
        ..Options::default()
    })
    .await;
    let client = harness.client();
    let token = harness.login(&client).await;

    // A guarded call whose body is still on its way when the policies change.
    let body = serde_json::to_vec(&serde_json::json!({
        "_typeName": "ChangeLockdownModeRequestType",
        "mode": "lockdownNormal"
    }))
    .expect("body");
    let (first, rest) = body.split_at(10);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tx.send(Ok(first.to_vec())).await.expect("first part");
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let in_flight = tokio::spawn(
        client
            .post(format!(
                "{}/HostAccessManager/ham-22/ChangeLockdownMode",
                harness.vim()
            ))
            .header("vmware-api-session-id", &token)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(chunks))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    std::fs::write(
        dir.path().join("freeze.cedar"),
        "@id(\"lockdown-change-freeze\")\n@reason(\"change freeze\")\nforbid (principal, action == VSphere::Action::\"ChangeLockdownMode\", resource)\nwhen { context.body.mode == \"lockdownNormal\" };\n",
    )
    .expect("write new policy");
    wait_for_reloads(
        &harness,
        r#"vcguard_policy_reloads_total{result="applied"} 1"#,
    )
    .await;

    tx.send(Ok(rest.to_vec())).await.expect("rest");
    drop(tx);
    let response = in_flight.await.expect("task").expect("response");
    assert_eq!(
        response.status(),
        204,
        "decided under the snapshot it started with"
    );

    let response = json_lockdown(&harness, &client, &token, "ham-22", "lockdownNormal").await;
    assert_eq!(response.status(), 500, "a new request sees the new set");
    let fault: Value = response.json().await.expect("fault");
    assert!(
        fault["faultstring"]
            .as_str()
            .unwrap_or_default()
            .contains("lockdown-change-freeze"),
        "{fault}"
    );
}

/// Waits until the admin metrics show `line` (a reload counter).
async fn wait_for_reloads(harness: &Harness, line: &str) {
    let metrics_url = format!("http://{}/metrics", harness.admin);
    wait_for(|| async {
        reqwest::get(&metrics_url)
            .await
            .ok()?
            .text()
            .await
            .ok()
            .filter(|m| m.contains(line))
    })
    .await;
}
