//! The store's contract, run against SQLite in a temporary directory and, when it is reachable,
//! against PostgreSQL on 127.0.0.1:5432 (a fresh database per run).

use std::time::{Duration, SystemTime};

use super::*;

fn key(requester: &str) -> ApprovalKey {
    ApprovalKey {
        requester: requester.into(),
        action: "ChangeLockdownMode".into(),
        target: "HostAccessManager:ham-21".into(),
        body_hash: "ab".repeat(32),
    }
}

fn new_approval(requester: &str) -> NewApproval {
    NewApproval {
        key: key(requester),
        group: "change-approvers".into(),
        policy: "lockdown-disable-needs-approval".into(),
        reason: Some("two people".into()),
        summary: "ChangeLockdownMode lockdownDisabled on host-21".into(),
    }
}

fn approver() -> Decider {
    Decider {
        user: "approver@vsphere.local".into(),
        groups: vec!["change-approvers".into()],
    }
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Every contract check, against one store.
async fn contract(store: StateStore) {
    let store = store.with_approval_settings(ApprovalSettings {
        window: Duration::from_secs(900),
        uses: 1,
        pending_ttl: Duration::from_secs(3600),
    });
    store.check().await.expect("store answers");
    let now = t0();

    // Requests are idempotent per key while pending.
    let first = store
        .request_approval(new_approval("alice@vsphere.local"), now)
        .await
        .expect("request");
    assert!(
        first.id.starts_with("apr-") && first.id.len() == 16,
        "{}",
        first.id
    );
    assert_eq!(first.state, ApprovalState::Pending);
    let again = store
        .request_approval(
            new_approval("alice@vsphere.local"),
            now + Duration::from_secs(5),
        )
        .await
        .expect("request again");
    assert_eq!(again.id, first.id);
    assert_eq!(
        store.use_approval(&first.key, now).await.expect("use"),
        None
    );

    // Two-person rule and membership.
    let own = Decider {
        user: "VSPHERE.LOCAL\\Alice".into(),
        groups: vec!["change-approvers".into()],
    };
    let err = store
        .decide(&first.id, &own, Verdict::Approve, "", now)
        .await
        .expect_err("self approval");
    assert!(matches!(err, ApprovalError::SelfApproval { .. }), "{err}");
    let outsider = Decider {
        user: "bob@vsphere.local".into(),
        groups: vec!["platform-team".into()],
    };
    let err = store
        .decide(&first.id, &outsider, Verdict::Approve, "", now)
        .await
        .expect_err("non-member");
    assert!(matches!(err, ApprovalError::NotMember { .. }), "{err}");
    let err = store
        .decide("apr-nosuchthing", &approver(), Verdict::Approve, "", now)
        .await
        .expect_err("unknown");
    assert!(matches!(err, ApprovalError::NotFound { .. }), "{err}");

    // Approved: one use within the window, for exactly this key.
    let approved = store
        .decide(&first.id, &approver(), Verdict::Approve, " change 42 ", now)
        .await
        .expect("approve");
    assert_eq!(approved.state, ApprovalState::Approved);
    assert_eq!(approved.comment.as_deref(), Some("change 42"));
    assert_eq!(approved.uses_left, 1);
    let err = store
        .decide(&first.id, &approver(), Verdict::Deny, "", now)
        .await
        .expect_err("decided twice");
    assert!(matches!(err, ApprovalError::AlreadyDecided { .. }), "{err}");
    let mut other_body = first.key.clone();
    other_body.body_hash = "cd".repeat(32);
    assert_eq!(
        store.use_approval(&other_body, now).await.expect("use"),
        None
    );
    let used = store
        .use_approval(&first.key, now + Duration::from_secs(10))
        .await
        .expect("use")
        .expect("usable");
    assert_eq!(used.id, first.id);
    assert_eq!(used.state, ApprovalState::Used);
    assert_eq!(used.uses_left, 0);
    assert_eq!(
        store.use_approval(&first.key, now).await.expect("use"),
        None
    );
    let err = store
        .decide(&first.id, &approver(), Verdict::Approve, "", now)
        .await
        .expect_err("used");
    assert!(matches!(err, ApprovalError::Used { .. }), "{err}");

    // Denied: never usable.
    let denied = store
        .request_approval(new_approval("carol@vsphere.local"), now)
        .await
        .expect("request");
    let denied = store
        .decide(&denied.id, &approver(), Verdict::Deny, "no", now)
        .await
        .expect("deny");
    assert_eq!(denied.state, ApprovalState::Denied);
    assert_eq!(
        store.use_approval(&denied.key, now).await.expect("use"),
        None
    );

    // Expiry: pending past the TTL, approved past the window.
    let stale = store
        .request_approval(new_approval("dave@vsphere.local"), now)
        .await
        .expect("request");
    let late = now + Duration::from_secs(3601);
    let err = store
        .decide(&stale.id, &approver(), Verdict::Approve, "", late)
        .await
        .expect_err("expired");
    assert!(matches!(err, ApprovalError::Expired { .. }), "{err}");
    let window = store
        .request_approval(new_approval("erin@vsphere.local"), now)
        .await
        .expect("request");
    store
        .decide(&window.id, &approver(), Verdict::Approve, "", now)
        .await
        .expect("approve");
    assert_eq!(
        store
            .use_approval(&window.key, now + Duration::from_secs(901))
            .await
            .expect("use"),
        None,
        "the window is over"
    );
    let listed = store
        .approvals(
            &ApprovalFilter {
                state: Some(ApprovalState::Expired),
                ..ApprovalFilter::default()
            },
            late,
        )
        .await
        .expect("list");
    let ids: Vec<&str> = listed.iter().map(|a| a.id.as_str()).collect();
    assert!(
        ids.contains(&stale.id.as_str()) && ids.contains(&window.id.as_str()),
        "{ids:?}"
    );
    let expired = store.expire(late).await.expect("expire");
    let mut ids: Vec<String> = expired.into_iter().map(|a| a.id).collect();
    ids.sort();
    let mut want = vec![stale.id.clone(), window.id.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert!(
        store.expire(late).await.expect("expire").is_empty(),
        "expired once"
    );
    // A new request for an expired key is a new one.
    let fresh = store
        .request_approval(new_approval("dave@vsphere.local"), late)
        .await
        .expect("request");
    assert_ne!(fresh.id, stale.id);

    // Listing by requester and state.
    let alice = store
        .approvals(
            &ApprovalFilter {
                requester: Some("alice@vsphere.local".into()),
                ..ApprovalFilter::default()
            },
            now,
        )
        .await
        .expect("list");
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0].state, ApprovalState::Used);

    // Claims.
    let claim = store
        .claim(
            NewClaim {
                user: "alice@vsphere.local".into(),
                ticket_id: "CHG0012345".into(),
                ticket_kind: "pattern".into(),
                ticket_context: serde_json::json!({"id": "CHG0012345", "kind": "pattern"}),
                hosts: vec!["host-21".into()],
                actions: vec![],
                until: now + Duration::from_secs(7200),
            },
            now,
        )
        .await
        .expect("claim");
    assert!(claim.id.starts_with("clm-"));
    let hosts = |h: &str| vec![h.to_owned()];
    let found = store
        .covering_claim(
            "alice@vsphere.local",
            "EnterMaintenanceMode_Task",
            &hosts("host-21"),
            now,
        )
        .await
        .expect("cover");
    assert_eq!(found.map(|c| c.id), Some(claim.id.clone()));
    for (user, host, at) in [
        ("alice@vsphere.local", "host-22", now),
        ("bob@vsphere.local", "host-21", now),
        (
            "alice@vsphere.local",
            "host-21",
            now + Duration::from_secs(7200),
        ),
    ] {
        assert_eq!(
            store
                .covering_claim(user, "EnterMaintenanceMode_Task", &hosts(host), at)
                .await
                .expect("cover"),
            None,
            "{user} {host}"
        );
    }
    let scoped = store
        .claim(
            NewClaim {
                user: "bob@vsphere.local".into(),
                ticket_id: "CHG0000001".into(),
                ticket_kind: "pattern".into(),
                ticket_context: serde_json::json!({}),
                hosts: vec!["host-22".into()],
                actions: vec!["EnterMaintenanceMode_Task".into()],
                until: now + Duration::from_secs(60),
            },
            now,
        )
        .await
        .expect("claim");
    assert!(
        store
            .covering_claim(
                "bob@vsphere.local",
                "ChangeLockdownMode",
                &hosts("host-22"),
                now
            )
            .await
            .expect("cover")
            .is_none(),
        "another action"
    );
    assert_eq!(
        store
            .claims_of("bob@vsphere.local", now)
            .await
            .expect("list")
            .len(),
        1
    );
    let err = store
        .release(&scoped.id, "alice@vsphere.local", now)
        .await
        .expect_err("not yours");
    assert!(matches!(err, ClaimError::NotYours { .. }), "{err}");
    let released = store
        .release(&scoped.id, "bob@vsphere.local", now)
        .await
        .expect("release");
    assert!(released.released_at.is_some());
    assert!(
        store
            .claims_of("bob@vsphere.local", now)
            .await
            .expect("list")
            .is_empty()
    );
    let err = store
        .release("clm-none", "bob@vsphere.local", now)
        .await
        .expect_err("unknown");
    assert!(matches!(err, ClaimError::NotFound { .. }), "{err}");
}

/// Two handles on one store race for the last use of an approval: exactly one wins.
async fn race(a: StateStore, b: StateStore) {
    let now = t0();
    for round in 0..10 {
        let mut new = new_approval("racer@vsphere.local");
        new.key.body_hash = format!("{round:064}");
        let request = a.request_approval(new, now).await.expect("request");
        b.decide(&request.id, &approver(), Verdict::Approve, "", now)
            .await
            .expect("approve");
        let key = request.key.clone();
        let (left, right) = tokio::join!(a.use_approval(&key, now), b.use_approval(&key, now));
        let wins = [left.expect("use a"), right.expect("use b")]
            .into_iter()
            .flatten()
            .count();
        assert_eq!(
            wins, 1,
            "round {round}: exactly one replica uses a one-use approval"
        );
    }
}

#[tokio::test]
async fn sqlite_store_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StateConfig::sqlite(dir.path().join("state.db"));
    let store = StateStore::open(&config).await.expect("open");
    contract(store.clone()).await;
    store.close().await;
    // Reopening keeps the data and does not re-run the migrations.
    let store = StateStore::open(&config).await.expect("reopen");
    assert_eq!(
        store
            .approvals(&ApprovalFilter::default(), t0())
            .await
            .expect("list")
            .len(),
        5
    );
}

#[tokio::test]
async fn two_sqlite_handles_cannot_both_use_a_one_use_approval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StateConfig::sqlite(dir.path().join("state.db"));
    let a = StateStore::open(&config).await.expect("open a");
    let b = StateStore::open(&config).await.expect("open b");
    race(a, b).await;
}

#[tokio::test]
async fn an_unreachable_postgres_is_a_clear_connect_error() {
    let mut config = StateConfig::postgres("postgres://vcguard:secret@127.0.0.1:1/state");
    config.connect_timeout = Duration::from_secs(2);
    let err = StateStore::open(&config)
        .await
        .expect_err("nothing listens on port 1");
    let text = err.to_string();
    assert!(text.contains("cannot open the state store"), "{text}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("secret"), "no password in messages: {text}");
}

#[test]
fn user_names_compare_across_vcenter_spellings() {
    assert!(same_user(
        "VSPHERE.LOCAL\\Administrator",
        "administrator@vsphere.local"
    ));
    assert!(!same_user(
        "approver@vsphere.local",
        "administrator@vsphere.local"
    ));
    assert_eq!(
        redact_url("postgres://u:pw@h:5432/db"),
        "postgres://u:***@h:5432/db"
    );
}

#[tokio::test]
async fn postgres_store_keeps_the_contract() {
    let Some(url) = crate::state::testing::fresh_postgres_database().await else {
        return;
    };
    let store = StateStore::open(&StateConfig::postgres(&url))
        .await
        .expect("open postgres");
    contract(store).await;
}

#[tokio::test]
async fn two_postgres_handles_cannot_both_use_a_one_use_approval() {
    let Some(url) = crate::state::testing::fresh_postgres_database().await else {
        return;
    };
    let a = StateStore::open(&StateConfig::postgres(&url))
        .await
        .expect("open a");
    let b = StateStore::open(&StateConfig::postgres(&url))
        .await
        .expect("open b");
    race(a, b).await;
}
