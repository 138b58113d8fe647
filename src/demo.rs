//! `vcguard demo`: the simulator and the gateway in one process on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditConfig;
use crate::config::{IdentitySection, UpstreamTrust};
use crate::gate::forward::UpstreamOptions;
use crate::gateway::{Gateway, GatewayParts, StartError, TicketSettings, load_policies};
use crate::server::ConnectionLimits;
use crate::sim::SimConfig;
use crate::sim::server::{SimStartError, start};
use crate::ticket::{
    KeyKind, KeySource, MintError, MintRequest, SignedConfig, TicketConfig, generate_signing_key,
    mint,
};
use crate::tls::{self, SelfSigned, TlsError};

/// Where the demo listens.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The gateway's address.
    pub listen: SocketAddr,
    /// The simulator's address.
    pub sim_listen: SocketAddr,
    /// The admin address.
    pub admin_listen: SocketAddr,
    /// The policy directory.
    pub policies: PathBuf,
    /// The audit log file (default: in the demo's temporary directory).
    pub audit: Option<PathBuf>,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The simulator could not start.
    #[error(transparent)]
    Sim(#[from] SimStartError),
    /// The gateway could not start.
    #[error(transparent)]
    Gateway(#[from] StartError),
    /// A certificate could not be made.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A demo ticket key or ticket could not be made.
    #[error("demo tickets: {0}")]
    Mint(#[from] MintError),
    /// The simulator's address did not form a URL.
    #[error("simulator URL: {0}")]
    Uri(#[from] http::uri::InvalidUri),
    /// The gateway's certificate could not be written for curl.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(options: DemoOptions) -> Result<(), DemoError> {
    let sim = start(options.sim_listen, true, SimConfig::default()).await?;
    let sim_thumbprint = sim
        .certificate
        .as_ref()
        .and_then(|c| crate::config::parse_thumbprint(&c.thumbprint()));
    let trust = sim_thumbprint.map_or(UpstreamTrust::InsecureSkipVerify, UpstreamTrust::Thumbprint);

    let gateway_cert = SelfSigned::generate(&["localhost", "127.0.0.1"])?;
    let cert_dir = std::env::temp_dir().join("vcguard-demo");
    let cert_path = cert_dir.join("gateway-cert.pem");
    write_public_cert(&cert_dir, &cert_path, &gateway_cert.cert_pem)?;

    let tickets = DemoTickets::create(&cert_dir)?;
    let audit_path = options
        .audit
        .clone()
        .unwrap_or_else(|| cert_dir.join("audit.jsonl"));
    let limits = ConnectionLimits::default();
    let gateway = Gateway::bind(GatewayParts {
        listen: options.listen,
        admin_listen: options.admin_listen,
        server_tls: gateway_cert.server_config()?,
        upstream: UpstreamOptions::new(
            sim.base_url().parse()?,
            tls::upstream_client_config(&trust)?,
        ),
        limits,
        classify: Default::default(),
        policies: Arc::new(load_policies(&options.policies)?),
        policy_poll: Some(Duration::from_secs(2)),
        identity: IdentitySection::default(),
        identity_token: None,
        tickets: TicketSettings::from_config(&tickets.config)?,
        audit: AuditConfig::new(&audit_path, audit_key(), "vcguard-demo"),
    })
    .await?;
    print_banner(
        &gateway,
        &sim.base_url(),
        &cert_path,
        &options.policies,
        &tickets,
        &audit_path,
    );
    gateway.run(crate::server::shutdown_signal()).await;
    sim.stop().await;
    Ok(())
}

/// The demo's ticket setup: plain ids (`CHG` + 7 digits) and tickets signed by a fresh key.
struct DemoTickets {
    config: TicketConfig,
    signing_key: PathBuf,
    host_21_ticket: String,
}

impl DemoTickets {
    const ISSUER: &'static str = "vcguard-demo";
    const AUDIENCE: &'static str = "vcguard";

    fn create(dir: &Path) -> Result<Self, DemoError> {
        let pair = generate_signing_key(KeyKind::Ed25519)?;
        let signing_key = dir.join("ticket-signing-key.pem");
        let public_key = dir.join("ticket-public-key.pem");
        write_file(&signing_key, &pair.private_pem)?;
        write_file(&public_key, &pair.public_pem)?;
        let host_21_ticket = mint(
            &signing_key,
            MintRequest {
                id: "CHG0012345".into(),
                hosts: vec!["host-21".into()],
                actions: vec!["EnterMaintenanceMode_Task".into()],
                ttl: Duration::from_secs(4 * 3600),
                issuer: Self::ISSUER.into(),
                audience: Self::AUDIENCE.into(),
                not_before: None,
            },
        )?;
        let config = TicketConfig {
            signed: Some(SignedConfig {
                issuer: Self::ISSUER.into(),
                audience: Self::AUDIENCE.into(),
                keys: vec![KeySource::PemFile(public_key)],
                leeway_secs: 30,
            }),
            ..TicketConfig::default()
        };
        Ok(Self {
            config,
            signing_key,
            host_21_ticket,
        })
    }
}

/// A fresh HMAC key for the demo's session and ticket hashes.
fn audit_key() -> Vec<u8> {
    let mut key = uuid::Uuid::new_v4().as_bytes().to_vec();
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    key
}

fn write_file(path: &Path, text: &str) -> Result<(), DemoError> {
    std::fs::write(path, text).map_err(|source| DemoError::Write {
        path: path.to_owned(),
        source,
    })
}

fn write_public_cert(dir: &Path, path: &Path, pem: &str) -> Result<(), DemoError> {
    std::fs::create_dir_all(dir).map_err(|source| DemoError::Write {
        path: dir.to_owned(),
        source,
    })?;
    write_file(path, pem)
}

fn print_banner(
    gateway: &Gateway,
    sim_url: &str,
    cert: &Path,
    policies: &Path,
    tickets: &DemoTickets,
    audit: &Path,
) {
    let port = gateway.local_addr().port();
    let base = format!("https://localhost:{port}");
    let cert = cert.display();
    let vim = format!("{base}/sdk/vim25/8.0.3.0");
    println!(
        r#"
vcguard demo
  gateway      {base}   (clients point their base URL here)
  vCenter sim  {sim_url}   (the gateway pins its certificate thumbprint)
  admin        http://{admin}/healthz  /readyz  /metrics
  credentials  administrator@vsphere.local / VMware1!
  CA for curl  {cert}

Try it (copy-paste):

  # 1. log in; the session token comes back in the vmware-api-session-id header
  TOKEN=$(curl -s --cacert {cert} -D - -o /dev/null -X POST -H 'Content-Type: application/json' \
    -d '{{"userName":"administrator@vsphere.local","password":"VMware1!"}}' \
    {vim}/SessionManager/SessionManager/Login | awk -F': ' 'tolower($1)=="vmware-api-session-id"{{print $2}}' | tr -d '\r')

  # 2. read a host
  curl -s --cacert {cert} -H "vmware-api-session-id: $TOKEN" {vim}/HostSystem/host-21/runtime

  # 3. enter maintenance mode: refused without a change ticket (policy maintenance-needs-ticket)
  curl -s --cacert {cert} -X POST -H "vmware-api-session-id: $TOKEN" -H 'Content-Type: application/json' \
    -d '{{"timeout":0}}' {vim}/HostSystem/host-21/EnterMaintenanceMode_Task

  # 3b. with a change ticket it goes through: a plain id matching ^CHG[0-9]{{7}}$ ...
  curl -s --cacert {cert} -X POST -H "vmware-api-session-id: $TOKEN" -H 'Content-Type: application/json' \
    -H 'X-Change-Ticket: CHG0012345' -d '{{"timeout":0}}' {vim}/HostSystem/host-21/EnterMaintenanceMode_Task
  #     ... or a signed ticket scoped to host-21 (refused for host-22):
  curl -s --cacert {cert} -X POST -H "vmware-api-session-id: $TOKEN" -H 'Content-Type: application/json' \
    -H 'X-Change-Ticket: {signed}' -d '{{"timeout":0}}' {vim}/HostSystem/host-22/EnterMaintenanceMode_Task
  #     mint your own: vcguard ticket mint --key {signing_key} --issuer vcguard-demo --audience vcguard \
  #                      --id CHG0012346 --host host-22 --action EnterMaintenanceMode_Task --ttl 1h

  # 4. strict lockdown: refused by policy lockdown-no-strict; lockdownNormal goes through
  curl -s --cacert {cert} -X POST -H "vmware-api-session-id: $TOKEN" -H 'Content-Type: application/json' \
    -d '{{"mode":"lockdownStrict"}}' {vim}/HostAccessManager/ham-21/ChangeLockdownMode

Policies in force: {policies} (edit them; changes apply within seconds, invalid ones are rejected).

Audit log: {audit}
  cargo run --release -- audit query {audit}
  cargo run --release -- audit query {audit} --decision deny
  cargo run --release -- audit verify {audit}

Press Ctrl-C to stop.
"#,
        admin = gateway.admin_addr(),
        policies = policies.display(),
        signed = tickets.host_21_ticket,
        audit = audit.display(),
        signing_key = tickets.signing_key.display(),
    );
}
