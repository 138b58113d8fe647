//! esxcli over the vim API (`govc host.esxcli`): a host's `ReflectManagedMethodExecuter`
//! answering `ExecuteSoap` for `system maintenanceMode get|set` and the CLI type information
//! (`vim.CLIInfo.FetchCLIInfo`) a client reads first to learn the command's parameters.

use vsphere_wire::fault::{VimFault, xml_escape};

use super::args::Args;
use super::faults;
use super::inventory::{DYNAMIC_TYPE_MANAGER_PREFIX, ESXCLI_EXECUTER_PREFIX, Inventory};
use super::session_objects::Returned;
use super::tasks::{NewTask, TaskEffect};
use super::value::{MoRef, VimValue};

/// moId of the CLI type information handler.
const CLI_INFO_MOID: &str = "ha-dynamic-type-manager-local-cli-cliinfo";
/// The one esxcli namespace simulated.
const MAINTENANCE_NAMESPACE: &str = "vim.EsxCLI.system.maintenanceMode";
/// Opening of every esxcli response document.
const OBJ_OPEN: &str = r#"<obj xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="urn:vim25" versionId="5.0" xsi:type=""#;

/// An esxcli response document of `xsi_type` holding `inner` (already XML).
fn obj(xsi_type: &str, inner: &str) -> String {
    format!("{OBJ_OPEN}{xsi_type}\">{inner}</obj>")
}

/// A successful `ReflectManagedMethodExecuterSoapResult`.
fn response(xml: String) -> Returned {
    Some(VimValue::Data(
        "ReflectManagedMethodExecuterSoapResult",
        vec![("response", VimValue::Str(xml))],
    ))
}

/// A `ReflectManagedMethodExecuterSoapResult` carrying an esxcli error message.
fn cli_fault(message: &str) -> Returned {
    Some(VimValue::Data(
        "ReflectManagedMethodExecuterSoapResult",
        vec![(
            "fault",
            VimValue::Data(
                "ReflectManagedMethodExecuterSoapFault",
                vec![("faultMsg", VimValue::str(message))],
            ),
        )],
    ))
}

/// One `<param>` of the CLI type information.
fn param(name: &str, help: &str, long: &str, short: &str) -> String {
    format!(
        "<param><name>{name}</name><displayName>{name}</displayName><help>{}</help><aliases>{long}</aliases><aliases>{short}</aliases><flag>false</flag></param>",
        xml_escape(help)
    )
}

/// `vim.CLIInfo` of `system maintenanceMode`: `get`, and `set` with its parameters.
fn maintenance_cli_info() -> String {
    let hints = "<hints><key>formatter</key><value>simple</value></hints>";
    let inner = format!(
        "<name>{MAINTENANCE_NAMESPACE}</name><displayName>maintenanceMode</displayName><help>Provides methods to get and set the host's maintenance mode.</help>\
<method><name>get</name><displayName>get</displayName><help>Get the maintenance mode state of the system.</help>{hints}</method>\
<method><name>set</name><displayName>set</displayName><help>Enable or disable the maintenance mode of the system.</help>{}{}{}{hints}</method>",
        param("enable", "Maintenance mode state.", "--enable", "-e"),
        param(
            "timeout",
            "Time to perform the operation in seconds.",
            "--timeout",
            "-t"
        ),
        param(
            "vsanmode",
            "Action the VSAN service must take before the host can enter maintenance mode.",
            "--vsanmode",
            "-m"
        ),
    );
    obj("VimCLIInfo", &inner)
}

/// The text inside an esxcli argument value such as `<enable>true</enable>`.
fn argument_text(val: &str) -> String {
    let val = val.trim();
    match (val.find('>'), val.rfind('<')) {
        (Some(open), Some(close)) if open < close => val[open + 1..close].trim().to_string(),
        _ => val.to_string(),
    }
}

/// The value of argument `name` of an `ExecuteSoap` call.
fn argument(args: Args<'_>, name: &str) -> Option<String> {
    args.list("argument")
        .into_iter()
        .find(|a| a.str_field("name").as_deref() == Some(name))
        .and_then(|a| a.field("val").and_then(|v| v.text()))
        .map(|v| argument_text(&v))
}

/// `system maintenanceMode set --enable`: starts the host's maintenance task.
fn set_maintenance(inv: &mut Inventory, host_id: &str, enable: &str, user: &str) -> Returned {
    let enter = match enable {
        "true" | "1" => true,
        "false" | "0" => false,
        _ => return cli_fault("Invalid value for enable: expected true or false"),
    };
    let Some(host) = inv.host(host_id) else {
        return cli_fault("Unknown host");
    };
    let effect = TaskEffect::HostMaintenance {
        host: host_id.to_string(),
        enter,
    };
    if host.in_maintenance == enter || inv.tasks.pending(&effect) {
        let state = if enter { "enabled" } else { "disabled" };
        return cli_fault(&format!("Maintenance mode is already {state}."));
    }
    let (name, description) = if enter {
        (
            "EnterMaintenanceMode_Task",
            "HostSystem.enterMaintenanceMode",
        )
    } else {
        ("ExitMaintenanceMode_Task", "HostSystem.exitMaintenanceMode")
    };
    let entity_name = host.name.clone();
    inv.start_task(NewTask {
        name: name.into(),
        description_id: description.into(),
        entity: MoRef::new("HostSystem", host_id),
        entity_name,
        user_name: user.into(),
        effect,
        result: None,
    });
    response(obj("xsd:boolean", "true"))
}

/// Runs `method` on `obj` if it is an esxcli method; `None` if it is not.
pub(crate) fn call(
    inv: &mut Inventory,
    obj: &MoRef,
    method: &str,
    args: Args<'_>,
    user: &str,
) -> Option<Result<Returned, VimFault>> {
    let result = match (obj.mo_type.as_str(), method) {
        ("HostSystem", "RetrieveManagedMethodExecuter") => Some(VimValue::moref(
            "ReflectManagedMethodExecuter",
            format!("{ESXCLI_EXECUTER_PREFIX}{}", obj.value),
        )),
        ("HostSystem", "RetrieveDynamicTypeManager") => Some(VimValue::moref(
            "InternalDynamicTypeManager",
            format!("{DYNAMIC_TYPE_MANAGER_PREFIX}{}", obj.value),
        )),
        ("ReflectManagedMethodExecuter", "ExecuteSoap") => {
            let host_id = obj
                .value
                .strip_prefix(ESXCLI_EXECUTER_PREFIX)
                .unwrap_or_default()
                .to_string();
            let moid = args.str_field("moid").unwrap_or_default();
            let Some(cli_method) = args.str_field("method") else {
                return Some(Err(faults::invalid_argument("method")));
            };
            if moid == CLI_INFO_MOID && cli_method == "vim.CLIInfo.FetchCLIInfo" {
                match argument(args, "typeName").as_deref() {
                    Some(MAINTENANCE_NAMESPACE) => response(maintenance_cli_info()),
                    Some(other) => cli_fault(&format!("Unknown command namespace {other}")),
                    None => cli_fault("Missing argument typeName"),
                }
            } else if !moid.eq_ignore_ascii_case("ha-cli-handler-system-maintenanceMode") {
                cli_fault(&format!("Unknown command handler {moid}"))
            } else if cli_method == format!("{MAINTENANCE_NAMESPACE}.get") {
                let enabled = inv.host(&host_id).is_some_and(|h| h.in_maintenance);
                let state = if enabled { "Enabled" } else { "Disabled" };
                response(obj_string(state))
            } else if cli_method == format!("{MAINTENANCE_NAMESPACE}.set") {
                match argument(args, "enable") {
                    Some(enable) => set_maintenance(inv, &host_id, &enable, user),
                    None => cli_fault("Missing required parameter -e|--enable"),
                }
            } else {
                cli_fault(&format!("Unknown command {cli_method}"))
            }
        }
        _ => return None,
    };
    Some(Ok(result))
}

/// A string response document.
fn obj_string(text: &str) -> String {
    obj("xsd:string", &xml_escape(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_values_are_unwrapped() {
        assert_eq!(argument_text("<enable>true</enable>"), "true");
        assert_eq!(argument_text(" <timeout> 600 </timeout> "), "600");
        assert_eq!(argument_text("plain"), "plain");
    }

    #[test]
    fn cli_info_names_the_set_parameters() {
        let info = maintenance_cli_info();
        assert!(info.contains("<aliases>--enable</aliases><aliases>-e</aliases>"));
        assert!(info.contains("<method><name>get</name>"));
        assert!(info.starts_with(OBJ_OPEN));
    }
}
