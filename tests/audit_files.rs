//! The audit log's files under an operator's tools and a failing disk, end to end with the
//! real binary: logrotate's `mv` + SIGUSR1, `rm` of the active file, built-in rotation with
//! retention, a real full filesystem, and SIGKILL under load.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::gateway_process::{GatewayProcess, records_in, verify, write_config};
use serde_json::Value;
use vcsim_lite::SimConfig;
use vcsim_lite::server::{RunningSim, start};

async fn sim() -> RunningSim {
    start(
        "127.0.0.1:0".parse().expect("addr"),
        false,
        SimConfig::default(),
    )
    .await
    .expect("sim")
}

/// `n` pass-through reads; returns how many were answered 200.
async fn reads(gw: &GatewayProcess, client: &reqwest::Client, token: &str, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        let r = client
            .get(format!("{}/HostSystem/host-21/name", gw.vim()))
            .header("vmware-api-session-id", token)
            .send()
            .await
            .expect("read");
        if r.status() == 200 {
            ok += 1;
        }
    }
    ok
}

/// A guarded call (allowed by the shipped policies; vCenter answers 204): its status.
async fn guarded(gw: &GatewayProcess, client: &reqwest::Client, token: &str) -> u16 {
    client
        .post(format!(
            "{}/HostAccessManager/ham-21/ChangeLockdownMode",
            gw.vim()
        ))
        .header("vmware-api-session-id", token)
        .json(&serde_json::json!({"mode": "lockdownNormal"}))
        .send()
        .await
        .expect("guarded call")
        .status()
        .as_u16()
}

/// Polls until `f` holds (at most ~20 s, never a timing assertion).
async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting: {what}");
}

fn first_record(path: &Path) -> Option<Value> {
    records_in(&[path.to_path_buf()]).into_iter().next()
}

#[tokio::test]
async fn mv_and_sigusr1_continue_the_chain_in_a_new_file() {
    let work = tempfile::tempdir().expect("tempdir");
    let active = work.path().join("audit.jsonl");
    let sim = sim().await;
    let config = write_config(work.path(), &sim.base_url(), &active, "");
    let mut gw = GatewayProcess::start(&config).await;
    let client = gw.client();
    let token = gw.login(&client).await;
    assert_eq!(reads(&gw, &client, &token, 5).await, 5);

    // logrotate: mv, then postrotate sends SIGUSR1.
    let rotated = work.path().join("audit.jsonl-20261130");
    std::fs::rename(&active, &rotated).expect("mv");
    gw.signal("USR1");
    wait_until("a new active file with a reopen record", || {
        first_record(&active).is_some_and(|r| r["kind"] == "reopen")
    })
    .await;
    assert!(gw.running(), "SIGUSR1 must not end the process");
    assert_eq!(reads(&gw, &client, &token, 5).await, 5);
    gw.stop();

    let reopen = first_record(&active).expect("reopen");
    assert_eq!(reopen["reason"], "renamed");
    let old = records_in(std::slice::from_ref(&rotated));
    assert_eq!(reopen["prev"], old.last().expect("old records")["hash"]);
    let after = records_in(std::slice::from_ref(&active));
    assert!(
        after.iter().filter(|r| r["kind"] == "outcome").count() >= 5,
        "later records go to the new file"
    );
    let (ok, text) = verify(&[&active]);
    assert!(ok, "{text}");
    assert!(text.contains("checking 2 files"), "{text}");
    assert!(text.contains("chain intact"), "{text}");
    sim.stop().await;
}

#[tokio::test]
async fn rm_of_the_active_file_is_noticed_and_verify_reports_the_gap() {
    let work = tempfile::tempdir().expect("tempdir");
    let active = work.path().join("audit.jsonl");
    let sim = sim().await;
    let config = write_config(work.path(), &sim.base_url(), &active, "");
    let mut gw = GatewayProcess::start(&config).await;
    let client = gw.client();
    let token = gw.login(&client).await;
    assert_eq!(reads(&gw, &client, &token, 5).await, 5);

    std::fs::remove_file(&active).expect("rm");
    assert_eq!(reads(&gw, &client, &token, 3).await, 3);
    wait_until("a new active file with a reopen record", || {
        first_record(&active).is_some_and(|r| r["kind"] == "reopen")
    })
    .await;
    gw.stop();
    let reopen = first_record(&active).expect("reopen");
    assert_eq!(reopen["reason"], "deleted");
    assert!(reopen["seq"].as_u64().expect("seq") > 5);

    let (ok, text) = verify(&[work.path()]);
    assert!(!ok, "the lost records must fail verification: {text}");
    assert!(text.contains("missing file"), "{text}");
    assert!(text.contains("found its active file deleted"), "{text}");
    sim.stop().await;
}

#[tokio::test]
async fn builtin_rotation_with_retention() {
    let work = tempfile::tempdir().expect("tempdir");
    let active = work.path().join("audit.jsonl");
    let sim = sim().await;
    let config = write_config(
        work.path(),
        &sim.base_url(),
        &active,
        "rotate_bytes = 4096\nkeep_files = 2",
    );
    let mut gw = GatewayProcess::start(&config).await;
    let client = gw.client();
    let token = gw.login(&client).await;
    assert_eq!(reads(&gw, &client, &token, 60).await, 60);
    gw.stop();

    let rotated: Vec<PathBuf> = std::fs::read_dir(work.path())
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit-"))
        })
        .collect();
    assert_eq!(rotated.len(), 2, "keep_files = 2: {rotated:?}");
    let all = records_in(&vcguard::audit::log_set(&active).expect("set"));
    assert!(
        all.iter().any(|r| r["kind"] == "retention"),
        "the removal is recorded"
    );
    let (ok, text) = verify(&[work.path()]);
    assert!(ok, "{text}");
    assert!(text.contains("the chain starts at seq"), "{text}");
    sim.stop().await;
}

/// Mounts a 256 KiB tmpfs on `dir`; `None` when this machine does not allow it.
fn small_filesystem(dir: &Path) -> Option<()> {
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    status.success().then_some(())
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the filesystem holding `dir` with `filler`; returns the bytes written.
fn fill(filler: &Path) -> u64 {
    use std::io::Write as _;
    let mut f = std::fs::File::create(filler).expect("filler");
    let chunk = vec![b'x'; 4096];
    let mut written = 0;
    for _ in 0..1024 {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = f.flush();
    written
}

#[tokio::test]
async fn a_full_filesystem_refuses_guarded_calls_keeps_reads_flowing_and_recovers() {
    let work = tempfile::tempdir().expect("tempdir");
    let logdir = work.path().join("log");
    std::fs::create_dir(&logdir).expect("log dir");
    if small_filesystem(&logdir).is_none() {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs (needs root and mount(8)); the disk-full end-to-end test did not run"
        );
        return;
    }
    let _unmount = Unmount(logdir.clone());
    let active = logdir.join("audit.jsonl");
    let sim = sim().await;
    let config = write_config(work.path(), &sim.base_url(), &active, "queue_capacity = 16");
    let mut gw = GatewayProcess::start(&config).await;
    let client = gw.client();
    let token = gw.login(&client).await;
    let status = guarded(&gw, &client, &token).await;
    assert!((200..300).contains(&status), "guarded call: {status}");

    let filler = logdir.join("filler");
    assert!(fill(&filler) > 0);
    // Reads keep flowing (refuse_guarded), far beyond the queue: no call hangs.
    let answered = tokio::time::timeout(Duration::from_secs(120), reads(&gw, &client, &token, 60))
        .await
        .expect("reads must not hang on a full disk");
    assert_eq!(answered, 60);
    let mut readyz = gw.readyz().await;
    for _ in 0..200 {
        if readyz.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        readyz = gw.readyz().await;
    }
    let (status, body) = readyz;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "audit_failing", "{body}");
    assert!(
        body["audit"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("No space left"),
        "{body}"
    );
    assert_eq!(guarded(&gw, &client, &token).await, 503);
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", gw.admin))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("vcguard_audit_dropped_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );

    // Space returns: recovery without a restart.
    std::fs::remove_file(&filler).expect("free space");
    let mut ready = false;
    for _ in 0..200 {
        if gw.readyz().await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the gateway must recover once space returns");
    let status = guarded(&gw, &client, &token).await;
    assert!((200..300).contains(&status), "guarded call: {status}");
    gw.stop();

    let all = records_in(&vcguard::audit::log_set(&active).expect("set"));
    let gaps: Vec<&Value> = all.iter().filter(|r| r["kind"] == "gap").collect();
    assert_eq!(gaps.len(), 1, "one gap record");
    assert!(gaps[0]["lost"].as_u64().expect("lost") > 0);
    let (ok, text) = verify(&[&logdir]);
    assert!(!ok, "{text}");
    assert!(text.contains("records dropped"), "{text}");
    for other in ["edited", "missing", "truncated", "reordered", "chain break"] {
        assert!(!text.contains(&format!(": {other}:")), "{text}");
    }
    sim.stop().await;
}

type Seen = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// `clients` concurrent readers of at most `per_client` reads each (fewer when the gateway goes
/// away); they collect the request ids of the reads answered 200.
fn start_readers(
    gw: &GatewayProcess,
    client: &reqwest::Client,
    token: &str,
    clients: usize,
    per_client: usize,
) -> (Vec<tokio::task::JoinHandle<()>>, Seen) {
    let vim = gw.vim();
    let seen = Seen::default();
    let mut handles = Vec::new();
    for _ in 0..clients {
        let (client, vim, token, seen) =
            (client.clone(), vim.clone(), token.to_owned(), seen.clone());
        handles.push(tokio::spawn(async move {
            for _ in 0..per_client {
                let Ok(r) = client
                    .get(format!("{vim}/HostSystem/host-21/name"))
                    .header("vmware-api-session-id", &token)
                    .send()
                    .await
                else {
                    break;
                };
                if r.status() == 200
                    && let Some(id) = r
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                {
                    let id = id.to_owned();
                    if let Ok(mut seen) = seen.lock() {
                        seen.push(id);
                    }
                }
            }
        }));
    }
    (handles, seen)
}

/// Waits for the readers; the request ids they saw answered.
async fn answered(handles: Vec<tokio::task::JoinHandle<()>>, seen: Seen) -> Vec<String> {
    for handle in handles {
        let _ = handle.await;
    }
    let seen = seen.lock().expect("ids").clone();
    assert!(!seen.is_empty(), "some reads were answered");
    seen
}

/// Asserts that every answered request id has an outcome record in the log set of `active`.
fn assert_every_answer_has_an_outcome(seen: &[String], active: &Path) {
    let all = records_in(&vcguard::audit::log_set(active).expect("set"));
    let outcomes: std::collections::HashSet<&str> = all
        .iter()
        .filter(|r| r["kind"] == "outcome")
        .filter_map(|r| r["request_id"].as_str())
        .collect();
    let missing: Vec<&String> = seen
        .iter()
        .filter(|id| !outcomes.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered reads have no outcome record, e.g. {:?}",
        missing.len(),
        seen.len(),
        missing.first()
    );
}

#[tokio::test]
async fn sigkill_under_load_loses_no_outcome_a_client_saw() {
    let work = tempfile::tempdir().expect("tempdir");
    let active = work.path().join("audit.jsonl");
    let sim = sim().await;
    let config = write_config(work.path(), &sim.base_url(), &active, "");
    let mut gw = GatewayProcess::start(&config).await;
    let client = gw.client();
    let token = gw.login(&client).await;
    let (readers, seen) = start_readers(&gw, &client, &token, 8, 100_000);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gw.kill();
    let seen = answered(readers, seen).await;
    let mut gw = GatewayProcess::start(&config).await;
    gw.stop();
    assert_every_answer_has_an_outcome(&seen, &active);
    let (ok, text) = verify(&[&active]);
    assert!(ok, "{text}");
    assert!(text.contains("unclean stop"), "{text}");
    sim.stop().await;
}

#[tokio::test]
async fn batched_outcomes_are_all_written_by_a_clean_stop() {
    let work = tempfile::tempdir().expect("tempdir");
    let active = work.path().join("audit.jsonl");
    let sim = sim().await;
    let config = write_config(
        work.path(),
        &sim.base_url(),
        &active,
        "outcome_write = \"batched\"\n",
    );
    let mut gw = GatewayProcess::start(&config).await;
    let client = gw.client();
    let token = gw.login(&client).await;
    let (readers, seen) = start_readers(&gw, &client, &token, 4, 200);
    let seen = answered(readers, seen).await;
    assert_eq!(seen.len(), 800, "every read was answered");
    gw.stop();
    assert_every_answer_has_an_outcome(&seen, &active);
    let (ok, text) = verify(&[&active]);
    assert!(ok, "{text}");
    assert!(!text.contains("unclean stop"), "{text}");
    sim.stop().await;
}
