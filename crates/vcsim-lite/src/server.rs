//! Serving the simulator on a socket, with a generated TLS certificate or plain HTTP.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use vsphere_wire::tls_identity::SelfSigned;

use crate::{SimConfig, Simulator};

/// Time a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After a stop, how long in-flight requests may take.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

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

/// Accepts connections until `stop` completes, then lets in-flight requests finish (for at
/// most [`SHUTDOWN_GRACE`]); true when they all did.
async fn serve(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    simulator: Simulator,
    stop: impl Future<Output = ()>,
) -> bool {
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _peer)) = accepted else {
            tokio::time::sleep(ACCEPT_RETRY).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let simulator = simulator.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(stream, simulator, watcher).await,
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await
                    {
                        serve_connection(stream, simulator, watcher).await;
                    }
                }
            }
        });
    }
    drop(listener);
    tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_ok()
}

/// Answers HTTP/1.1 or HTTP/2 requests (and console upgrades) on one connection until it
/// ends or a graceful stop closes it.
async fn serve_connection<I>(io: I, simulator: Simulator, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let simulator = simulator.clone();
        async move { Ok::<_, Infallible>(simulator.handle(req).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    // A connection that fails (client gone, malformed request) concerns only that client.
    let _ = watcher.watch(conn.into_owned()).await;
}
