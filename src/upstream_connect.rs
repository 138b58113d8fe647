//! The connector to vCenter: hyper-rustls' HTTPS connector with one deadline over the
//! whole connect (TCP connect and TLS handshake), and TCP keep-alive on its sockets.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::Service;

use crate::body::BoxError;

/// Idle time before TCP keep-alive probes start on connections to vCenter.
pub const UPSTREAM_TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// A connection to vCenter, TLS or (for `http://` upstreams) plain.
pub type UpstreamStream = MaybeHttpsStream<TokioIo<TcpStream>>;

/// The whole connect did not finish within `upstream.connect_timeout_secs`.
#[derive(Debug, thiserror::Error)]
#[error(
    "connecting to vCenter (TCP connect and TLS handshake) took longer than upstream.connect_timeout_secs ({} s)",
    .0.as_secs_f64()
)]
pub struct ConnectTimedOut(pub Duration);

/// Connects to vCenter within one deadline; usable as hyper-util's client connector.
#[derive(Clone)]
pub struct UpstreamConnector {
    inner: HttpsConnector<HttpConnector>,
    timeout: Duration,
}

impl UpstreamConnector {
    /// A connector speaking TLS with `tls` (HTTP/1.1 by ALPN) to `https://` URLs and plain
    /// HTTP to `http://` ones; each connect, TLS included, is bounded by `connect_timeout`.
    pub fn new(
        tls: rustls::ClientConfig,
        connect_timeout: Duration,
        tcp_keepalive: Option<Duration>,
    ) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        http.set_keepalive(tcp_keepalive);
        let inner = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Self {
            inner,
            timeout: connect_timeout,
        }
    }
}

impl Service<Uri> for UpstreamConnector {
    type Response = UpstreamStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(limit, connecting).await {
                Ok(result) => result,
                Err(_) => Err(Box::new(ConnectTimedOut(limit)) as BoxError),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_silent_tls_peer_fails_the_connect_within_the_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let held = tokio::spawn(async move {
            // Accepts TCP and never answers the ClientHello.
            let (socket, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        let tls =
            crate::tls::upstream_client_config(&crate::config::UpstreamTrust::InsecureSkipVerify)
                .expect("client config");
        let mut connector = UpstreamConnector::new(tls, Duration::from_millis(300), None);
        let uri: Uri = format!("https://{addr}/").parse().expect("uri");
        let err = match connector.call(uri).await {
            Ok(_) => panic!("a peer that never speaks TLS cannot be connected"),
            Err(err) => err,
        };
        assert!(err.downcast_ref::<ConnectTimedOut>().is_some(), "{err}");
        assert!(
            err.to_string().contains("upstream.connect_timeout_secs"),
            "{err}"
        );
        held.abort();
    }
}
