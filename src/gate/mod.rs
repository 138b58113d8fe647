//! The request's way through the gateway: one tower layer per step, assembled in [`stack`].

pub mod access_log;
pub mod forward;
pub mod request_id;
pub mod respond;

use tower::ServiceBuilder;

use crate::gate::access_log::{AccessLog, AccessLogLayer};
use crate::gate::forward::Forward;
use crate::gate::request_id::{RequestIdLayer, SetRequestId};

/// The assembled gateway service, outermost layer first.
pub type GatewayService = SetRequestId<AccessLog<Forward>>;

/// Assembles the stack in the order of the request's way through (DESIGN.md).
pub fn stack(forward: Forward) -> GatewayService {
    ServiceBuilder::new()
        .layer(RequestIdLayer)
        .layer(AccessLogLayer)
        .service(forward)
}
