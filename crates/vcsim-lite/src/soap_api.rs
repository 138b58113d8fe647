//! SOAP: `POST /sdk` (or any other `/sdk/...` path that is not VI/JSON).

use bytes::Bytes;
use http::header::{HeaderValue, SET_COOKIE};
use http::request::Parts;
use http::{Response, StatusCode};
use vsphere_wire::fault::{SOAP_CONTENT_TYPE, VimFault, soap_envelope};

use super::args::Args;
use super::methods::{Call, Outcome, invoke};
use super::sessions::{session_header, set_cookie_value, soap_cookie};
use super::soap_xml::parse_method_element;
use super::{Seen, SimBody, SimInner, SimProtocol, faults, respond, user_agent};

/// A SOAP fault response: status 500, `text/xml; charset=utf-8`.
fn fault_response(fault: &VimFault) -> Response<SimBody> {
    respond(
        StatusCode::INTERNAL_SERVER_ERROR,
        Some(SOAP_CONTENT_TYPE),
        fault.to_soap(),
    )
}

/// `<{method}Response xmlns="urn:vim25">...</{method}Response>` in vCenter's envelope.
fn method_response(method: &str, outcome: &Outcome) -> String {
    let mut body = format!("<{method}Response xmlns=\"urn:vim25\">");
    match outcome {
        Outcome::Void => {}
        Outcome::Value(value) => value.write_soap("returnval", &mut body),
        Outcome::LoggedIn { session, .. } => session.write_soap("returnval", &mut body),
    }
    body.push_str("</");
    body.push_str(method);
    body.push_str("Response>");
    soap_envelope(&body)
}

/// Answers one SOAP request.
pub(crate) async fn handle(
    sim: &SimInner,
    parts: &Parts,
    body: Result<Bytes, String>,
) -> (Response<SimBody>, Seen) {
    let mut seen = Seen::api(SimProtocol::Soap, &body);
    let body = match body {
        Ok(b) => b,
        Err(reason) => return (fault_response(&faults::invalid_request(&reason)), seen),
    };
    let method = match parse_method_element(&body) {
        Ok(m) => m,
        Err(reason) => return (fault_response(&faults::invalid_request(&reason)), seen),
    };
    seen.vim_method = Some(method.name.clone());
    let target = method
        .children_named("_this")
        .next()
        .and_then(|this| Args::Xml(this).moref());
    let Some(target) = target else {
        let fault = faults::invalid_request("the method element has no _this with a type");
        return (fault_response(&fault), seen);
    };
    seen.mo_id = Some(target.value.clone());
    let call = Call {
        target,
        method: &method.name,
        args: Args::Xml(&method),
        token: soap_cookie(&parts.headers).or_else(|| session_header(&parts.headers)),
        user_agent: user_agent(&parts.headers),
    };
    let response = match invoke(sim, &call).await {
        Ok(outcome) => {
            let mut response = respond(
                StatusCode::OK,
                Some(SOAP_CONTENT_TYPE),
                method_response(&method.name, &outcome),
            );
            if let Outcome::LoggedIn { token, .. } = &outcome
                && let Ok(cookie) =
                    HeaderValue::from_str(&set_cookie_value(token, sim.secure_cookie))
            {
                response.headers_mut().insert(SET_COOKIE, cookie);
            }
            response
        }
        Err(fault) => fault_response(&fault),
    };
    (response, seen)
}
