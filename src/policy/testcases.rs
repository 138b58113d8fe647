//! Policy test cases (`policies/tests/*.toml`) and the runner the CLI calls.
//!
//! A case file holds an optional `[defaults]` table (any of `principal`, `groups`, `action`,
//! `resource`, `context`) and `[[case]]` entries:
//!
//! ```toml
//! [defaults]
//! principal = 'User::"VSPHERE.LOCAL\\Administrator"'
//! [defaults.context]
//! protocol = "json"
//! indirect = false
//! route = "direct"
//! client_ip = "127.0.0.1"
//! hour_utc = 10
//! weekday = 1
//!
//! [[case]]
//! name = "strict lockdown is refused"
//! action = "ChangeLockdownMode"
//! resource = 'HostAccessManager::"ham-21"'
//! expect = "deny"                    # allow | deny | approval (denied until approved)
//! # approval_group = "change-approvers"  # with expect = "approval": the group asked
//! # approved = true                  # decide as a call whose approval was granted
//! policies = ["lockdown-no-strict"]  # the determining policy ids (as a set); default []
//! monitor = []                       # the would-deny monitor ids (as a set); default []
//! # error_contains = "overflow"      # required when the decision carries errors
//! [case.context.body]                # merged over [defaults.context], key by key
//! mode = "lockdownStrict"
//! ```

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::TESTS_DIR;
use super::engine::PolicySet;
use super::error::{LoadError, LoadErrors};
use super::request::{PolicyRequest, Principal, parse_principal, parse_resource};

/// The outcome of one test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The case file.
    pub file: PathBuf,
    /// The line of the case in its file, when known.
    pub line: Option<usize>,
    /// The case's `name`.
    pub name: String,
    /// Why the case failed (`None` when it passed).
    pub failure: Option<String>,
}

impl CaseResult {
    /// True when the decision matched the expectation.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// The outcome of all test cases of a policy directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TestReport {
    /// Every case, in file and case order.
    pub cases: Vec<CaseResult>,
    /// Policy ids no case names in `policies` or `monitor` (a hint, not a failure).
    pub untested: Vec<String>,
}

impl TestReport {
    /// The number of cases that passed.
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed()).count()
    }

    /// The number of cases that failed.
    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }

    /// True when no case failed.
    pub fn success(&self) -> bool {
        self.failed() == 0
    }

    /// `N passed, N failed`.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed(), self.failed())
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for case in &self.cases {
            let location = match case.line {
                Some(line) => format!("{}:{line}", case.file.display()),
                None => case.file.display().to_string(),
            };
            match &case.failure {
                None => writeln!(f, "ok   {location}: {}", case.name)?,
                Some(why) => {
                    writeln!(f, "FAIL {location}: {}", case.name)?;
                    for line in why.lines() {
                        writeln!(f, "       {line}")?;
                    }
                }
            }
        }
        if !self.untested.is_empty() {
            writeln!(
                f,
                "note: no case names policies {}",
                self.untested.join(", ")
            )?;
        }
        write!(f, "{}", self.summary())
    }
}

/// `allow` | `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Allow,
    Deny,
    /// Denied, but an approval of the `@approval` group would lift it.
    Approval,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    principal: Option<String>,
    groups: Option<Vec<String>>,
    action: Option<String>,
    resource: Option<String>,
    context: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseSpec {
    name: String,
    principal: Option<String>,
    groups: Option<Vec<String>>,
    action: Option<String>,
    resource: Option<String>,
    context: Option<toml::Table>,
    expect: Expect,
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    monitor: Vec<String>,
    error_contains: Option<String>,
    approval_group: Option<String>,
    #[serde(default)]
    approved: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    case: Vec<toml::Spanned<CaseSpec>>,
}

/// Loads the policy set in `dir`, runs every case in `dir/tests/*.toml` (files in name order)
/// and reports each; a policy set or case file that cannot be loaded is an error.
pub fn run_tests(dir: &Path) -> Result<TestReport, LoadErrors> {
    let set = PolicySet::load(dir)?;
    let tests_dir = dir.join(TESTS_DIR);
    let mut files = Vec::new();
    if tests_dir.is_dir() {
        let entries = fs::read_dir(&tests_dir).map_err(|e| {
            LoadErrors::one(LoadError::general(format!(
                "cannot read {}: {e}",
                tests_dir.display()
            )))
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| {
                LoadErrors::one(LoadError::general(format!(
                    "cannot read {}: {e}",
                    tests_dir.display()
                )))
            })?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();

    let mut errors = Vec::new();
    let mut report = TestReport::default();
    let mut named: HashSet<String> = HashSet::new();
    for path in files {
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                errors.push(LoadError::in_file(&path, format!("cannot read: {e}")));
                continue;
            }
        };
        let parsed: CaseFile = match toml::from_str(&text) {
            Ok(parsed) => parsed,
            Err(e) => {
                let message = e.message().to_string();
                errors.push(match e.span() {
                    Some(span) => LoadError::at(&path, &text, span.start, message),
                    None => LoadError::in_file(&path, message),
                });
                continue;
            }
        };
        for spanned in parsed.case {
            let line = super::error::line_col(&text, spanned.span().start).0;
            let case = spanned.into_inner();
            named.extend(case.policies.iter().cloned());
            named.extend(case.monitor.iter().cloned());
            let failure = run_case(&set, &parsed.defaults, &case).err();
            report.cases.push(CaseResult {
                file: path.clone(),
                line: Some(line),
                name: case.name,
                failure,
            });
        }
    }
    if !errors.is_empty() {
        return Err(LoadErrors::new(errors));
    }
    report.untested = set
        .policy_ids()
        .into_iter()
        .filter(|id| !named.contains(id))
        .collect();
    Ok(report)
}

/// Builds the case's request, evaluates it and compares; `Err` carries the failure text.
fn run_case(set: &PolicySet, defaults: &Defaults, case: &CaseSpec) -> Result<(), String> {
    let request = build_request(defaults, case)?;
    let decision = if case.approved {
        set.evaluate_approved(&request)
    } else {
        set.evaluate(&request)
    };
    let mut problems = Vec::new();

    let got_group = decision.approval.as_ref().map(|need| need.group.as_str());
    match (&case.expect, got_group) {
        (Expect::Approval, None) => problems.push("expected a denial an approval can lift".into()),
        (Expect::Approval, Some(group)) => {
            if let Some(want) = &case.approval_group
                && want != group
            {
                problems.push(format!("approval group: expected {want}, got {group}"));
            }
        }
        (_, Some(group)) => problems.push(format!(
            "the call needs an approval of {group} (expect = \"approval\")"
        )),
        (_, None) => {}
    }
    let expected_allow = case.expect == Expect::Allow;
    if decision.allowed != expected_allow {
        problems.push(format!(
            "expected {}, got {}",
            if expected_allow { "allow" } else { "deny" },
            if decision.allowed { "allow" } else { "deny" }
        ));
    }
    let got: BTreeSet<&str> = decision.determining.iter().map(|h| h.id.as_str()).collect();
    let want: BTreeSet<&str> = case.policies.iter().map(String::as_str).collect();
    if got != want {
        problems.push(format!(
            "determining policies: expected [{}], got [{}]",
            join(&want),
            join(&got)
        ));
    }
    let got: BTreeSet<&str> = decision
        .monitor_hits
        .iter()
        .map(|h| h.id.as_str())
        .collect();
    let want: BTreeSet<&str> = case.monitor.iter().map(String::as_str).collect();
    if got != want {
        problems.push(format!(
            "monitor hits: expected [{}], got [{}]",
            join(&want),
            join(&got)
        ));
    }
    let known: HashSet<String> = set.policy_ids().into_iter().collect();
    for id in case.policies.iter().chain(&case.monitor) {
        if !known.contains(id) {
            problems.push(format!("no policy has @id(\"{id}\")"));
        }
    }
    match &case.error_contains {
        Some(needle) => {
            if !decision.errors.iter().any(|e| e.contains(needle.as_str())) {
                problems.push(format!(
                    "expected an error containing `{needle}`, got [{}]",
                    decision.errors.join("; ")
                ));
            }
        }
        None => {
            if !decision.errors.is_empty() {
                problems.push(format!(
                    "unexpected errors (add error_contains if intended): {}",
                    decision.errors.join("; ")
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn join(items: &BTreeSet<&str>) -> String {
    items.iter().copied().collect::<Vec<_>>().join(", ")
}

/// The request a case describes, its fields falling back to the file's `[defaults]`.
fn build_request(defaults: &Defaults, case: &CaseSpec) -> Result<PolicyRequest, String> {
    let principal_text = case
        .principal
        .as_ref()
        .or(defaults.principal.as_ref())
        .ok_or("no principal (in the case or in [defaults])")?;
    let mut principal = parse_principal(principal_text).map_err(|e| e.to_string())?;
    let groups = case.groups.as_ref().or(defaults.groups.as_ref());
    match (&mut principal, groups) {
        (Principal::User { groups: g, .. }, Some(groups)) => g.clone_from(groups),
        (Principal::Unauthenticated, Some(groups)) if !groups.is_empty() => {
            return Err("an Unauthenticated principal has no groups".to_string());
        }
        _ => {}
    }
    let action = case
        .action
        .as_ref()
        .or(defaults.action.as_ref())
        .ok_or("no action (in the case or in [defaults])")?
        .clone();
    let resource_text = case
        .resource
        .as_ref()
        .or(defaults.resource.as_ref())
        .ok_or("no resource (in the case or in [defaults])")?;
    let resource = parse_resource(resource_text).map_err(|e| e.to_string())?;

    let mut context = serde_json::Map::new();
    for table in [defaults.context.as_ref(), case.context.as_ref()]
        .into_iter()
        .flatten()
    {
        for (key, value) in table {
            context.insert(key.clone(), toml_to_json(value));
        }
    }
    Ok(PolicyRequest {
        principal,
        action,
        resource,
        context: serde_json::Value::Object(context),
    })
}

/// TOML value to JSON (datetimes become strings; non-finite floats become null).
fn toml_to_json(value: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => J::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => J::Object(
            table
                .iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}
