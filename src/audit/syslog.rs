//! Optional forwarding of every record to a syslog collector (RFC 5424 over TCP or TLS,
//! octet-counting framing per RFC 6587). The local file stays the source of truth: when
//! the collector is down the bounded queue drops its oldest messages and counts them.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;

use super::AuditError;

/// Syslog facility 13, "log audit".
const FACILITY_LOG_AUDIT: u8 = 13;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_WRITE_CHUNK: usize = 64 * 1024;

/// Where and how to forward records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    /// Collector address, `host:port`.
    pub address: String,
    /// PEM file of the CA that signed the collector's certificate; `None` means plain TCP.
    pub tls_ca: Option<PathBuf>,
    /// RFC 5424 APP-NAME (printable ASCII, at most 48 characters).
    pub app_name: String,
    /// Messages held while the collector is unreachable; the oldest are dropped beyond this.
    pub queue_capacity: usize,
}

impl SyslogConfig {
    /// Plain TCP to `address`, app name `vcguard`, 10,000 queued messages.
    pub fn new(address: impl Into<String>) -> SyslogConfig {
        SyslogConfig {
            address: address.into(),
            tls_ca: None,
            app_name: "vcguard".into(),
            queue_capacity: 10_000,
        }
    }
}

struct Shared {
    queue: Mutex<VecDeque<Vec<u8>>>,
    capacity: usize,
    notify: Notify,
    closed: AtomicBool,
    dropped: AtomicU64,
    sent: AtomicU64,
}

impl Shared {
    fn push_back(&self, frame: Vec<u8>) {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if q.len() >= self.capacity {
            q.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(frame);
    }

    /// Puts frames that could not be delivered back in front, oldest first.
    fn requeue(&self, frames: Vec<Vec<u8>>) {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        for frame in frames.into_iter().rev() {
            if q.len() >= self.capacity {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            q.push_front(frame);
        }
    }

    fn pop_chunk(&self) -> Vec<Vec<u8>> {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some(front) = q.front() {
            if bytes > 0 && bytes + front.len() > MAX_WRITE_CHUNK {
                break;
            }
            bytes += front.len();
            out.extend(q.pop_front());
        }
        out
    }

    fn is_empty(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// Sets the closed flag when the last sender is dropped, so the task drains and ends.
struct CloseGuard(Arc<Shared>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.notify.notify_one();
    }
}

/// Queues messages for the forwarding task; cloning is cheap.
#[derive(Clone)]
pub struct SyslogSender {
    shared: Arc<Shared>,
    _guard: Arc<CloseGuard>,
    header: Arc<str>,
}

impl std::fmt::Debug for SyslogSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSender")
            .field("sent", &self.sent())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl SyslogSender {
    /// Queues one RFC 5424 message; never blocks (drops the oldest when full).
    pub fn send(&self, severity: u8, msg_id: &str, timestamp: &str, msg: &[u8]) {
        let pri = FACILITY_LOG_AUDIT * 8 + severity.min(7);
        let head = format!(
            "<{pri}>1 {} {} {} - ",
            printable(timestamp, 64),
            self.header,
            printable(msg_id, 32)
        );
        let len = head.len() + msg.len();
        let mut frame = Vec::with_capacity(len + 8);
        frame.extend_from_slice(len.to_string().as_bytes());
        frame.push(b' ');
        frame.extend_from_slice(head.as_bytes());
        frame.extend_from_slice(msg);
        self.shared.push_back(frame);
        self.shared.notify.notify_one();
    }

    /// Waits up to `limit` for the queue to empty (used when the log closes).
    pub(super) async fn wait_drained(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.shared.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Messages dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Messages written to the collector's connection.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }
}

/// RFC 5424 PRINTUSASCII, cut to `max`; `-` when empty.
fn printable(s: &str, max: usize) -> String {
    let out: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if out.is_empty() { "-".into() } else { out }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| printable(s.trim(), 255))
        .unwrap_or_else(|_| "-".into())
}

enum Transport {
    Tcp,
    Tls(TlsConnector, ServerName<'static>),
}

/// Starts the forwarding task on the current tokio runtime.
pub fn spawn_syslog(config: SyslogConfig) -> Result<SyslogSender, AuditError> {
    if config.queue_capacity == 0 {
        return Err(AuditError::Config(
            "syslog queue_capacity must be > 0".into(),
        ));
    }
    let host = host_of(&config.address).ok_or_else(|| {
        AuditError::Config(format!(
            "syslog address {:?}: expected host:port",
            config.address
        ))
    })?;
    let transport = match &config.tls_ca {
        None => Transport::Tcp,
        Some(ca) => {
            let name = ServerName::try_from(host.to_owned()).map_err(|e| {
                AuditError::Config(format!("syslog address {:?}: {e}", config.address))
            })?;
            Transport::Tls(tls_connector(ca)?, name)
        }
    };
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        capacity: config.queue_capacity,
        notify: Notify::new(),
        closed: AtomicBool::new(false),
        dropped: AtomicU64::new(0),
        sent: AtomicU64::new(0),
    });
    let header = format!(
        "{} {} {}",
        hostname(),
        printable(&config.app_name, 48),
        std::process::id()
    );
    tokio::spawn(run(shared.clone(), config.address, transport));
    Ok(SyslogSender {
        _guard: Arc::new(CloseGuard(shared.clone())),
        shared,
        header: header.into(),
    })
}

fn host_of(address: &str) -> Option<&str> {
    let (host, port) = address.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

fn tls_connector(ca: &Path) -> Result<TlsConnector, AuditError> {
    let bad = |why: String| AuditError::Config(format!("syslog tls_ca {}: {why}", ca.display()));
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca).map_err(|e| bad(e.to_string()))?;
    for cert in certs {
        roots
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    let config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

async fn run(shared: Arc<Shared>, address: String, transport: Transport) {
    let mut backoff = MIN_BACKOFF;
    let mut healthy = true;
    loop {
        if shared.closed() && shared.is_empty() {
            return;
        }
        let result = match &transport {
            Transport::Tcp => match connect(&address).await {
                Ok(mut tcp) => {
                    backoff = MIN_BACKOFF;
                    healthy = true;
                    pump(&mut tcp, &shared).await
                }
                Err(e) => Err(e),
            },
            Transport::Tls(connector, name) => match connect(&address).await {
                Ok(tcp) => {
                    match tokio::time::timeout(IO_TIMEOUT, connector.connect(name.clone(), tcp))
                        .await
                    {
                        Ok(Ok(mut tls)) => {
                            backoff = MIN_BACKOFF;
                            healthy = true;
                            pump(&mut tls, &shared).await
                        }
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "TLS handshake timed out",
                        )),
                    }
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                if healthy {
                    tracing::warn!(collector = %address, error = %e,
                        "audit syslog forwarding interrupted; queueing (oldest dropped when full)");
                    healthy = false;
                }
                if shared.closed() {
                    return;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn connect(address: &str) -> io::Result<TcpStream> {
    match tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(tcp)) => {
            tcp.set_nodelay(true)?;
            Ok(tcp)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
}

/// Writes queued frames until closed and drained (`Ok`) or the connection fails (`Err`).
async fn pump<S: AsyncWrite + Unpin>(stream: &mut S, shared: &Shared) -> io::Result<()> {
    loop {
        let frames = shared.pop_chunk();
        if frames.is_empty() {
            if shared.closed() {
                let _ = tokio::time::timeout(IO_TIMEOUT, stream.shutdown()).await;
                return Ok(());
            }
            shared.notify.notified().await;
            continue;
        }
        let chunk: Vec<u8> = frames.concat();
        let written = tokio::time::timeout(IO_TIMEOUT, async {
            stream.write_all(&chunk).await?;
            stream.flush().await
        })
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")));
        match written {
            Ok(()) => {
                shared
                    .sent
                    .fetch_add(frames.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                shared.requeue(frames);
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    use tokio::net::TcpListener;

    /// Reads one octet-counted frame.
    async fn read_frame<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> String {
        let mut len = Vec::new();
        r.read_until(b' ', &mut len).await.unwrap();
        let n: usize = std::str::from_utf8(&len[..len.len() - 1])
            .unwrap()
            .parse()
            .unwrap();
        let mut msg = vec![0; n];
        r.read_exact(&mut msg).await.unwrap();
        String::from_utf8(msg).unwrap()
    }

    #[tokio::test]
    async fn frames_are_rfc5424_with_octet_counting_and_reconnect() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut cfg = SyslogConfig::new(listener.local_addr().unwrap().to_string());
        cfg.app_name = "vcguard test".into();
        let sender = spawn_syslog(cfg).unwrap();
        sender.send(6, "decision", "2025-01-01T00:00:00.000001Z", br#"{"a":1}"#);
        sender.send(
            5,
            "outcome",
            "2025-01-01T00:00:00.000002Z",
            "{\"b\":\"é\"}".as_bytes(),
        );

        let (sock, _) = listener.accept().await.unwrap();
        let mut r = BufReader::new(sock);
        let first = read_frame(&mut r).await;
        let pid = std::process::id();
        assert!(
            first.starts_with("<110>1 2025-01-01T00:00:00.000001Z "),
            "{first}"
        );
        assert!(
            first.ends_with(&format!(" vcguardtest {pid} decision - {{\"a\":1}}")),
            "{first}"
        );
        let second = read_frame(&mut r).await;
        assert!(second.starts_with("<109>1 "), "{second}");
        assert!(second.ends_with("outcome - {\"b\":\"é\"}"), "{second}");

        // The collector goes away; the sender reconnects and delivers what follows.
        drop(r);
        for i in 0..20 {
            sender.send(6, "checkpoint", "t", format!("{{\"n\":{i}}}").as_bytes());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (sock, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .unwrap()
            .unwrap();
        let mut r = BufReader::new(sock);
        let frame = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut r))
            .await
            .unwrap();
        assert!(frame.contains("checkpoint - {\"n\":"), "{frame}");
    }

    #[tokio::test]
    async fn full_queue_drops_oldest_and_counts() {
        // A port with nothing listening: connections are refused.
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let mut cfg = SyslogConfig::new(addr.to_string());
        cfg.queue_capacity = 3;
        let sender = spawn_syslog(cfg).unwrap();
        for i in 0..10 {
            sender.send(6, "m", "t", format!("{i}").as_bytes());
        }
        assert_eq!(sender.dropped(), 7);
        let q = sender.shared.queue.lock().unwrap();
        let last: Vec<String> = q
            .iter()
            .map(|f| {
                String::from_utf8_lossy(f)
                    .chars()
                    .last()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(last, ["7", "8", "9"]);
    }

    #[test]
    fn addresses_and_config_errors() {
        assert_eq!(host_of("collector.example:6514"), Some("collector.example"));
        assert_eq!(host_of("[::1]:514"), Some("::1"));
        assert_eq!(host_of("nohost"), None);
        assert_eq!(host_of(":514"), None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut cfg = SyslogConfig::new("localhost:6514");
            cfg.tls_ca = Some("/nonexistent/ca.pem".into());
            let err = spawn_syslog(cfg).unwrap_err().to_string();
            assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        });
    }
}
