//! End-to-end: who is calling (learned from sessions) and which change ticket authorises a
//! guarded call, as the policies see them.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{ADMIN_PASSWORD, ADMIN_USER, Harness, Options, shipped_policies};
use serde_json::Value;
use vcguard::ticket::{
    KeyKind, KeySource, MintRequest, SignedConfig, TicketConfig, generate_signing_key, mint,
};

const ISSUER: &str = "https://change.example.test";
const AUDIENCE: &str = "vcguard";

struct Keys {
    _dir: tempfile::TempDir,
    signing: std::path::PathBuf,
    other: std::path::PathBuf,
    config: TicketConfig,
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().expect("tempdir");
    let pair = generate_signing_key(KeyKind::Ed25519).expect("key");
    let other = generate_signing_key(KeyKind::P256).expect("other key");
    let signing = dir.path().join("signing.pem");
    let public = dir.path().join("public.pem");
    let other_path = dir.path().join("other.pem");
    std::fs::write(&signing, &pair.private_pem).expect("write");
    std::fs::write(&public, &pair.public_pem).expect("write");
    std::fs::write(&other_path, &other.private_pem).expect("write");
    let config = TicketConfig {
        signed: Some(SignedConfig {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            keys: vec![KeySource::PemFile(public)],
            leeway_secs: 0,
        }),
        ..TicketConfig::default()
    };
    Keys {
        _dir: dir,
        signing,
        other: other_path,
        config,
    }
}

fn ticket(key: &Path, host: &str, ttl: Duration, not_before: Option<SystemTime>) -> String {
    mint(
        key,
        MintRequest {
            id: "CHG0012345".into(),
            hosts: vec![host.into()],
            actions: vec!["EnterMaintenanceMode_Task".into()],
            ttl,
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            not_before,
        },
    )
    .expect("mint")
}

async fn enter_maintenance(
    harness: &Harness,
    token: &str,
    host: &str,
    ticket: Option<&str>,
) -> (u16, String) {
    let mut request = harness
        .client()
        .post(format!(
            "{}/HostSystem/{host}/EnterMaintenanceMode_Task",
            harness.vim()
        ))
        .header("vmware-api-session-id", token)
        .json(&serde_json::json!({"timeout": 0}));
    if let Some(ticket) = ticket {
        request = request.header("X-Change-Ticket", ticket);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

fn faultstring(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["faultstring"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}

#[tokio::test]
async fn tickets_authorise_maintenance_only_when_valid_and_in_scope() {
    let keys = keys();
    let harness = Harness::start_with(Options {
        tickets: keys.config.clone(),
        ..Options::default()
    })
    .await;
    let client = harness.client();
    let token = harness.login(&client).await;
    let hour = Duration::from_secs(3600);
    let past = SystemTime::now() - 2 * hour;

    let refusals = [
        ("no ticket", "host-21", None, "maintenance-needs-ticket"),
        (
            "malformed plain id",
            "host-21",
            Some("CHG12".to_owned()),
            "does not match the ticket pattern",
        ),
        (
            "signed for another host",
            "host-22",
            Some(ticket(&keys.signing, "host-21", hour, None)),
            "ticket CHG0012345 does not cover host-22",
        ),
        (
            "expired",
            "host-21",
            Some(ticket(&keys.signing, "host-21", hour, Some(past))),
            "expired at",
        ),
        (
            "not yet valid",
            "host-21",
            Some(ticket(
                &keys.signing,
                "host-21",
                hour,
                Some(SystemTime::now() + hour),
            )),
            "not valid before",
        ),
        (
            "forged: signed by another key",
            "host-21",
            Some(ticket(&keys.other, "host-21", hour, None)),
            "rejected",
        ),
        (
            "alg none",
            "host-21",
            Some("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJ0aWNrZXQiOiJDSEcwMDEyMzQ1In0.".to_owned()),
            "none",
        ),
    ];
    for (name, host, ticket, needle) in &refusals {
        let (status, body) = enter_maintenance(&harness, &token, host, ticket.as_deref()).await;
        let text = faultstring(&body);
        assert_eq!(status, 500, "{name}: {text}");
        assert!(
            text.contains("maintenance-needs-ticket") && text.contains(needle),
            "{name}: {text}"
        );
        if let Some(raw) = ticket {
            assert!(
                !text.contains(raw.as_str()) || raw.len() < 16,
                "{name}: the raw ticket is echoed"
            );
        }
    }
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-21"),
        Some(false)
    );
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-22"),
        Some(false)
    );

    let signed = ticket(&keys.signing, "host-21", hour, None);
    let (status, body) = enter_maintenance(&harness, &token, "host-21", Some(&signed)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-21"),
        Some(true)
    );

    let (status, body) = enter_maintenance(&harness, &token, "host-23", Some("CHG0012345")).await;
    assert_eq!(status, 200, "a plain id covers any host: {body}");
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-23"),
        Some(true)
    );

    let leaked = harness.sim().simulator.journal().into_iter().any(|seen| {
        seen.headers.contains_key("x-change-ticket")
            || String::from_utf8_lossy(&seen.body).contains(&signed)
    });
    assert!(!leaked, "the ticket header never reaches vCenter");
}

#[tokio::test]
async fn soap_clients_send_tickets_in_the_same_header() {
    let harness = Harness::start().await;
    let client = harness.client();
    let login = client
        .post(format!("{}/sdk", harness.base()))
        .body(common::soap_login_envelope(ADMIN_USER, ADMIN_PASSWORD))
        .send()
        .await
        .expect("login");
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let envelope = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><EnterMaintenanceMode_Task xmlns="urn:vim25"><_this type="HostSystem">host-22</_this><timeout>0</timeout></EnterMaintenanceMode_Task></soapenv:Body></soapenv:Envelope>"#;
    let response = client
        .post(format!("{}/sdk", harness.base()))
        .header("Cookie", &cookie)
        .header("X-Change-Ticket", "CHG0012345")
        .body(envelope)
        .send()
        .await
        .expect("soap call");
    assert_eq!(response.status(), 200);
    assert!(response.text().await.expect("body").contains("task-"));
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-22"),
        Some(true)
    );
}

/// Logs in through the gateway as `ops@vsphere.local` (a user the shipped entities put in no
/// group) and returns the session token.
async fn login_ops(harness: &Harness, client: &reqwest::Client) -> String {
    let login = client
        .post(format!(
            "{}/SessionManager/SessionManager/Login",
            harness.vim()
        ))
        .json(&serde_json::json!({"userName": "ops@vsphere.local", "password": "Ops1!"}))
        .send()
        .await
        .expect("login");
    login.headers()["vmware-api-session-id"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

fn policies_for_platform_team() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(shipped_policies()).expect("read") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file()
            && entry.file_name() != "baseline-permit.cedar"
        {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
        }
    }
    std::fs::write(
        dir.path().join("platform-team.cedar"),
        "@id(\"platform-team-only\")\n@reason(\"only the platform team changes hosts\")\npermit (principal in VSphere::Group::\"platform-team\", action, resource);\n",
    )
    .expect("write");
    dir
}

async fn lockdown_normal(harness: &Harness, token: Option<&str>, ham: &str) -> (u16, String) {
    let mut request = harness
        .client()
        .post(format!(
            "{}/HostAccessManager/{ham}/ChangeLockdownMode",
            harness.vim()
        ))
        .json(&serde_json::json!({"mode": "lockdownNormal"}));
    if let Some(token) = token {
        request = request.header("vmware-api-session-id", token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, faultstring(&response.text().await.expect("body")))
}

#[tokio::test]
async fn a_group_permit_follows_the_logged_in_user() {
    let policies = policies_for_platform_team();
    let mut sim = vcsim_lite::SimConfig::default();
    sim.users.push(("ops@vsphere.local".into(), "Ops1!".into()));
    let harness = Harness::start_with(Options {
        sim,
        policies: policies.path().to_owned(),
        ..Options::default()
    })
    .await;
    let client = harness.client();

    let admin = harness.login(&client).await;
    let (status, text) = lockdown_normal(&harness, Some(&admin), "ham-21").await;
    assert_eq!(status, 204, "the administrator is in platform-team: {text}");
    let lookups = |harness: &Harness| {
        harness
            .sim()
            .simulator
            .journal()
            .iter()
            .filter(|r| r.path.ends_with("/currentSession"))
            .count()
    };
    assert_eq!(
        lookups(&harness),
        0,
        "the user was learned from the Login answer, vCenter was not asked"
    );

    let ops = login_ops(&harness, &client).await;
    let (status, text) = lockdown_normal(&harness, Some(&ops), "ham-22").await;
    assert_eq!(status, 500);
    assert!(
        text.contains("no policy permits ChangeLockdownMode"),
        "{text}"
    );

    let (status, text) = lockdown_normal(&harness, None, "ham-22").await;
    assert_eq!(status, 500, "unauthenticated callers are refused: {text}");

    // A session the gateway never saw log in (another replica, a restart): vCenter is asked.
    let direct = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client")
        .post(format!(
            "{}/sdk/vim25/8.0.3.0/SessionManager/SessionManager/Login",
            harness.sim().base_url()
        ))
        .json(&serde_json::json!({"userName": ADMIN_USER, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("direct login");
    let unseen = direct.headers()["vmware-api-session-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let (status, text) = lockdown_normal(&harness, Some(&unseen), "ham-23").await;
    assert_eq!(status, 204, "identity found by asking vCenter: {text}");

    // After Logout the token is nobody's.
    let logout = client
        .post(format!(
            "{}/SessionManager/SessionManager/Logout",
            harness.vim()
        ))
        .header("vmware-api-session-id", &admin)
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 204);
    let (status, text) = lockdown_normal(&harness, Some(&admin), "ham-21").await;
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("no policy permits"), "{text}");
}

/// Signs `claims` as an EdDSA identity token with the PKCS#8 key in `private_pem`.
fn identity_token(private_pem: &str, claims: &Value) -> String {
    use base64::Engine as _;
    let body: String = private_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("pem body");
    let key = jsonwebtoken::EncodingKey::from_ed_der(&der);
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        claims,
        &key,
    )
    .expect("sign")
}

#[tokio::test]
async fn an_identity_token_adds_groups_to_the_session_user() {
    let policies = policies_for_platform_team();
    let keys_dir = tempfile::tempdir().expect("tempdir");
    let pair = generate_signing_key(KeyKind::Ed25519).expect("key");
    let public = keys_dir.path().join("sso.pub.pem");
    std::fs::write(&public, &pair.public_pem).expect("write");
    let mut sim = vcsim_lite::SimConfig::default();
    sim.users.push(("ops@vsphere.local".into(), "Ops1!".into()));
    let harness = Harness::start_with(Options {
        sim,
        policies: policies.path().to_owned(),
        identity_token: Some(vcguard::identity::IdentityTokenConfig {
            header: "X-Identity-Token".into(),
            issuer: "https://sso.example.test".into(),
            audience: "vcguard".into(),
            keys: vec![KeySource::PemFile(public)],
            user_claim: "sub".into(),
            groups_claim: "groups".into(),
            leeway_secs: 0,
        }),
        ..Options::default()
    })
    .await;
    let client = harness.client();
    let ops = login_ops(&harness, &client).await;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = |sub: &str, exp: u64| {
        serde_json::json!({
            "iss": "https://sso.example.test", "aud": "vcguard", "sub": sub,
            "exp": exp, "groups": ["platform-team"],
        })
    };
    let lockdown = |token: Option<String>| {
        let mut request = client
            .post(format!(
                "{}/HostAccessManager/ham-21/ChangeLockdownMode",
                harness.vim()
            ))
            .header("vmware-api-session-id", &ops)
            .json(&serde_json::json!({"mode": "lockdownNormal"}));
        if let Some(token) = token {
            request = request.header("X-Identity-Token", token);
        }
        async move {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            (status, faultstring(&response.text().await.expect("body")))
        }
    };

    let (status, text) = lockdown(None).await;
    assert_eq!(status, 500, "ops is in no group without a token: {text}");
    assert!(
        text.contains("no policy permits ChangeLockdownMode"),
        "{text}"
    );

    let valid = identity_token(&pair.private_pem, &claims("ops@vsphere.local", now + 600));
    let (status, text) = lockdown(Some(valid)).await;
    assert_eq!(status, 204, "the token puts ops in platform-team: {text}");

    let alice = identity_token(&pair.private_pem, &claims("alice@vsphere.local", now + 600));
    let (status, text) = lockdown(Some(alice)).await;
    assert_eq!(status, 500);
    assert!(
        text.contains(
            "identity token rejected: the token is for 'alice@vsphere.local', but the session belongs to 'VSPHERE.LOCAL\\ops'"
        ),
        "{text}"
    );

    let expired = identity_token(&pair.private_pem, &claims("ops@vsphere.local", now - 60));
    let (status, text) = lockdown(Some(expired)).await;
    assert_eq!(status, 500);
    assert!(
        text.contains("identity token rejected: identity token expired at"),
        "{text}"
    );

    // The audit log names the groups the token added, never the token.
    let log = std::fs::read_to_string(&harness.audit_path).expect("audit log");
    let allowed: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "decision" && r["decision"] == "allow")
        .collect();
    assert_eq!(allowed.len(), 1, "{log}");
    assert_eq!(allowed[0]["groups"], serde_json::json!(["platform-team"]));
    assert_eq!(allowed[0]["principal"], "VSPHERE.LOCAL\\ops");
    assert!(!log.contains("eyJ"), "no JWT in the audit log");
    assert!(
        harness
            .sim()
            .simulator
            .journal()
            .iter()
            .all(|r| !r.headers.contains_key("x-identity-token")),
        "the identity token is not forwarded to vCenter"
    );
}
