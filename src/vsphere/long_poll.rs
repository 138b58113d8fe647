//! Long polls: the vim calls that wait by design, and how long each one may wait.
//!
//! `PropertyCollector.WaitForUpdatesEx` waits up to `options.maxWaitSeconds` (0 polls), or
//! until something changes when that is unset; the legacy `WaitForUpdates` always waits until
//! something changes; `CheckForUpdates` never waits (PROTOCOL.md §7). pyVmomi's `WaitForTask`
//! and govmomi's task and `object.collect -n` waits send `WaitForUpdatesEx`, mostly without
//! `options`, so such a call can legitimately stay open for as long as a task runs.

use std::time::Duration;

use serde_json::{Map, Value};

use super::bodies::parse_decimal_i32;
use super::json_body::parse_strict;
use super::operation::Protocol;
use super::soap::{SoapError, parse_method_element};
use super::xml_tree::Element;

/// How long a call may wait inside vCenter before it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitBound {
    /// An ordinary call: vCenter answers as soon as the work is done.
    NotWaiting,
    /// A long poll that vCenter answers within about this long (`maxWaitSeconds`).
    Bounded(Duration),
    /// A long poll that waits until something changes, however long that takes.
    Unbounded,
}

/// Why a long poll's body could not be read; the call is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LongPollError {
    /// The SOAP envelope was refused.
    #[error("{method}: {source}")]
    Soap {
        /// The method named by the caller.
        method: String,
        /// The parser's reason.
        source: SoapError,
    },
    /// The envelope holds another method than the one the caller named.
    #[error("the SOAP body calls {found}, not {method}")]
    OtherMethod {
        /// The method named by the caller.
        method: String,
        /// The method in the envelope.
        found: String,
    },
    /// A parameter or the JSON body is malformed.
    #[error("{method}: {reason}")]
    Invalid {
        /// The method.
        method: String,
        /// What is wrong.
        reason: String,
    },
}

/// Whether `method` may wait by design; only these need their body read to bound them.
pub fn is_long_poll(method: &str) -> bool {
    matches!(method, "WaitForUpdatesEx" | "WaitForUpdates")
}

/// The wait bound of the call `method` (the vim method, exact case) whose request body is
/// `body`, spoken in `protocol`. Bodies of other methods are not read.
pub fn wait_bound(
    method: &str,
    protocol: Protocol,
    body: &[u8],
) -> Result<WaitBound, LongPollError> {
    if !is_long_poll(method) {
        return Ok(WaitBound::NotWaiting);
    }
    let max_wait = match protocol {
        Protocol::Soap => soap_max_wait(method, body)?,
        Protocol::VimJson => json_max_wait(method, body)?,
        Protocol::Rest | Protocol::Other => return Ok(WaitBound::NotWaiting),
    };
    let invalid = |reason: String| LongPollError::Invalid {
        method: method.to_owned(),
        reason,
    };
    Ok(match (method, max_wait) {
        ("WaitForUpdates", _) | (_, None) => WaitBound::Unbounded,
        (_, Some(secs)) => {
            let secs = u64::try_from(secs).map_err(|_| {
                invalid(format!(
                    "options.maxWaitSeconds is {secs}; it cannot be negative"
                ))
            })?;
            WaitBound::Bounded(Duration::from_secs(secs))
        }
    })
}

/// `options.maxWaitSeconds` of a SOAP `WaitForUpdatesEx` (or `None`), checking the envelope
/// strictly and the parameters by name.
fn soap_max_wait(method: &str, body: &[u8]) -> Result<Option<i32>, LongPollError> {
    let (head, element) = parse_method_element(body).map_err(|source| LongPollError::Soap {
        method: method.to_owned(),
        source,
    })?;
    if head.method != method {
        return Err(LongPollError::OtherMethod {
            method: method.to_owned(),
            found: head.method,
        });
    }
    let invalid = |reason: String| LongPollError::Invalid {
        method: method.to_owned(),
        reason,
    };
    let params = element.children.get(1..).unwrap_or_default();
    let known: &[&str] = if method == "WaitForUpdates" {
        &["version"]
    } else {
        &["version", "options"]
    };
    checked_children(params, known).map_err(|reason| invalid(reason.to_owned()))?;
    let Some(options) = params.iter().find(|p| p.local == "options") else {
        return Ok(None);
    };
    if !options.text_is_blank() {
        return Err(invalid("options must hold elements, not text".into()));
    }
    checked_children(&options.children, &["maxWaitSeconds", "maxObjectUpdates"])
        .map_err(|reason| invalid(format!("in options: {reason}")))?;
    let mut max_wait = None;
    for field in &options.children {
        if !field.children.is_empty() {
            return Err(invalid(format!("options.{} must be a number", field.local)));
        }
        let value = parse_decimal_i32(&field.text).ok_or_else(|| {
            invalid(format!(
                "options.{} = `{}` is not an xsd:int",
                field.local, field.text
            ))
        })?;
        if field.local == "maxWaitSeconds" {
            max_wait = Some(value);
        }
    }
    Ok(max_wait)
}

/// Refuses unknown, repeated or oddly attributed parameters.
fn checked_children(children: &[Element], known: &[&str]) -> Result<(), &'static str> {
    for (i, child) in children.iter().enumerate() {
        if !known.contains(&child.local.as_str()) {
            return Err("unknown parameter");
        }
        if children[..i].iter().any(|c| c.local == child.local) {
            return Err("a parameter is repeated");
        }
        if child.disallowed_attr(&[]).is_some() {
            return Err("only versionId and xsi:type attributes are allowed");
        }
    }
    Ok(())
}

/// `options.maxWaitSeconds` of a VI/JSON `WaitForUpdatesEx` body (or `None`).
fn json_max_wait(method: &str, body: &[u8]) -> Result<Option<i32>, LongPollError> {
    let invalid = |reason: String| LongPollError::Invalid {
        method: method.to_owned(),
        reason,
    };
    if body.is_empty() {
        return Ok(None);
    }
    let map = match parse_strict(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(invalid("the body must be a JSON object".into())),
        Err(err) => return Err(invalid(format!("the body is not JSON: {err}"))),
    };
    let known: &[&str] = if method == "WaitForUpdates" {
        &["version"]
    } else {
        &["version", "options"]
    };
    only_fields(&map, known, "the body").map_err(invalid)?;
    let options = match map.get("options") {
        None => return Ok(None),
        Some(Value::Object(options)) => options,
        Some(_) => return Err(invalid("options must be a WaitOptions object".into())),
    };
    only_fields(options, &["maxWaitSeconds", "maxObjectUpdates"], "options").map_err(invalid)?;
    let mut max_wait = None;
    for (name, value) in options.iter().filter(|(name, _)| *name != "_typeName") {
        let number = value
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| invalid(format!("options.{name} must be an integer (xsd:int)")))?;
        if name == "maxWaitSeconds" {
            max_wait = Some(number);
        }
    }
    Ok(max_wait)
}

/// Refuses keys outside `known`; `_typeName` is allowed but must be a string.
fn only_fields(map: &Map<String, Value>, known: &[&str], context: &str) -> Result<(), String> {
    for (key, value) in map {
        if key == "_typeName" {
            if !value.is_string() {
                return Err(format!("{context}: _typeName must be a string"));
            }
        } else if !known.contains(&key.as_str()) {
            return Err(format!("{context}: unknown field `{key}`"));
        }
    }
    Ok(())
}

/// The gateway's bounds on long polls (`[upstream] long_poll_max_secs`, `long_poll_margin_secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongPollLimits {
    /// The most any long poll may wait for vCenter's answer (`None`: no limit, as vCenter).
    pub max: Option<Duration>,
    /// Added to `maxWaitSeconds` for vCenter's and the network's own delay.
    pub margin: Duration,
}

impl Default for LongPollLimits {
    fn default() -> Self {
        Self {
            max: None,
            margin: Duration::from_secs(30),
        }
    }
}

impl LongPollLimits {
    /// How long to wait for vCenter's response headers to a call with `bound` (`None`: no
    /// deadline). Ordinary calls keep `response_timeout`; a bounded poll gets its wait plus the
    /// margin (never less than `response_timeout`); an unbounded one gets [`Self::max`].
    pub fn response_deadline(
        &self,
        bound: WaitBound,
        response_timeout: Duration,
    ) -> Option<Duration> {
        match bound {
            WaitBound::NotWaiting => Some(response_timeout),
            WaitBound::Bounded(wait) => {
                let deadline = wait.saturating_add(self.margin).max(response_timeout);
                Some(
                    self.max
                        .map_or(deadline, |max| deadline.min(max.max(response_timeout))),
                )
            }
            WaitBound::Unbounded => self.max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PC: &str = r#"<_this type="PropertyCollector">session[4102a331]e8a61e83</_this>"#;

    fn envelope(inner: &str) -> Vec<u8> {
        format!(
            r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body>{inner}</Body></Envelope>"#
        )
        .into_bytes()
    }

    fn soap(method: &str, body: &[u8]) -> Result<WaitBound, LongPollError> {
        wait_bound(method, Protocol::Soap, body)
    }

    fn json(method: &str, body: &str) -> Result<WaitBound, LongPollError> {
        wait_bound(method, Protocol::VimJson, body.as_bytes())
    }

    #[test]
    fn govc_wait_without_options_is_unbounded() {
        // Byte for byte what govc 0.38 sends (shared/vectors/govc-vcsim-session.log, conn 7).
        let body = envelope(&format!(
            r#"<WaitForUpdatesEx xmlns="urn:vim25">{PC}<version>-</version></WaitForUpdatesEx>"#
        ));
        assert_eq!(soap("WaitForUpdatesEx", &body), Ok(WaitBound::Unbounded));
        let first = envelope(&format!(
            r#"<WaitForUpdatesEx xmlns="urn:vim25">{PC}</WaitForUpdatesEx>"#
        ));
        assert_eq!(soap("WaitForUpdatesEx", &first), Ok(WaitBound::Unbounded));
    }

    #[test]
    fn max_wait_seconds_bounds_the_wait() {
        let body = envelope(&format!(
            r#"<WaitForUpdatesEx xmlns="urn:vim25" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{PC}<version>3</version><options xsi:type="WaitOptions"><maxObjectUpdates>100</maxObjectUpdates><maxWaitSeconds>45</maxWaitSeconds></options></WaitForUpdatesEx>"#
        ));
        assert_eq!(
            soap("WaitForUpdatesEx", &body),
            Ok(WaitBound::Bounded(Duration::from_secs(45)))
        );
        let poll = envelope(&format!(
            r#"<WaitForUpdatesEx xmlns="urn:vim25">{PC}<options><maxWaitSeconds>0</maxWaitSeconds></options></WaitForUpdatesEx>"#
        ));
        assert_eq!(
            soap("WaitForUpdatesEx", &poll),
            Ok(WaitBound::Bounded(Duration::ZERO))
        );
        let no_wait_field = envelope(&format!(
            r#"<WaitForUpdatesEx xmlns="urn:vim25">{PC}<options><maxObjectUpdates>5</maxObjectUpdates></options></WaitForUpdatesEx>"#
        ));
        assert_eq!(
            soap("WaitForUpdatesEx", &no_wait_field),
            Ok(WaitBound::Unbounded)
        );
    }

    #[test]
    fn legacy_wait_is_unbounded_and_check_is_no_wait() {
        let fixture = include_bytes!("../../tests/fixtures/soap/vcsim-session-WaitForUpdates.xml");
        assert_eq!(soap("WaitForUpdates", fixture), Ok(WaitBound::Unbounded));
        assert_eq!(
            soap("CheckForUpdates", b"not even read"),
            Ok(WaitBound::NotWaiting)
        );
        assert_eq!(json("RetrieveProperties", "{"), Ok(WaitBound::NotWaiting));
    }

    #[test]
    fn malformed_or_ambiguous_soap_is_refused() {
        let cases = [
            format!(
                r#"<WaitForUpdatesEx xmlns="urn:vim25">{PC}<options><maxWaitSeconds>5</maxWaitSeconds><maxWaitSeconds>900</maxWaitSeconds></options></WaitForUpdatesEx>"#
            ),
            format!(
                r#"<WaitForUpdatesEx xmlns="urn:vim25">{PC}<options><maxWaitSeconds>05</maxWaitSeconds></options></WaitForUpdatesEx>"#
            ),
            format!(
                r#"<WaitForUpdatesEx xmlns="urn:vim25">{PC}<options><maxWaitSeconds>-1</maxWaitSeconds></options></WaitForUpdatesEx>"#
            ),
            format!(
                r#"<WaitForUpdatesEx xmlns="urn:vim25">{PC}<options><maxWaitSecs>5</maxWaitSecs></options></WaitForUpdatesEx>"#
            ),
            format!(
                r#"<WaitForUpdatesEx xmlns="urn:vim25">{PC}<options/><options/></WaitForUpdatesEx>"#
            ),
            format!(
                r#"<WaitForUpdatesEx xmlns="urn:vim25">{PC}<options>5</options></WaitForUpdatesEx>"#
            ),
            format!(
                r#"<WaitForUpdatesEx xmlns="urn:vim25">{PC}<options><maxWaitSeconds>5</maxWaitSeconds>"#
            ),
        ];
        for case in cases {
            let body = envelope(&case);
            assert!(soap("WaitForUpdatesEx", &body).is_err(), "accepted: {case}");
        }
        let other = envelope(&format!(
            r#"<CheckForUpdates xmlns="urn:vim25">{PC}</CheckForUpdates>"#
        ));
        assert!(matches!(
            soap("WaitForUpdatesEx", &other),
            Err(LongPollError::OtherMethod { .. })
        ));
    }

    #[test]
    fn vi_json_bodies() {
        assert_eq!(json("WaitForUpdatesEx", ""), Ok(WaitBound::Unbounded));
        assert_eq!(
            json("WaitForUpdatesEx", r#"{"version":""}"#),
            Ok(WaitBound::Unbounded)
        );
        assert_eq!(
            json(
                "WaitForUpdatesEx",
                r#"{"version":"2","options":{"_typeName":"WaitOptions","maxWaitSeconds":600}}"#
            ),
            Ok(WaitBound::Bounded(Duration::from_secs(600)))
        );
        assert_eq!(
            json("WaitForUpdates", r#"{"version":"2"}"#),
            Ok(WaitBound::Unbounded)
        );
        for bad in [
            r#"{"options":{"maxWaitSeconds":5,"maxWaitSeconds":900}}"#,
            r#"{"options":{"maxWaitSeconds":"5"}}"#,
            r#"{"options":{"maxWaitSeconds":5.5}}"#,
            r#"{"options":{"maxWaitSeconds":-3}}"#,
            r#"{"options":{"maxWaitSeconds":4294967296}}"#,
            r#"{"options":{"maxWait":5}}"#,
            r#"{"options":5}"#,
            r#"{"versions":"1"}"#,
            r#"[1]"#,
        ] {
            assert!(json("WaitForUpdatesEx", bad).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn deadlines() {
        let rt = Duration::from_secs(120);
        let limits = LongPollLimits::default();
        assert_eq!(
            limits.response_deadline(WaitBound::NotWaiting, rt),
            Some(rt)
        );
        assert_eq!(limits.response_deadline(WaitBound::Unbounded, rt), None);
        assert_eq!(
            limits.response_deadline(WaitBound::Bounded(Duration::from_secs(600)), rt),
            Some(Duration::from_secs(630))
        );
        assert_eq!(
            limits.response_deadline(WaitBound::Bounded(Duration::ZERO), rt),
            Some(rt)
        );
        let capped = LongPollLimits {
            max: Some(Duration::from_secs(3600)),
            margin: Duration::from_secs(30),
        };
        assert_eq!(
            capped.response_deadline(WaitBound::Unbounded, rt),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            capped.response_deadline(WaitBound::Bounded(Duration::from_secs(7200)), rt),
            Some(Duration::from_secs(3600))
        );
    }
}
