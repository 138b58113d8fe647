//! Shared end-to-end harness: a simulator and a gateway on loopback port 0, real TLS both ways.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod console;
pub mod servicenow;
pub mod vcsim;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vcguard::audit::AuditConfig;
use vcguard::config::IdentitySection;
use vcguard::config::{UpstreamTrust, parse_thumbprint};
use vcguard::gate::forward::UpstreamOptions;
use vcguard::gateway::{
    Gateway, GatewayParts, StateSettings, TicketSettings, identity_token_verifier, load_policies,
};
use vcguard::identity::IdentityTokenConfig;
use vcguard::server::ConnectionLimits;
use vcguard::ticket::TicketConfig;
use vcguard::tls::{SelfSigned, upstream_client_config};
use vcsim_lite::SimConfig;
use vcsim_lite::server::{RunningSim, start};

pub const ADMIN_USER: &str = "administrator@vsphere.local";
pub const ADMIN_PASSWORD: &str = "VMware1!";
pub const RELEASE: &str = "8.0.3.0";
const LOOPBACK_ANY_PORT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// How to shape the gateway under test.
#[derive(Clone)]
pub struct Options {
    pub sim: SimConfig,
    pub response_timeout: Duration,
    pub shutdown_grace: Duration,
    pub policies: PathBuf,
    pub policy_poll: Option<Duration>,
    pub tickets: TicketConfig,
    pub identity_token: Option<IdentityTokenConfig>,
    pub audit_rotate_bytes: Option<u64>,
    pub max_upstream_connections: Option<usize>,
    /// The state store; default: an SQLite file in the harness's temporary directory.
    pub state: Option<StateSettings>,
    /// Threads serving clients (`[server] workers`); 1 serves on the test's runtime.
    pub workers: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sim: SimConfig::default(),
            response_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            policies: shipped_policies(),
            policy_poll: None,
            tickets: TicketConfig::default(),
            identity_token: None,
            audit_rotate_bytes: None,
            max_upstream_connections: None,
            state: None,
            workers: 1,
        }
    }
}

pub struct Harness {
    pub sim: Option<RunningSim>,
    pub gateway: SocketAddr,
    pub admin: SocketAddr,
    pub gateway_cert: SelfSigned,
    /// The gateway's audit log (in a temporary directory that lives as long as the harness).
    pub audit_path: PathBuf,
    /// The gateway's approvals and claims.
    pub control: vcguard::approval::ChangeControl,
    _audit_dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<bool>>,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let sim = start(LOOPBACK_ANY_PORT, true, options.sim.clone())
            .await
            .expect("simulator starts");
        let thumbprint = sim.certificate.as_ref().expect("TLS sim").thumbprint();
        let trust = UpstreamTrust::Thumbprint(parse_thumbprint(&thumbprint).expect("thumbprint"));
        let mut upstream = UpstreamOptions::new(
            sim.base_url().parse().expect("url"),
            upstream_client_config(&trust).expect("client tls"),
        );
        upstream.response_timeout = options.response_timeout;
        if let Some(max) = options.max_upstream_connections {
            upstream.max_connections = max;
        }
        let audit_dir = tempfile::tempdir().expect("audit dir");
        let log_dir = audit_dir.path().join("log");
        std::fs::create_dir(&log_dir).expect("log dir");
        let audit_path = log_dir.join("audit.jsonl");
        let (mut harness_parts, gateway_cert) =
            gateway_parts(upstream, &options, audit_path.clone());
        harness_parts.state = options
            .state
            .clone()
            .unwrap_or_else(|| StateSettings::sqlite(audit_dir.path().join("state.db")));
        let gateway = Gateway::bind(harness_parts).await.expect("gateway binds");
        let control = gateway.change_control();
        let (gateway_addr, admin) = (gateway.local_addr(), gateway.admin_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.run(async move {
            let _ = stopped.await;
        }));
        Self {
            sim: Some(sim),
            gateway: gateway_addr,
            admin,
            gateway_cert,
            audit_path,
            control,
            _audit_dir: audit_dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn sim(&self) -> &RunningSim {
        self.sim.as_ref().expect("simulator running")
    }

    /// `https://localhost:PORT` — the gateway's base URL.
    pub fn base(&self) -> String {
        format!("https://localhost:{}", self.gateway.port())
    }

    /// `https://localhost:PORT/sdk/vim25/8.0.3.0`.
    pub fn vim(&self) -> String {
        format!("{}/sdk/vim25/{RELEASE}", self.base())
    }

    /// A client that trusts the gateway's certificate and nothing else.
    pub fn client(&self) -> reqwest::Client {
        self.client_builder().build().expect("client")
    }

    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let ca =
            reqwest::Certificate::from_pem(self.gateway_cert.cert_pem.as_bytes()).expect("pem");
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .resolve("localhost", self.gateway)
            .no_proxy()
    }

    /// Logs in over VI/JSON through the gateway and returns the session token.
    pub async fn login(&self, client: &reqwest::Client) -> String {
        let response = client
            .post(format!(
                "{}/SessionManager/SessionManager/Login",
                self.vim()
            ))
            .json(&serde_json::json!({"userName": ADMIN_USER, "password": ADMIN_PASSWORD}))
            .send()
            .await
            .expect("login request");
        assert_eq!(response.status(), 200, "login through the gateway");
        response
            .headers()
            .get("vmware-api-session-id")
            .expect("token header")
            .to_str()
            .expect("ascii token")
            .to_owned()
    }

    /// Logs in over SOAP through the gateway and returns the `Cookie` header to send back.
    pub async fn soap_login(&self, client: &reqwest::Client) -> String {
        let response = client
            .post(format!("{}/sdk", self.base()))
            .body(soap_login_envelope(ADMIN_USER, ADMIN_PASSWORD))
            .send()
            .await
            .expect("soap login");
        assert_eq!(response.status(), 200, "SOAP login through the gateway");
        response.headers()["set-cookie"]
            .to_str()
            .expect("ascii cookie")
            .to_owned()
    }

    /// A client that talks to the simulator itself (vCenter, behind the gateway's back), and
    /// the simulator's base URL: for setting up what an operator made in vCenter directly.
    pub fn direct_to_sim(&self) -> (reqwest::Client, String) {
        let sim = self.sim();
        let cert = sim.certificate.as_ref().expect("TLS sim");
        let ca = reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).expect("pem");
        let client = reqwest::Client::builder()
            .tls_certs_only([ca])
            .resolve("localhost", sim.addr)
            .no_proxy()
            .build()
            .expect("client");
        (client, format!("https://localhost:{}", sim.addr.port()))
    }

    /// Begins graceful shutdown and returns whether it drained in time.
    pub async fn shutdown(&mut self) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("gateway task"),
            None => true,
        }
    }

    /// Stops the simulator (vCenter goes away).
    pub async fn stop_sim(&mut self) {
        if let Some(sim) = self.sim.take() {
            sim.stop().await;
        }
    }
}

fn gateway_parts(
    upstream: UpstreamOptions,
    options: &Options,
    audit_path: PathBuf,
) -> (GatewayParts, SelfSigned) {
    let cert = SelfSigned::generate(&["localhost"]).expect("gateway cert");
    let parts = GatewayParts {
        listen: LOOPBACK_ANY_PORT,
        workers: options.workers,
        admin_listen: LOOPBACK_ANY_PORT,
        server_tls: cert.server_config().expect("server tls"),
        upstream,
        limits: ConnectionLimits {
            shutdown_grace: options.shutdown_grace,
            ..ConnectionLimits::default()
        },
        classify: Default::default(),
        policies: Arc::new(load_policies(&options.policies).expect("policies load")),
        policy_poll: options.policy_poll,
        identity: IdentitySection::default(),
        identity_token: identity_token_verifier(options.identity_token.as_ref())
            .expect("identity token keys"),
        tickets: TicketSettings::from_config(&options.tickets).expect("tickets"),
        audit: AuditConfig {
            rotate_bytes: options
                .audit_rotate_bytes
                .unwrap_or(vcguard::audit::DEFAULT_ROTATE_BYTES),
            ..AuditConfig::new(audit_path, vec![7; 32], "vcguard-test")
        },
        state: StateSettings::sqlite(std::env::temp_dir().join("vcguard-unused-state.db")),
    };
    (parts, cert)
}

/// The exact pyVmomi 9.1 SOAP Login envelope (PROTOCOL.md §3).
pub fn soap_login_envelope(user: &str, password: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            "\n",
            r#"<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">"#,
            "\n",
            r#"<soapenv:Body><Login xmlns="urn:vim25"><_this versionId="9.1.1.0" type="SessionManager">SessionManager</_this><userName versionId="9.1.1.0">{}</userName><password versionId="9.1.1.0">{}</password></Login></soapenv:Body>"#,
            "\n</soapenv:Envelope>"
        ),
        user, password
    )
}

/// The repository's `policies/` directory.
pub fn shipped_policies() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// A TLS connection to the gateway that trusts only its certificate.
pub async fn tls_connect(
    harness: &Harness,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(harness.gateway_cert.cert_der.clone())
        .expect("gateway cert as root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(harness.gateway)
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    connector
        .connect(name, tcp)
        .await
        .expect("TLS to the gateway")
}

/// Sends one HTTP/1.1 request with the path exactly as given (no client-side normalisation)
/// and returns the status and body.
pub async fn raw_exchange(
    harness: &Harness,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls_connect(harness).await;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
        harness.gateway.port(),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    tls.write_all(head.as_bytes()).await.expect("write head");
    tls.write_all(body).await.expect("write body");
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
pub mod edge;
pub mod gateway_process;
