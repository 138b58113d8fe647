//! Thread-per-core serving: one accept loop per worker thread, each on its own single-threaded
//! runtime with its own listening socket (`SO_REUSEPORT`, the kernel spreads new connections)
//! and its own request stack and vCenter connection pool. A request, its connection and its
//! upstream connection then live on one thread: no hand-offs between workers on the way through.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::gate::GatewayService;
use crate::server::{ConnectionLimits, ListenerMetrics, serve};

/// Pending connections a listening socket queues before the kernel refuses more.
const LISTEN_BACKLOG: i32 = 1024;

/// Builds one worker's request stack (with its own vCenter connection pool).
pub(crate) type MakeService = Arc<dyn Fn() -> GatewayService + Send + Sync>;

/// Binds `count` listening sockets to `addr` with `SO_REUSEPORT` (the first decides the port
/// when `addr` has port 0).
pub(crate) fn bind_shared(
    addr: SocketAddr,
    count: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    let first = bind_one(addr)?;
    let bound = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(bind_one(bound)?);
    }
    Ok(listeners)
}

fn bind_one(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// What every worker shares.
pub(crate) struct Workers {
    /// Client-facing TLS.
    pub(crate) tls: Arc<rustls::ServerConfig>,
    /// A fresh request stack per worker.
    pub(crate) make_service: MakeService,
    /// Limits of all workers together; each enforces its share of `max_connections`.
    pub(crate) limits: ConnectionLimits,
    /// Counted by every worker.
    pub(crate) metrics: ListenerMetrics,
}

/// Serves each listener on its own thread until `shutdown` completes, then lets every worker
/// drain. Returns whether all of them drained in time.
pub(crate) async fn serve_per_core(
    listeners: Vec<std::net::TcpListener>,
    workers: Workers,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let count = listeners.len();
    let mut limits = workers.limits.clone();
    limits.max_connections = limits.max_connections.div_ceil(count.max(1)).max(1);
    let (stop, stopped) = watch::channel(false);
    let (done, mut finished) = mpsc::channel::<bool>(count.max(1));
    let mut started = 0;
    for (index, listener) in listeners.into_iter().enumerate() {
        let worker = Worker {
            listener,
            tls: workers.tls.clone(),
            service: (workers.make_service)(),
            limits: limits.clone(),
            metrics: workers.metrics.clone(),
            stopped: stopped.clone(),
            done: done.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("vcguard-worker-{index}"))
            .spawn(move || worker.run());
        match spawned {
            Ok(_) => started += 1,
            // Its socket is closed with the dropped worker, so the kernel stops sending it
            // connections; the other workers take them.
            Err(err) => {
                tracing::error!(worker = index, error = %err, "cannot start a worker thread")
            }
        }
    }
    drop(done);
    if started == 0 {
        tracing::error!("no worker thread started; not serving");
        return false;
    }
    shutdown.await;
    let _ = stop.send(true);
    let mut drained = true;
    for _ in 0..started {
        drained &= finished.recv().await.unwrap_or(false);
    }
    drained
}

/// One worker thread's share of the gateway.
struct Worker {
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    service: GatewayService,
    limits: ConnectionLimits,
    metrics: ListenerMetrics,
    stopped: watch::Receiver<bool>,
    done: mpsc::Sender<bool>,
}

impl Worker {
    fn run(self) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => {
                tracing::error!(error = %err, "cannot start a worker's runtime");
                let _ = self.done.blocking_send(false);
                return;
            }
        };
        let Worker {
            listener,
            tls,
            service,
            limits,
            metrics,
            mut stopped,
            done,
        } = self;
        let drained = runtime.block_on(async move {
            let listener = match TcpListener::from_std(listener) {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::error!(error = %err, "a worker cannot use its listening socket");
                    return false;
                }
            };
            let stop = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            serve(listener, Some(tls), service, limits, Some(metrics), stop).await
        });
        let _ = done.blocking_send(drained);
    }
}
