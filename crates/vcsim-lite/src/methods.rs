//! The vim methods the simulator implements, shared by VI/JSON and SOAP.

use std::time::{Duration, Instant};

use vsphere_wire::fault::VimFault;

use super::args::Args;
use super::datastore_search;
use super::entities::{DATASTORE, DATASTORE_NAME};
use super::esxcli;
use super::events::NewEvent;
use super::faults;
use super::inventory::{Inventory, LOCKDOWN_MODES, ViewRecord, is_a, service_content};
use super::property_collector::{self, FilterRecord};
use super::scheduled_tasks;
use super::session_objects;
use super::sessions::Session;
use super::tasks::{NewTask, TaskEffect};
use super::value::{MoRef, VimValue, now_rfc3339};
use super::{SimInner, SimState, lock};

/// Longest any `WaitForUpdates`/`WaitForUpdatesEx` call waits for a change, even one that
/// vCenter would hold open indefinitely (no `maxWaitSeconds`): a safety bound so an abandoned
/// long poll cannot hold a simulator task forever.
const LONG_POLL_LIMIT: Duration = Duration::from_secs(3600);
/// How often a waiting `WaitForUpdates` call looks for changes.
const UPDATE_POLL: Duration = Duration::from_millis(100);

/// One method call, from either protocol.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    /// The object called, as the client named it.
    pub(crate) target: MoRef,
    /// The method name.
    pub(crate) method: &'a str,
    /// The parameters.
    pub(crate) args: Args<'a>,
    /// The session token or cookie value the client sent.
    pub(crate) token: Option<String>,
    /// The client's `User-Agent`.
    pub(crate) user_agent: String,
}

/// What a successful call produced.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// No return value.
    Void,
    /// A return value.
    Value(VimValue),
    /// A login: the new token and the `UserSession`.
    LoggedIn {
        /// Secret token for the header or cookie.
        token: String,
        /// The `UserSession` returned.
        session: VimValue,
    },
}

/// One pass over a call: done, or no updates yet for a waiting call.
enum Step {
    Done(Outcome),
    /// Nothing changed yet: look again until `wait` (`None`: until a change) has passed.
    NoUpdatesYet {
        wait: Option<Duration>,
        legacy: bool,
    },
}

/// Runs a call, waiting (without holding the state lock) when `WaitForUpdates` has nothing yet.
///
/// `WaitForUpdatesEx` with `maxWaitSeconds` answers "no updates" (an empty return) once that
/// time has passed; without it, and for the legacy `WaitForUpdates`, the call is held open until
/// something changes, as on vCenter (bounded only by [`LONG_POLL_LIMIT`]).
pub(crate) async fn invoke(sim: &SimInner, call: &Call<'_>) -> Result<Outcome, VimFault> {
    let started = Instant::now();
    let mut first = true;
    loop {
        let step = {
            let mut state = lock(&sim.state);
            call_once(&mut state, call, first)?
        };
        first = false;
        match step {
            Step::Done(outcome) => return Ok(outcome),
            Step::NoUpdatesYet { wait, legacy } => {
                let limit = wait.unwrap_or(LONG_POLL_LIMIT).min(LONG_POLL_LIMIT);
                if started.elapsed() >= limit {
                    if !legacy {
                        return Ok(Outcome::Void);
                    }
                    let state = lock(&sim.state);
                    let key = call
                        .token
                        .as_deref()
                        .and_then(|t| state.inventory.sessions.get(t))
                        .map(|s| s.key.clone())
                        .unwrap_or_default();
                    return Ok(Outcome::Value(property_collector::empty_update_set(
                        &state.inventory,
                        &key,
                        &call.target.value,
                    )));
                }
                let left = limit.saturating_sub(started.elapsed());
                tokio::time::sleep(UPDATE_POLL.min(left)).await;
            }
        }
    }
}

/// Whether a call may be made without a session.
fn allowed_without_session(call: &Call<'_>) -> bool {
    match (call.target.value.as_str(), call.method) {
        ("ServiceInstance", "RetrieveServiceContent" | "CurrentTime" | "Fetch") => true,
        ("SessionManager", "Login") => true,
        ("SessionManager", "Fetch") => {
            call.args.str_field("prop").as_deref() == Some("currentSession")
        }
        ("propertyCollector", "RetrievePropertiesEx" | "RetrieveProperties") => {
            reads_only_current_session(call.args)
        }
        _ => false,
    }
}

/// Whether a retrieve asks only for `SessionManager.currentSession`, as govc and govmomi do
/// to check a saved session (vCenter answers it without a session: the value is just unset).
fn reads_only_current_session(args: Args<'_>) -> bool {
    let specs = args.list("specSet");
    !specs.is_empty()
        && specs.iter().all(|spec| {
            let props = spec.list("propSet");
            let objs = spec.list("objectSet");
            !props.is_empty()
                && props.iter().all(|p| {
                    p.str_field("type").as_deref() == Some("SessionManager")
                        && p.bool_field("all") != Ok(Some(true))
                        && p.list("pathSet")
                            .iter()
                            .all(|path| path.text().as_deref() == Some("currentSession"))
                })
                && objs.iter().all(|o| {
                    o.moref_field("obj").map(|r| r.value).as_deref() == Some("SessionManager")
                        && o.list("selectSet").is_empty()
                })
        })
}

/// Runs a call once under the state lock; `first` counts it as a call of the session (a waiting
/// call looks again without counting).
fn call_once(state: &mut SimState, call: &Call<'_>, first: bool) -> Result<Step, VimFault> {
    state.inventory.complete_due_tasks();
    let session: Option<Session> = call
        .token
        .as_deref()
        .and_then(|t| state.inventory.sessions.get(t))
        .cloned();
    match (&session, &call.token) {
        (Some(_), Some(token)) if first => state.inventory.sessions.touch(token),
        (Some(_), Some(_)) => {}
        _ if allowed_without_session(call) => {}
        _ => return Err(faults::not_authenticated(&call.target)),
    }
    let session_key = session.as_ref().map(|s| s.key.as_str());
    let obj = state
        .inventory
        .lookup(&call.target.value, session_key)
        .filter(|found| is_a(&found.mo_type, &call.target.mo_type))
        .ok_or_else(|| faults::not_found(&call.target))?;
    let args = call.args;
    let inv = &mut state.inventory;
    let done = |outcome| Ok(Step::Done(outcome));
    let user = session
        .as_ref()
        .map(|s| s.user_name.clone())
        .unwrap_or_default();

    match (obj.mo_type.as_str(), call.method) {
        (_, "Fetch") => {
            let prop = args
                .str_field("prop")
                .ok_or_else(|| faults::invalid_argument("prop"))?;
            match inv.read(&obj, session.as_ref(), &prop)? {
                Some(value) => done(Outcome::Value(value.any())),
                None => done(Outcome::Void),
            }
        }
        ("ServiceInstance", "RetrieveServiceContent") => done(Outcome::Value(service_content())),
        ("ServiceInstance", "CurrentTime") => {
            done(Outcome::Value(VimValue::DateTime(now_rfc3339())))
        }
        ("SessionManager", "Login") => {
            let user_name = args.str_field("userName").unwrap_or_default();
            let password = args
                .field("password")
                .and_then(|p| p.raw_text())
                .unwrap_or_default();
            let locale = args.str_field("locale");
            let (token, session) = state.inventory.sessions.login(
                &user_name,
                &password,
                locale.as_deref(),
                &call.user_agent,
            )?;
            state.inventory.events.record(NewEvent {
                type_name: "UserLoginSessionEvent",
                user_name: session.user_name.clone(),
                message: format!(
                    "User {}@127.0.0.1 logged in as {}",
                    session.user_name, session.user_agent
                ),
                extra: vec![
                    ("ipAddress", VimValue::str("127.0.0.1")),
                    ("userAgent", VimValue::str(&session.user_agent)),
                    ("locale", VimValue::str(&session.locale)),
                    ("sessionId", VimValue::str(&session.key)),
                ],
                ..NewEvent::default()
            });
            done(Outcome::LoggedIn {
                token,
                session: session.to_value(),
            })
        }
        ("SessionManager", "Logout") => {
            if let Some(token) = &call.token
                && let Some(ended) = state.inventory.sessions.logout(token)
            {
                state.inventory.drop_session_objects(&ended.key);
                state.inventory.events.record(NewEvent {
                    type_name: "UserLogoutSessionEvent",
                    user_name: ended.user_name.clone(),
                    message: format!("User {}@127.0.0.1 logged out", ended.user_name),
                    extra: vec![
                        ("ipAddress", VimValue::str("127.0.0.1")),
                        ("userAgent", VimValue::str(&ended.user_agent)),
                        ("callCount", VimValue::Long(ended.call_count)),
                        ("sessionId", VimValue::str(&ended.key)),
                        ("loginTime", VimValue::DateTime(ended.login_time.clone())),
                    ],
                    ..NewEvent::default()
                });
            }
            done(Outcome::Void)
        }
        ("PropertyCollector", "RetrievePropertiesEx") => {
            let objects = property_collector::retrieve(inv, session.as_ref(), args)?;
            if objects.is_empty() {
                done(Outcome::Void)
            } else {
                done(Outcome::Value(property_collector::retrieve_result(objects)))
            }
        }
        ("PropertyCollector", "RetrieveProperties") => {
            let objects = property_collector::retrieve(inv, session.as_ref(), args)?;
            done(Outcome::Value(VimValue::Array("ObjectContent", objects)))
        }
        ("PropertyCollector", "CreateFilter") => {
            let session = session
                .as_ref()
                .ok_or_else(|| faults::not_authenticated(&obj))?;
            let spec_arg = args
                .field("spec")
                .ok_or_else(|| faults::invalid_argument("spec"))?;
            let spec = property_collector::parse_filter_spec(spec_arg)?;
            property_collector::validate(inv, Some(session), &spec)?;
            let partial = bool_arg(args, "partialUpdates")?.unwrap_or(false);
            if !inv.has_room_for_session_object() {
                return Err(faults::invalid_state());
            }
            let id = Inventory::session_object_id(&session.key);
            inv.filters.insert(
                id.clone(),
                FilterRecord::new(session.key.clone(), obj.value.clone(), spec, partial),
            );
            done(Outcome::Value(VimValue::moref("PropertyFilter", id)))
        }
        (
            "PropertyCollector",
            method @ ("WaitForUpdatesEx" | "WaitForUpdates" | "CheckForUpdates"),
        ) => {
            let session = session
                .as_ref()
                .ok_or_else(|| faults::not_authenticated(&obj))?;
            let version = args.str_field("version");
            if let Some(update) =
                property_collector::check_updates(inv, session, &obj.value, version.as_deref())
            {
                return done(Outcome::Value(update));
            }
            match method {
                "WaitForUpdatesEx" => {
                    let max_wait = match args.field("options") {
                        Some(options) => options
                            .int_field("maxWaitSeconds")
                            .map_err(|p| faults::invalid_argument(&p))?,
                        None => None,
                    };
                    match max_wait {
                        Some(secs) if secs <= 0 => done(Outcome::Void),
                        Some(secs) => Ok(Step::NoUpdatesYet {
                            wait: Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0))),
                            legacy: false,
                        }),
                        None => Ok(Step::NoUpdatesYet {
                            wait: None,
                            legacy: false,
                        }),
                    }
                }
                "WaitForUpdates" => Ok(Step::NoUpdatesYet {
                    wait: None,
                    legacy: true,
                }),
                _ => done(Outcome::Void),
            }
        }
        ("PropertyCollector", "CancelWaitForUpdates") => done(Outcome::Void),
        ("PropertyFilter", "DestroyPropertyFilter") => {
            inv.filters.remove(&obj.value);
            done(Outcome::Void)
        }
        ("ViewManager", "CreateContainerView") => {
            let session = session
                .as_ref()
                .ok_or_else(|| faults::not_authenticated(&obj))?;
            let container = args
                .moref_field("container")
                .ok_or_else(|| faults::invalid_argument("container"))?;
            let container = inv
                .lookup(&container.value, Some(&session.key))
                .filter(|found| is_a(&found.mo_type, &container.mo_type))
                .ok_or_else(|| faults::not_found(&container))?;
            let types = args.list("type").iter().filter_map(Args::text).collect();
            let recursive = bool_arg(args, "recursive")?.unwrap_or(false);
            if !inv.has_room_for_session_object() {
                return Err(faults::invalid_state());
            }
            let id = Inventory::session_object_id(&session.key);
            inv.views.insert(
                id.clone(),
                ViewRecord {
                    session_key: session.key.clone(),
                    container,
                    types,
                    recursive,
                },
            );
            done(Outcome::Value(VimValue::moref("ContainerView", id)))
        }
        ("ContainerView", "DestroyView") => {
            inv.views.remove(&obj.value);
            done(Outcome::Void)
        }
        ("HostSystem", "EnterMaintenanceMode_Task" | "ExitMaintenanceMode_Task") => {
            let entering = call.method == "EnterMaintenanceMode_Task";
            int_arg(args, "timeout")?;
            if entering {
                bool_arg(args, "evacuatePoweredOffVms")?;
            }
            let host = inv
                .host(&obj.value)
                .ok_or_else(|| faults::not_found(&obj))?;
            let effect = TaskEffect::HostMaintenance {
                host: obj.value.clone(),
                enter: entering,
            };
            if host.in_maintenance == entering || inv.tasks.pending(&effect) {
                return Err(faults::invalid_state());
            }
            let name = host.name.clone();
            let (method, description) = if entering {
                (
                    "EnterMaintenanceMode_Task",
                    "HostSystem.enterMaintenanceMode",
                )
            } else {
                ("ExitMaintenanceMode_Task", "HostSystem.exitMaintenanceMode")
            };
            let task = inv.start_task(NewTask {
                name: method.into(),
                description_id: description.into(),
                entity: obj.clone(),
                entity_name: name,
                user_name: user,
                effect,
                result: None,
            });
            done(Outcome::Value(VimValue::MoRef(task)))
        }
        ("VirtualMachine", "PowerOnVM_Task" | "PowerOffVM_Task") => {
            let on = call.method == "PowerOnVM_Task";
            let vm = inv.vm(&obj.value).ok_or_else(|| faults::not_found(&obj))?;
            let effect = TaskEffect::VmPower {
                vm: obj.value.clone(),
                on,
            };
            if vm.powered_on == on || inv.tasks.pending(&effect) {
                return Err(faults::invalid_power_state(vm.powered_on));
            }
            let name = vm.name.clone();
            let (method, description) = if on {
                ("PowerOnVM_Task", "VirtualMachine.powerOn")
            } else {
                ("PowerOffVM_Task", "VirtualMachine.powerOff")
            };
            let task = inv.start_task(NewTask {
                name: method.into(),
                description_id: description.into(),
                entity: obj.clone(),
                entity_name: name,
                user_name: user,
                effect,
                result: None,
            });
            done(Outcome::Value(VimValue::MoRef(task)))
        }
        (
            "HostDatastoreBrowser",
            method @ ("SearchDatastore_Task" | "SearchDatastoreSubFolders_Task"),
        ) => {
            let path = args
                .str_field("datastorePath")
                .ok_or_else(|| faults::invalid_argument("datastorePath"))?;
            let patterns: Vec<String> = args
                .field("searchSpec")
                .map(|spec| {
                    spec.list("matchPattern")
                        .iter()
                        .filter_map(Args::text)
                        .collect()
                })
                .unwrap_or_default();
            let recursive = method == "SearchDatastoreSubFolders_Task";
            let result = datastore_search::search(&state.files, &path, &patterns, recursive)?;
            let description = if recursive {
                "HostDatastoreBrowser.searchSubFolders"
            } else {
                "HostDatastoreBrowser.search"
            };
            let task = state.inventory.start_task(NewTask {
                name: method.into(),
                description_id: description.into(),
                entity: MoRef::new("Datastore", DATASTORE),
                entity_name: DATASTORE_NAME.into(),
                user_name: user,
                effect: TaskEffect::None,
                result: Some(result),
            });
            done(Outcome::Value(VimValue::MoRef(task)))
        }
        ("ScheduledTaskManager", "CreateScheduledTask" | "CreateObjectScheduledTask") => {
            done(Outcome::Value(scheduled_tasks::create(inv, args, &user)?))
        }
        ("ScheduledTask", "RunScheduledTask") => {
            let (target, method, params) = scheduled_tasks::action_call(inv, &obj.value)?;
            if method == "RunScheduledTask" {
                return Err(faults::invalid_argument("action.name"));
            }
            let action = Call {
                target,
                method: &method,
                args: Args::Json(&params),
                token: call.token.clone(),
                user_agent: call.user_agent.clone(),
            };
            let ran = call_once(state, &action, false);
            scheduled_tasks::record_run(&mut state.inventory, &obj.value, ran.as_ref().err());
            done(Outcome::Void)
        }
        ("ClusterComputeResource", "ClusterEnterMaintenanceMode") => done(Outcome::Value(
            scheduled_tasks::enter_maintenance_recommendations(inv, args)?,
        )),
        ("ClusterComputeResource", "ApplyRecommendation") => {
            scheduled_tasks::apply_recommendation(inv, args)?;
            done(Outcome::Void)
        }
        ("HostSystem", "EnterLockdownMode" | "ExitLockdownMode") => {
            let mode = if call.method == "EnterLockdownMode" {
                "lockdownNormal"
            } else {
                "lockdownDisabled"
            };
            let host = inv
                .host_mut(&obj.value)
                .ok_or_else(|| faults::not_found(&obj))?;
            host.lockdown_mode = mode.into();
            done(Outcome::Void)
        }
        ("HostAccessManager", "ChangeLockdownMode") => {
            let mode = args.str_field("mode").unwrap_or_default();
            if !LOCKDOWN_MODES.contains(&mode.as_str()) {
                return Err(faults::invalid_argument("mode"));
            }
            let host = inv
                .host_by_ham_mut(&obj.value)
                .ok_or_else(|| faults::not_found(&obj))?;
            host.lockdown_mode = mode;
            done(Outcome::Void)
        }
        _ => {
            let session = session
                .as_ref()
                .ok_or_else(|| faults::not_authenticated(&obj))?;
            let handled = session_objects::call(inv, session, &obj, call.method, args)
                .or_else(|| esxcli::call(inv, &obj, call.method, args, &user));
            match handled {
                Some(Ok(Some(value))) => done(Outcome::Value(value)),
                Some(Ok(None)) => done(Outcome::Void),
                Some(Err(fault)) => Err(fault),
                None => Err(faults::method_not_found(&obj, call.method)),
            }
        }
    }
}

/// An optional boolean parameter; a malformed one is an `InvalidRequest`.
fn bool_arg(args: Args<'_>, name: &str) -> Result<Option<bool>, VimFault> {
    args.bool_field(name)
        .map_err(|p| faults::invalid_request(&format!("parameter '{p}' is not a boolean")))
}

/// An optional int32 parameter; a malformed one is an `InvalidRequest`.
fn int_arg(args: Args<'_>, name: &str) -> Result<Option<i32>, VimFault> {
    args.int_field(name)
        .map_err(|p| faults::invalid_request(&format!("parameter '{p}' is not an int")))
}
