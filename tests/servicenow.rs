//! Change tickets checked in ServiceNow: real TLS to a stand-in instance speaking the Table API.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant, SystemTime};

use common::servicenow::{Behaviour, Change, StandIn, window};
use vcguard::ticket::{ChangeSystem, ChangeSystemConfig, ChangeVerdict};

const TOKEN: &str = "tok-3f9a1c-SECRET-bearer";
const PATTERN: &str = "^CHG[0-9]{7}$";

struct Setup {
    stand_in: StandIn,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Self {
        Self {
            stand_in: StandIn::start(&format!("Bearer {TOKEN}")).await,
            dir: tempfile::tempdir().expect("dir"),
        }
    }

    /// The `[ticket.change_system]` TOML for the stand-in, with `extra` keys.
    fn toml(&self, extra: &str) -> String {
        let token = self.dir.path().join("servicenow.token");
        std::fs::write(&token, format!("{TOKEN}\n")).expect("token");
        let ca = self.stand_in.write_ca(self.dir.path());
        format!(
            "kind = \"servicenow\"\nurl = \"{}\"\nca_file = {:?}\ntoken_file = {:?}\n{extra}\n",
            self.stand_in.url(),
            ca.display().to_string(),
            token.display().to_string(),
        )
    }

    fn system(&self, extra: &str) -> ChangeSystem {
        let config: ChangeSystemConfig = toml::from_str(&self.toml(extra)).expect("config");
        ChangeSystem::new(&config, Some(PATTERN)).expect("change system")
    }
}

fn token_path(setup: &Setup) -> String {
    setup
        .dir
        .path()
        .join("servicenow.token")
        .display()
        .to_string()
}

fn hosts(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

async fn check(system: &ChangeSystem, id: &str, host: &str) -> ChangeVerdict {
    system
        .check(
            id,
            &hosts(&[host]),
            "EnterMaintenanceMode_Task",
            SystemTime::now(),
        )
        .await
}

fn reason(verdict: &ChangeVerdict) -> &str {
    verdict.reason.as_deref().unwrap_or("")
}

#[tokio::test]
async fn only_changes_in_an_allowed_state_authorise() {
    let setup = Setup::new().await;
    let states = [
        (-5, "new"),
        (-4, "assess"),
        (-3, "authorize"),
        (-2, "scheduled"),
        (-1, "implement"),
        (0, "review"),
        (3, "closed"),
        (4, "canceled"),
    ];
    for (i, (code, _)) in states.iter().enumerate() {
        setup.stand_in.add(Change::new(
            &format!("CHG00000{i:02}"),
            *code,
            window(-3600, 3600),
            "esx-21",
        ));
    }
    let system = setup.system("");
    for (i, (_, name)) in states.iter().enumerate() {
        let id = format!("CHG00000{i:02}");
        let verdict = check(&system, &id, "esx-21").await;
        assert_eq!(verdict.change_state.as_deref(), Some(*name));
        assert_eq!(verdict.source, "servicenow");
        if *name == "implement" {
            assert!(verdict.authorises(), "{verdict:?}");
            assert_eq!(verdict.reason, None);
        } else {
            assert!(!verdict.verified && !verdict.authorises(), "{verdict:?}");
            assert_eq!(
                reason(&verdict),
                format!("{id} is in state {name}, not implement")
            );
        }
    }
    let review_too = setup.system("allowed_states = [\"implement\", \"review\"]");
    assert!(
        check(&review_too, "CHG0000005", "esx-21")
            .await
            .authorises()
    );
    assert!(
        setup
            .stand_in
            .accepts()
            .iter()
            .all(|a| a == "application/json"),
        "{:?}",
        setup.stand_in.accepts()
    );
}

#[tokio::test]
async fn now_must_be_inside_the_planned_window() {
    let setup = Setup::new().await;
    let past = window(-7200, -1800);
    let future = window(3600, 7200);
    setup
        .stand_in
        .add(Change::new("CHG0000001", -1, window(-60, 3600), "esx-21"));
    setup
        .stand_in
        .add(Change::new("CHG0000002", -1, past.clone(), "esx-21"));
    setup
        .stand_in
        .add(Change::new("CHG0000003", -1, future.clone(), "esx-21"));
    let system = setup.system("");
    let inside = check(&system, "CHG0000001", "esx-21").await;
    assert!(inside.authorises(), "{inside:?}");
    assert!(inside.window_start.is_some() && inside.window_end.is_some());

    let over = check(&system, "CHG0000002", "esx-21").await;
    assert!(!over.authorises());
    let ended = format!("window ends {} UTC", &past.1[..16]);
    assert!(
        reason(&over).starts_with("CHG0000002 is outside its planned window"),
        "{over:?}"
    );
    assert!(reason(&over).ends_with(&ended), "{over:?} vs {ended}");

    let early = check(&system, "CHG0000003", "esx-21").await;
    assert!(!early.authorises());
    let starts = format!("window starts {} UTC", &future.0[..16]);
    assert!(reason(&early).ends_with(&starts), "{early:?} vs {starts}");

    let lenient = setup.system("leeway_secs = 3600");
    assert!(check(&lenient, "CHG0000002", "esx-21").await.authorises());
    let unchecked = setup.system("check_window = false");
    assert!(check(&unchecked, "CHG0000003", "esx-21").await.authorises());
}

#[tokio::test]
async fn the_host_must_be_a_configuration_item() {
    let setup = Setup::new().await;
    let mut change = Change::new("CHG0012345", -1, window(-60, 3600), "esx-21");
    change.affected = vec!["esx-23.example.test".into()];
    setup.stand_in.add(change);
    let mut no_ci = Change::new("CHG0012346", -1, window(-60, 3600), "unused");
    no_ci.cmdb_ci = None;
    setup.stand_in.add(no_ci);
    let system = setup.system("");
    assert!(check(&system, "CHG0012345", "esx-21").await.authorises());
    assert!(
        check(&system, "CHG0012345", "esx-21.example.test")
            .await
            .authorises()
    );
    assert!(
        check(&system, "CHG0012345", "esx-23").await.authorises(),
        "affected CI from task_ci"
    );
    let other = check(&system, "CHG0012345", "esx-22").await;
    assert!(other.verified && !other.covers_target && !other.authorises());
    assert_eq!(
        reason(&other),
        "host esx-22 is not a configuration item of CHG0012345"
    );
    let none = check(&system, "CHG0012346", "esx-21").await;
    assert_eq!(
        reason(&none),
        "host esx-21 is not a configuration item of CHG0012346"
    );
    let unchecked = setup.system("check_hosts = false");
    assert!(check(&unchecked, "CHG0012346", "esx-22").await.authorises());
}

#[tokio::test]
async fn every_failure_refuses_with_the_reason() {
    let setup = Setup::new().await;
    setup
        .stand_in
        .add(Change::new("CHG0012345", -1, window(-60, 3600), "esx-21"));
    let twin = Change::new("CHG0099999", -1, window(-60, 3600), "esx-21");
    let mut second = twin.clone();
    second.sys_id = "0123456789abcdef0123456789abcdef".into();
    setup.stand_in.add(twin);
    setup.stand_in.add(second);
    let system = setup.system("timeout_secs = 1\nnegative_cache_ttl_secs = 0");

    let missing = check(&system, "CHG0000404", "esx-21").await;
    assert!(!missing.authorises());
    assert_eq!(
        reason(&missing),
        "CHG0000404 does not exist in the change system"
    );

    let two = check(&system, "CHG0099999", "esx-21").await;
    assert!(!two.authorises());
    assert_eq!(
        reason(&two),
        "2 change requests are numbered CHG0099999; the ticket is ambiguous"
    );

    setup.stand_in.set_behaviour(Behaviour::Status(500));
    let failed = check(&system, "CHG0012345", "esx-21").await;
    assert!(!failed.authorises() && !failed.verified);
    assert_eq!(
        reason(&failed),
        "change system answered 500 Internal Server Error: Internal server error"
    );

    setup.stand_in.set_behaviour(Behaviour::Garbage);
    let garbage = check(&system, "CHG0012345", "esx-21").await;
    assert!(!garbage.authorises());
    assert!(
        reason(&garbage).starts_with("change system sent an unusable answer: not JSON"),
        "{garbage:?}"
    );

    setup.stand_in.set_behaviour(Behaviour::Hang);
    let started = Instant::now();
    let hung = check(&system, "CHG0012345", "esx-21").await;
    assert!(!hung.authorises());
    assert_eq!(
        reason(&hung),
        "change system unreachable: no answer within 1 s"
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the timeout ended the hang"
    );

    setup.stand_in.set_behaviour(Behaviour::Normal);
    let wrong_token = {
        let config: ChangeSystemConfig = toml::from_str(&setup.toml("")).expect("config");
        let wrong = setup.dir.path().join("wrong.token");
        std::fs::write(&wrong, "not-the-token").expect("write");
        let config = ChangeSystemConfig {
            token_file: Some(wrong),
            ..config
        };
        ChangeSystem::new(&config, Some(PATTERN)).expect("system")
    };
    let unauthorised = check(&wrong_token, "CHG0012345", "esx-21").await;
    assert!(!unauthorised.authorises());
    assert_eq!(
        reason(&unauthorised),
        "change system answered 401 Unauthorized: User Not Authenticated"
    );

    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        port
    };
    let config: ChangeSystemConfig = toml::from_str(&setup.toml("")).expect("config");
    let config = ChangeSystemConfig {
        url: format!("https://127.0.0.1:{closed_port}"),
        ..config
    };
    let unreachable = ChangeSystem::new(&config, Some(PATTERN)).expect("system");
    let verdict = check(&unreachable, "CHG0012345", "esx-21").await;
    assert!(!verdict.authorises());
    assert!(
        reason(&verdict).starts_with("change system unreachable: "),
        "{verdict:?}"
    );
    assert_eq!(unreachable.health().reachable(), Some(false));
    assert!(
        unreachable
            .health()
            .detail()
            .contains("failing (1 look-up in a row)")
    );
    assert_eq!(system.metrics().lookups_with("timeout"), 1);
    assert_eq!(system.metrics().lookups_with("http_error"), 1);
    assert_eq!(system.metrics().lookups_with("malformed"), 1);
    assert_eq!(system.metrics().lookups_with("not_found"), 1);
    assert_eq!(system.metrics().lookups_with("ambiguous"), 1);
}

#[tokio::test]
async fn answers_are_cached_for_their_ttl() {
    let setup = Setup::new().await;
    setup
        .stand_in
        .add(Change::new("CHG0012345", -1, window(-60, 3600), "esx-21"));
    setup
        .stand_in
        .add(Change::new("CHG0012346", -2, window(-60, 3600), "esx-21"));
    let system = setup.system("cache_ttl_secs = 2\nnegative_cache_ttl_secs = 1");

    assert!(check(&system, "CHG0012345", "esx-21").await.authorises());
    assert_eq!(
        setup.stand_in.requests(),
        2,
        "one look-up: change_request and task_ci"
    );
    let again = check(&system, "CHG0012345", "esx-22").await;
    assert!(
        again.cached && !again.authorises(),
        "cached record, judged for this host"
    );
    assert_eq!(setup.stand_in.requests(), 2, "inside the TTL: no look-up");
    assert_eq!(system.metrics().cache_hits.get(), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(!check(&system, "CHG0012345", "esx-21").await.cached);
    assert_eq!(setup.stand_in.requests(), 4, "after the TTL: one look-up");

    // A refused change is remembered briefly only: approval is seen within the negative TTL.
    let scheduled = check(&system, "CHG0012346", "esx-21").await;
    assert_eq!(
        reason(&scheduled),
        "CHG0012346 is in state scheduled, not implement"
    );
    setup.stand_in.set_state("CHG0012346", -1);
    assert!(
        !check(&system, "CHG0012346", "esx-21").await.authorises(),
        "still cached"
    );
    assert_eq!(setup.stand_in.requests(), 6);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(check(&system, "CHG0012346", "esx-21").await.authorises());
    assert_eq!(setup.stand_in.requests(), 8);
    assert_eq!(system.metrics().lookups_with("found"), 4);
}

#[tokio::test]
async fn query_injection_never_reaches_servicenow() {
    let setup = Setup::new().await;
    setup
        .stand_in
        .add(Change::new("CHG0012345", -1, window(-60, 3600), "esx-21"));
    let attempts = [
        "CHG0012345^ORnumber=CHG0000001",
        "CHG0012345^state=-1",
        "CHG0012345&sysparm_limit=100",
        "CHG0012345&sysparm_query=state=-1",
        "CHG 0012345",
        "CHG0012345\r\nX-Injected: 1",
        "CHG0012345%5E",
        "number=CHG0012345",
        "CHG0012345#",
        "",
    ];
    let strict = setup.system("");
    let permissive = {
        let config: ChangeSystemConfig = toml::from_str(&setup.toml("")).expect("config");
        ChangeSystem::new(&config, Some(".*")).expect("system")
    };
    for id in attempts {
        for system in [&strict, &permissive] {
            let verdict = check(system, id, "esx-21").await;
            assert!(!verdict.authorises(), "{id:?}");
            assert!(!reason(&verdict).is_empty(), "{id:?}");
        }
    }
    assert_eq!(
        setup.stand_in.requests(),
        0,
        "{:?}",
        setup.stand_in.queries()
    );
    assert!(check(&strict, "CHG0012345", "esx-21").await.authorises());
    assert_eq!(
        setup.stand_in.queries()[0],
        "sysparm_query=number%3DCHG0012345&sysparm_fields=sys_id%2Cnumber%2Cstate%2Cstart_date%2Cend_date%2Ccmdb_ci.name&sysparm_limit=2"
    );
}

fn run_cli(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_vcguard"))
        .args(args)
        .env("RUST_LOG", "debug")
        .output()
        .expect("run vcguard")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn write_config(dir: &Path, change_system: &str) -> String {
    let path = dir.join("vcguard.toml");
    std::fs::write(&path, format!("[ticket.change_system]\n{change_system}")).expect("config");
    path.display().to_string()
}

#[tokio::test]
async fn cli_check_prints_the_verdict_and_never_the_credentials() {
    let setup = Setup::new().await;
    let mut change = Change::new("CHG0012345", -1, window(-60, 3600), "esx-21");
    change.affected = vec!["esx-23".into()];
    setup.stand_in.add(change);
    setup
        .stand_in
        .add(Change::new("CHG0012346", -2, window(-60, 3600), "esx-21"));
    let config = write_config(setup.dir.path(), &setup.toml(""));
    let password = "pw-9d2e-SECRET-basic";
    let password_file = setup.dir.path().join("servicenow.password");
    std::fs::write(&password_file, password).expect("password");
    let basic_dir = tempfile::tempdir().expect("dir");
    let basic_config = write_config(
        basic_dir.path(),
        &setup.toml("").replace(
            &format!("token_file = {:?}", token_path(&setup)),
            &format!(
                "username = \"vcguard\"\npassword_file = {:?}",
                password_file.display().to_string()
            ),
        ),
    );

    let (config2, basic2) = (config.clone(), basic_config.clone());
    let outputs = tokio::task::spawn_blocking(move || {
        vec![
            run_cli(&[
                "ticket",
                "check",
                "CHG0012345",
                "--host",
                "esx-21",
                "--config",
                &config2,
            ]),
            run_cli(&[
                "ticket",
                "check",
                "CHG0012345",
                "--host",
                "esx-23",
                "--config",
                &config2,
            ]),
            run_cli(&[
                "ticket",
                "check",
                "CHG0012345",
                "--host",
                "esx-22",
                "--config",
                &config2,
            ]),
            run_cli(&[
                "ticket",
                "check",
                "CHG0012346",
                "--host",
                "esx-21",
                "--config",
                &config2,
            ]),
            run_cli(&[
                "ticket",
                "check",
                "CHG0012345^ORstate=-1",
                "--host",
                "esx-21",
                "--config",
                &config2,
            ]),
            run_cli(&[
                "ticket",
                "check",
                "CHG0012345",
                "--host",
                "esx-21",
                "--config",
                &basic2,
            ]),
            run_cli(&[
                "ticket",
                "check",
                "CHG0012345",
                "--host",
                "esx-21",
                "--config",
                "/nonexistent/vcguard.toml",
            ]),
        ]
    })
    .await
    .expect("cli runs");
    let text = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(outputs[0].status.code(), Some(0), "{}", text(&outputs[0]));
    assert!(text(&outputs[0]).starts_with("CHG0012345: authorised by servicenow\n"));
    assert!(text(&outputs[0]).contains("  state:  implement\n"));
    assert_eq!(outputs[1].status.code(), Some(0), "{}", text(&outputs[1]));
    assert_eq!(outputs[2].status.code(), Some(1));
    assert!(
        text(&outputs[2]).contains("reason: host esx-22 is not a configuration item of CHG0012345")
    );
    assert_eq!(outputs[3].status.code(), Some(1));
    assert!(text(&outputs[3]).contains("reason: CHG0012346 is in state scheduled, not implement"));
    assert_eq!(outputs[4].status.code(), Some(1));
    assert!(
        text(&outputs[4]).contains("does not match the ticket pattern"),
        "{}",
        text(&outputs[4])
    );
    // The stand-in accepts only the bearer token: basic credentials get a 401.
    assert_eq!(outputs[5].status.code(), Some(1));
    assert!(
        text(&outputs[5]).contains("change system answered 401 Unauthorized"),
        "{}",
        text(&outputs[5])
    );
    assert_eq!(outputs[6].status.code(), Some(2));
    assert!(String::from_utf8_lossy(&outputs[6].stderr).contains("cannot read config file"));

    use base64::Engine;
    let basic_header =
        base64::engine::general_purpose::STANDARD.encode(format!("vcguard:{password}"));
    for output in &outputs {
        for stream in [&output.stdout, &output.stderr] {
            for secret in [TOKEN, password, basic_header.as_str()] {
                assert!(
                    !contains(stream, secret.as_bytes()),
                    "a credential was printed: {}",
                    String::from_utf8_lossy(stream)
                );
            }
        }
    }
    // 4 look-ups of 2 requests each (esx-21, esx-23, esx-22, CHG0012346), one 401, none injected.
    assert_eq!(
        setup.stand_in.requests(),
        9,
        "{:?}",
        setup.stand_in.queries()
    );
    assert!(
        setup
            .stand_in
            .queries()
            .iter()
            .all(|q| !q.contains("ORstate"))
    );

    let bad = write_config(
        basic_dir.path(),
        "kind = \"servicenow\"\nurl = \"http://example.test\"\ntoken_file = \"t\"\n",
    );
    let bad_run = tokio::task::spawn_blocking(move || {
        run_cli(&["ticket", "check", "CHG0012345", "--config", &bad])
    })
    .await
    .expect("cli runs");
    assert_eq!(bad_run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_run.stderr).contains("ticket.change_system.url"));
}

/// Prints look-up latency with and without the cache (figures only; no timing asserts).
#[tokio::test]
async fn lookup_latency_with_and_without_the_cache() {
    let setup = Setup::new().await;
    setup
        .stand_in
        .add(Change::new("CHG0012345", -1, window(-60, 3600), "esx-21"));
    const ROUNDS: u32 = 50;
    let uncached = setup.system("cache_ttl_secs = 0\nnegative_cache_ttl_secs = 0");
    let cached = setup.system("");
    let mut figures = Vec::new();
    for (label, system) in [("without cache", &uncached), ("with cache", &cached)] {
        let mut samples = Vec::new();
        for _ in 0..ROUNDS {
            let started = Instant::now();
            assert!(check(system, "CHG0012345", "esx-21").await.authorises());
            samples.push(started.elapsed());
        }
        samples.sort();
        figures.push(format!(
            "{label}: median {:?}, p90 {:?}, max {:?} over {ROUNDS} checks",
            samples[samples.len() / 2],
            samples[samples.len() * 9 / 10],
            samples[samples.len() - 1]
        ));
    }
    assert_eq!(setup.stand_in.requests() as u32, 2 * ROUNDS + 2);
    for line in figures {
        println!("change-system look-up latency {line}");
    }
}

#[tokio::test]
async fn targets_are_matched_by_the_host_names_in_entities_json() {
    let setup = Setup::new().await;
    setup
        .stand_in
        .add(Change::new("CHG0012345", -1, window(-60, 3600), "esx-21"));
    let system = setup.system("");
    let set = vcguard::policy::PolicySet::load(&common::shipped_policies()).expect("policies");
    let at = |target| {
        system.check_target(
            "CHG0012345",
            &set,
            target,
            "EnterMaintenanceMode_Task",
            SystemTime::now(),
        )
    };
    assert!(at(("HostSystem", "host-21")).await.authorises());
    assert!(
        at(("HostAccessManager", "ham-21")).await.authorises(),
        "ham-21 is on host-21"
    );
    let other = at(("HostSystem", "host-22")).await;
    assert_eq!(
        reason(&other),
        "host esx-22.example.test is not a configuration item of CHG0012345"
    );
    let unknown = at(("HostSystem", "host-99")).await;
    assert!(!unknown.authorises());
    assert!(
        reason(&unknown).starts_with("the target's host name is not known"),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn the_gateway_reports_the_change_system_on_healthz_and_stays_ready() {
    let setup = Setup::new().await;
    let config: ChangeSystemConfig = toml::from_str(&setup.toml("")).expect("config");
    let harness = common::Harness::start_with(common::Options {
        tickets: vcguard::ticket::TicketConfig {
            change_system: Some(config),
            ..vcguard::ticket::TicketConfig::default()
        },
        ..common::Options::default()
    })
    .await;
    let admin = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let get = |path: &str| admin.get(format!("http://{}{path}", harness.admin)).send();
    let health = get("/healthz").await.expect("healthz");
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.text().await.expect("body"),
        format!(
            "ok\nchange_system servicenow {}: no look-up yet\n",
            setup.stand_in.url()
        )
    );
    let ready = get("/readyz").await.expect("readyz");
    assert_eq!(ready.status(), 200);
    let metrics = get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    // (vcguard_change_system_lookups_total{result} appears with the first look-up.)
    for name in [
        "vcguard_change_system_lookup_seconds",
        "vcguard_change_system_cache_hits_total",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {}", name.trim_end_matches("_total"))),
            "{name}: {metrics}"
        );
    }
    assert_eq!(setup.stand_in.requests(), 0, "starting asks nothing");
}
