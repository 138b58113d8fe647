//! VI/JSON: `/sdk/vim25/{release}/{MoType}/{moId}/{MethodOrProperty}`.

use bytes::Bytes;
use http::header::HeaderValue;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde_json::{Value as Json, json};
use vsphere_wire::fault::{JSON_CONTENT_TYPE, VimFault};

use super::args::Args;
use super::methods::{Call, Outcome, invoke};
use super::sessions::{SESSION_HEADER, session_header, soap_cookie};
use super::value::{MoRef, VimValue};
use super::{Seen, SimBody, SimInner, SimProtocol, faults, percent_decode, respond, user_agent};

/// Prefix of every VI/JSON path.
const PREFIX: &str = "/sdk/vim25/";

/// Whether `path` is a VI/JSON path: a release and at least `{MoType}/{moId}/{member}`.
pub(crate) fn is_vi_json_path(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.split('/').count() >= 4)
}

/// The `(MoType, moId, member)` of a VI/JSON path: its last three segments, decoded.
fn target(path: &str) -> Result<(String, String, String), String> {
    let rest = path.strip_prefix(PREFIX).ok_or("not a VI/JSON path")?;
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.len() < 4 || segments.iter().any(|s| s.is_empty()) {
        return Err("malformed VI/JSON path".into());
    }
    let decode = |s: &str| percent_decode(s).ok_or_else(|| format!("bad escape in '{s}'"));
    let n = segments.len();
    Ok((
        decode(segments[n - 3])?,
        decode(segments[n - 2])?,
        decode(segments[n - 1])?,
    ))
}

/// A VI/JSON fault response: status 500, `application/json`.
fn fault_response(fault: &VimFault) -> Response<SimBody> {
    respond(
        StatusCode::INTERNAL_SERVER_ERROR,
        Some(JSON_CONTENT_TYPE),
        fault.to_json(),
    )
}

/// A 200 JSON response.
fn json_response(value: &Json) -> Response<SimBody> {
    respond(StatusCode::OK, Some(JSON_CONTENT_TYPE), value.to_string())
}

/// The method parameters: an empty body is `{}`, anything else must be a JSON object.
fn parse_params(body: &[u8]) -> Result<Json, VimFault> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Json>(body) {
        Ok(value @ Json::Object(_)) => Ok(value),
        Ok(_) => Err(faults::invalid_request("the body must be a JSON object")),
        Err(e) => Err(faults::invalid_request(&format!("malformed JSON: {e}"))),
    }
}

/// Answers one VI/JSON request.
pub(crate) async fn handle(
    sim: &SimInner,
    parts: &Parts,
    body: Result<Bytes, String>,
) -> (Response<SimBody>, Seen) {
    let mut seen = Seen::api(SimProtocol::Json, &body);
    let (mo_type, mo_id, member) = match target(parts.uri.path()) {
        Ok(t) => t,
        Err(reason) => return (fault_response(&faults::invalid_request(&reason)), seen),
    };
    seen.mo_id = Some(mo_id.clone());
    let body = match body {
        Ok(b) => b,
        Err(reason) => return (fault_response(&faults::invalid_request(&reason)), seen),
    };
    let token = session_header(&parts.headers).or_else(|| soap_cookie(&parts.headers));
    let user_agent = user_agent(&parts.headers);
    let target = MoRef::new(mo_type, mo_id);

    if parts.method == Method::GET {
        let params = json!({ "prop": member });
        let call = Call {
            target,
            method: "Fetch",
            args: Args::Json(&params),
            token,
            user_agent,
        };
        let response = match invoke(sim, &call).await {
            Ok(Outcome::Value(VimValue::Any(inner))) => json_response(&inner.to_json()),
            Ok(Outcome::Value(value)) => json_response(&value.to_json()),
            Ok(_) => json_response(&Json::Null),
            Err(fault) => fault_response(&fault),
        };
        return (response, seen);
    }

    seen.vim_method = Some(member.clone());
    if parts.method != Method::POST {
        let fault =
            faults::invalid_request(&format!("HTTP method {} is not supported", parts.method));
        return (fault_response(&fault), seen);
    }
    let params = match parse_params(&body) {
        Ok(p) => p,
        Err(fault) => return (fault_response(&fault), seen),
    };
    let call = Call {
        target,
        method: &member,
        args: Args::Json(&params),
        token,
        user_agent,
    };
    let response = match invoke(sim, &call).await {
        Ok(Outcome::Void) => respond(StatusCode::NO_CONTENT, None, Bytes::new()),
        Ok(Outcome::Value(value)) => json_response(&value.to_json()),
        Ok(Outcome::LoggedIn { token, session }) => {
            let mut response = json_response(&session.to_json());
            if let Ok(value) = HeaderValue::from_str(&token) {
                response.headers_mut().insert(SESSION_HEADER, value);
            }
            response
        }
        Err(fault) => fault_response(&fault),
    };
    (response, seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_take_the_last_three_segments() {
        assert!(is_vi_json_path(
            "/sdk/vim25/8.0.3.0/HostSystem/host-21/name"
        ));
        assert!(!is_vi_json_path("/sdk/vim25/8.0.3.0/HostSystem/host-21"));
        assert_eq!(
            target("/sdk/vim25/uA046D008/pbm/ContainerView/session%5Bab%5Dcd/view"),
            Ok((
                "ContainerView".into(),
                "session[ab]cd".into(),
                "view".into()
            ))
        );
        assert!(target("/sdk/vim25/8.0.3.0/HostSystem//name").is_err());
        assert!(target("/sdk/vim25/8.0.3.0/HostSystem/host%zz/name").is_err());
    }

    #[test]
    fn params_must_be_an_object() {
        assert_eq!(parse_params(b"").ok(), Some(json!({})));
        assert_eq!(parse_params(b"  \n").ok(), Some(json!({})));
        assert!(parse_params(b"[1]").is_err());
        assert!(parse_params(b"{").is_err());
        assert!(parse_params(&[0xff, 0xfe]).is_err());
    }
}
