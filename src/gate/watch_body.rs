//! A response body that tells, once, how it ended: sent whole, failed on its way (vCenter's
//! stream broke), or dropped before its end (the client went away) — with the bytes sent.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::body::{BoxError, ProxyBody};

/// How a watched body ended, with the bytes of data that went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// Every byte was sent.
    Complete {
        /// Bytes sent.
        bytes: u64,
    },
    /// The stream failed before its end.
    Failed {
        /// Bytes sent before the failure.
        bytes: u64,
    },
    /// The body was dropped before its end.
    Dropped {
        /// Bytes sent before the drop.
        bytes: u64,
    },
}

impl BodyEnd {
    /// Bytes of data that went out.
    pub fn bytes(self) -> u64 {
        match self {
            Self::Complete { bytes } | Self::Failed { bytes } | Self::Dropped { bytes } => bytes,
        }
    }
}

/// Wraps `body` so that `on_end` is called once when it ends. An already finished body is
/// returned as it is (nothing can break off).
pub fn watch_body<F>(body: ProxyBody, on_end: F) -> ProxyBody
where
    F: FnOnce(BodyEnd) + Send + 'static,
{
    if body.is_end_stream() {
        return body;
    }
    Watched {
        body,
        watcher: Watcher {
            bytes: 0,
            on_end: Some(on_end),
        },
    }
    .boxed_unsync()
}

struct Watcher<F: FnOnce(BodyEnd)> {
    bytes: u64,
    on_end: Option<F>,
}

impl<F: FnOnce(BodyEnd)> Watcher<F> {
    fn end(&mut self, end: BodyEnd) {
        if let Some(on_end) = self.on_end.take() {
            on_end(end);
        }
    }
}

impl<F: FnOnce(BodyEnd)> Drop for Watcher<F> {
    fn drop(&mut self) {
        let bytes = self.bytes;
        self.end(BodyEnd::Dropped { bytes });
    }
}

pin_project_lite::pin_project! {
    struct Watched<F: FnOnce(BodyEnd)> {
        #[pin]
        body: ProxyBody,
        watcher: Watcher<F>,
    }
}

impl<F: FnOnce(BodyEnd)> Body for Watched<F> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let frame = ready!(this.body.as_mut().poll_frame(cx));
        let watcher = this.watcher;
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    watcher.bytes += data.len() as u64;
                }
                if this.body.is_end_stream() {
                    let bytes = watcher.bytes;
                    watcher.end(BodyEnd::Complete { bytes });
                }
            }
            Some(Err(_)) => {
                let bytes = watcher.bytes;
                watcher.end(BodyEnd::Failed { bytes });
            }
            None => {
                let bytes = watcher.bytes;
                watcher.end(BodyEnd::Complete { bytes });
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::body::{boxed, full};

    fn watched(body: ProxyBody) -> (ProxyBody, Arc<Mutex<Vec<BodyEnd>>>) {
        let ends = Arc::new(Mutex::new(Vec::new()));
        let seen = ends.clone();
        let body = watch_body(body, move |end| seen.lock().expect("lock").push(end));
        (body, ends)
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_is_complete_once() {
        let (body, ends) = watched(full("hello"));
        let bytes = body.collect().await.expect("collect").to_bytes();
        assert_eq!(&bytes[..], b"hello");
        assert_eq!(
            *ends.lock().expect("lock"),
            [BodyEnd::Complete { bytes: 5 }]
        );
    }

    #[tokio::test]
    async fn a_body_dropped_half_way_says_what_was_sent() {
        let chunks = futures_util::stream::iter(vec![
            Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"abc"))),
            Ok(Frame::data(Bytes::from_static(b"def"))),
        ]);
        let (mut body, ends) = watched(boxed(http_body_util::StreamBody::new(chunks)));
        let first = body.frame().await.expect("frame").expect("data");
        assert_eq!(first.data_ref().map(Bytes::len), Some(3));
        drop(body);
        assert_eq!(*ends.lock().expect("lock"), [BodyEnd::Dropped { bytes: 3 }]);
    }

    #[tokio::test]
    async fn a_failing_stream_is_failed() {
        let chunks = futures_util::stream::iter(vec![
            Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"abcd"))),
            Err(BoxError::from("vCenter went away")),
        ]);
        let (body, ends) = watched(boxed(http_body_util::StreamBody::new(chunks)));
        assert!(body.collect().await.is_err());
        assert_eq!(*ends.lock().expect("lock"), [BodyEnd::Failed { bytes: 4 }]);
    }
}
