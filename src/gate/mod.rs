//! The request's way through the gateway: one tower layer per step, assembled in [`stack`].

pub mod access_log;
pub mod audit;
pub mod classify;
pub mod decide;
pub mod forward;
pub mod identify;
pub mod request_id;
pub mod respond;
pub mod soap_tail;
pub mod ticket;

use std::convert::Infallible;

use futures_util::future::BoxFuture;
use http::{Request, Response};
use tower::{Service, ServiceBuilder};

use crate::body::ProxyBody;

use crate::gate::access_log::{AccessLog, AccessLogLayer};
use crate::gate::audit::{Audit, AuditLayer, WriteAhead, WriteAheadLayer};
use crate::gate::classify::{Classify, ClassifyLayer};
use crate::gate::decide::{Decide, DecideLayer};
use crate::gate::forward::Forward;
use crate::gate::identify::{Identify, IdentifyLayer};
use crate::gate::request_id::{RequestIdLayer, SetRequestId};
use crate::gate::ticket::{Ticket, TicketLayer};

/// The assembled gateway service, outermost layer first.
pub type GatewayService =
    SetRequestId<AccessLog<Classify<Identify<Ticket<Audit<Decide<WriteAhead<Forward>>>>>>>>;

/// The configured steps, in the order of the request's way through.
pub struct Steps {
    /// What call is this?
    pub classify: ClassifyLayer,
    /// Who is calling?
    pub identify: IdentifyLayer,
    /// Which change ticket authorises it?
    pub ticket: TicketLayer,
    /// Record denials and every outcome.
    pub audit: AuditLayer,
    /// Do the policies allow it?
    pub decide: DecideLayer,
    /// Make an allowed guarded call's decision durable before forwarding.
    pub write_ahead: WriteAheadLayer,
    /// Send it to vCenter.
    pub forward: Forward,
}

/// Assembles the stack in the order of the request's way through (DESIGN.md).
pub fn stack(steps: Steps) -> GatewayService {
    ServiceBuilder::new()
        .layer(RequestIdLayer)
        .layer(AccessLogLayer)
        .layer(steps.classify)
        .layer(steps.identify)
        .layer(steps.ticket)
        .layer(steps.audit)
        .layer(steps.decide)
        .layer(steps.write_ahead)
        .service(steps.forward)
}

/// Calls the inner service through a boxed future: naming the body type here (outside the
/// async block) keeps the compiler from asking for `Send` over every error lifetime.
pub(crate) fn call_boxed<S>(
    inner: &mut S,
    req: Request<ProxyBody>,
) -> BoxFuture<'static, Result<Response<ProxyBody>, Infallible>>
where
    S: Service<Request<ProxyBody>, Response = Response<ProxyBody>, Error = Infallible>,
    S::Future: Send + 'static,
{
    Box::pin(inner.call(req))
}
