//! One policy decision per guarded call with the shipped policies, and with the shipped ones
//! plus generated policies to 50 and 500 (permits and forbids over methods, method lists,
//! action groups and every action; see `src/policy/synthetic.rs`).
//!
//! Bench ids: `decide/<policy count>/<method>`; `decide/<count>/unknown-user` is a user that
//! `entities.json` does not know, with a group from the identity step (its entity store is kept
//! after the first decision); `decide/<count>/new-user` is a different unknown user each time
//! (a store is built for every decision).

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

#[path = "../src/policy/synthetic.rs"]
mod synthetic;

use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use vcguard::policy::{PolicyRequest, PolicySet, Principal, Resource};

/// The gateway's allocator (`src/main.rs`): a decision allocates, and the system allocator
/// would make it look slower than the gateway makes it.
#[global_allocator]
static ALLOCATOR: natural_mimalloc::NaturalMimalloc = natural_mimalloc::NaturalMimalloc;

/// The methods benchmarked: a typed body with a ticket and a monitor policy, a typed body,
/// and a method without a body.
const METHODS: &[&str] = &[
    "EnterMaintenanceMode_Task",
    "ChangeLockdownMode",
    "RebootHost_Task",
];

/// The shipped policy files plus `extra` generated ones, in a temporary directory.
fn policy_dir(extra: usize) -> tempfile::TempDir {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in fs::read_dir(&shipped).expect("read policies/") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let name = path.file_name().expect("file name");
            fs::copy(&path, dir.path().join(name)).expect("copy");
        }
    }
    for (name, text) in synthetic::policy_files(extra) {
        fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

/// A representative request for `action`.
fn request(action: &str, principal: Principal) -> PolicyRequest {
    let mut context = json!({
        "protocol": "soap", "indirect": false, "route": "direct",
        "client_ip": "10.1.2.3", "hour_utc": 10, "weekday": 2,
        "ticket": { "id": "CHG-1", "kind": "signed", "verified": true,
                    "covers_target": true, "covers_action": true, "expires_at": 1893456000 },
    });
    let resource = match action {
        "EnterMaintenanceMode_Task" => {
            context["body"] = json!({
                "timeout": 300,
                "evacuatePoweredOffVms": true,
                "maintenanceSpec": { "vsanMode": { "objectAction": "ensureObjectAccessibility" } },
            });
            Resource::new("HostSystem", "host-21")
        }
        "ChangeLockdownMode" => {
            context["body"] = json!({ "mode": "lockdownNormal" });
            Resource::new("HostAccessManager", "ham-21")
        }
        _ => Resource::new("HostSystem", "host-22"),
    };
    PolicyRequest {
        principal,
        action: action.to_string(),
        resource,
        context,
    }
}

/// The administrator `entities.json` knows, in the group it lists.
fn admin() -> Principal {
    Principal::User {
        name: "VSPHERE.LOCAL\\Administrator".to_string(),
        groups: vec!["platform-team".to_string()],
    }
}

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let shipped = match PolicySet::load(policy_dir(0).path()) {
        Ok(set) => set.policy_ids().len(),
        Err(e) => panic!("the shipped policies do not load:\n{e}"),
    };
    for total in [shipped, 50, 500] {
        let dir = policy_dir(total - shipped);
        let set = match PolicySet::load(dir.path()) {
            Ok(set) => set,
            Err(e) => panic!("policies do not load:\n{e}"),
        };
        assert_eq!(set.policy_ids().len(), total);
        for action in METHODS {
            let request = request(action, admin());
            let decision = set.evaluate(&request);
            assert!(decision.allowed, "{action}: {decision:?}");
            group.bench_function(format!("{total}/{action}"), |b| {
                b.iter(|| black_box(set.evaluate(black_box(&request))))
            });
        }
        let stranger = Principal::User {
            name: "VSPHERE.LOCAL\\someone-else".to_string(),
            groups: vec!["platform-team".to_string()],
        };
        let unknown = request("RebootHost_Task", stranger);
        assert!(set.evaluate(&unknown).allowed);
        group.bench_function(format!("{total}/unknown-user"), |b| {
            b.iter(|| black_box(set.evaluate(black_box(&unknown))))
        });
        // More users than a policy set keeps stores for: every decision builds one.
        let newcomers: Vec<PolicyRequest> = (0..1000)
            .map(|i| {
                let user = Principal::User {
                    name: format!("VSPHERE.LOCAL\\newcomer-{i}"),
                    groups: vec!["platform-team".to_string()],
                };
                request("RebootHost_Task", user)
            })
            .collect();
        let mut next = newcomers.iter().cycle();
        group.bench_function(format!("{total}/new-user"), |b| {
            b.iter(|| black_box(set.evaluate(black_box(next.next().expect("cycle")))))
        });
    }
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
