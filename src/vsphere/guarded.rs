//! The guarded set: which vim methods policies decide on, and which "carrier"
//! methods can reach a guarded method indirectly.
//!
//! Names compare case-insensitively (PROTOCOL.md §6): a guarded or carrier name in
//! any other spelling than the canonical one is refused, never passed through.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use super::effects::{EFFECT_METHODS, EffectMethod};

/// Methods guarded from day one (DESIGN.md, PROTOCOL.md §5.4).
pub const DEFAULT_GUARDED: [&str; 4] = [
    "EnterMaintenanceMode_Task",
    "ChangeLockdownMode",
    "EnterLockdownMode",
    "ExitLockdownMode",
];

/// Methods whose body can make vCenter or a host run another method (PROTOCOL.md §5).
pub const CARRIERS: [&str; 6] = [
    "ExecuteSoap",
    "CreateScheduledTask",
    "CreateObjectScheduledTask",
    "ReconfigureScheduledTask",
    "CreateAlarm",
    "ReconfigureAlarm",
];

/// vmodl spellings of carriers whose method part differs from the WSDL name.
const VMODL_CARRIER_SUFFIXES: [(&str, &str); 4] = [
    ("scheduledtaskmanager.create", "CreateScheduledTask"),
    ("scheduledtask.reconfigure", "ReconfigureScheduledTask"),
    ("alarmmanager.create", "CreateAlarm"),
    ("alarm.reconfigure", "ReconfigureAlarm"),
];

/// What a method name means to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodLookup<'a> {
    /// Neither guarded nor a carrier: pass through (in whatever case it was sent).
    NotGuarded,
    /// A guarded method in its canonical spelling.
    Guarded(&'a str),
    /// A carrier in its canonical spelling: its whole body must be inspected.
    Carrier {
        /// The canonical carrier name.
        canonical: &'a str,
        /// Whether the operator also guards the carrier call itself.
        guarded_itself: bool,
    },
    /// A method that can reach a guarded effect (PROTOCOL.md §8): read whole and classified
    /// by its parameters.
    Effect {
        /// The method.
        method: EffectMethod,
        /// Whether the policy schema declares its action (guarded whatever the parameters).
        declared: bool,
    },
    /// A guarded or carrier method in another spelling: refuse.
    WrongCase {
        /// The canonical spelling.
        canonical: &'a str,
    },
}

impl MethodLookup<'_> {
    /// Whether the request must be read whole and parsed before it is forwarded.
    pub fn needs_whole_body(&self) -> bool {
        !matches!(self, Self::NotGuarded)
    }
}

/// The shape of a guarded method's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `EnterMaintenanceMode_Task`.
    EnterMaintenanceMode,
    /// `ChangeLockdownMode`.
    ChangeLockdownMode,
    /// A method known to take no parameters besides `_this`.
    NoParameters,
    /// Any other (operator-declared) method: well-formedness only.
    Untyped,
}

/// How a carrier reaches the method it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarrierKind {
    /// `ExecuteSoap`: runs a method (esxcli or any other) on a host object.
    ExecuteSoap,
    /// A scheduled task; `target_param` names the parameter holding the object, else `_this`.
    ScheduledTask {
        /// Parameter naming the object the action runs on, if any.
        target_param: Option<&'static str>,
    },
    /// An alarm; `target_param` names the parameter holding the entity, else `_this`.
    Alarm {
        /// Parameter naming the entity the alarm is defined on, if any.
        target_param: Option<&'static str>,
    },
}

/// A name the operator asked to guard could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardedMethodsError {
    /// Not a vim method name.
    #[error("'{0}' is not a vim method name (ASCII letters, digits and '_' only)")]
    NotAName(String),
    /// Same name as an existing one in another case.
    #[error("'{name}' clashes with '{existing}': method names compare case-insensitively")]
    Clash {
        /// The name asked for.
        name: String,
        /// The name already in the set.
        existing: String,
    },
}

/// The guarded methods and the carriers, keyed case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardedMethods {
    guarded: BTreeMap<String, String>,
    carriers: BTreeMap<String, String>,
    effects: BTreeMap<String, (String, EffectMethod)>,
    /// The keys of all three maps: most names on the wire are in none of them, and one hashed
    /// look-up says so faster than three ordered ones.
    keys: HashSet<String>,
}

impl Default for GuardedMethods {
    fn default() -> Self {
        Self::new()
    }
}

impl GuardedMethods {
    /// The default set: [`DEFAULT_GUARDED`] plus the [`CARRIERS`].
    pub fn new() -> Self {
        let guarded: BTreeMap<String, String> = DEFAULT_GUARDED
            .iter()
            .map(|name| (fold_case(name).into_owned(), (*name).to_owned()))
            .collect();
        let carriers: BTreeMap<String, String> = CARRIERS
            .iter()
            .map(|name| (fold_case(name).into_owned(), (*name).to_owned()))
            .collect();
        let effects: BTreeMap<String, (String, EffectMethod)> = EFFECT_METHODS
            .iter()
            .map(|(wire, method, ..)| (fold_case(wire).into_owned(), ((*wire).to_owned(), *method)))
            .collect();
        let keys = guarded
            .keys()
            .chain(carriers.keys())
            .chain(effects.keys())
            .cloned()
            .collect();
        Self {
            guarded,
            carriers,
            effects,
            keys,
        }
    }

    /// Adds an operator-declared guarded method (canonical spelling); adding it twice is fine.
    pub fn add(&mut self, name: &str) -> Result<(), GuardedMethodsError> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(GuardedMethodsError::NotAName(name.to_owned()));
        }
        let key = fold_case(name);
        for existing in [self.guarded.get(&*key), self.carriers.get(&*key)]
            .into_iter()
            .flatten()
        {
            if existing != name {
                return Err(GuardedMethodsError::Clash {
                    name: name.to_owned(),
                    existing: existing.clone(),
                });
            }
        }
        self.keys.insert(key.clone().into_owned());
        self.guarded.insert(key.into_owned(), name.to_owned());
        Ok(())
    }

    /// Builder form of [`Self::add`].
    pub fn with(mut self, name: &str) -> Result<Self, GuardedMethodsError> {
        self.add(name)?;
        Ok(self)
    }

    /// The guarded method names, canonical spelling.
    pub fn guarded_names(&self) -> impl Iterator<Item = &str> {
        self.guarded.values().map(String::as_str)
    }

    /// Classifies a method name as sent on the wire (path segment or SOAP element).
    pub fn lookup(&self, name: &str) -> MethodLookup<'_> {
        let key = fold_case(name);
        if !self.keys.contains(&*key) {
            return MethodLookup::NotGuarded;
        }
        if let Some(canonical) = self.carriers.get(&*key) {
            if canonical != name {
                return MethodLookup::WrongCase { canonical };
            }
            return MethodLookup::Carrier {
                canonical,
                guarded_itself: self.guarded.contains_key(&*key),
            };
        }
        if let Some((canonical, method)) = self.effects.get(&*key) {
            if canonical != name {
                return MethodLookup::WrongCase { canonical };
            }
            let action = fold_case(method.action());
            return MethodLookup::Effect {
                method: *method,
                declared: self.guarded.contains_key(&*action),
            };
        }
        match self.guarded.get(&*key) {
            Some(canonical) if canonical == name => MethodLookup::Guarded(canonical),
            Some(canonical) => MethodLookup::WrongCase { canonical },
            None => MethodLookup::NotGuarded,
        }
    }

    /// Classifies a method named inside a body: a `MethodAction.name` or an `ExecuteSoap` method.
    ///
    /// Accepts the WSDL name (`EnterMaintenanceMode_Task`) and the vmodl forms
    /// (`vim.HostSystem.enterMaintenanceMode`, `enterMaintenanceMode`): a host's
    /// method executer looks up only the part after the last `.`, and retries it
    /// uncapitalised, so both are canonical; any other case is [`MethodLookup::WrongCase`].
    pub fn lookup_reference(&self, reference: &str) -> MethodLookup<'_> {
        let folded = fold_case(reference);
        for (suffix, carrier) in VMODL_CARRIER_SUFFIXES {
            let boundary = folded.len().checked_sub(suffix.len() + 1);
            let matches = folded == suffix
                || (folded.ends_with(suffix)
                    && boundary.is_some_and(|at| folded.as_bytes().get(at) == Some(&b'.')));
            if matches && let Some(canonical) = self.carriers.get(&*fold_case(carrier)) {
                return MethodLookup::Carrier {
                    canonical,
                    guarded_itself: false,
                };
            }
        }
        let last = reference.rsplit('.').next().unwrap_or(reference);
        let exact = self.lookup(last);
        if matches!(
            exact,
            MethodLookup::Guarded(_) | MethodLookup::Carrier { .. } | MethodLookup::Effect { .. }
        ) {
            return exact;
        }
        let last_folded = fold_case(last);
        let vmodl_match = |canonical: &str| {
            let stripped = canonical.strip_suffix("_Task").unwrap_or(canonical);
            if fold_case(stripped) != last_folded {
                return None;
            }
            Some(last == stripped || last == uncapitalize(stripped))
        };
        for canonical in self.carriers.values() {
            if let Some(exact) = vmodl_match(canonical) {
                return if exact {
                    MethodLookup::Carrier {
                        canonical,
                        guarded_itself: false,
                    }
                } else {
                    MethodLookup::WrongCase { canonical }
                };
            }
        }
        for canonical in self.guarded.values() {
            if let Some(exact) = vmodl_match(canonical) {
                return if exact {
                    MethodLookup::Guarded(canonical)
                } else {
                    MethodLookup::WrongCase { canonical }
                };
            }
        }
        exact
    }
}

/// The parameter shape of a guarded method.
pub fn body_kind(canonical: &str) -> BodyKind {
    match canonical {
        "EnterMaintenanceMode_Task" => BodyKind::EnterMaintenanceMode,
        "ChangeLockdownMode" => BodyKind::ChangeLockdownMode,
        "EnterLockdownMode" | "ExitLockdownMode" | "DisconnectHost_Task" | "Destroy_Task" => {
            BodyKind::NoParameters
        }
        _ => BodyKind::Untyped,
    }
}

/// How a carrier reaches its method, for the canonical carrier names.
pub fn carrier_kind(canonical: &str) -> Option<CarrierKind> {
    match canonical {
        "ExecuteSoap" => Some(CarrierKind::ExecuteSoap),
        "CreateScheduledTask" | "CreateObjectScheduledTask" => Some(CarrierKind::ScheduledTask {
            target_param: Some("obj"),
        }),
        "ReconfigureScheduledTask" => Some(CarrierKind::ScheduledTask { target_param: None }),
        "CreateAlarm" => Some(CarrierKind::Alarm {
            target_param: Some("entity"),
        }),
        "ReconfigureAlarm" => Some(CarrierKind::Alarm { target_param: None }),
        _ => None,
    }
}

/// The only managed object type a known host method can be called on.
///
/// A request naming another type for these methods is refused: the moId is what
/// vCenter acts on, so a mislabelled type could only mislead policies.
pub fn expected_target_type(canonical: &str) -> Option<&'static str> {
    match canonical {
        "EnterMaintenanceMode_Task"
        | "ExitMaintenanceMode_Task"
        | "EnterLockdownMode"
        | "ExitLockdownMode"
        | "RebootHost_Task"
        | "ShutdownHost_Task"
        | "PowerDownHostToStandBy_Task"
        | "DisconnectHost_Task" => Some("HostSystem"),
        "ChangeLockdownMode"
        | "ChangeAccessMode"
        | "UpdateLockdownExceptions"
        | "UpdateSystemUsers" => Some("HostAccessManager"),
        _ => None,
    }
}

/// Case folding that also catches non-ASCII letters which upper-case to ASCII (`ſ`, `K`).
/// Borrows `name` when it is folded already (lower-case ASCII), as most names on the wire are.
pub(crate) fn fold_case(name: &str) -> Cow<'_, str> {
    if !name.is_ascii() {
        Cow::Owned(name.to_uppercase().to_lowercase())
    } else if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

fn uncapitalize(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_folding_borrows_folded_names_and_folds_the_rest() {
        assert!(matches!(
            fold_case("entermaintenancemode_task"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            fold_case("EnterMaintenanceMode_Task"),
            "entermaintenancemode_task"
        );
        // U+017F LATIN SMALL LETTER LONG S upper-cases to ASCII 'S'; U+212A KELVIN SIGN to 'k'.
        assert_eq!(fold_case("Sdk\u{17f}"), "sdks");
        assert_eq!(fold_case("\u{212a}ey"), "key");
    }

    #[test]
    fn defaults_are_guarded_in_canonical_case_only() {
        let set = GuardedMethods::new();
        assert_eq!(
            set.lookup("ChangeLockdownMode"),
            MethodLookup::Guarded("ChangeLockdownMode")
        );
        assert_eq!(
            set.lookup("changelockdownmode"),
            MethodLookup::WrongCase {
                canonical: "ChangeLockdownMode"
            }
        );
        assert_eq!(
            set.lookup("ENTERMAINTENANCEMODE_TASK"),
            MethodLookup::WrongCase {
                canonical: "EnterMaintenanceMode_Task"
            }
        );
        assert_eq!(set.lookup("Login"), MethodLookup::NotGuarded);
        assert_eq!(set.lookup("login"), MethodLookup::NotGuarded);
    }

    #[test]
    fn every_known_name_is_found_in_every_spelling() {
        let set = GuardedMethods::new().with("RebootHost_Task").expect("add");
        let names = DEFAULT_GUARDED
            .iter()
            .chain(CARRIERS.iter())
            .chain(EFFECT_METHODS.iter().map(|(wire, ..)| wire))
            .chain(&["RebootHost_Task"]);
        for name in names {
            assert_ne!(set.lookup(name), MethodLookup::NotGuarded, "{name}");
            let shouted = name.to_ascii_uppercase();
            assert!(
                matches!(set.lookup(&shouted), MethodLookup::WrongCase { .. }),
                "{shouted}"
            );
        }
    }

    #[test]
    fn unicode_case_tricks_are_wrong_case() {
        let set = GuardedMethods::new();
        // U+017F LATIN SMALL LETTER LONG S upper-cases to 'S'.
        assert!(matches!(
            set.lookup("EnterMaintenanceMode_Ta\u{17f}k"),
            MethodLookup::WrongCase { .. }
        ));
        // U+212A KELVIN SIGN lower-cases to 'k'.
        assert!(matches!(
            set.lookup("ChangeLoc\u{212a}downMode"),
            MethodLookup::WrongCase { .. }
        ));
    }

    #[test]
    fn carriers_need_whole_body_and_refuse_odd_case() {
        let set = GuardedMethods::new();
        assert_eq!(
            set.lookup("CreateScheduledTask"),
            MethodLookup::Carrier {
                canonical: "CreateScheduledTask",
                guarded_itself: false
            }
        );
        assert!(matches!(
            set.lookup("createscheduledtask"),
            MethodLookup::WrongCase { .. }
        ));
        assert!(set.lookup("ExecuteSoap").needs_whole_body());
        assert!(!set.lookup("RetrievePropertiesEx").needs_whole_body());
    }

    #[test]
    fn operator_names_are_added_and_clashes_refused() {
        let mut set = GuardedMethods::new();
        set.add("RebootHost_Task").expect("valid name");
        set.add("RebootHost_Task").expect("idempotent");
        assert_eq!(
            set.lookup("RebootHost_Task"),
            MethodLookup::Guarded("RebootHost_Task")
        );
        assert!(matches!(
            set.add("rebootHost_task"),
            Err(GuardedMethodsError::Clash { .. })
        ));
        assert!(matches!(
            set.add("Reboot Host"),
            Err(GuardedMethodsError::NotAName(_))
        ));
        set.add("CreateAlarm").expect("carrier may be guarded too");
        assert_eq!(
            set.lookup("CreateAlarm"),
            MethodLookup::Carrier {
                canonical: "CreateAlarm",
                guarded_itself: true
            }
        );
    }

    #[test]
    fn references_accept_wsdl_and_vmodl_forms() {
        let set = GuardedMethods::new();
        for name in [
            "EnterMaintenanceMode_Task",
            "vim.HostSystem.enterMaintenanceMode",
            "vim.HostSystem.EnterMaintenanceMode",
            "enterMaintenanceMode",
        ] {
            assert_eq!(
                set.lookup_reference(name),
                MethodLookup::Guarded("EnterMaintenanceMode_Task"),
                "{name}"
            );
        }
        assert_eq!(
            set.lookup_reference("vim.host.HostAccessManager.changeLockdownMode"),
            MethodLookup::Guarded("ChangeLockdownMode")
        );
        assert!(matches!(
            set.lookup_reference("vim.HostSystem.ENTERMAINTENANCEMODE"),
            MethodLookup::WrongCase { .. }
        ));
        assert!(matches!(
            set.lookup_reference("vim.scheduler.ScheduledTaskManager.create"),
            MethodLookup::Carrier {
                canonical: "CreateScheduledTask",
                ..
            }
        ));
        assert!(matches!(
            set.lookup_reference("vim.ReflectManagedMethodExecuter.executeSoap"),
            MethodLookup::Carrier {
                canonical: "ExecuteSoap",
                ..
            }
        ));
        assert_eq!(
            set.lookup_reference("PowerOnVM_Task"),
            MethodLookup::NotGuarded
        );
        assert_eq!(
            set.lookup_reference("vim.VirtualMachine.reconfigure"),
            MethodLookup::NotGuarded
        );
    }

    #[test]
    fn kinds_and_target_types() {
        assert_eq!(
            body_kind("EnterMaintenanceMode_Task"),
            BodyKind::EnterMaintenanceMode
        );
        assert_eq!(body_kind("ExitLockdownMode"), BodyKind::NoParameters);
        assert_eq!(body_kind("RebootHost_Task"), BodyKind::Untyped);
        assert_eq!(
            carrier_kind("CreateAlarm"),
            Some(CarrierKind::Alarm {
                target_param: Some("entity")
            })
        );
        assert_eq!(carrier_kind("Login"), None);
        assert_eq!(
            expected_target_type("ChangeLockdownMode"),
            Some("HostAccessManager")
        );
        assert_eq!(expected_target_type("Destroy_Task"), None);
    }
}
