//! vcguard's own API under /vcguard/api/v1/ and the CLI on it, end to end: the built-in
//! simulator and the gateway over real TLS, users logged in to vCenter through the gateway.

mod common;

use std::path::Path;

use common::console::{
    ADMIN_NAME, APPROVER, APPROVER_NAME, GROUP, VIEWER, console_options, file_pending,
};
use common::{ADMIN_PASSWORD, ADMIN_USER, Harness};
use serde_json::{Value, json};

struct Setup {
    harness: Harness,
    client: reqwest::Client,
    _policies: tempfile::TempDir,
}

async fn setup() -> Setup {
    let policies = tempfile::tempdir().expect("policy dir");
    let harness = Harness::start_with(console_options(policies.path())).await;
    let client = harness.client();
    Setup {
        harness,
        client,
        _policies: policies,
    }
}

/// Logs `user` in over VI/JSON through the gateway; returns the session id.
async fn login(setup: &Setup, user: &str) -> String {
    let response = setup
        .client
        .post(format!(
            "{}/SessionManager/SessionManager/Login",
            setup.harness.vim()
        ))
        .json(&json!({"userName": user, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 200, "login of {user}");
    response.headers()["vmware-api-session-id"]
        .to_str()
        .expect("token")
        .to_owned()
}

async fn api(
    setup: &Setup,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = setup.client.request(
        method,
        format!("{}/vcguard/api/v1/{path}", setup.harness.base()),
    );
    if let Some(token) = token {
        request = request.header("vmware-api-session-id", token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("api call");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, value)
}

/// Files a pending approval request of `requester` directly in the gateway's store.
async fn pending(setup: &Setup, requester: &str) -> String {
    file_pending(&setup.harness, requester).await
}

fn assert_nothing_under_vcguard_reached_vcenter(setup: &Setup) {
    let journal = setup.harness.sim().simulator.journal();
    let leaked: Vec<_> = journal
        .iter()
        .filter(|seen| seen.path.starts_with("/vcguard"))
        .map(|seen| seen.path.clone())
        .collect();
    assert!(leaked.is_empty(), "forwarded to vCenter: {leaked:?}");
}

#[tokio::test]
async fn the_api_needs_a_vcenter_session_and_never_reaches_vcenter() {
    let setup = setup().await;
    let (status, body) = api(&setup, reqwest::Method::GET, "approvals", None, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "unauthenticated", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("log in"),
        "{body}"
    );
    let (status, body) = api(
        &setup,
        reqwest::Method::GET,
        "approvals",
        Some("not-a-session"),
        None,
    )
    .await;
    assert_eq!(status, 401, "an unknown session is refused: {body}");

    let token = login(&setup, ADMIN_USER).await;
    let (status, body) = api(&setup, reqwest::Method::GET, "whoami", Some(&token), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"], ADMIN_NAME);
    let (status, body) = api(&setup, reqwest::Method::GET, "nowhere", Some(&token), None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "not_found");
    let (status, body) = api(
        &setup,
        reqwest::Method::GET,
        "approvals?state=maybe",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown state")
    );

    // Other paths under /vcguard/ are answered too, never forwarded.
    let response = setup
        .client
        .get(format!("{}/vcguard/elsewhere", setup.harness.base()))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 404);
    assert_nothing_under_vcguard_reached_vcenter(&setup);
}

#[tokio::test]
async fn approvals_are_listed_approved_and_denied_with_the_two_person_rule() {
    let setup = setup().await;
    let admin = login(&setup, ADMIN_USER).await;
    let approver = login(&setup, APPROVER).await;
    let viewer = login(&setup, VIEWER).await;
    let first = pending(&setup, ADMIN_NAME).await;

    let (status, body) = api(
        &setup,
        reqwest::Method::GET,
        "approvals?state=pending",
        Some(&approver),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<&str> = body["approvals"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert!(listed.contains(&first.as_str()), "{body}");

    // The requester cannot approve their own request.
    let (status, body) = api(
        &setup,
        reqwest::Method::POST,
        &format!("approvals/{first}/approve"),
        Some(&admin),
        Some(json!({"comment": "mine"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "self_approval", "{body}");
    assert!(
        body["message"].as_str().unwrap_or_default().contains(GROUP),
        "the message names the group: {body}"
    );

    // Someone outside the group cannot either.
    let (status, body) = api(
        &setup,
        reqwest::Method::POST,
        &format!("approvals/{first}/approve"),
        Some(&viewer),
        Some(json!({"comment": "looks fine"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "not_member", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not a member of change-approvers"),
        "{body}"
    );

    // A member approves it, with a comment.
    let (status, body) = api(
        &setup,
        reqwest::Method::POST,
        &format!("approvals/{first}/approve"),
        Some(&approver),
        Some(json!({"comment": "CAB approved"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "approved");
    assert_eq!(body["decided_by"], APPROVER_NAME);
    assert_eq!(body["comment"], "CAB approved");
    let (status, body) = api(
        &setup,
        reqwest::Method::GET,
        &format!("approvals/{first}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("approved")),
        "{body}"
    );

    // A POST that is not JSON (as a cross-site form would send it) is refused.
    let response = setup
        .client
        .post(format!(
            "{}/vcguard/api/v1/approvals/{first}/deny",
            setup.harness.base()
        ))
        .header("vmware-api-session-id", &approver)
        .header("content-type", "text/plain")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 415);

    // Deciding again is refused.
    let (status, body) = api(
        &setup,
        reqwest::Method::POST,
        &format!("approvals/{first}/deny"),
        Some(&approver),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "already_decided", "{body}");

    // Another request is denied.
    let second = pending(&setup, ADMIN_NAME).await;
    let (status, body) = api(
        &setup,
        reqwest::Method::POST,
        &format!("approvals/{second}/deny"),
        Some(&approver),
        Some(json!({"comment": "not during the freeze"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "denied");

    let (status, body) = api(
        &setup,
        reqwest::Method::GET,
        "approvals/apr-doesnotexist",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // The decisions are in the audit log, with the decider and the comment.
    let log = std::fs::read_to_string(&setup.harness.audit_path).expect("audit log");
    let approved = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["kind"] == "approval" && r["event"] == "approved" && r["id"] == first.as_str())
        .expect("an approved record");
    assert_eq!(approved["by"], APPROVER_NAME);
    assert_eq!(approved["comment"], "CAB approved");
    assert_nothing_under_vcguard_reached_vcenter(&setup);
}

#[tokio::test]
async fn tickets_are_claimed_listed_and_released() {
    let setup = setup().await;
    let admin = login(&setup, ADMIN_USER).await;
    let viewer = login(&setup, VIEWER).await;

    let (status, body) = api(
        &setup,
        reqwest::Method::POST,
        "ticket-claims",
        Some(&admin),
        Some(json!({"ticket": "not a ticket", "hosts": ["host-21"], "ttl_secs": 600})),
    )
    .await;
    assert_eq!(status, 422, "a ticket the pattern refuses: {body}");
    assert_eq!(body["error"], "ticket_rejected");

    let (status, body) = api(
        &setup,
        reqwest::Method::POST,
        "ticket-claims",
        Some(&admin),
        Some(json!({"ticket": "CHG0012345", "hosts": [], "ttl_secs": 600})),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = api(
        &setup,
        reqwest::Method::POST,
        "ticket-claims",
        Some(&admin),
        Some(json!({
            "ticket": "CHG0012345", "hosts": ["host-21"],
            "actions": ["EnterMaintenanceMode_Task"], "ttl_secs": 7200
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("claim id").to_owned();
    assert!(id.starts_with("clm-"), "{body}");
    assert_eq!(body["ticket_id"], "CHG0012345");
    assert_eq!(body["ticket_context"]["verified"], true, "{body}");
    assert_eq!(body["user"], ADMIN_NAME);

    let (status, body) = api(
        &setup,
        reqwest::Method::GET,
        "ticket-claims",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["claims"][0]["id"], id.as_str(), "{body}");
    let (_, body) = api(
        &setup,
        reqwest::Method::GET,
        "ticket-claims",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(
        body["claims"],
        json!([]),
        "another user's claims are not listed: {body}"
    );

    let (status, body) = api(
        &setup,
        reqwest::Method::DELETE,
        &format!("ticket-claims/{id}"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "not_yours");

    let (status, body) = api(
        &setup,
        reqwest::Method::DELETE,
        &format!("ticket-claims/{id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["released_at"].is_string(), "{body}");
    let (_, body) = api(
        &setup,
        reqwest::Method::GET,
        "ticket-claims",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(body["claims"], json!([]), "{body}");
    assert_nothing_under_vcguard_reached_vcenter(&setup);
}

/// Runs the `vcguard` binary with `args` against the harness's gateway as `user`.
fn cli(setup: &Setup, ca: &Path, user: &str, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vcguard"))
        .args(args)
        .args(["--gateway", &setup.harness.base(), "--user", user])
        .arg("--ca")
        .arg(ca)
        .env("VCGUARD_PASSWORD", ADMIN_PASSWORD)
        .env_remove("VCGUARD_GATEWAY")
        .env_remove("VCGUARD_USER")
        .output()
        .expect("run vcguard");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_approves_and_claims_through_the_api() {
    let setup = setup().await;
    let dir = tempfile::tempdir().expect("dir");
    let ca = dir.path().join("gateway.pem");
    std::fs::write(&ca, &setup.harness.gateway_cert.cert_pem).expect("ca");
    let id = pending(&setup, ADMIN_NAME).await;

    let (ok, out, err) =
        tokio::task::block_in_place(|| cli(&setup, &ca, APPROVER, &["approval", "list"]));
    assert!(ok, "approval list: {err}");
    assert!(out.starts_with("ID "), "a table: {out}");
    assert!(out.contains(&id), "{out}");

    let (ok, _, err) = tokio::task::block_in_place(|| {
        cli(
            &setup,
            &ca,
            ADMIN_USER,
            &["approval", "approve", &id, "--comment", "self"],
        )
    });
    assert!(!ok, "self-approval must fail");
    assert!(err.contains("cannot decide it"), "{err}");

    let (ok, out, err) = tokio::task::block_in_place(|| {
        cli(
            &setup,
            &ca,
            APPROVER,
            &["approval", "approve", &id, "--comment", "go ahead"],
        )
    });
    assert!(ok, "approve: {err}");
    assert!(out.starts_with(&format!("approved {id}")), "{out}");

    let (ok, out, err) = tokio::task::block_in_place(|| {
        cli(&setup, &ca, APPROVER, &["approval", "show", &id, "--json"])
    });
    assert!(ok, "show: {err}");
    let shown: Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(shown["state"], "approved");
    assert_eq!(shown["comment"], "go ahead");

    let (ok, out, err) = tokio::task::block_in_place(|| {
        cli(
            &setup,
            &ca,
            ADMIN_USER,
            &[
                "ticket",
                "claim",
                "CHG0012345",
                "--host",
                "host-21",
                "--action",
                "EnterMaintenanceMode_Task",
                "--ttl",
                "2h",
            ],
        )
    });
    assert!(ok, "claim: {err}");
    assert!(out.starts_with("claimed clm-"), "{out}");
    let claim = out
        .split_whitespace()
        .nth(1)
        .expect("id")
        .trim_end_matches(':')
        .to_owned();

    let (ok, out, err) =
        tokio::task::block_in_place(|| cli(&setup, &ca, ADMIN_USER, &["ticket", "claims"]));
    assert!(ok, "claims: {err}");
    assert!(out.contains(&claim) && out.contains("CHG0012345"), "{out}");

    let (ok, out, err) = tokio::task::block_in_place(|| {
        cli(&setup, &ca, ADMIN_USER, &["ticket", "release", &claim])
    });
    assert!(ok, "release: {err}");
    assert!(out.starts_with(&format!("released {claim}")), "{out}");

    // A wrong password fails plainly, and an untrusted gateway certificate is refused.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vcguard"))
        .args([
            "approval",
            "list",
            "--gateway",
            &setup.harness.base(),
            "--user",
            APPROVER,
        ])
        .env("VCGUARD_PASSWORD", "wrong")
        .arg("--ca")
        .arg(&ca)
        .output()
        .expect("run");
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("refused the user name or password"), "{err}");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vcguard"))
        .args([
            "approval",
            "list",
            "--gateway",
            &setup.harness.base(),
            "--user",
            APPROVER,
        ])
        .env("VCGUARD_PASSWORD", ADMIN_PASSWORD)
        .output()
        .expect("run");
    assert!(
        !output.status.success(),
        "the system roots do not trust the test certificate"
    );
    assert_nothing_under_vcguard_reached_vcenter(&setup);
}

/// An `application/x-www-form-urlencoded` body.
fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

/// A client that does not follow redirects (the console answers POSTs with 303).
fn no_redirects(setup: &Setup) -> reqwest::Client {
    setup
        .harness
        .client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test]
async fn the_console_says_why_no_button_is_offered_and_refuses_forged_forms() {
    let setup = setup().await;
    let client = no_redirects(&setup);
    let base = setup.harness.base();
    let admin = login(&setup, ADMIN_USER).await;
    let viewer = login(&setup, VIEWER).await;
    let id = pending(&setup, ADMIN_NAME).await;
    let page = |token: String| {
        let client = client.clone();
        let url = format!("{base}/vcguard/ui/approvals");
        async move {
            let response = client
                .get(url)
                .header("cookie", format!("vmware_soap_session={token}"))
                .send()
                .await
                .expect("page");
            let headers = response.headers().clone();
            (
                response.status().as_u16(),
                headers,
                response.text().await.expect("html"),
            )
        }
    };

    // Without a session: to the login page.
    let response = client
        .get(format!("{base}/vcguard/ui/approvals"))
        .send()
        .await
        .expect("page");
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/vcguard/ui/login");

    let (status, headers, html) = page(admin.clone()).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(html.contains(&id), "{html}");
    assert!(
        html.contains("Your own request: another member of change-approvers"),
        "{html}"
    );
    assert!(!html.contains(&admin), "the session is never in a page");
    assert!(
        !html.contains("<style") && !html.contains("<script>"),
        "no inline code"
    );

    let (_, _, html) = page(viewer.clone()).await;
    assert!(
        html.contains("You are not a member of change-approvers"),
        "{html}"
    );
    assert!(
        !html.contains("value=\"approve\""),
        "no approve button offered: {html}"
    );

    // A POST without the CSRF token, or from another origin, is refused.
    let decide = format!("{base}/vcguard/ui/approvals/{id}/decide");
    let approver = login(&setup, APPROVER).await;
    let response = client
        .post(&decide)
        .header("cookie", format!("vmware_soap_session={approver}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("verdict", "approve"), ("comment", "no token")]))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 403);
    assert!(response.text().await.expect("html").contains("CSRF"));
    let (_, _, html) = page(approver.clone()).await;
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token in the page")
        .to_owned();
    let response = client
        .post(&decide)
        .header("cookie", format!("vmware_soap_session={approver}"))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("verdict", "approve"),
            ("comment", "x"),
            ("csrf", &csrf),
        ]))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 403, "another origin is refused");
    let response = client
        .post(&decide)
        .header("cookie", format!("vmware_soap_session={viewer}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("verdict", "approve"),
            ("comment", "x"),
            ("csrf", &csrf),
        ]))
        .send()
        .await
        .expect("post");
    assert_eq!(
        response.status(),
        403,
        "the token belongs to another session"
    );

    // With the right token and session it is approved.
    let response = client
        .post(&decide)
        .header("cookie", format!("vmware_soap_session={approver}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("verdict", "approve"),
            ("comment", "fine"),
            ("csrf", &csrf),
        ]))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 303);
    let (status, body) = api(
        &setup,
        reqwest::Method::GET,
        &format!("approvals/{id}"),
        Some(&approver),
        None,
    )
    .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("approved")),
        "{body}"
    );

    // The assets are the gateway's own.
    let css = client
        .get(format!("{base}/vcguard/ui/static/app.css"))
        .send()
        .await
        .expect("css");
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_nothing_under_vcguard_reached_vcenter(&setup);
}

#[tokio::test]
async fn a_refused_call_is_approved_over_the_api_and_the_retry_passes_once() {
    use common::console::{lockdown, refused_lockdown_request};
    let setup = setup().await;
    let admin = login(&setup, ADMIN_USER).await;
    let approver = login(&setup, APPROVER).await;

    let started = std::time::Instant::now();
    let id = refused_lockdown_request(&setup.harness, &setup.client, &admin).await;
    let refused = started.elapsed();
    let (status, body) = api(
        &setup,
        reqwest::Method::POST,
        &format!("approvals/{id}/approve"),
        Some(&approver),
        Some(json!({"comment": "round trip"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let approved = started.elapsed();
    let (status, text) = lockdown(
        &setup.harness,
        &setup.client,
        &admin,
        "ham-21",
        "lockdownDisabled",
    )
    .await;
    assert!(
        (200..300).contains(&status),
        "the retry passes: {status} {text}"
    );
    let passed = started.elapsed();
    assert_eq!(
        setup
            .harness
            .sim()
            .simulator
            .lockdown_mode("ham-21")
            .as_deref(),
        Some("lockdownDisabled")
    );
    // Measured, not asserted: the round trip of the approval flow over the API.
    println!(
        "approval round trip: refused with the request {:?}, approved over the API after {:?}, retry passed after {:?}",
        refused, approved, passed
    );

    let (status, text) = lockdown(
        &setup.harness,
        &setup.client,
        &admin,
        "ham-21",
        "lockdownDisabled",
    )
    .await;
    assert_eq!(status, 500, "a second retry asks again: {text}");
    let (_, body) = api(
        &setup,
        reqwest::Method::GET,
        &format!("approvals/{id}"),
        Some(&approver),
        None,
    )
    .await;
    assert_eq!(body["state"], "used", "{body}");
    assert_nothing_under_vcguard_reached_vcenter(&setup);
}
