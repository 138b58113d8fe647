//! End-to-end: every known way to sneak a guarded call past the gateway is refused (malformed,
//! ambiguous) or classified and denied by policy — and vCenter never sees the call.

mod common;

use common::{ADMIN_PASSWORD, ADMIN_USER, Harness, raw_exchange, soap_login_envelope};
use serde_json::Value;

/// What the client must get back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Refused before classification finished: this status and vim fault type.
    Refused(u16, &'static str),
    /// Classified as the guarded call and denied by this policy.
    Denied(&'static str),
    /// Classified as a guarded call that the shipped policies allow.
    Allowed,
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    expect: Expect,
}

const V: &str = "/sdk/vim25/8.0.3.0";
const STRICT: &str = r#"{"mode":"lockdownStrict"}"#;

fn soap(method_xml: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>{method_xml}</soapenv:Body></soapenv:Envelope>"#
    )
    .into_bytes()
}

fn soap_lockdown(mode_xml: &str) -> Vec<u8> {
    soap(&format!(
        r#"<ChangeLockdownMode xmlns="urn:vim25"><_this type="HostAccessManager">ham-21</_this>{mode_xml}</ChangeLockdownMode>"#
    ))
}

fn json(name: &'static str, path: String, body: &str, expect: Expect) -> Case {
    Case {
        name,
        method: "POST",
        path,
        headers: vec![("content-type", "application/json".into())],
        body: body.as_bytes().to_vec(),
        expect,
    }
}

fn rest(name: &'static str, path: &str, expect: Expect) -> Case {
    json(name, path.into(), "{}", expect)
}

fn soap_case(name: &'static str, path: &str, body: Vec<u8>, expect: Expect) -> Case {
    Case {
        name,
        method: "POST",
        path: path.into(),
        headers: vec![("content-type", "text/xml; charset=utf-8".into())],
        body,
        expect,
    }
}

fn cases() -> Vec<Case> {
    use Expect::{Allowed, Denied, Refused};
    let bad = Refused(500, "InvalidRequest");
    let lockdown = Denied("lockdown-no-strict");
    let maintenance = Denied("maintenance-needs-ticket");
    let ham = |name: &str| format!("{V}/HostAccessManager/ham-21/{name}");
    let mut cases = vec![
        json(
            "canonical JSON call",
            ham("ChangeLockdownMode"),
            STRICT,
            lockdown,
        ),
        json(
            "method in lower case",
            ham("changelockdownmode"),
            STRICT,
            bad,
        ),
        json("method in odd case", ham("ChangeLockDownMode"), STRICT, bad),
        json(
            "percent-encoded method letter",
            ham("%43hangeLockdownMode"),
            STRICT,
            lockdown,
        ),
        json(
            "double-encoded method letter",
            ham("%2543hangeLockdownMode"),
            STRICT,
            bad,
        ),
        json(
            "encoded slash in moId",
            format!("{V}/HostAccessManager/ham%2F21/ChangeLockdownMode"),
            STRICT,
            bad,
        ),
        json(
            "empty segment",
            format!("{V}//HostAccessManager/ham-21/ChangeLockdownMode"),
            STRICT,
            bad,
        ),
        json(
            "dot segment",
            format!("{V}/HostAccessManager/x/../ham-21/ChangeLockdownMode"),
            STRICT,
            bad,
        ),
        json(
            "encoded dot segment",
            format!("{V}/HostAccessManager/x/%2e%2e/ham-21/ChangeLockdownMode"),
            STRICT,
            bad,
        ),
        json(
            "matrix parameter",
            format!("{}{}", ham("ChangeLockdownMode"), ";v=1"),
            STRICT,
            bad,
        ),
        json(
            "trailing slash",
            format!("{}/", ham("ChangeLockdownMode")),
            STRICT,
            bad,
        ),
        json(
            "service segment",
            format!("{V}/pbm/HostAccessManager/ham-21/ChangeLockdownMode"),
            STRICT,
            lockdown,
        ),
        json(
            "opaque release id",
            "/sdk/vim25/uA046D008/HostAccessManager/ham-21/ChangeLockdownMode".into(),
            STRICT,
            lockdown,
        ),
        json(
            "duplicate key",
            ham("ChangeLockdownMode"),
            r#"{"mode":"lockdownNormal","mode":"lockdownStrict"}"#,
            bad,
        ),
        json(
            "unicode escape",
            ham("ChangeLockdownMode"),
            r#"{"mode":"lockdown\u0053trict"}"#,
            lockdown,
        ),
        json(
            "boxed enum",
            ham("ChangeLockdownMode"),
            r#"{"mode":{"_typeName":"HostLockdownMode","_value":"lockdownStrict"}}"#,
            Refused(500, "InvalidArgument"),
        ),
        json(
            "unknown enum value",
            ham("ChangeLockdownMode"),
            r#"{"mode":"lockdownSTRICT"}"#,
            Refused(500, "InvalidArgument"),
        ),
        json(
            "trailing garbage",
            ham("ChangeLockdownMode"),
            r#"{"mode":"lockdownNormal"} {"mode":"lockdownStrict"}"#,
            bad,
        ),
        json(
            "timeout as a float",
            format!("{V}/HostSystem/host-21/EnterMaintenanceMode_Task"),
            r#"{"timeout":300.0}"#,
            Refused(500, "InvalidArgument"),
        ),
        json(
            "timeout out of int32 range",
            format!("{V}/HostSystem/host-21/EnterMaintenanceMode_Task"),
            r#"{"timeout":4294967296}"#,
            Refused(500, "InvalidArgument"),
        ),
        json(
            "duplicate nested key",
            format!("{V}/HostSystem/host-21/EnterMaintenanceMode_Task"),
            r#"{"timeout":0,"maintenanceSpec":{"vsanMode":{"objectAction":"noAction","objectAction":"evacuateAllData"}}}"#,
            bad,
        ),
        json(
            "XML posted to a VI/JSON path",
            ham("ChangeLockdownMode"),
            std::str::from_utf8(&soap_lockdown("<mode>lockdownStrict</mode>")).unwrap_or_default(),
            bad,
        ),
        json(
            "XML posted to an unguarded VI/JSON path",
            format!("{V}/ServiceInstance/ServiceInstance/CurrentTime"),
            std::str::from_utf8(&soap_lockdown("<mode>lockdownStrict</mode>")).unwrap_or_default(),
            bad,
        ),
        json(
            "JSON scheduled task carrying maintenance",
            format!("{V}/ScheduledTaskManager/ScheduledTaskManager/CreateScheduledTask"),
            include_str!("fixtures/json/CreateScheduledTask-MethodAction.json"),
            maintenance,
        ),
        soap_case(
            "SOAP soapenv prefix",
            "/sdk",
            soap_lockdown("<mode>lockdownStrict</mode>"),
            lockdown,
        ),
        soap_case(
            "SOAP soap prefix",
            "/sdk",
            soap_lockdown("<mode>lockdownStrict</mode>").replace_all("soapenv", "soap"),
            lockdown,
        ),
        soap_case(
            "SOAP default namespace (govc)",
            "/sdk",
            include_str!("fixtures/soap/govc-default-ns-ChangeLockdownMode.xml")
                .replace("lockdownNormal", "lockdownStrict")
                .into_bytes(),
            lockdown,
        ),
        soap_case(
            "SOAP vim25: method prefix",
            "/sdk",
            include_str!("fixtures/soap/vim25-prefix-ChangeLockdownMode.xml")
                .replace("lockdownDisabled", "lockdownStrict")
                .into_bytes(),
            lockdown,
        ),
        soap_case(
            "SOAP on /sdk/vimService",
            "/sdk/vimService",
            soap_lockdown("<mode>lockdownStrict</mode>"),
            lockdown,
        ),
        soap_case(
            "CDATA inside mode",
            "/sdk",
            soap_lockdown("<mode><![CDATA[lockdownStrict]]></mode>"),
            lockdown,
        ),
        soap_case(
            "character reference inside mode",
            "/sdk",
            soap_lockdown("<mode>lockdown&#83;trict</mode>"),
            lockdown,
        ),
        soap_case(
            "comment inside mode",
            "/sdk",
            soap_lockdown("<mode>lockdown<!-- x -->Strict</mode>"),
            lockdown,
        ),
        soap_case(
            "two mode elements",
            "/sdk",
            soap_lockdown("<mode>lockdownNormal</mode><mode>lockdownStrict</mode>"),
            Refused(500, "InvalidArgument"),
        ),
        soap_case(
            "DOCTYPE with entity",
            "/sdk",
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY s \"Strict\">]>{}",
                String::from_utf8_lossy(&soap_lockdown("<mode>lockdown&s;</mode>"))[38..]
                    .to_owned()
            )
            .into_bytes(),
            bad,
        ),
        soap_case(
            "JSON posted to /sdk",
            "/sdk",
            STRICT.as_bytes().to_vec(),
            bad,
        ),
        soap_case(
            "second call hidden after an unguarded one",
            "/sdk",
            soap(
                r#"<CurrentTime xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></CurrentTime><ChangeLockdownMode xmlns="urn:vim25"><_this type="HostAccessManager">ham-21</_this><mode>lockdownStrict</mode></ChangeLockdownMode>"#,
            ),
            bad,
        ),
        soap_case(
            "esxcli maintenanceMode.set through ExecuteSoap",
            "/sdk",
            include_str!("fixtures/soap/govc-ExecuteSoap-maintenanceMode-set.xml")
                .as_bytes()
                .to_vec(),
            maintenance,
        ),
        soap_case(
            "scheduled task carrying maintenance",
            "/sdk",
            include_str!("fixtures/soap/CreateScheduledTask-MethodAction.xml")
                .as_bytes()
                .to_vec(),
            maintenance,
        ),
        soap_case(
            "legacy EnterLockdownMode, allowed by the baseline",
            "/sdk",
            soap(
                r#"<EnterLockdownMode xmlns="urn:vim25"><_this type="HostSystem">host-23</_this></EnterLockdownMode>"#,
            ),
            Allowed,
        ),
    ];
    cases.extend(effect_cases());
    let mut gzip = json(
        "gzip-compressed guarded body",
        ham("ChangeLockdownMode"),
        STRICT,
        Refused(415, "InvalidRequest"),
    );
    gzip.headers.push(("content-encoding", "gzip".into()));
    cases.push(gzip);
    let mut verb = json(
        "guarded method under GET",
        ham("ChangeLockdownMode"),
        STRICT,
        lockdown,
    );
    verb.method = "GET";
    cases.push(verb);
    let mut big = json(
        "guarded body over the cap",
        ham("ChangeLockdownMode"),
        "",
        Refused(413, "InvalidRequest"),
    );
    big.body = format!(
        r#"{{"mode":"lockdownStrict","_typeName":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    )
    .into_bytes();
    cases.push(big);
    let mut two = json(
        "two different credentials",
        ham("ChangeLockdownMode"),
        STRICT,
        bad,
    );
    two.headers
        .push(("cookie", "vmware_soap_session=\"another-session\"".into()));
    cases.push(two);
    cases
}

/// Every route to the guarded effects (PROTOCOL.md §8), in both protocols where vCenter has both.
fn effect_cases() -> Vec<Case> {
    use Expect::{Denied, Refused};
    let lockdown = Denied("lockdown-no-strict");
    let access = Denied("dcui-access-needs-ticket");
    let maintenance = Denied("maintenance-needs-ticket");
    let lookup_failed = Refused(500, "RestrictedByAdministrator");
    let carrier = Denied("carrier-outlives-ticket");
    let on = |ty: &str, id: &str, name: &str| format!("{V}/{ty}/{id}/{name}");
    let soap_on = |method: &str, ty: &str, id: &str, params: &str| {
        soap(&format!(
            r#"<{method} xmlns="urn:vim25" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><_this type="{ty}">{id}</_this>{params}</{method}>"#
        ))
    };
    let exec_json = |moid: &str, method: &str, args: &str| {
        format!(
            r#"{{"moid":"{moid}","version":"urn:vim25/8.0.3.0","method":"{method}","argument":[{args}]}}"#
        )
    };
    let exec_soap = |moid: &str, method: &str, args: &str| {
        soap_on(
            "ExecuteSoap",
            "ReflectManagedMethodExecuter",
            "ha-mme-21",
            &format!(
                "<moid>{moid}</moid><version>urn:vim25/8.0.3.0</version><method>{method}</method>{args}"
            ),
        )
    };
    let strict_soap = soap_lockdown("<mode>lockdownStrict</mode>");
    let mut cases = vec![
        // The DCUI service.
        json(
            "StopService DCUI",
            on("HostServiceSystem", "serviceSystem-21", "StopService"),
            r#"{"id":"DCUI"}"#,
            lockdown,
        ),
        soap_case(
            "SOAP StopService DCUI",
            "/sdk",
            soap_on(
                "StopService",
                "HostServiceSystem",
                "serviceSystem-21",
                "<id>DCUI</id>",
            ),
            lockdown,
        ),
        json(
            "UninstallService DCUI",
            on("HostServiceSystem", "serviceSystem-21", "UninstallService"),
            r#"{"id":"DCUI"}"#,
            lockdown,
        ),
        soap_case(
            "SOAP UninstallService DCUI",
            "/sdk",
            soap_on(
                "UninstallService",
                "HostServiceSystem",
                "serviceSystem-21",
                "<id>DCUI</id>",
            ),
            lockdown,
        ),
        json(
            "UpdateServicePolicy DCUI off",
            on(
                "HostServiceSystem",
                "serviceSystem-21",
                "UpdateServicePolicy",
            ),
            r#"{"id":"DCUI","policy":"off"}"#,
            lockdown,
        ),
        soap_case(
            "SOAP UpdateServicePolicy DCUI automatic",
            "/sdk",
            soap_on(
                "UpdateServicePolicy",
                "HostServiceSystem",
                "serviceSystem-21",
                "<id>DCUI</id><policy>automatic</policy>",
            ),
            lockdown,
        ),
        json(
            "StopService dcui in another case",
            on("HostServiceSystem", "serviceSystem-21", "StopService"),
            r#"{"id":"dcui"}"#,
            Refused(500, "InvalidArgument"),
        ),
        // Who may use the DCUI in lockdown.
        json(
            "UpdateOptions DCUI.Access",
            on("OptionManager", "EsxHostAdvSettings-21", "UpdateOptions"),
            r#"{"changedValue":[{"_typeName":"OptionValue","key":"DCUI.Access","value":{"_typeName":"string","_value":""}}]}"#,
            access,
        ),
        soap_case(
            "SOAP UpdateOptions DCUI.Access",
            "/sdk",
            soap_on(
                "UpdateOptions",
                "OptionManager",
                "EsxHostAdvSettings-21",
                r#"<changedValue xsi:type="OptionValue"><key>DCUI.Access</key><value xsi:type="xsd:string"></value></changedValue>"#,
            ),
            access,
        ),
        json(
            "UpdateLockdownExceptions",
            on("HostAccessManager", "ham-21", "UpdateLockdownExceptions"),
            r#"{"users":[]}"#,
            access,
        ),
        soap_case(
            "SOAP UpdateLockdownExceptions",
            "/sdk",
            soap_on(
                "UpdateLockdownExceptions",
                "HostAccessManager",
                "ham-21",
                "",
            ),
            access,
        ),
        json(
            "ChangeAccessMode",
            on("HostAccessManager", "ham-21", "ChangeAccessMode"),
            r#"{"principal":"root","isGroup":false,"accessMode":"accessNone"}"#,
            access,
        ),
        soap_case(
            "SOAP UpdateSystemUsers",
            "/sdk",
            soap_on(
                "UpdateSystemUsers",
                "HostAccessManager",
                "ham-21",
                "<users>svc</users>",
            ),
            access,
        ),
        // Host profiles, HCI, adding hosts.
        json(
            "ApplyHostConfig_Task stopping the DCUI",
            on(
                "HostProfileManager",
                "HostProfileManager",
                "ApplyHostConfig_Task",
            ),
            r#"{"host":{"_typeName":"ManagedObjectReference","type":"HostSystem","value":"host-21"},"configSpec":{"_typeName":"HostConfigSpec","service":[{"_typeName":"HostServiceConfig","changeOperation":"edit","serviceId":"DCUI","startupPolicy":"off"}]}}"#,
            lockdown,
        ),
        soap_case(
            "SOAP ApplyHostConfig_Task setting lockdownStrict",
            "/sdk",
            soap_on(
                "ApplyHostConfig_Task",
                "HostProfileManager",
                "HostProfileManager",
                r#"<host type="HostSystem">host-21</host><configSpec><lockdownMode>lockdownStrict</lockdownMode></configSpec>"#,
            ),
            lockdown,
        ),
        json(
            "ConfigureHCI_Task with lockdownStrict",
            on("ClusterComputeResource", "domain-c7", "ConfigureHCI_Task"),
            r#"{"clusterSpec":{"_typeName":"ClusterComputeResourceHCIConfigSpec","hostConfigProfile":{"_typeName":"ClusterComputeResourceHostConfigurationProfile","lockdownMode":"lockdownStrict"}}}"#,
            lockdown,
        ),
        soap_case(
            "SOAP ConfigureHCI_Task with lockdownStrict",
            "/sdk",
            soap_on(
                "ConfigureHCI_Task",
                "ClusterComputeResource",
                "domain-c7",
                "<clusterSpec><hostConfigProfile><lockdownMode>lockdownStrict</lockdownMode></hostConfigProfile></clusterSpec>",
            ),
            lockdown,
        ),
        json(
            "AddStandaloneHost_Task with lockdownStrict",
            on("Folder", "group-h4", "AddStandaloneHost_Task"),
            r#"{"spec":{"_typeName":"HostConnectSpec","hostName":"esx-9","userName":"root","password":"pw","lockdownMode":"lockdownStrict"},"addConnected":true}"#,
            lockdown,
        ),
        soap_case(
            "SOAP AddHost_Task with lockdownStrict",
            "/sdk",
            soap_on(
                "AddHost_Task",
                "ClusterComputeResource",
                "domain-c7",
                "<spec><hostName>esx-9</hostName><userName>root</userName><password>pw</password><lockdownMode>lockdownStrict</lockdownMode></spec><asConnected>true</asConnected>",
            ),
            lockdown,
        ),
        // Into maintenance.
        json(
            "ApplyEntitiesConfig_Task",
            on(
                "HostProfileManager",
                "HostProfileManager",
                "ApplyEntitiesConfig_Task",
            ),
            r#"{"applyConfigSpecs":[{"_typeName":"ApplyHostProfileConfigurationSpec","entity":{"_typeName":"ManagedObjectReference","type":"HostSystem","value":"host-21"}}]}"#,
            maintenance,
        ),
        soap_case(
            "SOAP ApplyEntitiesConfig_Task",
            "/sdk",
            soap_on(
                "ApplyEntitiesConfig_Task",
                "HostProfileManager",
                "HostProfileManager",
                r#"<applyConfigSpecs><entity type="HostSystem">host-21</entity></applyConfigSpecs>"#,
            ),
            maintenance,
        ),
        json(
            "ApplyRecommendation of a recommendation vCenter does not list (look-up fails)",
            on("ClusterComputeResource", "domain-c7", "ApplyRecommendation"),
            r#"{"key":"1"}"#,
            lookup_failed,
        ),
        soap_case(
            "SOAP RunScheduledTask of a task vCenter does not know (look-up fails)",
            "/sdk",
            soap_on("RunScheduledTask", "ScheduledTask", "schedule-7", ""),
            lookup_failed,
        ),
        soap_case(
            "EAM CreateAgency on /eam/sdk",
            "/eam/sdk",
            soap(
                r#"<CreateAgency xmlns="urn:eam"><_this type="EsxAgentManager">EsxAgentManager</_this><agencyConfigInfo><agentName>x</agentName></agencyConfigInfo><initialGoalState>enabled</initialGoalState></CreateAgency>"#,
            ),
            maintenance,
        ),
        soap_case(
            "EAM agency Update on /eam/sdk",
            "/eam/sdk",
            soap(
                r#"<Update xmlns="urn:eam"><_this type="Agency">agency-1</_this><config><agentName>x</agentName></config></Update>"#,
            ),
            maintenance,
        ),
        soap_case(
            "EAM Agency_Enable on /eam/sdk",
            "/eam/sdk",
            soap(
                r#"<Agency_Enable xmlns="urn:eam"><_this type="Agency">agency-1</_this></Agency_Enable>"#,
            ),
            maintenance,
        ),
        json(
            "EAM Agency_Enable over VI/JSON with the eam service segment",
            format!("{V}/eam/Agency/agency-1/Agency_Enable"),
            "",
            maintenance,
        ),
        // vmodl forms through ExecuteSoap, and esxcli with an xsd:boolean 1.
        json(
            "ExecuteSoap vim.host.ServiceSystem.stop DCUI",
            on("ReflectManagedMethodExecuter", "ha-mme-21", "ExecuteSoap"),
            &exec_json(
                "serviceSystem",
                "vim.host.ServiceSystem.stop",
                r#"{"name":"id","val":"<id>DCUI</id>"}"#,
            ),
            lockdown,
        ),
        soap_case(
            "SOAP ExecuteSoap vim.host.ServiceSystem.stop DCUI",
            "/sdk",
            exec_soap(
                "serviceSystem",
                "vim.host.ServiceSystem.stop",
                "<argument><name>id</name><val>&lt;id&gt;DCUI&lt;/id&gt;</val></argument>",
            ),
            lockdown,
        ),
        soap_case(
            "SOAP ExecuteSoap OptionManager.updateValues DCUI.Access",
            "/sdk",
            exec_soap(
                "EsxHostAdvSettings",
                "vim.option.OptionManager.updateValues",
                "<argument><name>changedValue</name><val>&lt;changedValue xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"ArrayOfOptionValue\"&gt;&lt;OptionValue&gt;&lt;key&gt;DCUI.Access&lt;/key&gt;&lt;value&gt;&lt;/value&gt;&lt;/OptionValue&gt;&lt;/changedValue&gt;</val></argument>",
            ),
            access,
        ),
        json(
            "ExecuteSoap HostAccessManager.updateLockdownExceptions",
            on("ReflectManagedMethodExecuter", "ha-mme-21", "ExecuteSoap"),
            &exec_json(
                "ha-host-access-manager",
                "vim.host.HostAccessManager.updateLockdownExceptions",
                r#"{"name":"users","val":"<users>root</users>"}"#,
            ),
            access,
        ),
        soap_case(
            "SOAP esxcli maintenanceMode.set enable=1",
            "/sdk",
            exec_soap(
                "ha-cli-handler-system-maintenancemode",
                "vim.EsxCLI.system.maintenanceMode.set",
                "<argument><name>enable</name><val>&lt;enable&gt;1&lt;/enable&gt;</val></argument>",
            ),
            maintenance,
        ),
        // Carriers that outlive any ticket.
        json(
            "nightly scheduled task carrying normal lockdown",
            on(
                "ScheduledTaskManager",
                "ScheduledTaskManager",
                "CreateScheduledTask",
            ),
            r#"{"obj":{"_typeName":"ManagedObjectReference","type":"HostAccessManager","value":"ham-21"},"spec":{"_typeName":"ScheduledTaskSpec","name":"n","description":"","enabled":true,"scheduler":{"_typeName":"DailyTaskScheduler","hour":2,"minute":0,"interval":1},"action":{"_typeName":"MethodAction","name":"ChangeLockdownMode","argument":[{"_typeName":"MethodActionArgument","value":{"_typeName":"HostLockdownMode","_value":"lockdownNormal"}}]}}}"#,
            carrier,
        ),
        soap_case(
            "SOAP alarm carrying StopService DCUI",
            "/sdk",
            soap_on(
                "CreateAlarm",
                "AlarmManager",
                "AlarmManager",
                r#"<entity type="HostSystem">host-21</entity><spec><name>a</name><description>d</description><enabled>true</enabled><expression xsi:type="StateAlarmExpression"><operator>isEqual</operator><type>HostSystem</type><statePath>runtime.connectionState</statePath><red>disconnected</red></expression><action xsi:type="AlarmTriggeringAction"><action xsi:type="MethodAction"><name>StopService</name><argument><value xsi:type="xsd:string">DCUI</value></argument></action><green2yellow>false</green2yellow><yellow2red>true</yellow2red><red2yellow>false</red2yellow><yellow2green>false</yellow2green></action></spec>"#,
            ),
            carrier,
        ),
        json(
            "ReconfigureAlarm carrying EnterMaintenanceMode_Task",
            on("Alarm", "alarm-12", "ReconfigureAlarm"),
            r#"{"spec":{"_typeName":"AlarmSpec","name":"a","description":"d","enabled":true,"expression":{"_typeName":"StateAlarmExpression","operator":"isEqual","type":"HostSystem","statePath":"runtime.connectionState","red":"disconnected"},"action":{"_typeName":"AlarmTriggeringAction","action":{"_typeName":"MethodAction","name":"EnterMaintenanceMode_Task","argument":[{"_typeName":"MethodActionArgument","value":{"_typeName":"int","_value":0}}]},"green2yellow":false,"yellow2red":true,"red2yellow":false,"yellow2green":false}}}"#,
            carrier,
        ),
        soap_case(
            "SOAP ReconfigureAlarm carrying normal lockdown",
            "/sdk",
            soap_on(
                "ReconfigureAlarm",
                "Alarm",
                "alarm-12",
                r#"<spec><name>a</name><description>d</description><enabled>true</enabled><expression xsi:type="StateAlarmExpression"><operator>isEqual</operator><type>HostSystem</type><statePath>runtime.connectionState</statePath><red>disconnected</red></expression><action xsi:type="AlarmTriggeringAction"><action xsi:type="MethodAction"><name>ChangeLockdownMode</name><argument><value xsi:type="HostLockdownMode">lockdownNormal</value></argument></action><green2yellow>false</green2yellow><yellow2red>true</yellow2red><red2yellow>false</red2yellow><yellow2green>false</yellow2green></action></spec>"#,
            ),
            carrier,
        ),
        // vSphere Lifecycle Manager remediation over the Automation REST API.
        rest(
            "Lifecycle Manager cluster software apply (task)",
            "/api/esx/settings/clusters/domain-c7/software?action=apply&vmw-task=true",
            maintenance,
        ),
        rest(
            "Lifecycle Manager cluster configuration apply",
            "/api/esx/settings/clusters/domain-c7/configuration?vmw-task=true&action=apply",
            maintenance,
        ),
        rest(
            "Lifecycle Manager host software apply",
            "/api/esx/settings/hosts/host-21/software?action=apply",
            maintenance,
        ),
        rest(
            "Lifecycle Manager configuration draft apply (commit and remediate)",
            "/api/esx/settings/clusters/domain-c7/configuration/drafts/7?action=apply&vmw-task=true",
            maintenance,
        ),
        rest(
            "Lifecycle Manager apply, /rest form",
            "/rest/esx/settings/clusters/domain-c7/software?action=apply",
            maintenance,
        ),
        rest(
            "Lifecycle Manager apply spelled Apply",
            "/api/esx/settings/clusters/domain-c7/software?action=Apply",
            Refused(500, "INVALID_ARGUMENT"),
        ),
        // Near-miss spellings of the SOAP endpoint.
        soap_case("SOAP on /sdk.", "/sdk.", strict_soap.clone(), lockdown),
        soap_case("SOAP on /sdk%20", "/sdk%20", strict_soap.clone(), lockdown),
        soap_case("SOAP on /sdkfoo", "/sdkfoo", strict_soap.clone(), lockdown),
        soap_case(
            "SOAP on /sdk%2e/vimService",
            "/sdk%2e/vimService",
            strict_soap.clone(),
            lockdown,
        ),
        soap_case(
            "SOAP on the asterisk-form target",
            "*",
            strict_soap,
            lockdown,
        ),
    ];
    let mut stop_get = json(
        "StopService DCUI under GET",
        on("HostServiceSystem", "serviceSystem-21", "StopService"),
        r#"{"id":"DCUI"}"#,
        lockdown,
    );
    stop_get.method = "GET";
    cases.push(stop_get);
    cases
}

trait ReplaceBytes {
    fn replace_all(self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceBytes for Vec<u8> {
    fn replace_all(self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8_lossy(&self)
            .replace(from, to)
            .into_bytes()
    }
}

#[tokio::test]
async fn every_bypass_attempt_is_refused_or_denied_and_never_reaches_vcenter() {
    let harness = Harness::start().await;
    let client = harness.client();
    let token = harness.login(&client).await;
    let login = client
        .post(format!("{}/sdk", harness.base()))
        .body(soap_login_envelope(ADMIN_USER, ADMIN_PASSWORD))
        .send()
        .await
        .expect("soap login");
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();

    let mut failures = Vec::new();
    for case in cases() {
        let is_soap = case.headers.iter().any(|(_, v)| v.starts_with("text/xml"));
        let mut headers = case.headers.clone();
        if is_soap {
            headers.push(("cookie", cookie.clone()));
        } else {
            headers.push(("vmware-api-session-id", token.clone()));
        }
        let (status, body) =
            raw_exchange(&harness, case.method, &case.path, &headers, &case.body).await;
        let fault_type = fault_type(&body);
        let ok = match case.expect {
            Expect::Allowed => status < 300,
            Expect::Refused(want_status, want_type) => {
                status == want_status && fault_type == want_type
            }
            Expect::Denied(policy) => {
                // A vim fault, or the vAPI error of a REST call.
                status == 500
                    && (fault_type == "RestrictedByAdministrator" || fault_type == "UNAUTHORIZED")
                    && body.contains(&format!("policy {policy}:"))
            }
        };
        if !ok {
            failures.push(format!(
                "{}: expected {:?}, got {status} {fault_type}: {}",
                case.name,
                case.expect,
                &body[..body.len().min(300)]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let reached: Vec<_> = harness
        .sim()
        .simulator
        .journal()
        .into_iter()
        .filter(|seen| {
            matches!(
                seen.vim_method.as_deref(),
                Some(
                    "ChangeLockdownMode"
                        | "EnterMaintenanceMode_Task"
                        | "ExecuteSoap"
                        | "CreateScheduledTask"
                        | "CreateAlarm"
                        | "ReconfigureAlarm"
                        | "StopService"
                        | "UninstallService"
                        | "UpdateServicePolicy"
                        | "UpdateOptions"
                        | "UpdateLockdownExceptions"
                        | "ChangeAccessMode"
                        | "UpdateSystemUsers"
                        | "ApplyHostConfig_Task"
                        | "ApplyEntitiesConfig_Task"
                        | "ConfigureHCI_Task"
                        | "AddStandaloneHost_Task"
                        | "AddHost_Task"
                        | "ApplyRecommendation"
                        | "RunScheduledTask"
                        | "CreateAgency"
                        | "Update"
                        | "Agency_Enable"
                )
            ) || seen.path.contains("/esx/settings/")
                || String::from_utf8_lossy(&seen.body).contains("lockdownStrict")
                || String::from_utf8_lossy(&seen.body).contains("DCUI")
        })
        .map(|seen| format!("{} {} {:?}", seen.http_method, seen.path, seen.vim_method))
        .collect();
    assert!(reached.is_empty(), "vCenter saw: {reached:?}");
    assert_eq!(
        harness.sim().simulator.lockdown_mode("ham-21").as_deref(),
        Some("lockdownDisabled")
    );
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-21"),
        Some(false)
    );
    assert_eq!(
        harness.sim().simulator.lockdown_mode("ham-23").as_deref(),
        Some("lockdownNormal")
    );
}

fn fault_type(body: &str) -> String {
    if let Ok(fault) = serde_json::from_str::<Value>(body) {
        // A vim fault names its type; a vAPI error (the Automation REST API) its error type.
        return fault["_typeName"]
            .as_str()
            .or_else(|| fault["error_type"].as_str())
            .unwrap_or_default()
            .to_owned();
    }
    body.split("xsi:type=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}
