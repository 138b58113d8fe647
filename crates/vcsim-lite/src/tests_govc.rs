//! The simulator answers the requests govc really sends (recorded against govmomi's vcsim,
//! `tests/fixtures/soap/govc-*.xml`), and long polls and long-running tasks behave as on vCenter.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};

use super::*;

/// vcsim's object ids in the recorded requests, and the simulator's objects in their place.
const ID_MAP: [(&str, &str); 7] = [
    (">group-4<", ">group-h4<"),
    (">domain-c29<", ">domain-c7<"),
    (">host-38<", ">host-21<"),
    (">vm-63<", ">vm-31<"),
    (">hostdatastorebrowser-61<", ">datastoreBrowser-41<"),
    (">datastore-60<", ">datastore-41<"),
    ("[LocalDS_0]", "[datastore1]"),
];

/// A recorded govc request with vcsim's ids replaced by the simulator's and `extra` applied.
fn fixture(name: &str, extra: &[(&str, &str)]) -> String {
    // The recordings live with the gateway's fixtures, at the workspace root.
    let path = format!(
        "{}/../../tests/fixtures/soap/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (from, to) in ID_MAP.iter().chain(extra) {
        text = text.replace(from, to);
    }
    text
}

/// The recorded govc session's property collector id (replaced by one the simulator made).
const RECORDED_COLLECTOR: &[&str] = &[
    "session[4102a331-086b-4d11-b56c-25358e7a8927]e8a61e83-3a70-47d7-b3f3-bf66f2c6d361",
    "session[4102a331-086b-4d11-b56c-25358e7a8927]792dce80-03cf-4159-8604-bd7de9160c32",
    "session[4102a331-086b-4d11-b56c-25358e7a8927]efc1fca0-b7f7-4a7b-b27b-388343256087",
];
/// The recorded list view and event collector ids.
const RECORDED_LIST_VIEW: &str =
    "session[4102a331-086b-4d11-b56c-25358e7a8927]2ab413b4-5a8d-4686-a799-dacc0db33ab8";
const RECORDED_EVENT_COLLECTOR: &str =
    "session[4102a331-086b-4d11-b56c-25358e7a8927]0c32cc8b-45c8-4490-aa66-12d8ab0d3bde";

/// Status, `Set-Cookie` and body of an answer.
struct Answer {
    status: StatusCode,
    set_cookie: Option<String>,
    body: String,
}

/// Posts a SOAP body as govc does (unquoted SOAPAction, its User-Agent).
async fn post(sim: &Simulator, cookie: &str, body: String) -> Answer {
    let req = Request::builder()
        .method("POST")
        .uri("/sdk")
        .header("cookie", cookie)
        .header("soapaction", "urn:vim25/8.0.3.0")
        .header("content-type", "text/xml; charset=\"utf-8\"")
        .header("user-agent", "govc/0.38.0")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = sim.handle(req).await;
    let status = resp.status();
    let set_cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        set_cookie,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Posts and expects 200.
async fn ok(sim: &Simulator, cookie: &str, body: String) -> String {
    let a = post(sim, cookie, body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body
}

/// A govc-style envelope around one method element.
fn govc_envelope(method: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Envelope xmlns=\"http://schemas.xmlsoap.org/soap/envelope/\"><Body>{method}</Body></Envelope>"
    )
}

/// Logs in as govc does; returns the cookie to send back (`name=value`).
async fn login(sim: &Simulator) -> String {
    let a = post(
        sim,
        "",
        govc_envelope(
            r#"<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>administrator@vsphere.local</userName><password>VMware1!</password><locale>en_US</locale></Login>"#,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let cookie = a.set_cookie.expect("Set-Cookie");
    cookie
        .split(';')
        .next()
        .expect("name=value")
        .replace('"', "")
}

/// The text of the first `<returnval>` (a moref's id).
fn returnval(body: &str) -> String {
    let start = body.find("<returnval").expect("returnval");
    let rest = &body[start..];
    let open = rest.find('>').expect(">") + 1;
    let close = rest.find("</returnval>").expect("close");
    rest[open..close].to_string()
}

/// Creates a session property collector; returns its id.
async fn new_collector(sim: &Simulator, cookie: &str) -> String {
    let body = ok(
        sim,
        cookie,
        fixture("govc-CreatePropertyCollector.xml", &[]),
    )
    .await;
    assert!(
        body.contains(r#"<returnval type="PropertyCollector">session["#),
        "{body}"
    );
    returnval(&body)
}

/// A `WaitForUpdatesEx` on `collector` with `version` and optional `maxWaitSeconds`.
fn wait_ex(collector: &str, version: &str, max_wait: Option<u32>) -> String {
    let options = max_wait
        .map(|s| format!("<options><maxWaitSeconds>{s}</maxWaitSeconds></options>"))
        .unwrap_or_default();
    govc_envelope(&format!(
        r#"<WaitForUpdatesEx xmlns="urn:vim25"><_this type="PropertyCollector">{collector}</_this><version>{version}</version>{options}</WaitForUpdatesEx>"#
    ))
}

/// The `<version>` of an update set.
fn version_of(body: &str) -> String {
    let start = body.find("<version>").expect("version") + "<version>".len();
    let end = body[start..].find('<').expect("end") + start;
    body[start..end].to_string()
}

#[tokio::test]
async fn ls_l_reads_the_cluster_resource_pool() {
    let sim = Simulator::new(SimConfig::default());
    let cookie = login(&sim).await;
    let body = ok(
        &sim,
        &cookie,
        fixture("govc-ls-l-RetrievePropertiesEx.xml", &[]),
    )
    .await;
    assert!(
        body.contains(r#"<obj type="ClusterComputeResource">domain-c7</obj>"#),
        "{body}"
    );
    assert!(
        body.contains(r#"<name>resourcePool</name><val xsi:type="ManagedObjectReference" type="ResourcePool">resgroup-8</val>"#),
        "{body}"
    );
    let body = ok(
        &sim,
        &cookie,
        fixture("govc-cluster-children-RetrievePropertiesEx.xml", &[]),
    )
    .await;
    for host in ["host-21", "host-22", "host-23"] {
        assert!(
            body.contains(&format!(r#"<obj type="HostSystem">{host}</obj>"#)),
            "{body}"
        );
    }
    assert!(
        body.contains(r#"<obj type="ResourcePool">resgroup-8</obj><propSet xsi:type="DynamicProperty"><name>name</name><val xsi:type="xsd:string">Resources</val>"#),
        "{body}"
    );
}

#[tokio::test]
async fn host_info_gets_hardware_and_quick_stats() {
    let sim = Simulator::new(SimConfig::default());
    let cookie = login(&sim).await;
    let body = ok(
        &sim,
        &cookie,
        fixture("govc-host-info-RetrievePropertiesEx.xml", &[]),
    )
    .await;
    for part in [
        r#"<val xsi:type="HostListSummary"><host type="HostSystem">host-21</host><hardware xsi:type="HostHardwareSummary">"#,
        "<cpuMhz>2400</cpuMhz>",
        "<numCpuCores>16</numCpuCores>",
        "<memorySize>68719476736</memorySize>",
        "<overallCpuUsage>1200</overallCpuUsage>",
        "<name>esx-21.example.test</name>",
        "<inMaintenanceMode>false</inMaintenanceMode>",
    ] {
        assert!(body.contains(part), "{part} missing: {body}");
    }
}

#[tokio::test]
async fn object_collect_uses_its_own_collector() {
    let sim = Simulator::new(SimConfig::default());
    let cookie = login(&sim).await;
    let collector = new_collector(&sim, &cookie).await;
    let mine = [(RECORDED_COLLECTOR[0], collector.as_str())];
    let body = ok(
        &sim,
        &cookie,
        fixture("govc-object-collect-CreateFilter.xml", &mine),
    )
    .await;
    assert!(
        body.contains(r#"<returnval type="PropertyFilter">session["#),
        "{body}"
    );
    let body = ok(&sim, &cookie, fixture("govc-WaitForUpdatesEx.xml", &mine)).await;
    assert!(body.contains("<kind>enter</kind>"), "{body}");
    assert!(
        body.contains(r#"<name>runtime.inMaintenanceMode</name><op>assign</op><val xsi:type="xsd:boolean">false</val>"#),
        "{body}"
    );
    assert!(
        body.contains(r#"<val xsi:type="HostSystemConnectionState">connected</val>"#),
        "{body}"
    );
    // The shared collector has no filters: nothing to report there.
    let shared = ok(&sim, &cookie, wait_ex("propertyCollector", "", Some(0))).await;
    assert!(
        shared
            .contains("<WaitForUpdatesExResponse xmlns=\"urn:vim25\"></WaitForUpdatesExResponse>"),
        "{shared}"
    );
    ok(
        &sim,
        &cookie,
        fixture("govc-DestroyPropertyCollector.xml", &mine),
    )
    .await;
    let gone = post(&sim, &cookie, wait_ex(&collector, "", Some(0))).await;
    assert_eq!(gone.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(gone.body.contains("ManagedObjectNotFound"), "{}", gone.body);
    // The shared collector cannot be destroyed.
    let root = post(
        &sim,
        &cookie,
        fixture(
            "govc-DestroyPropertyCollector.xml",
            &[(RECORDED_COLLECTOR[0], "propertyCollector")],
        ),
    )
    .await;
    assert!(root.body.contains("InvalidArgument"), "{}", root.body);
}

#[tokio::test]
async fn tasks_follow_recent_tasks_through_a_list_view() {
    let sim = Simulator::new(SimConfig::default());
    let cookie = login(&sim).await;
    let task = returnval(
        &ok(
            &sim,
            &cookie,
            fixture("govc-EnterMaintenanceMode_Task.xml", &[]),
        )
        .await,
    );
    let view = returnval(&ok(&sim, &cookie, fixture("govc-CreateListView.xml", &[])).await);
    let collector = new_collector(&sim, &cookie).await;
    let ids = [
        (RECORDED_COLLECTOR[1], collector.as_str()),
        (RECORDED_LIST_VIEW, view.as_str()),
    ];
    ok(&sim, &cookie, fixture("govc-tasks-CreateFilter.xml", &ids)).await;
    let first = ok(&sim, &cookie, wait_ex(&collector, "", None)).await;
    assert!(
        first.contains(&format!(
            r#"<name>recentTask</name><op>assign</op><val xsi:type="ArrayOfManagedObjectReference"><ManagedObjectReference type="Task">{task}</ManagedObjectReference></val>"#
        )),
        "{first}"
    );
    let reset = govc_envelope(&format!(
        r#"<ResetListView xmlns="urn:vim25"><_this type="ListView">{view}</_this><obj type="Task">{task}</obj><obj type="Task">task-99999</obj></ResetListView>"#
    ));
    let body = ok(&sim, &cookie, reset).await;
    assert!(
        body.contains(r#"<returnval type="Task">task-99999</returnval>"#),
        "the unknown task is returned as unresolved: {body}"
    );
    let second = ok(
        &sim,
        &cookie,
        wait_ex(&collector, &version_of(&first), None),
    )
    .await;
    assert!(
        second.contains(&format!(
            r#"<kind>enter</kind><obj type="Task">{task}</obj>"#
        )),
        "{second}"
    );
    for part in [
        "<name>EnterMaintenanceMode_Task</name>",
        "<entityName>esx-21.example.test</entityName>",
        "<state>success</state>",
        "<userName>VSPHERE.LOCAL\\Administrator</userName>",
    ] {
        assert!(second.contains(part), "{part}: {second}");
    }
    ok(
        &sim,
        &cookie,
        govc_envelope(&format!(
            r#"<DestroyView xmlns="urn:vim25"><_this type="ListView">{view}</_this></DestroyView>"#
        )),
    )
    .await;
}

#[tokio::test]
async fn events_page_shows_login_and_maintenance() {
    let sim = Simulator::new(SimConfig::default());
    let cookie = login(&sim).await;
    ok(
        &sim,
        &cookie,
        fixture("govc-EnterMaintenanceMode_Task.xml", &[]),
    )
    .await;
    let events = returnval(
        &ok(
            &sim,
            &cookie,
            fixture("govc-CreateCollectorForEvents.xml", &[]),
        )
        .await,
    );
    let ids = [(RECORDED_EVENT_COLLECTOR, events.as_str())];
    ok(
        &sim,
        &cookie,
        fixture("govc-SetCollectorPageSize.xml", &ids),
    )
    .await;
    let collector = new_collector(&sim, &cookie).await;
    let ids = [
        (RECORDED_EVENT_COLLECTOR, events.as_str()),
        (RECORDED_COLLECTOR[2], collector.as_str()),
    ];
    ok(&sim, &cookie, fixture("govc-events-CreateFilter.xml", &ids)).await;
    let page = ok(&sim, &cookie, wait_ex(&collector, "", None)).await;
    let entered = page
        .find(r#"<Event xsi:type="EnteredMaintenanceModeEvent">"#)
        .expect("maintenance event");
    let login_event = page
        .find(r#"<Event xsi:type="UserLoginSessionEvent">"#)
        .expect("login event");
    assert!(entered < login_event, "newest first: {page}");
    assert!(
        page.contains("<fullFormattedMessage>Host esx-21.example.test in Datacenter has entered maintenance mode</fullFormattedMessage>"),
        "{page}"
    );
    assert!(
        page.contains("<userAgent>govc/0.38.0</userAgent>"),
        "{page}"
    );
    let info = ok(
        &sim,
        &cookie,
        fixture("govc-event-info-RetrievePropertiesEx.xml", &[]),
    )
    .await;
    assert!(
        info.contains(r#"<name>description.eventInfo</name><val xsi:type="ArrayOfEventDescriptionEventDetail"><EventDescriptionEventDetail xsi:type="EventDescriptionEventDetail"><key>UserLoginSessionEvent</key>"#),
        "{info}"
    );
    assert!(info.contains("<category>info</category>"), "{info}");
}

#[tokio::test]
async fn vm_power_runs_tasks_and_refuses_the_current_state() {
    let sim = Simulator::new(SimConfig::default());
    let cookie = login(&sim).await;
    assert_eq!(sim.vm_powered_on("vm-31"), Some(true));
    let body = ok(&sim, &cookie, fixture("govc-PowerOffVM_Task.xml", &[])).await;
    assert!(body.contains(r#"<returnval type="Task">task-"#), "{body}");
    assert_eq!(sim.vm_powered_on("vm-31"), Some(false));
    let again = post(&sim, &cookie, fixture("govc-PowerOffVM_Task.xml", &[])).await;
    assert_eq!(again.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(again.body.contains("InvalidPowerState"), "{}", again.body);
    let on = fixture(
        "govc-PowerOffVM_Task.xml",
        &[("PowerOffVM_Task", "PowerOnVM_Task")],
    );
    ok(&sim, &cookie, on).await;
    assert_eq!(sim.vm_powered_on("vm-31"), Some(true));
}

#[tokio::test]
async fn datastore_ls_lists_uploaded_files() {
    let sim = Simulator::new(SimConfig::default());
    let cookie = login(&sim).await;
    let body = ok(
        &sim,
        &cookie,
        fixture("govc-datastore-browser-RetrievePropertiesEx.xml", &[]),
    )
    .await;
    assert!(
        body.contains(r#"<name>browser</name><val xsi:type="ManagedObjectReference" type="HostDatastoreBrowser">datastoreBrowser-41</val>"#),
        "{body}"
    );
    let upload = Request::builder()
        .method("PUT")
        .uri("/folder/isos/tiny.iso?dcPath=Datacenter&dsName=datastore1")
        .header("cookie", cookie.as_str())
        .body(Full::new(Bytes::from_static(b"12345")))
        .expect("request");
    assert_eq!(sim.handle(upload).await.status(), StatusCode::CREATED);
    let task = returnval(&ok(&sim, &cookie, fixture("govc-SearchDatastore_Task.xml", &[])).await);
    let info = ok(
        &sim,
        &cookie,
        govc_envelope(&format!(
            r#"<RetrievePropertiesEx xmlns="urn:vim25"><_this type="PropertyCollector">propertyCollector</_this><specSet><propSet><type>Task</type><pathSet>info</pathSet></propSet><objectSet><obj type="Task">{task}</obj></objectSet></specSet><options></options></RetrievePropertiesEx>"#
        )),
    )
    .await;
    assert!(
        info.contains(r#"<result xsi:type="HostDatastoreBrowserSearchResults"><datastore type="Datastore">datastore-41</datastore><folderPath>[datastore1]</folderPath><file xsi:type="FolderFileInfo"><path>isos</path><fileSize>0</fileSize><modification>"#),
        "{info}"
    );
}

#[tokio::test]
async fn session_ls_lists_every_session_and_current_session_needs_none() {
    let sim = Simulator::new(SimConfig::default());
    let anonymous = ok(
        &sim,
        "",
        fixture("govc-current-session-RetrievePropertiesEx.xml", &[]),
    )
    .await;
    assert!(
        !anonymous.contains("<name>currentSession</name>"),
        "no session, no value: {anonymous}"
    );
    let first = login(&sim).await;
    let _second = login(&sim).await;
    let body = ok(
        &sim,
        &first,
        fixture("govc-session-ls-RetrievePropertiesEx.xml", &[]),
    )
    .await;
    assert_eq!(
        body.matches(r#"<UserSession xsi:type="UserSession">"#)
            .count(),
        2,
        "{body}"
    );
    for part in [
        r#"<name>sessionList</name><val xsi:type="ArrayOfUserSession">"#,
        "<name>currentSession</name>",
        "<name>supportedLocaleList</name>",
        "<name>messageLocaleList</name>",
    ] {
        assert!(body.contains(part), "{part}: {body}");
    }
    ok(&sim, &first, fixture("govc-Logout.xml", &[])).await;
    let after = ok(
        &sim,
        &first,
        fixture("govc-current-session-RetrievePropertiesEx.xml", &[]),
    )
    .await;
    assert!(!after.contains("<name>currentSession</name>"), "{after}");
}

#[tokio::test]
async fn plain_http_cookie_is_not_secure() {
    let plain = Simulator::new(SimConfig {
        secure_cookie: false,
        ..SimConfig::default()
    });
    let a = post(
        &plain,
        "",
        govc_envelope(
            r#"<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>administrator@vsphere.local</userName><password>VMware1!</password></Login>"#,
        ),
    )
    .await;
    let cookie = a.set_cookie.expect("cookie");
    assert!(cookie.ends_with("; Path=/; HttpOnly;"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn esxcli_maintenance_mode_get_and_set() {
    let sim = Simulator::new(SimConfig::default());
    let cookie = login(&sim).await;
    let host = r#"<_this type="HostSystem">host-21</_this>"#;
    let mme = returnval(
        &ok(
            &sim,
            &cookie,
            govc_envelope(&format!(
                r#"<RetrieveManagedMethodExecuter xmlns="urn:vim25">{host}</RetrieveManagedMethodExecuter>"#
            )),
        )
        .await,
    );
    assert_eq!(mme, "ha-managed-method-executer-host-21");
    let exec = |method: &str, args: &str| {
        govc_envelope(&format!(
            r#"<ExecuteSoap xmlns="urn:vim25"><_this type="ReflectManagedMethodExecuter">{mme}</_this><moid>{}</moid><version>urn:vim25/5.0</version><method>{method}</method>{args}</ExecuteSoap>"#,
            if method.starts_with("vim.CLIInfo") {
                "ha-dynamic-type-manager-local-cli-cliinfo"
            } else {
                "ha-cli-handler-system-maintenanceMode"
            }
        ))
    };
    let info = ok(
        &sim,
        &cookie,
        exec(
            "vim.CLIInfo.FetchCLIInfo",
            "<argument><name>typeName</name><val>&lt;typeName&gt;vim.EsxCLI.system.maintenanceMode&lt;/typeName&gt;</val></argument>",
        ),
    )
    .await;
    assert!(
        info.contains("&lt;aliases&gt;--enable&lt;/aliases&gt;"),
        "{info}"
    );
    let get = exec("vim.EsxCLI.system.maintenanceMode.get", "");
    let before = ok(&sim, &cookie, get.clone()).await;
    assert!(before.contains("&gt;Disabled&lt;/obj&gt;"), "{before}");
    // The recorded govc request (its lower-case handler id) enters maintenance mode.
    let set = fixture("govc-ExecuteSoap-maintenanceMode-set.xml", &[])
        .replace("ha-managed-method-executer-host-42", &mme);
    let body = ok(&sim, &cookie, set.clone()).await;
    assert!(!body.contains("<fault>"), "{body}");
    assert_eq!(sim.host_in_maintenance("host-21"), Some(true));
    let after = ok(&sim, &cookie, get).await;
    assert!(after.contains("&gt;Enabled&lt;/obj&gt;"), "{after}");
    let twice = ok(&sim, &cookie, set).await;
    assert!(
        twice.contains("<faultMsg>Maintenance mode is already enabled.</faultMsg>"),
        "{twice}"
    );
}

#[tokio::test]
async fn wait_for_updates_ex_honours_max_wait_seconds() {
    let sim = Simulator::new(SimConfig::default());
    let cookie = login(&sim).await;
    let collector = new_collector(&sim, &cookie).await;
    let mine = [(RECORDED_COLLECTOR[0], collector.as_str())];
    ok(
        &sim,
        &cookie,
        fixture("govc-object-collect-CreateFilter.xml", &mine),
    )
    .await;
    let first = ok(&sim, &cookie, wait_ex(&collector, "", Some(0))).await;
    let version = version_of(&first);
    let empty = "<WaitForUpdatesExResponse xmlns=\"urn:vim25\"></WaitForUpdatesExResponse>";
    let polled = ok(&sim, &cookie, wait_ex(&collector, &version, Some(0))).await;
    assert!(polled.contains(empty), "0 polls: {polled}");
    let started = Instant::now();
    let waited = ok(&sim, &cookie, wait_ex(&collector, &version, Some(1))).await;
    assert!(waited.contains(empty), "{waited}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "answered before maxWaitSeconds"
    );
}

#[tokio::test]
async fn wait_for_updates_without_max_wait_blocks_until_a_change() {
    let sim = Simulator::new(SimConfig::default());
    let cookie = login(&sim).await;
    for legacy in [false, true] {
        let collector = new_collector(&sim, &cookie).await;
        let mine = [(RECORDED_COLLECTOR[0], collector.as_str())];
        ok(
            &sim,
            &cookie,
            fixture("govc-object-collect-CreateFilter.xml", &mine),
        )
        .await;
        let first = ok(&sim, &cookie, wait_ex(&collector, "", None)).await;
        let request = if legacy {
            govc_envelope(&format!(
                r#"<WaitForUpdates xmlns="urn:vim25"><_this type="PropertyCollector">{collector}</_this><version>{}</version></WaitForUpdates>"#,
                version_of(&first)
            ))
        } else {
            wait_ex(&collector, &version_of(&first), None)
        };
        let waiter = {
            let (sim, cookie) = (sim.clone(), cookie.clone());
            tokio::spawn(async move { post(&sim, &cookie, request).await })
        };
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            !waiter.is_finished(),
            "legacy={legacy}: answered without a change"
        );
        let toggle = if legacy {
            fixture("govc-EnterMaintenanceMode_Task.xml", &[])
                .replace("EnterMaintenanceMode_Task", "ExitMaintenanceMode_Task")
                .replace(
                    "<timeout>0</timeout><evacuatePoweredOffVms>false</evacuatePoweredOffVms>",
                    "<timeout>0</timeout>",
                )
        } else {
            fixture("govc-EnterMaintenanceMode_Task.xml", &[])
        };
        ok(&sim, &cookie, toggle).await;
        let answer = tokio::time::timeout(Duration::from_secs(60), waiter)
            .await
            .expect("the wait ends after the change")
            .expect("task");
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert!(
            answer.body.contains(&format!(
                r#"<name>runtime.inMaintenanceMode</name><op>assign</op><val xsi:type="xsd:boolean">{}</val>"#,
                !legacy
            )),
            "legacy={legacy}: {}",
            answer.body
        );
    }
}

#[tokio::test]
async fn a_long_task_runs_until_its_duration_has_passed() {
    let sim = Simulator::new(SimConfig {
        task_duration: Duration::from_secs(2),
        ..SimConfig::default()
    });
    let cookie = login(&sim).await;
    let task = returnval(
        &ok(
            &sim,
            &cookie,
            fixture("govc-EnterMaintenanceMode_Task.xml", &[]),
        )
        .await,
    );
    assert_eq!(sim.host_in_maintenance("host-21"), Some(false));
    let again = post(
        &sim,
        &cookie,
        fixture("govc-EnterMaintenanceMode_Task.xml", &[]),
    )
    .await;
    assert!(
        again.body.contains("InvalidState"),
        "a second enter while the first runs: {}",
        again.body
    );
    let collector = new_collector(&sim, &cookie).await;
    ok(
        &sim,
        &cookie,
        govc_envelope(&format!(
            r#"<CreateFilter xmlns="urn:vim25"><_this type="PropertyCollector">{collector}</_this><spec><propSet><type>Task</type><pathSet>info</pathSet></propSet><objectSet><obj type="Task">{task}</obj></objectSet></spec><partialUpdates>false</partialUpdates></CreateFilter>"#
        )),
    )
    .await;
    let first = ok(&sim, &cookie, wait_ex(&collector, "", None)).await;
    assert!(first.contains("<state>running</state>"), "{first}");
    assert!(first.contains("<progress>"), "{first}");
    // Each answer reports progress until the task succeeds (bounded: 100 answers).
    let mut version = version_of(&first);
    let mut done = None;
    for _ in 0..100 {
        let update = ok(&sim, &cookie, wait_ex(&collector, &version, None)).await;
        version = version_of(&update);
        if update.contains("<state>success</state>") {
            done = Some(update);
            break;
        }
        assert!(update.contains("<state>running</state>"), "{update}");
        assert_eq!(sim.host_in_maintenance("host-21"), Some(false));
    }
    let done = done.expect("the task succeeds");
    assert!(done.contains("<completeTime>"), "{done}");
    assert_eq!(sim.host_in_maintenance("host-21"), Some(true));
}
