//! The floor of vcguard's stack, for `bench/compare.sh` (`FLOOR=1`): a reverse proxy built from
//! the same parts as the gateway (a tokio runtime and `SO_REUSEPORT` listener per core, rustls,
//! hyper's HTTP/1 server, hyper-util's pooled client, mimalloc) and nothing else: no steps, no
//! audit record, no header treatment. What a pass-through call through vcguard costs beyond this
//! is the gateway's own work; what this costs beyond nginx is the stack's.
//!
//! Usage: `floor_proxy LISTEN CERT_PEM KEY_PEM UPSTREAM_BASE` (e.g. `127.0.0.1:28004 gw.pem
//! gw.key http://127.0.0.1:28000`); one worker per core.
//!
//! `FLOOR_WORK_US=N` adds N µs of busy work (calibrated at start) to every call: the floor then
//! stands for a gateway whose own work costs N µs a call, which shows how much own work a given
//! throughput against nginx leaves room for (`bench/compare.sh` passes the variable through).

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[global_allocator]
static ALLOCATOR: natural_mimalloc::NaturalMimalloc = natural_mimalloc::NaturalMimalloc;

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, cert, key, upstream] = args.as_slice() else {
        return Err("usage: floor_proxy LISTEN CERT_PEM KEY_PEM UPSTREAM_BASE".into());
    };
    let listen: SocketAddr = listen.parse()?;
    let mut tls = (*vcguard::tls::server_config(Path::new(cert), Path::new(key))?).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = TlsAcceptor::from(Arc::new(tls));
    let upstream: Uri = upstream.parse()?;
    let authority = upstream
        .authority()
        .cloned()
        .ok_or("UPSTREAM_BASE has no host")?;
    let work = Work::from_env()?;
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let listener = bind(listen)?;
            let (tls, authority) = (tls.clone(), authority.clone());
            Ok(std::thread::spawn(move || {
                serve(listener, tls, authority, work)
            }))
        })
        .collect::<Result<_, Failure>>()?;
    for thread in threads {
        thread.join().map_err(|_| "a worker panicked")??;
    }
    Ok(())
}

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, Failure> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// One worker: its own runtime, listener and upstream pool.
fn serve(
    listener: std::net::TcpListener,
    tls: TlsAcceptor,
    authority: Authority,
    work: Work,
) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<_, Incoming> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(64)
            .build(connector);
        let forward = Arc::new((client, authority));
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let (tls, forward) = (tls.clone(), forward.clone());
            tokio::spawn(async move {
                let Ok(stream) = tls.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    work.run();
                    proxy(forward.clone(), req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn proxy(
    forward: Arc<(Client<HttpConnector, Incoming>, Authority)>,
    req: Request<Incoming>,
) -> Result<Response<Incoming>, Failure> {
    let (client, authority) = &*forward;
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority.clone())
        .path_and_query(path)
        .build()?;
    Ok(client.request(Request::from_parts(parts, body)).await?)
}

/// Busy work added to every call (`FLOOR_WORK_US`), as a number of steps of a loop the
/// optimiser cannot remove.
#[derive(Clone, Copy)]
struct Work {
    steps: u64,
}

impl Work {
    fn from_env() -> Result<Self, Failure> {
        let micros: u64 = match std::env::var("FLOOR_WORK_US") {
            Ok(text) => text.parse().map_err(|_| "FLOOR_WORK_US must be whole µs")?,
            Err(_) => 0,
        };
        if micros == 0 {
            return Ok(Self { steps: 0 });
        }
        // The fastest of a few timed rounds: the least disturbed by other processes.
        let probe = 1_000_000;
        let fastest = (0..5)
            .map(|_| {
                let started = Instant::now();
                Self { steps: probe }.run();
                started.elapsed()
            })
            .min()
            .unwrap_or(Duration::from_millis(1));
        let per_micro = probe as f64 / fastest.as_secs_f64() / 1e6;
        let steps = (per_micro * micros as f64) as u64;
        eprintln!("floor_proxy: {micros} µs of work per call = {steps} steps");
        Ok(Self { steps })
    }

    fn run(self) {
        let mut x = black_box(0x9e37_79b9_7f4a_7c15_u64);
        for _ in 0..self.steps {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        black_box(x);
    }
}
