//! `vcguard demo`: the simulator and the gateway in one process on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::time::Duration;

use vcsim_lite::SimConfig;
use vcsim_lite::server::{SimStartError, start};

use crate::audit::AuditConfig;
use crate::config::{IdentitySection, UpstreamTrust};
use crate::gate::forward::UpstreamOptions;
use crate::gateway::{
    Gateway, GatewayParts, StartError, StateSettings, TicketSettings, load_policies,
};
use crate::server::ConnectionLimits;
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
    /// The policy directory (default: `./policies` if present, else the shipped policies
    /// built into the binary).
    pub policies: Option<PathBuf>,
    /// The audit log file (default: in the demo's own directory).
    pub audit: Option<PathBuf>,
    /// Keep the demo's directory (keys, certificate, audit log) after it stops.
    pub keep: bool,
}

/// Where the demo's policies come from (the banner says which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PolicySource {
    /// A directory given with `--policies`.
    Given(PathBuf),
    /// `./policies` in the current directory.
    CurrentDirectory(PathBuf),
    /// The shipped policies built into the binary, written into the demo's directory.
    Embedded(PathBuf),
}

impl PolicySource {
    /// The directory the gateway loads (and watches for edits).
    pub(crate) fn dir(&self) -> &Path {
        match self {
            Self::Given(dir) | Self::CurrentDirectory(dir) | Self::Embedded(dir) => dir,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Given(dir) => format!("{} (--policies)", dir.display()),
            Self::CurrentDirectory(dir) => {
                format!("{} (./policies in the current directory)", dir.display())
            }
            Self::Embedded(dir) => format!(
                "{} (the shipped policies built into this binary: no ./policies here)",
                dir.display()
            ),
        }
    }
}

/// The demo's own directory (`$TMPDIR/vcguard-demo-XXXXXXXX`, mode 0700), removed when dropped
/// unless kept.
pub(crate) struct DemoDir {
    path: PathBuf,
    keep: bool,
}

impl DemoDir {
    /// Creates a fresh directory under `parent` with a random name; never reuses one.
    pub(crate) fn create(parent: &Path, keep: bool) -> Result<Self, DemoError> {
        let mut last_error = None;
        for _ in 0..16 {
            let suffix = uuid::Uuid::new_v4().simple().to_string();
            let path = parent.join(format!("vcguard-demo-{}", &suffix[..8]));
            match create_private_dir(&path) {
                Ok(()) => return Ok(Self { path, keep }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_error = Some(e),
                Err(source) => return Err(DemoError::Write { path, source }),
            }
        }
        Err(DemoError::Write {
            path: parent.to_owned(),
            source: last_error.unwrap_or_else(|| std::io::Error::other("no free name")),
        })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        if !self.keep
            && let Err(err) = std::fs::remove_dir_all(&self.path)
        {
            tracing::warn!(dir = %self.path.display(), error = %err, "cannot remove the demo directory");
        }
    }
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Picks the policy directory: `--policies`, else `./policies` if it is a directory, else the
/// embedded copy written to `demo_dir/policies`.
pub(crate) fn choose_policies(
    given: Option<&Path>,
    demo_dir: &Path,
) -> Result<PolicySource, DemoError> {
    if let Some(dir) = given {
        return Ok(PolicySource::Given(dir.to_owned()));
    }
    let local = Path::new("policies");
    if local.is_dir() {
        return Ok(PolicySource::CurrentDirectory(local.to_owned()));
    }
    let dir = demo_dir.join("policies");
    crate::shipped_policies::write_to(&dir).map_err(|source| DemoError::Write {
        path: dir.clone(),
        source,
    })?;
    Ok(PolicySource::Embedded(dir))
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
    let demo_dir = DemoDir::create(&std::env::temp_dir(), options.keep)?;
    let policies = choose_policies(options.policies.as_deref(), demo_dir.path())?;
    let sim = start(options.sim_listen, true, SimConfig::default()).await?;
    let sim_thumbprint = sim
        .certificate
        .as_ref()
        .and_then(|c| crate::config::parse_thumbprint(&c.thumbprint()));
    let trust = sim_thumbprint.map_or(UpstreamTrust::InsecureSkipVerify, UpstreamTrust::Thumbprint);

    let gateway_cert = SelfSigned::generate(&["localhost", "127.0.0.1"]).map_err(TlsError::from)?;
    let cert_path = demo_dir.path().join("gateway-cert.pem");
    write_file(&cert_path, &gateway_cert.cert_pem)?;

    let tickets = DemoTickets::create(demo_dir.path())?;
    let audit_path = options
        .audit
        .clone()
        .unwrap_or_else(|| demo_dir.path().join("audit.jsonl"));
    let state_path = demo_dir.path().join("state.db");
    let limits = ConnectionLimits::default();
    let gateway = Gateway::bind(GatewayParts {
        listen: options.listen,
        workers: 1,
        admin_listen: options.admin_listen,
        server_tls: gateway_cert.server_config().map_err(TlsError::from)?,
        upstream: UpstreamOptions::new(
            sim.base_url().parse()?,
            tls::upstream_client_config(&trust)?,
        ),
        limits,
        classify: Default::default(),
        policies: Arc::new(load_policies(policies.dir())?),
        policy_poll: Some(Duration::from_secs(2)),
        identity: IdentitySection::default(),
        identity_token: None,
        tickets: TicketSettings::from_config(&tickets.config)?,
        audit: AuditConfig::new(&audit_path, audit_key(), "vcguard-demo"),
        state: StateSettings::sqlite(&state_path),
    })
    .await?;
    print_banner(&Banner {
        gateway: &gateway,
        sim_url: &sim.base_url(),
        demo_dir: &demo_dir,
        cert: &cert_path,
        policies: &policies,
        tickets: &tickets,
        audit: &audit_path,
        state: &state_path,
    });
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

/// How long and how often an approval lets the call through, for the banner.
fn approval_window(gateway: &Gateway) -> String {
    let settings = gateway.change_control().settings();
    let uses = match settings.uses {
        1 => "once".to_owned(),
        n => format!("{n} times"),
    };
    format!(
        "{uses}, within {} minutes of the approval",
        settings.window.as_secs() / 60
    )
}

/// What the banner shows.
struct Banner<'a> {
    gateway: &'a Gateway,
    sim_url: &'a str,
    demo_dir: &'a DemoDir,
    cert: &'a Path,
    policies: &'a PolicySource,
    tickets: &'a DemoTickets,
    audit: &'a Path,
    state: &'a Path,
}

fn print_banner(banner: &Banner<'_>) {
    let Banner {
        gateway,
        sim_url,
        demo_dir,
        cert,
        policies,
        tickets,
        audit,
        state,
    } = banner;
    let port = gateway.local_addr().port();
    let base = format!("https://localhost:{port}");
    let cert = cert.display();
    let vim = format!("{base}/sdk/vim25/8.0.3.0");
    let dir_fate = if demo_dir.keep {
        "kept after exit (--keep)"
    } else {
        "removed on exit; --keep keeps it"
    };
    let vcguard = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "vcguard".into());
    println!(
        r#"
vcguard demo
  gateway      {base}   (clients point their base URL here)
  vCenter sim  {sim_url}   (the gateway pins its certificate thumbprint)
  admin        http://{admin}/healthz  /readyz  /metrics
  credentials  administrator@vsphere.local / VMware1!
               approver@vsphere.local / VMware1!   (group change-approvers)
  console      https://127.0.0.1:{port}/vcguard/ui/   (approvals, ticket claims, audit)
  state        {state}   (approvals and ticket claims, embedded SQLite)
  CA for curl  {cert}
  demo files   {demo_dir}   ({dir_fate})

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

  # 5. two-person rule: disabling lockdown needs the approval of change-approvers
  #    (policy lockdown-disable-needs-approval): refused with an approval request id
  curl -s --cacert {cert} -X POST -H "vmware-api-session-id: $TOKEN" -H 'Content-Type: application/json' \
    -d '{{"mode":"lockdownDisabled"}}' {vim}/HostAccessManager/ham-21/ChangeLockdownMode
  #    the approver lists and approves it (the requester cannot approve their own request) ...
  export VCGUARD_PASSWORD='VMware1!'
  {vcguard} approval list --gateway https://127.0.0.1:{port} --user approver@vsphere.local --ca {cert}
  {vcguard} approval approve <apr-id> --gateway https://127.0.0.1:{port} --user approver@vsphere.local --ca {cert}
  #    ... or in the console (log in as approver@vsphere.local): https://127.0.0.1:{port}/vcguard/ui/
  #    then repeat the curl above: it goes through once ({window}); a third time asks again

  # 6. ticket claims, for clients that cannot send a header (govc, Ansible, PowerCLI, Terraform):
  #    declare the ticket once; guarded calls of this user without a header carry it
  {vcguard} ticket claim CHG0012345 --host host-21 --ttl 2h --gateway https://127.0.0.1:{port} --user administrator@vsphere.local --ca {cert}
  curl -s --cacert {cert} -X POST -H "vmware-api-session-id: $TOKEN" -H 'Content-Type: application/json' \
    -d '{{"timeout":0}}' {vim}/HostSystem/host-21/EnterMaintenanceMode_Task
  #    (if 3b already put host-21 in maintenance, vCenter answers InvalidState: the gateway let it through)
  {vcguard} ticket claims --gateway https://127.0.0.1:{port} --user administrator@vsphere.local --ca {cert}
  {vcguard} ticket release <clm-id> --gateway https://127.0.0.1:{port} --user administrator@vsphere.local --ca {cert}

Policies in force: {policies}
  (edit them; changes apply within seconds, invalid ones are rejected)

Audit log: {audit}
  {vcguard} audit query {audit}
  {vcguard} audit query {audit} --decision deny
  {vcguard} audit verify {audit}

Press Ctrl-C to stop.
"#,
        admin = gateway.admin_addr(),
        demo_dir = demo_dir.path().display(),
        policies = policies.describe(),
        signed = tickets.host_21_ticket,
        audit = audit.display(),
        signing_key = tickets.signing_key.display(),
        state = state.display(),
        window = approval_window(gateway),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_demo_directory_is_new_private_and_removed_unless_kept() {
        let parent = tempfile::tempdir().expect("parent");
        let first = DemoDir::create(parent.path(), false).expect("first");
        let second = DemoDir::create(parent.path(), true).expect("second");
        assert_ne!(first.path(), second.path());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(first.path())
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let (removed, kept) = (first.path().to_owned(), second.path().to_owned());
        std::fs::write(removed.join("audit.jsonl"), "x").expect("write");
        drop(first);
        drop(second);
        assert!(!removed.exists());
        assert!(kept.is_dir());
    }

    #[test]
    fn a_given_policy_directory_wins() {
        let demo = tempfile::tempdir().expect("demo dir");
        let chosen =
            choose_policies(Some(Path::new("/etc/vcguard/policies")), demo.path()).expect("choose");
        assert_eq!(
            chosen,
            PolicySource::Given(PathBuf::from("/etc/vcguard/policies"))
        );
        assert!(!demo.path().join("policies").exists());
    }
}
