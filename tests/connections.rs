//! Connection hygiene with real sockets and TLS: silent connections cannot starve clients,
//! kept-alive connections live past the first-byte deadline, a blackhole vCenter gives 502
//! within the connect timeout, and running out of file descriptors pauses accepting only.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::edge::EdgeGateway;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vcguard::config::{UpstreamTrust, parse_thumbprint};
use vcguard::server::ConnectionLimits;
use vcsim_lite::SimConfig;
use vcsim_lite::server::{RunningSim, start};

const CONTENT: &str = "/sdk/vim25/8.0.3.0/ServiceInstance/ServiceInstance/content";
const LOOPBACK_ANY_PORT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

async fn sim() -> (RunningSim, UpstreamTrust) {
    let sim = start(LOOPBACK_ANY_PORT, true, SimConfig::default())
        .await
        .expect("simulator starts");
    let print = sim.certificate.as_ref().expect("TLS sim").thumbprint();
    let trust = UpstreamTrust::Thumbprint(parse_thumbprint(&print).expect("thumbprint"));
    (sim, trust)
}

fn limits(max_connections: usize, first_byte: Duration) -> ConnectionLimits {
    ConnectionLimits {
        max_connections,
        first_byte_timeout: first_byte,
        shutdown_grace: Duration::from_secs(1),
        ..ConnectionLimits::default()
    }
}

/// Reads until the peer closes (`true`) or `limit` passes (`false`).
async fn closed_by_peer<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> bool {
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn silent_connections_filling_max_connections_do_not_starve_a_client() {
    let (sim, trust) = sim().await;
    const MAX: usize = 16;
    let gateway = EdgeGateway::start(
        &sim.base_url(),
        trust,
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(2),
            tls_handshake_timeout: Duration::from_secs(2),
            ..limits(MAX, Duration::from_secs(1))
        },
        |_| {},
    )
    .await;
    // A quarter never send a byte; a quarter send one byte and stall; a quarter finish TLS
    // and never send a request; a quarter finish TLS, send one byte of a request and stall.
    let mut raw = Vec::new();
    for i in 0..MAX / 2 {
        let mut stream = tokio::net::TcpStream::connect(gateway.addr)
            .await
            .expect("connect");
        if i % 2 == 1 {
            stream.write_all(&[0x16]).await.expect("one byte");
        }
        raw.push(stream);
    }
    let mut tls = Vec::new();
    for i in 0..MAX / 2 {
        let mut stream = gateway.tls_connect().await;
        if i % 2 == 1 {
            stream.write_all(b"G").await.expect("one byte");
            stream.flush().await.expect("flush");
        }
        tls.push(stream);
    }
    // Every slot is taken now; without deadlines they stay taken as long as the flood lasts
    // (the whole test), and this request would time out.
    let started = Instant::now();
    let response = gateway
        .client(Duration::from_secs(15))
        .get(format!("{}{CONTENT}", gateway.base()))
        .send()
        .await
        .expect("a normal client is answered while silent connections are held");
    assert_eq!(response.status(), 200);
    eprintln!(
        "answered after {:?} with {MAX} silent or stalled connections held (first-byte deadline 1 s, header-read 2 s)",
        started.elapsed()
    );
    for stream in &mut raw {
        assert!(
            closed_by_peer(stream, Duration::from_secs(10)).await,
            "a connection that never sent a byte was not closed"
        );
    }
    for stream in &mut tls {
        assert!(
            closed_by_peer(stream, Duration::from_secs(10)).await,
            "a TLS connection that never sent a request was not closed"
        );
    }
    gateway.stop().await;
}

#[tokio::test]
async fn a_kept_alive_connection_outlives_the_first_byte_deadline() {
    let (sim, trust) = sim().await;
    let gateway = EdgeGateway::start(
        &sim.base_url(),
        trust,
        limits(64, Duration::from_secs(1)),
        |_| {},
    )
    .await;
    let tls = gateway.tls_connect().await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP/1.1 over the TLS connection");
    let conn = tokio::spawn(conn);
    for round in 0..2 {
        let request = http::Request::get(CONTENT)
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let response = sender
            .send_request(request)
            .await
            .unwrap_or_else(|err| panic!("request {round} on the same connection: {err}"));
        assert_eq!(response.status(), 200, "request {round}");
        let _ = response.into_body().collect().await.expect("body");
        // Idle for twice the first-byte deadline; the header-read timeout (30 s) governs now.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    drop(sender);
    let _ = conn.await;
    gateway.stop().await;
}

#[tokio::test]
async fn a_blackhole_vcenter_gives_502_within_the_connect_timeout() {
    // Accepts TCP and never answers the TLS ClientHello.
    let blackhole = tokio::net::TcpListener::bind(LOOPBACK_ANY_PORT)
        .await
        .expect("bind");
    let upstream = format!("https://{}", blackhole.local_addr().expect("addr"));
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = blackhole.accept().await {
            held.push(socket);
        }
    });
    let gateway = EdgeGateway::start(
        &upstream,
        UpstreamTrust::InsecureSkipVerify,
        ConnectionLimits::default(),
        |options| {
            options.connect_timeout = Duration::from_secs(1);
            options.response_timeout = Duration::from_secs(60);
        },
    )
    .await;
    let started = Instant::now();
    let response = gateway
        .client(Duration::from_secs(40))
        .get(format!("{}{CONTENT}", gateway.base()))
        .send()
        .await
        .expect("an answer before the 60 s response timeout");
    let elapsed = started.elapsed();
    assert_eq!(
        response.status(),
        502,
        "a failed connect is a 502, not a 504 after the response timeout"
    );
    let body = response.text().await.expect("fault body");
    assert!(body.contains("upstream.connect_timeout_secs"), "{body}");
    eprintln!("502 after {elapsed:?} (connect timeout 1 s, response timeout 60 s)");
    holder.abort();
    gateway.stop().await;
}

/// A free loopback port (bound and released; a small race is acceptable in tests).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Runs the real binary under `ulimit -n 128`, floods it with idle connections until accept
/// fails with EMFILE, and checks that open connections keep being served, that the failure is
/// logged once and counted, and that new clients are served once the flood goes away.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn out_of_file_descriptors_pauses_accepting_but_serves_open_connections() {
    use std::process::{Command, Stdio};
    if !Command::new("sh")
        .args(["-c", "ulimit -n 128"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("SKIPPED: no POSIX sh with ulimit -n available");
        return;
    }
    let (sim, _) = sim().await;
    let print = sim.certificate.as_ref().expect("TLS sim").thumbprint();
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = vcguard::tls::SelfSigned::generate(&["localhost"]).expect("cert");
    let (cert_path, key_path) = (dir.path().join("gw.pem"), dir.path().join("gw.key"));
    std::fs::write(&cert_path, &cert.cert_pem).expect("cert");
    std::fs::write(&key_path, &cert.key_pem).expect("key");
    let (port, admin_port) = (free_port(), free_port());
    let config = dir.path().join("vcguard.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
listen = "127.0.0.1:{port}"
cert = "{cert}"
key = "{key}"
first_byte_timeout_secs = 300
header_read_timeout_secs = 300
max_connections = 1000
[upstream]
url = "{upstream}"
thumbprint = "{print}"
max_connections = 4
pool_max_idle = 4
[admin]
listen = "127.0.0.1:{admin_port}"
[policy]
dir = "{policies}"
[audit]
file = "{audit}"
"#,
            cert = cert_path.display(),
            key = key_path.display(),
            upstream = sim.base_url(),
            policies = common::shipped_policies().display(),
            audit = dir.path().join("audit.jsonl").display(),
        ),
    )
    .expect("config");
    let stderr_path = dir.path().join("stderr.log");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 128 && exec \"$0\" serve --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_vcguard"))
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("start vcguard");
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        exhaust_and_recover(&cert, port, admin_port),
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let stderr = std::fs::read_to_string(&stderr_path).expect("stderr");
    outcome.unwrap_or_else(|_| panic!("the scenario did not finish in 120 s; log:\n{stderr}"));
    let accept_failed = stderr
        .lines()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert_eq!(
        accept_failed, 1,
        "one line per exhaustion episode, not one per attempt:\n{stderr}"
    );
    assert!(
        stderr.contains("server.max_connections (1000)") && stderr.contains("RLIMIT_NOFILE"),
        "the start-up check warns that max_connections does not fit:\n{stderr}"
    );
}

#[cfg(target_os = "linux")]
async fn exhaust_and_recover(cert: &vcguard::tls::SelfSigned, port: u16, admin_port: u16) {
    let gateway = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let ca = reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).expect("pem");
    let client = || {
        reqwest::Client::builder()
            .tls_certs_only([ca.clone()])
            .resolve("localhost", gateway)
            .no_proxy()
            .http1_only()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client")
    };
    let url = format!("https://localhost:{port}{CONTENT}");
    let metrics_url = format!("http://127.0.0.1:{admin_port}/metrics");
    let admin = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("admin client");
    // Wait for start-up (bounded: 200 tries, 50 ms apart).
    let mut up = false;
    for _ in 0..200 {
        if admin.get(&metrics_url).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the gateway did not start");
    // One kept-alive client connection (and one to the admin listener) opened before the flood.
    let early = client();
    let status = early
        .get(&url)
        .send()
        .await
        .expect("before the flood")
        .status();
    assert_eq!(status, 200);
    assert!(admin.get(&metrics_url).send().await.is_ok());
    // Flood: more idle connections than descriptors; the rest wait in the kernel's queue.
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(
            tokio::net::TcpStream::connect(gateway)
                .await
                .expect("the kernel queues the connection"),
        );
    }
    // Let the gateway run into EMFILE and keep retrying for a while.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for round in 0..5 {
        let response = early.get(&url).send().await.unwrap_or_else(|err| {
            panic!("open connection, round {round}, during the flood: {err}")
        });
        assert_eq!(response.status(), 200, "round {round}");
        let _ = response.bytes().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = admin
        .get(&metrics_url)
        .send()
        .await
        .expect("metrics over the open admin connection")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains(r#"vcguard_accept_exhausted_total{listener="gateway"} 1"#),
        "one exhaustion episode counted:\n{metrics}"
    );
    // The flood goes away: a new client is served as soon as descriptors are free.
    drop(flood);
    let started = Instant::now();
    let response = client()
        .get(&url)
        .send()
        .await
        .expect("a new client after the flood");
    assert_eq!(response.status(), 200);
    eprintln!(
        "new client served {:?} after the flood ended",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_but_not_while_a_request_waits() {
    // vCenter takes 3 s per answer; connections may idle for 1 s.
    let sim = start(
        LOOPBACK_ANY_PORT,
        true,
        SimConfig {
            response_delay: Some(Duration::from_secs(3)),
            ..SimConfig::default()
        },
    )
    .await
    .expect("simulator starts");
    let print = sim.certificate.as_ref().expect("TLS sim").thumbprint();
    let trust = UpstreamTrust::Thumbprint(parse_thumbprint(&print).expect("thumbprint"));
    let gateway = EdgeGateway::start(
        &sim.base_url(),
        trust,
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(1),
            ..limits(64, Duration::from_secs(1))
        },
        |_| {},
    )
    .await;
    let tls = gateway.tls_connect().await;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .expect("HTTP/2 over the TLS connection");
    let mut conn = tokio::spawn(conn);
    let request = http::Request::get(format!("https://localhost{CONTENT}"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender
        .send_request(request)
        .await
        .expect("a request waiting three times the idle limit is answered");
    assert_eq!(response.status(), 200);
    let _ = response.into_body().collect().await.expect("body");
    // Now idle: without an idle limit hyper keeps an HTTP/2 connection open indefinitely.
    let closed = tokio::time::timeout(Duration::from_secs(15), &mut conn).await;
    assert!(closed.is_ok(), "an idle HTTP/2 connection was not closed");
    drop(sender);
    gateway.stop().await;
}

/// Reads one HTTP/1.1 response with a `Content-Length` from `stream`; returns its status line.
async fn read_response<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.expect("response bytes");
        assert!(n > 0, "connection closed mid-response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().expect("length"))
            })
            .expect("a Content-Length");
        if buf.len() >= end + 4 + length {
            return head.lines().next().unwrap_or_default().to_owned();
        }
    }
}

#[tokio::test]
async fn a_kept_alive_connection_stalling_in_its_next_request_head_is_closed() {
    let (sim, trust) = sim().await;
    let gateway = EdgeGateway::start(
        &sim.base_url(),
        trust,
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(1),
            ..limits(64, Duration::from_secs(5))
        },
        |_| {},
    )
    .await;
    let mut tls = gateway.tls_connect().await;
    let request = format!("GET {CONTENT} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    tls.write_all(request.as_bytes()).await.expect("request");
    let status = read_response(&mut tls).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // The next head starts and stalls, a byte short of complete.
    let stalled = Instant::now();
    tls.write_all(format!("GET {CONTENT} HTTP/1.1\r\nHost: localhost\r\n").as_bytes())
        .await
        .expect("partial head");
    tls.flush().await.expect("flush");
    assert!(
        closed_by_peer(&mut tls, Duration::from_secs(10)).await,
        "a connection stalled in its request head was left open"
    );
    let waited = stalled.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}, before the 1 s header-read timeout"
    );
    gateway.stop().await;
}
