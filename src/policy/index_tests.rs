//! The per-method index decides exactly like the whole policy set: an exhaustive table of
//! requests over the shipped policies, the generated 50 and 500, and a set with erring
//! policies, compared field by field (allowed, determining ids and reasons, errors, monitor
//! hits and errors).

use std::fs;
use std::path::Path;

use serde_json::json;

use super::checked::ShapeKey;
use super::synthetic;
use super::*;

/// The shipped policy directory (schema, entities, policies) plus `extra` files.
fn shipped_with(extra: &[(String, String)]) -> tempfile::TempDir {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in fs::read_dir(&shipped).expect("read policies/") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    for (name, text) in extra {
        fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

fn load(dir: &Path) -> PolicySet {
    match PolicySet::load(dir) {
        Ok(set) => set,
        Err(e) => panic!("load failed:\n{e}"),
    }
}

/// Policies that err at evaluation (overflow), enforced and monitor, scoped to a group, a
/// list and every action.
fn erring_policies() -> Vec<(String, String)> {
    let files = [
        (
            "err-group.cedar",
            "@id(\"err-group\")\nforbid (principal, action in VSphere::Action::\"HostLockdown\", resource)\nwhen { context.hour_utc * 9223372036854775807 > 1 };\n",
        ),
        (
            "err-list.cedar",
            "@id(\"err-list\")\n@mode(\"monitor\")\nforbid (principal, action in [VSphere::Action::\"RebootHost_Task\", VSphere::Action::\"EnterMaintenanceMode_Task\"], resource)\nwhen { context.weekday * 9223372036854775807 > 1 };\n",
        ),
        (
            "err-any.cedar",
            "@id(\"err-any\")\nforbid (principal, action, resource in VSphere::Cluster::\"domain-c7\")\nwhen { context.hour_utc == 23 && context.weekday * 9223372036854775807 > 1 };\n",
        ),
        (
            "night.cedar",
            "@id(\"no-lockdown-change-at-night\")\n@reason(\"night\")\nforbid (principal, action in VSphere::Action::\"HostLockdown\", resource)\nwhen { context.hour_utc < 6 };\n",
        ),
    ];
    files
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

fn principals() -> Vec<Principal> {
    let user = |name: &str, groups: &[&str]| Principal::User {
        name: name.to_string(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    };
    vec![
        user("VSPHERE.LOCAL\\Administrator", &["platform-team"]),
        user("VSPHERE.LOCAL\\Administrator", &["team-3"]),
        user("VSPHERE.LOCAL\\svc-7", &[]),
        user("VSPHERE.LOCAL\\someone", &["team-1", "platform-team"]),
        Principal::Unauthenticated,
    ]
}

fn resources() -> Vec<Resource> {
    vec![
        Resource::new("HostSystem", "host-21"),
        Resource::new("HostSystem", "host-99"),
        Resource::new("HostAccessManager", "ham-22"),
        Resource::new("ClusterComputeResource", "domain-c7"),
        Resource::new("VirtualMachine", "vm-1"),
    ]
}

fn contexts(action: &str) -> Vec<serde_json::Value> {
    let ticket = |kind: &str, verified: bool| {
        json!({ "id": "CHG-1", "kind": kind, "verified": verified,
                "covers_target": verified, "covers_action": true, "expires_at": 1893456000 })
    };
    let mut out = Vec::new();
    for (hour, weekday, ip, route, indirect) in [
        (10, 2, "10.1.2.3", "direct", false),
        (3, 6, "192.0.2.7", "alarm", true),
        (23, 5, "127.0.0.1", "esxcli", true),
    ] {
        for ticket in [
            None,
            Some(ticket("signed", true)),
            Some(ticket("pattern", false)),
        ] {
            let mut context = json!({
                "protocol": if ticket.is_some() { "soap" } else { "json" },
                "indirect": indirect, "route": route, "client_ip": ip,
                "hour_utc": hour, "weekday": weekday,
            });
            if let Some(ticket) = ticket {
                context["ticket"] = ticket;
            }
            match action {
                "EnterMaintenanceMode_Task" => {
                    for (timeout, object_action) in
                        [(300, "ensureObjectAccessibility"), (900, "noAction")]
                    {
                        let mut c = context.clone();
                        c["body"] = json!({ "timeout": timeout,
                            "maintenanceSpec": { "vsanMode": { "objectAction": object_action } } });
                        out.push(c);
                    }
                }
                "ChangeLockdownMode" => {
                    for mode in ["lockdownDisabled", "lockdownStrict"] {
                        let mut c = context.clone();
                        c["body"] = json!({ "mode": mode });
                        out.push(c);
                    }
                }
                _ => out.push(context),
            }
        }
    }
    // A context the schema refuses (no body, wrong type): a validation error either way.
    out.push(
        json!({ "protocol": "json", "indirect": "no", "route": "direct",
                     "client_ip": "10.0.0.1", "hour_utc": 1, "weekday": 1 }),
    );
    out
}

#[test]
fn the_fast_context_equals_what_cedars_json_parser_reads() {
    let dir = shipped_with(&[]);
    let set = PolicySet::load(dir.path()).expect("shipped policies load");
    let mut compared = 0;
    for action in set.guarded_actions() {
        for context in contexts(&action) {
            if let Some(parsed) = set.context_parsed_by_cedar(&action, &context) {
                let mut shape = ShapeKey::new(&action, ("User", None), ("HostSystem", None));
                let fast = super::context::fast_context(&context, &set.ip_values, &mut shape);
                assert_eq!(fast, Some(parsed), "{action}: {context}");
                compared += 1;
            }
        }
    }
    assert!(compared >= 50, "only {compared} contexts compared");
}

#[test]
fn a_shape_the_check_refused_is_refused_after_one_that_passed() {
    let set = load(shipped_with(&[]).path());
    let call = |hour: serde_json::Value| PolicyRequest {
        principal: principals().remove(0),
        action: "RebootHost_Task".to_string(),
        resource: Resource::new("HostSystem", "host-21"),
        context: json!({ "protocol": "json", "indirect": false, "route": "direct",
                         "client_ip": "10.0.0.1", "hour_utc": hour, "weekday": 1 }),
    };
    let passed = set.evaluate(&call(json!(10)));
    assert!(passed.allowed && passed.errors.is_empty(), "{passed:?}");
    assert_eq!(set.checked_shapes.len(), 1);
    assert_eq!(
        set.evaluate(&call(json!(11))),
        set.evaluate(&call(json!(11)))
    );
    assert_eq!(set.checked_shapes.len(), 1, "one shape, kept once");

    // The same fields with `hour_utc` a string: the schema refuses it, every time.
    for _ in 0..2 {
        let refused = set.evaluate(&call(json!("10")));
        assert!(!refused.allowed, "{refused:?}");
        assert!(
            refused.errors.iter().any(|e| e.contains("hour_utc")),
            "{:?}",
            refused.errors
        );
    }
    assert_eq!(set.checked_shapes.len(), 1);
}

#[test]
fn policies_scoped_to_another_user_or_host_are_left_out_of_a_call() {
    let extra = [
        (
            "other-user.cedar".to_string(),
            "@id(\"other-user\")\nforbid (principal == VSphere::User::\"VSPHERE.LOCAL\\\\other\", action == VSphere::Action::\"RebootHost_Task\", resource);\n".to_string(),
        ),
        (
            "host-99.cedar".to_string(),
            "@id(\"host-99\")\n@mode(\"monitor\")\nforbid (principal, action, resource == VSphere::HostSystem::\"host-99\");\n".to_string(),
        ),
    ];
    let set = load(shipped_with(&extra).path());
    let call = |user: &str, host: &str| PolicyRequest {
        principal: Principal::User {
            name: format!("VSPHERE.LOCAL\\{user}"),
            groups: vec![],
        },
        action: "RebootHost_Task".to_string(),
        resource: Resource::new("HostSystem", host),
        context: json!({ "protocol": "json", "indirect": false, "route": "direct",
                         "client_ip": "10.0.0.1", "hour_utc": 10, "weekday": 1 }),
    };
    let ids = |hits: &[PolicyHit]| hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>();

    // Neither policy can match: both are left out, and the call is allowed as before.
    let admin = set.evaluate(&call("Administrator", "host-21"));
    assert!(admin.allowed && admin.monitor_hits.is_empty(), "{admin:?}");
    assert_eq!(set.narrowed.len(), 1, "one narrowed slice kept");
    assert_eq!(set.evaluate(&call("Administrator", "host-21")), admin);
    assert_eq!(set.narrowed.len(), 1);

    // Both match: nothing is left out, and both decide.
    let other = set.evaluate(&call("other", "host-99"));
    assert!(!other.allowed, "{other:?}");
    assert_eq!(ids(&other.determining), ["other-user"]);
    assert_eq!(ids(&other.monitor_hits), ["host-99"]);
    assert_eq!(
        set.narrowed.len(),
        1,
        "the whole slice needs no narrowed copy"
    );
    for request in [call("Administrator", "host-21"), call("other", "host-99")] {
        assert_eq!(set.evaluate(&request), set.evaluate_unsliced(&request));
    }
}

#[test]
fn policies_scoped_to_a_group_or_place_the_call_is_not_in_are_left_out_of_a_call() {
    let extra = [
        (
            "other-team.cedar".to_string(),
            "@id(\"other-team\")\nforbid (principal in VSphere::Group::\"other-team\", action == VSphere::Action::\"RebootHost_Task\", resource);\n".to_string(),
        ),
        (
            "cluster-watch.cedar".to_string(),
            "@id(\"cluster-watch\")\n@mode(\"monitor\")\nforbid (principal, action == VSphere::Action::\"RebootHost_Task\", resource in VSphere::Cluster::\"domain-c7\");\n".to_string(),
        ),
        (
            "night-in-dc.cedar".to_string(),
            "@id(\"night-in-dc\")\nforbid (principal is VSphere::User in VSphere::Group::\"platform-team\", action, resource in VSphere::Datacenter::\"datacenter-1\")\nwhen { context.hour_utc == 3 };\n".to_string(),
        ),
    ];
    let set = load(shipped_with(&extra).path());
    let call = |user: &str, groups: &[&str], resource: Resource, hour: i64| PolicyRequest {
        principal: Principal::User {
            name: format!("VSPHERE.LOCAL\\{user}"),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        },
        action: "RebootHost_Task".to_string(),
        resource,
        context: json!({ "protocol": "json", "indirect": false, "route": "direct",
                         "client_ip": "10.0.0.1", "hour_utc": hour, "weekday": 1 }),
    };
    let ids = |hits: &[PolicyHit]| hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>();
    let host = |id: &str| Resource::new("HostSystem", id);

    // `entities.json` puts the administrator in platform-team and host-21 in domain-c7, which
    // is in datacenter-1: other-team is left out, the other two hold and decide.
    let admin = set.evaluate(&call(
        "Administrator",
        &["platform-team"],
        host("host-21"),
        10,
    ));
    assert!(admin.allowed, "{admin:?}");
    assert_eq!(ids(&admin.monitor_hits), ["cluster-watch"]);
    assert_eq!(set.narrowed.len(), 1, "other-team left out");
    let night = set.evaluate(&call(
        "Administrator",
        &["platform-team"],
        host("host-21"),
        3,
    ));
    assert_eq!(ids(&night.determining), ["night-in-dc"], "{night:?}");
    // A cluster is in itself and in its datacenter.
    let cluster = Resource::new("ClusterComputeResource", "domain-c7");
    let on_cluster = set.evaluate(&call(
        "Administrator",
        &["platform-team"],
        cluster.clone(),
        3,
    ));
    assert_eq!(ids(&on_cluster.determining), ["night-in-dc"]);
    assert_eq!(ids(&on_cluster.monitor_hits), ["cluster-watch"]);
    // A host `entities.json` does not know is in no cluster.
    let unknown_host = set.evaluate(&call(
        "Administrator",
        &["platform-team"],
        host("host-99"),
        3,
    ));
    assert!(
        unknown_host.allowed && unknown_host.monitor_hits.is_empty(),
        "{unknown_host:?}"
    );

    // A user the identity step puts in other-team is decided against a store of their own,
    // where Cedar settles the `in` scopes.
    let member = set.evaluate(&call("someone", &["other-team"], host("host-22"), 10));
    assert!(!member.allowed, "{member:?}");
    assert_eq!(ids(&member.determining), ["other-team"]);
    assert_eq!(ids(&member.monitor_hits), ["cluster-watch"]);

    for request in [
        call("Administrator", &["platform-team"], host("host-21"), 10),
        call("Administrator", &["platform-team"], host("host-21"), 3),
        call("Administrator", &["platform-team"], cluster, 3),
        call("Administrator", &["platform-team"], host("host-99"), 3),
        call("someone", &["other-team"], host("host-22"), 10),
        call("someone", &["platform-team"], host("host-23"), 3),
    ] {
        assert_eq!(
            set.evaluate(&request),
            set.evaluate_unsliced(&request),
            "{request:?}"
        );
    }
}

/// Compares the indexed and the whole-set decision on every request of the table (every
/// `stride`-th one); returns how many were compared and how many of each outcome were seen.
fn assert_equivalent(set: &PolicySet, stride: usize) -> (usize, usize, usize, usize) {
    let (mut compared, mut allowed, mut with_errors, mut monitor) = (0, 0, 0, 0);
    let mut n = 0usize;
    let mut actions = set.guarded_actions();
    actions.push("HostLockdown".to_string());
    actions.push("Destroy_Task".to_string());
    for action in &actions {
        for principal in principals() {
            for resource in resources() {
                for context in contexts(action) {
                    n += 1;
                    if !n.is_multiple_of(stride) {
                        continue;
                    }
                    let request = PolicyRequest {
                        principal: principal.clone(),
                        action: action.clone(),
                        resource: resource.clone(),
                        context,
                    };
                    // The whole set with the schema check in full, then the index with the
                    // check passed by for a shape that passed it.
                    set.checked_shapes.clear();
                    let whole = set.evaluate_unsliced(&request);
                    let sliced = set.evaluate(&request);
                    assert_eq!(sliced, whole, "request: {request:?}");
                    compared += 1;
                    allowed += usize::from(sliced.allowed);
                    with_errors += usize::from(!sliced.errors.is_empty());
                    monitor += usize::from(!sliced.monitor_hits.is_empty());
                }
            }
        }
    }
    (compared, allowed, with_errors, monitor)
}

#[test]
fn index_decides_like_the_whole_shipped_set() {
    let dir = shipped_with(&[]);
    let (compared, allowed, errors, monitor) = assert_equivalent(&load(dir.path()), 1);
    assert!(compared > 1000, "{compared}");
    // The table reaches every kind of outcome.
    assert!(allowed > 0 && allowed < compared, "{allowed}/{compared}");
    assert!(
        errors > 0 && monitor > 0,
        "errors {errors}, monitor {monitor}"
    );
}

#[test]
fn index_decides_like_the_whole_set_with_erring_policies() {
    let dir = shipped_with(&erring_policies());
    let set = load(dir.path());
    let (compared, allowed, errors, monitor) = assert_equivalent(&set, 1);
    assert!(
        allowed > 0 && errors > 0 && monitor > 0,
        "{compared} {allowed} {errors} {monitor}"
    );
}

#[test]
fn index_decides_like_the_whole_generated_50_and_500() {
    // The whole 500 is slow to evaluate in a debug build: every 29th request of the table.
    let shipped = load(shipped_with(&[]).path()).policy_ids().len();
    for (extra, stride) in [(50 - shipped, 1), (500 - shipped, 29)] {
        let dir = shipped_with(&synthetic::policy_files(extra));
        let set = load(dir.path());
        assert_eq!(set.policy_ids().len(), shipped + extra);
        let (compared, allowed, errors, monitor) = assert_equivalent(&set, stride);
        assert!(compared * stride > 2000, "{compared}");
        assert!(
            allowed > 0 && errors > 0 && monitor > 0,
            "{compared} {allowed} {errors} {monitor}"
        );
    }
}

#[test]
fn a_policy_on_an_action_group_applies_to_its_methods_only() {
    let dir = shipped_with(&erring_policies()[3..]);
    let set = load(dir.path());
    let at = |action: &str, resource: Resource, body: Option<serde_json::Value>| {
        let mut context = json!({ "protocol": "json", "indirect": false, "route": "direct",
                                  "client_ip": "10.1.2.3", "hour_utc": 3, "weekday": 1 });
        if let Some(body) = body {
            context["body"] = body;
        }
        set.evaluate(&PolicyRequest {
            principal: principals().remove(0),
            action: action.to_string(),
            resource,
            context,
        })
    };
    let lockdown = at(
        "ChangeLockdownMode",
        Resource::new("HostAccessManager", "ham-21"),
        Some(json!({ "mode": "lockdownNormal" })),
    );
    assert!(!lockdown.allowed);
    assert_eq!(lockdown.determining[0].id, "no-lockdown-change-at-night");
    let legacy = at(
        "ExitLockdownMode",
        Resource::new("HostSystem", "host-21"),
        None,
    );
    assert!(!legacy.allowed);
    let ids: Vec<&str> = legacy.determining.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "lockdown-disable-needs-approval",
            "no-lockdown-change-at-night"
        ]
    );
    assert!(
        legacy.approval.is_none(),
        "another forbid denies too: no approval lifts it"
    );
    let reboot = at(
        "RebootHost_Task",
        Resource::new("HostSystem", "host-21"),
        None,
    );
    assert!(reboot.allowed, "{reboot:?}");
    assert_eq!(reboot.determining[0].id, "baseline-permit");
}

#[test]
fn each_method_evaluates_only_the_policies_that_can_apply_to_it() {
    let dir = shipped_with(&synthetic::policy_files(46));
    let set = load(dir.path());
    let total = set.enforced.policies().count() + set.monitor.policies().count();
    for method in set.guarded_actions() {
        let slice = &set.slices[&method];
        let sliced = slice.sets.enforced.iter().count() + slice.sets.monitor.iter().count();
        // Unconstrained, single-method, list and group scopes: each method sees a fraction.
        assert!(sliced * 2 < total, "{method}: {sliced} of {total}");
        assert!(
            slice
                .sets
                .enforced
                .iter()
                .any(|p| p.id().to_string() == "baseline-permit"),
            "{method}"
        );
    }
    let reboot = &set.slices["RebootHost_Task"];
    assert!(
        reboot
            .sets
            .enforced
            .iter()
            .all(|p| p.id().to_string() != "maintenance-needs-ticket")
    );
}
