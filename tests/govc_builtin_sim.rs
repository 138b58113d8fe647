//! govc (govmomi's CLI) against the built-in simulator, through the gateway and directly.
//!
//! Runs when a govc binary is found: `$VCGUARD_GOVC`, `target/vcsim/govc`, or `govc` on the
//! PATH; otherwise each test prints "SKIPPED: govc not found" and passes without running.
//! Every command and its output are printed (run with `--nocapture` for the transcript).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{ADMIN_PASSWORD, ADMIN_USER, Harness};
use vcsim_lite::SimConfig;
use vcsim_lite::server::start;

/// Longest one govc command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The inventory path of the first simulated host.
const HOST: &str = "/Datacenter/host/Cluster/esx-21.example.test";

/// The govc binary to use, if any.
fn find_govc() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("VCGUARD_GOVC") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/vcsim/govc");
    if built.is_file() {
        return Some(built);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("govc"))
        .find(|p| p.is_file())
}

/// Runs govc commands against one URL with a private home (its saved session lives there).
struct Govc {
    binary: PathBuf,
    url: String,
    home: tempfile::TempDir,
}

/// What one command printed and whether it succeeded.
struct Run {
    success: bool,
    output: String,
}

impl Govc {
    fn new(binary: PathBuf, url: String) -> Self {
        Self {
            binary,
            url,
            home: tempfile::tempdir().expect("govc home"),
        }
    }

    /// Runs `govc ARGS...`, prints the command and its output, and returns them.
    async fn run(&self, args: &[&str]) -> Run {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("GOVMOMI_HOME", self.home.path().join(".govmomi"))
            .env("GOVC_URL", &self.url)
            .env("GOVC_USERNAME", ADMIN_USER)
            .env("GOVC_PASSWORD", ADMIN_PASSWORD)
            .env("GOVC_INSECURE", "1")
            .current_dir(self.home.path())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(COMMAND_TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| panic!("govc {args:?} took longer than {COMMAND_TIMEOUT:?}"))
            .expect("govc runs");
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        println!("$ govc {}\n{}", args.join(" "), text.trim_end());
        Run {
            success: output.status.success(),
            output: text,
        }
    }

    /// Runs a command that must succeed; returns its output.
    async fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args).await;
        assert!(run.success, "govc {args:?} failed: {}", run.output);
        run.output
    }
}

/// The govc binary, or `None` after saying the test did not run.
fn govc_or_skip() -> Option<PathBuf> {
    let found = find_govc();
    if found.is_none() {
        eprintln!(
            "SKIPPED: govc not found (set VCGUARD_GOVC, build target/vcsim/govc, or put govc on the PATH)"
        );
    }
    found
}

/// How many `Login` calls the simulator has answered.
fn logins(journal: &[vcsim_lite::SeenRequest]) -> usize {
    journal
        .iter()
        .filter(|r| r.vim_method.as_deref() == Some("Login"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn govc_works_through_the_gateway() {
    let Some(binary) = govc_or_skip() else {
        return;
    };
    let harness = Harness::start().await;
    let govc = Govc::new(
        binary,
        format!("https://127.0.0.1:{}/sdk", harness.gateway.port()),
    );
    let sim = &harness.sim().simulator;

    assert!(govc.ok(&["about"]).await.contains("VMware vCenter Server"));
    let ls = govc.ok(&["ls"]).await;
    for folder in ["vm", "host", "datastore", "network"] {
        assert!(ls.contains(&format!("/Datacenter/{folder}")), "{ls}");
    }
    let ls_l = govc.ok(&["ls", "-l", "/Datacenter/host"]).await;
    assert!(
        ls_l.contains("/Datacenter/host/Cluster (ClusterComputeResource)"),
        "{ls_l}"
    );
    let hosts = govc.ok(&["find", "/", "-type", "h"]).await;
    assert_eq!(
        hosts.lines().filter(|l| l.contains("esx-2")).count(),
        3,
        "{hosts}"
    );
    let info = govc.ok(&["host.info", "-host", HOST]).await;
    assert!(
        info.contains("Name:") && info.contains("esx-21.example.test"),
        "{info}"
    );
    assert!(
        info.contains("State:") && info.contains("connected"),
        "{info}"
    );
    let collected = govc
        .ok(&["object.collect", "-s", HOST, "runtime.inMaintenanceMode"])
        .await;
    assert_eq!(collected.trim(), "false");

    // Maintenance mode without a change ticket is refused, by either route.
    let enter = govc.run(&["host.maintenance.enter", HOST]).await;
    assert!(!enter.success, "{}", enter.output);
    assert!(enter.output.contains("ticket"), "{}", enter.output);
    let get = govc
        .ok(&[
            "host.esxcli",
            "-host",
            HOST,
            "system",
            "maintenanceMode",
            "get",
        ])
        .await;
    assert_eq!(get.trim(), "Disabled");
    let set = govc
        .run(&[
            "host.esxcli",
            "-host",
            HOST,
            "system",
            "maintenanceMode",
            "set",
            "-e",
            "true",
        ])
        .await;
    assert!(!set.success, "{}", set.output);
    assert!(set.output.contains("ticket"), "{}", set.output);
    assert_eq!(sim.host_in_maintenance("host-21"), Some(false));
    let exit = govc.run(&["host.maintenance.exit", HOST]).await;
    assert!(
        !exit.success,
        "a host not in maintenance cannot exit it: {}",
        exit.output
    );

    // A VM power cycle, watched by `object.collect -n 1` (the first update after the initial one).
    let waiter = {
        let govc_binary = govc.binary.clone();
        let url = govc.url.clone();
        tokio::spawn(async move {
            let watcher = Govc::new(govc_binary, url);
            watcher
                .run(&[
                    "object.collect",
                    "-n",
                    "1",
                    "/Datacenter/vm/web-01",
                    "runtime.powerState",
                ])
                .await
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    govc.ok(&["vm.power", "-off", "web-01"]).await;
    assert_eq!(sim.vm_powered_on("vm-31"), Some(false));
    let watched = waiter.await.expect("watcher");
    assert!(watched.success, "{}", watched.output);
    assert!(watched.output.contains("poweredOff"), "{}", watched.output);
    govc.ok(&["vm.power", "-on", "web-01"]).await;
    assert_eq!(sim.vm_powered_on("vm-31"), Some(true));

    let tasks = govc.ok(&["tasks"]).await;
    assert!(
        tasks.contains("PowerOffVM") && tasks.contains("PowerOnVM"),
        "{tasks}"
    );
    let events = govc.ok(&["events"]).await;
    assert!(events.contains("web-01 on esx-21.example.test"), "{events}");
    assert!(events.contains("logged in as govc"), "{events}");

    // Datastore file transfer through the gateway.
    let local = govc.home.path().join("upload.bin");
    std::fs::write(&local, vec![7u8; 70_000]).expect("local file");
    let local = local.to_str().expect("utf-8 path");
    govc.ok(&["datastore.upload", local, "isos/upload.bin"])
        .await;
    let listed = govc.ok(&["datastore.ls"]).await;
    assert!(listed.lines().any(|l| l.trim() == "isos"), "{listed}");
    let inside = govc.ok(&["datastore.ls", "-l", "isos"]).await;
    assert!(inside.contains("upload.bin"), "{inside}");
    let back = govc.home.path().join("download.bin");
    let back_str = back.to_str().expect("utf-8 path");
    govc.ok(&["datastore.download", "isos/upload.bin", back_str])
        .await;
    assert_eq!(std::fs::metadata(&back).expect("downloaded").len(), 70_000);

    let sessions = govc.ok(&["session.ls"]).await;
    assert!(sessions.contains("govc/"), "{sessions}");
    govc.ok(&["session.logout"]).await;
    let journal = sim.journal();
    assert_eq!(
        logins(&journal),
        2,
        "one login per govc home (the watcher has its own)"
    );
    assert!(
        journal
            .iter()
            .any(|r| r.vim_method.as_deref() == Some("Logout")),
        "logout reached the simulator"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn govc_keeps_its_session_over_plain_http_and_waits_for_long_tasks() {
    let Some(binary) = govc_or_skip() else {
        return;
    };
    let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    let config = SimConfig {
        task_duration: Duration::from_secs(2),
        ..SimConfig::default()
    };
    let running = start(loopback, false, config)
        .await
        .expect("plain simulator");
    let govc = Govc::new(binary, format!("{}/sdk", running.base_url()));
    let sim = &running.simulator;

    govc.ok(&["host.maintenance.enter", HOST]).await;
    assert_eq!(
        sim.host_in_maintenance("host-21"),
        Some(true),
        "the task waited until done"
    );
    let get = govc
        .ok(&[
            "host.esxcli",
            "-host",
            HOST,
            "system",
            "maintenanceMode",
            "get",
        ])
        .await;
    assert_eq!(get.trim(), "Enabled");
    govc.ok(&["host.maintenance.exit", HOST]).await;
    assert_eq!(sim.host_in_maintenance("host-21"), Some(false));
    govc.ok(&[
        "host.esxcli",
        "-host",
        HOST,
        "system",
        "maintenanceMode",
        "set",
        "-e",
        "true",
    ])
    .await;
    govc.ok(&["vm.power", "-off", "db-01"]).await;
    assert_eq!(sim.vm_powered_on("vm-32"), Some(false));
    assert_eq!(
        logins(&sim.journal()),
        1,
        "the session cookie (no Secure flag over plain HTTP) was sent back"
    );
    running.stop().await;
}
