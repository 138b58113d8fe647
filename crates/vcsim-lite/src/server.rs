//! Serving the simulator on a socket, with a generated TLS certificate or plain HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use vsphere_wire::tls_identity::SelfSigned;

use crate::listener::serve;
use crate::{SimConfig, Simulator};

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
    #[error("generating a certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the generated certificate.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
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
    let acceptor = certificate
        .as_ref()
        .map(SelfSigned::server_config)
        .transpose()?
        .map(TlsAcceptor::from);
    let simulator = Simulator::new(config);
    let (stop, mut stopped) = watch::channel(());
    let task = tokio::spawn(serve(listener, acceptor, simulator.clone(), async move {
        let _ = stopped.changed().await;
    }));
    Ok(RunningSim {
        addr,
        certificate,
        simulator,
        stop,
        task,
    })
}

/// `vcguard sim`: serves until `shutdown` completes (the binary passes Ctrl-C or SIGTERM),
/// printing how to reach it.
pub async fn run_standalone(
    listen: SocketAddr,
    tls: bool,
    extra_users: Vec<(String, String)>,
    task_duration: Duration,
    shutdown: impl Future<Output = ()>,
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
    shutdown.await;
    running.stop().await;
    Ok(())
}
