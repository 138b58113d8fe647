//! Answers the gateway gives itself: vim faults in the protocol the client spoke.

use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{ProxyBody, full};
use crate::vsphere::fault::{FaultProtocol, VimFault};

/// The protocol a client most likely spoke, from the path alone (before classification).
pub fn protocol_of_path(path: &str) -> FaultProtocol {
    if path.starts_with("/sdk/vim25/") {
        FaultProtocol::Json
    } else if path == "/sdk" || path.starts_with("/sdk/") {
        FaultProtocol::Soap
    } else {
        FaultProtocol::Plain
    }
}

/// The vim fault type of an answer the gateway made itself, in response extensions (for the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayFault(pub String);

/// A response carrying `fault`, shaped for `protocol`, with `status`.
pub fn fault_response(
    status: StatusCode,
    protocol: FaultProtocol,
    fault: &VimFault,
) -> Response<ProxyBody> {
    let (body, content_type) = fault.render(protocol);
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .extensions_mut()
        .insert(GatewayFault(fault.type_name.clone()));
    response
}
