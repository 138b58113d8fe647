//! Generated policy files for the decision benchmark and the index equivalence tests: a mix
//! of permits and forbids (some in monitor mode) over single methods, method lists, action
//! groups and every action, scoped to users, groups and inventory, with `when`/`unless`
//! conditions on the call context and the typed bodies. All of them validate against the
//! shipped schema. None of the forbids matches the representative request of the benchmark
//! (an `Administrator` call from 10.1.2.3 at 10:00 on a Wednesday with a verified ticket), so
//! that request is decided by the shipped policies alone.
//!
//! Used by `benches/decide.rs` (included by path) and `policy::tests`; std only.

/// The guarded methods of the shipped schema.
const METHODS: &[&str] = &[
    "EnterMaintenanceMode_Task",
    "ExitMaintenanceMode_Task",
    "ChangeLockdownMode",
    "EnterLockdownMode",
    "ExitLockdownMode",
    "RebootHost_Task",
    "ShutdownHost_Task",
];

/// The action groups of the shipped schema.
const GROUPS: &[&str] = &["HostMaintenance", "HostLockdown", "HostPower"];

/// `count` policy files `(name, text)`, one policy each, deterministic in `count`.
pub(crate) fn policy_files(count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| (format!("generated-{i:04}.cedar"), policy(i)))
        .collect()
}

/// The `i`-th generated policy.
fn policy(i: usize) -> String {
    let method = METHODS[i % METHODS.len()];
    let has_body = matches!(method, "EnterMaintenanceMode_Task" | "ChangeLockdownMode");
    // Action scope: mostly one method; some lists, groups, and a few unconstrained.
    let (action, body_allowed) = match i % 20 {
        0 => ("action".to_string(), false),
        1..=3 => (
            format!(
                "action in VSphere::Action::\"{}\"",
                GROUPS[(i / 20) % GROUPS.len()]
            ),
            false,
        ),
        4..=6 => (
            format!(
                "action in [VSphere::Action::\"{method}\", VSphere::Action::\"{}\"]",
                METHODS[(i + 3) % METHODS.len()]
            ),
            false,
        ),
        _ => (format!("action == VSphere::Action::\"{method}\""), has_body),
    };
    let principal = match i % 5 {
        0 => "principal".to_string(),
        1 => format!("principal in VSphere::Group::\"team-{}\"", i % 17),
        2 => format!("principal == VSphere::User::\"VSPHERE.LOCAL\\\\svc-{i}\""),
        3 => "principal is VSphere::User".to_string(),
        _ => "principal in VSphere::Group::\"platform-team\"".to_string(),
    };
    let resource = match i % 4 {
        0 => "resource".to_string(),
        1 => "resource in VSphere::Cluster::\"domain-c7\"".to_string(),
        2 => format!("resource == VSphere::HostSystem::\"host-{}\"", 21 + i % 3),
        _ => "resource in VSphere::Datacenter::\"datacenter-1\"".to_string(),
    };
    // A condition that is false for the benchmark's request, so forbids never fire on it.
    let never_for_bench = match i % 6 {
        0 => format!(
            "context.client_ip.isInRange(ip(\"192.0.2.{}/32\"))",
            i % 250
        ),
        1 => format!("context.hour_utc == {}", (i % 23 + 11) % 24),
        2 => "context.weekday >= 5".to_string(),
        3 => "context.route == \"alarm\" && context.indirect".to_string(),
        4 => "context has ticket && context.ticket.kind == \"pattern\"".to_string(),
        _ => "context.protocol == \"json\" && !(context has ticket)".to_string(),
    };
    let body = if body_allowed {
        match method {
            "ChangeLockdownMode" => " && context.body.mode == \"lockdownDisabled\"".to_string(),
            _ => format!(" && context.body.timeout > {}", 600 + i),
        }
    } else {
        String::new()
    };
    let (effect, mode, condition) = match i % 10 {
        0..=1 => (
            "permit",
            "",
            format!("when {{ context.hour_utc >= {} }}", i % 8),
        ),
        2 => (
            "forbid",
            "@mode(\"monitor\")\n",
            format!("when {{ {never_for_bench}{body} }}"),
        ),
        3 => (
            "forbid",
            "",
            format!(
                "unless {{ context has ticket && context.ticket.verified || context.client_ip.isLoopback() || context.hour_utc != {} }}",
                i % 24
            ),
        ),
        _ => ("forbid", "", format!("when {{ {never_for_bench}{body} }}")),
    };
    format!(
        "@id(\"generated-{i:04}\")\n@reason(\"generated guardrail {i}\")\n{mode}{effect} (\n  {principal},\n  {action},\n  {resource}\n)\n{condition};\n"
    )
}
