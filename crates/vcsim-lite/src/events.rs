//! The event log behind `EventManager` and its `EventHistoryCollector`s.

use std::collections::VecDeque;

use super::value::{MoRef, VimValue, now_rfc3339};

/// Most events kept; the oldest are dropped first.
const MAX_EVENTS: usize = 1_000;

/// An entity an event is about: its name and reference.
#[derive(Debug, Clone)]
pub(crate) struct EventEntity {
    /// Display name.
    pub(crate) name: String,
    /// Reference.
    pub(crate) obj: MoRef,
}

/// One logged event.
#[derive(Debug, Clone)]
pub(crate) struct EventRecord {
    key: i32,
    type_name: &'static str,
    created: String,
    user_name: String,
    message: String,
    datacenter: Option<EventEntity>,
    host: Option<EventEntity>,
    vm: Option<EventEntity>,
    /// Fields after `fullFormattedMessage` that only this event type has.
    extra: Vec<(&'static str, VimValue)>,
}

/// What a caller supplies to log an event.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewEvent {
    /// Event type, e.g. `EnteredMaintenanceModeEvent`.
    pub(crate) type_name: &'static str,
    /// The user the event is attributed to.
    pub(crate) user_name: String,
    /// `fullFormattedMessage`.
    pub(crate) message: String,
    /// The datacenter, if the event is inside one.
    pub(crate) datacenter: Option<EventEntity>,
    /// The host, if any.
    pub(crate) host: Option<EventEntity>,
    /// The VM, if any.
    pub(crate) vm: Option<EventEntity>,
    /// Type-specific fields, in wire order.
    pub(crate) extra: Vec<(&'static str, VimValue)>,
}

impl EventRecord {
    /// Whether the event concerns `obj` (a host or VM), or any object when `obj` is a container.
    fn concerns(&self, obj: &MoRef) -> bool {
        match obj.mo_type.as_str() {
            "HostSystem" => self.host.as_ref().is_some_and(|h| h.obj == *obj),
            "VirtualMachine" => self.vm.as_ref().is_some_and(|v| v.obj == *obj),
            _ => true,
        }
    }

    /// The event as a vim data object of its own type.
    pub(crate) fn to_value(&self) -> VimValue {
        let argument = |type_name: &'static str, field: &'static str, e: &EventEntity| {
            VimValue::Data(
                type_name,
                vec![
                    ("name", VimValue::str(&e.name)),
                    (field, VimValue::MoRef(e.obj.clone())),
                ],
            )
        };
        let mut fields = vec![
            ("key", VimValue::Int(self.key)),
            ("chainId", VimValue::Int(self.key)),
            ("createdTime", VimValue::DateTime(self.created.clone())),
            ("userName", VimValue::str(&self.user_name)),
        ];
        if let Some(dc) = &self.datacenter {
            fields.push((
                "datacenter",
                argument("DatacenterEventArgument", "datacenter", dc),
            ));
        }
        if let Some(host) = &self.host {
            fields.push(("host", argument("HostEventArgument", "host", host)));
        }
        if let Some(vm) = &self.vm {
            fields.push(("vm", argument("VmEventArgument", "vm", vm)));
        }
        fields.push(("fullFormattedMessage", VimValue::str(&self.message)));
        fields.extend(self.extra.iter().cloned());
        VimValue::Data(self.type_name, fields)
    }
}

/// The event log, newest last.
#[derive(Debug)]
pub(crate) struct EventLog {
    events: VecDeque<EventRecord>,
    next_key: i32,
}

impl Default for EventLog {
    fn default() -> Self {
        Self {
            events: VecDeque::new(),
            next_key: 1,
        }
    }
}

impl EventLog {
    /// Logs an event now.
    pub(crate) fn record(&mut self, event: NewEvent) {
        let key = self.next_key;
        self.next_key = self.next_key.checked_add(1).unwrap_or(1);
        while self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(EventRecord {
            key,
            type_name: event.type_name,
            created: now_rfc3339(),
            user_name: event.user_name,
            message: event.message,
            datacenter: event.datacenter,
            host: event.host,
            vm: event.vm,
            extra: event.extra,
        });
    }

    /// The newest `count` events about `entity` (all when `None`), newest first.
    pub(crate) fn latest(&self, entity: Option<&MoRef>, count: usize) -> Vec<VimValue> {
        self.events
            .iter()
            .rev()
            .filter(|e| entity.is_none_or(|obj| e.concerns(obj)))
            .take(count)
            .map(EventRecord::to_value)
            .collect()
    }

    /// The newest event, if any (`EventManager.latestEvent`).
    pub(crate) fn newest(&self) -> Option<VimValue> {
        self.events.back().map(EventRecord::to_value)
    }
}

/// The event types the simulator logs, as (type, description, category, format).
const EVENT_TYPES: [(&str, &str, &str, &str); 8] = [
    (
        "UserLoginSessionEvent",
        "User login",
        "info",
        "User {userName}@{ipAddress} logged in as {userAgent}",
    ),
    (
        "UserLogoutSessionEvent",
        "User logout",
        "info",
        "User {userName}@{ipAddress} logged out",
    ),
    (
        "EnteringMaintenanceModeEvent",
        "Entering maintenance mode",
        "info",
        "Host {host.name} in {datacenter.name} has started to enter maintenance mode",
    ),
    (
        "EnteredMaintenanceModeEvent",
        "Entered maintenance mode",
        "info",
        "Host {host.name} in {datacenter.name} has entered maintenance mode",
    ),
    (
        "ExitMaintenanceModeEvent",
        "Exit maintenance mode",
        "info",
        "Host {host.name} in {datacenter.name} has exited maintenance mode",
    ),
    (
        "VmPoweredOnEvent",
        "VM powered on",
        "info",
        "{vm.name} on {host.name} in {datacenter.name} is powered on",
    ),
    (
        "VmPoweredOffEvent",
        "VM powered off",
        "info",
        "{vm.name} on {host.name} in {datacenter.name} is powered off",
    ),
    (
        "TaskEvent",
        "Task event",
        "info",
        "Task: {info.descriptionId}",
    ),
];

/// `EventManager.description`: categories and one `EventDescriptionEventDetail` per event type.
pub(crate) fn event_description() -> VimValue {
    let category = |key: &str| {
        VimValue::Data(
            "ElementDescription",
            vec![
                ("label", VimValue::str(key)),
                ("summary", VimValue::str(key)),
                ("key", VimValue::str(key)),
            ],
        )
    };
    let details = EVENT_TYPES
        .iter()
        .map(|(key, description, category, format)| {
            VimValue::Data(
                "EventDescriptionEventDetail",
                vec![
                    ("key", VimValue::str(*key)),
                    ("description", VimValue::str(*description)),
                    ("category", VimValue::str(*category)),
                    ("fullFormat", VimValue::str(*format)),
                ],
            )
        })
        .collect();
    VimValue::Data(
        "EventDescription",
        vec![
            (
                "category",
                VimValue::Array(
                    "ElementDescription",
                    ["info", "warning", "error", "user"]
                        .into_iter()
                        .map(category)
                        .collect(),
                ),
            ),
            (
                "eventInfo",
                VimValue::Array("EventDescriptionEventDetail", details),
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_page_is_newest_first_and_filters_by_host() {
        let mut log = EventLog::default();
        let host = |id: &str| EventEntity {
            name: format!("esx-{id}"),
            obj: MoRef::new("HostSystem", id),
        };
        for id in ["host-21", "host-22", "host-21"] {
            log.record(NewEvent {
                type_name: "EnteredMaintenanceModeEvent",
                message: format!("Host {id} has entered maintenance mode"),
                host: Some(host(id)),
                ..NewEvent::default()
            });
        }
        let all = log.latest(None, 10);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].to_json()["key"], 3);
        let only = log.latest(Some(&MoRef::new("HostSystem", "host-22")), 10);
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].to_json()["host"]["host"]["value"], "host-22");
        assert_eq!(log.latest(None, 2).len(), 2);
        let root = MoRef::new("Folder", "group-d1");
        assert_eq!(log.latest(Some(&root), 10).len(), 3);
    }
}
