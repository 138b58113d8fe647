//! Serving the simulator on a socket, with a generated TLS certificate or plain HTTP.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::Service;

use crate::body::ProxyBody;
use crate::server::{ConnectionLimits, serve};
use crate::sim::{SimConfig, Simulator};
use crate::tls::{SelfSigned, TlsError};

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimStartError {
    /// The listen address could not be bound.
    #[error("simulator cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The certificate could not be generated.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The simulator as a tower service.
#[derive(Clone)]
pub struct SimService(pub Simulator);

impl Service<Request<ProxyBody>> for SimService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<ProxyBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ProxyBody>) -> Self::Future {
        let simulator = self.0.clone();
        Box::pin(async move { Ok(simulator.handle(req).await) })
    }
}

/// A simulator serving in the background.
pub struct RunningSim {
    /// The bound address.
    pub addr: SocketAddr,
    /// The generated certificate (TLS mode only).
    pub certificate: Option<SelfSigned>,
    /// The simulator, for state and journal assertions.
    pub simulator: Simulator,
    stop: watch::Sender<()>,
    task: JoinHandle<bool>,
}

impl RunningSim {
    /// The base URL clients use, `https://127.0.0.1:PORT` or `http://...`.
    pub fn base_url(&self) -> String {
        let scheme = if self.certificate.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish, and waits for that.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Binds `listen` and serves a simulator built from `config` in the background.
///
/// Over plain HTTP the session cookie is never marked `Secure`.
pub async fn start(
    listen: SocketAddr,
    tls: bool,
    mut config: SimConfig,
) -> Result<RunningSim, SimStartError> {
    config.secure_cookie &= tls;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| SimStartError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| SimStartError::Bind {
            addr: listen,
            source,
        })?;
    let certificate = if tls {
        Some(SelfSigned::generate(&["localhost", "127.0.0.1", "::1"])?)
    } else {
        None
    };
    let server_tls = certificate
        .as_ref()
        .map(SelfSigned::server_config)
        .transpose()?;
    let simulator = Simulator::new(config);
    let (stop, mut stopped) = watch::channel(());
    let task = tokio::spawn(serve(
        listener,
        server_tls,
        SimService(simulator.clone()),
        ConnectionLimits::default(),
        None,
        async move {
            let _ = stopped.changed().await;
        },
    ));
    Ok(RunningSim {
        addr,
        certificate,
        simulator,
        stop,
        task,
    })
}

/// `vcguard sim`: serves until Ctrl-C or SIGTERM, printing how to reach it.
pub async fn run_standalone(
    listen: SocketAddr,
    tls: bool,
    extra_users: Vec<(String, String)>,
    task_duration: Duration,
) -> Result<(), SimStartError> {
    let mut config = SimConfig {
        task_duration,
        ..SimConfig::default()
    };
    config.users.extend(extra_users);
    let running = start(listen, tls, config).await?;
    println!("vCenter simulator listening on {}", running.base_url());
    println!("  user administrator@vsphere.local, password VMware1!");
    if !task_duration.is_zero() {
        println!("  tasks run for {} ms each", task_duration.as_millis());
    }
    if let Some(cert) = &running.certificate {
        println!("  certificate SHA-256 thumbprint: {}", cert.thumbprint());
        println!(
            "  run the gateway with: --upstream {} --upstream-thumbprint {}",
            running.base_url(),
            cert.thumbprint()
        );
    }
    crate::server::shutdown_signal().await;
    running.stop().await;
    Ok(())
}
