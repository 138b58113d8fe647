//! The request's way through the gateway, assembled in [`stack`] in the order of DESIGN.md:
//! tower-http's generic middleware, the rescue, then one step per concern on the one step
//! contract ([`step`]), and forwarding last.

pub mod approve;
pub mod audit;
pub mod classify;
pub mod decide;
pub mod error;
pub mod facts;
pub mod forward;
pub mod identify;
pub mod look_up;
pub mod own_api;
pub mod request_id;
pub mod rescue;
pub mod soap_tail;
pub mod step;
pub mod ticket;
pub mod trace;
pub mod watch_body;

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response, header};
use tower::ServiceBuilder;
use tower::util::BoxCloneService;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::body::{ProxyBody, boxed};
use crate::gate::approve::Approve;
use crate::gate::audit::{Audit, WriteAhead};
use crate::gate::classify::Classify;
use crate::gate::decide::Decide;
use crate::gate::forward::Forward;
use crate::gate::identify::Identify;
use crate::gate::look_up::LookUp;
use crate::gate::own_api::OwnApi;
use crate::gate::request_id::{GatewayRequestIds, REQUEST_ID_HEADER, drop_client_request_id};
use crate::gate::rescue::RescueLayer;
use crate::gate::step::StepLayer;
use crate::gate::ticket::Ticket;
use crate::gate::trace::{AccessLine, RequestSpan};
use crate::vsphere::credentials::SESSION_HEADER;

/// The assembled gateway service.
pub type GatewayService = BoxCloneService<Request<ProxyBody>, Response<ProxyBody>, Infallible>;

/// The configured steps, in the order of the request's way through.
pub struct Steps {
    /// Renders every refusal as a vim fault; starts each request's facts.
    pub rescue: RescueLayer,
    /// Records every request.
    pub audit: Audit,
    /// What call is this?
    pub classify: Classify,
    /// What does a stored call (a scheduled task, a DRS recommendation) do?
    pub look_up: LookUp,
    /// Who is calling?
    pub identify: Identify,
    /// vcguard's own API and console under `/vcguard/`, answered here and never forwarded.
    pub own_api: OwnApi,
    /// Which change ticket authorises it?
    pub ticket: Ticket,
    /// Do the policies allow it?
    pub decide: Decide,
    /// Does an approval let it through, or does it file an approval request?
    pub approve: Approve,
    /// Make an allowed guarded call's decision durable before forwarding.
    pub write_ahead: WriteAhead,
    /// Send it to vCenter.
    pub forward: Forward,
}

/// Assembles the stack in the order of the request's way through (DESIGN.md).
pub fn stack(steps: Steps, ticket_header: &http::HeaderName) -> GatewayService {
    let sensitive: Arc<[header::HeaderName]> = Arc::from(vec![
        header::AUTHORIZATION,
        header::COOKIE,
        header::HeaderName::from_static(SESSION_HEADER),
        ticket_header.clone(),
    ]);
    let service = ServiceBuilder::new()
        .map_response(|response: Response<_>| response.map(boxed))
        .map_request(drop_client_request_id)
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, GatewayRequestIds))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(SetSensitiveRequestHeadersLayer::from_shared(sensitive))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(RequestSpan)
                .on_request(())
                .on_response(AccessLine)
                .on_body_chunk(())
                .on_eos(())
                .on_failure(()),
        )
        .layer(CatchPanicLayer::custom(last_resort::PlainFault))
        .layer(steps.rescue)
        .layer(StepLayer::new(steps.audit))
        .layer(StepLayer::new(steps.classify))
        .layer(StepLayer::new(steps.look_up))
        .layer(StepLayer::new(steps.identify))
        .layer(StepLayer::new(steps.own_api))
        .layer(StepLayer::new(steps.ticket))
        .layer(StepLayer::new(steps.decide))
        .layer(StepLayer::new(steps.approve))
        .layer(StepLayer::new(steps.write_ahead))
        .service(steps.forward);
    BoxCloneService::new(service)
}

mod last_resort {
    //! The answer to a panic outside the steps (where the rescue cannot render it).

    use http::{HeaderValue, Response, StatusCode, header};
    use http_body_util::Full;
    use tower_http::catch_panic::ResponseForPanic;

    use crate::vsphere::fault::{FaultProtocol, FaultType, VimFault};

    /// A plain-text `SystemError`: the client's protocol is not known out here.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct PlainFault;

    impl ResponseForPanic for PlainFault {
        type ResponseBody = Full<bytes::Bytes>;

        fn response_for_panic(
            &mut self,
            _err: Box<dyn std::any::Any + Send + 'static>,
        ) -> Response<Self::ResponseBody> {
            tracing::error!("the gateway panicked outside its steps");
            let fault = VimFault::gateway(
                FaultType::SystemError,
                "internal",
                "vcguard failed internally and did not forward this call",
            );
            let (body, content_type) = fault.render(FaultProtocol::Plain);
            let mut response = Response::new(Full::from(body));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
    }
}

#[cfg(test)]
mod tests;
