//! The vim methods the simulator implements, shared by VI/JSON and SOAP.

use std::time::{Duration, Instant};

use crate::vsphere::fault::VimFault;

use super::args::Args;
use super::faults;
use super::inventory::{Inventory, LOCKDOWN_MODES, ViewRecord, is_a, service_content};
use super::property_collector::{self, FilterRecord};
use super::sessions::Session;
use super::value::{MoRef, VimValue, now_rfc3339};
use super::{SimInner, SimState, lock};

/// Longest a `WaitForUpdates` call waits for a change.
const MAX_UPDATE_WAIT: Duration = Duration::from_secs(60);
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
    NoUpdatesYet { wait: Duration, legacy: bool },
}

/// Runs a call, waiting (without holding the state lock) when `WaitForUpdates` has nothing yet.
pub(crate) async fn invoke(sim: &SimInner, call: &Call<'_>) -> Result<Outcome, VimFault> {
    let started = Instant::now();
    loop {
        let step = {
            let mut state = lock(&sim.state);
            call_once(&mut state, call)?
        };
        match step {
            Step::Done(outcome) => return Ok(outcome),
            Step::NoUpdatesYet { wait, legacy } => {
                if started.elapsed() >= wait {
                    if !legacy {
                        return Ok(Outcome::Void);
                    }
                    let state = lock(&sim.state);
                    let key = call
                        .token
                        .as_deref()
                        .and_then(|t| state.sessions.get(t))
                        .map(|s| s.key.clone())
                        .unwrap_or_default();
                    return Ok(Outcome::Value(property_collector::empty_update_set(
                        &state.inventory,
                        &key,
                    )));
                }
                tokio::time::sleep(UPDATE_POLL).await;
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
        _ => false,
    }
}

/// Runs a call once under the state lock.
fn call_once(state: &mut SimState, call: &Call<'_>) -> Result<Step, VimFault> {
    let session: Option<Session> = call
        .token
        .as_deref()
        .and_then(|t| state.sessions.get(t))
        .cloned();
    match (&session, &call.token) {
        (Some(_), Some(token)) => state.sessions.touch(token),
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
            let (token, session) =
                state
                    .sessions
                    .login(&user_name, &password, locale.as_deref(), &call.user_agent)?;
            done(Outcome::LoggedIn {
                token,
                session: session.to_value(),
            })
        }
        ("SessionManager", "Logout") => {
            if let Some(token) = &call.token
                && let Some(ended) = state.sessions.logout(token)
            {
                state.inventory.drop_session_objects(&ended.key);
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
                FilterRecord::new(session.key.clone(), spec, partial),
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
                property_collector::check_updates(inv, session, version.as_deref())
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
                        Some(0) => done(Outcome::Void),
                        Some(secs) => Ok(Step::NoUpdatesYet {
                            wait: Duration::from_secs(u64::try_from(secs).unwrap_or(0))
                                .min(MAX_UPDATE_WAIT),
                            legacy: false,
                        }),
                        None => Ok(Step::NoUpdatesYet {
                            wait: MAX_UPDATE_WAIT,
                            legacy: false,
                        }),
                    }
                }
                "WaitForUpdates" => Ok(Step::NoUpdatesYet {
                    wait: MAX_UPDATE_WAIT,
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
                .host_mut(&obj.value)
                .ok_or_else(|| faults::not_found(&obj))?;
            if host.in_maintenance == entering {
                return Err(faults::invalid_state());
            }
            host.in_maintenance = entering;
            let name = host.name.clone();
            let (method, description) = if entering {
                (
                    "EnterMaintenanceMode_Task",
                    "HostSystem.enterMaintenanceMode",
                )
            } else {
                ("ExitMaintenanceMode_Task", "HostSystem.exitMaintenanceMode")
            };
            let task = inv.add_task(method, description, obj.clone(), &name, &user);
            done(Outcome::Value(VimValue::MoRef(task)))
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
        _ => Err(faults::method_not_found(&obj, call.method)),
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
