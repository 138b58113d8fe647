//! What the state store costs a guarded call: the claim lookup a call without a ticket header
//! makes, the approval lookup a call that needs an approval makes (miss: no approval granted),
//! and filing (finding) the pending request — on the embedded SQLite store, and on PostgreSQL at
//! 127.0.0.1:5432 when it is reachable.
//!
//! Bench ids: `state/<sqlite|postgres>/<covering_claim|use_approval_miss|request_pending>`.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use vcguard::state::{ApprovalKey, NewApproval, NewClaim, StateConfig, StateStore};

fn key() -> ApprovalKey {
    ApprovalKey {
        requester: "VSPHERE.LOCAL\\Administrator".into(),
        action: "ChangeLockdownMode".into(),
        target: "HostAccessManager:ham-21".into(),
        body_hash: "ab".repeat(32),
    }
}

async fn seeded(config: &StateConfig) -> StateStore {
    let store = StateStore::open(config).await.expect("open");
    let now = SystemTime::now();
    for i in 0..20 {
        store
            .claim(
                NewClaim {
                    user: format!("user{i}@vsphere.local"),
                    ticket_id: "CHG0012345".into(),
                    ticket_kind: "pattern".into(),
                    ticket_context: serde_json::json!({"id": "CHG0012345", "kind": "pattern"}),
                    hosts: vec![format!("host-{i}")],
                    actions: vec![],
                    until: now + Duration::from_secs(3600),
                },
                now,
            )
            .await
            .expect("claim");
    }
    store
}

fn bench_store(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, store: &StateStore) {
    let mut group = c.benchmark_group(format!("state/{name}"));
    let hosts = vec!["host-7".to_owned(), "ham-7".to_owned()];
    group.bench_function("covering_claim", |b| {
        b.iter(|| {
            rt.block_on(store.covering_claim(
                "user7@vsphere.local",
                "EnterMaintenanceMode_Task",
                black_box(&hosts),
                SystemTime::now(),
            ))
            .expect("lookup")
        })
    });
    group.bench_function("use_approval_miss", |b| {
        b.iter(|| {
            rt.block_on(store.use_approval(black_box(&key()), SystemTime::now()))
                .expect("lookup")
        })
    });
    group.bench_function("request_pending", |b| {
        b.iter(|| {
            rt.block_on(store.request_approval(
                NewApproval {
                    key: key(),
                    group: "change-approvers".into(),
                    policy: "lockdown-disable-needs-approval".into(),
                    reason: None,
                    summary: "bench".into(),
                },
                SystemTime::now(),
            ))
            .expect("request")
        })
    });
    group.finish();
}

fn state(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = rt.block_on(seeded(&StateConfig::sqlite(dir.path().join("state.db"))));
    bench_store(c, &rt, "sqlite", &sqlite);
    match rt.block_on(vcguard::state::testing::fresh_postgres_database()) {
        Some(url) => {
            let postgres = rt.block_on(seeded(&StateConfig::postgres(url)));
            bench_store(c, &rt, "postgres", &postgres);
        }
        None => eprintln!("state/postgres not measured"),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = state
}
criterion_main!(benches);
