//! End-to-end: calls whose effect is stored in vCenter or named only in a REST path are decided
//! on that effect (PROTOCOL.md §8) — vSphere Lifecycle Manager remediation over the Automation
//! REST API, `RunScheduledTask` of a stored task, `ApplyRecommendation` of a DRS
//! recommendation — and a refused call changes nothing in vCenter.

mod common;

use common::{ADMIN_PASSWORD, ADMIN_USER, Harness, RELEASE};
use serde_json::{Value, json};

const TICKET: (&str, &str) = ("X-Change-Ticket", "CHG0012345");

/// A POST through the gateway: status and body.
async fn post(
    harness: &Harness,
    client: &reqwest::Client,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> (u16, String) {
    let mut request = client.post(format!("{}{path}", harness.base())).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

fn soap_envelope(method_xml: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>{method_xml}</soapenv:Body></soapenv:Envelope>"#
    )
}

/// Asserts a policy denial by `policy` (the text is in the answer of any protocol).
fn assert_denied(answer: &(u16, String), policy: &str) {
    assert_eq!(answer.0, 500, "{}", answer.1);
    assert!(
        answer.1.contains(&format!("policy {policy}:")),
        "{}",
        answer.1
    );
}

fn audit_records(harness: &Harness) -> Vec<Value> {
    common::gateway_process::records_in(std::slice::from_ref(&harness.audit_path))
}

#[tokio::test]
async fn lifecycle_remediation_over_rest_needs_a_ticket() {
    let mut harness = Harness::start().await;
    let client = harness.client();
    let login = client
        .post(format!("{}/api/session", harness.base()))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("REST login");
    assert_eq!(login.status(), 201, "POST /api/session passes through");
    let token: String = login.json().await.expect("the token as a JSON string");
    let session = [("vmware-api-session-id", token.as_str())];

    for path in [
        "/api/esx/settings/clusters/domain-c7/software?action=apply&vmw-task=true",
        "/api/esx/settings/clusters/domain-c7/software?action=apply",
        "/api/esx/settings/clusters/domain-c7/configuration?action=apply&vmw-task=true",
        "/api/esx/settings/hosts/host-21/software?action=apply&vmw-task=true",
        "/rest/esx/settings/clusters/domain-c7/software?action=apply",
    ] {
        let answer = post(&harness, &client, path, &session, "{}".into()).await;
        assert_denied(&answer, "maintenance-needs-ticket");
        let error: Value = serde_json::from_str(&answer.1).expect("a vAPI error");
        assert_eq!(error["error_type"], "UNAUTHORIZED", "{path}");
        assert!(
            error["messages"][0]["default_message"]
                .as_str()
                .is_some_and(|m| m.contains("change ticket")),
            "{path}: {error}"
        );
    }
    // No session, or one vCenter does not know: nobody to permit (fail closed).
    for headers in [&[][..], &[("vmware-api-session-id", "not-a-session")][..]] {
        let answer = post(
            &harness,
            &client,
            "/api/esx/settings/clusters/domain-c7/software?action=apply",
            &[headers, &[TICKET][..]].concat(),
            "{}".into(),
        )
        .await;
        assert_eq!(answer.0, 500, "{}", answer.1);
        let error: Value = serde_json::from_str(&answer.1).expect("a vAPI error");
        assert_eq!(error["error_type"], "UNAUTHORIZED");
        assert_eq!(
            error["messages"][0]["default_message"]
                .as_str()
                .and_then(|m| m.split(" (request").next()),
            Some("Blocked by vcguard: no policy permits ApplyEsxSettings"),
            "{error}"
        );
    }
    assert!(
        harness.sim().simulator.remediations().is_empty(),
        "a refused remediation never ran"
    );
    assert!(
        !harness
            .sim()
            .simulator
            .journal()
            .iter()
            .any(|seen| seen.path.contains("/esx/settings/")),
        "vCenter never saw a refused remediation"
    );

    // An ordinary REST call still passes through untouched.
    let check = post(
        &harness,
        &client,
        "/api/esx/settings/clusters/domain-c7/software?action=check",
        &session,
        "{}".into(),
    )
    .await;
    assert_eq!(check.0, 400, "the simulator's own answer: {}", check.1);

    let allowed = post(
        &harness,
        &client,
        "/api/esx/settings/clusters/domain-c7/software?action=apply&vmw-task=true",
        &[session[0], TICKET],
        "{}".into(),
    )
    .await;
    assert_eq!(allowed.0, 202, "{}", allowed.1);
    let task: String = serde_json::from_str(&allowed.1).expect("a task id");
    assert!(task.contains("com.vmware.esx.settings.clusters.software"));
    let ran = harness.sim().simulator.remediations();
    assert_eq!(ran.len(), 1);
    assert_eq!(
        (
            ran[0].kind.as_str(),
            ran[0].id.as_str(),
            ran[0].what.as_str()
        ),
        ("clusters", "domain-c7", "software")
    );
    assert_eq!(ran[0].user, "VSPHERE.LOCAL\\Administrator");

    assert!(harness.shutdown().await);
    let records = audit_records(&harness);
    let decision = |verdict: &str| {
        records
            .iter()
            .find(|r| {
                r["kind"] == "decision" && r["decision"] == verdict && r["protocol"] == "rest"
            })
            .cloned()
            .unwrap_or_else(|| panic!("no {verdict} decision on a REST call"))
    };
    let denied = decision("deny");
    assert_eq!(denied["method"], "ApplyEsxSettings");
    assert_eq!(denied["route"], "lifecycle_rest");
    assert_eq!(denied["principal"], "VSPHERE.LOCAL\\Administrator");
    let allowed = decision("allow");
    assert_eq!(allowed["mo_id"], "domain-c7");
}

/// Creates a scheduled task in vCenter directly (as an operator would in the vSphere Client),
/// returning its moId.
async fn stored_task(harness: &Harness, object: (&str, &str), action: Value) -> String {
    let (client, base) = harness.direct_to_sim();
    let vim = format!("{base}/sdk/vim25/{RELEASE}");
    let login = client
        .post(format!("{vim}/SessionManager/SessionManager/Login"))
        .json(&json!({"userName": ADMIN_USER, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login at the simulator");
    let token = login.headers()["vmware-api-session-id"]
        .to_str()
        .expect("token")
        .to_owned();
    let created = client
        .post(format!(
            "{vim}/ScheduledTaskManager/ScheduledTaskManager/CreateObjectScheduledTask"
        ))
        .header("vmware-api-session-id", token)
        .json(&json!({
            "obj": {"_typeName": "ManagedObjectReference", "type": object.0, "value": object.1},
            "spec": {"_typeName": "ScheduledTaskSpec", "name": "stored", "description": "", "enabled": true,
                "scheduler": {"_typeName": "OnceTaskScheduler", "runAt": "2099-01-01T02:00:00Z"},
                "action": action}
        }))
        .send()
        .await
        .expect("create at the simulator");
    assert_eq!(created.status(), 200);
    let moref: Value = created.json().await.expect("moref");
    moref["value"].as_str().expect("moId").to_owned()
}

fn method_action(name: &str, arguments: Value) -> Value {
    json!({"_typeName": "MethodAction", "name": name, "argument": arguments})
}

fn enter_maintenance_action() -> Value {
    method_action(
        "EnterMaintenanceMode_Task",
        json!([{"_typeName": "MethodActionArgument", "value": {"_typeName": "int", "_value": 0}}]),
    )
}

/// `RunScheduledTask` of `task` over VI/JSON (`soap` false) or SOAP, with extra headers.
async fn run_task(
    harness: &Harness,
    client: &reqwest::Client,
    credential: (&str, &str),
    soap: bool,
    task: &str,
    extra: &[(&str, &str)],
) -> (u16, String) {
    let headers = [&[credential][..], extra].concat();
    if soap {
        let body = soap_envelope(&format!(
            r#"<RunScheduledTask xmlns="urn:vim25"><_this type="ScheduledTask">{task}</_this></RunScheduledTask>"#
        ));
        let headers = [&headers[..], &[("SOAPAction", "urn:vim25/8.0.3.0")][..]].concat();
        post(harness, client, "/sdk", &headers, body).await
    } else {
        let path = format!("/sdk/vim25/{RELEASE}/ScheduledTask/{task}/RunScheduledTask");
        post(harness, client, &path, &headers, "{}".into()).await
    }
}

#[tokio::test]
async fn run_scheduled_task_is_decided_on_the_stored_action() {
    let mut harness = Harness::start().await;
    let client = harness.client();
    let token = harness.login(&client).await;
    let cookie = harness.soap_login(&client).await;
    let json_session = ("vmware-api-session-id", token.as_str());
    let soap_session = ("Cookie", cookie.as_str());
    let sim = harness.sim().simulator.clone();

    let maintenance_21 = stored_task(
        &harness,
        ("HostSystem", "host-21"),
        enter_maintenance_action(),
    )
    .await;
    let maintenance_22 = stored_task(
        &harness,
        ("HostSystem", "host-22"),
        enter_maintenance_action(),
    )
    .await;
    let power_on = stored_task(
        &harness,
        ("VirtualMachine", "vm-33"),
        method_action("PowerOnVM_Task", json!([])),
    )
    .await;
    let power_off = stored_task(
        &harness,
        ("VirtualMachine", "vm-32"),
        method_action("PowerOffVM_Task", json!([])),
    )
    .await;

    // A stored maintenance task needs a ticket, like EnterMaintenanceMode_Task itself.
    for (credential, soap) in [(json_session, false), (soap_session, true)] {
        let answer = run_task(&harness, &client, credential, soap, &maintenance_21, &[]).await;
        assert_denied(&answer, "maintenance-needs-ticket");
    }
    assert_eq!(sim.host_in_maintenance("host-21"), Some(false));
    let reached_run = |sim: &vcsim_lite::Simulator| {
        sim.journal()
            .iter()
            .filter(|seen| seen.vim_method.as_deref() == Some("RunScheduledTask"))
            .count()
    };
    assert_eq!(reached_run(&sim), 0, "a refused run never reaches vCenter");
    let look_ups: Vec<_> = sim
        .journal()
        .into_iter()
        .filter(|seen| {
            seen.path
                .ends_with(&format!("/ScheduledTask/{maintenance_21}/info"))
        })
        .collect();
    assert_eq!(look_ups.len(), 2, "one look-up per call, nothing cached");
    assert_eq!(look_ups[0].http_method, "GET");
    assert_eq!(
        look_ups[0].headers["vmware-api-session-id"].to_str().ok(),
        Some(token.as_str()),
        "asked with the caller's own session"
    );
    assert!(
        look_ups[1].headers["cookie"]
            .to_str()
            .is_ok_and(|c| c.contains("vmware_soap_session")),
        "the SOAP caller's look-up carries its cookie"
    );

    // With a ticket, it runs: in both protocols.
    let answer = run_task(
        &harness,
        &client,
        json_session,
        false,
        &maintenance_21,
        &[TICKET],
    )
    .await;
    assert_eq!(answer.0, 204, "{}", answer.1);
    assert_eq!(sim.host_in_maintenance("host-21"), Some(true));
    let answer = run_task(
        &harness,
        &client,
        soap_session,
        true,
        &maintenance_22,
        &[TICKET],
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(sim.host_in_maintenance("host-22"), Some(true));

    // A harmless stored task passes without a ticket.
    let answer = run_task(&harness, &client, json_session, false, &power_on, &[]).await;
    assert_eq!(answer.0, 204, "{}", answer.1);
    assert_eq!(sim.vm_powered_on("vm-33"), Some(true));
    let answer = run_task(&harness, &client, soap_session, true, &power_off, &[]).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(sim.vm_powered_on("vm-32"), Some(false));

    // A task vCenter does not know cannot be looked up: refused, and nothing runs.
    let runs_before = reached_run(&sim);
    for (credential, soap) in [(json_session, false), (soap_session, true)] {
        let answer = run_task(
            &harness,
            &client,
            credential,
            soap,
            "schedule-999",
            &[TICKET],
        )
        .await;
        assert_eq!(answer.0, 500, "{}", answer.1);
        assert!(
            answer.1.contains("RestrictedByAdministrator"),
            "{}",
            answer.1
        );
        assert!(
            answer
                .1
                .contains("looked up scheduled task schedule-999 in vCenter")
                && answer.1.contains("ManagedObjectNotFound"),
            "{}",
            answer.1
        );
    }
    assert_eq!(reached_run(&sim), runs_before, "nothing ran");

    assert!(harness.shutdown().await);
    let records = audit_records(&harness);
    let denied = records
        .iter()
        .find(|r| r["kind"] == "decision" && r["decision"] == "deny")
        .expect("a decision record for the refused run");
    assert_eq!(denied["method"], "EnterMaintenanceMode_Task");
    assert_eq!(denied["route"], "run_scheduled_task");
    assert_eq!(denied["mo_id"], "host-21");
    assert_eq!(
        denied["looked_up"],
        format!(
            "ScheduledTask {maintenance_21} runs EnterMaintenanceMode_Task on HostSystem host-21"
        )
    );
    let harmless = records
        .iter()
        .find(|r| r["kind"] == "decision" && r["mo_id"] == power_on.as_str())
        .expect("a decision record for the harmless run");
    assert_eq!(harmless["decision"], "allow");
    assert_eq!(
        harmless["looked_up"],
        format!("ScheduledTask {power_on} runs PowerOnVM_Task on VirtualMachine vm-33")
    );
    let failed = records
        .iter()
        .find(|r| r["kind"] == "outcome" && r["error"] == "lookup_failed")
        .expect("an outcome record for the failed look-up");
    assert_eq!(failed["mo_id"], "schedule-999");
}

#[tokio::test]
async fn apply_recommendation_is_decided_on_the_stored_recommendation() {
    let mut harness = Harness::start().await;
    let client = harness.client();
    let token = harness.login(&client).await;
    let cookie = harness.soap_login(&client).await;
    let json_session = ("vmware-api-session-id", token.as_str());
    let sim = harness.sim().simulator.clone();
    let cluster = format!("/sdk/vim25/{RELEASE}/ClusterComputeResource/domain-c7");

    // Only recommendations: allowed without a ticket.
    let (status, body) = post(
        &harness,
        &client,
        &format!("{cluster}/ClusterEnterMaintenanceMode"),
        &[json_session],
        json!({"host": [{"_typeName": "ManagedObjectReference", "type": "HostSystem", "value": "host-21"}]})
            .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let result: Value = serde_json::from_str(&body).expect("result");
    let key = result["recommendations"][0]["key"]
        .as_str()
        .expect("a recommendation key")
        .to_owned();
    assert_eq!(result["recommendations"][0]["reason"], "hostMaint");
    assert_eq!(sim.host_in_maintenance("host-21"), Some(false));

    let apply_json = json!({ "key": key }).to_string();
    let apply_soap = soap_envelope(&format!(
        r#"<ApplyRecommendation xmlns="urn:vim25"><_this type="ClusterComputeResource">domain-c7</_this><key>{key}</key></ApplyRecommendation>"#
    ));
    let answer = post(
        &harness,
        &client,
        &format!("{cluster}/ApplyRecommendation"),
        &[json_session],
        apply_json.clone(),
    )
    .await;
    assert_denied(&answer, "maintenance-needs-ticket");
    let answer = post(
        &harness,
        &client,
        "/sdk",
        &[("Cookie", &cookie)],
        apply_soap.clone(),
    )
    .await;
    assert_denied(&answer, "maintenance-needs-ticket");
    assert_eq!(sim.host_in_maintenance("host-21"), Some(false));
    assert!(
        !sim.journal()
            .iter()
            .any(|seen| seen.vim_method.as_deref() == Some("ApplyRecommendation")),
        "a refused recommendation never reaches vCenter"
    );

    // A key vCenter does not list: the look-up fails closed.
    let answer = post(
        &harness,
        &client,
        &format!("{cluster}/ApplyRecommendation"),
        &[json_session, TICKET],
        json!({"key": "no-such-key"}).to_string(),
    )
    .await;
    assert_eq!(answer.0, 500, "{}", answer.1);
    assert!(
        answer.1.contains("RestrictedByAdministrator") && answer.1.contains("does not list it"),
        "{}",
        answer.1
    );

    let answer = post(
        &harness,
        &client,
        "/sdk",
        &[("Cookie", &cookie), TICKET],
        apply_soap,
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(sim.host_in_maintenance("host-21"), Some(true));

    // vCenter gone: the look-up cannot be made, so the call is refused as such.
    harness.stop_sim().await;
    let answer = post(
        &harness,
        &client,
        &format!("{cluster}/ApplyRecommendation"),
        &[json_session, TICKET],
        apply_json,
    )
    .await;
    assert_eq!(answer.0, 500, "{}", answer.1);
    assert!(
        answer.1.contains("RestrictedByAdministrator") && answer.1.contains("could not reach it"),
        "{}",
        answer.1
    );
}
