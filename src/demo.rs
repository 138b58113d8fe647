//! `vcguard demo`: the simulator and the gateway in one process on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::time::Duration;

use crate::config::{IdentitySection, UpstreamTrust};
use crate::gate::forward::UpstreamOptions;
use crate::gateway::{Gateway, GatewayParts, StartError, load_policies};
use crate::server::ConnectionLimits;
use crate::sim::SimConfig;
use crate::sim::server::{SimStartError, start};
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
    })
    .await?;
    print_banner(&gateway, &sim.base_url(), &cert_path, &options.policies);
    gateway.run(crate::server::shutdown_signal()).await;
    sim.stop().await;
    Ok(())
}

fn write_public_cert(dir: &Path, path: &Path, pem: &str) -> Result<(), DemoError> {
    let write_error = |source| DemoError::Write {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write_error)?;
    std::fs::write(path, pem).map_err(write_error)
}

fn print_banner(gateway: &Gateway, sim_url: &str, cert: &Path, policies: &Path) {
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

  # 4. strict lockdown: refused by policy lockdown-no-strict; lockdownNormal goes through
  curl -s --cacert {cert} -X POST -H "vmware-api-session-id: $TOKEN" -H 'Content-Type: application/json' \
    -d '{{"mode":"lockdownStrict"}}' {vim}/HostAccessManager/ham-21/ChangeLockdownMode

Policies in force: {policies} (edit them; changes apply within seconds, invalid ones are rejected).

Press Ctrl-C to stop.
"#,
        admin = gateway.admin_addr(),
        policies = policies.display(),
    );
}
