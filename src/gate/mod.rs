//! The request's way through the gateway: one tower layer per step, assembled in [`stack`].

pub mod access_log;
pub mod classify;
pub mod forward;
pub mod request_id;
pub mod respond;
pub mod soap_tail;

use tower::ServiceBuilder;

use crate::gate::access_log::{AccessLog, AccessLogLayer};
use crate::gate::classify::{Classify, ClassifyLayer};
use crate::gate::forward::Forward;
use crate::gate::request_id::{RequestIdLayer, SetRequestId};

/// The assembled gateway service, outermost layer first.
pub type GatewayService = SetRequestId<AccessLog<Classify<Forward>>>;

/// Assembles the stack in the order of the request's way through (DESIGN.md).
pub fn stack(classify: ClassifyLayer, forward: Forward) -> GatewayService {
    ServiceBuilder::new()
        .layer(RequestIdLayer)
        .layer(AccessLogLayer)
        .layer(classify)
        .service(forward)
}
