//! Tests across the writer and the review functions.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::*;

const KEY: &[u8] = b"audit-test-key-0123456789";

fn config(dir: &Path) -> AuditConfig {
    AuditConfig::new(dir.join("audit.jsonl"), KEY.to_vec(), "gw-test")
}

fn files(cfg: &AuditConfig) -> Vec<PathBuf> {
    log_files(&cfg.path, &cfg.rotated_name).unwrap()
}

fn call(i: usize) -> CallRecord {
    CallRecord {
        request_id: format!("req-{i}"),
        client: Some("10.0.0.7:51234".into()),
        protocol: Some("soap".into()),
        method: Some("EnterMaintenanceMode_Task".into()),
        mo_type: Some("HostSystem".into()),
        mo_id: Some(format!("host-{}", i % 7)),
        route: Some("/sdk".into()),
        principal: Some(if i.is_multiple_of(2) {
            "VSPHERE.LOCAL\\alice".into()
        } else {
            "VSPHERE.LOCAL\\bob".into()
        }),
        decision: Some(if i.is_multiple_of(5) {
            Verdict::Deny
        } else {
            Verdict::Allow
        }),
        policies: vec!["hosts-need-ticket".into()],
        reason: i
            .is_multiple_of(5)
            .then(|| "a change ticket is required".into()),
        policy_set: Some("ab12cd34".into()),
        ..CallRecord::default()
    }
}

fn decision(i: usize) -> AuditEvent {
    AuditEvent::Decision(call(i))
}

fn outcome(i: usize) -> AuditEvent {
    AuditEvent::Outcome(OutcomeRecord {
        call: call(i),
        status: Some(200),
        task: Some(format!("task-{i}")),
        bytes_in: Some(512),
        bytes_out: Some(1024),
        latency_ms: Some(12),
        ..OutcomeRecord::default()
    })
}

fn records(files: &[PathBuf]) -> Vec<Value> {
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn kinds(recs: &[Value]) -> Vec<&str> {
    recs.iter().map(|r| r["kind"].as_str().unwrap()).collect()
}

/// A closed log with one start, `n` decision+outcome pairs and a stop, in one file.
async fn small_log(dir: &Path, n: usize) -> AuditConfig {
    let cfg = config(dir);
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    for i in 0..n {
        log.write_durable(decision(i)).await.unwrap();
        log.write(outcome(i)).await.unwrap();
    }
    log.close().await;
    task.wait().await.unwrap();
    cfg
}

#[tokio::test]
async fn written_log_verifies_with_envelope_fields() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_log(dir.path(), 5).await;
    let files = files(&cfg);
    assert_eq!(files, vec![cfg.path.clone()]);
    let report = verify(&files);
    assert!(report.ok, "{report}");
    assert_eq!(report.summary(), "12 records, chain intact");
    assert!(report.ends_with_stop);
    assert!(report.notes.is_empty(), "{report}");

    let recs = records(&files);
    assert_eq!(kinds(&recs)[0], "start");
    assert_eq!(kinds(&recs)[11], "stop");
    assert_eq!(recs[0]["prev"], "0".repeat(64));
    assert_eq!(recs[0]["unclean_previous_stop"], false);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["v"], 1);
        assert_eq!(r["seq"], i as u64 + 1);
        assert_eq!(r["instance"], "gw-test");
        let t = r["time"].as_str().unwrap();
        assert_eq!(t.len(), 27, "{t}");
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap();
        if i > 0 {
            assert_eq!(r["prev"], recs[i - 1]["hash"]);
        }
    }
    assert_eq!(recs[1]["decision"], "deny");
    assert_eq!(recs[2]["task"], "task-0");
    assert_eq!(recs[2]["latency_ms"], 12);
}

/// Copies the log's files into a fresh directory so they can be damaged.
fn copy_files(files: &[PathBuf], to: &Path) -> Vec<PathBuf> {
    files
        .iter()
        .map(|f| {
            let dst = to.join(f.file_name().unwrap());
            std::fs::copy(f, &dst).unwrap();
            dst
        })
        .collect()
}

fn edit_lines(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    f(&mut lines);
    let mut out = lines.join("\n");
    out.push('\n');
    std::fs::write(path, out).unwrap();
}

fn failure(files: &[PathBuf]) -> VerifyFailure {
    let report = verify(files);
    assert!(!report.ok, "damage not detected: {report}");
    assert_eq!(report.exit_code(), 1);
    report.failure.unwrap()
}

#[tokio::test]
async fn every_kind_of_tampering_is_detected_and_located() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_log(dir.path(), 10).await;
    let original = files(&cfg);
    assert!(verify(&original).ok);

    // An edited field.
    let d = tempfile::tempdir().unwrap();
    let f = copy_files(&original, d.path());
    edit_lines(&f[0], |l| {
        l[4] = l[4].replace("EnterMaintenance", "ExitMaintenance")
    });
    let fail = failure(&f);
    assert_eq!((fail.problem, fail.line), (Problem::Edited, 5), "{fail}");
    assert!(
        fail.to_string()
            .starts_with(&format!("{}:5: edited: ", f[0].display())),
        "{fail}"
    );

    // An edit whose hash was recomputed breaks the next record's link.
    let d = tempfile::tempdir().unwrap();
    let f = copy_files(&original, d.path());
    edit_lines(&f[0], |l| {
        let edited = l[4].replace("EnterMaintenance", "ExitMaintenance");
        let (body, _) = edited.split_once(",\"hash\":\"").unwrap();
        let hash = chain::sha256_hex(format!("{body}}}").as_bytes());
        l[4] = format!("{body},\"hash\":\"{hash}\"}}");
    });
    assert!(
        chain::check_line(
            std::fs::read_to_string(&f[0])
                .unwrap()
                .lines()
                .nth(4)
                .unwrap()
                .as_bytes()
        )
        .is_ok()
    );
    let fail = failure(&f);
    assert_eq!((fail.problem, fail.line), (Problem::Edited, 6), "{fail}");
    assert!(fail.detail.contains("`prev`"), "{fail}");

    // A duplicated key hiding a forged value from first-wins readers.
    let d = tempfile::tempdir().unwrap();
    let f = copy_files(&original, d.path());
    edit_lines(&f[0], |l| {
        l[3] = l[3].replacen("{", "{\"principal\":\"root\",", 1)
    });
    let fail = failure(&f);
    assert_eq!((fail.problem, fail.line), (Problem::Edited, 4), "{fail}");
    assert!(fail.detail.contains("hash mismatch"), "{fail}");

    // Whitespace only: still an edit of the bytes the hash covers.
    let d = tempfile::tempdir().unwrap();
    let f = copy_files(&original, d.path());
    edit_lines(&f[0], |l| l[3] = l[3].replacen(",", ", ", 1));
    assert_eq!(failure(&f).problem, Problem::Edited);

    // A deleted line.
    let d = tempfile::tempdir().unwrap();
    let f = copy_files(&original, d.path());
    edit_lines(&f[0], |l| {
        l.remove(6);
    });
    let fail = failure(&f);
    assert_eq!((fail.problem, fail.line), (Problem::Missing, 7), "{fail}");
    assert!(fail.detail.contains("1 record is missing"), "{fail}");

    // Two swapped lines.
    let d = tempfile::tempdir().unwrap();
    let f = copy_files(&original, d.path());
    edit_lines(&f[0], |l| l.swap(6, 7));
    let fail = failure(&f);
    assert_eq!((fail.problem, fail.line), (Problem::Reordered, 7), "{fail}");
    assert!(
        fail.detail.contains(&format!("{}:8", f[0].display())),
        "{fail}"
    );

    // A duplicated line.
    let d = tempfile::tempdir().unwrap();
    let f = copy_files(&original, d.path());
    edit_lines(&f[0], |l| {
        let dup = l[3].clone();
        l.insert(4, dup);
    });
    let fail = failure(&f);
    assert_eq!((fail.problem, fail.line), (Problem::Reordered, 5), "{fail}");

    // The tail cut in the middle of a line.
    let d = tempfile::tempdir().unwrap();
    let f = copy_files(&original, d.path());
    let bytes = std::fs::read(&f[0]).unwrap();
    std::fs::write(&f[0], &bytes[..bytes.len() - 40]).unwrap();
    let fail = failure(&f);
    assert_eq!(
        (fail.problem, fail.line),
        (Problem::Truncated, 22),
        "{fail}"
    );

    // The tail cut at a line boundary: intact, with a note for the reviewer.
    let d = tempfile::tempdir().unwrap();
    let f = copy_files(&original, d.path());
    edit_lines(&f[0], |l| l.truncate(15));
    let report = verify(&f);
    assert!(report.ok, "{report}");
    assert!(!report.ends_with_stop);
    assert_eq!(report.summary(), "15 records, chain intact");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with("ends without a stop record; last checkpoint at never")),
        "{report}"
    );

    // A file that is not JSON at all.
    let d = tempfile::tempdir().unwrap();
    let f = copy_files(&original, d.path());
    edit_lines(&f[0], |l| l[2] = "hello".into());
    assert_eq!(failure(&f).problem, Problem::Edited);

    // A file that does not exist.
    let fail = failure(&[d.path().join("nope.jsonl")]);
    assert_eq!((fail.problem, fail.line), (Problem::Unreadable, 0));
}

#[tokio::test]
async fn rotation_keeps_the_chain_and_never_rewrites_old_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.rotate_bytes = 4096;
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    for i in 0..100 {
        log.write(outcome(i)).await.unwrap();
    }
    log.close().await;
    task.wait().await.unwrap();

    let fs = files(&cfg);
    assert!(fs.len() >= 5, "{fs:?}");
    for f in &fs {
        assert!(std::fs::metadata(f).unwrap().len() <= 4096, "{f:?}");
    }
    let report = verify(&fs);
    assert!(report.ok, "{report}");
    assert_eq!(report.records, 102);
    // Rotated names carry the seq of their first record.
    for f in &fs[..fs.len() - 1] {
        let first: Value =
            serde_json::from_str(std::fs::read_to_string(f).unwrap().lines().next().unwrap())
                .unwrap();
        let name = f.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            name,
            format!("audit-{:012}.jsonl", first["seq"].as_u64().unwrap())
        );
    }
    let before: Vec<Vec<u8>> = fs[..fs.len() - 1]
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();

    // Reopen and write more: the old files stay byte-identical.
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    for i in 0..100 {
        log.write_durable(decision(i)).await.unwrap();
    }
    log.close().await;
    task.wait().await.unwrap();
    for (f, b) in fs[..fs.len() - 1].iter().zip(&before) {
        assert_eq!(&std::fs::read(f).unwrap(), b, "{f:?} changed");
    }
    let fs2 = files(&cfg);
    assert!(fs2.len() > fs.len());
    let report = verify(&fs2);
    assert!(report.ok, "{report}");
    assert_eq!(report.records, 204);

    // A whole rotated file removed from the middle.
    let d = tempfile::tempdir().unwrap();
    let mut copies = copy_files(&fs2, d.path());
    let removed = copies.remove(2);
    std::fs::remove_file(&removed).unwrap();
    let fail = failure(&copies);
    assert_eq!(fail.problem, Problem::MissingFile, "{fail}");
    assert_eq!(
        (fail.file.clone(), fail.line),
        (copies[2].clone(), 1),
        "{fail}"
    );

    // The oldest file removed (retention): intact, with a note.
    let report = verify(&copies[2..]);
    assert!(report.ok, "{report}");
    assert!(
        report.notes[0].starts_with("the chain starts at seq"),
        "{report}"
    );
}

#[tokio::test]
async fn reopen_links_start_to_stop_and_flags_unclean_stops() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_log(dir.path(), 2).await;

    // Clean restart.
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.flush().await.unwrap();
    let recs = records(&files(&cfg));
    let stop = &recs[5];
    let start = &recs[6];
    assert_eq!(
        (stop["kind"].as_str(), start["kind"].as_str()),
        (Some("stop"), Some("start"))
    );
    assert_eq!(start["prev"], stop["hash"]);
    assert_eq!(start["seq"], 7);
    assert_eq!(start["unclean_previous_stop"], false);

    // Crash: every handle dropped without close; no stop record.
    log.write_durable(decision(9)).await.unwrap();
    drop(log);
    task.wait().await.unwrap();
    let recs = records(&files(&cfg));
    assert_eq!(kinds(&recs).last(), Some(&"decision"));

    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.close().await;
    task.wait().await.unwrap();
    let recs = records(&files(&cfg));
    let start = &recs[recs.len() - 2];
    assert_eq!(start["kind"], "start");
    assert_eq!(start["unclean_previous_stop"], true);
    assert!(start.get("torn_tail").is_none());
    let report = verify(&files(&cfg));
    assert!(report.ok, "{report}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with("unclean stop before seq 9")),
        "{report}"
    );

    // Crash in the middle of a write: a torn last line.
    let mut bytes = std::fs::read(&cfg.path).unwrap();
    let len_before = bytes.len();
    bytes.extend_from_slice(br#"{"v":1,"seq":12,"time":"2025-"#);
    std::fs::write(&cfg.path, &bytes).unwrap();
    assert_eq!(failure(&files(&cfg)).problem, Problem::Truncated);
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.close().await;
    task.wait().await.unwrap();
    let text = std::fs::read_to_string(&cfg.path).unwrap();
    let repaired: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let start = &repaired[repaired.len() - 2];
    assert_eq!(start["unclean_previous_stop"], true);
    assert_eq!(start["torn_tail"]["offset"], len_before as u64);
    assert_eq!(start["torn_tail"]["length"], 29);
    assert_eq!(
        start["torn_tail"]["text"],
        r#"{"v":1,"seq":12,"time":"2025-"#
    );
    let report = verify(&files(&cfg));
    assert!(report.ok, "{report}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("removed an incomplete final line")),
        "{report}"
    );

    // A complete but damaged last record: refuse to start, naming the file.
    edit_lines(&cfg.path, |l| {
        let last = l.len() - 1;
        l[last] = l[last].replace("\"records\":", "\"records\":1");
    });
    let err = AuditLog::open(cfg.clone()).await.unwrap_err();
    assert!(matches!(err, AuditError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains(&cfg.path.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("hash mismatch"), "{err}");
}

#[tokio::test]
async fn resumes_from_the_newest_rotated_file_when_the_active_one_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.rotate_bytes = 2048;
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    for i in 0..20 {
        log.write(outcome(i)).await.unwrap();
    }
    log.close().await;
    task.wait().await.unwrap();
    // As after a crash between the rename and the creation of the new file.
    let fs = files(&cfg);
    let first = records(&[cfg.path.clone()])[0]["seq"].as_u64().unwrap();
    let rotated_to = dir.path().join(format!("audit-{first:012}.jsonl"));
    std::fs::rename(&cfg.path, &rotated_to).unwrap();
    assert_eq!(files(&cfg).last(), Some(&rotated_to));
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.close().await;
    task.wait().await.unwrap();
    let before = records(&[rotated_to]);
    let active = records(&[cfg.path.clone()]);
    assert_eq!(active[0]["prev"], before.last().unwrap()["hash"]);
    assert_eq!(active[0]["unclean_previous_stop"], false);
    let all = files(&cfg);
    assert_eq!(all.len(), fs.len() + 1);
    assert!(verify(&all).ok);
}

#[tokio::test]
async fn open_fails_clearly_when_the_log_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("plain-file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let err = AuditLog::open(config(&not_a_dir)).await.unwrap_err();
    assert!(matches!(err, AuditError::Io { .. }), "{err}");
    assert!(err.to_string().contains("plain-file"), "{err}");

    let err = AuditLog::open(config(&dir.path().join("missing")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");

    // A device that is always full: the start record cannot be written.
    if Path::new("/dev/full").exists() {
        let mut cfg = config(dir.path());
        cfg.path = "/dev/full".into();
        let err = AuditLog::open(cfg).await.unwrap_err();
        assert!(matches!(err, AuditError::WriteFailed { .. }), "{err}");
        assert!(err.to_string().contains("/dev/full"), "{err}");
        assert!(err.to_string().to_lowercase().contains("no space"), "{err}");
    }

    let mut cfg = config(dir.path());
    cfg.hmac_key = b"short".to_vec();
    assert!(matches!(
        AuditLog::open(cfg).await,
        Err(AuditError::Config(_))
    ));
    let mut cfg = config(dir.path());
    cfg.rotated_name = "{stem}.old".into();
    assert!(matches!(
        AuditLog::open(cfg).await,
        Err(AuditError::Config(_))
    ));
}

/// Polls `health()` until the log is healthy again (the retry comes within 5 s).
async fn wait_healthy(log: &AuditLog) {
    for _ in 0..1000 {
        if log.health().is_healthy() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the audit log did not recover: {}", log.health());
}

/// Waits until `done` holds, checking every millisecond; fails after 10 s.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let polled = tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    assert!(polled.await.is_ok(), "not within 10 s: {what}");
}

/// Closes the log, checks that its files verify, and returns their records.
async fn close_and_verify(log: AuditLog, task: AuditTask, cfg: &AuditConfig) -> Vec<Value> {
    log.close().await;
    task.wait().await.unwrap();
    let report = verify(&files(cfg));
    assert!(report.ok, "{report}");
    records(&files(cfg))
}

/// The request ids of the records that have one, in order.
fn request_ids(recs: &[Value]) -> Vec<&str> {
    recs.iter()
        .filter_map(|r| r["request_id"].as_str())
        .collect()
}

#[tokio::test]
async fn write_and_fsync_failures_are_reported_rolled_back_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.write_durable(decision(1)).await.unwrap();

    // A write that fails half-way (e.g. disk full).
    log.faults()
        .fail_write
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let err = log.write_durable(decision(2)).await.unwrap_err();
    assert!(matches!(err, AuditError::WriteFailed { .. }), "{err}");
    assert!(err.to_string().contains("injected write failure"), "{err}");
    let source = std::error::Error::source(&err).expect("the io error is the source");
    assert!(source.is::<std::io::Error>(), "{source:?}");
    assert_eq!(log.failures(), 1);
    assert!(!log.health().is_healthy());
    assert!(log.refuses(true) && !log.refuses(false));
    assert!(verify(&files(&cfg)).ok, "the partial write must be cut off");

    // During the back-off a durable write is refused at once, without an attempt.
    let err = log.write_durable(decision(3)).await.unwrap_err();
    assert!(matches!(err, AuditError::Unavailable { .. }), "{err}");
    assert_eq!(log.failures(), 1);
    // The retry (a checkpoint as probe) succeeds: healthy again.
    wait_healthy(&log).await;

    // Bytes written but the fsync fails: rolled back too.
    log.faults()
        .fail_sync
        .store(1, std::sync::atomic::Ordering::SeqCst);
    assert!(log.write_durable(decision(3)).await.is_err());
    assert_eq!(log.failures(), 2);
    wait_healthy(&log).await;

    // A queued record hit by a failure is retried, not lost.
    log.faults()
        .fail_sync
        .store(1, std::sync::atomic::Ordering::SeqCst);
    log.write(outcome(4)).await.unwrap();
    let _ = log.flush().await;
    log.flush().await.unwrap();

    // The writer recovered: later writes succeed.
    log.write_durable(decision(5)).await.unwrap();
    let recs = close_and_verify(log, task, &cfg).await;
    assert_eq!(request_ids(&recs), ["req-1", "req-4", "req-5"]);
    assert_eq!(recs.last().unwrap()["failures"], 3);
}

#[tokio::test]
async fn rotation_into_a_vanished_directory_fails_the_write_then_recovers() {
    let root = tempfile::tempdir().unwrap();
    let logdir = root.path().join("log");
    std::fs::create_dir(&logdir).unwrap();
    let mut cfg = config(&logdir);
    cfg.rotate_bytes = 1500;
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.write_durable(decision(0)).await.unwrap();

    // The directory is replaced by a plain file: the rename at rotation fails for real.
    let aside = root.path().join("aside");
    std::fs::rename(&logdir, &aside).unwrap();
    std::fs::write(&logdir, b"not a directory").unwrap();
    let mut failed = None;
    for i in 1..20 {
        if let Err(e) = log.write_durable(decision(i)).await {
            failed = Some(e);
            break;
        }
    }
    let err = failed.expect("a write must have failed");
    assert!(matches!(err, AuditError::WriteFailed { .. }), "{err}");
    assert!(log.failures() >= 1);

    std::fs::remove_file(&logdir).unwrap();
    std::fs::rename(&aside, &logdir).unwrap();
    wait_healthy(&log).await;
    log.write_durable(decision(99)).await.unwrap();
    log.close().await;
    task.wait().await.unwrap();
    let report = verify(&files(&cfg));
    assert!(report.ok, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_writes_everything_in_one_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    let mut handles = Vec::new();
    for t in 0..8 {
        let log = log.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..1250 {
                log.write(outcome(t * 1250 + i)).await.unwrap();
            }
        }));
    }
    // Durable writers at the same time share fsyncs.
    for t in 0..64 {
        let log = log.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..10 {
                log.write_durable(decision(100_000 + t * 10 + i))
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let commits = log.commits();
    log.close().await;
    task.wait().await.unwrap();
    let fs = files(&cfg);
    let report = verify(&fs);
    assert!(report.ok, "{report}");
    let recs = records(&fs);
    let mut ids: Vec<String> = recs
        .iter()
        .filter_map(|r| r["request_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 10_640);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10_640);
    let checkpoints = kinds(&recs).iter().filter(|k| **k == "checkpoint").count();
    assert_eq!(checkpoints, 10, "one per 1000 records");
    assert!(
        commits < 10_640,
        "records must share fsyncs ({commits} commits)"
    );
}

/// Runs `tasks` writers at once, each calling `write(log, task, i)` for `i` in `0..per_task`.
async fn write_concurrently<F, Fut>(log: &AuditLog, tasks: usize, per_task: usize, write: F)
where
    F: Fn(AuditLog, usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (log, write) = (log.clone(), write.clone());
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                write(log.clone(), t, i).await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_pressure_with_a_tiny_queue_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.queue_capacity = 2;
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    write_concurrently(&log, 4, 500, |log, t, i| async move {
        log.write(outcome(t * 500 + i)).await.unwrap();
    })
    .await;
    log.close().await;
    task.wait().await.unwrap();
    let recs = records(&files(&cfg));
    assert_eq!(recs.iter().filter(|r| r["kind"] == "outcome").count(), 2000);
    assert!(verify(&files(&cfg)).ok);
}

#[tokio::test]
async fn writes_after_close_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, task) = AuditLog::open(config(dir.path())).await.unwrap();
    let other = log.clone();
    log.close().await;
    task.wait().await.unwrap();
    assert!(matches!(
        other.write(decision(1)).await,
        Err(AuditError::Closed)
    ));
    assert!(matches!(
        other.write_durable(decision(1)).await,
        Err(AuditError::Closed)
    ));
    assert!(matches!(
        other.write_committed(outcome(1)).await,
        Err(AuditError::Closed)
    ));
}

#[tokio::test]
async fn checkpoints_are_written_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.checkpoint_every = Duration::from_millis(50);
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let recs = records(&files(&cfg));
    let n = kinds(&recs).iter().filter(|k| **k == "checkpoint").count();
    assert!(n >= 2, "{n} checkpoints");
    let report = verify(&files(&cfg));
    assert!(report.ok);
    assert_eq!(
        report.last_checkpoint.as_deref(),
        recs.last().unwrap()["time"].as_str()
    );
    assert!(
        report
            .notes
            .last()
            .unwrap()
            .contains("last checkpoint at 20"),
        "{report}"
    );
    log.close().await;
    task.wait().await.unwrap();
}

#[tokio::test]
async fn secrets_only_appear_as_keyed_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    let session_token = "52b5b0a1-6d1c-4e2a-9e40-7c4f7c6e1a11";
    let ticket_jwt = "eyJhbGciOiJFUzI1NiJ9.eyJjaGciOiJDSEcwMDEyMzQ1In0.c2lnbmF0dXJl";
    let mut c = call(1);
    c.session = Some(log.keyed_hash(session_token.as_bytes()));
    c.ticket = Some(
        log.redactor()
            .ticket("CHG0012345", TicketKind::Signed, ticket_jwt.as_bytes()),
    );
    log.write_durable(AuditEvent::Decision(c)).await.unwrap();
    log.close().await;
    task.wait().await.unwrap();

    let text = std::fs::read_to_string(&cfg.path).unwrap();
    assert!(!text.contains(session_token));
    assert!(!text.contains(ticket_jwt));
    assert!(!text.contains("eyJ"));
    let recs = records(&files(&cfg));
    let d = &recs[1];
    assert_eq!(d["session"].as_str().unwrap().len(), 32);
    assert_eq!(d["ticket"]["id"], "CHG0012345");
    assert_eq!(d["ticket"]["kind"], "signed");

    let other = Redactor::new(b"another-key-0123456789").unwrap();
    assert_ne!(
        d["session"].as_str().unwrap(),
        other.hex(session_token.as_bytes())
    );
    assert_eq!(
        d["session"].as_str().unwrap(),
        Redactor::new(KEY).unwrap().hex(session_token.as_bytes())
    );
}

/// A log with varied records for the review functions.
async fn review_log(dir: &Path) -> AuditConfig {
    let cfg = config(dir);
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    let mut alice = call(0);
    alice.decision = Some(Verdict::Allow);
    alice.reason = None;
    alice.mo_id = Some("host-42".into());
    alice.ticket = Some(TicketRef {
        id: "CHG0012345".into(),
        kind: TicketKind::Pattern,
        hash: None,
    });
    log.write_durable(AuditEvent::Decision(alice.clone()))
        .await
        .unwrap();
    log.write(AuditEvent::Outcome(OutcomeRecord {
        call: alice.clone(),
        status: Some(200),
        task: Some("task-77".into()),
        ..OutcomeRecord::default()
    }))
    .await
    .unwrap();
    let mut bob = call(1);
    bob.decision = Some(Verdict::Deny);
    bob.reason = Some("no change ticket for a host in maintenance-sensitive cluster prod-east; attach X-Change-Ticket".into());
    log.write_durable(AuditEvent::Decision(bob)).await.unwrap();
    let mut carol = call(2);
    carol.principal = Some("VSPHERE.LOCAL\\carol\u{1b}[31m".into());
    carol.method = Some("ChangeLockdownMode".into());
    carol.mo_id = Some("ha-host-access-manager".into());
    carol.monitor = vec!["lockdown-dry-run".into()];
    carol.reason = None;
    carol.decision = Some(Verdict::Allow);
    log.write_durable(AuditEvent::Decision(carol))
        .await
        .unwrap();
    log.write(AuditEvent::Reload(ReloadRecord {
        ok: false,
        old_hash: Some("aa".repeat(32)),
        new_hash: Some("bb".repeat(32)),
        errors: vec!["policies/hosts.cedar:3: unknown attribute `tiket`".into()],
        ..ReloadRecord::default()
    }))
    .await
    .unwrap();
    log.close().await;
    task.wait().await.unwrap();
    cfg
}

fn run_query(files: &[PathBuf], filter: &QueryFilter, json: bool) -> (u64, String) {
    let mut out = Vec::new();
    let n = query(files, filter, &mut out, json).unwrap();
    (n, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn query_filters_and_table() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = review_log(dir.path()).await;
    let fs = files(&cfg);

    let (n, table) = run_query(&fs, &QueryFilter::default(), false);
    assert_eq!(n, 7);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("TIME (UTC)"), "{table}");
    assert_eq!(lines.len(), 8);
    assert!(lines[2].contains("decision    allow"), "{table}");
    assert!(lines[2].contains("CHG0012345"), "{table}");
    assert!(lines[3].contains("task task-77"), "{table}");
    assert!(lines[3].contains(" 200 "), "{table}");
    assert!(lines[4].contains("deny"), "{table}");
    assert!(lines[4].ends_with('…'), "long reasons are cut: {table}");
    assert!(lines[5].contains("would_deny"), "{table}");
    assert!(
        !table.contains('\u{1b}'),
        "control characters must not reach the terminal"
    );
    assert!(
        lines[6].contains("rejected: policies/hosts.cedar:3"),
        "{table}"
    );
    // Fixed-width columns: the KIND column starts at the same offset everywhere.
    let kind_at = lines[0].find("KIND").unwrap();
    for l in &lines[1..] {
        assert_eq!(l.chars().nth(kind_at - 2), Some(' '), "{l}");
        assert_ne!(l.chars().nth(kind_at), Some(' '), "{l}");
    }

    let q = |f: QueryFilter| run_query(&fs, &f, true);
    let (n, json) = q(QueryFilter {
        user: Some("ALICE".into()),
        ..QueryFilter::default()
    });
    assert_eq!(n, 2, "{json}");
    for l in json.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["principal"], "VSPHERE.LOCAL\\alice");
    }
    let (n, _) = q(QueryFilter {
        decision: Some(DecisionFilter::Deny),
        ..QueryFilter::default()
    });
    assert_eq!(n, 1);
    let (n, json) = q(QueryFilter {
        decision: Some("would-deny".parse().unwrap()),
        ..QueryFilter::default()
    });
    assert_eq!(n, 1);
    assert!(json.contains("lockdown-dry-run"));
    let (n, _) = q(QueryFilter {
        decision: Some(DecisionFilter::Allow),
        ..QueryFilter::default()
    });
    assert_eq!(
        n, 3,
        "allow includes would-deny and outcomes carrying the decision"
    );
    let (n, _) = q(QueryFilter {
        method: Some("changelockdownmode".into()),
        ..QueryFilter::default()
    });
    assert_eq!(n, 1);
    let (n, _) = q(QueryFilter {
        host: Some("host-42".into()),
        ..QueryFilter::default()
    });
    assert_eq!(n, 2);
    let (n, _) = q(QueryFilter {
        ticket: Some("CHG0012345".into()),
        host: Some("host-42".into()),
        decision: Some(DecisionFilter::Allow),
        ..QueryFilter::default()
    });
    assert_eq!(n, 2);
    let (n, _) = q(QueryFilter {
        ticket: Some("CHG0099999".into()),
        ..QueryFilter::default()
    });
    assert_eq!(n, 0);

    // Time windows.
    let recs = records(&fs);
    let t3 = recs[3]["time"].as_str().unwrap();
    let (n, _) = q(QueryFilter {
        since: Some(parse_time(t3).unwrap()),
        ..QueryFilter::default()
    });
    assert_eq!(n, 4);
    let (n, _) = q(QueryFilter {
        until: Some(parse_time(t3).unwrap()),
        ..QueryFilter::default()
    });
    assert_eq!(n, 3);
    let (n, _) = q(QueryFilter {
        since: Some(parse_time("2000-01-01T00:00:00+02:00").unwrap()),
        until: Some(parse_time("2000-01-02T00:00:00Z").unwrap()),
        ..QueryFilter::default()
    });
    assert_eq!(n, 0);
    assert!(matches!(parse_time("yesterday"), Err(AuditError::Time(_))));
    assert!("maybe".parse::<DecisionFilter>().is_err());
}

/// A `Write` whose bytes can be read while another future holds it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn tail_prints_the_last_records_and_follows_across_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = review_log(dir.path()).await;

    let mut out = Vec::new();
    tail(&cfg.path, 3, false, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[1].contains("would_deny"));
    assert!(lines[3].contains("stop"));

    let mut cfg = cfg;
    cfg.rotate_bytes = 12_000;
    let sink = Shared::default();
    let mut writer_out = sink.clone();
    let follow = tail(&cfg.path, 1, true, &mut writer_out);
    let produce = async {
        let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
        for i in 0..45 {
            log.write_durable(decision(500 + i)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        log.close().await;
        task.wait().await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
    };
    tokio::select! {
        r = follow => panic!("tail ended: {r:?}"),
        () = produce => {}
    }
    assert!(
        files(&cfg).len() > 2,
        "the test must rotate while following"
    );
    let text = sink.text();
    for i in 0..45 {
        assert!(
            text.contains(&format!("host-{}", (500 + i) % 7)),
            "missing record {i}: {text}"
        );
    }
    let decisions = text.lines().filter(|l| l.contains(" decision ")).count();
    assert_eq!(decisions, 45, "{text}");
    assert!(
        text.lines().filter(|l| l.contains(" start ")).count() == 1,
        "{text}"
    );
    assert!(text.lines().last().unwrap().contains(" stop "), "{text}");
    assert!(!text.contains("not shown"), "{text}");
}

#[tokio::test]
async fn records_are_forwarded_to_syslog() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.syslog = Some(SyslogConfig::new(
        listener.local_addr().unwrap().to_string(),
    ));
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.write_durable(decision(5)).await.unwrap();
    let (sock, _) = listener.accept().await.unwrap();
    let mut r = BufReader::new(sock);
    let mut frames = Vec::new();
    for _ in 0..2 {
        let mut len = Vec::new();
        r.read_until(b' ', &mut len).await.unwrap();
        let n: usize = std::str::from_utf8(&len[..len.len() - 1])
            .unwrap()
            .parse()
            .unwrap();
        let mut msg = vec![0; n];
        r.read_exact(&mut msg).await.unwrap();
        frames.push(String::from_utf8(msg).unwrap());
    }
    let recs = records(&files(&cfg));
    assert!(
        frames[0].contains(" start - {\"v\":1,\"seq\":1,"),
        "{}",
        frames[0]
    );
    assert!(
        frames[1].starts_with("<109>1 "),
        "deny is a notice: {}",
        frames[1]
    );
    let json = frames[1].split_once(" decision - ").unwrap().1;
    assert_eq!(serde_json::from_str::<Value>(json).unwrap(), recs[1]);
    assert_eq!(log.syslog_dropped(), 0);
    log.close().await;
    task.wait().await.unwrap();
}

/// Realistic variety for the large-log measurement: 50 users, 500 hosts, tickets on a
/// third of the calls, 2% denials, 1% would-deny.
fn varied(i: usize) -> AuditEvent {
    let mut c = call(i);
    c.request_id = format!("{:016x}-{i}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    c.principal = Some(format!("VSPHERE.LOCAL\\user{:02}", i % 50));
    c.mo_id = Some(format!("host-{}", (i * 7919) % 500));
    c.session = Some(KeyedHash::from_hex(format!("{:032x}", i % 4000)));
    c.ticket = i.is_multiple_of(3).then(|| TicketRef {
        id: format!("CHG{:07}", i % 20_000),
        kind: TicketKind::Signed,
        hash: Some(KeyedHash::from_hex(format!("{:032x}", i))),
    });
    c.decision = Some(if i.is_multiple_of(50) {
        Verdict::Deny
    } else {
        Verdict::Allow
    });
    c.reason = i
        .is_multiple_of(50)
        .then(|| "hosts in cluster prod need a signed change ticket".into());
    c.monitor = if i % 100 == 2 {
        vec!["lockdown-dry-run".into()]
    } else {
        vec![]
    };
    if i.is_multiple_of(2) {
        AuditEvent::Decision(c)
    } else {
        c.method = Some("RetrievePropertiesEx".into());
        c.decision = None;
        AuditEvent::Outcome(OutcomeRecord {
            call: c,
            status: Some(200),
            task: None,
            bytes_in: Some(700),
            bytes_out: Some(18_000),
            latency_ms: Some((i % 90) as u64),
            ..OutcomeRecord::default()
        })
    }
}

/// Generates a 1 GiB log (once) and prints how long `verify` and `query` take on it.
/// `AUDIT_BIG_DIR=/path cargo test --release --lib query_speed -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes 1 GiB; a measurement, not a test"]
async fn query_speed_on_a_1gib_log() {
    let dir = std::env::var_os("AUDIT_BIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("vcguard-audit-1gib"));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = config(&dir);
    let size =
        |fs: &[PathBuf]| -> u64 { fs.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum() };
    if size(&files(&cfg)) < 1 << 30 {
        let started = std::time::Instant::now();
        let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
        let mut written = 0;
        while size(&files(&cfg)) < 1 << 30 {
            let mut hs = Vec::new();
            for t in 0..4 {
                let log = log.clone();
                hs.push(tokio::spawn(async move {
                    for i in 0..25_000 {
                        log.write(varied(written + t * 25_000 + i)).await.unwrap();
                    }
                }));
            }
            for h in hs {
                h.await.unwrap();
            }
            written += 100_000;
            log.flush().await.unwrap();
        }
        log.close().await;
        task.wait().await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "generated {written} records in {secs:.1} s ({:.0} records/s)",
            written as f64 / secs
        );
    }
    let fs = files(&cfg);
    println!("{} files, {} bytes", fs.len(), size(&fs));
    let t = std::time::Instant::now();
    let report = verify(&fs);
    println!(
        "verify: {} in {:.2} s",
        report.summary(),
        t.elapsed().as_secs_f64()
    );
    let cases: Vec<(&str, QueryFilter, bool)> = vec![
        ("no filter, table", QueryFilter::default(), false),
        ("no filter, json", QueryFilter::default(), true),
        (
            "--user user07",
            QueryFilter {
                user: Some("user07".into()),
                ..QueryFilter::default()
            },
            false,
        ),
        (
            "--host host-42",
            QueryFilter {
                host: Some("host-42".into()),
                ..QueryFilter::default()
            },
            false,
        ),
        (
            "--decision deny",
            QueryFilter {
                decision: Some(DecisionFilter::Deny),
                ..QueryFilter::default()
            },
            false,
        ),
        (
            "--decision would-deny",
            QueryFilter {
                decision: Some(DecisionFilter::WouldDeny),
                ..QueryFilter::default()
            },
            false,
        ),
        (
            "--ticket CHG0000042",
            QueryFilter {
                ticket: Some("CHG0000042".into()),
                ..QueryFilter::default()
            },
            false,
        ),
        (
            "--method EnterMaintenanceMode_Task --user USER1",
            QueryFilter {
                method: Some("EnterMaintenanceMode_Task".into()),
                user: Some("USER1".into()),
                ..QueryFilter::default()
            },
            false,
        ),
        (
            "--since (no record matches)",
            QueryFilter {
                since: Some(parse_time("2999-01-01T00:00:00Z").unwrap()),
                ..QueryFilter::default()
            },
            false,
        ),
    ];
    for (name, filter, json) in cases {
        let t = std::time::Instant::now();
        let n = query(&fs, &filter, &mut std::io::sink(), json).unwrap();
        println!(
            "query {name}: {n} records in {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
}

/// Reads the active file until it holds `n` records or two seconds pass.
async fn wait_for_records(cfg: &AuditConfig, n: usize) -> usize {
    for _ in 0..200 {
        let count = records(&files(cfg)).len();
        if count >= n {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    records(&files(cfg)).len()
}

#[tokio::test]
async fn queued_records_are_written_at_once_and_fsynced_within_the_sync_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.sync_every = Duration::from_millis(300);
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    let after_open = log.commits();
    for i in 0..50 {
        log.write(outcome(i)).await.unwrap();
    }
    // start + 50 outcomes are readable (in the OS) before any fsync covers them.
    assert_eq!(wait_for_records(&cfg, 51).await, 51);
    assert_eq!(log.commits(), after_open, "outcome batches must not fsync");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        log.commits(),
        after_open + 1,
        "one fsync covers the pending records"
    );
    // A durable record is fsynced before write_durable returns, whatever the interval.
    log.write_durable(decision(99)).await.unwrap();
    assert_eq!(log.commits(), after_open + 2);
    log.close().await;
    task.wait().await.unwrap();
    assert!(verify(&files(&cfg)).ok);
}

#[tokio::test]
async fn sync_interval_zero_fsyncs_every_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.sync_every = Duration::ZERO;
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    let after_open = log.commits();
    log.write(outcome(1)).await.unwrap();
    log.flush().await.unwrap();
    assert!(log.commits() > after_open);
    log.close().await;
    task.wait().await.unwrap();
}

/// Every record of the log found from the active file, across all its files.
fn set_records(cfg: &AuditConfig) -> Vec<Value> {
    records(&log_set(&cfg.path).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_committed_is_in_the_file_when_it_returns_and_shares_writes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    let after_open = log.commits();
    let r = log.write_committed(outcome(0)).await.unwrap();
    // Handed to the OS: readable at once, no fsync.
    let text = std::fs::read_to_string(&cfg.path).unwrap();
    assert!(text.contains(&r.hash), "the record is in the file");
    assert_eq!(log.commits(), after_open, "write_committed does not fsync");

    let mut handles = Vec::new();
    for t in 0..16 {
        let log = log.clone();
        handles.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..100 {
                seqs.push(
                    log.write_committed(outcome(1000 + t * 100 + i))
                        .await
                        .unwrap()
                        .seq,
                );
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for h in handles {
        seqs.extend(h.await.unwrap());
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 1600, "every caller got its own record");
    log.close().await;
    task.wait().await.unwrap();
    let report = verify(&files(&cfg));
    assert!(report.ok, "{report}");
}

#[tokio::test]
async fn committed_on_the_callers_thread_then_fsynced_within_the_sync_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.sync_every = Duration::from_millis(300);
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    let after_open = log.commits();
    let before = set_records(&cfg).len();
    let first = log.write_committed(outcome(0)).await.unwrap().seq;
    for i in 1..20 {
        let r = log.write_committed(outcome(i)).await.unwrap();
        assert_eq!(r.seq, first + i as u64, "one chain, in order");
        assert_eq!(
            set_records(&cfg).len(),
            before + i + 1,
            "in the file on return"
        );
    }
    assert_eq!(log.commits(), after_open, "no fsync per record");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        log.commits(),
        after_open + 1,
        "one fsync covers them in time"
    );
    close_and_verify(log, task, &cfg).await;
}

#[tokio::test]
async fn committed_records_notice_a_deleted_file_once_the_last_check_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.write_committed(outcome(1)).await.unwrap();
    std::fs::remove_file(&cfg.path).unwrap();
    tokio::time::sleep(super::file::RECENT_CHECK * 5).await;
    let after = log.write_committed(outcome(2)).await.unwrap();
    log.close().await;
    task.wait().await.unwrap();
    let active = records(std::slice::from_ref(&cfg.path));
    assert_eq!(active[0]["kind"], "reopen");
    assert_eq!(active[0]["reason"], "deleted");
    assert!(
        active.iter().any(|r| r["seq"] == after.seq),
        "the record after the stale check went to the new file"
    );
}

#[tokio::test]
async fn callers_commit_while_the_periodic_fsync_runs() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.sync_every = Duration::from_millis(50);
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.faults().slow_sync_ms.store(1500, SeqCst);
    let fsyncs = log.commits();
    log.write_committed(outcome(1)).await.unwrap();
    // The fsync due 50 ms after that record is under way for the next 1.5 s.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let during = log.write_committed(outcome(2)).await.unwrap();
    assert_eq!(
        log.commits(),
        fsyncs,
        "the record was written while the fsync still ran"
    );
    assert_eq!(set_records(&cfg).last().unwrap()["seq"], during.seq);
    log.faults().slow_sync_ms.store(0, SeqCst);
    eventually(
        "the record written during the fsync gets one of its own",
        || log.commits() >= fsyncs + 2,
    )
    .await;
    close_and_verify(log, task, &cfg).await;
}

#[tokio::test]
async fn a_failed_periodic_fsync_is_reported_and_recovered_from() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.sync_every = Duration::from_millis(50);
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.faults()
        .fail_sync
        .store(1, std::sync::atomic::Ordering::SeqCst);
    log.write_committed(outcome(1)).await.unwrap();
    eventually("the periodic fsync ran and failed", || {
        !log.health().is_healthy()
    })
    .await;
    assert_eq!(log.failures(), 1);
    wait_healthy(&log).await;
    log.write_committed(outcome(2)).await.unwrap();
    let recs = close_and_verify(log, task, &cfg).await;
    assert_eq!(request_ids(&recs), ["req-1", "req-2"]);
}

#[tokio::test]
async fn a_committed_record_whose_write_fails_is_retried_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    let first = log.write_committed(outcome(1)).await.unwrap();
    log.faults()
        .fail_write
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let r = log.write_committed(outcome(2)).await.unwrap();
    assert_eq!(
        r.seq,
        first.seq + 1,
        "the half-written attempt left no trace in the chain"
    );
    assert_eq!(log.failures(), 1, "the failed attempt is counted");
    let recs = close_and_verify(log, task, &cfg).await;
    assert_eq!(request_ids(&recs), ["req-1", "req-2"]);
}

#[tokio::test]
async fn committed_records_of_one_turn_share_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.write_committed(outcome(0)).await.unwrap();
    let before = log.writes();
    // Eight calls in progress on this (current-thread) runtime's thread are answered in the same
    // turn of its tasks, each staging its record when it runs.
    let in_progress: Vec<_> = (1..=8).map(|_| log.call_in_progress()).collect();
    let calls: Vec<_> = (1..=8)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.write_committed(outcome(i)).await.unwrap().seq })
        })
        .collect();
    let mut written = Vec::new();
    for call in calls {
        written.push(call.await.unwrap());
    }
    drop(in_progress);
    assert_eq!(
        log.writes() - before,
        1,
        "one write(2) for the turn's eight records"
    );
    let first = written[0];
    assert_eq!(
        written,
        (first..first + 8).collect::<Vec<_>>(),
        "in the order they were staged"
    );
    let recs = close_and_verify(log, task, &cfg).await;
    let ids: Vec<String> = (0..=8).map(|i| format!("req-{i}")).collect();
    assert_eq!(request_ids(&recs), ids);
}

#[tokio::test]
async fn a_call_alone_on_its_thread_writes_at_once_and_one_in_company_waits_for_its_turn() {
    use futures_util::FutureExt as _;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    let alone = log.call_in_progress();
    let written = log.write_committed(outcome(1)).now_or_never();
    assert!(
        matches!(written, Some(Ok(_))),
        "alone on its thread: written on the first poll"
    );
    let other = log.call_in_progress();
    let before = log.writes();
    let mut waiting = Box::pin(log.write_committed(outcome(2)));
    assert!(
        (&mut waiting).now_or_never().is_none(),
        "with another call in progress it lets the turn end first"
    );
    assert_eq!(log.writes(), before, "not written before its turn ends");
    waiting.await.unwrap();
    assert_eq!(log.writes(), before + 1);
    drop((alone, other));
    let recs = close_and_verify(log, task, &cfg).await;
    assert_eq!(request_ids(&recs), ["req-1", "req-2"]);
}

#[tokio::test]
async fn a_shared_write_that_fails_loses_none_of_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.faults()
        .fail_write
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let results =
        futures_util::future::join_all((1..=3).map(|i| log.write_committed(outcome(i)))).await;
    for result in results {
        result.expect("retried by the writer task and written");
    }
    assert_eq!(log.failures(), 1, "the failed attempt is counted");
    let recs = close_and_verify(log, task, &cfg).await;
    assert_eq!(request_ids(&recs), ["req-1", "req-2", "req-3"]);
}

#[tokio::test]
async fn a_caller_gone_before_its_turn_ends_still_writes_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    let staged = log.write_committed(outcome(1));
    // Staged, never polled: dropping it writes the slot, so the record does not wait for
    // another call on this thread.
    drop(staged);
    let in_file = std::fs::read_to_string(&cfg.path).unwrap();
    assert!(
        in_file.contains("req-1"),
        "the dropped caller's record is in the file"
    );
    let recs = close_and_verify(log, task, &cfg).await;
    assert_eq!(request_ids(&recs), ["req-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn committed_records_rotate_with_queued_ones_in_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.rotate_bytes = 4096;
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    write_concurrently(&log, 4, 50, |log, t, i| async move {
        let n = 1000 + t * 100 + i;
        if t % 2 == 0 {
            log.write_committed(outcome(n)).await.unwrap();
        } else {
            log.write(outcome(n)).await.unwrap();
        }
    })
    .await;
    let recs = close_and_verify(log, task, &cfg).await;
    let fs = files(&cfg);
    assert!(fs.len() >= 5, "{fs:?}");
    let outcomes = recs.iter().filter(|r| r["kind"] == "outcome").count();
    assert_eq!(outcomes, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_backs_off_drops_at_once_when_full_and_records_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.queue_capacity = 8;
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.write_durable(decision(0)).await.unwrap();
    let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
    log.count_drops_in(counter.clone());

    // The disk fails until further notice.
    log.faults()
        .fail_write
        .store(u32::MAX, std::sync::atomic::Ordering::SeqCst);
    assert!(log.write_durable(decision(1)).await.is_err());
    let Health::Failing { reason, .. } = log.health() else {
        panic!("must be failing");
    };
    assert!(reason.contains("injected write failure"), "{reason}");

    // The queue fills, then writes fail at once instead of hanging.
    let hang_guard = Duration::from_secs(30);
    let mut queued = 0;
    let mut dropped = 0;
    for i in 0..40 {
        match tokio::time::timeout(hang_guard, log.write(outcome(100 + i)))
            .await
            .expect("write must not hang on a failing disk")
        {
            Ok(()) => queued += 1,
            Err(AuditError::Dropped { .. }) => dropped += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((queued, dropped), (8, 32));
    assert_eq!(log.dropped(), 32);
    assert_eq!(counter.get(), 32);
    // Back-off: attempts do not follow the callers' rate.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let attempts = log.failures();
    assert!(
        attempts < 10,
        "{attempts} attempts in 0.7 s: the writer must back off"
    );

    // Space returns: the backlog and one gap record are written without a restart.
    log.faults()
        .fail_write
        .store(0, std::sync::atomic::Ordering::SeqCst);
    wait_healthy(&log).await;
    log.write_durable(decision(2)).await.unwrap();
    log.close().await;
    task.wait().await.unwrap();
    let recs = set_records(&cfg);
    let outcomes = recs.iter().filter(|r| r["kind"] == "outcome").count();
    assert_eq!(outcomes, 8, "the queued records reach the file");
    let gaps: Vec<&Value> = recs.iter().filter(|r| r["kind"] == "gap").collect();
    assert_eq!(gaps.len(), 1, "one gap record");
    assert_eq!(gaps[0]["lost"], 32);
    assert!(gaps[0]["from"].as_str().unwrap() <= gaps[0]["until"].as_str().unwrap());
    let report = verify_set(&log_set(&cfg.path).unwrap());
    assert!(!report.ok);
    assert_eq!(report.breaks.len(), 1, "{report}");
    assert_eq!(report.breaks[0].problem, Problem::Dropped);
    assert!(
        report.to_string().contains("dropped 32 records"),
        "{report}"
    );
}

#[tokio::test]
async fn a_large_backlog_is_written_in_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.queue_capacity = 500;
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.faults()
        .fail_write
        .store(u32::MAX, std::sync::atomic::Ordering::SeqCst);
    assert!(log.write_durable(decision(0)).await.is_err());
    for i in 0..500 {
        log.write(outcome(i)).await.unwrap();
    }
    // Only a few pieces fit: the first two writes succeed, then the disk is full again.
    log.faults()
        .fail_write
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let before = log.commits();
    wait_healthy(&log).await;
    assert!(
        log.commits() - before > 5,
        "the backlog must go out in several fsynced pieces"
    );
    log.close().await;
    task.wait().await.unwrap();
    let recs = records(&files(&cfg));
    assert_eq!(recs.iter().filter(|r| r["kind"] == "outcome").count(), 500);
    assert!(verify(&files(&cfg)).ok);
}

#[tokio::test]
async fn a_renamed_active_file_continues_the_chain_in_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.write_durable(decision(1)).await.unwrap();
    let moved = dir.path().join("audit.jsonl.1");
    std::fs::rename(&cfg.path, &moved).unwrap();
    // SIGUSR1's path: reopen at once.
    assert!(log.reopen().await.unwrap(), "a new file is opened");
    assert!(!log.reopen().await.unwrap(), "nothing changed since");
    log.write_durable(decision(2)).await.unwrap();
    log.close().await;
    task.wait().await.unwrap();
    let active = records(std::slice::from_ref(&cfg.path));
    assert_eq!(active[0]["kind"], "reopen");
    assert_eq!(active[0]["reason"], "renamed");
    let old = records(std::slice::from_ref(&moved));
    assert_eq!(active[0]["prev"], old.last().unwrap()["hash"]);
    let set = log_set(&cfg.path).unwrap();
    assert_eq!(set, vec![moved, cfg.path.clone()]);
    let report = verify_set(&set);
    assert!(report.ok, "{report}");
    assert!(
        report.to_string().contains("found its active file renamed"),
        "{report}"
    );
}

#[tokio::test]
async fn a_deleted_or_truncated_active_file_is_noticed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.rotate_bytes = 4096;
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    for i in 0..12 {
        log.write_durable(decision(i)).await.unwrap();
    }
    // rm of the active file: the next write notices it.
    std::fs::remove_file(&cfg.path).unwrap();
    log.write_durable(decision(50)).await.unwrap();
    let active = records(std::slice::from_ref(&cfg.path));
    assert_eq!(active[0]["kind"], "reopen");
    assert_eq!(active[0]["reason"], "deleted");
    let report = verify_set(&log_set(dir.path()).unwrap());
    assert!(!report.ok);
    assert_eq!(report.breaks.len(), 1, "{report}");
    assert_eq!(report.breaks[0].problem, Problem::MissingFile, "{report}");
    assert!(
        report.to_string().contains("found its active file deleted"),
        "{report}"
    );
    // Truncation: the file is set aside and a new one started.
    log.write_durable(decision(51)).await.unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&cfg.path)
        .unwrap();
    f.set_len(10).unwrap();
    drop(f);
    log.write_durable(decision(52)).await.unwrap();
    let active = records(std::slice::from_ref(&cfg.path));
    assert_eq!(active[0]["kind"], "reopen");
    assert_eq!(active[0]["reason"], "truncated");
    assert_eq!(active[0]["found_bytes"], 10);
    log.close().await;
    task.wait().await.unwrap();

    let report = verify_set(&log_set(dir.path()).unwrap());
    assert!(!report.ok);
    let problems: Vec<Problem> = report.breaks.iter().map(|b| b.problem).collect();
    assert_eq!(problems, [Problem::MissingFile], "{report}");
    assert!(
        report
            .to_string()
            .contains("found its active file truncated"),
        "{report}"
    );
}

#[tokio::test]
async fn retention_removes_the_oldest_rotated_files_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.rotate_bytes = 2048;
    cfg.keep_files = 2;
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    for i in 0..60 {
        log.write_durable(decision(i)).await.unwrap();
    }
    log.close().await;
    task.wait().await.unwrap();
    let fs = files(&cfg);
    assert_eq!(fs.len(), 3, "two rotated files and the active one: {fs:?}");
    let recs = records(&fs);
    let retention: Vec<&Value> = recs.iter().filter(|r| r["kind"] == "retention").collect();
    assert!(!retention.is_empty());
    assert_eq!(retention[0]["keep_files"], 2);
    let report = verify_set(&log_set(&cfg.path).unwrap());
    assert!(report.ok, "{report}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("the chain starts at seq")),
        "{report}"
    );
}

#[tokio::test]
async fn rotation_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.rotate_every = Some(Duration::from_millis(300));
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.write_durable(decision(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    log.write_durable(decision(2)).await.unwrap();
    log.close().await;
    task.wait().await.unwrap();
    let fs = files(&cfg);
    assert_eq!(fs.len(), 2, "{fs:?}");
    assert!(verify(&fs).ok);
}

#[tokio::test]
async fn a_start_that_cannot_chain_says_so_and_verify_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_log(dir.path(), 3).await;
    // The active file was rotated away by hand and its end torn (e.g. a crashed copy).
    let moved = dir.path().join("audit.jsonl-20261130");
    std::fs::rename(&cfg.path, &moved).unwrap();
    let mut bytes = std::fs::read(&moved).unwrap();
    bytes.truncate(bytes.len() - 20);
    std::fs::write(&moved, &bytes).unwrap();
    let (log, task) = AuditLog::open(cfg.clone()).await.unwrap();
    log.close().await;
    task.wait().await.unwrap();
    let start = &records(std::slice::from_ref(&cfg.path))[0];
    assert_eq!(start["kind"], "start");
    assert!(
        start["chain_break"]["reason"]
            .as_str()
            .unwrap()
            .contains("incomplete"),
        "{start}"
    );
    assert_eq!(start["chain_break"]["file"], "audit.jsonl-20261130");
    assert_eq!(
        start["seq"], 8,
        "after the highest seq found (start, 3 pairs, stop torn)"
    );
    let report = verify_set(&log_set(&cfg.path).unwrap());
    let problems: Vec<Problem> = report.breaks.iter().map(|b| b.problem).collect();
    assert_eq!(
        problems,
        [Problem::Truncated, Problem::ChainBreak],
        "{report}"
    );
}
