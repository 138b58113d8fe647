//! The real `vcguard` binary as a child process, configured by a TOML file, for tests that
//! need signals (SIGUSR1, SIGKILL) or a restart.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vcguard::tls::SelfSigned;

/// A running `vcguard serve`; killed (SIGKILL) and reaped when dropped.
pub struct GatewayProcess {
    child: Child,
    pub port: u16,
    pub admin: u16,
    pub config: PathBuf,
    /// The gateway's certificate, PEM.
    pub cert_pem: String,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Writes `work/vcguard.toml` (certificate, upstream, the audit file and `audit_extra`
/// lines under `[audit]`) and returns its path.
pub fn write_config(work: &Path, upstream: &str, audit_file: &Path, audit_extra: &str) -> PathBuf {
    let cert = SelfSigned::generate(&["localhost"]).expect("cert");
    std::fs::write(work.join("gw.pem"), &cert.cert_pem).expect("cert");
    std::fs::write(work.join("gw.key"), &cert.key_pem).expect("key");
    let config = work.join("vcguard.toml");
    let text = format!(
        r#"[server]
listen = "127.0.0.1:{port}"
cert = "{cert}"
key = "{key}"
shutdown_grace_secs = 5

[upstream]
url = "{upstream}"

[admin]
listen = "127.0.0.1:{admin}"

[policy]
dir = "{policies}"

[audit]
file = "{audit}"
{audit_extra}
"#,
        port = free_port(),
        admin = free_port(),
        cert = work.join("gw.pem").display(),
        key = work.join("gw.key").display(),
        policies = concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        audit = audit_file.display(),
    );
    std::fs::write(&config, text).expect("config");
    config
}

fn port_of(config: &str, section: &str) -> u16 {
    let after = config.split(section).nth(1).expect("section");
    let listen = after.split("listen = \"127.0.0.1:").nth(1).expect("listen");
    listen
        .split('"')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

impl GatewayProcess {
    /// Starts `vcguard serve --config CONFIG` and waits until `/readyz` answers 200.
    pub async fn start(config: &Path) -> GatewayProcess {
        let text = std::fs::read_to_string(config).expect("config");
        let dir = config.parent().expect("dir");
        let cert_pem = std::fs::read_to_string(dir.join("gw.pem")).expect("cert");
        let child = Command::new(env!("CARGO_BIN_EXE_vcguard"))
            .args(["serve", "--config", config.to_str().expect("utf-8")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start vcguard");
        let gateway = GatewayProcess {
            child,
            port: port_of(&text, "[server]"),
            admin: port_of(&text, "[admin]"),
            config: config.to_path_buf(),
            cert_pem,
        };
        for _ in 0..400 {
            if gateway.readyz().await.0 == 200 {
                return gateway;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("vcguard did not become ready");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`USR1`, `TERM`, `KILL`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill -s {name}");
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM and wait for the process to end (graceful: the log gets its stop record).
    pub fn stop(&mut self) {
        self.signal("TERM");
        let _ = self.child.wait();
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `/readyz`: status and body (0 when the admin listener does not answer).
    pub async fn readyz(&self) -> (u16, serde_json::Value) {
        match reqwest::get(format!("http://127.0.0.1:{}/readyz", self.admin)).await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or_default())
            }
            Err(_) => (0, serde_json::Value::Null),
        }
    }

    /// A client trusting only the gateway's certificate.
    pub fn client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.cert_pem.as_bytes()).expect("pem");
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .resolve(
                "localhost",
                format!("127.0.0.1:{}", self.port).parse().expect("addr"),
            )
            .no_proxy()
            .build()
            .expect("client")
    }

    /// `https://localhost:PORT/sdk/vim25/8.0.3.0`.
    pub fn vim(&self) -> String {
        format!("https://localhost:{}/sdk/vim25/8.0.3.0", self.port)
    }

    /// Logs in over VI/JSON and returns the session token.
    pub async fn login(&self, client: &reqwest::Client) -> String {
        let response = client
            .post(format!("{}/SessionManager/SessionManager/Login", self.vim()))
            .json(&serde_json::json!({"userName": super::ADMIN_USER, "password": super::ADMIN_PASSWORD}))
            .send()
            .await
            .expect("login");
        assert_eq!(response.status(), 200, "login");
        response.headers()["vmware-api-session-id"]
            .to_str()
            .expect("ascii")
            .to_owned()
    }
}

/// Runs `vcguard audit verify ARGS…` and returns success and stdout+stderr.
pub fn verify(args: &[&Path]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vcguard"));
    command.args(["audit", "verify"]);
    for a in args {
        command.arg(a);
    }
    let out = command.output().expect("vcguard audit verify");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Every record in the files, parsed.
pub fn records_in(files: &[PathBuf]) -> Vec<serde_json::Value> {
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}
