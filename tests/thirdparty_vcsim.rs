//! The gateway in front of a vCenter simulator vcguard did not write: govmomi's vcsim
//! (`tests/vcsim/main.go`, built by `.ci/vcsim.sh`), behind `vcguard serve` with the shipped
//! policies. Every step runs twice, against one simulator directly and against another through
//! the gateway; the answers must match except where the gateway must refuse.
//!
//! Without the built simulator (and no Go to build it) the tests print
//! "SKIPPED: govmomi vcsim not built (run .ci/vcsim.sh)" and pass.

mod common;

use common::vcsim::{SKIP_MESSAGE, ServedGateway, SoapAnswer, SoapClient, UpstreamPin, Vcsim};
use common::{ADMIN_PASSWORD, ADMIN_USER};

/// govmomi's VPX model: the standalone host and one of its powered-on VMs.
const HOST: &str = "host-21";
const VM: &str = "vm-57";
/// vcsim has no HostAccessManager object; this is the reference its hosts' configManager gives.
const HAM: &str = "ha-host-access-manager";
/// A method neither vCenter nor the gateway knows: sent last, it marks the end of the
/// simulator's call log.
const END_MARKER: &str = "VcguardEndOfSequence";

fn binary_or_skip() -> Option<std::path::PathBuf> {
    let binary = common::vcsim::vcsim_binary();
    if binary.is_none() {
        eprintln!("{SKIP_MESSAGE}");
    }
    binary
}

/// One step's name and what a user would read from its answer.
type Observation = (&'static str, String);

fn this(mo_type: &str, id: &str) -> String {
    format!(r#"<_this type="{mo_type}">{id}</_this>"#)
}

fn login(user: &str, password: &str) -> String {
    format!(
        r#"<Login xmlns="urn:vim25">{}<userName>{user}</userName><password>{password}</password></Login>"#,
        this("SessionManager", "SessionManager")
    )
}

/// `RetrievePropertiesEx` of `props` on one object.
fn retrieve(mo_type: &str, id: &str, props: &[&str]) -> String {
    let paths: String = props
        .iter()
        .map(|p| format!("<pathSet>{p}</pathSet>"))
        .collect();
    format!(
        r#"<RetrievePropertiesEx xmlns="urn:vim25">{}<specSet><propSet><type>{mo_type}</type>{paths}</propSet><objectSet><obj type="{mo_type}">{id}</obj></objectSet></specSet><options/></RetrievePropertiesEx>"#,
        this("PropertyCollector", "propertyCollector")
    )
}

/// The one property value of a `RetrievePropertiesEx` answer, or its fault.
async fn property(client: &mut SoapClient, mo_type: &str, id: &str, prop: &str) -> String {
    let answer = client.call(&retrieve(mo_type, id, &[prop])).await;
    match answer.fault() {
        Some(fault) => format!("fault {fault}"),
        None => answer.text("val").unwrap_or_else(|| "(none)".into()),
    }
}

/// Waits for a task as pyVmomi's `WaitForTask` does: a property filter on `info.state` and
/// `WaitForUpdatesEx` until success or error (bounded).
async fn wait_for_task(client: &mut SoapClient, task: &str) -> String {
    let filter = client
        .call(&format!(
            r#"<CreateFilter xmlns="urn:vim25">{}<spec><propSet><type>Task</type><pathSet>info.state</pathSet><pathSet>info.error</pathSet></propSet><objectSet><obj type="Task">{task}</obj><skip>false</skip></objectSet></spec><partialUpdates>false</partialUpdates></CreateFilter>"#,
            this("PropertyCollector", "propertyCollector")
        ))
        .await;
    let Some(filter_id) = filter.text("returnval") else {
        return format!("CreateFilter failed: {:?}", filter.fault());
    };
    let mut version = String::new();
    let mut state = String::from("(no update)");
    for _ in 0..40 {
        let update = client
            .call(&format!(
                r#"<WaitForUpdatesEx xmlns="urn:vim25">{}<version>{version}</version><options><maxWaitSeconds>5</maxWaitSeconds></options></WaitForUpdatesEx>"#,
                this("PropertyCollector", "propertyCollector")
            ))
            .await;
        if let Some(fault) = update.fault() {
            state = format!("fault {fault}");
            break;
        }
        if let Some(v) = update.text("version") {
            version = v;
        }
        let changes = update.body.split("<changeSet>").skip(1);
        for change in changes {
            if change.contains("<name>info.state</name>")
                && let Some(val) = common::vcsim::element_text(change, "val")
            {
                state = val;
            }
        }
        if state == "success" || state == "error" {
            break;
        }
    }
    client
        .call(&format!(
            r#"<DestroyPropertyFilter xmlns="urn:vim25">{}</DestroyPropertyFilter>"#,
            this("PropertyFilter", &filter_id)
        ))
        .await;
    state
}

/// Starts a task method and waits for it; a refusal or fault is reported instead.
async fn run_task(client: &mut SoapClient, body: &str) -> String {
    let answer = client.call(body).await;
    if let Some(fault) = answer.fault() {
        return format!("fault {fault} ({})", refusal_policy(&answer));
    }
    let Some(task) = answer.text("returnval") else {
        return format!("no task: HTTP {}", answer.status);
    };
    format!("task {}", wait_for_task(client, &task).await)
}

/// The gateway names the refusing policy in the fault message; vCenter's own faults do not.
fn refusal_policy(answer: &SoapAnswer) -> String {
    [
        "maintenance-needs-ticket",
        "lockdown-no-strict",
        "baseline-permit",
    ]
    .iter()
    .find(|id| answer.body.contains(*id))
    .map_or_else(|| "no policy named".into(), |id| (*id).to_owned())
}

fn enter_maintenance() -> String {
    format!(
        r#"<EnterMaintenanceMode_Task xmlns="urn:vim25">{}<timeout>0</timeout></EnterMaintenanceMode_Task>"#,
        this("HostSystem", HOST)
    )
}

fn exit_maintenance() -> String {
    format!(
        r#"<ExitMaintenanceMode_Task xmlns="urn:vim25">{}<timeout>0</timeout></ExitMaintenanceMode_Task>"#,
        this("HostSystem", HOST)
    )
}

fn change_lockdown(mode: &str) -> String {
    format!(
        r#"<ChangeLockdownMode xmlns="urn:vim25">{}<mode>{mode}</mode></ChangeLockdownMode>"#,
        this("HostAccessManager", HAM)
    )
}

/// The whole user sequence; each step's observation is what a user would check.
async fn sequence(client: &mut SoapClient) -> Vec<Observation> {
    let mut seen: Vec<Observation> = Vec::new();

    let content = client
        .call(&format!(
            r#"<RetrieveServiceContent xmlns="urn:vim25">{}</RetrieveServiceContent>"#,
            this("ServiceInstance", "ServiceInstance")
        ))
        .await;
    seen.push((
        "RetrieveServiceContent",
        format!(
            "HTTP {} apiVersion={:?} rootFolder={:?}",
            content.status,
            content.text("apiVersion"),
            content.text("rootFolder")
        ),
    ));

    let refused = client.call(&login(ADMIN_USER, "not-the-password")).await;
    seen.push((
        "Login with a wrong password",
        format!("HTTP {} {:?}", refused.status, refused.fault()),
    ));

    let session = client.call(&login(ADMIN_USER, ADMIN_PASSWORD)).await;
    seen.push((
        "Login",
        format!(
            "HTTP {} userName={:?}",
            session.status,
            session.text("userName")
        ),
    ));

    let view = client
        .call(&format!(
            r#"<CreateContainerView xmlns="urn:vim25">{}<container type="Folder">group-d1</container><type>HostSystem</type><type>VirtualMachine</type><type>Datastore</type><recursive>true</recursive></CreateContainerView>"#,
            this("ViewManager", "ViewManager")
        ))
        .await;
    let view_id = view.text("returnval").unwrap_or_default();
    let inventory = client
        .call(&format!(
            r#"<RetrievePropertiesEx xmlns="urn:vim25">{}<specSet><propSet><type>ManagedEntity</type><pathSet>name</pathSet></propSet><objectSet><obj type="ContainerView">{view_id}</obj><skip>true</skip><selectSet xsi:type="TraversalSpec"><type>ContainerView</type><path>view</path></selectSet></objectSet></specSet><options/></RetrievePropertiesEx>"#,
            this("PropertyCollector", "propertyCollector")
        ))
        .await;
    let mut entities: Vec<String> = inventory
        .body
        .split("<objects>")
        .skip(1)
        .filter(|o| !o.contains(r#"type="Datastore""#)) // its moId is the simulator's temp path
        .map(|o| {
            format!(
                "{}={}",
                common::vcsim::element_text(o, "obj").unwrap_or_default(),
                common::vcsim::element_text(o, "val").unwrap_or_default()
            )
        })
        .collect();
    entities.sort();
    let datastores = inventory.body.matches(r#"type="Datastore""#).count();
    seen.push((
        "inventory through a container view and the property collector",
        format!("{} datastore(s); {}", datastores, entities.join(" ")),
    ));
    client
        .call(&format!(
            r#"<DestroyView xmlns="urn:vim25">{}</DestroyView>"#,
            this("ContainerView", &view_id)
        ))
        .await;

    let power_off = run_task(
        client,
        &format!(
            r#"<PowerOffVM_Task xmlns="urn:vim25">{}</PowerOffVM_Task>"#,
            this("VirtualMachine", VM)
        ),
    )
    .await;
    let state = property(client, "VirtualMachine", VM, "runtime.powerState").await;
    seen.push((
        "PowerOffVM_Task and its wait",
        format!("{power_off}; {state}"),
    ));
    let power_on = run_task(
        client,
        &format!(
            r#"<PowerOnVM_Task xmlns="urn:vim25">{}</PowerOnVM_Task>"#,
            this("VirtualMachine", VM)
        ),
    )
    .await;
    let state = property(client, "VirtualMachine", VM, "runtime.powerState").await;
    seen.push((
        "PowerOnVM_Task and its wait",
        format!("{power_on}; {state}"),
    ));

    let file = "/folder/vcguard-test/hello.txt?dcPath=DC0&dsName=LocalDS_0";
    let content = b"uploaded through whatever is in front of vCenter\n".to_vec();
    let (put, _) = client
        .http(reqwest::Method::PUT, file, content.clone())
        .await;
    seen.push(("datastore upload (PUT /folder)", format!("HTTP {put}")));
    let (get, body) = client.http(reqwest::Method::GET, file, Vec::new()).await;
    seen.push((
        "datastore download (GET /folder)",
        format!("HTTP {get}; same bytes: {}", body == content),
    ));

    let maintenance = run_task(client, &enter_maintenance()).await;
    let in_maintenance = property(client, "HostSystem", HOST, "runtime.inMaintenanceMode").await;
    seen.push((
        "EnterMaintenanceMode_Task without a ticket",
        format!("{maintenance}; inMaintenanceMode={in_maintenance}"),
    ));
    let exit = run_task(client, &exit_maintenance()).await;
    seen.push(("ExitMaintenanceMode_Task", exit));

    client
        .headers
        .push(("X-Change-Ticket".into(), "CHG0012345".into()));
    let maintenance = run_task(client, &enter_maintenance()).await;
    client.headers.clear();
    let in_maintenance = property(client, "HostSystem", HOST, "runtime.inMaintenanceMode").await;
    seen.push((
        "EnterMaintenanceMode_Task with ticket CHG0012345",
        format!("{maintenance}; inMaintenanceMode={in_maintenance}"),
    ));
    let exit = run_task(client, &exit_maintenance()).await;
    let in_maintenance = property(client, "HostSystem", HOST, "runtime.inMaintenanceMode").await;
    seen.push((
        "ExitMaintenanceMode_Task again",
        format!("{exit}; inMaintenanceMode={in_maintenance}"),
    ));

    for mode in ["lockdownStrict", "lockdownNormal"] {
        let answer = client.call(&change_lockdown(mode)).await;
        seen.push((
            if mode == "lockdownStrict" {
                "ChangeLockdownMode lockdownStrict"
            } else {
                "ChangeLockdownMode lockdownNormal"
            },
            format!(
                "HTTP {} fault {:?} ({})",
                answer.status,
                answer.fault(),
                refusal_policy(&answer)
            ),
        ));
    }

    let logout = client
        .call(&format!(
            r#"<Logout xmlns="urn:vim25">{}</Logout>"#,
            this("SessionManager", "SessionManager")
        ))
        .await;
    seen.push((
        "Logout",
        format!("HTTP {} {:?}", logout.status, logout.fault()),
    ));
    let after = client
        .call(&format!(
            r#"<CreateContainerView xmlns="urn:vim25">{}<container type="Folder">group-d1</container><type>HostSystem</type><recursive>true</recursive></CreateContainerView>"#,
            this("ViewManager", "ViewManager")
        ))
        .await;
    seen.push((
        "CreateContainerView after Logout",
        format!("HTTP {} {:?}", after.status, after.fault()),
    ));
    client
        .headers
        .push(("X-Change-Ticket".into(), "CHG0012345".into()));
    let after = client.call(&enter_maintenance()).await;
    client.headers.clear();
    seen.push((
        "EnterMaintenanceMode_Task with a ticket after Logout",
        format!(
            "HTTP {} {:?} ({})",
            after.status,
            after.fault(),
            refusal_policy(&after)
        ),
    ));

    client
        .call(&format!(r#"<{END_MARKER} xmlns="urn:vim25"/>"#))
        .await;
    seen
}

/// The steps whose answers differ through the gateway, with what the gateway answers.
const GATEWAY_REFUSES: &[(&str, &str)] = &[
    (
        "EnterMaintenanceMode_Task without a ticket",
        "fault RestrictedByAdministrator (maintenance-needs-ticket); inMaintenanceMode=false",
    ),
    (
        "ChangeLockdownMode lockdownStrict",
        r#"HTTP 500 fault Some("RestrictedByAdministrator") (lockdown-no-strict)"#,
    ),
    // Known difference: vCenter answers NotAuthenticated (clients re-login on it); the gateway
    // refuses a guarded call on a logged-out session as the Unauthenticated principal before
    // vCenter sees it, with RestrictedByAdministrator "no policy permits" (src/gate/decide.rs).
    (
        "EnterMaintenanceMode_Task with a ticket after Logout",
        r#"HTTP 500 Some("RestrictedByAdministrator") (no policy named)"#,
    ),
];

#[tokio::test]
async fn the_gateway_answers_like_vcsim_except_where_policy_refuses() {
    let Some(binary) = binary_or_skip() else {
        return;
    };
    let direct_sim = Vcsim::start(&binary);
    let guarded_sim = Vcsim::start(&binary);
    let gateway = ServedGateway::start(
        &guarded_sim.base,
        UpstreamPin::Thumbprint(&guarded_sim.thumbprint),
    );

    let direct = sequence(&mut direct_sim.direct_client()).await;
    let through = sequence(&mut gateway.client()).await;

    for ((step, want), (_, got)) in direct.iter().zip(&through) {
        println!("{step}:\n  direct:  {want}\n  gateway: {got}");
    }
    // Direct answers are what a user of vCenter expects (sanity: the sequence did real work).
    let expect_direct = |step: &str, want: &str| {
        let got = &direct.iter().find(|(s, _)| *s == step).expect("step").1;
        assert!(got.contains(want), "direct {step}: {got} (want {want})");
    };
    expect_direct(
        "Login",
        "HTTP 200 userName=Some(\"administrator@vsphere.local\")",
    );
    expect_direct("Login with a wrong password", "InvalidLogin");
    expect_direct("PowerOffVM_Task and its wait", "task success; poweredOff");
    expect_direct("PowerOnVM_Task and its wait", "task success; poweredOn");
    expect_direct(
        "datastore download (GET /folder)",
        "HTTP 200; same bytes: true",
    );
    expect_direct(
        "EnterMaintenanceMode_Task without a ticket",
        "task success; inMaintenanceMode=true",
    );
    expect_direct(
        "EnterMaintenanceMode_Task with ticket CHG0012345",
        "task success; inMaintenanceMode=true",
    );
    expect_direct("CreateContainerView after Logout", "NotAuthenticated");
    expect_direct(
        "EnterMaintenanceMode_Task with a ticket after Logout",
        "NotAuthenticated",
    );

    let mut differences = Vec::new();
    for ((step, want), (_, got)) in direct.iter().zip(&through) {
        match GATEWAY_REFUSES.iter().find(|(s, _)| s == step) {
            Some((_, refused)) => assert_eq!(got, refused, "through the gateway: {step}"),
            None if got != want => differences.push(format!("{step}: {want} vs {got}")),
            None => {}
        }
    }
    assert_eq!(direct.len(), through.len());
    assert!(
        differences.is_empty(),
        "the gateway changed vCenter's answers:\n{}\ngateway log:\n{}",
        differences.join("\n"),
        gateway.log()
    );

    // The refused calls never reached the simulator; everything else did, in the same order,
    // and the gateway added no call of its own.
    let direct_calls = direct_sim.calls_after(END_MARKER, 1).await;
    let guarded_calls = guarded_sim.calls_after(END_MARKER, 1).await;
    let mut expected = direct_calls.clone();
    // Latest first, so that earlier positions stay valid: the call after Logout, strict
    // lockdown, then maintenance without a ticket and the task wait that followed it directly.
    // For the logged-out session (forgotten at Logout) the gateway asks vCenter once, with the
    // caller's own cookie, whose session it is (`Fetch` of SessionManager.currentSession)
    // instead of forwarding the guarded call.
    let after_logout = remove_nth(&mut expected, "EnterMaintenanceMode_Task", 2);
    expected.insert(after_logout, "Fetch".into());
    remove_nth(&mut expected, "ChangeLockdownMode", 0);
    let refused_at = remove_nth(&mut expected, "EnterMaintenanceMode_Task", 0);
    while ["CreateFilter", "WaitForUpdatesEx", "DestroyPropertyFilter"]
        .contains(&expected[refused_at].as_str())
    {
        expected.remove(refused_at);
    }
    assert_eq!(
        guarded_calls, expected,
        "calls vcsim saw through the gateway vs the direct ones minus the refused"
    );
    assert_eq!(
        guarded_calls
            .iter()
            .filter(|c| *c == "ChangeLockdownMode")
            .count(),
        1,
        "only lockdownNormal reached vcsim: {guarded_calls:?}"
    );
}

/// Removes the `nth` (0-based) `method` call from `calls` and returns its position.
fn remove_nth(calls: &mut Vec<String>, method: &str, nth: usize) -> usize {
    let position = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| *c == method)
        .nth(nth)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("call {nth} of {method} missing in {calls:?}"));
    calls.remove(position);
    position
}

#[tokio::test]
async fn the_gateway_trusts_vcsim_through_a_ca_file() {
    let Some(binary) = binary_or_skip() else {
        return;
    };
    let sim = Vcsim::start(&binary);
    let gateway = ServedGateway::start(&sim.base, UpstreamPin::CaFile(&sim.cert_pem));
    let mut client = gateway.client();
    let session = client.call(&login(ADMIN_USER, ADMIN_PASSWORD)).await;
    assert_eq!(session.status, 200, "{}\n{}", session.body, gateway.log());
    assert_eq!(session.text("userName").as_deref(), Some(ADMIN_USER));
    let name = property(&mut client, "HostSystem", HOST, "name").await;
    assert_eq!(name, "DC0_H0");
}

#[tokio::test]
async fn a_pinned_thumbprint_that_does_not_match_refuses_vcsim() {
    let Some(binary) = binary_or_skip() else {
        return;
    };
    let sim = Vcsim::start(&binary);
    let wrong = ["AB"; 32].join(":");
    let gateway = ServedGateway::start(&sim.base, UpstreamPin::Thumbprint(&wrong));
    let answer = gateway
        .client()
        .call(&login(ADMIN_USER, ADMIN_PASSWORD))
        .await;
    assert_eq!(answer.status, 502, "{}", answer.body);
    assert!(
        !sim.calls().iter().any(|c| c == "Login"),
        "vcsim saw a login over an unverified connection"
    );
}
