//! Tests of the policy engine: loading, strict validation, decisions, reload, test runner.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use super::*;

/// The shipped `policies/` directory of the crate this module's source lives in.
///
/// `file!()` is `src/policy/tests.rs` (relative to the manifest dir) inside the real crate and
/// `/work/main/src/policy/tests.rs` (absolute) when the scratch crate includes the module by
/// path; either way the crate root is three levels up. `CARGO_MANIFEST_DIR/policies` is the
/// fallback (e.g. if the crate is ever built from a workspace root).
fn shipped_dir() -> PathBuf {
    let file = Path::new(file!());
    let file = if file.is_absolute() {
        file.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(file)
    };
    let from_source = file
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|root| root.join("policies"));
    let from_manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    from_source
        .into_iter()
        .chain([from_manifest])
        .find(|dir| dir.join(SCHEMA_FILE).is_file())
        .expect("the shipped policies/ directory")
}

/// A temp dir with a copy of the shipped schema, entities and policies (no tests).
fn shipped_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for entry in fs::read_dir(shipped_dir()).expect("read shipped dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        if path.is_file() {
            fs::copy(&path, tmp.path().join(entry.file_name())).expect("copy");
        }
    }
    tmp
}

/// A temp dir with the shipped schema only, plus the given policy files.
fn dir_with(policies: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::copy(
        shipped_dir().join(SCHEMA_FILE),
        tmp.path().join(SCHEMA_FILE),
    )
    .expect("copy schema");
    for (name, text) in policies {
        fs::write(tmp.path().join(name), text).expect("write");
    }
    tmp
}

fn load_err(dir: &Path) -> LoadErrors {
    match PolicySet::load(dir) {
        Ok(_) => panic!("expected a load error"),
        Err(e) => e,
    }
}

fn load_ok(dir: &Path) -> PolicySet {
    match PolicySet::load(dir) {
        Ok(set) => set,
        Err(e) => panic!("load failed:\n{e}"),
    }
}

const PERMIT_ALL: &str = "@id(\"all\")\npermit (principal, action, resource);\n";

fn base_context() -> serde_json::Value {
    json!({
        "protocol": "json", "indirect": false, "route": "direct",
        "client_ip": "127.0.0.1", "hour_utc": 10, "weekday": 1
    })
}

fn with(mut context: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    context
        .as_object_mut()
        .expect("object")
        .insert(key.to_string(), value);
    context
}

fn admin() -> Principal {
    Principal::User {
        name: "VSPHERE.LOCAL\\Administrator".to_string(),
        groups: vec!["platform-team".to_string()],
    }
}

fn lockdown(mode: &str) -> PolicyRequest {
    PolicyRequest {
        principal: admin(),
        action: "ChangeLockdownMode".to_string(),
        resource: Resource::new("HostAccessManager", "ham-21"),
        context: with(base_context(), "body", json!({ "mode": mode })),
    }
}

fn maintenance(body: serde_json::Value, ticket: Option<serde_json::Value>) -> PolicyRequest {
    let mut context = with(base_context(), "body", body);
    if let Some(ticket) = ticket {
        context = with(context, "ticket", ticket);
    }
    PolicyRequest {
        principal: admin(),
        action: "EnterMaintenanceMode_Task".to_string(),
        resource: Resource::new("HostSystem", "host-21"),
        context,
    }
}

fn good_ticket() -> serde_json::Value {
    json!({ "id": "CHG-1", "kind": "signed", "verified": true,
            "covers_target": true, "covers_action": true, "expires_at": 1893456000 })
}

fn ids(hits: &[PolicyHit]) -> Vec<&str> {
    hits.iter().map(|h| h.id.as_str()).collect()
}

// ---------------------------------------------------------------- the shipped set

#[test]
fn objects_are_placed_on_hosts_by_the_entities() {
    let set = load_ok(&shipped_dir());
    assert_eq!(set.hosts_of("HostAccessManager", "ham-21"), ["host-21"]);
    assert!(
        set.hosts_of("HostSystem", "host-21").is_empty(),
        "a host is on no host"
    );
    assert!(
        set.hosts_of("HostAccessManager", "ham-99").is_empty(),
        "unknown object"
    );
    assert!(set.hosts_of("ReflectManagedMethodExecuter", "x").is_empty());
}

#[test]
fn shipped_policies_load() {
    let set = load_ok(&shipped_dir());
    assert_eq!(
        set.policy_ids(),
        [
            "baseline-permit",
            "carrier-outlives-ticket",
            "dcui-access-needs-ticket",
            "effect-unknown",
            "lockdown-disable-needs-approval",
            "lockdown-no-strict",
            "maintenance-needs-ticket",
            "vsan-no-action-monitor"
        ]
    );
    assert_eq!(set.monitor_policy_ids(), ["vsan-no-action-monitor"]);
    assert_eq!(
        set.guarded_actions(),
        [
            "AddHost_Task",
            "AddStandaloneHost_Task",
            "Agency_Enable",
            "ApplyEntitiesConfig_Task",
            "ApplyEsxSettings",
            "ApplyHostConfig_Task",
            "ApplyRecommendation",
            "ChangeAccessMode",
            "ChangeLockdownMode",
            "ClusterEnterMaintenanceMode",
            "ConfigureHCI_Task",
            "CreateAgency",
            "EnterLockdownMode",
            "EnterMaintenanceMode_Task",
            "ExitLockdownMode",
            "ExitMaintenanceMode_Task",
            "RebootHost_Task",
            "RestartService",
            "RunScheduledTask",
            "ShutdownHost_Task",
            "StopService",
            "UninstallService",
            "UpdateAgency",
            "UpdateLockdownExceptions",
            "UpdateOptions",
            "UpdateServicePolicy",
            "UpdateSystemUsers"
        ]
    );
    assert!(set.is_guarded("ChangeLockdownMode"));
    assert!(!set.is_guarded("HostLockdown"));
    assert!(!set.is_guarded("EntersMaintenance"));
    assert!(!set.is_guarded("DcuiEscapeHatch"));
    assert_eq!(set.hash().len(), 64);
    assert!(
        set.location("lockdown-no-strict")
            .expect("location")
            .ends_with("lockdown-no-strict.cedar:8")
    );
}

#[test]
fn shipped_policy_tests_pass() {
    let report = match run_tests(&shipped_dir()) {
        Ok(report) => report,
        Err(e) => panic!("{e}"),
    };
    assert!(report.success(), "{report}");
    assert!(report.cases.len() >= 30, "{report}");
    assert!(report.untested.is_empty(), "{report}");
    assert_eq!(
        report.summary(),
        format!("{} passed, 0 failed", report.cases.len())
    );
}

#[test]
fn policy_set_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PolicySet>();
    assert_send_sync::<PolicyStore>();
    assert_send_sync::<Arc<PolicySet>>();
}

#[test]
fn hash_is_stable_and_covers_contents() {
    let tmp = shipped_copy();
    let a = load_ok(tmp.path());
    let b = load_ok(tmp.path());
    assert_eq!(a.hash(), b.hash());
    assert_eq!(
        a.hash(),
        load_ok(&shipped_dir()).hash(),
        "tests/ are not part of the hash"
    );
    fs::write(
        tmp.path().join("baseline-permit.cedar"),
        "@id(\"baseline-permit\")\n@reason(\"changed\")\npermit (principal, action, resource);\n",
    )
    .expect("write");
    assert_ne!(a.hash(), load_ok(tmp.path()).hash());
}

// ---------------------------------------------------------------- decisions on the shipped set

#[test]
fn strict_lockdown_is_denied_with_reason() {
    let set = load_ok(&shipped_dir());
    let decision = set.evaluate(&lockdown("lockdownStrict"));
    assert!(!decision.allowed);
    assert_eq!(ids(&decision.determining), ["lockdown-no-strict"]);
    assert!(decision.errors.is_empty());
    assert_eq!(decision.policy_set_hash, set.hash());
    assert_eq!(
        decision.denial_text(),
        "Blocked by vcguard policy lockdown-no-strict: strict lockdown stops the DCUI: \
         no emergency way back if vCenter is lost"
    );
}

#[test]
fn normal_lockdown_is_allowed_by_baseline() {
    let set = load_ok(&shipped_dir());
    let decision = set.evaluate(&lockdown("lockdownNormal"));
    assert!(decision.allowed, "{decision:?}");
    assert_eq!(ids(&decision.determining), ["baseline-permit"]);
    assert!(decision.monitor_hits.is_empty());
}

#[test]
fn maintenance_needs_a_verified_covering_ticket() {
    let set = load_ok(&shipped_dir());
    let body = json!({ "timeout": 300 });
    let d = set.evaluate(&maintenance(body.clone(), None));
    assert!(!d.allowed);
    assert_eq!(ids(&d.determining), ["maintenance-needs-ticket"]);

    let d = set.evaluate(&maintenance(body.clone(), Some(good_ticket())));
    assert!(d.allowed, "{d:?}");

    for field in ["verified", "covers_target", "covers_action"] {
        let ticket = with(good_ticket(), field, json!(false));
        let d = set.evaluate(&maintenance(body.clone(), Some(ticket)));
        assert!(!d.allowed, "{field}=false must deny");
        assert_eq!(ids(&d.determining), ["maintenance-needs-ticket"]);
    }
}

#[test]
fn maintenance_through_esxcli_is_guarded_too() {
    let set = load_ok(&shipped_dir());
    let mut request = maintenance(json!({ "timeout": 0 }), None);
    request.resource = Resource::new(
        "ReflectManagedMethodExecuter",
        "ha-cli-handler-system-maintenancemode",
    );
    request.context = with(request.context, "route", json!("esxcli"));
    request.context = with(request.context, "indirect", json!(true));
    let d = set.evaluate(&request);
    assert!(!d.allowed);
    assert!(d.errors.is_empty(), "{d:?}");
    assert_eq!(ids(&d.determining), ["maintenance-needs-ticket"]);
    assert_eq!(
        set.resource_type_name("ReflectManagedMethodExecuter"),
        "ManagedObject"
    );
    assert_eq!(set.resource_type_name("ClusterComputeResource"), "Cluster");
}

#[test]
fn vsan_no_action_is_a_monitor_hit_only() {
    let set = load_ok(&shipped_dir());
    let body =
        json!({ "timeout": 0, "maintenanceSpec": { "vsanMode": { "objectAction": "noAction" } } });
    let d = set.evaluate(&maintenance(body, Some(good_ticket())));
    assert!(d.allowed, "monitor policies never block: {d:?}");
    assert!(d.would_deny());
    assert_eq!(ids(&d.monitor_hits), ["vsan-no-action-monitor"]);
    assert!(d.monitor_hits[0].reason.is_some());

    let body = json!({ "timeout": 0, "maintenanceSpec": { "purpose": "hostUpgrade" } });
    let d = set.evaluate(&maintenance(body, Some(good_ticket())));
    assert!(d.allowed);
    assert!(d.monitor_hits.is_empty());
}

#[test]
fn invalid_context_is_denied_with_error() {
    let set = load_ok(&shipped_dir());
    // Misspelt body attribute.
    let mut request = lockdown("lockdownStrict");
    request.context = with(base_context(), "body", json!({ "mdoe": "lockdownStrict" }));
    let d = set.evaluate(&request);
    assert!(!d.allowed);
    assert!(d.errors[0].contains("request context"), "{:?}", d.errors);
    assert!(
        d.denial_text()
            .starts_with("Blocked by vcguard: policy evaluation failed (")
    );
    // Wrong type.
    let request = PolicyRequest {
        context: with(base_context(), "hour_utc", json!("ten")),
        ..lockdown("lockdownNormal")
    };
    assert!(!set.evaluate(&request).allowed);
    // Not an object at all.
    let request = PolicyRequest {
        context: json!([1, 2]),
        ..lockdown("lockdownNormal")
    };
    assert!(!set.evaluate(&request).allowed);
    // A type that is declared but is no resource (Group) is evaluated as ManagedObject.
    assert_eq!(set.resource_type_name("Group"), "ManagedObject");
}

#[test]
fn undeclared_action_is_denied() {
    let set = load_ok(&shipped_dir());
    let request = PolicyRequest {
        action: "Destroy_Task".to_string(),
        context: base_context(),
        ..lockdown("x")
    };
    let d = set.evaluate(&request);
    assert!(!d.allowed);
    assert_eq!(
        d.errors,
        ["action Destroy_Task is not declared in the schema"]
    );
    assert_eq!(
        d.denial_text(),
        "Blocked by vcguard: policy evaluation failed (action Destroy_Task is not declared in the schema)"
    );
}

#[test]
fn unknown_user_and_unknown_resource_still_evaluate() {
    let set = load_ok(&shipped_dir());
    let request = PolicyRequest {
        principal: Principal::User {
            name: "CORP\\nobody".to_string(),
            groups: vec!["ops".to_string()],
        },
        resource: Resource::new("HostAccessManager", "ha-host-access-manager"),
        ..lockdown("lockdownStrict")
    };
    let d = set.evaluate(&request);
    assert!(!d.allowed);
    assert!(d.errors.is_empty(), "{d:?}");
    assert_eq!(ids(&d.determining), ["lockdown-no-strict"]);

    let request = PolicyRequest {
        principal: Principal::User {
            name: "CORP\\nobody".to_string(),
            groups: vec![],
        },
        ..lockdown("lockdownNormal")
    };
    assert!(
        set.evaluate(&request).allowed,
        "any known user passes the baseline"
    );

    let request = PolicyRequest {
        principal: Principal::Unauthenticated,
        ..lockdown("lockdownNormal")
    };
    let d = set.evaluate(&request);
    assert!(
        !d.allowed,
        "the shipped baseline gives unauthenticated callers nothing"
    );
    assert!(d.no_permit(), "{d:?}");
}

#[test]
fn groups_and_inventory_reach_the_policies() {
    let tmp = shipped_copy();
    fs::remove_file(tmp.path().join("baseline-permit.cedar")).expect("rm");
    fs::write(
        tmp.path().join("team.cedar"),
        r#"@id("team-on-cluster")
permit (
  principal in VSphere::Group::"platform-team",
  action in VSphere::Action::"HostLockdown",
  resource in VSphere::Cluster::"domain-c7"
);
"#,
    )
    .expect("write");
    let set = load_ok(tmp.path());
    // Group from entities.json (no groups in the request).
    let request = PolicyRequest {
        principal: Principal::User {
            name: "VSPHERE.LOCAL\\Administrator".to_string(),
            groups: vec![],
        },
        ..lockdown("lockdownNormal")
    };
    let d = set.evaluate(&request);
    assert!(d.allowed, "{d:?}");
    assert_eq!(ids(&d.determining), ["team-on-cluster"]);
    // Group from the request (user unknown to entities.json).
    let request = PolicyRequest {
        principal: Principal::User {
            name: "CORP\\carol".to_string(),
            groups: vec!["platform-team".to_string()],
        },
        ..lockdown("lockdownNormal")
    };
    assert!(set.evaluate(&request).allowed);
    // No group: no permit.
    let request = PolicyRequest {
        principal: Principal::User {
            name: "CORP\\dave".to_string(),
            groups: vec![],
        },
        ..lockdown("lockdownNormal")
    };
    let d = set.evaluate(&request);
    assert!(!d.allowed);
    assert!(d.no_permit());
    assert_eq!(
        d.denial_text(),
        "Blocked by vcguard: no policy permits ChangeLockdownMode"
    );
    // A host access manager outside the cluster: no permit.
    let request = PolicyRequest {
        resource: Resource::new("HostAccessManager", "ham-99"),
        ..lockdown("lockdownNormal")
    };
    assert!(!set.evaluate(&request).allowed);
}

#[test]
fn user_attributes_from_entities_are_kept_when_groups_are_added() {
    let tmp = shipped_copy();
    let schema = fs::read_to_string(tmp.path().join(SCHEMA_FILE)).expect("read");
    let schema = schema.replace(
        "entity User in [Group];",
        "entity User in [Group] { team: String };",
    );
    fs::write(tmp.path().join(SCHEMA_FILE), schema).expect("write");
    let entities = fs::read_to_string(tmp.path().join(ENTITIES_FILE)).expect("read");
    let entities = entities.replace(
        r#""id": "VSPHERE.LOCAL\\Administrator" }, "attrs": {}"#,
        r#""id": "VSPHERE.LOCAL\\Administrator" }, "attrs": { "team": "platform" }"#,
    );
    let entities = entities.replace(
        r#""id": "VSPHERE.LOCAL\\approver" }, "attrs": {}"#,
        r#""id": "VSPHERE.LOCAL\\approver" }, "attrs": { "team": "change" }"#,
    );
    fs::write(tmp.path().join(ENTITIES_FILE), entities).expect("write");
    fs::write(
        tmp.path().join("team.cedar"),
        "@id(\"platform-no-reboot\")\nforbid (principal is VSphere::User, action == VSphere::Action::\"ChangeLockdownMode\", resource)\nwhen { principal.team == \"platform\" && principal in VSphere::Group::\"night-shift\" };\n",
    )
    .expect("write");
    let set = load_ok(tmp.path());
    let request = PolicyRequest {
        principal: Principal::User {
            name: "VSPHERE.LOCAL\\Administrator".to_string(),
            groups: vec!["night-shift".to_string()],
        },
        ..lockdown("lockdownNormal")
    };
    let d = set.evaluate(&request);
    assert!(!d.allowed, "{d:?}");
    assert_eq!(ids(&d.determining), ["platform-no-reboot"]);
    // A user unknown to entities.json lacks the required attribute: fail closed.
    let request = PolicyRequest {
        principal: Principal::User {
            name: "CORP\\eve".to_string(),
            groups: vec![],
        },
        ..lockdown("lockdownNormal")
    };
    let d = set.evaluate(&request);
    assert!(!d.allowed);
    assert!(
        d.errors[0].starts_with("request entities: "),
        "{:?}",
        d.errors
    );
}

#[test]
fn an_unknown_principals_store_is_kept_and_decides_as_a_fresh_one() {
    let tmp = shipped_copy();
    fs::write(
        tmp.path().join("team.cedar"),
        "@id(\"night-shift-no-lockdown\")\nforbid (principal in VSphere::Group::\"night-shift\", action == VSphere::Action::\"ChangeLockdownMode\", resource);\n",
    )
    .expect("write");
    let set = load_ok(tmp.path());
    let as_user = |name: &str, groups: &[&str]| PolicyRequest {
        principal: Principal::User {
            name: name.to_string(),
            groups: groups.iter().map(ToString::to_string).collect(),
        },
        ..lockdown("lockdownNormal")
    };
    let night = as_user("CORP\\eve", &["platform-team", "night-shift"]);
    let day = as_user("CORP\\eve", &["platform-team"]);
    for _ in 0..2 {
        let d = set.evaluate(&night);
        assert!(!d.allowed, "{d:?}");
        assert_eq!(ids(&d.determining), ["night-shift-no-lockdown"]);
        // The same user with other groups is another principal: not the kept store.
        assert!(set.evaluate(&day).allowed);
    }
    assert_eq!(set.principal_stores.len(), 2);
    // A known user in a group entities.json does not list is added too, with its groups.
    let admin_at_night = as_user("VSPHERE.LOCAL\\Administrator", &["night-shift"]);
    assert!(!set.evaluate(&admin_at_night).allowed);
    assert!(set.evaluate(&lockdown("lockdownNormal")).allowed);
    assert_eq!(set.principal_stores.len(), 3);

    // The kept stores are bounded, and a store made anew decides the same.
    for i in 0..request_entities::KEPT_PRINCIPALS * 2 {
        let d = set.evaluate(&as_user(&format!("CORP\\user-{i}"), &["platform-team"]));
        assert!(d.allowed, "{d:?}");
    }
    assert_eq!(
        set.principal_stores.len(),
        request_entities::KEPT_PRINCIPALS
    );
    let d = set.evaluate(&night);
    assert!(!d.allowed, "{d:?}");
    assert_eq!(ids(&d.determining), ["night-shift-no-lockdown"]);
}

#[test]
fn an_unknown_resource_is_evaluated_as_one_without_attributes_or_parents() {
    let tmp = shipped_copy();
    fs::write(
        tmp.path().join("named.cedar"),
        "@id(\"named-hosts-only\")\nforbid (principal, action == VSphere::Action::\"RebootHost_Task\", resource is VSphere::HostSystem)\nunless { resource has name && resource.name like \"esx-*\" };\n\
         @id(\"no-shutdown-of-esx-21\")\nforbid (principal, action == VSphere::Action::\"ShutdownHost_Task\", resource is VSphere::HostSystem)\nwhen { resource has name && resource.name == \"esx-21.example.test\" };\n",
    )
    .expect("write");
    let set = load_ok(tmp.path());
    let call = |action: &str, host: &str| PolicyRequest {
        principal: admin(),
        action: action.to_string(),
        resource: Resource::new("HostSystem", host),
        context: base_context(),
    };
    assert!(set.evaluate(&call("RebootHost_Task", "host-22")).allowed);
    // `has` is false for an unknown host: the forbid applies, without an error.
    let d = set.evaluate(&call("RebootHost_Task", "host-99"));
    assert!(!d.allowed);
    assert_eq!(ids(&d.determining), ["named-hosts-only"]);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    // The attribute of a known host decides; an unknown host has none, and no error.
    let d = set.evaluate(&call("ShutdownHost_Task", "host-21"));
    assert_eq!(ids(&d.determining), ["no-shutdown-of-esx-21"]);
    let d = set.evaluate(&call("ShutdownHost_Task", "host-99"));
    assert!(d.allowed && d.errors.is_empty(), "{d:?}");

    // An unknown host is in no cluster.
    fs::remove_file(tmp.path().join("baseline-permit.cedar")).expect("remove");
    fs::write(
        tmp.path().join("named.cedar"),
        "@id(\"cluster-only\")\npermit (principal, action, resource in VSphere::Cluster::\"domain-c7\");\n",
    )
    .expect("write");
    let set = load_ok(tmp.path());
    assert!(set.evaluate(&call("RebootHost_Task", "host-22")).allowed);
    let d = set.evaluate(&call("RebootHost_Task", "host-99"));
    assert!(!d.allowed);
    assert!(d.no_permit() && d.errors.is_empty(), "{d:?}");
}

#[test]
fn an_unknown_resource_of_a_type_with_required_attributes_fails_closed() {
    let tmp = shipped_copy();
    let schema = fs::read_to_string(tmp.path().join(SCHEMA_FILE)).expect("read");
    let schema = schema.replace("name?: String,", "name: String,");
    fs::write(tmp.path().join(SCHEMA_FILE), schema).expect("write");
    let set = load_ok(tmp.path());
    let reboot = |host: &str| PolicyRequest {
        principal: admin(),
        action: "RebootHost_Task".to_string(),
        resource: Resource::new("HostSystem", host),
        context: base_context(),
    };
    assert!(set.evaluate(&reboot("host-22")).allowed);
    let d = set.evaluate(&reboot("host-99"));
    assert!(!d.allowed);
    assert!(
        d.errors[0].starts_with("request entities: "),
        "{:?}",
        d.errors
    );
}

// ---------------------------------------------------------------- load errors

#[test]
fn typo_in_attribute_is_a_located_load_error() {
    let tmp = dir_with(&[
        ("all.cedar", PERMIT_ALL),
        (
            "lockdown.cedar",
            "@id(\"lockdown-no-strict\")\nforbid (principal, action == VSphere::Action::\"ChangeLockdownMode\", resource)\nwhen {\n  context.body.mdoe == \"lockdownStrict\"\n};\n",
        ),
    ]);
    let errors = load_err(tmp.path());
    let text = errors.to_string();
    let expected = format!("{}:4:3: ", tmp.path().join("lockdown.cedar").display());
    assert!(text.starts_with(&expected), "{text}");
    assert!(text.contains("lockdown-no-strict"), "{text}");
    assert!(text.contains("mdoe"), "{text}");
    assert_eq!(errors.errors[0].line, Some(4));
}

#[test]
fn typo_in_action_name_is_a_load_error() {
    let tmp = dir_with(&[(
        "x.cedar",
        "@id(\"x\")\nforbid (principal, action == VSphere::Action::\"ChangeLockdownMod\", resource);\n",
    )]);
    let text = load_err(tmp.path()).to_string();
    assert!(text.contains("x.cedar:2:"), "{text}");
    assert!(text.contains("ChangeLockdownMod"), "{text}");
}

#[test]
fn impossible_policy_is_a_load_error() {
    // ChangeLockdownMode never targets a Datacenter... it does; use a principal type instead.
    let tmp = dir_with(&[(
        "x.cedar",
        "@id(\"x\")\nforbid (principal is VSphere::Group, action == VSphere::Action::\"ChangeLockdownMode\", resource);\n",
    )]);
    let text = load_err(tmp.path()).to_string();
    assert!(text.contains("warning treated as error"), "{text}");
    assert!(text.contains("x.cedar:"), "{text}");
}

#[test]
fn missing_id_is_a_load_error_with_file_and_line() {
    let tmp = dir_with(&[(
        "b.cedar",
        "// header\n\n@id(\"ok\")\npermit (principal, action, resource);\n\n// no id below\nforbid (principal, action, resource);\n",
    )]);
    let errors = load_err(tmp.path());
    assert_eq!(errors.len(), 1, "{errors}");
    let expected = format!(
        "{}:7:1: policy has no @id(\"...\") annotation",
        tmp.path().join("b.cedar").display()
    );
    assert_eq!(errors.to_string(), expected);
}

#[test]
fn duplicate_id_across_files_is_a_load_error() {
    let tmp = dir_with(&[
        ("a.cedar", PERMIT_ALL),
        (
            "b.cedar",
            "\n\n@id(\"all\")\nforbid (principal, action, resource);\n",
        ),
    ]);
    let errors = load_err(tmp.path());
    assert_eq!(errors.len(), 1, "{errors}");
    let text = errors.to_string();
    assert!(
        text.contains("b.cedar:3:1: duplicate policy id all"),
        "{text}"
    );
    assert!(text.contains("a.cedar:1"), "{text}");
}

#[test]
fn monitor_permit_is_a_load_error() {
    let tmp = dir_with(&[(
        "m.cedar",
        "@id(\"m\")\n@mode(\"monitor\")\npermit (principal, action, resource);\n",
    )]);
    let text = load_err(tmp.path()).to_string();
    assert!(
        text.contains("m.cedar:1:1: policy m: a @mode(\"monitor\") policy must be a forbid"),
        "{text}"
    );
}

#[test]
fn unknown_mode_and_annotation_are_load_errors() {
    let tmp = dir_with(&[(
        "m.cedar",
        "@id(\"m\")\n@mode(\"monitr\")\nforbid (principal, action, resource);\n\
         @id(\"n\")\n@reasn(\"typo\")\nforbid (principal, action, resource);\n",
    )]);
    let errors = load_err(tmp.path());
    let text = errors.to_string();
    assert_eq!(errors.len(), 2, "{text}");
    assert!(text.contains("unknown @mode(\"monitr\")"), "{text}");
    assert!(
        text.contains("m.cedar:4:1: unknown annotation @reasn"),
        "{text}"
    );
}

#[test]
fn templates_and_bad_ids_are_load_errors() {
    let tmp = dir_with(&[(
        "t.cedar",
        "@id(\"t\")\npermit (principal == ?principal, action, resource);\n\
         @id(\"has space\")\nforbid (principal, action, resource);\n",
    )]);
    let text = load_err(tmp.path()).to_string();
    assert!(text.contains("t.cedar:1:1: policy templates"), "{text}");
    assert!(
        text.contains("t.cedar:3:1: invalid @id(\"has space\")"),
        "{text}"
    );
}

#[test]
fn parse_errors_are_located_and_all_files_reported() {
    let tmp = dir_with(&[
        (
            "a.cedar",
            "@id(\"a\")\npermit (principal, action, resource)\n",
        ),
        (
            "b.cedar",
            "@id(\"b\")\nforbid (principal, action, resource) when { context. };\n",
        ),
    ]);
    let errors = load_err(tmp.path());
    let text = errors.to_string();
    assert!(text.contains("a.cedar:"), "{text}");
    assert!(text.contains("b.cedar:2:"), "{text}");
    for e in &errors {
        assert!(e.file.is_some(), "{e}");
    }
}

#[test]
fn optional_attribute_without_has_is_rejected_at_load() {
    // Strict validation catches the classic runtime error (reading `context.ticket` when the
    // call has no ticket) before it can ever happen.
    let tmp = dir_with(&[
        ("all.cedar", PERMIT_ALL),
        (
            "t.cedar",
            "@id(\"t\")\nforbid (principal, action == VSphere::Action::\"EnterMaintenanceMode_Task\", resource)\nunless { context.ticket.verified };\n",
        ),
    ]);
    let text = load_err(tmp.path()).to_string();
    assert!(text.contains("t.cedar:3:"), "{text}");
    assert!(text.contains("ticket"), "{text}");
}

#[test]
fn schema_errors_are_located() {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::write(
        tmp.path().join(SCHEMA_FILE),
        "namespace VSphere {\n  entity User in [Grup];\n}\n",
    )
    .expect("write");
    let text = load_err(tmp.path()).to_string();
    assert!(text.contains("schema.cedarschema"), "{text}");
    assert!(text.contains("Grup"), "{text}");
}

#[test]
fn missing_schema_is_a_load_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::write(tmp.path().join("a.cedar"), PERMIT_ALL).expect("write");
    let text = load_err(tmp.path()).to_string();
    assert!(
        text.contains("schema.cedarschema: the schema file is missing"),
        "{text}"
    );
}

#[test]
fn invalid_entities_are_a_load_error() {
    let tmp = dir_with(&[("all.cedar", PERMIT_ALL)]);
    fs::write(
        tmp.path().join(ENTITIES_FILE),
        r#"[{ "uid": { "type": "VSphere::User", "id": "x" }, "attrs": {},
             "parents": [{ "type": "VSphere::Cluster", "id": "c" }] }]"#,
    )
    .expect("write");
    let text = load_err(tmp.path()).to_string();
    assert!(text.contains("entities.json"), "{text}");
}

#[test]
fn declared_actions_are_guarded_and_must_use_the_common_context() {
    let tmp = dir_with(&[("all.cedar", PERMIT_ALL)]);
    let schema = fs::read_to_string(tmp.path().join(SCHEMA_FILE)).expect("read");
    let extra = "  action Destroy_Task in [HostPower] appliesTo {\n    principal: [User, Unauthenticated],\n    resource: [HostSystem, Cluster, Datacenter, ManagedObject],\n    context: CallContext,\n  };\n}\n";
    let good = schema.trim_end().trim_end_matches('}').to_string() + extra;
    fs::write(tmp.path().join(SCHEMA_FILE), &good).expect("write");
    let set = load_ok(tmp.path());
    assert!(set.guarded_actions().contains(&"Destroy_Task".to_string()));
    let request = PolicyRequest {
        action: "Destroy_Task".to_string(),
        resource: Resource::new("HostSystem", "host-23"),
        context: base_context(),
        principal: admin(),
    };
    assert!(set.evaluate(&request).allowed);
    // A resource type the action does not apply to: request validation fails, deny.
    let request = PolicyRequest {
        resource: Resource::new("HostAccessManager", "ham-21"),
        ..request
    };
    let d = set.evaluate(&request);
    assert!(!d.allowed);
    assert!(d.errors[0].starts_with("request: "), "{:?}", d.errors);

    let bad = good.replace(
        "context: CallContext,\n  };\n}",
        "context: { reason: String },\n  };\n}",
    );
    fs::write(tmp.path().join(SCHEMA_FILE), bad).expect("write");
    let text = load_err(tmp.path()).to_string();
    assert!(
        text.contains("action Destroy_Task: its context must be"),
        "{text}"
    );
}

#[test]
fn load_collects_all_errors() {
    let tmp = dir_with(&[
        ("a.cedar", "permit (principal, action, resource);\n"),
        (
            "b.cedar",
            "@id(\"b\")\n@mode(\"monitor\")\npermit (principal, action, resource);\n",
        ),
        (
            "c.cedar",
            "@id(\"c\")\nforbid (principal, action, resource) when { context.nope };\n",
        ),
    ]);
    let errors = load_err(tmp.path());
    let files: Vec<String> = errors
        .iter()
        .filter_map(|e| e.file.as_ref())
        .filter_map(|f| f.file_name())
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    for f in ["a.cedar", "b.cedar", "c.cedar"] {
        assert!(files.iter().any(|x| x == f), "{errors}");
    }
    assert_eq!(errors.to_string().lines().count(), errors.len());
}

// ---------------------------------------------------------------- evaluation errors

/// A forbid that passes strict validation but fails at run time: Long overflow for any
/// `hour_utc >= 2`. Cedar alone would skip it (and the permit would allow); the engine denies.
const OVERFLOW_FORBID: &str = "@id(\"overflow\")\n@reason(\"arithmetic overflow at run time\")\nforbid (principal, action == VSphere::Action::\"ChangeLockdownMode\", resource)\nwhen { context.hour_utc * 4611686018427387904 > 0 };\n";

#[test]
fn evaluation_error_denies_and_names_the_policy() {
    let tmp = dir_with(&[
        ("all.cedar", PERMIT_ALL),
        ("overflow.cedar", OVERFLOW_FORBID),
    ]);
    let set = load_ok(tmp.path());
    let d = set.evaluate(&lockdown("lockdownNormal"));
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.errors.len(), 1, "{d:?}");
    assert!(
        d.errors[0].starts_with("policy overflow: "),
        "{:?}",
        d.errors
    );
    assert!(d.errors[0].contains("overflow"), "{:?}", d.errors);
    assert!(d.determining.is_empty());
    assert!(
        d.denial_text()
            .starts_with("Blocked by vcguard: policy evaluation failed (policy overflow: "),
        "{}",
        d.denial_text()
    );
    // At hour 0 the same policy evaluates fine (0 * n = 0, not > 0) and the permit decides.
    let mut request = lockdown("lockdownNormal");
    request.context = with(request.context, "hour_utc", json!(0));
    let d = set.evaluate(&request);
    assert!(d.allowed, "{d:?}");
}

#[test]
fn monitor_evaluation_error_is_reported_not_blocking() {
    let monitor =
        OVERFLOW_FORBID.replace("@id(\"overflow\")", "@id(\"overflow\")\n@mode(\"monitor\")");
    let tmp = dir_with(&[("all.cedar", PERMIT_ALL), ("overflow.cedar", &monitor)]);
    let set = load_ok(tmp.path());
    let d = set.evaluate(&lockdown("lockdownNormal"));
    assert!(d.allowed, "{d:?}");
    assert!(d.errors.is_empty());
    assert_eq!(ids(&d.monitor_hits), ["overflow"]);
    assert_eq!(d.monitor_errors.len(), 1);
}

// ---------------------------------------------------------------- reload

#[test]
fn reload_swaps_valid_sets_and_keeps_the_last_good_one() {
    let tmp = shipped_copy();
    let store = PolicyStore::new(load_ok(tmp.path()), tmp.path().to_path_buf());
    let first = store.current();
    assert_eq!(store.reload(), Ok(ReloadOutcome::Unchanged));
    let fingerprint = store.dir_fingerprint();

    // A valid change: strict lockdown allowed again.
    fs::remove_file(tmp.path().join("lockdown-no-strict.cedar")).expect("rm");
    assert_ne!(store.dir_fingerprint(), fingerprint);
    let outcome = store.reload().expect("valid reload");
    let second = store.current();
    assert_eq!(
        outcome,
        ReloadOutcome::Changed {
            old_hash: first.hash().to_string(),
            new_hash: second.hash().to_string()
        }
    );
    assert!(second.evaluate(&lockdown("lockdownStrict")).allowed);
    assert!(
        !first.evaluate(&lockdown("lockdownStrict")).allowed,
        "old Arc unchanged"
    );

    // A broken change: the error is reported and the second set stays in force.
    fs::write(
        tmp.path().join("broken.cedar"),
        "@id(\"broken\")\nforbid (principal, action, resource) when { context.body.mdoe == \"x\" };\n",
    )
    .expect("write");
    let errors = store.reload().expect_err("broken reload");
    assert!(errors.to_string().contains("broken.cedar:2:"), "{errors}");
    let third = store.current();
    assert_eq!(third.hash(), second.hash());
    assert_eq!(
        third.evaluate(&lockdown("lockdownStrict")),
        second.evaluate(&lockdown("lockdownStrict"))
    );
}

#[test]
fn fingerprint_sees_content_changes() {
    let tmp = dir_with(&[("all.cedar", PERMIT_ALL)]);
    let before = store::dir_fingerprint(tmp.path());
    assert_eq!(before, store::dir_fingerprint(tmp.path()));
    fs::write(tmp.path().join("all.cedar"), format!("{PERMIT_ALL}\n")).expect("write");
    assert_ne!(before, store::dir_fingerprint(tmp.path()));
    fs::write(tmp.path().join("notes.txt"), "ignored").expect("write");
    let now = store::dir_fingerprint(tmp.path());
    fs::write(tmp.path().join("notes.txt"), "still ignored").expect("write");
    assert_eq!(now, store::dir_fingerprint(tmp.path()));
}

// ---------------------------------------------------------------- test runner

#[test]
fn test_runner_reports_failures_readably() {
    let tmp = shipped_copy();
    fs::create_dir(tmp.path().join(TESTS_DIR)).expect("mkdir");
    fs::write(
        tmp.path().join(TESTS_DIR).join("wrong.toml"),
        r#"
[[case]]
name = "wrongly expects strict lockdown to pass"
principal = 'User::"VSPHERE.LOCAL\\Administrator"'
action = "ChangeLockdownMode"
resource = 'HostAccessManager::"ham-21"'
context = { protocol = "json", indirect = false, route = "direct", client_ip = "127.0.0.1", hour_utc = 10, weekday = 1, body = { mode = "lockdownStrict" } }
expect = "allow"
policies = ["baseline-permit"]

[[case]]
name = "right"
principal = 'User::"VSPHERE.LOCAL\\Administrator"'
action = "ChangeLockdownMode"
resource = 'HostAccessManager::"ham-21"'
context = { protocol = "json", indirect = false, route = "direct", client_ip = "127.0.0.1", hour_utc = 10, weekday = 1, body = { mode = "lockdownStrict" } }
expect = "deny"
policies = ["lockdown-no-strict"]
monitor = []
"#,
    )
    .expect("write");
    let report = run_tests(tmp.path()).expect("loads");
    assert_eq!(report.summary(), "1 passed, 1 failed");
    let failure = report.cases[0].failure.as_deref().expect("failed");
    assert!(failure.contains("expected allow, got deny"), "{failure}");
    assert!(
        failure.contains("expected [baseline-permit], got [lockdown-no-strict]"),
        "{failure}"
    );
    assert_eq!(report.cases[0].line, Some(2));
    let shown = report.to_string();
    assert!(shown.contains("FAIL "), "{shown}");
    assert!(shown.ends_with("1 passed, 1 failed"), "{shown}");
    assert!(shown.contains("no case names policies"), "{shown}");
}

#[test]
fn test_runner_rejects_malformed_case_files() {
    let tmp = shipped_copy();
    fs::create_dir(tmp.path().join(TESTS_DIR)).expect("mkdir");
    fs::write(
        tmp.path().join(TESTS_DIR).join("bad.toml"),
        "[[case]]\nname = \"x\"\nexpect = \"maybe\"\n",
    )
    .expect("write");
    let errors = run_tests(tmp.path()).expect_err("bad file");
    let text = errors.to_string();
    assert!(text.contains("bad.toml:3:"), "{text}");
}

#[test]
fn test_runner_requires_declared_errors() {
    let tmp = shipped_copy();
    fs::create_dir(tmp.path().join(TESTS_DIR)).expect("mkdir");
    fs::write(
        tmp.path().join(TESTS_DIR).join("err.toml"),
        "[[case]]\nname = \"typo in context\"\nprincipal = \"Unauthenticated\"\naction = \"ChangeLockdownMode\"\nresource = 'HostAccessManager::\"ham-21\"'\ncontext = { bogus = 1 }\nexpect = \"deny\"\n",
    )
    .expect("write");
    let report = run_tests(tmp.path()).expect("loads");
    let failure = report.cases[0].failure.as_deref().expect("failed");
    assert!(failure.contains("unexpected errors"), "{failure}");
}

// ---------------------------------------------------------------- parsing, texts, explain

#[test]
fn principal_and_resource_parsing() {
    assert_eq!(
        parse_principal(r#"User::"VSPHERE.LOCAL\\Administrator""#),
        Ok(Principal::User {
            name: "VSPHERE.LOCAL\\Administrator".to_string(),
            groups: vec![]
        })
    );
    assert_eq!(
        parse_principal(r#"VSphere::User::"alice""#),
        Ok(Principal::User {
            name: "alice".to_string(),
            groups: vec![]
        })
    );
    assert_eq!(
        parse_principal("Unauthenticated"),
        Ok(Principal::Unauthenticated)
    );
    assert_eq!(
        parse_principal(r#"Unauthenticated::"x""#),
        Ok(Principal::Unauthenticated)
    );
    assert!(matches!(
        parse_principal(r#"Group::"g""#),
        Err(EntityRefError::PrincipalType { .. })
    ));
    assert!(matches!(
        parse_principal(r#"Other::User::"g""#),
        Err(EntityRefError::Namespace { .. })
    ));
    assert!(matches!(
        parse_principal("User:alice"),
        Err(EntityRefError::Syntax { .. })
    ));
    assert_eq!(
        parse_resource(r#"HostAccessManager::"ham-21""#),
        Ok(Resource::new("HostAccessManager", "ham-21"))
    );
    assert_eq!(
        parse_resource(r#"VSphere::HostSystem::"host-[1]""#),
        Ok(Resource::new("HostSystem", "host-[1]"))
    );
    assert_eq!(
        admin().to_string(),
        r#"User::"VSPHERE.LOCAL\\Administrator" (groups: platform-team)"#
    );
}

#[test]
fn denial_text_variants() {
    let hit = |id: &str, reason: Option<&str>| PolicyHit {
        id: id.to_string(),
        reason: reason.map(str::to_string),
    };
    let mut d = Decision {
        allowed: false,
        approval: None,
        action: "ChangeLockdownMode".to_string(),
        determining: vec![hit("a", Some("reason a")), hit("b", None)],
        monitor_hits: vec![],
        errors: vec![],
        monitor_errors: vec![],
        policy_set_hash: String::new(),
        refusal: None,
    };
    assert_eq!(
        d.denial_text(),
        "Blocked by vcguard policy a: reason a; policy b"
    );
    d.determining.clear();
    assert_eq!(
        d.denial_text(),
        "Blocked by vcguard: no policy permits ChangeLockdownMode"
    );
    d.errors = vec!["policy x: boom".to_string()];
    assert_eq!(
        d.denial_text(),
        "Blocked by vcguard: policy evaluation failed (policy x: boom)"
    );
}

#[test]
fn explain_describes_the_decision() {
    let set = load_ok(&shipped_dir());
    let text = explain(&set, &lockdown("lockdownStrict"));
    assert!(text.starts_with("decision:  DENY\n"), "{text}");
    assert!(
        text.contains("forbidden by:\n  - lockdown-no-strict: strict lockdown"),
        "{text}"
    );
    assert!(
        text.contains("client text: Blocked by vcguard policy lockdown-no-strict"),
        "{text}"
    );

    let body =
        json!({ "timeout": 0, "maintenanceSpec": { "vsanMode": { "objectAction": "noAction" } } });
    let mut request = maintenance(body, Some(good_ticket()));
    request.resource = Resource::new("ReflectManagedMethodExecuter", "ha-cli");
    let text = explain(&set, &request);
    assert!(text.starts_with("decision:  ALLOW\n"), "{text}");
    assert!(text.contains("(evaluated as ManagedObject)"), "{text}");
    assert!(
        text.contains("monitor (would deny):\n  - vsan-no-action-monitor: "),
        "{text}"
    );
}

#[test]
fn approval_forbids_need_an_approval_only_when_they_alone_deny() {
    let set = load_ok(&shipped_dir());
    let d = set.evaluate(&lockdown("lockdownDisabled"));
    assert!(!d.allowed);
    let need = d.approval.as_ref().expect("needs approval");
    assert_eq!(need.group, "change-approvers");
    assert_eq!(ids(&d.determining), ["lockdown-disable-needs-approval"]);
    let approved = set.evaluate_approved(&lockdown("lockdownDisabled"));
    assert!(approved.allowed, "{approved:?}");
    // Another forbid alongside: a plain deny, no approval can lift it.
    let tmp = shipped_copy();
    fs::write(
        tmp.path().join("freeze.cedar"),
        "@id(\"freeze\")\nforbid (principal, action == VSphere::Action::\"ChangeLockdownMode\", resource);\n",
    )
    .expect("write");
    let frozen = load_ok(tmp.path()).evaluate(&lockdown("lockdownDisabled"));
    assert!(!frozen.allowed && frozen.approval.is_none(), "{frozen:?}");
}

#[test]
fn approval_annotations_are_checked_at_load() {
    for (policy, needle) in [
        (
            "@id(\"p\")\n@approval(\"g\")\npermit (principal, action, resource);\n",
            "must be a forbid",
        ),
        (
            "@id(\"m\")\n@mode(\"monitor\")\n@approval(\"g\")\nforbid (principal, action, resource);\n",
            "cannot be @mode",
        ),
        (
            "@id(\"e\")\n@approval(\"\")\nforbid (principal, action, resource);\n",
            "names the approver group",
        ),
    ] {
        let tmp = shipped_copy();
        fs::write(tmp.path().join("extra.cedar"), policy).expect("write");
        let errors = load_err(tmp.path()).to_string();
        assert!(errors.contains(needle), "{policy}: {errors}");
    }
}
