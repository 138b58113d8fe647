//! A stream wrapper that fails reads while a new connection has not delivered its first
//! request in time: first its first byte must come within one deadline, then the rest of the
//! request head within another. A client that connects (and finishes TLS) but never sends a
//! request, or sends a byte and stalls, cannot hold a connection slot. After the first request
//! it is a plain pass-through (kept-alive HTTP/1.1 follows hyper's header-read timeout).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Set once the connection's first request has been handed to the service.
#[derive(Debug, Clone, Default)]
pub(crate) struct FirstRequestSeen(Arc<AtomicBool>);

impl FirstRequestSeen {
    /// Marks the first request as received.
    pub(crate) fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn seen(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

pin_project! {
    /// Wraps `S`; a read pending past the current deadline fails with
    /// [`io::ErrorKind::TimedOut`] until the first request is marked seen.
    pub(crate) struct FirstRequestDeadline<S> {
        #[pin]
        inner: S,
        deadline: Option<Pin<Box<Sleep>>>,
        // Time for the rest of the request head once the first byte is in (`None`: in that phase).
        head_limit: Option<Duration>,
        head_phase_limit: Duration,
        seen: FirstRequestSeen,
    }
}

impl<S> FirstRequestDeadline<S> {
    /// The first byte must arrive within `first_byte` from now (`None`: it already has), then
    /// the request head within `head` from that byte, until `seen` is marked.
    pub(crate) fn new(
        inner: S,
        first_byte: Option<Duration>,
        head: Duration,
        seen: FirstRequestSeen,
    ) -> Self {
        let (limit, head_limit) = match first_byte {
            Some(limit) => (limit, Some(head)),
            None => (head, None),
        };
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(limit))),
            head_limit,
            head_phase_limit: head,
            seen,
        }
    }
}

impl<S: AsyncRead> AsyncRead for FirstRequestDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if this.deadline.is_some() && this.seen.seen() {
            *this.deadline = None;
        }
        let Some(deadline) = this.deadline.as_mut() else {
            return polled;
        };
        match polled {
            Poll::Ready(result) => {
                if buf.filled().len() > before && this.head_limit.take().is_some() {
                    let head = *this.head_phase_limit;
                    deadline.as_mut().reset(Instant::now() + head);
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                ready!(deadline.as_mut().poll(cx));
                let what = if this.head_limit.is_some() {
                    "no byte arrived within the first-byte deadline"
                } else {
                    "the first request did not arrive within the header-read deadline"
                };
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
            }
        }
    }
}

impl<S: AsyncWrite> AsyncWrite for FirstRequestDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const SHORT: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn silent_peer_times_out() {
        let (_client, server) = tokio::io::duplex(64);
        let seen = FirstRequestSeen::default();
        let mut guarded = FirstRequestDeadline::new(server, Some(SHORT), SHORT, seen);
        let mut buf = [0u8; 8];
        let err = guarded.read(&mut buf).await.expect_err("deadline passes");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn one_byte_then_silence_times_out_too() {
        let (mut client, server) = tokio::io::duplex(64);
        let seen = FirstRequestSeen::default();
        let mut guarded = FirstRequestDeadline::new(server, Some(SHORT), SHORT, seen);
        client.write_all(b"G").await.expect("write");
        let mut buf = [0u8; 8];
        assert_eq!(guarded.read(&mut buf).await.expect("first byte"), 1);
        let err = guarded
            .read(&mut buf)
            .await
            .expect_err("head never completes");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn no_deadline_after_the_first_request() {
        let (mut client, server) = tokio::io::duplex(64);
        let seen = FirstRequestSeen::default();
        let mut guarded = FirstRequestDeadline::new(server, Some(SHORT), SHORT, seen.clone());
        client
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        assert!(guarded.read(&mut buf).await.expect("request") > 0);
        seen.mark();
        let later = tokio::spawn(async move {
            tokio::time::sleep(SHORT * 3).await;
            client.write_all(b"ET").await.expect("write");
            client
        });
        assert_eq!(guarded.read(&mut buf).await.expect("late bytes"), 2);
        assert_eq!(&buf[..2], b"ET");
        drop(later.await.expect("writer"));
    }
}
