//! Request ids: every request gets a gateway-made id (a client-sent `x-request-id` is dropped,
//! never trusted), kept in the extensions by tower-http's `SetRequestId` and echoed in the
//! response by `PropagateRequestId`.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderName, HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};

/// Header carrying the request id in responses.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Makes request ids of 32 hex digits: a random per-process prefix and a counter, so ids never
/// repeat within a run and collide across runs or replicas only by chance (2^-64).
#[derive(Debug, Clone, Copy, Default)]
pub struct GatewayRequestIds;

impl MakeRequestId for GatewayRequestIds {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        static PREFIX: LazyLock<u64> = LazyLock::new(|| uuid::Uuid::new_v4().as_u64_pair().0);
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = u128::from(*PREFIX) << 64 | u128::from(n);
        let mut digits = [0; 32];
        // Exactly twice as long as the id's 16 bytes: cannot fail.
        let _ = hex::encode_to_slice(id.to_be_bytes(), &mut digits);
        HeaderValue::from_bytes(&digits).ok().map(RequestId::new)
    }
}

/// Drops a client-sent request id, so the gateway's own is the one set next.
pub fn drop_client_request_id<B>(mut req: Request<B>) -> Request<B> {
    req.headers_mut().remove(REQUEST_ID_HEADER);
    req
}

/// The request's id, or `-` outside the gateway's stack.
pub fn request_id_of<B>(req: &Request<B>) -> &str {
    id_text(req.extensions().get::<RequestId>())
}

/// A request id as text, or `-` for none.
pub fn id_text(id: Option<&RequestId>) -> &str {
    id.and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_digits_and_never_repeat() {
        let req = Request::new(());
        let mut make = GatewayRequestIds;
        let a = make.make_request_id(&req).expect("id");
        let b = make.make_request_id(&req).expect("id");
        let a = a.header_value().to_str().expect("text").to_owned();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        let b = b.header_value().to_str().expect("text");
        assert_ne!(a, b);
        assert_eq!(a[..16], b[..16], "one prefix per process");
        let counter = |id: &str| u64::from_str_radix(&id[16..], 16).expect("hex counter");
        assert!(counter(b) > counter(&a), "{a} then {b}");
    }
}
