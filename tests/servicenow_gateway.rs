//! Change tickets checked in ServiceNow, end to end: a client sends a header ticket through the
//! real gateway (real TLS, built-in simulator), the gateway asks a stand-in ServiceNow instance
//! (real TLS, the Table API's wire format), and the verdict decides the call.

mod common;

use std::time::Duration;

use common::servicenow::{Change, StandIn, window};
use common::{Harness, Options};
use serde_json::Value;
use vcguard::ticket::{ChangeSystemConfig, TicketConfig};

const TOKEN: &str = "tok-77e1d0-SECRET-servicenow-bearer";

/// The gateway in front of the simulator, checking tickets in `stand_in` with `cache_ttl_secs`.
async fn gateway(stand_in: &StandIn, dir: &std::path::Path, cache_ttl_secs: u64) -> Harness {
    let token = dir.join("servicenow.token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token file");
    let ca = stand_in.write_ca(dir);
    let config: ChangeSystemConfig = toml::from_str(&format!(
        "kind = \"servicenow\"\nurl = \"{}\"\nca_file = {:?}\ntoken_file = {:?}\ncache_ttl_secs = {cache_ttl_secs}\n",
        stand_in.url(),
        ca.display().to_string(),
        token.display().to_string(),
    ))
    .expect("change system config");
    Harness::start_with(Options {
        tickets: TicketConfig {
            change_system: Some(config),
            ..TicketConfig::default()
        },
        ..Options::default()
    })
    .await
}

/// `EnterMaintenanceMode_Task` on `host` with `ticket` in the header: (status, request id, body).
async fn enter_maintenance(
    harness: &Harness,
    session: &str,
    host: &str,
    ticket: &str,
) -> (u16, String, String) {
    maintenance_call(harness, session, host, Some(ticket)).await
}

/// `EnterMaintenanceMode_Task` on `host` with no ticket header (a client that cannot send one).
async fn enter_maintenance_unticketed(
    harness: &Harness,
    session: &str,
    host: &str,
) -> (u16, String) {
    let (status, _, body) = maintenance_call(harness, session, host, None).await;
    (status, body)
}

async fn maintenance_call(
    harness: &Harness,
    session: &str,
    host: &str,
    ticket: Option<&str>,
) -> (u16, String, String) {
    let mut request = harness
        .client()
        .post(format!(
            "{}/HostSystem/{host}/EnterMaintenanceMode_Task",
            harness.vim()
        ))
        .header("vmware-api-session-id", session)
        .json(&serde_json::json!({"timeout": 0}));
    if let Some(ticket) = ticket {
        request = request.header("X-Change-Ticket", ticket);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, id, response.text().await.expect("body"))
}

/// Whether vCenter answered (the gateway let the call through): its task, or its own refusal of
/// a host already in maintenance, never a vcguard fault.
fn reached_vcenter(status: u16, body: &str) -> bool {
    status == 200 || (body.contains("\"InvalidState\"") && !body.contains("vcguard"))
}

fn faultstring(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["faultstring"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("audit file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON record per line"))
        .collect()
}

fn decision_of<'a>(records: &'a [Value], request_id: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["request_id"] == request_id && r["kind"] == "decision")
        .unwrap_or_else(|| panic!("no decision record for {request_id}"))
}

#[tokio::test]
async fn the_change_systems_verdict_decides_header_tickets_and_reaches_client_and_record() {
    let stand_in = StandIn::start(&format!("Bearer {TOKEN}")).await;
    stand_in.add(Change::new(
        "CHG0012345",
        -1,
        window(-60, 3600),
        "esx-21.example.test",
    ));
    stand_in.add(Change::new(
        "CHG0012346",
        -2,
        window(-60, 3600),
        "esx-21.example.test",
    ));
    let dir = tempfile::tempdir().expect("dir");
    let mut harness = gateway(&stand_in, dir.path(), 60).await;
    let session = harness.login(&harness.client()).await;

    // In Implement, inside its window, host-21 (esx-21) is its configuration item: allowed.
    let (status, allowed_id, body) =
        enter_maintenance(&harness, &session, "host-21", "CHG0012345").await;
    assert_eq!(status, 200, "{body}");
    let after_first = stand_in.requests();
    assert!(after_first >= 1, "the ticket was looked up in ServiceNow");

    // Inside the cache TTL the same ticket is not looked up again.
    let (status, _, body) = enter_maintenance(&harness, &session, "host-21", "CHG0012345").await;
    assert!(reached_vcenter(status, &body), "{status} {body}");
    assert_eq!(stand_in.requests(), after_first, "answered from the cache");

    // The same change on a host that is not one of its configuration items: refused, with why.
    let (status, other_host_id, body) =
        enter_maintenance(&harness, &session, "host-22", "CHG0012345").await;
    assert_eq!(status, 500, "{body}");
    let text = faultstring(&body);
    assert!(
        text.contains("host esx-22.example.test is not a configuration item of CHG0012345"),
        "{text}"
    );

    // A change that is only scheduled: refused, with its state in the client's fault.
    let (status, scheduled_id, body) =
        enter_maintenance(&harness, &session, "host-21", "CHG0012346").await;
    assert_eq!(status, 500, "{body}");
    let text = faultstring(&body);
    assert!(
        text.contains("maintenance-needs-ticket")
            && text.contains("CHG0012346 is in state scheduled, not implement"),
        "{text}"
    );

    // ServiceNow goes away: the next unknown ticket fails closed with the reason.
    stand_in.add(Change::new(
        "CHG0012347",
        -1,
        window(-60, 3600),
        "esx-21.example.test",
    ));
    stand_in.set_behaviour(common::servicenow::Behaviour::Status(500));
    let (status, down_id, body) =
        enter_maintenance(&harness, &session, "host-21", "CHG0012347").await;
    assert_eq!(status, 500, "fails closed: {body}");
    assert!(
        faultstring(&body).contains("change system answered 500"),
        "{}",
        faultstring(&body)
    );

    assert!(harness.shutdown().await);
    let all = records(&harness.audit_path);
    let allowed = decision_of(&all, &allowed_id);
    assert_eq!(allowed["decision"], "allow", "{allowed}");
    assert_eq!(allowed["ticket"]["id"], "CHG0012345");
    let other_host = decision_of(&all, &other_host_id);
    assert_eq!(other_host["decision"], "deny");
    assert!(
        other_host["ticket_problem"]
            .as_str()
            .is_some_and(|p| p.contains("not a configuration item of CHG0012345")),
        "{other_host}"
    );
    let scheduled = decision_of(&all, &scheduled_id);
    assert!(
        scheduled["reason"]
            .as_str()
            .is_some_and(|r| r.contains("in state scheduled, not implement")),
        "{scheduled}"
    );
    let down = decision_of(&all, &down_id);
    assert_eq!(down["decision"], "deny", "{down}");
    assert!(down["ticket_problem"].as_str().is_some(), "{down}");

    let log = std::fs::read(&harness.audit_path).expect("audit bytes");
    let secret = TOKEN.as_bytes();
    assert!(
        !log.windows(secret.len()).any(|w| w == secret),
        "the ServiceNow token never reaches the audit log"
    );
    assert!(
        !log.windows(session.len()).any(|w| w == session.as_bytes()),
        "nor does the vCenter session"
    );
}

#[tokio::test]
async fn after_the_cache_ttl_the_ticket_is_looked_up_again() {
    let stand_in = StandIn::start(&format!("Bearer {TOKEN}")).await;
    stand_in.add(Change::new(
        "CHG0012345",
        -1,
        window(-60, 3600),
        "esx-21.example.test",
    ));
    let dir = tempfile::tempdir().expect("dir");
    let mut harness = gateway(&stand_in, dir.path(), 1).await;
    let session = harness.login(&harness.client()).await;

    let (status, _, body) = enter_maintenance(&harness, &session, "host-21", "CHG0012345").await;
    assert_eq!(status, 200, "{body}");
    let first = stand_in.requests();

    // The change leaves Implement; inside the TTL the gateway still has the positive answer.
    stand_in.set_state("CHG0012345", 0);
    let (status, _, body) = enter_maintenance(&harness, &session, "host-21", "CHG0012345").await;
    assert!(reached_vcenter(status, &body), "{status} {body}");
    assert_eq!(stand_in.requests(), first, "inside the TTL: no look-up");

    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let (status, _, body) = enter_maintenance(&harness, &session, "host-21", "CHG0012345").await;
    assert_eq!(status, 500, "after the TTL the new state refuses: {body}");
    assert!(
        faultstring(&body).contains("CHG0012345 is in state review, not implement"),
        "{}",
        faultstring(&body)
    );
    assert!(
        stand_in.requests() > first,
        "after the TTL: looked up again"
    );
    assert!(harness.shutdown().await);
}

#[tokio::test]
async fn a_claimed_ticket_is_checked_in_servicenow_when_claimed_and_when_used() {
    let stand_in = StandIn::start(&format!("Bearer {TOKEN}")).await;
    stand_in.add(Change::new(
        "CHG0012345",
        -1,
        window(-60, 3600),
        "esx-21.example.test",
    ));
    stand_in.add(Change::new(
        "CHG0012346",
        -2,
        window(-60, 3600),
        "esx-21.example.test",
    ));
    let dir = tempfile::tempdir().expect("dir");
    let harness = gateway(&stand_in, dir.path(), 1).await;
    let session = harness.login(&harness.client()).await;
    let claim = |ticket: &'static str| {
        harness
            .client()
            .post(format!("{}/vcguard/api/v1/ticket-claims", harness.base()))
            .header("vmware-api-session-id", &session)
            .json(&serde_json::json!({"ticket": ticket, "hosts": ["host-21"], "ttl_secs": 600}))
            .send()
    };

    // A change that is only scheduled cannot be claimed; ServiceNow's answer says why.
    let refused = claim("CHG0012346").await.expect("claim request");
    let status = refused.status().as_u16();
    let body: Value = refused.json().await.expect("JSON error");
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("in state scheduled, not implement")),
        "{body}"
    );

    // CHG0012345 is in Implement: claimed, and a call with no ticket header uses the claim.
    let claimed = claim("CHG0012345").await.expect("claim request");
    assert!(claimed.status().is_success(), "{:?}", claimed.text().await);
    let (status, body) = enter_maintenance_unticketed(&harness, &session, "host-21").await;
    assert!(
        reached_vcenter(status, &body),
        "the claim authorises: {status} {body}"
    );

    // The change leaves Implement: once the cached answer expires, the claim no longer authorises.
    stand_in.set_state("CHG0012345", 0);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let (status, body) = enter_maintenance_unticketed(&harness, &session, "host-21").await;
    assert_eq!(status, 500, "{body}");
    assert!(
        faultstring(&body).contains("CHG0012345 is in state review, not implement"),
        "{}",
        faultstring(&body)
    );
}
