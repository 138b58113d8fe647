//! Audit writer cost: records per second through the group-commit writer with `write`
//! (queued), `write_committed` (resolves after write(2)) and `write_durable` (after
//! fsync), from 1 and from 16 concurrent writers, on a temporary directory.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use vcguard::audit::{AuditConfig, AuditEvent, AuditLog, CallRecord, OutcomeRecord, Verdict};

const PRODUCERS: u64 = 4;
const BATCH: u64 = 10_000;

fn call(i: u64) -> CallRecord {
    CallRecord {
        request_id: format!("req-{i:016x}"),
        client: Some("10.20.30.40:51234".into()),
        protocol: Some("soap".into()),
        method: Some("EnterMaintenanceMode_Task".into()),
        mo_type: Some("HostSystem".into()),
        mo_id: Some(format!("host-{}", i % 500)),
        route: Some("/sdk".into()),
        principal: Some(format!("VSPHERE.LOCAL\\user{:02}", i % 50)),
        decision: Some(Verdict::Allow),
        policies: vec!["hosts-need-ticket".into()],
        policy_set: Some("9f2c4e1a".into()),
        ..CallRecord::default()
    }
}

fn outcome(i: u64) -> AuditEvent {
    AuditEvent::Outcome(OutcomeRecord {
        call: call(i),
        status: Some(200),
        task: Some(format!("task-{i}")),
        bytes_in: Some(700),
        bytes_out: Some(18_000),
        latency_ms: Some(12),
        ..OutcomeRecord::default()
    })
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = AuditConfig::new(
        dir.path().join("audit.jsonl"),
        b"bench-hmac-key-0123456789".to_vec(),
        "bench",
    );
    let (log, task) = rt.block_on(AuditLog::open(config)).expect("open audit log");

    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("write_10k_records_from_4_tasks_then_flush", |b| {
        b.iter(|| {
            rt.block_on(async {
                let producers: Vec<_> = (0..PRODUCERS)
                    .map(|p| {
                        let log = log.clone();
                        tokio::spawn(async move {
                            for i in 0..BATCH / PRODUCERS {
                                log.write(outcome(p * BATCH + i)).await.expect("write");
                            }
                        })
                    })
                    .collect();
                for producer in producers {
                    producer.await.expect("producer task");
                }
                log.flush().await.expect("flush");
            })
        })
    });

    group.throughput(Throughput::Elements(1));
    group.bench_function("write_durable_one_decision", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            let event = AuditEvent::Decision(call(i));
            black_box(
                rt.block_on(log.write_durable(event))
                    .expect("write_durable"),
            )
        })
    });

    // Records per second by mode and number of concurrent writers: each iteration writes
    // RECORDS_PER_ROUND records split across the writers, each waiting for its own.
    for writers in [1u64, 16] {
        for mode in [Mode::Queued, Mode::Committed, Mode::Durable] {
            let per_writer = mode.records(writers) / writers;
            group.throughput(Throughput::Elements(per_writer * writers));
            group.bench_function(format!("{}_{writers}_writers", mode.name()), |b| {
                b.iter(|| {
                    rt.block_on(async {
                        let tasks: Vec<_> = (0..writers)
                            .map(|w| {
                                let log = log.clone();
                                tokio::spawn(async move {
                                    for i in 0..per_writer {
                                        let event = outcome(w * 1_000_000 + i);
                                        match mode {
                                            Mode::Queued => log.write(event).await.map(|_| ()),
                                            Mode::Committed => {
                                                log.write_committed(event).await.map(|_| ())
                                            }
                                            Mode::Durable => {
                                                log.write_durable(event).await.map(|_| ())
                                            }
                                        }
                                        .expect("write");
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.expect("writer task");
                        }
                        if mode == Mode::Queued {
                            log.flush().await.expect("flush");
                        }
                    })
                })
            });
        }
    }
    group.finish();

    rt.block_on(async {
        log.close().await;
        task.wait().await.expect("writer task");
    });
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Queued,
    Committed,
    Durable,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Queued => "write",
            Mode::Committed => "write_committed",
            Mode::Durable => "write_durable",
        }
    }

    /// Records per iteration: fewer for fsync-bound modes so an iteration stays short.
    fn records(self, writers: u64) -> u64 {
        match self {
            Mode::Queued | Mode::Committed => 4_096,
            Mode::Durable => 64 * writers.min(4),
        }
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
}
