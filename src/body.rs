//! The one body type that travels through the gateway: a boxed, streaming body.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Any error a body or service can carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming HTTP body, request or response, boxed so every layer shares one type.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Boxes any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> ProxyBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A complete body from bytes already in memory.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    boxed(Full::new(bytes.into()))
}

/// An empty body.
pub fn empty() -> ProxyBody {
    boxed(Empty::<Bytes>::new())
}

/// Why a body could not be collected whole.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The body is longer than the cap.
    #[error("body exceeds {cap} bytes")]
    TooLarge {
        /// The cap in bytes.
        cap: usize,
    },
    /// The client's stream failed (disconnect, malformed chunking).
    #[error("reading the request body: {0}")]
    Read(BoxError),
}

/// Reads a whole body into memory, refusing more than `cap` bytes.
pub async fn collect_capped(mut body: ProxyBody, cap: usize) -> Result<Bytes, CollectError> {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(CollectError::Read)?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > cap {
                return Err(CollectError::TooLarge { cap });
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// Puts bytes already read back in front of the rest of a streaming body.
pub fn prefixed(prefix: Bytes, rest: ProxyBody) -> ProxyBody {
    if prefix.is_empty() {
        return rest;
    }
    Prefixed {
        prefix: Some(prefix),
        rest,
    }
    .boxed_unsync()
}

pin_project_lite::pin_project! {
    struct Prefixed {
        prefix: Option<Bytes>,
        #[pin]
        rest: ProxyBody,
    }
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Some(prefix) = this.prefix.take() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(prefix))));
        }
        this.rest.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let rest = self.rest.size_hint();
        let extra = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let mut hint = http_body::SizeHint::new();
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + extra);
        }
        hint.set_lower(rest.lower() + extra);
        hint
    }
}

/// Keeps `guard` alive for as long as the body is (e.g. a permit for the connection it
/// streams from); size and end of stream are the body's own.
pub fn holding<B, G>(body: B, guard: G) -> ProxyBody
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Send + 'static,
    G: Send + 'static,
{
    Holding {
        body,
        _guard: guard,
    }
    .boxed_unsync()
}

pin_project_lite::pin_project! {
    struct Holding<B, G> {
        #[pin]
        body: B,
        _guard: G,
    }
}

impl<B, G> http_body::Body for Holding<B, G>
where
    B: http_body::Body<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prefix_then_rest_in_order_with_exact_size() {
        let body = prefixed(
            Bytes::from_static(b"<soap"),
            full(Bytes::from_static(b":Envelope/>")),
        );
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(16));
        let all = collect_capped(body, 1024).await.expect("collect");
        assert_eq!(&all[..], b"<soap:Envelope/>");
    }

    #[tokio::test]
    async fn cap_refuses_longer_bodies() {
        let err = collect_capped(full(vec![0u8; 11]), 10)
            .await
            .expect_err("too large");
        assert!(matches!(err, CollectError::TooLarge { cap: 10 }));
    }

    #[tokio::test]
    async fn a_held_guard_lives_as_long_as_the_body_and_keeps_its_size() {
        let guard = std::sync::Arc::new(());
        let body = holding(full(Bytes::from_static(b"task-101")), guard.clone());
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(8));
        assert_eq!(std::sync::Arc::strong_count(&guard), 2);
        let bytes = body.collect().await.expect("collect").to_bytes();
        assert_eq!(&bytes[..], b"task-101");
        assert_eq!(
            std::sync::Arc::strong_count(&guard),
            1,
            "dropped with the body"
        );
    }
}
