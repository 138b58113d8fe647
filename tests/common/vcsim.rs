//! govmomi's vCenter simulator (a vCenter vcguard did not write) and `vcguard serve` in front
//! of it, both as child processes on loopback, plus a small raw-SOAP client for either.
//!
//! The simulator is `tests/vcsim/main.go`, built by `.ci/vcsim.sh` (or here, when Go and
//! Debian's govmomi sources are installed) to `target/vcsim/vcsim`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use vcguard::tls::SelfSigned;

/// What a test prints when it cannot run.
pub const SKIP_MESSAGE: &str = "SKIPPED: govmomi vcsim not built (run .ci/vcsim.sh)";

/// Where Debian's golang-github-vmware-govmomi-dev puts the sources (GOPATH layout).
const GOPATH: &str = "/usr/share/gocode";

/// How long a child may take to say it is serving.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The built simulator, building it first when Go is present and the binary is missing or
/// older than `tests/vcsim/main.go`; `None` when neither is possible.
pub fn vcsim_binary() -> Option<PathBuf> {
    static BINARY: OnceLock<Option<PathBuf>> = OnceLock::new();
    BINARY.get_or_init(find_or_build).clone()
}

fn find_or_build() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("VCGUARD_VCSIM") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("target"));
    let binary = target.join("vcsim").join("vcsim");
    let source = manifest.join("tests").join("vcsim");
    if binary.is_file() && !older_than(&binary, &source.join("main.go")) {
        return Some(binary);
    }
    let govmomi = Path::new(GOPATH).join("src/github.com/vmware/govmomi/simulator");
    if !govmomi.is_dir() || Command::new("go").arg("version").output().is_err() {
        return binary.is_file().then_some(binary);
    }
    eprintln!("building {} from tests/vcsim/main.go", binary.display());
    let tmp = binary.with_extension(format!("tmp{}", std::process::id()));
    std::fs::create_dir_all(binary.parent()?).ok()?;
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&tmp)
        .arg(".")
        .current_dir(&source)
        .env("GOPATH", GOPATH)
        .env("GO111MODULE", "off")
        .status()
        .is_ok_and(|status| status.success());
    if built && std::fs::rename(&tmp, &binary).is_ok() {
        // Go may hand back a cached link with its old time: mark the binary as built now.
        let _ = std::fs::File::options()
            .write(true)
            .open(&binary)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        Some(binary)
    } else {
        let _ = std::fs::remove_file(&tmp);
        eprintln!("go build of tests/vcsim failed");
        None
    }
}

fn older_than(binary: &Path, source: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(binary), modified(source)) {
        (Some(b), Some(s)) => b < s,
        _ => false,
    }
}

/// A running govmomi simulator (VPX model: DC0, cluster DC0_C0, hosts host-21 (standalone
/// DC0_H0), host-34/42/50, VMs vm-57/60 on host-21, datastore LocalDS_0).
pub struct Vcsim {
    child: Child,
    /// `https://127.0.0.1:PORT` (SOAP is served on `/sdk`).
    pub base: String,
    /// The SHA-256 thumbprint of its certificate, `AA:BB:...`.
    pub thumbprint: String,
    /// Its certificate, PEM.
    pub cert_pem: String,
    calls: PathBuf,
    _dir: tempfile::TempDir,
}

impl Vcsim {
    /// Starts the simulator on a free loopback port.
    pub fn start(binary: &Path) -> Self {
        let dir = tempfile::tempdir().expect("vcsim dir");
        let calls = dir.path().join("calls.txt");
        let cert = dir.path().join("cert.pem");
        let log = std::fs::File::create(dir.path().join("stderr.log")).expect("vcsim log");
        let mut child = Command::new(binary)
            .arg("-calls")
            .arg(&calls)
            .arg("-cert")
            .arg(&cert)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("vcsim starts");
        let stdout = child.stdout.take().expect("vcsim stdout");
        let lines = read_lines_until(stdout, |seen| {
            seen.iter().any(|l| l.starts_with("VCSIM_CERT="))
        });
        let value = |key: &str| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(key))
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("vcsim did not print {key}: {lines:?}"))
        };
        let url: reqwest::Url = value("VCSIM_URL=").parse().expect("vcsim URL");
        let base = format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str().expect("host"),
            url.port().expect("port")
        );
        Self {
            child,
            base,
            thumbprint: value("VCSIM_THUMBPRINT="),
            cert_pem: std::fs::read_to_string(&cert).expect("vcsim certificate"),
            calls,
            _dir: dir,
        }
    }

    /// The SOAP methods the simulator has received so far, in order.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits (bounded) until the simulator's call log holds `count` calls of `method`, then
    /// returns the whole log: a marker call sent last proves every earlier one was logged.
    pub async fn calls_after(&self, method: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let calls = self.calls();
            if calls.iter().filter(|c| *c == method).count() >= count || Instant::now() > deadline {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A SOAP client that trusts the simulator's certificate and talks to it directly.
    pub fn direct_client(&self) -> SoapClient {
        let ca = reqwest::Certificate::from_pem(self.cert_pem.as_bytes()).expect("vcsim pem");
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .no_proxy()
            .build()
            .expect("client");
        SoapClient::new(http, self.base.clone())
    }
}

impl Drop for Vcsim {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// How `vcguard serve` trusts the simulator's certificate.
pub enum UpstreamPin<'a> {
    /// `upstream.thumbprint`.
    Thumbprint(&'a str),
    /// `upstream.ca_file` holding this PEM.
    CaFile(&'a str),
}

/// `vcguard serve` (the built binary) with a config file, in front of `upstream`.
pub struct ServedGateway {
    child: Child,
    /// The gateway's client-facing address.
    pub addr: std::net::SocketAddr,
    /// The gateway's certificate, PEM.
    pub cert_pem: String,
    /// The audit log.
    pub audit_path: PathBuf,
    stderr: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl ServedGateway {
    /// Writes a config (fresh certificate, shipped policies, audit in a temporary directory),
    /// runs `vcguard serve --config` and waits for it to say it is serving.
    pub fn start(upstream: &str, pin: UpstreamPin<'_>) -> Self {
        let dir = tempfile::tempdir().expect("gateway dir");
        let cert = SelfSigned::generate(&["localhost"]).expect("gateway cert");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        let cert_path = write("gateway.pem", &cert.cert_pem);
        let key_path = write("gateway.key", &cert.key_pem);
        let audit_path = dir.path().join("audit.jsonl");
        let trust = match pin {
            UpstreamPin::Thumbprint(t) => format!("thumbprint = {t:?}"),
            UpstreamPin::CaFile(pem) => {
                format!(
                    "ca_file = {:?}",
                    write("vcsim-ca.pem", pem).display().to_string()
                )
            }
        };
        let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let config = write(
            "vcguard.toml",
            &format!(
                "[server]\nlisten = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n\
                 [upstream]\nurl = {upstream:?}\n{trust}\n\
                 [admin]\nlisten = \"127.0.0.1:0\"\n\
                 [policy]\ndir = {:?}\n\
                 [audit]\nfile = {:?}\n",
                cert_path.display().to_string(),
                key_path.display().to_string(),
                policies.display().to_string(),
                audit_path.display().to_string(),
            ),
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_vcguard"))
            .args(["--log-format", "json", "serve", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vcguard serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let (lines, seen) = read_lines_shared(stderr, |line| line.contains("vcguard is serving"));
        let Some(serving) = lines else {
            stop_child(&mut child);
            panic!(
                "vcguard serve did not start:\n{}",
                seen.lock().map(|l| l.join("\n")).unwrap_or_default()
            );
        };
        let record: serde_json::Value = serde_json::from_str(&serving).expect("JSON log line");
        let addr = record["fields"]["listen"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no listen address in {serving}"));
        Self {
            child,
            addr,
            cert_pem: cert.cert_pem,
            audit_path,
            stderr: seen,
            _dir: dir,
        }
    }

    /// A SOAP client that trusts the gateway's certificate and talks to it as `localhost`.
    pub fn client(&self) -> SoapClient {
        let ca = reqwest::Certificate::from_pem(self.cert_pem.as_bytes()).expect("pem");
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .resolve("localhost", self.addr)
            .no_proxy()
            .build()
            .expect("client");
        SoapClient::new(http, format!("https://localhost:{}", self.addr.port()))
    }

    /// What the gateway has logged so far (JSON lines).
    pub fn log(&self) -> String {
        self.stderr.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

impl Drop for ServedGateway {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// One SOAP answer.
#[derive(Debug, Clone)]
pub struct SoapAnswer {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: String,
}

impl SoapAnswer {
    /// The text of the first `<tag>` element (any prefix, any attributes), if any.
    pub fn text(&self, tag: &str) -> Option<String> {
        element_text(&self.body, tag)
    }

    /// Every `<tag>` element's text, in order.
    pub fn texts(&self, tag: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = self.body.as_str();
        while let Some((text, after)) = next_element(rest, tag) {
            out.push(text);
            rest = after;
        }
        out
    }

    /// The fault's type (`xsi:type` of `detail`'s child, else the faultstring), if a fault.
    pub fn fault(&self) -> Option<String> {
        if !self.body.contains("Fault>") {
            return None;
        }
        let detail = self.body.split("<detail>").nth(1).unwrap_or_default();
        let fault_type = detail
            .split("type=\"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .map(|t| t.rsplit(':').next().unwrap_or(t).to_owned());
        fault_type.or_else(|| self.text("faultstring"))
    }
}

fn next_element<'a>(body: &'a str, tag: &str) -> Option<(String, &'a str)> {
    let mut rest = body;
    loop {
        let start = rest.find('<')?;
        rest = &rest[start + 1..];
        let name_end = rest.find(['>', ' ', '/'])?;
        let name = &rest[..name_end];
        let local = name.rsplit(':').next().unwrap_or(name);
        if local != tag || name.starts_with('/') {
            continue;
        }
        let open_end = rest.find('>')?;
        if rest[..open_end].ends_with('/') {
            return Some((String::new(), &rest[open_end + 1..]));
        }
        let content = &rest[open_end + 1..];
        let close = content.find(&format!("</{name}>"))?;
        return Some((content[..close].to_owned(), &content[close..]));
    }
}

/// The text of the first `<tag>` element in `body`.
pub fn element_text(body: &str, tag: &str) -> Option<String> {
    next_element(body, tag).map(|(text, _)| text)
}

/// A raw SOAP client: pyVmomi-style envelopes, the `vmware_soap_session` cookie kept by hand.
pub struct SoapClient {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
    /// Extra headers sent with every request (e.g. `X-Change-Ticket`).
    pub headers: Vec<(String, String)>,
}

impl SoapClient {
    fn new(http: reqwest::Client, base: String) -> Self {
        Self {
            http,
            base,
            cookie: None,
            headers: Vec::new(),
        }
    }

    /// Posts `<Body>` content to `/sdk`; keeps the session cookie a `Login` sets.
    pub async fn call(&mut self, body: &str) -> SoapAnswer {
        let envelope = format!(
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                r#"<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">"#,
                "\n<soapenv:Body>{}</soapenv:Body>\n</soapenv:Envelope>"
            ),
            body
        );
        let request = self
            .with_headers(self.http.post(format!("{}/sdk", self.base)))
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", "\"urn:vim25/6.5\"")
            .body(envelope);
        let response = request.send().await.expect("SOAP request");
        for value in response.headers().get_all("set-cookie") {
            let value = value.to_str().unwrap_or_default();
            if let Some(pair) = value.split(';').next()
                && pair.trim_start().starts_with("vmware_soap_session=")
            {
                self.cookie = Some(pair.trim().to_owned());
            }
        }
        let status = response.status().as_u16();
        let body = response.text().await.expect("SOAP body");
        SoapAnswer { status, body }
    }

    /// Sends a request to a non-SOAP path (e.g. `/folder/...`) with the session cookie.
    pub async fn http(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        let response = self
            .with_headers(self.http.request(method, format!("{}{path}", self.base)))
            .body(body)
            .send()
            .await
            .expect("HTTP request");
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("body").to_vec())
    }

    fn with_headers(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(cookie) = &self.cookie {
            request = request.header("Cookie", cookie);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request
    }
}

/// Reads `stream` line by line on a thread until `done(lines so far)`, end of stream or
/// [`START_TIMEOUT`]; the thread keeps draining afterwards.
fn read_lines_until(
    stream: impl std::io::Read + Send + 'static,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                // The reader gave up: keep draining so the child never blocks on a full pipe.
                continue;
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let mut lines = Vec::new();
    while !done(&lines) {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    lines
}

/// Like [`read_lines_until`] for one matching line, keeping every line in a shared log.
fn read_lines_shared(
    stream: impl std::io::Read + Send + 'static,
    matches: impl Fn(&str) -> bool,
) -> (Option<String>, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (sender, receiver) = mpsc::channel();
    let log = seen.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let _ = sender.send(line.clone());
            if let Ok(mut log) = log.lock() {
                log.push(line);
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(line) if matches(&line) => return (Some(line), seen),
            Ok(_) => {}
            Err(_) => return (None, seen),
        }
    }
}

/// SIGTERM (so the simulator removes its temporary datastore), then kill after a bounded wait.
fn stop_child(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
