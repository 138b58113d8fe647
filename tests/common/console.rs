//! Shared setup of the console and API tests: the demo's approver and a non-member user in the
//! simulator, and `change-approvers` membership in the policies' entities.

use std::path::Path;
use std::time::SystemTime;

use serde_json::{Value, json};
use vcguard::state::{ApprovalKey, NewApproval};

use super::{ADMIN_PASSWORD, Harness, Options, shipped_policies};

/// The approver's login.
pub const APPROVER: &str = "approver@vsphere.local";
/// The approver's vCenter user name.
pub const APPROVER_NAME: &str = "VSPHERE.LOCAL\\approver";
/// A user in no approver group.
pub const VIEWER: &str = "viewer@vsphere.local";
/// The administrator's vCenter user name.
pub const ADMIN_NAME: &str = "VSPHERE.LOCAL\\Administrator";
/// The approver group.
pub const GROUP: &str = "change-approvers";

/// Harness options: the shipped policies (copied into `dir`) with the approver in
/// `change-approvers`, and the approver and viewer as simulator users.
pub fn console_options(dir: &Path) -> Options {
    policies_with_approvers(dir);
    let mut options = Options {
        policies: dir.to_path_buf(),
        ..Options::default()
    };
    for user in [APPROVER, VIEWER] {
        if !options.sim.users.iter().any(|(u, _)| u == user) {
            options
                .sim
                .users
                .push((user.to_owned(), ADMIN_PASSWORD.to_owned()));
        }
    }
    options
}

/// Copies the shipped policies into `dir` and puts `VSPHERE.LOCAL\approver` in
/// `change-approvers` (unless the shipped entities already do).
pub fn policies_with_approvers(dir: &Path) {
    copy_dir(&shipped_policies(), dir);
    let path = dir.join("entities.json");
    let mut entities: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("entities")).expect("json");
    let has = |entities: &[Value], ty: &str, id: &str| {
        entities
            .iter()
            .any(|e| e["uid"]["type"] == format!("VSphere::{ty}") && e["uid"]["id"] == id)
    };
    if !has(&entities, "Group", GROUP) {
        entities.push(
            json!({"uid": {"type": "VSphere::Group", "id": GROUP}, "attrs": {}, "parents": []}),
        );
    }
    if !has(&entities, "User", APPROVER_NAME) {
        entities.push(json!({
            "uid": {"type": "VSphere::User", "id": APPROVER_NAME}, "attrs": {},
            "parents": [{"type": "VSphere::Group", "id": GROUP}]
        }));
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&entities).expect("encode")).expect("write");
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read dir") {
        let entry = entry.expect("entry");
        let to = dst.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), to).expect("copy");
        }
    }
}

/// Files a pending approval request of `requester` for a lockdown change directly in the
/// gateway's store (each call a different body, so a new request).
pub async fn file_pending(harness: &Harness, requester: &str) -> String {
    let approval = harness
        .control
        .request_approval(
            NewApproval {
                key: ApprovalKey {
                    requester: requester.to_owned(),
                    action: "ChangeLockdownMode".into(),
                    target: "HostAccessManager:ham-21".into(),
                    body_hash: uuid::Uuid::new_v4().simple().to_string(),
                },
                group: GROUP.into(),
                policy: "lockdown-disable-needs-approval".into(),
                reason: Some("disabling lockdown needs a second person".into()),
                summary: "ChangeLockdownMode lockdownDisabled on ham-21".into(),
            },
            "test-request",
            SystemTime::now(),
        )
        .await
        .expect("approval request filed");
    approval.id
}

/// `ChangeLockdownMode` to `mode` on `ham` over VI/JSON with session `token`: the status and
/// the fault text (or the body).
pub async fn lockdown(
    harness: &Harness,
    client: &reqwest::Client,
    token: &str,
    ham: &str,
    mode: &str,
) -> (u16, String) {
    let response = client
        .post(format!(
            "{}/HostAccessManager/{ham}/ChangeLockdownMode",
            harness.vim()
        ))
        .header("vmware-api-session-id", token)
        .json(&json!({"_typeName": "ChangeLockdownModeRequestType", "mode": mode}))
        .send()
        .await
        .expect("lockdown call");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    let text = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["faultstring"].as_str().map(str::to_owned))
        .unwrap_or(body);
    (status, text)
}

/// The approval request id (`apr-…`) a refusal names.
pub fn approval_id(text: &str) -> Option<String> {
    let start = text.find("apr-")?;
    Some(
        text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect(),
    )
}

/// The administrator disables lockdown on `ham-21` and is refused with a pending approval
/// request (policy `lockdown-disable-needs-approval`); returns its id.
pub async fn refused_lockdown_request(
    harness: &Harness,
    client: &reqwest::Client,
    token: &str,
) -> String {
    let (status, text) = lockdown(harness, client, token, "ham-21", "lockdownDisabled").await;
    assert_eq!(status, 500, "disabling lockdown needs an approval: {text}");
    approval_id(&text).unwrap_or_else(|| panic!("the refusal names the approval request: {text}"))
}
