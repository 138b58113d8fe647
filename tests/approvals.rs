//! End-to-end: the two-person rule (`@approval("change-approvers")` on disabling lockdown) and
//! ticket claims, through the real gateway over TLS in front of the simulator, JSON and SOAP.

mod common;

use std::time::{Duration, SystemTime};

use common::{ADMIN_PASSWORD, ADMIN_USER, Harness, Options, shipped_policies, soap_login_envelope};
use serde_json::{Value, json};
use vcguard::approval::ChangeControl;
use vcguard::gateway::StateSettings;
use vcguard::policy::PolicySet;
use vcguard::state::{ApprovalError, ApprovalSettings, ApprovalState, Decider, NewClaim, Verdict};

const ADMIN: &str = "VSPHERE.LOCAL\\Administrator";
const APPROVER: &str = "VSPHERE.LOCAL\\approver";
const OPS: &str = "VSPHERE.LOCAL\\ops";

fn options() -> Options {
    let mut options = Options::default();
    options
        .sim
        .users
        .push(("approver@vsphere.local".into(), "VMware1!".into()));
    options
        .sim
        .users
        .push(("ops@vsphere.local".into(), "Ops1!".into()));
    options
}

/// A decider with the groups the gateway knows for `user` (entities.json).
fn decider(user: &str) -> Decider {
    let policies = PolicySet::load(&shipped_policies()).expect("policies");
    Decider {
        user: user.into(),
        groups: ChangeControl::groups_of(user, &[], &policies),
    }
}

fn approval_id(text: &str) -> String {
    common::console::approval_id(text).expect("an approval id in the text")
}

fn soap_envelope(method_xml: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>{method_xml}</soapenv:Body></soapenv:Envelope>"#
    )
}

async fn soap_cookie(harness: &Harness, client: &reqwest::Client, user: &str, pw: &str) -> String {
    let response = client
        .post(format!("{}/sdk", harness.base()))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(soap_login_envelope(user, pw))
        .send()
        .await
        .expect("soap login");
    assert_eq!(response.status(), 200);
    response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("cookie")
        .to_owned()
}

async fn soap_call(
    harness: &Harness,
    client: &reqwest::Client,
    cookie: &str,
    method_xml: &str,
) -> (u16, String) {
    let response = client
        .post(format!("{}/sdk", harness.base()))
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", "\"urn:vim25/8.0.3.0\"")
        .header("Cookie", cookie)
        .body(soap_envelope(method_xml))
        .send()
        .await
        .expect("soap call");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

fn soap_lockdown(ham: &str, mode: &str) -> String {
    format!(
        r#"<ChangeLockdownMode xmlns="urn:vim25"><_this type="HostAccessManager">{ham}</_this><mode>{mode}</mode></ChangeLockdownMode>"#
    )
}

fn soap_maintenance(host: &str) -> String {
    format!(
        r#"<EnterMaintenanceMode_Task xmlns="urn:vim25"><_this type="HostSystem">{host}</_this><timeout>0</timeout></EnterMaintenanceMode_Task>"#
    )
}

fn audit_records(harness: &Harness) -> Vec<Value> {
    std::fs::read_to_string(&harness.audit_path)
        .expect("audit log")
        .lines()
        .map(|line| serde_json::from_str(line).expect("json record"))
        .collect()
}

/// Waits until the audit log holds a record matching `pred` (records are written asynchronously).
async fn await_record(harness: &Harness, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        if let Some(found) = audit_records(harness).into_iter().find(|r| pred(r)) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no audit record: {what}");
}

fn approval_event(id: &str, event: &str) -> impl Fn(&Value) -> bool {
    let (id, event) = (id.to_owned(), event.to_owned());
    move |r: &Value| {
        r["kind"] == "approval" && r["id"] == id.as_str() && r["event"] == event.as_str()
    }
}

#[tokio::test]
async fn json_disable_lockdown_needs_another_members_approval_and_passes_once() {
    let harness = Harness::start_with(options()).await;
    let client = harness.client();
    let token = harness.login(&client).await;
    let control = &harness.control;

    let (status, text) =
        common::console::lockdown(&harness, &client, &token, "ham-21", "lockdownNormal").await;
    assert_eq!(status, 204, "{text}");
    let (status, text) =
        common::console::lockdown(&harness, &client, &token, "ham-21", "lockdownDisabled").await;
    assert_eq!(status, 500, "{text}");
    assert!(
        text.contains("policy lockdown-disable-needs-approval"),
        "{text}"
    );
    let id = approval_id(&text);
    assert!(text.contains("change-approvers"), "{text}");
    assert!(
        text.contains(&format!(
            "vcguard approval approve {id} --gateway https://localhost:{}",
            harness.gateway.port()
        )),
        "{text}"
    );
    assert_eq!(
        harness.sim().simulator.lockdown_mode("ham-21").as_deref(),
        Some("lockdownNormal"),
        "vCenter never saw the call"
    );
    // The same call again: the same pending request.
    let (status, again) =
        common::console::lockdown(&harness, &client, &token, "ham-21", "lockdownDisabled").await;
    assert_eq!(status, 500);
    assert_eq!(approval_id(&again), id);

    let store = control.store().await.expect("store");
    let pending = store.approval(&id).await.expect("read").expect("stored");
    assert_eq!(pending.state, ApprovalState::Pending);
    assert_eq!(pending.key.requester, ADMIN);
    assert_eq!(pending.group, "change-approvers");
    assert!(
        pending.summary.contains("lockdownDisabled"),
        "{}",
        pending.summary
    );

    // The requester cannot approve it, nor can a non-member.
    let now = SystemTime::now();
    let mut own = decider(ADMIN);
    own.groups.push("change-approvers".into());
    let err = control
        .decide_approval(&id, &own, Verdict::Approve, "", now)
        .await
        .expect_err("self approval");
    assert!(matches!(err, ApprovalError::SelfApproval { .. }), "{err}");
    let err = control
        .decide_approval(&id, &decider(OPS), Verdict::Approve, "", now)
        .await
        .expect_err("non-member");
    assert!(matches!(err, ApprovalError::NotMember { .. }), "{err}");
    assert!(err.to_string().contains("change-approvers"), "{err}");

    let approved = control
        .decide_approval(
            &id,
            &decider(APPROVER),
            Verdict::Approve,
            "CHG0012345 window",
            now,
        )
        .await
        .expect("the approver approves");
    assert_eq!(approved.state, ApprovalState::Approved);

    // A different call (another host) is not covered.
    let (status, other) =
        common::console::lockdown(&harness, &client, &token, "ham-22", "lockdownDisabled").await;
    assert_eq!(status, 500);
    assert_ne!(approval_id(&other), id);

    let (status, text) =
        common::console::lockdown(&harness, &client, &token, "ham-21", "lockdownDisabled").await;
    assert_eq!(status, 204, "the approved call passes: {text}");
    assert_eq!(
        harness.sim().simulator.lockdown_mode("ham-21").as_deref(),
        Some("lockdownDisabled")
    );
    let (status, text) =
        common::console::lockdown(&harness, &client, &token, "ham-21", "lockdownDisabled").await;
    assert_eq!(status, 500, "one use only: {text}");
    assert_ne!(approval_id(&text), id, "a new request");
    assert_eq!(
        store
            .approval(&id)
            .await
            .expect("read")
            .expect("stored")
            .state,
        ApprovalState::Used
    );

    for event in ["requested", "approved", "used"] {
        await_record(&harness, event, approval_event(&id, event)).await;
    }
    let approved = await_record(&harness, "approved by", approval_event(&id, "approved")).await;
    assert_eq!(approved["by"], APPROVER);
    assert_eq!(approved["comment"], "CHG0012345 window");
    let allowed = await_record(&harness, "the allowed decision", |r| {
        r["kind"] == "decision" && r["approval"] == id.as_str() && r["decision"] == "allow"
    })
    .await;
    assert_eq!(allowed["policies"], json!(["baseline-permit"]));
    await_record(&harness, "the refused decision", |r| {
        r["kind"] == "decision" && r["approval"] == id.as_str() && r["decision"] == "deny"
    })
    .await;
    let mut table = Vec::new();
    vcguard::audit::query(
        std::slice::from_ref(&harness.audit_path),
        &vcguard::audit::QueryFilter::default(),
        &mut table,
        false,
    )
    .expect("query reads every record");
    let table = String::from_utf8(table).expect("utf-8");
    assert!(
        table.contains(&format!("approved {id} ChangeLockdownMode")),
        "{table}"
    );
    let report = vcguard::audit::verify(std::slice::from_ref(&harness.audit_path));
    assert!(report.ok, "the chain holds: {:?}", report.failure);
}

#[tokio::test]
async fn soap_disable_lockdown_needs_approval_and_a_denial_is_final() {
    let harness = Harness::start_with(options()).await;
    let client = harness.client();
    let cookie = soap_cookie(&harness, &client, ADMIN_USER, ADMIN_PASSWORD).await;
    let control = &harness.control;

    let (status, body) = soap_call(
        &harness,
        &client,
        &cookie,
        &soap_lockdown("ham-23", "lockdownNormal"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = soap_call(
        &harness,
        &client,
        &cookie,
        &soap_lockdown("ham-23", "lockdownDisabled"),
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("RestrictedByAdministrator"), "{body}");
    let id = approval_id(&body);

    // Denied: the retry is refused again (a new request).
    let denied = control
        .decide_approval(
            &id,
            &decider(APPROVER),
            Verdict::Deny,
            "not today",
            SystemTime::now(),
        )
        .await
        .expect("deny");
    assert_eq!(denied.state, ApprovalState::Denied);
    let err = control
        .decide_approval(
            &id,
            &decider(APPROVER),
            Verdict::Approve,
            "",
            SystemTime::now(),
        )
        .await
        .expect_err("decided");
    assert!(matches!(err, ApprovalError::AlreadyDecided { .. }), "{err}");
    let (status, body) = soap_call(
        &harness,
        &client,
        &cookie,
        &soap_lockdown("ham-23", "lockdownDisabled"),
    )
    .await;
    assert_eq!(status, 500);
    let second = approval_id(&body);
    assert_ne!(second, id);
    await_record(&harness, "denied", approval_event(&id, "denied")).await;

    // Approved: the SOAP retry passes once.
    control
        .decide_approval(
            &second,
            &decider(APPROVER),
            Verdict::Approve,
            "",
            SystemTime::now(),
        )
        .await
        .expect("approve");
    let (status, body) = soap_call(
        &harness,
        &client,
        &cookie,
        &soap_lockdown("ham-23", "lockdownDisabled"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        harness.sim().simulator.lockdown_mode("ham-23").as_deref(),
        Some("lockdownDisabled")
    );
    let (status, body) = soap_call(
        &harness,
        &client,
        &cookie,
        &soap_lockdown("ham-23", "lockdownDisabled"),
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert_ne!(approval_id(&body), second);
}

#[tokio::test]
async fn pending_requests_and_unused_approvals_expire() {
    let mut options = options();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut state = StateSettings::sqlite(dir.path().join("state.db"));
    state.approval = ApprovalSettings {
        // Times are kept in whole seconds: 2 s leaves at least 1 s to act in.
        window: Duration::from_secs(2),
        uses: 1,
        pending_ttl: Duration::from_secs(2),
    };
    state.expiry_check = Duration::from_millis(200);
    options.state = Some(state);
    let harness = Harness::start_with(options).await;
    let client = harness.client();
    let token = harness.login(&client).await;
    let control = &harness.control;

    let (_, text) =
        common::console::lockdown(&harness, &client, &token, "ham-21", "lockdownDisabled").await;
    let stale = approval_id(&text);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let err = control
        .decide_approval(
            &stale,
            &decider(APPROVER),
            Verdict::Approve,
            "",
            SystemTime::now(),
        )
        .await
        .expect_err("expired");
    assert!(matches!(err, ApprovalError::Expired { .. }), "{err}");
    await_record(&harness, "expired", approval_event(&stale, "expired")).await;

    // Approved but not used within the window.
    let (_, text) =
        common::console::lockdown(&harness, &client, &token, "ham-21", "lockdownDisabled").await;
    let late = approval_id(&text);
    assert_ne!(late, stale);
    control
        .decide_approval(
            &late,
            &decider(APPROVER),
            Verdict::Approve,
            "",
            SystemTime::now(),
        )
        .await
        .expect("approve");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, text) =
        common::console::lockdown(&harness, &client, &token, "ham-21", "lockdownDisabled").await;
    assert_eq!(status, 500, "the window is over: {text}");
    await_record(&harness, "window expired", approval_event(&late, "expired")).await;
}

#[tokio::test]
async fn a_claim_gives_a_headerless_soap_session_its_ticket_on_the_claimed_host_only() {
    let harness = Harness::start_with(options()).await;
    let client = harness.client();
    let cookie = soap_cookie(&harness, &client, ADMIN_USER, ADMIN_PASSWORD).await;
    let control = &harness.control;

    // Without a claim: refused (maintenance needs a ticket).
    let (status, body) = soap_call(&harness, &client, &cookie, &soap_maintenance("host-21")).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("maintenance-needs-ticket"), "{body}");

    let now = SystemTime::now();
    let claim = control
        .claim_ticket(
            NewClaim {
                user: ADMIN.into(),
                ticket_id: "CHG0012345".into(),
                ticket_kind: "pattern".into(),
                ticket_context: json!({"id": "CHG0012345", "kind": "pattern", "verified": true,
                                       "covers_target": true, "covers_action": true}),
                hosts: vec!["host-21".into(), "host-23".into()],
                actions: vec!["EnterMaintenanceMode_Task".into()],
                until: now + Duration::from_secs(7200),
            },
            now,
        )
        .await
        .expect("claim");
    let (status, body) = soap_call(&harness, &client, &cookie, &soap_maintenance("host-21")).await;
    assert_eq!(status, 200, "the claim covers host-21: {body}");
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-21"),
        Some(true)
    );
    let (status, body) = soap_call(&harness, &client, &cookie, &soap_maintenance("host-22")).await;
    assert_eq!(status, 500, "host-22 is not claimed: {body}");
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-22"),
        Some(false)
    );

    let decision = await_record(&harness, "claimed decision", |r| {
        r["kind"] == "decision" && r["claim"] == claim.id.as_str() && r["decision"] == "allow"
    })
    .await;
    assert_eq!(decision["ticket"]["id"], "CHG0012345");
    assert_eq!(decision["ticket"]["kind"], "claimed");
    await_record(&harness, "claim created", |r| {
        r["kind"] == "claim" && r["id"] == claim.id.as_str() && r["event"] == "created"
    })
    .await;

    // Another user's session does not get the claim.
    let ops = soap_cookie(&harness, &client, "ops@vsphere.local", "Ops1!").await;
    let (status, _) = soap_call(&harness, &client, &ops, &soap_maintenance("host-23")).await;
    assert_eq!(status, 500, "the claim is the administrator's");

    // Released: host-23 is no longer covered.
    let err = control
        .release_claim(&claim.id, OPS, SystemTime::now())
        .await
        .expect_err("not yours");
    assert!(err.to_string().contains("another user"), "{err}");
    control
        .release_claim(&claim.id, ADMIN, SystemTime::now())
        .await
        .expect("release");
    let (status, body) = soap_call(&harness, &client, &cookie, &soap_maintenance("host-23")).await;
    assert_eq!(status, 500, "released: {body}");
    await_record(&harness, "claim released", |r| {
        r["kind"] == "claim" && r["id"] == claim.id.as_str() && r["event"] == "released"
    })
    .await;
    // `vcguard audit query` reads the new record kinds.
    let mut table = Vec::new();
    vcguard::audit::query(
        std::slice::from_ref(&harness.audit_path),
        &vcguard::audit::QueryFilter::default(),
        &mut table,
        false,
    )
    .expect("query reads every record");
    let table = String::from_utf8(table).expect("utf-8");
    assert!(
        table.contains(&format!("released {} CHG0012345", claim.id)),
        "{table}"
    );

    // Expired: a claim whose time is over covers nothing.
    let now = SystemTime::now();
    control
        .claim_ticket(
            NewClaim {
                user: ADMIN.into(),
                ticket_id: "CHG0012346".into(),
                ticket_kind: "pattern".into(),
                ticket_context: json!({"id": "CHG0012346", "kind": "pattern", "verified": true,
                                       "covers_target": true, "covers_action": true}),
                hosts: vec!["host-22".into()],
                actions: vec![],
                until: now + Duration::from_secs(1),
            },
            now,
        )
        .await
        .expect("claim");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = soap_call(&harness, &client, &cookie, &soap_maintenance("host-22")).await;
    assert_eq!(status, 500, "expired claim: {body}");
}

#[tokio::test]
async fn an_unreachable_state_store_refuses_calls_that_need_it_and_passes_the_rest() {
    let mut options = options();
    let mut state = StateSettings::sqlite("/nonexistent-dir/vcguard/state.db");
    state.expiry_check = Duration::from_secs(3600);
    options.state = Some(state);
    let harness = Harness::start_with(options).await;
    let client = harness.client();
    let token = harness.login(&client).await;

    // Pass-through and calls no approval is needed for still work.
    let (status, text) =
        common::console::lockdown(&harness, &client, &token, "ham-21", "lockdownNormal").await;
    assert_eq!(status, 204, "{text}");
    let response = client
        .post(format!(
            "{}/HostAccessManager/ham-21/ChangeLockdownMode",
            harness.vim()
        ))
        .header("vmware-api-session-id", &token)
        .json(&json!({"_typeName": "ChangeLockdownModeRequestType", "mode": "lockdownDisabled"}))
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 503);
    let fault: Value = response.json().await.expect("json fault");
    assert_eq!(fault["_typeName"], "RestrictedByAdministrator");
    let text = fault["faultstring"].as_str().expect("text");
    assert!(text.contains("cannot reach its state store"), "{text}");
    assert_eq!(
        harness.sim().simulator.lockdown_mode("ham-21").as_deref(),
        Some("lockdownNormal")
    );
    // A maintenance call without a header: the claim lookup fails, the policy refuses.
    let cookie = soap_cookie(&harness, &client, ADMIN_USER, ADMIN_PASSWORD).await;
    let (status, body) = soap_call(&harness, &client, &cookie, &soap_maintenance("host-21")).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("cannot read ticket claims"), "{body}");

    let ready: Value = reqwest::get(format!("http://{}/readyz", harness.admin))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "ready", "pass-through needs no store");
    assert_eq!(ready["state"]["status"], "unavailable");
}
