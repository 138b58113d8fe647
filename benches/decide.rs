//! One policy decision per guarded call, with 50 policies loaded (the shipped ones plus 46
//! harmless generated forbids spread over the actions).

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::fs;
use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use vcguard::policy::{PolicyRequest, PolicySet, Principal, Resource};

const EXTRA_POLICIES: usize = 46;

/// The shipped policy files plus the generated ones, in a temporary directory.
fn policy_dir() -> tempfile::TempDir {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in fs::read_dir(&shipped).expect("read policies/") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let name = path.file_name().expect("file name");
            fs::copy(&path, dir.path().join(name)).expect("copy");
        }
    }
    let actions = [
        "EnterMaintenanceMode_Task",
        "ExitMaintenanceMode_Task",
        "ChangeLockdownMode",
        "EnterLockdownMode",
        "ExitLockdownMode",
        "RebootHost_Task",
        "ShutdownHost_Task",
    ];
    for i in 0..EXTRA_POLICIES {
        let action = actions[i % actions.len()];
        let policy = format!(
            "@id(\"extra-{i:02}\")\n@reason(\"generated for the benchmark\")\n\
             forbid (principal, action == VSphere::Action::\"{action}\", resource in VSphere::Cluster::\"domain-c7\")\n\
             when {{ context.client_ip.isInRange(ip(\"192.0.2.{i}/32\")) && context.hour_utc == {} }};\n",
            i % 24
        );
        fs::write(dir.path().join(format!("extra-{i:02}.cedar")), policy).expect("write");
    }
    dir
}

/// A representative request for `action`.
fn request(action: &str) -> PolicyRequest {
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
        principal: Principal::User {
            name: "VSPHERE.LOCAL\\Administrator".to_string(),
            groups: vec!["platform-team".to_string()],
        },
        action: action.to_string(),
        resource,
        context,
    }
}

fn decide(c: &mut Criterion) {
    let dir = policy_dir();
    let set = match PolicySet::load(dir.path()) {
        Ok(set) => set,
        Err(e) => panic!("policies do not load:\n{e}"),
    };
    assert_eq!(set.policy_ids().len(), 4 + EXTRA_POLICIES);
    let mut group = c.benchmark_group("decide");
    for action in set.guarded_actions() {
        let request = request(&action);
        let decision = set.evaluate(&request);
        assert!(decision.allowed, "{action}: {decision:?}");
        group.bench_function(action.as_str(), |b| {
            b.iter(|| black_box(set.evaluate(black_box(&request))))
        });
    }
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
