//! The gateway process killed with SIGKILL mid-traffic: on restart the log verifies up to the
//! last record written, and the chain resumes with a start record that notes the unclean stop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use vcguard::tls::SelfSigned;
use vcsim_lite::SimConfig;
use vcsim_lite::server::start;

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn spawn_gateway(dir: &std::path::Path, upstream: &str, port: u16, admin: u16) -> Gateway {
    let gateway = Gateway(
        Command::new(env!("CARGO_BIN_EXE_vcguard"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(["--cert", dir.join("gw.pem").to_str().expect("utf-8")])
            .args(["--key", dir.join("gw.key").to_str().expect("utf-8")])
            .args(["--upstream", upstream])
            .args([
                "--policies",
                concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
            ])
            .args(["--audit", dir.join("audit.jsonl").to_str().expect("utf-8")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start vcguard"),
    );
    let ready = format!("http://127.0.0.1:{admin}/readyz");
    for _ in 0..200 {
        if reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200) {
            return gateway;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("vcguard did not become ready");
}

#[tokio::test]
async fn sigkill_then_restart_resumes_a_verifiable_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = SelfSigned::generate(&["localhost"]).expect("cert");
    std::fs::write(dir.path().join("gw.pem"), &cert.cert_pem).expect("cert");
    std::fs::write(dir.path().join("gw.key"), &cert.key_pem).expect("key");
    let sim = start(
        "127.0.0.1:0".parse().expect("addr"),
        false,
        SimConfig::default(),
    )
    .await
    .expect("sim");
    let (port, admin) = (free_port(), free_port());
    let mut gateway = spawn_gateway(dir.path(), &sim.base_url(), port, admin).await;

    let ca = reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).expect("pem");
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .resolve(
            "localhost",
            format!("127.0.0.1:{port}").parse().expect("addr"),
        )
        .build()
        .expect("client");
    let vim = format!("https://localhost:{port}/sdk/vim25/8.0.3.0");
    let login = client
        .post(format!("{vim}/SessionManager/SessionManager/Login"))
        .json(
            &serde_json::json!({"userName": "administrator@vsphere.local", "password": "VMware1!"}),
        )
        .send()
        .await
        .expect("login");
    let token = login.headers()["vmware-api-session-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let load = tokio::spawn({
        let (client, vim, token) = (client.clone(), vim.clone(), token.clone());
        async move {
            for i in 0.. {
                let mode = if i % 2 == 0 {
                    "lockdownNormal"
                } else {
                    "lockdownDisabled"
                };
                let sent = client
                    .post(format!("{vim}/HostAccessManager/ham-21/ChangeLockdownMode"))
                    .header("vmware-api-session-id", &token)
                    .json(&serde_json::json!({ "mode": mode }))
                    .send()
                    .await;
                if sent.is_err() {
                    break;
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    gateway.0.kill().expect("SIGKILL");
    let _ = gateway.0.wait();
    let _ = load.await;

    let audit = dir.path().join("audit.jsonl");
    let before = std::fs::read_to_string(&audit).expect("log");
    let decisions = before
        .lines()
        .filter(|l| l.contains(r#""kind":"decision""#))
        .count();
    assert!(
        decisions > 0,
        "some guarded calls were recorded before the kill"
    );

    let gateway = spawn_gateway(dir.path(), &sim.base_url(), port, admin).await;
    drop(gateway);
    let after = std::fs::read_to_string(&audit).expect("log");
    let restart: Value = after
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "start")
        .nth(1)
        .expect("a second start record");
    assert_eq!(restart["unclean_previous_stop"], true, "{restart}");
    let output = Command::new(env!("CARGO_BIN_EXE_vcguard"))
        .args(["audit", "verify", audit.to_str().expect("utf-8")])
        .output()
        .expect("verify");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("chain intact"), "{text}");
    sim.stop().await;
}
