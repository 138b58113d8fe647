//! End-to-end tests of `Simulator::handle` over both protocols and the file transfer path.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;

const V: &str = "/sdk/vim25/8.0.3.0";

/// A response as status, headers and body text.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_string())
    }
}

async fn send(
    sim: &Simulator,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body.into())).expect("request");
    let resp = sim.handle(req).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn json_login(sim: &Simulator) -> String {
    let r = send(
        sim,
        "POST",
        &format!("{V}/SessionManager/SessionManager/Login"),
        &[("content-type", "application/json")],
        r#"{"userName":"administrator@vsphere.local","password":"VMware1!","locale":"en"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.header("vmware-api-session-id").expect("token header")
}

async fn get(sim: &Simulator, token: &str, path: &str) -> Reply {
    send(
        sim,
        "GET",
        &format!("{V}/{path}"),
        &[("vmware-api-session-id", token)],
        "",
    )
    .await
}

async fn post(sim: &Simulator, token: &str, path: &str, body: &str) -> Reply {
    send(
        sim,
        "POST",
        &format!("{V}/{path}"),
        &[("vmware-api-session-id", token)],
        body.to_string(),
    )
    .await
}

fn assert_fault(r: &Reply, type_name: &str) -> Value {
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.body);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    let v = r.json();
    assert_eq!(v["_typeName"], type_name, "{}", r.body);
    v
}

fn assert_soap_fault(r: &Reply, type_name: &str) {
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.body);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/xml; charset=utf-8")
    );
    assert!(
        r.body.contains(&format!(
            "<{type_name}Fault xmlns=\"urn:vim25\" xsi:type=\"{type_name}\">"
        )),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn json_login_returns_token_only_in_header() {
    let sim = Simulator::new(SimConfig::default());
    let r = send(
        &sim,
        "POST",
        &format!("{V}/SessionManager/SessionManager/Login"),
        &[],
        r#"{"_typeName":"LoginRequestType","userName":"administrator@vsphere.local","password":"VMware1!"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let token = r.header("vmware-api-session-id").expect("token");
    assert!(token.len() >= 32 && token.chars().all(|c| c.is_ascii_hexdigit()));
    let body = r.json();
    assert_eq!(body["_typeName"], "UserSession");
    assert_eq!(body["userName"], "VSPHERE.LOCAL\\Administrator");
    assert_ne!(body["key"], Value::String(token.clone()));
    assert!(!r.body.contains(&token));

    let current = get(&sim, &token, "SessionManager/SessionManager/currentSession").await;
    assert_eq!(current.json()["key"], body["key"]);
    let anonymous = send(
        &sim,
        "GET",
        &format!("{V}/SessionManager/SessionManager/currentSession"),
        &[],
        "",
    )
    .await;
    assert_eq!(
        (anonymous.status, anonymous.body.as_str()),
        (StatusCode::OK, "null")
    );

    let out = post(&sim, &token, "SessionManager/SessionManager/Logout", "").await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(
        get(&sim, &token, "SessionManager/SessionManager/currentSession")
            .await
            .body,
        "null"
    );
    assert_fault(
        &get(&sim, &token, "HostSystem/host-21/name").await,
        "NotAuthenticated",
    );
}

#[tokio::test]
async fn json_wrong_password_and_other_users() {
    let config = SimConfig {
        users: vec![("ops@corp.example".into(), "pw".into())],
        ..SimConfig::default()
    };
    let sim = Simulator::new(config);
    let bad = send(
        &sim,
        "POST",
        &format!("{V}/SessionManager/SessionManager/Login"),
        &[],
        r#"{"userName":"ops@corp.example","password":"nope"}"#,
    )
    .await;
    let fault = assert_fault(&bad, "InvalidLogin");
    assert_eq!(
        fault["faultstring"],
        "Cannot complete login due to an incorrect user name or password."
    );
    let good = send(
        &sim,
        "POST",
        &format!("{V}/SessionManager/SessionManager/Login"),
        &[],
        r#"{"userName":"ops@corp.example","password":"pw"}"#,
    )
    .await;
    assert_eq!(good.json()["userName"], "CORP.EXAMPLE\\ops");
}

#[tokio::test]
async fn json_reads_host_properties() {
    let sim = Simulator::new(SimConfig::default());
    let token = json_login(&sim).await;
    let runtime = get(&sim, &token, "HostSystem/host-21/runtime").await;
    assert_eq!(runtime.status, StatusCode::OK);
    let runtime = runtime.json();
    assert_eq!(runtime["_typeName"], "HostRuntimeInfo");
    assert_eq!(runtime["inMaintenanceMode"], false);
    assert_eq!(runtime["connectionState"], "connected");
    assert_eq!(runtime["powerState"], "poweredOn");
    assert_eq!(
        get(&sim, &token, "HostSystem/host-22/name").await.json(),
        "esx-22.example.test"
    );
    let cm = get(&sim, &token, "HostSystem/host-23/configManager")
        .await
        .json();
    assert_eq!(cm["_typeName"], "HostConfigManager");
    assert_eq!(
        cm["hostAccessManager"],
        json!({"_typeName": "ManagedObjectReference", "type": "HostAccessManager", "value": "ham-23"})
    );
    assert_eq!(
        get(&sim, &token, "HostSystem/host-21/parent").await.json()["value"],
        "domain-c7"
    );
    assert_eq!(
        get(&sim, &token, "HostAccessManager/ham-21/lockdownMode")
            .await
            .json(),
        "lockdownDisabled"
    );
    let content = send(
        &sim,
        "GET",
        &format!("{V}/ServiceInstance/ServiceInstance/content"),
        &[],
        "",
    )
    .await;
    assert_eq!(content.json()["_typeName"], "ServiceContent");
    let content = send(
        &sim,
        "POST",
        &format!("{V}/ServiceInstance/ServiceInstance/RetrieveServiceContent"),
        &[],
        "",
    )
    .await;
    assert_eq!(content.json()["rootFolder"]["value"], "group-d1");
}

#[tokio::test]
async fn json_maintenance_mode_and_tasks() {
    let sim = Simulator::new(SimConfig::default());
    let token = json_login(&sim).await;
    let body = r#"{"_typeName":"EnterMaintenanceModeRequestType","timeout":300,"evacuatePoweredOffVms":true,
        "maintenanceSpec":{"_typeName":"HostMaintenanceSpec","vsanMode":{"_typeName":"VsanHostDecommissionMode","objectAction":"ensureObjectAccessibility"},"purpose":"hostUpgrade"}}"#;
    let r = post(
        &sim,
        &token,
        "HostSystem/host-21/EnterMaintenanceMode_Task",
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let task = r.json();
    assert_eq!(task["_typeName"], "ManagedObjectReference");
    assert_eq!(task["type"], "Task");
    let task_id = task["value"].as_str().expect("task id").to_string();
    assert!(task_id.starts_with("task-"));
    assert_eq!(sim.host_in_maintenance("host-21"), Some(true));
    assert_eq!(
        get(&sim, &token, "HostSystem/host-21/runtime").await.json()["inMaintenanceMode"],
        true
    );

    let info = get(&sim, &token, &format!("Task/{task_id}/info"))
        .await
        .json();
    assert_eq!(info["_typeName"], "TaskInfo");
    assert_eq!(info["state"], "success");
    assert_eq!(info["descriptionId"], "HostSystem.enterMaintenanceMode");
    assert_eq!(info["entity"]["value"], "host-21");
    assert_eq!(info["entityName"], "esx-21.example.test");
    assert_eq!(info["task"]["value"], task_id.as_str());
    assert!(info["completeTime"].as_str().expect("time").ends_with('Z'));

    assert_fault(
        &post(
            &sim,
            &token,
            "HostSystem/host-21/EnterMaintenanceMode_Task",
            r#"{"timeout":0}"#,
        )
        .await,
        "InvalidState",
    );
    let exit = post(
        &sim,
        &token,
        "HostSystem/host-21/ExitMaintenanceMode_Task",
        r#"{"timeout":0}"#,
    )
    .await;
    assert_eq!(exit.status, StatusCode::OK);
    assert_eq!(sim.host_in_maintenance("host-21"), Some(false));
    assert_fault(
        &post(
            &sim,
            &token,
            "HostSystem/host-21/ExitMaintenanceMode_Task",
            "{}",
        )
        .await,
        "InvalidState",
    );
    assert_fault(
        &post(
            &sim,
            &token,
            "HostSystem/host-22/EnterMaintenanceMode_Task",
            r#"{"timeout":"x"}"#,
        )
        .await,
        "InvalidRequest",
    );
    assert_eq!(sim.host_in_maintenance("host-22"), Some(false));
    assert_eq!(sim.host_in_maintenance("host-99"), None);
}

#[tokio::test]
async fn json_lockdown_modes() {
    let sim = Simulator::new(SimConfig::default());
    let token = json_login(&sim).await;
    let r = post(
        &sim,
        &token,
        "HostAccessManager/ham-22/ChangeLockdownMode",
        r#"{"_typeName":"ChangeLockdownModeRequestType","mode":"lockdownStrict"}"#,
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::NO_CONTENT, ""));
    assert_eq!(
        sim.lockdown_mode("ham-22").as_deref(),
        Some("lockdownStrict")
    );
    assert_eq!(
        get(&sim, &token, "HostAccessManager/ham-22/lockdownMode")
            .await
            .json(),
        "lockdownStrict"
    );
    let bad = post(
        &sim,
        &token,
        "HostAccessManager/ham-22/ChangeLockdownMode",
        r#"{"mode":"lockdownStrictest"}"#,
    )
    .await;
    assert_eq!(
        assert_fault(&bad, "InvalidArgument")["invalidProperty"],
        "mode"
    );
    assert_eq!(
        sim.lockdown_mode("ham-22").as_deref(),
        Some("lockdownStrict")
    );

    assert_eq!(
        post(&sim, &token, "HostSystem/host-23/EnterLockdownMode", "")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        sim.lockdown_mode("ham-23").as_deref(),
        Some("lockdownNormal")
    );
    assert_eq!(
        post(&sim, &token, "HostSystem/host-23/ExitLockdownMode", "{}")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        sim.lockdown_mode("ham-23").as_deref(),
        Some("lockdownDisabled")
    );
    assert_eq!(sim.lockdown_mode("ham-99"), None);
}

#[tokio::test]
async fn json_faults_are_shaped_like_vcenter() {
    let sim = Simulator::new(SimConfig::default());
    let unauth = send(
        &sim,
        "POST",
        &format!("{V}/HostSystem/host-21/EnterMaintenanceMode_Task"),
        &[],
        r#"{"timeout":0}"#,
    )
    .await;
    let fault = assert_fault(&unauth, "NotAuthenticated");
    assert_eq!(fault["faultstring"], "The session is not authenticated.");
    assert_eq!(fault["privilegeId"], "System.View");
    assert_eq!(
        fault["object"],
        json!({"_typeName": "ManagedObjectReference", "type": "HostSystem", "value": "host-21"})
    );
    assert_eq!(sim.host_in_maintenance("host-21"), Some(false));
    let bogus = send(
        &sim,
        "GET",
        &format!("{V}/HostSystem/host-21/name"),
        &[("vmware-api-session-id", "deadbeef")],
        "",
    )
    .await;
    assert_fault(&bogus, "NotAuthenticated");

    let token = json_login(&sim).await;
    let missing = post(
        &sim,
        &token,
        "HostSystem/host-999/EnterMaintenanceMode_Task",
        r#"{"timeout":0}"#,
    )
    .await;
    let fault = assert_fault(&missing, "ManagedObjectNotFound");
    assert_eq!(
        fault["obj"],
        json!({"_typeName": "ManagedObjectReference", "type": "HostSystem", "value": "host-999"})
    );
    assert_fault(
        &get(&sim, &token, "HostSystem/host-999/name").await,
        "ManagedObjectNotFound",
    );
    let unknown_method = post(&sim, &token, "HostSystem/host-21/FrobnicateHost_Task", "{}").await;
    assert_eq!(
        assert_fault(&unknown_method, "MethodNotFound")["method"],
        "FrobnicateHost_Task"
    );
    assert_eq!(
        assert_fault(
            &get(&sim, &token, "HostSystem/host-21/frobnication").await,
            "InvalidProperty"
        )["name"],
        "frobnication"
    );
    assert_fault(
        &post(
            &sim,
            &token,
            "HostSystem/host-21/EnterMaintenanceMode_Task",
            "{not json",
        )
        .await,
        "InvalidRequest",
    );
    assert_fault(
        &post(
            &sim,
            &token,
            "HostSystem/host-21/EnterMaintenanceMode_Task",
            "[]",
        )
        .await,
        "InvalidRequest",
    );
    assert_fault(
        &send(
            &sim,
            "DELETE",
            &format!("{V}/HostSystem/host-21/name"),
            &[("vmware-api-session-id", &token)],
            "",
        )
        .await,
        "InvalidRequest",
    );
}

#[tokio::test]
async fn json_container_view_and_property_collector() {
    let sim = Simulator::new(SimConfig::default());
    let token = json_login(&sim).await;
    let view = post(
        &sim,
        &token,
        "ViewManager/ViewManager/CreateContainerView",
        r#"{"container":{"_typeName":"ManagedObjectReference","type":"Folder","value":"group-d1"},"type":["HostSystem"],"recursive":true}"#,
    )
    .await
    .json();
    assert_eq!(view["type"], "ContainerView");
    let id = view["value"].as_str().expect("view id");
    let encoded = id.replace('[', "%5B").replace(']', "%5D");
    let hosts = get(&sim, &token, &format!("ContainerView/{encoded}/view"))
        .await
        .json();
    assert_eq!(hosts.as_array().map(Vec::len), Some(3));
    let result = post(
        &sim,
        &token,
        "PropertyCollector/propertyCollector/RetrievePropertiesEx",
        r#"{"specSet":[{"propSet":[{"type":"HostSystem","pathSet":["runtime.inMaintenanceMode","configManager.hostAccessManager"]}],
            "objectSet":[{"obj":{"type":"HostSystem","value":"host-22"}}]}],"options":{}}"#,
    )
    .await
    .json();
    assert_eq!(result["_typeName"], "RetrieveResult");
    assert_eq!(
        result["objects"][0]["propSet"][0]["val"],
        json!({"_typeName": "boolean", "_value": false})
    );
    assert_eq!(result["objects"][0]["propSet"][1]["val"]["value"], "ham-22");
    // Another session cannot see this session's view.
    let other = json_login(&sim).await;
    assert_fault(
        &get(&sim, &other, &format!("ContainerView/{encoded}/view")).await,
        "ManagedObjectNotFound",
    );
}

const SOAP_PROLOGUE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
<soapenv:Body>"#;
const SOAP_EPILOGUE: &str = "</soapenv:Body>\n</soapenv:Envelope>";

fn envelope(method_xml: &str) -> String {
    format!("{SOAP_PROLOGUE}{method_xml}{SOAP_EPILOGUE}")
}

async fn soap(sim: &Simulator, cookie: &str, method_xml: &str) -> Reply {
    send(
        sim,
        "POST",
        "/sdk",
        &[
            ("cookie", cookie),
            ("soapaction", "\"urn:vim25/8.0.3.0\""),
            ("content-type", "text/xml; charset=UTF-8"),
            (
                "user-agent",
                "pyvmomi 9.1.1.0 OSS Python/3.11.7 (Linux; x86_64)",
            ),
        ],
        envelope(method_xml),
    )
    .await
}

/// Logs in over SOAP with pyVmomi's exact envelope; returns the Set-Cookie header as sent.
async fn soap_login(sim: &Simulator) -> String {
    let r = soap(
        sim,
        "",
        r#"<Login xmlns="urn:vim25"><_this versionId="8.0.3.0" type="SessionManager">SessionManager</_this><userName versionId="8.0.3.0">administrator@vsphere.local</userName><password versionId="8.0.3.0">VMware1!</password></Login>"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body
            .contains("<LoginResponse xmlns=\"urn:vim25\"><returnval"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("<userName>VSPHERE.LOCAL\\Administrator</userName>"),
        "{}",
        r.body
    );
    r.header("set-cookie").expect("Set-Cookie")
}

#[tokio::test]
async fn soap_login_sets_vcenter_cookie_and_accepts_pyvmomi_echo() {
    let sim = Simulator::new(SimConfig::default());
    let content = soap(&sim, "", r#"<RetrieveServiceContent xmlns="urn:vim25"><_this versionId="8.0.3.0" type="ServiceInstance">ServiceInstance</_this></RetrieveServiceContent>"#).await;
    assert_eq!(content.status, StatusCode::OK);
    assert!(content.body.contains(r#"<RetrieveServiceContentResponse xmlns="urn:vim25"><returnval xsi:type="ServiceContent"><rootFolder type="Folder">group-d1</rootFolder>"#), "{}", content.body);

    let cookie = soap_login(&sim).await;
    let token = cookie
        .strip_prefix("vmware_soap_session=\"")
        .and_then(|rest| rest.strip_suffix("\"; Path=/; HttpOnly; Secure;"))
        .expect("vCenter cookie form");
    assert!(token.len() >= 32 && token.chars().all(|c| c.is_ascii_hexdigit()));

    // pyVmomi echoes the whole Set-Cookie string back, attributes and all.
    let echoed = format!("{cookie} ; HttpOnly");
    let r = soap(&sim, &echoed, r#"<Fetch xmlns="urn:vim25"><_this versionId="8.0.3.0" type="HostSystem">host-21</_this><prop versionId="8.0.3.0">runtime</prop></Fetch>"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains(r#"<FetchResponse xmlns="urn:vim25"><returnval xsi:type="HostRuntimeInfo"><connectionState>connected</connectionState>"#), "{}", r.body);
    let r = soap(&sim, &echoed, r#"<Fetch xmlns="urn:vim25"><_this versionId="8.0.3.0" type="HostSystem">host-21</_this><prop versionId="8.0.3.0">name</prop></Fetch>"#).await;
    assert!(
        r.body
            .contains(r#"<returnval xsi:type="xsd:string">esx-21.example.test</returnval>"#),
        "{}",
        r.body
    );

    // The same session works as a VI/JSON token, and vice versa.
    assert_eq!(
        get(&sim, token, "HostSystem/host-21/name").await.json(),
        "esx-21.example.test"
    );
    let json_token = json_login(&sim).await;
    let r = soap(&sim, &format!("vmware_soap_session={json_token}"), r#"<CurrentTime xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></CurrentTime>"#).await;
    assert!(
        r.body
            .contains("<CurrentTimeResponse xmlns=\"urn:vim25\"><returnval>"),
        "{}",
        r.body
    );

    let out = soap(&sim, &echoed, r#"<Logout xmlns="urn:vim25"><_this versionId="8.0.3.0" type="SessionManager">SessionManager</_this></Logout>"#).await;
    assert!(
        out.body
            .contains(r#"<LogoutResponse xmlns="urn:vim25"></LogoutResponse>"#)
    );
    let after = soap(&sim, &echoed, r#"<Fetch xmlns="urn:vim25"><_this type="HostSystem">host-21</_this><prop>name</prop></Fetch>"#).await;
    assert_soap_fault(&after, "NotAuthenticated");
}

#[tokio::test]
async fn soap_faults() {
    let sim = Simulator::new(SimConfig::default());
    let r = soap(&sim, "", r#"<EnterMaintenanceMode_Task xmlns="urn:vim25"><_this type="HostSystem">host-21</_this><timeout>0</timeout></EnterMaintenanceMode_Task>"#).await;
    assert_soap_fault(&r, "NotAuthenticated");
    assert!(
        r.body.contains(
            r#"<object type="HostSystem">host-21</object><privilegeId>System.View</privilegeId>"#
        ),
        "{}",
        r.body
    );
    let r = soap(&sim, "", r#"<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>administrator@vsphere.local</userName><password>wrong</password></Login>"#).await;
    assert_soap_fault(&r, "InvalidLogin");
    assert!(r.body.contains("<faultstring>Cannot complete login due to an incorrect user name or password.</faultstring>"));
    assert!(r.header("set-cookie").is_none());

    let cookie = soap_login(&sim).await;
    let r = soap(&sim, &cookie, r#"<EnterMaintenanceMode_Task xmlns="urn:vim25"><_this versionId="8.0.3.0" type="HostSystem">host-999</_this><timeout versionId="8.0.3.0">0</timeout></EnterMaintenanceMode_Task>"#).await;
    assert_soap_fault(&r, "ManagedObjectNotFound");
    assert!(r.body.contains(r#"<obj type="HostSystem">host-999</obj>"#));
    let enter = r#"<EnterMaintenanceMode_Task xmlns="urn:vim25"><_this versionId="8.0.3.0" type="HostSystem">host-22</_this><timeout versionId="8.0.3.0">300</timeout><evacuatePoweredOffVms versionId="8.0.3.0">true</evacuatePoweredOffVms><maintenanceSpec versionId="8.0.3.0"><vsanMode><objectAction>ensureObjectAccessibility</objectAction></vsanMode></maintenanceSpec></EnterMaintenanceMode_Task>"#;
    let r = soap(&sim, &cookie, enter).await;
    assert!(
        r.body.contains(
            r#"<EnterMaintenanceMode_TaskResponse xmlns="urn:vim25"><returnval type="Task">task-"#
        ),
        "{}",
        r.body
    );
    assert_soap_fault(&soap(&sim, &cookie, enter).await, "InvalidState");
    assert_soap_fault(&soap(&sim, &cookie, "<Broken").await, "InvalidRequest");
    assert_soap_fault(
        &soap(
            &sim,
            &cookie,
            r#"<Fetch xmlns="urn:vim25"><prop>name</prop></Fetch>"#,
        )
        .await,
        "InvalidRequest",
    );
    assert_soap_fault(
        &soap(
            &sim,
            &cookie,
            r#"<Frob xmlns="urn:vim25"><_this type="HostSystem">host-21</_this></Frob>"#,
        )
        .await,
        "MethodNotFound",
    );
}

#[tokio::test]
async fn soap_lockdown_calls_and_prefixed_envelopes() {
    let sim = Simulator::new(SimConfig::default());
    let cookie = soap_login(&sim).await;
    let r = soap(&sim, &cookie, r#"<ChangeLockdownMode xmlns="urn:vim25"><_this versionId="8.0.3.0" type="HostAccessManager">ham-21</_this><mode versionId="8.0.3.0">lockdownNormal</mode></ChangeLockdownMode>"#).await;
    assert!(
        r.body.contains(
            r#"<ChangeLockdownModeResponse xmlns="urn:vim25"></ChangeLockdownModeResponse>"#
        ),
        "{}",
        r.body
    );
    assert_eq!(
        sim.lockdown_mode("ham-21").as_deref(),
        Some("lockdownNormal")
    );
    let r = soap(&sim, &cookie, r#"<Fetch xmlns="urn:vim25"><_this type="HostAccessManager">ham-21</_this><prop>lockdownMode</prop></Fetch>"#).await;
    assert!(
        r.body
            .contains(r#"<returnval xsi:type="HostLockdownMode">lockdownNormal</returnval>"#),
        "{}",
        r.body
    );
    // govc style: no prefix on the envelope, prefixed method element.
    let body = r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><vim25:ExitLockdownMode xmlns:vim25="urn:vim25"><vim25:_this type="HostSystem">host-21</vim25:_this></vim25:ExitLockdownMode></Body></Envelope>"#;
    let r = send(
        &sim,
        "POST",
        "/sdk/vimService",
        &[("cookie", &cookie)],
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        sim.lockdown_mode("ham-21").as_deref(),
        Some("lockdownDisabled")
    );
    let r = soap(&sim, &cookie, r#"<EnterLockdownMode xmlns="urn:vim25"><_this type="HostSystem">host-22</_this></EnterLockdownMode>"#).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        sim.lockdown_mode("ham-22").as_deref(),
        Some("lockdownNormal")
    );
    let r = soap(&sim, &cookie, r#"<ChangeLockdownMode xmlns="urn:vim25"><_this type="HostAccessManager">ham-21</_this><mode>bogus</mode></ChangeLockdownMode>"#).await;
    assert_soap_fault(&r, "InvalidArgument");
}

#[tokio::test]
async fn soap_task_wait_as_pyvim_does_it() {
    let sim = Simulator::new(SimConfig::default());
    let cookie = soap_login(&sim).await;
    let r = soap(&sim, &cookie, r#"<CreateContainerView xmlns="urn:vim25"><_this versionId="8.0.3.0" type="ViewManager">ViewManager</_this><container versionId="8.0.3.0" type="Folder">group-d1</container><type>HostSystem</type><recursive versionId="8.0.3.0">true</recursive></CreateContainerView>"#).await;
    let view = r
        .body
        .split(r#"<returnval type="ContainerView">"#)
        .nth(1)
        .and_then(|s| s.split("</returnval>").next())
        .expect("view id")
        .to_string();
    assert!(view.starts_with("session["));
    let r = soap(&sim, &cookie, &format!(r#"<Fetch xmlns="urn:vim25"><_this type="ContainerView">{view}</_this><prop>view</prop></Fetch>"#)).await;
    assert!(r.body.contains(r#"<returnval xsi:type="ArrayOfManagedObjectReference"><ManagedObjectReference type="HostSystem">host-21</ManagedObjectReference><ManagedObjectReference type="HostSystem">host-22</ManagedObjectReference>"#), "{}", r.body);

    let r = soap(&sim, &cookie, r#"<EnterMaintenanceMode_Task xmlns="urn:vim25"><_this type="HostSystem">host-23</_this><timeout>0</timeout></EnterMaintenanceMode_Task>"#).await;
    let task = r
        .body
        .split(r#"<returnval type="Task">"#)
        .nth(1)
        .and_then(|s| s.split("</returnval>").next())
        .expect("task id")
        .to_string();
    let r = soap(&sim, &cookie, &format!(r#"<CreateFilter xmlns="urn:vim25"><_this versionId="8.0.3.0" type="PropertyCollector">propertyCollector</_this><spec versionId="8.0.3.0"><propSet><type>Task</type><all>true</all></propSet><objectSet><obj type="Task">{task}</obj></objectSet></spec><partialUpdates versionId="8.0.3.0">true</partialUpdates></CreateFilter>"#)).await;
    let filter = r
        .body
        .split(r#"<returnval type="PropertyFilter">"#)
        .nth(1)
        .and_then(|s| s.split("</returnval>").next())
        .expect("filter id")
        .to_string();
    let r = soap(&sim, &cookie, r#"<WaitForUpdates xmlns="urn:vim25"><_this versionId="8.0.3.0" type="PropertyCollector">propertyCollector</_this></WaitForUpdates>"#).await;
    assert!(r.body.contains("<kind>enter</kind>"), "{}", r.body);
    assert!(
        r.body.contains(r#"<val xsi:type="TaskInfo"><key>"#),
        "{}",
        r.body
    );
    assert!(r.body.contains("<state>success</state>"), "{}", r.body);
    let r = soap(&sim, &cookie, r#"<WaitForUpdatesEx xmlns="urn:vim25"><_this type="PropertyCollector">propertyCollector</_this><version>1</version><options><maxWaitSeconds>0</maxWaitSeconds></options></WaitForUpdatesEx>"#).await;
    assert!(
        r.body
            .contains(r#"<WaitForUpdatesExResponse xmlns="urn:vim25"></WaitForUpdatesExResponse>"#),
        "{}",
        r.body
    );
    let r = soap(
        &sim,
        &cookie,
        &format!(
            r#"<Fetch xmlns="urn:vim25"><_this type="Task">{task}</_this><prop>info</prop></Fetch>"#
        ),
    )
    .await;
    assert!(
        r.body.contains(r#"<returnval xsi:type="TaskInfo">"#),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("<descriptionId>HostSystem.enterMaintenanceMode</descriptionId>")
    );
    let r = soap(&sim, &cookie, &format!(r#"<DestroyPropertyFilter xmlns="urn:vim25"><_this type="PropertyFilter">{filter}</_this></DestroyPropertyFilter>"#)).await;
    assert!(
        r.body.contains("<DestroyPropertyFilterResponse"),
        "{}",
        r.body
    );
    let r = soap(&sim, &cookie, r#"<RetrievePropertiesEx xmlns="urn:vim25"><_this type="PropertyCollector">propertyCollector</_this><specSet><propSet><type>HostSystem</type><pathSet>name</pathSet><pathSet>runtime.inMaintenanceMode</pathSet></propSet><objectSet><obj type="HostSystem">host-23</obj></objectSet></specSet><options></options></RetrievePropertiesEx>"#).await;
    assert!(r.body.contains(r#"<returnval xsi:type="RetrieveResult"><objects xsi:type="ObjectContent"><obj type="HostSystem">host-23</obj><propSet xsi:type="DynamicProperty"><name>name</name><val xsi:type="xsd:string">esx-23.example.test</val></propSet><propSet xsi:type="DynamicProperty"><name>runtime.inMaintenanceMode</name><val xsi:type="xsd:boolean">true</val></propSet></objects></returnval>"#), "{}", r.body);
}

#[tokio::test]
async fn folder_upload_streams_and_download_synthesises() {
    let sim = Simulator::new(SimConfig::default());
    let token = json_login(&sim).await;
    let chunks: Vec<Result<http_body::Frame<Bytes>, Infallible>> = (0..50u8)
        .map(|i| Ok(http_body::Frame::data(Bytes::from(vec![i; 10_000]))))
        .collect();
    let mut expected = Sha256::new();
    for i in 0..50u8 {
        expected.update(vec![i; 10_000]);
    }
    let expected: String = expected
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let req = Request::builder()
        .method("PUT")
        .uri("/folder/iso/big.iso?dcPath=Datacenter&dsName=datastore1")
        .header("vmware-api-session-id", &token)
        .body(StreamBody::new(futures_util::stream::iter(chunks)))
        .expect("request");
    let resp = sim.handle(req).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.expect("body").to_bytes())
            .expect("json");
    assert_eq!(body, json!({"bytes": 500_000, "sha256": expected}));

    let r = send(
        &sim,
        "GET",
        "/folder/iso/big.iso?dcPath=Datacenter&dsName=datastore1",
        &[("vmware-api-session-id", &token)],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length").as_deref(), Some("500000"));

    let req = Request::builder()
        .method("GET")
        .uri("/folder/gen.bin?dcPath=Datacenter&dsName=datastore1&size=200000")
        .header("cookie", format!("vmware_soap_session=\"{token}\""))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = sim.handle(req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let (mut total, mut frames) = (0usize, 0usize);
    while let Some(frame) = body.frame().await {
        let data = frame.expect("frame").into_data().expect("data");
        assert!(data.len() <= 64 * 1024);
        assert!(
            data.iter()
                .enumerate()
                .all(|(i, b)| *b == ((total + i) % 256) as u8)
        );
        total += data.len();
        frames += 1;
    }
    assert_eq!((total, frames), (200_000, 4));

    let anon = send(&sim, "GET", "/folder/gen.bin?dsName=d&size=10", &[], "").await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    let missing = send(
        &sim,
        "GET",
        "/folder/none.bin?dsName=d",
        &[("vmware-api-session-id", &token)],
        "",
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn journal_records_calls_and_versions_file_is_served() {
    let sim = Simulator::new(SimConfig::default());
    let versions = send(&sim, "GET", "/sdk/vimServiceVersions.xml", &[], "").await;
    assert_eq!(versions.status, StatusCode::OK);
    assert!(
        versions
            .body
            .contains("<name>urn:vim25</name>\n  <version>8.0.3.0</version>")
    );
    let cookie = soap_login(&sim).await;
    let token = json_login(&sim).await;
    post(
        &sim,
        &token,
        "HostAccessManager/ham-21/ChangeLockdownMode",
        r#"{"mode":"lockdownNormal"}"#,
    )
    .await;
    soap(&sim, &cookie, r#"<EnterMaintenanceMode_Task xmlns="urn:vim25"><_this type="HostSystem">host-21</_this><timeout>0</timeout></EnterMaintenanceMode_Task>"#).await;
    send(&sim, "GET", "/nowhere", &[], "").await;

    let journal = sim.journal();
    assert_eq!(journal.len(), 6);
    assert_eq!(journal[0].protocol, SimProtocol::Other);
    assert_eq!(journal[1].protocol, SimProtocol::Soap);
    assert_eq!(journal[1].vim_method.as_deref(), Some("Login"));
    let change = &journal[3];
    assert_eq!(
        (change.http_method.as_str(), change.protocol),
        ("POST", SimProtocol::Json)
    );
    assert_eq!(change.vim_method.as_deref(), Some("ChangeLockdownMode"));
    assert_eq!(change.mo_id.as_deref(), Some("ham-21"));
    assert_eq!(
        change.body,
        Bytes::from_static(br#"{"mode":"lockdownNormal"}"#)
    );
    assert_eq!(
        journal[4].vim_method.as_deref(),
        Some("EnterMaintenanceMode_Task")
    );
    assert_eq!(journal[4].mo_id.as_deref(), Some("host-21"));
    assert_eq!(journal[5].path, "/nowhere");
    assert!(
        !journal
            .iter()
            .any(|e| e.vim_method.as_deref() == Some("ExitMaintenanceMode_Task"))
    );

    let big = "x".repeat(100_000);
    post(&sim, &token, "HostSystem/host-21/name", &big).await;
    assert_eq!(sim.journal().last().map(|e| e.body.len()), Some(64 * 1024));
}

#[tokio::test]
async fn response_delay_is_applied() {
    let sim = Simulator::new(SimConfig {
        response_delay: Some(Duration::from_millis(150)),
        ..SimConfig::default()
    });
    let started = Instant::now();
    let r = send(&sim, "GET", "/sdk/vimServiceVersions.xml", &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn garbage_never_panics() {
    let sim = Simulator::new(SimConfig::default());
    let token = json_login(&sim).await;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces = [
        "<",
        ">",
        "/",
        "soapenv:",
        "Envelope",
        "Body",
        "_this",
        " type=\"HostSystem\"",
        "host-21",
        "&amp;",
        "&#0;",
        "<![CDATA[",
        "]]>",
        "xmlns=\"urn:vim25\"",
        "xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"",
        "{",
        "}",
        "\"",
        ":",
        "[",
        "]",
        "null",
        "\u{0}",
        "\u{ffff}",
        "specSet",
        "selectSet",
        "EnterMaintenanceMode_Task",
    ];
    for _ in 0..400 {
        let len = (next() % 40) as usize;
        let body: String = (0..len)
            .map(|_| pieces[(next() % pieces.len() as u64) as usize])
            .collect();
        let r = send(
            &sim,
            "POST",
            "/sdk",
            &[("cookie", &format!("vmware_soap_session={token}"))],
            body.clone(),
        )
        .await;
        assert!(r.status == StatusCode::OK || r.status == StatusCode::INTERNAL_SERVER_ERROR);
        let r = post(
            &sim,
            &token,
            "PropertyCollector/propertyCollector/RetrievePropertiesEx",
            &body,
        )
        .await;
        assert!(r.status.is_success() || r.status == StatusCode::INTERNAL_SERVER_ERROR);
    }
    for path in [
        "/sdk/vim25/x/%/%/%",
        "/sdk/vim25/x/a/b/c/d/e",
        "/sdk/vim25////",
        "/folder",
        "/folder/%ff?size=abc",
    ] {
        let r = send(
            &sim,
            "POST",
            path,
            &[("vmware-api-session-id", &token)],
            "{}",
        )
        .await;
        assert!(r.status.as_u16() >= 200);
    }
}

/// The gateway boxes `handle`'s future as `BoxFuture<'static, _>` with its own boxed body type.
#[tokio::test]
async fn handle_future_is_send_for_boxed_request_bodies() {
    let sim = Simulator::new(SimConfig::default());
    let req: Request<SimBody> = Request::get("/sdk/vimServiceVersions.xml")
        .body(full_body(Bytes::new()))
        .expect("request");
    let fut: futures_util::future::BoxFuture<'static, http::Response<SimBody>> =
        Box::pin(async move { sim.handle(req).await });
    assert_eq!(fut.await.status(), StatusCode::OK);
}
