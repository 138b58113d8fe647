//! The request span and the optional access line, as tower-http's `TraceLayer` hooks.
//!
//! Without the access log (`[log] access`), only guarded calls get a span (classify opens it):
//! building one for every pass-through call costs more than the rest of the logging.

use std::time::Duration;

use http::{Request, Response};
use tower_http::trace::{MakeSpan, OnResponse};
use tracing::Span;

use crate::gate::request_id::request_id_of;
use crate::server::ClientAddr;

/// Makes the `request` span when the access log is on.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &Request<B>) -> Span {
        if tracing::enabled!(target: "vcguard::access", tracing::Level::INFO) {
            request_span(req)
        } else {
            Span::none()
        }
    }
}

/// Logs one access line per request when the access log is on.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLine;

impl<B> OnResponse<B> for AccessLine {
    fn on_response(self, response: &Response<B>, latency: Duration, _span: &Span) {
        tracing::info!(
            target: "vcguard::access",
            status = response.status().as_u16(),
            latency_us = latency.as_micros() as u64,
            "request finished"
        );
    }
}

/// The `request` span: the request id, client, method and path; classify and identify fill in
/// the call's protocol, target, guarded method and user.
pub fn request_span<B>(req: &Request<B>) -> Span {
    let client = req.extensions().get::<ClientAddr>().map(ClientAddr::addr);
    tracing::info_span!(
        "request",
        id = request_id_of(req),
        client = client.map(tracing::field::display),
        method = %req.method(),
        path = req.uri().path(),
        protocol = tracing::field::Empty,
        moid = tracing::field::Empty,
        guarded = tracing::field::Empty,
        user = tracing::field::Empty,
    )
}
