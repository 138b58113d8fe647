//! A gateway in this process with its connection limits and upstream chosen by the test
//! (e.g. a small `max_connections`, a short first-byte deadline, a blackhole vCenter).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vcguard::audit::AuditConfig;
use vcguard::config::{IdentitySection, UpstreamTrust};
use vcguard::gate::forward::UpstreamOptions;
use vcguard::gateway::{Gateway, GatewayParts, StateSettings, TicketSettings, load_policies};
use vcguard::server::ConnectionLimits;
use vcguard::ticket::TicketConfig;
use vcguard::tls::{SelfSigned, upstream_client_config};

/// A running gateway in front of `upstream`, stopped when dropped.
pub struct EdgeGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub cert: SelfSigned,
    /// The gateway's audit log (in a temporary directory that lives as long as this value).
    pub audit_path: std::path::PathBuf,
    _audit_dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<bool>>,
}

impl EdgeGateway {
    /// Starts a gateway on loopback port 0 forwarding to `upstream` trusted as `trust`.
    pub async fn start(
        upstream: &str,
        trust: UpstreamTrust,
        limits: ConnectionLimits,
        tune: impl FnOnce(&mut UpstreamOptions),
    ) -> Self {
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        let mut upstream = UpstreamOptions::new(
            upstream.parse().expect("upstream url"),
            upstream_client_config(&trust).expect("client tls"),
        );
        tune(&mut upstream);
        let cert = SelfSigned::generate(&["localhost"]).expect("gateway cert");
        let audit_dir = tempfile::tempdir().expect("audit dir");
        let audit_path = audit_dir.path().join("audit.jsonl");
        let parts = GatewayParts {
            listen: any,
            workers: 1,
            admin_listen: any,
            server_tls: cert.server_config().expect("server tls"),
            upstream,
            limits,
            classify: Default::default(),
            policies: Arc::new(load_policies(&super::shipped_policies()).expect("policies")),
            policy_poll: None,
            identity: IdentitySection::default(),
            identity_token: None,
            tickets: TicketSettings::from_config(&TicketConfig::default()).expect("tickets"),
            audit: AuditConfig::new(audit_path.clone(), vec![7; 32], "edge"),
            state: StateSettings::sqlite(audit_dir.path().join("state.db")),
        };
        let gateway = Gateway::bind(parts).await.expect("gateway binds");
        let (addr, admin) = (gateway.local_addr(), gateway.admin_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.run(async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            admin,
            cert,
            audit_path,
            _audit_dir: audit_dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A client trusting only this gateway's certificate, with `timeout` per request.
    pub fn client(&self, timeout: Duration) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.cert.cert_pem.as_bytes()).expect("pem");
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .resolve("localhost", self.addr)
            .no_proxy()
            .timeout(timeout)
            .build()
            .expect("client")
    }

    /// `https://localhost:PORT`.
    pub fn base(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// A TLS connection to the gateway (handshake done, nothing sent).
    pub async fn tls_connect(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.cert_der.clone()).expect("root");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("TLS to the gateway")
    }

    /// Stops the gateway and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
