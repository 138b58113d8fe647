//! vSphere Lifecycle Manager remediation over the Automation REST API (PROTOCOL.md §8):
//! `POST /api/esx/settings/clusters/{cluster}/software?action=apply` (also with
//! `&vmw-task=true`), `.../configuration?action=apply`,
//! `/api/esx/settings/hosts/{host}/software?action=apply`,
//! `.../clusters/{cluster}/configuration/drafts/{draft}?action=apply` (commits a configuration
//! draft and remediates), and the `/rest/...` forms.
//! Remediation puts hosts into maintenance mode: the call is the guarded action
//! `ApplyEsxSettings` on the cluster or host, decided from the request target alone
//! (the body, a remediation spec, is streamed).
//!
//! Call [`classify_rest`] with the request target of every `/api` and `/rest` request
//! before passing it through; `Some` is a guarded call for the decide step.

use super::classify::Refusal;
use super::effects::EffectFacts;
use super::guarded::fold_case;
use super::operation::{GuardedBody, GuardedCall, MoRef, Route};
use super::path::decode_path_segments;

/// The Cedar action of a Lifecycle Manager remediation.
pub const LIFECYCLE_ACTION: &str = "ApplyEsxSettings";

/// Classifies an Automation REST request target (path and query); `Some` for a remediation.
///
/// The verb does not matter (as for vim methods, PROTOCOL.md §6). Spellings another
/// server could read as a remediation are refused: `action` in another case or given
/// twice, percent-encoding in the query, path segments in another case.
pub fn classify_rest(path_and_query: &str) -> Result<Option<GuardedCall>, Refusal> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let segments = decode_path_segments(path)?;
    let folded: Vec<_> = segments.iter().map(|s| fold_case(s)).collect();
    let shape: Vec<&str> = folded.iter().map(AsRef::as_ref).collect();
    // `what` is the path after the id, with opaque ids (a draft's) as placeholders.
    let (kind, id, what) = match shape.as_slice() {
        [
            "api" | "rest",
            "esx",
            "settings",
            kind @ ("clusters" | "hosts"),
            _,
            what @ ("software" | "configuration"),
        ] => (*kind, &segments[4], (*what).to_owned()),
        // Applying a configuration draft commits it and remediates the cluster (API 8.0.2.0).
        [
            "api" | "rest",
            "esx",
            "settings",
            "clusters",
            _,
            "configuration",
            "drafts",
            _,
        ] => (
            "clusters",
            &segments[4],
            "configuration/drafts/{draft}".to_owned(),
        ),
        _ => return Ok(None),
    };
    if kind == "hosts" && what == "configuration" {
        return Ok(None);
    }
    let Some(query) = query else {
        return Ok(None);
    };
    if !apply_action(query)? {
        return Ok(None);
    }
    for (i, (sent, canonical)) in segments.iter().zip(&folded).enumerate() {
        let opaque_id = i == 4 || i == 7;
        if !opaque_id && sent != canonical {
            return Err(Refusal::invalid_request(format!(
                "path segment '{sent}' of a Lifecycle Manager remediation must be spelled '{canonical}'"
            )));
        }
    }
    let (mo_type, placeholder) = if kind == "clusters" {
        ("ClusterComputeResource", "{cluster}")
    } else {
        ("HostSystem", "{host}")
    };
    let operation = format!(
        "POST /{}/esx/settings/{kind}/{placeholder}/{what}?action=apply",
        folded[0]
    );
    let mut facts = EffectFacts {
        known: true,
        enters_maintenance: true,
        ..EffectFacts::default()
    };
    if kind == "hosts" {
        facts.hosts.push(id.to_string());
    }
    Ok(Some(GuardedCall {
        method: LIFECYCLE_ACTION.to_owned(),
        target: MoRef::new(mo_type, id.to_string()),
        body: GuardedBody::Effect(facts),
        route: Route::LifecycleRest {
            operation: operation.clone(),
        },
        via: operation,
    }))
}

/// Whether the query asks for `action=apply`; ambiguous spellings are refused.
fn apply_action(query: &str) -> Result<bool, Refusal> {
    if query.contains('%') || query.contains('+') || query.contains(';') {
        return Err(Refusal::invalid_request(
            "encoded or ';'-separated query on a Lifecycle Manager settings path is not allowed",
        ));
    }
    let mut action = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if fold_case(key) != "action" {
            continue;
        }
        if key != "action" || action.is_some() {
            return Err(Refusal::invalid_request(
                "the 'action' query parameter must appear once, spelled 'action'",
            ));
        }
        action = Some(value);
    }
    match action {
        Some("apply") => Ok(true),
        Some(value) if fold_case(value) == "apply" => Err(Refusal::invalid_request(format!(
            "action '{value}' must be spelled 'apply'"
        ))),
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(target: &str) -> GuardedCall {
        classify_rest(target)
            .expect("classified")
            .expect("a remediation")
    }

    #[test]
    fn remediation_paths() {
        let c = call("/api/esx/settings/clusters/domain-c7/software?action=apply");
        assert_eq!(c.method, "ApplyEsxSettings");
        assert_eq!(c.target, MoRef::new("ClusterComputeResource", "domain-c7"));
        assert_eq!(c.route.name(), "lifecycle_rest");
        assert!(matches!(c.body, GuardedBody::Effect(ref f) if f.enters_maintenance));
        let c = call("/api/esx/settings/clusters/domain-c7/software?action=apply&vmw-task=true");
        assert_eq!(c.target.value, "domain-c7");
        let c =
            call("/api/esx/settings/clusters/domain-c7/configuration?vmw-task=true&action=apply");
        assert_eq!(
            c.via,
            "POST /api/esx/settings/clusters/{cluster}/configuration?action=apply"
        );
        let c = call("/api/esx/settings/hosts/host-21/software?action=apply");
        assert_eq!(c.target, MoRef::new("HostSystem", "host-21"));
        let c = call("/rest/esx/settings/clusters/domain-c7/software?action=apply");
        assert_eq!(c.target.value, "domain-c7");
        let c =
            call("/api/esx/settings/clusters/domain-c7/configuration/drafts/Draft-7?action=apply");
        assert_eq!(c.target, MoRef::new("ClusterComputeResource", "domain-c7"));
        assert_eq!(
            c.via,
            "POST /api/esx/settings/clusters/{cluster}/configuration/drafts/{draft}?action=apply"
        );
    }

    #[test]
    fn other_rest_calls_pass() {
        for target in [
            "/api/esx/settings/clusters/domain-c7/software",
            "/api/esx/settings/clusters/domain-c7/software?action=check",
            "/api/esx/settings/clusters/domain-c7/software?action=stage",
            "/api/session",
            "/api/vcenter/system?action=hello",
            "/api/esx/settings/hosts/host-21/configuration?action=apply",
            "/api/esx/settings/clusters/domain-c7/configuration/drafts/1",
            "/api/esx/settings/clusters/domain-c7/software/drafts/1?action=commit",
        ] {
            assert_eq!(classify_rest(target), Ok(None), "{target}");
        }
    }

    #[test]
    fn ambiguous_spellings_are_refused() {
        for target in [
            "/api/esx/settings/clusters/domain-c7/software?action=Apply",
            "/api/esx/settings/clusters/domain-c7/software?ACTION=apply",
            "/api/esx/settings/clusters/domain-c7/software?action=check&action=apply",
            "/api/esx/settings/clusters/domain-c7/software?action=%61pply",
            "/api/ESX/settings/clusters/domain-c7/software?action=apply",
            "/api/esx/settings/clusters/domain-c7/Software?action=apply",
        ] {
            assert!(classify_rest(target).is_err(), "{target}");
        }
        let encoded = call("/api/esx/settings/clusters/domain%2Dc7/software?action=apply");
        assert_eq!(encoded.target.value, "domain-c7");
    }
}
