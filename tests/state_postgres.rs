//! End-to-end: two gateway replicas sharing one PostgreSQL state store. Needs PostgreSQL on
//! 127.0.0.1:5432 (trust authentication, database `test`); without it the tests print
//! `SKIPPED: …` and pass, unless `VCGUARD_REQUIRE_POSTGRES=1` makes them fail.
//!
//! Each replica has its own simulator behind it (the harness starts one per gateway); the user,
//! the call and so the approval key are the same on both.

mod common;

use std::time::SystemTime;

use common::{Harness, Options, shipped_policies};
use vcguard::approval::ChangeControl;
use vcguard::gateway::StateSettings;
use vcguard::policy::PolicySet;
use vcguard::state::{ApprovalState, Decider, StateConfig, Verdict};

async fn replicas() -> Option<(Harness, Harness)> {
    let url = vcguard::state::testing::fresh_postgres_database().await?;
    let settings = StateSettings {
        config: StateConfig::postgres(&url),
        ..StateSettings::sqlite("unused")
    };
    let options = Options {
        state: Some(settings),
        ..Options::default()
    };
    let a = Harness::start_with(options.clone()).await;
    let b = Harness::start_with(options).await;
    Some((a, b))
}

fn approver() -> Decider {
    let policies = PolicySet::load(&shipped_policies()).expect("policies");
    let user = "VSPHERE.LOCAL\\approver";
    Decider {
        user: user.into(),
        groups: ChangeControl::groups_of(user, &[], &policies),
    }
}

async fn disable_lockdown(
    harness: &Harness,
    client: &reqwest::Client,
    token: &str,
) -> (u16, String) {
    common::console::lockdown(harness, client, token, "ham-21", "lockdownDisabled").await
}

fn approval_id(text: &str) -> String {
    common::console::approval_id(text).expect("an approval id")
}

#[tokio::test]
async fn a_request_pending_on_one_replica_is_approved_through_the_other_and_used_once() {
    let Some((a, b)) = replicas().await else {
        return;
    };
    let (client_a, client_b) = (a.client(), b.client());
    let (token_a, token_b) = (a.login(&client_a).await, b.login(&client_b).await);

    let (status, text) = disable_lockdown(&a, &client_a, &token_a).await;
    assert_eq!(status, 500, "{text}");
    let id = approval_id(&text);
    // Replica B sees the same pending request for the same call.
    let (status, text) = disable_lockdown(&b, &client_b, &token_b).await;
    assert_eq!(status, 500, "{text}");
    assert_eq!(
        approval_id(&text),
        id,
        "one request for one call, on every replica"
    );

    b.control
        .decide_approval(&id, &approver(), Verdict::Approve, "", SystemTime::now())
        .await
        .expect("approved through replica B");
    let (status, text) = disable_lockdown(&a, &client_a, &token_a).await;
    assert_eq!(status, 204, "retried through A: {text}");
    let (status, _) = disable_lockdown(&b, &client_b, &token_b).await;
    assert_eq!(status, 500, "used up: B refuses too");
    let store = a.control.store().await.expect("store");
    assert_eq!(
        store
            .approval(&id)
            .await
            .expect("read")
            .expect("stored")
            .state,
        ApprovalState::Used
    );
}

#[tokio::test]
async fn concurrent_retries_on_two_replicas_use_a_one_use_approval_exactly_once() {
    let Some((a, b)) = replicas().await else {
        return;
    };
    let (client_a, client_b) = (a.client(), b.client());
    let (token_a, token_b) = (a.login(&client_a).await, b.login(&client_b).await);
    for round in 0..5 {
        let (status, text) = disable_lockdown(&a, &client_a, &token_a).await;
        assert_eq!(status, 500, "round {round}: {text}");
        let id = approval_id(&text);
        a.control
            .decide_approval(&id, &approver(), Verdict::Approve, "", SystemTime::now())
            .await
            .expect("approve");
        let (left, right) = tokio::join!(
            disable_lockdown(&a, &client_a, &token_a),
            disable_lockdown(&b, &client_b, &token_b)
        );
        let passed = [left.0, right.0].iter().filter(|s| **s == 204).count();
        assert_eq!(
            passed, 1,
            "round {round}: exactly one replica lets the call through: {left:?} {right:?}"
        );
    }
}
