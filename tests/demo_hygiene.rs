//! `vcguard demo` as users run it: two at once, one of them outside the repository. Each gets
//! its own directory (printed in the banner, removed on exit unless `--keep`), serves, and
//! keeps an audit chain that verifies.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ADMIN_USER: &str = "administrator@vsphere.local";
const ADMIN_PASSWORD: &str = "VMware1!";

/// A `vcguard demo` child and what its banner said.
struct Demo {
    child: Child,
    banner: Vec<String>,
    port: u16,
    ca: PathBuf,
    dir: PathBuf,
    audit: PathBuf,
}

impl Demo {
    /// Runs `vcguard demo` on port 0 everywhere from `cwd`, with `TMPDIR=tmp`, and reads its
    /// banner (bounded).
    fn start(cwd: &Path, tmp: &Path, keep: bool) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vcguard"));
        command
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--sim-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .current_dir(cwd)
            .env("TMPDIR", tmp)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if keep {
            command.arg("--keep");
        }
        let mut child = command.spawn().expect("vcguard demo starts");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = sender.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut banner = Vec::new();
        while !banner
            .iter()
            .any(|l: &String| l.contains("Press Ctrl-C to stop"))
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(line) => banner.push(line),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("no banner from vcguard demo: {banner:#?}");
                }
            }
        }
        let field = |label: &str| {
            banner
                .iter()
                .find_map(|l| l.trim_start().strip_prefix(label))
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("banner has no {label:?}: {banner:#?}"))
        };
        let gateway = field("gateway");
        let port = gateway
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("gateway URL {gateway}"));
        Self {
            port,
            ca: field("CA for curl").into(),
            dir: field("demo files").into(),
            audit: field("Audit log:").into(),
            banner,
            child,
        }
    }

    fn banner_line(&self, prefix: &str) -> &str {
        self.banner
            .iter()
            .find(|l| l.starts_with(prefix))
            .map(String::as_str)
            .unwrap_or_default()
    }

    fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.ca).expect("demo CA file");
        let ca = reqwest::Certificate::from_pem(&pem).expect("pem");
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .resolve("localhost", ([127, 0, 0, 1], self.port).into())
            .no_proxy()
            .build()
            .expect("client")
    }

    /// Logs in over VI/JSON and asks for maintenance mode on host-21 without and with a
    /// ticket; returns the two HTTP statuses.
    async fn exercise(&self) -> (u16, u16) {
        let client = self.client();
        let vim = format!("https://localhost:{}/sdk/vim25/8.0.3.0", self.port);
        let login = client
            .post(format!("{vim}/SessionManager/SessionManager/Login"))
            .json(&serde_json::json!({"userName": ADMIN_USER, "password": ADMIN_PASSWORD}))
            .send()
            .await
            .expect("login");
        assert_eq!(login.status(), 200, "login through demo {}", self.port);
        let token = login
            .headers()
            .get("vmware-api-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("session token")
            .to_owned();
        let maintenance = |ticket: Option<&str>| {
            let mut request = client
                .post(format!(
                    "{vim}/HostSystem/host-21/EnterMaintenanceMode_Task"
                ))
                .header("vmware-api-session-id", &token)
                .json(&serde_json::json!({"timeout": 0}));
            if let Some(ticket) = ticket {
                request = request.header("X-Change-Ticket", ticket);
            }
            request.send()
        };
        let refused = maintenance(None).await.expect("refused call").status();
        let allowed = maintenance(Some("CHG0012345"))
            .await
            .expect("allowed call")
            .status();
        (refused.as_u16(), allowed.as_u16())
    }

    /// SIGTERM and a bounded wait for the exit (async, so that the test's own client
    /// connections can close meanwhile).
    async fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "demo exited with {status}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("demo did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls (bounded) until the audit chain verifies and holds both maintenance decisions.
async fn verified_records(audit: &Path) -> vcguard::audit::VerifyReport {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let report = vcguard::audit::verify(&[audit.to_owned()]);
        let text = std::fs::read_to_string(audit).unwrap_or_default();
        let decisions = text.matches("EnterMaintenanceMode_Task").count();
        if (report.ok && decisions >= 2) || Instant::now() > deadline {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_demos_side_by_side_each_with_its_own_directory_and_audit_chain() {
    let tmp = tempfile::tempdir().expect("TMPDIR for the demos");
    let elsewhere = tempfile::tempdir().expect("a directory outside the repository");
    let repository = Path::new(env!("CARGO_MANIFEST_DIR"));

    let mut kept = Demo::start(repository, tmp.path(), true);
    let mut outside = Demo::start(elsewhere.path(), tmp.path(), false);

    // Distinct directories under TMPDIR, announced in the banner, holding each demo's files.
    assert_ne!(kept.dir, outside.dir);
    for demo in [&kept, &outside] {
        assert!(demo.dir.starts_with(tmp.path()), "{}", demo.dir.display());
        assert!(demo.dir.is_dir(), "{}", demo.dir.display());
        assert!(demo.ca.starts_with(&demo.dir) && demo.audit.starts_with(&demo.dir));
    }
    assert_ne!(kept.port, outside.port);
    assert!(
        kept.banner_line("Policies in force:")
            .contains("./policies in the current directory"),
        "{:#?}",
        kept.banner
    );
    assert!(
        outside
            .banner_line("Policies in force:")
            .contains("the shipped policies built into this binary"),
        "{:#?}",
        outside.banner
    );
    assert!(outside.dir.join("policies/schema.cedarschema").is_file());

    // Both serve and enforce the shipped policies, side by side.
    for demo in [&kept, &outside] {
        assert_eq!(demo.exercise().await, (500, 200), "demo on {}", demo.port);
    }

    // Both audit chains verify (the one about to be removed while it is still there).
    let report = verified_records(&outside.audit).await;
    assert!(report.ok, "{report}");
    outside.stop().await;
    assert!(
        !outside.dir.exists(),
        "the demo directory outlived the demo"
    );

    kept.stop().await;
    assert!(kept.dir.is_dir(), "--keep removed the directory");
    let report = verified_records(&kept.audit).await;
    assert!(report.ok && report.ends_with_stop, "{report}");
}
