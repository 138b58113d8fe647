//! Entry points the gateway calls to classify a request.
//!
//! The flow for one request:
//!
//! 1. [`classify_path`] on the request target.
//! 2. [`PathClass::Rest`] / [`PathClass::Other`]: [`pass_through`].
//! 3. [`PathClass::VimJson`]: peek the body start; an XML body is refused
//!    ([`refuse_xml_on_vim_json`]). If [`needs_whole_body`] for the path's name,
//!    read the body whole (with a cap) and call [`classify_vim_json`] with it;
//!    otherwise call it with `None` and stream the body.
//! 4. [`PathClass::SoapEndpoint`]: a request with no body bytes at all is
//!    [`sdk_without_body`] (WSDL, `vimServiceVersions.xml`); otherwise feed
//!    chunks to a [`SoapSniffer`](super::soap::SoapSniffer) whatever the verb or
//!    `Content-Type`. Once it identifies the head: if [`needs_whole_body`] for
//!    the method, read the body whole and call [`classify_soap`]; otherwise use
//!    [`operation_from_soap_head`], forward the buffered bytes and stream the
//!    rest through the sniffer's [`tail_guard`](super::soap::SoapSniffer::tail_guard).

use serde::Serialize;

use super::fault::{FaultType, VimFault};
use super::guarded::{GuardedMethods, MethodLookup, carrier_kind, expected_target_type};
use super::json_body::{self, JsonBodyError};
use super::operation::{Call, GuardedCall, MoRef, Operation, Protocol, Route};
use super::path::{self, PathError};
pub use super::path::{PathClass, VimPath};
use super::soap::{self, SoapError, SoapHead};

/// A request the gateway refuses before it reaches vCenter, with text a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{fault_type}: {message}")]
pub struct Refusal {
    /// The vim fault type: `InvalidRequest` or `InvalidArgument`.
    pub fault_type: FaultType,
    /// What is wrong and what to do instead.
    pub message: String,
}

impl Refusal {
    /// An `InvalidRequest` refusal.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self {
            fault_type: FaultType::InvalidRequest,
            message: message.into(),
        }
    }

    /// An `InvalidArgument` refusal.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self {
            fault_type: FaultType::InvalidArgument,
            message: message.into(),
        }
    }

    /// The vim fault to answer with (PROTOCOL.md §4), text prefixed with `vcguard:`.
    pub fn to_fault(&self) -> VimFault {
        VimFault::gateway(
            self.fault_type,
            "request.refused",
            format!("vcguard: {}", self.message),
        )
    }
}

impl From<PathError> for Refusal {
    fn from(err: PathError) -> Self {
        Self::invalid_request(err.to_string())
    }
}

impl From<JsonBodyError> for Refusal {
    fn from(err: JsonBodyError) -> Self {
        Self {
            fault_type: err.fault_type(),
            message: err.to_string(),
        }
    }
}

impl From<SoapError> for Refusal {
    fn from(err: SoapError) -> Self {
        Self {
            fault_type: err.fault_type(),
            message: err.to_string(),
        }
    }
}

/// Classifies a request target (path with optional `?query`).
pub fn classify_path(path: &str) -> Result<PathClass, Refusal> {
    Ok(path::parse_path(path)?)
}

/// Whether a call named `method` (VI/JSON path name or SOAP method) must be read
/// whole and parsed before forwarding: guarded, carrier, or a guarded name in the wrong case.
pub fn needs_whole_body(method: &str, guarded: &GuardedMethods) -> bool {
    guarded.lookup(method).needs_whole_body()
}

/// Refuses an XML body on a VI/JSON path (SOAP smuggled past the path classification).
pub fn refuse_xml_on_vim_json(body_prefix: &[u8]) -> Result<(), Refusal> {
    if soap::looks_like_xml(body_prefix) {
        return Err(Refusal::invalid_request(
            "XML body on a VI/JSON path is not allowed; send SOAP to /sdk",
        ));
    }
    Ok(())
}

/// Classifies a VI/JSON request. `body` is the whole body for calls that
/// [`needs_whole_body`], `None` (or a prefix, checked for XML only) otherwise.
///
/// The verb does not matter for guarded and carrier names (`GET .../ChangeLockdownMode`
/// is the guarded call); other names are property reads under `GET`/`HEAD` and
/// method calls under any other verb.
pub fn classify_vim_json(
    path: VimPath,
    http_method: &http::Method,
    body: Option<&[u8]>,
    guarded: &GuardedMethods,
) -> Result<Operation, Refusal> {
    if let Some(body) = body {
        refuse_xml_on_vim_json(body)?;
    }
    let VimPath {
        release,
        mo_type,
        mo_id,
        name,
        ..
    } = path;
    let this = MoRef::new(mo_type, mo_id);
    let lookup = guarded.lookup(&name);
    let property_read = matches!(lookup, MethodLookup::NotGuarded)
        && (http_method == http::Method::GET || http_method == http::Method::HEAD);
    let guarded_call = match lookup {
        MethodLookup::NotGuarded => None,
        MethodLookup::WrongCase { canonical } => return Err(wrong_case(&name, canonical)),
        MethodLookup::Guarded(canonical) => {
            check_target_type(canonical, &this)?;
            Some(GuardedCall {
                method: canonical.to_owned(),
                target: this.clone(),
                body: json_body::parse_guarded_body(canonical, body)?,
                route: Route::Direct,
                via: canonical.to_owned(),
            })
        }
        MethodLookup::Effect { method, declared } => {
            json_body::parse_effect_body(method, &this, declared, body)?
        }
        MethodLookup::Carrier {
            canonical,
            guarded_itself,
        } => match carrier_kind(canonical) {
            Some(kind) => json_body::parse_carrier_body(
                canonical,
                kind,
                &this,
                guarded_itself,
                body,
                guarded,
            )?,
            None => None,
        },
    };
    Ok(Operation {
        protocol: Protocol::VimJson,
        release: Some(release),
        target: Some(this),
        call: if property_read {
            Call::PropertyRead(name)
        } else {
            Call::Method(name)
        },
        guarded: guarded_call,
    })
}

/// Classifies a whole SOAP request body.
pub fn classify_soap(body: &[u8], guarded: &GuardedMethods) -> Result<Operation, Refusal> {
    let call = soap::parse_soap_call(body, guarded)?;
    Ok(Operation {
        protocol: Protocol::Soap,
        release: None,
        target: call.head.this,
        call: Call::Method(call.head.method),
        guarded: call.guarded,
    })
}

/// The operation of an unguarded SOAP call the sniffer named (body streamed).
pub fn operation_from_soap_head(head: &SoapHead) -> Operation {
    Operation {
        protocol: Protocol::Soap,
        release: None,
        target: head.this.clone(),
        call: Call::Method(head.method.clone()),
        guarded: None,
    }
}

/// The operation of a REST or other pass-through path (`None` for VI/JSON and SOAP paths).
pub fn pass_through(class: &PathClass) -> Option<Operation> {
    match class {
        PathClass::Rest => Some(Operation::pass_through(Protocol::Rest)),
        PathClass::Other => Some(Operation::pass_through(Protocol::Other)),
        PathClass::VimJson(_) | PathClass::SoapEndpoint => None,
    }
}

/// The operation of a request under `/sdk` with no body at all (WSDL, version documents).
pub fn sdk_without_body() -> Operation {
    Operation::pass_through(Protocol::Other)
}

/// The API release in a `SOAPAction` header: `"urn:vim25/8.0.3.0"` (quoted or not) → `8.0.3.0`.
pub fn soap_release(soap_action: &str) -> Option<String> {
    let value = soap_action.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let (_, release) = value.split_once('/')?;
    (!release.is_empty()).then(|| release.to_owned())
}

fn wrong_case(found: &str, canonical: &str) -> Refusal {
    Refusal::invalid_request(format!(
        "guarded method '{found}' must be spelled {canonical}"
    ))
}

fn check_target_type(canonical: &str, this: &MoRef) -> Result<(), Refusal> {
    match expected_target_type(canonical) {
        Some(expected) if this.mo_type != expected => Err(Refusal::invalid_request(format!(
            "{canonical} must target a {expected}, not a {}",
            this.mo_type
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vsphere::bodies::{ChangeLockdownModeBody, LockdownMode};
    use crate::vsphere::operation::GuardedBody;

    fn vim_path(path: &str) -> VimPath {
        match classify_path(path) {
            Ok(PathClass::VimJson(p)) => p,
            other => panic!("{path}: {other:?}"),
        }
    }

    fn json(method: http::Method, path: &str, body: Option<&str>) -> Result<Operation, Refusal> {
        let vim = vim_path(path);
        classify_vim_json(
            vim,
            &method,
            body.map(str::as_bytes),
            &GuardedMethods::new(),
        )
    }

    const LOCKDOWN_PATH: &str =
        "/sdk/vim25/8.0.3.0/HostAccessManager/ha-host-access-manager/ChangeLockdownMode";
    const STRICT: &str = include_str!("../../tests/fixtures/json/ChangeLockdownMode.json");

    fn strict() -> Option<GuardedCall> {
        Some(GuardedCall {
            method: "ChangeLockdownMode".into(),
            target: MoRef::new("HostAccessManager", "ha-host-access-manager"),
            body: GuardedBody::ChangeLockdownMode(ChangeLockdownModeBody {
                mode: LockdownMode::Strict,
            }),
            route: Route::Direct,
            via: "ChangeLockdownMode".into(),
        })
    }

    #[test]
    fn vi_json_guarded_calls_whatever_the_verb() {
        for verb in [
            http::Method::POST,
            http::Method::GET,
            http::Method::PUT,
            http::Method::DELETE,
            http::Method::PATCH,
        ] {
            let op = json(verb.clone(), LOCKDOWN_PATH, Some(STRICT)).expect("guarded");
            assert_eq!(op.guarded, strict(), "{verb}");
            assert_eq!(op.call, Call::Method("ChangeLockdownMode".into()));
            assert_eq!(op.release.as_deref(), Some("8.0.3.0"));
        }
    }

    #[test]
    fn vi_json_enter_maintenance_mode_fixture() {
        let op = json(
            http::Method::POST,
            "/sdk/vim25/8.0.3.0/HostSystem/host-42/EnterMaintenanceMode_Task",
            Some(include_str!(
                "../../tests/fixtures/json/EnterMaintenanceMode_Task.json"
            )),
        )
        .expect("guarded");
        let g = op.guarded.expect("guarded");
        assert_eq!(g.target, MoRef::new("HostSystem", "host-42"));
        assert!(matches!(g.body, GuardedBody::EnterMaintenanceMode(ref b) if b.timeout == 300));
    }

    #[test]
    fn path_tricks_still_reach_the_guard() {
        for path in [
            "/sdk/vim25/8.0.3.0/pbm/HostAccessManager/ha-host-access-manager/ChangeLockdownMode",
            "/sdk/vim25/uA046D008/HostAccessManager/ha-host-access-manager/ChangeLockdownMode",
            "/sdk/vim25/8.0.3.0/HostAccessManager/ha-host-access-manager/%43hangeLockdownMode",
            "/%73dk/vim25/8.0.3.0/HostAccessManager/ha-host-access-manager/ChangeLockdownMode",
            "/sdk/vim25/8.0.3.0/HostAccessManager/ha%2Dhost-access-manager/ChangeLockdownMode",
        ] {
            let op = json(http::Method::POST, path, Some(STRICT)).expect("guarded");
            assert_eq!(op.guarded, strict(), "{path}");
        }
        let op = json(
            http::Method::POST,
            "/sdk/vim25/8.0.3.0/pbm/HostSystem/host-1/EnterMaintenanceMode_Task",
            Some(r#"{"timeout":0}"#),
        )
        .expect("guarded");
        assert!(op.is_guarded());
    }

    #[test]
    fn path_tricks_that_are_refused() {
        for path in [
            "/sdk/vim25/8.0.3.0/HostAccessManager/ha-host-access-manager/ChangeLockdownMode/",
            "/sdk/vim25/8.0.3.0//HostAccessManager/ha-host-access-manager/ChangeLockdownMode",
            "/sdk/vim25/8.0.3.0/HostAccessManager/ha-host-access-manager/%2543hangeLockdownMode",
            "/sdk/vim25/8.0.3.0/HostAccessManager/ha-host-access-manager;x/ChangeLockdownMode",
            "/sdk/vim25/8.0.3.0/HostAccessManager/x/../ha-host-access-manager/ChangeLockdownMode",
            "/sdk/vim25/8.0.3.0/HostAccessManager/x/%2e%2e/ha-host-access-manager/ChangeLockdownMode",
            "/sdk/vim25/8.0.3.0/HostAccessManager/a%2fb/ChangeLockdownMode",
            "/api/../sdk/vim25/8.0.3.0/HostAccessManager/ha-host-access-manager/ChangeLockdownMode",
            "/SDK/vim25/8.0.3.0/HostAccessManager/ha-host-access-manager/ChangeLockdownMode",
            "/sdk/vim25/8.0.3.0/HostAccessManager/ha-host-access-manager/ChangeLockdownMode?mode=lockdownStrict",
        ] {
            let refusal = classify_path(path).expect_err(path);
            assert_eq!(refusal.fault_type, "InvalidRequest", "{path}");
        }
    }

    #[test]
    fn guarded_name_in_odd_case_is_refused_unguarded_passes() {
        let refusal = json(
            http::Method::POST,
            "/sdk/vim25/8.0.3.0/HostAccessManager/ha-host-access-manager/changelockdownmode",
            Some(STRICT),
        )
        .expect_err("odd case");
        assert_eq!(
            refusal.message,
            "guarded method 'changelockdownmode' must be spelled ChangeLockdownMode"
        );
        let op = json(
            http::Method::POST,
            "/sdk/vim25/8.0.3.0/SessionManager/SessionManager/login",
            None,
        )
        .expect("passes");
        assert_eq!(op.call, Call::Method("login".into()));
        assert_eq!(op.guarded, None);
        assert!(
            json(
                http::Method::POST,
                "/sdk/vim25/8.0.3.0/ScheduledTaskManager/ScheduledTaskManager/createScheduledTask",
                None
            )
            .is_err()
        );
    }

    #[test]
    fn property_reads_and_unguarded_calls() {
        let op = json(
            http::Method::GET,
            "/sdk/vim25/8.0.3.0/ServiceInstance/ServiceInstance/content",
            None,
        )
        .expect("read");
        assert_eq!(op.call, Call::PropertyRead("content".into()));
        assert_eq!(
            op.target,
            Some(MoRef::new("ServiceInstance", "ServiceInstance"))
        );
        let op = json(
            http::Method::POST,
            "/sdk/vim25/8.0.3.0/SessionManager/SessionManager/Login",
            None,
        )
        .expect("call");
        assert_eq!(op.call, Call::Method("Login".into()));
        assert!(!needs_whole_body("Login", &GuardedMethods::new()));
        assert!(needs_whole_body(
            "ChangeLockdownMode",
            &GuardedMethods::new()
        ));
        assert!(needs_whole_body(
            "changeLockdownMode",
            &GuardedMethods::new()
        ));
        assert!(needs_whole_body("CreateAlarm", &GuardedMethods::new()));
    }

    #[test]
    fn wrong_target_type_is_refused() {
        let refusal = json(
            http::Method::POST,
            "/sdk/vim25/8.0.3.0/Folder/ha-host-access-manager/ChangeLockdownMode",
            Some(STRICT),
        )
        .expect_err("wrong type");
        assert_eq!(
            refusal.message,
            "ChangeLockdownMode must target a HostAccessManager, not a Folder"
        );
    }

    #[test]
    fn xml_on_a_vi_json_path_is_smuggling() {
        let soap = include_str!("../../tests/fixtures/soap/pyvmomi-9.1.1.0-ChangeLockdownMode.xml");
        for path in [
            LOCKDOWN_PATH,
            "/sdk/vim25/8.0.3.0/SessionManager/SessionManager/Login",
        ] {
            let refusal = json(http::Method::POST, path, Some(soap)).expect_err(path);
            assert!(refusal.message.contains("XML body on a VI/JSON path"));
        }
        assert!(refuse_xml_on_vim_json(b"\xEF\xBB\xBF  <x/>").is_err());
        assert!(refuse_xml_on_vim_json(b"\x00<\x00x").is_err());
        assert!(refuse_xml_on_vim_json(b" {\"mode\":1}").is_ok());
    }

    #[test]
    fn json_body_refusals_reach_the_client_as_faults() {
        let refusal = json(
            http::Method::POST,
            LOCKDOWN_PATH,
            Some(r#"{"mode":"lockdownNormal","mode":"lockdownStrict"}"#),
        )
        .expect_err("duplicate");
        assert_eq!(refusal.fault_type, "InvalidRequest");
        assert!(refusal.message.contains("duplicate key 'mode'"));
        let fault = refusal.to_fault();
        assert_eq!(fault.type_name, "InvalidRequest");
        assert!(fault.to_soap().contains("duplicate key"));
        let refusal = json(
            http::Method::POST,
            LOCKDOWN_PATH,
            Some(r#"{"mode":{"_typeName":"HostLockdownMode","_value":"lockdownStrict"}}"#),
        )
        .expect_err("boxed");
        assert_eq!(refusal.fault_type, "InvalidArgument");
        assert_eq!(
            json(
                http::Method::POST,
                LOCKDOWN_PATH,
                Some(r#"{"mode":"lockdown\u0053trict"}"#)
            )
            .expect("escaped")
            .guarded,
            strict()
        );
    }

    #[test]
    fn vi_json_carriers() {
        let op = json(
            http::Method::POST,
            "/sdk/vim25/8.0.3.0/ScheduledTaskManager/ScheduledTaskManager/CreateScheduledTask",
            Some(include_str!(
                "../../tests/fixtures/json/CreateScheduledTask-MethodAction.json"
            )),
        )
        .expect("classified");
        assert_eq!(op.call, Call::Method("CreateScheduledTask".into()));
        let g = op.guarded.expect("guarded");
        assert_eq!(g.method, "EnterMaintenanceMode_Task");
        assert_eq!(g.target, MoRef::new("HostSystem", "host-42"));
        assert!(g.route.is_indirect());
        let op = json(
            http::Method::POST,
            "/sdk/vim25/8.0.3.0/ReflectManagedMethodExecuter/ha-mme/ExecuteSoap",
            Some(r#"{"moid":"ha-cli-handler-system-shutdown","version":"urn:vim25/5.0","method":"vim.EsxCLI.system.shutdown.poweroff","argument":[{"name":"reason","val":"<reason>x</reason>"}]}"#),
        )
        .expect("classified");
        assert_eq!(
            op.guarded.map(|g| g.method).as_deref(),
            Some("ShutdownHost_Task")
        );
    }

    #[test]
    fn soap_entry_points() {
        let xml = include_str!("../../tests/fixtures/soap/pyvmomi-9.1.1.0-ChangeLockdownMode.xml");
        let op = classify_soap(xml.as_bytes(), &GuardedMethods::new()).expect("guarded");
        assert_eq!(op.protocol, Protocol::Soap);
        assert_eq!(op.guarded, strict());
        let login = include_str!("../../tests/fixtures/soap/pyvmomi-9.1.1.0-Login.xml");
        let head = soap::sniff_whole(login.as_bytes()).expect("head");
        let op = operation_from_soap_head(&head);
        assert_eq!(op.call, Call::Method("Login".into()));
        assert_eq!(
            op.target,
            Some(MoRef::new("SessionManager", "SessionManager"))
        );
        let refusal =
            classify_soap(b"<!DOCTYPE x><x/>", &GuardedMethods::new()).expect_err("doctype");
        assert_eq!(refusal.fault_type, "InvalidRequest");
    }

    fn soap_call(method_xml: &str) -> Result<Operation, Refusal> {
        let xml = format!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>{method_xml}</soapenv:Body></soapenv:Envelope>"#
        );
        classify_soap(xml.as_bytes(), &GuardedMethods::new())
    }

    fn facts_of(op: Operation) -> (String, crate::vsphere::effects::EffectFacts) {
        let g = op.guarded.expect("guarded");
        match g.body {
            GuardedBody::Effect(facts) => (g.method, facts),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn effect_routes_in_both_protocols() {
        let (action, f) = facts_of(
            json(
                http::Method::POST,
                "/sdk/vim25/8.0.3.0/HostServiceSystem/serviceSystem-21/StopService",
                Some(r#"{"_typeName":"StopServiceRequestType","id":"DCUI"}"#),
            )
            .expect("classified"),
        );
        assert_eq!(action, "StopService");
        assert!(f.dcui_stopped);
        let (action, f) = facts_of(
            soap_call(
                r#"<StopService xmlns="urn:vim25"><_this type="HostServiceSystem">serviceSystem-21</_this><id>DCUI</id></StopService>"#,
            )
            .expect("classified"),
        );
        assert_eq!(action, "StopService");
        assert!(f.dcui_stopped);
        let op = soap_call(
            r#"<StopService xmlns="urn:vim25"><_this type="HostServiceSystem">serviceSystem-21</_this><id>ntpd</id></StopService>"#,
        )
        .expect("classified");
        assert_eq!(op.guarded, None);
        assert_eq!(op.call, Call::Method("StopService".into()));
        let (_, f) = facts_of(
            soap_call(
                r#"<UpdateOptions xmlns="urn:vim25"><_this type="OptionManager">EsxHostAdvSettings-21</_this><changedValue><key>DCUI.Access</key><value xsi:type="xsd:string">root</value></changedValue></UpdateOptions>"#,
            )
            .expect("classified"),
        );
        assert_eq!(f.dcui_access.as_deref(), Some("root"));
        let (action, f) = facts_of(
            soap_call(
                r#"<AddHost_Task xmlns="urn:vim25"><_this type="ClusterComputeResource">domain-c7</_this><spec><hostName>esx-9</hostName><userName>root</userName><password>s3cret</password><lockdownMode>lockdownStrict</lockdownMode></spec><asConnected>true</asConnected></AddHost_Task>"#,
            )
            .expect("classified"),
        );
        assert_eq!(action, "AddHost_Task");
        assert_eq!(f.lockdown_mode, Some(LockdownMode::Strict));
        assert!(!serde_json::to_string(&f).expect("json").contains("s3cret"));
        let (action, _) = facts_of(
            soap_call(
                r#"<Update xmlns="urn:eam"><_this type="Agency">agency-1</_this><config><agentName>x</agentName></config></Update>"#,
            )
            .expect("classified"),
        );
        assert_eq!(action, "UpdateAgency");
        for refused in [
            r#"<StopService xmlns="urn:vim25"><_this type="HostServiceSystem">ss</_this><id>DCUI</id><id>ntpd</id></StopService>"#,
            r#"<StopService xmlns="urn:vim25"><_this type="HostServiceSystem">ss</_this><id xsi:nil="true">DCUI</id></StopService>"#,
            r#"<stopService xmlns="urn:vim25"><_this type="HostServiceSystem">ss</_this><id>DCUI</id></stopService>"#,
        ] {
            assert!(soap_call(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn pass_through_classes() {
        assert_eq!(
            pass_through(&classify_path("/api/session").expect("ok")),
            Some(Operation::pass_through(Protocol::Rest))
        );
        assert_eq!(
            pass_through(&classify_path("/ui/").expect("ok")),
            Some(Operation::pass_through(Protocol::Other))
        );
        assert_eq!(pass_through(&PathClass::SoapEndpoint), None);
        assert_eq!(sdk_without_body().protocol, Protocol::Other);
    }
}
