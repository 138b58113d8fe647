//! `vcguard ticket inspect`: what a ticket says, and whether it verifies. Never prints a
//! signature.

use std::fmt::Write as _;
use std::time::SystemTime;

use serde_json::Value;

use super::keys::algorithm_name;
use super::pattern::describe;
use super::signed::{decode_segment, looks_like_jwt};
use super::{TicketVerifier, rfc3339, unix_secs};

/// Describes `raw` over several lines: header, unverified claims, and the verdict of `verifier` at `now`.
pub fn inspect(raw: &str, verifier: Option<&TicketVerifier>, now: SystemTime) -> String {
    let now = unix_secs(now);
    let mut out = String::new();
    if !looks_like_jwt(raw) {
        let _ = writeln!(out, "kind: plain ticket id");
        let _ = writeln!(out, "value: {}", describe(raw));
        let verdict = match verifier {
            None => "not checked (no verifier configured)".to_owned(),
            Some(v) => match &v.pattern {
                None => {
                    "INVALID: plain ticket ids are not accepted (ticket.pattern is off)".to_owned()
                }
                Some(rule) => match rule.check(raw) {
                    Ok(()) => format!(
                        "VALID: matches the ticket pattern {} (covers any host and action)",
                        rule.as_str()
                    ),
                    Err(reason) => format!("INVALID: {reason}"),
                },
            },
        };
        let _ = writeln!(out, "verification: {verdict}");
        return out;
    }

    let mut segments = raw.split('.');
    let header = segments.next().unwrap_or_default();
    let payload = segments.next().unwrap_or_default();
    let signature = segments.next().unwrap_or_default();
    let _ = writeln!(out, "kind: signed ticket (JWT)");
    match decode_segment(header, "header") {
        Ok(fields) => {
            let _ = writeln!(out, "header:");
            for (name, value) in &fields {
                let _ = writeln!(out, "  {name}: {}", plain(value));
            }
        }
        Err(e) => {
            let _ = writeln!(out, "header: cannot decode ({e})");
        }
    }
    match decode_segment(payload, "payload") {
        Ok(claims) => {
            let pretty =
                serde_json::to_string_pretty(&Value::Object(claims.clone())).unwrap_or_default();
            let _ = writeln!(out, "claims (decoded, not verified):");
            for line in pretty.lines() {
                let _ = writeln!(out, "  {line}");
            }
            let times: Vec<(&str, u64)> = ["iat", "nbf", "exp"]
                .into_iter()
                .filter_map(|name| Some((name, claims.get(name)?.as_u64()?)))
                .collect();
            if !times.is_empty() {
                let _ = writeln!(out, "times:");
                for (name, at) in times {
                    let _ = writeln!(out, "  {name}: {} ({})", rfc3339(at), relative(at, now));
                }
            }
        }
        Err(e) => {
            let _ = writeln!(out, "claims: cannot decode ({e})");
        }
    }
    let _ = writeln!(
        out,
        "signature: {} base64url characters (not shown)",
        signature.len()
    );
    let verdict = match verifier {
        None => "not checked (no verifier configured)".to_owned(),
        Some(v) => match &v.signed {
            None => "INVALID: signed tickets are not configured ([ticket.signed])".to_owned(),
            Some(signed) => match signed.verify_token(raw, now) {
                Ok(claims) => format!(
                    "VALID: ticket {} verified with key '{}' ({}), expires {}; covers hosts [{}] and actions [{}]",
                    claims.id,
                    claims.key_id,
                    algorithm_name(claims.alg),
                    rfc3339(claims.expires_at),
                    claims.hosts.join(", "),
                    claims.actions.join(", ")
                ),
                Err(rejection) => format!("INVALID: {}", rejection.reason),
            },
        },
    };
    let _ = writeln!(out, "verification: {verdict}");
    out
}

/// A JSON value without quotes around plain strings.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => super::shown(s),
        other => other.to_string(),
    }
}

/// `in 3h58m` or `2m ago`.
fn relative(at: u64, now: u64) -> String {
    let (secs, future) = if at >= now {
        (at - now, true)
    } else {
        (now - at, false)
    };
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
    ];
    let mut text: String = parts
        .iter()
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        text = "0s".to_owned();
    }
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::relative;

    #[test]
    fn relative_times() {
        assert_eq!(relative(100 + 4 * 3600 - 120, 100), "in 3h58m");
        assert_eq!(relative(100, 220), "2m ago");
        assert_eq!(relative(100, 100), "in 0s");
        assert_eq!(relative(2 * 86_400 + 3600 + 5, 0), "in 2d1h");
    }
}
