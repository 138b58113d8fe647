//! A stream wrapper that fails reads when no byte arrives before a deadline, so a client
//! that connects (and finishes TLS) but never sends a request cannot hold a connection slot.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

pin_project! {
    /// Wraps `S`; until the first byte is read, a read pending past the deadline fails
    /// with [`io::ErrorKind::TimedOut`]. After the first byte it is a plain pass-through.
    pub(crate) struct FirstByteDeadline<S> {
        #[pin]
        inner: S,
        deadline: Option<Pin<Box<Sleep>>>,
    }
}

impl<S> FirstByteDeadline<S> {
    /// Arms a deadline of `limit` from now.
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(limit))),
        }
    }
}

impl<S: AsyncRead> AsyncRead for FirstByteDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        match this.inner.poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    *this.deadline = None;
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let Some(deadline) = this.deadline.as_mut() else {
                    return Poll::Pending;
                };
                ready!(deadline.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request arrived within the first-byte deadline",
                )))
            }
        }
    }
}

impl<S: AsyncWrite> AsyncWrite for FirstByteDeadline<S> {
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

    #[tokio::test]
    async fn silent_peer_times_out() {
        let (client, server) = tokio::io::duplex(64);
        let mut guarded = FirstByteDeadline::new(server, Duration::from_millis(200));
        let mut buf = [0u8; 8];
        let err = guarded.read(&mut buf).await.expect_err("deadline passes");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(client);
    }

    #[tokio::test]
    async fn deadline_is_gone_after_the_first_byte() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut guarded = FirstByteDeadline::new(server, Duration::from_millis(200));
        client.write_all(b"G").await.expect("write");
        let mut buf = [0u8; 8];
        assert_eq!(guarded.read(&mut buf).await.expect("first byte"), 1);
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            client.write_all(b"ET").await.expect("write");
            client
        });
        assert_eq!(guarded.read(&mut buf).await.expect("late bytes"), 2);
        assert_eq!(&buf[..2], b"ET");
        drop(later.await.expect("writer"));
    }
}
