//! The change system's verdict on one ticket for one call, and how it reads in the policy context.

use serde_json::{Map, Value, json};

use super::client::LookupError;
use super::config::{ChangeSystemSettings, state_name};
use super::record::{ChangeRecord, utc_minutes};

/// What the change system says about a ticket for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeVerdict {
    /// The ticket id asked about.
    pub id: String,
    /// The change exists, is in an allowed state and (with `check_window`) inside its window.
    pub verified: bool,
    /// The target's host is a configuration item of the change (always true without `check_hosts`).
    pub covers_target: bool,
    /// ServiceNow changes name no vim methods: true whenever the change is verified.
    pub covers_action: bool,
    /// The change's state name (`implement`), or its code for a custom state; `None` if unknown.
    pub change_state: Option<String>,
    /// Planned start, unix seconds.
    pub window_start: Option<i64>,
    /// Planned end, unix seconds.
    pub window_end: Option<i64>,
    /// Why the ticket does not authorise the call; `None` when it does.
    pub reason: Option<String>,
    /// Which change system answered: `"servicenow"`.
    pub source: &'static str,
    /// Whether the answer came from the cache.
    pub cached: bool,
}

impl ChangeVerdict {
    /// A verdict refusing ticket `id` before (or instead of) asking, with `reason`.
    pub(crate) fn refused(id: &str, source: &'static str, reason: String) -> Self {
        Self {
            id: id.to_owned(),
            verified: false,
            covers_target: false,
            covers_action: false,
            change_state: None,
            window_start: None,
            window_end: None,
            reason: Some(reason),
            source,
            cached: false,
        }
    }

    /// Whether the ticket authorises the call: verified and covering target and action.
    pub fn authorises(&self) -> bool {
        self.verified && self.covers_target && self.covers_action
    }

    /// The fields this verdict sets in the policy context's `ticket` record: `verified`,
    /// `covers_target`, `covers_action`, `source` and, when known, `change_state`,
    /// `window_start`, `window_end`.
    pub fn context_fields(&self) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("verified".into(), json!(self.verified));
        fields.insert("covers_target".into(), json!(self.covers_target));
        fields.insert("covers_action".into(), json!(self.covers_action));
        fields.insert("source".into(), json!(self.source));
        if let Some(state) = &self.change_state {
            fields.insert("change_state".into(), json!(state));
        }
        if let Some(start) = self.window_start {
            fields.insert("window_start".into(), json!(start));
        }
        if let Some(end) = self.window_end {
            fields.insert("window_end".into(), json!(end));
        }
        fields
    }

    /// A few lines for operators (`vcguard ticket check`): the outcome, then the facts.
    pub fn report(&self, hosts: &[String]) -> String {
        let mut out = if self.authorises() {
            format!("{}: authorised by {}\n", self.id, self.source)
        } else {
            format!("{}: NOT authorised by {}\n", self.id, self.source)
        };
        if let Some(reason) = &self.reason {
            out.push_str(&format!("  reason: {reason}\n"));
        }
        if let Some(state) = &self.change_state {
            out.push_str(&format!("  state:  {state}\n"));
        }
        let when = |t: Option<i64>| t.map(utc_minutes).unwrap_or_else(|| "(not set)".into());
        if self.change_state.is_some() {
            out.push_str(&format!(
                "  window: {} to {}\n",
                when(self.window_start),
                when(self.window_end)
            ));
        }
        if !hosts.is_empty() {
            out.push_str(&format!(
                "  hosts:  {} ({})\n",
                hosts.join(", "),
                if self.covers_target {
                    "configuration items of the change"
                } else {
                    "not covered"
                }
            ));
        }
        out
    }

    /// Merges the verdict into a ticket record from the pattern or signature check: the change
    /// system can only take coverage away (`verified`, `covers_*` become the AND of both).
    pub fn apply_to(&self, record: &mut Value) {
        let Some(map) = record.as_object_mut() else {
            return;
        };
        for (key, value) in self.context_fields() {
            let merged = match (map.get(&key), &value) {
                (Some(Value::Bool(before)), Value::Bool(now)) => Value::Bool(*before && *now),
                _ => value,
            };
            map.insert(key, merged);
        }
    }
}

/// Judges a look-up's outcome for a call on `hosts` (host names) at `now` (unix seconds).
pub(crate) fn judge(
    settings: &ChangeSystemSettings,
    id: &str,
    lookup: &Result<ChangeRecord, LookupError>,
    hosts: &[String],
    now: i64,
) -> ChangeVerdict {
    let source = settings.kind.as_str();
    let record = match lookup {
        Ok(record) => record,
        Err(err) => return ChangeVerdict::refused(id, source, err.reason(id)),
    };
    let mut verdict = ChangeVerdict {
        id: id.to_owned(),
        verified: false,
        covers_target: false,
        covers_action: false,
        change_state: Some(state_name(record.state)),
        window_start: record.start,
        window_end: record.end,
        reason: None,
        source,
        cached: false,
    };
    let problem =
        state_problem(settings, id, record).or_else(|| window_problem(settings, id, record, now));
    if let Some(reason) = problem {
        verdict.reason = Some(reason);
        return verdict;
    }
    verdict.verified = true;
    verdict.covers_action = true;
    match host_problem(settings, id, record, hosts) {
        Some(reason) => verdict.reason = Some(reason),
        None => verdict.covers_target = true,
    }
    verdict
}

fn state_problem(
    settings: &ChangeSystemSettings,
    id: &str,
    record: &ChangeRecord,
) -> Option<String> {
    if settings.allowed_states.contains(&record.state) {
        return None;
    }
    let allowed: Vec<String> = settings
        .allowed_states
        .iter()
        .map(|code| state_name(*code))
        .collect();
    Some(format!(
        "{id} is in state {}, not {}",
        state_name(record.state),
        allowed.join(" or ")
    ))
}

fn window_problem(
    settings: &ChangeSystemSettings,
    id: &str,
    record: &ChangeRecord,
    now: i64,
) -> Option<String> {
    if !settings.check_window {
        return None;
    }
    let (Some(start), Some(end)) = (record.start, record.end) else {
        return Some(format!(
            "{id} has no planned window (start_date and end_date must both be set)"
        ));
    };
    let leeway = settings.leeway_secs;
    if now < start.saturating_sub(leeway) {
        return Some(format!(
            "{id} is outside its planned window: the window starts {}",
            utc_minutes(start)
        ));
    }
    if now >= end.saturating_add(leeway) {
        return Some(format!(
            "{id} is outside its planned window: the window ends {}",
            utc_minutes(end)
        ));
    }
    None
}

fn host_problem(
    settings: &ChangeSystemSettings,
    id: &str,
    record: &ChangeRecord,
    hosts: &[String],
) -> Option<String> {
    if !settings.check_hosts {
        return None;
    }
    if hosts.is_empty() {
        return Some(format!(
            "the target's host name is not known, so it cannot be matched to the configuration \
             items of {id} (give each HostSystem a name in entities.json)"
        ));
    }
    hosts
        .iter()
        .find(|host| !record.ci_names.iter().any(|ci| same_host(host, ci)))
        .map(|host| format!("host {host} is not a configuration item of {id}"))
}

/// Host names compare ASCII case-insensitively; an unqualified name (`esx-21`) also matches the
/// first label of a qualified one (`esx-21.example.test`), as CMDBs name hosts either way.
pub(crate) fn same_host(a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    let first = |name: &str| name.split('.').next().unwrap_or(name).to_owned();
    match (a.contains('.'), b.contains('.')) {
        (true, false) => first(a).eq_ignore_ascii_case(b),
        (false, true) => a.eq_ignore_ascii_case(&first(b)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::ChangeSystemConfig;
    use super::*;

    /// 2026-12-01 02:00:00 UTC.
    const START: i64 = 1_796_090_400;
    const END: i64 = START + 4 * 3600;

    fn settings(extra: &str) -> ChangeSystemSettings {
        let config: ChangeSystemConfig = toml::from_str(&format!(
            "kind = \"servicenow\"\nurl = \"https://sn.example.test\"\ntoken_file = \"t\"\n{extra}"
        ))
        .expect("config");
        config.settings().expect("settings")
    }

    fn record(state: i64) -> ChangeRecord {
        ChangeRecord {
            number: "CHG0012345".into(),
            sys_id: "a9e30c7dc61122760116894de7bcc7bd".into(),
            state,
            start: Some(START),
            end: Some(END),
            ci_names: vec!["esx-21".into(), "esx-23.example.test".into()],
        }
    }

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_change_in_implement_inside_its_window_on_the_host_authorises() {
        let verdict = judge(
            &settings(""),
            "CHG0012345",
            &Ok(record(-1)),
            &hosts(&["esx-21.example.test"]),
            START + 60,
        );
        assert!(verdict.authorises(), "{verdict:?}");
        assert_eq!(verdict.reason, None);
        assert_eq!(verdict.change_state.as_deref(), Some("implement"));
        assert_eq!(
            Value::Object(verdict.context_fields()),
            json!({"verified": true, "covers_target": true, "covers_action": true,
                   "source": "servicenow", "change_state": "implement",
                   "window_start": START, "window_end": END})
        );
    }

    #[test]
    fn states_other_than_the_allowed_ones_refuse() {
        for (code, name) in [
            (-5, "new"),
            (-4, "assess"),
            (-3, "authorize"),
            (-2, "scheduled"),
            (0, "review"),
            (3, "closed"),
            (4, "canceled"),
            (9, "9"),
        ] {
            let verdict = judge(
                &settings(""),
                "CHG0012345",
                &Ok(record(code)),
                &hosts(&["esx-21"]),
                START,
            );
            assert!(!verdict.verified && !verdict.authorises());
            assert_eq!(
                verdict.reason.as_deref(),
                Some(format!("CHG0012345 is in state {name}, not implement").as_str())
            );
        }
        let two = settings("allowed_states = [\"implement\", \"review\"]");
        let verdict = judge(
            &two,
            "CHG0012345",
            &Ok(record(-2)),
            &hosts(&["esx-21"]),
            START,
        );
        assert_eq!(
            verdict.reason.as_deref(),
            Some("CHG0012345 is in state scheduled, not implement or review")
        );
        assert!(
            judge(
                &two,
                "CHG0012345",
                &Ok(record(0)),
                &hosts(&["esx-21"]),
                START
            )
            .authorises()
        );
    }

    #[test]
    fn the_window_bounds_with_leeway() {
        let plain = settings("");
        let at = |s: &ChangeSystemSettings, now| {
            judge(s, "CHG0012345", &Ok(record(-1)), &hosts(&["esx-21"]), now)
        };
        assert!(at(&plain, START).authorises());
        assert!(at(&plain, END - 1).authorises());
        assert_eq!(
            at(&plain, END).reason.as_deref(),
            Some("CHG0012345 is outside its planned window: the window ends 2026-12-01 06:00 UTC")
        );
        assert_eq!(
            at(&plain, START - 1).reason.as_deref(),
            Some(
                "CHG0012345 is outside its planned window: the window starts 2026-12-01 02:00 UTC"
            )
        );
        let lenient = settings("leeway_secs = 300");
        assert!(at(&lenient, START - 300).authorises());
        assert!(at(&lenient, END + 299).authorises());
        assert!(!at(&lenient, END + 300).authorises());
        let unchecked = settings("check_window = false");
        assert!(at(&unchecked, END + 86_400).authorises());

        let mut open = record(-1);
        open.end = None;
        let verdict = judge(&plain, "CHG0012345", &Ok(open), &hosts(&["esx-21"]), START);
        assert!(
            verdict
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("has no planned window"))
        );
    }

    #[test]
    fn the_host_must_be_a_configuration_item() {
        let s = settings("");
        let verdict = judge(
            &s,
            "CHG0012345",
            &Ok(record(-1)),
            &hosts(&["esx-22"]),
            START,
        );
        assert!(verdict.verified && verdict.covers_action && !verdict.covers_target);
        assert_eq!(
            verdict.reason.as_deref(),
            Some("host esx-22 is not a configuration item of CHG0012345")
        );
        for name in [
            "ESX-21",
            "esx-21.example.test",
            "esx-23",
            "esx-23.example.test",
        ] {
            assert!(
                judge(&s, "CHG0012345", &Ok(record(-1)), &hosts(&[name]), START).authorises(),
                "{name}"
            );
        }
        assert!(
            !judge(
                &s,
                "CHG0012345",
                &Ok(record(-1)),
                &hosts(&["esx-23.other.test"]),
                START
            )
            .authorises()
        );
        assert!(!judge(&s, "CHG0012345", &Ok(record(-1)), &hosts(&["esx-2"]), START).authorises());
        let unknown = judge(&s, "CHG0012345", &Ok(record(-1)), &[], START);
        assert!(!unknown.covers_target);
        let unchecked = settings("check_hosts = false");
        assert!(
            judge(
                &unchecked,
                "CHG0012345",
                &Ok(record(-1)),
                &hosts(&["esx-99"]),
                START
            )
            .authorises()
        );
    }

    #[test]
    fn failures_refuse_with_the_reason() {
        let verdict = judge(
            &settings(""),
            "CHG0012345",
            &Err(LookupError::Unreachable(
                "tcp connect error: Connection refused".into(),
            )),
            &hosts(&["esx-21"]),
            START,
        );
        assert!(!verdict.verified && !verdict.covers_target && !verdict.covers_action);
        assert_eq!(
            verdict.reason.as_deref(),
            Some("change system unreachable: tcp connect error: Connection refused")
        );
        assert_eq!(
            Value::Object(verdict.context_fields()),
            json!({"verified": false, "covers_target": false, "covers_action": false, "source": "servicenow"})
        );
    }

    #[test]
    fn applying_only_takes_coverage_away() {
        let mut pattern_record = json!({"id": "CHG0012345", "kind": "pattern", "verified": true,
                                        "covers_target": true, "covers_action": true});
        let refused = judge(
            &settings(""),
            "CHG0012345",
            &Ok(record(-2)),
            &hosts(&["esx-21"]),
            START,
        );
        refused.apply_to(&mut pattern_record);
        assert_eq!(pattern_record["verified"], json!(false));
        assert_eq!(pattern_record["change_state"], json!("scheduled"));
        assert_eq!(pattern_record["kind"], json!("pattern"));

        let mut narrow = json!({"id": "CHG0012345", "kind": "signed", "verified": true,
                                "covers_target": true, "covers_action": false});
        judge(
            &settings(""),
            "CHG0012345",
            &Ok(record(-1)),
            &hosts(&["esx-21"]),
            START,
        )
        .apply_to(&mut narrow);
        assert_eq!(narrow["verified"], json!(true));
        assert_eq!(narrow["covers_action"], json!(false));
        assert_eq!(narrow["source"], json!("servicenow"));
    }
}
