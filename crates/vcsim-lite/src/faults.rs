//! The vim faults the simulator raises, shaped as vCenter shapes them.

use vsphere_wire::fault::{FaultField, VimFault};

use super::value::MoRef;

/// A moref field for a fault.
fn moref_field(mo: &MoRef) -> FaultField {
    FaultField::MoRef {
        mo_type: mo.mo_type.clone(),
        value: mo.value.clone(),
    }
}

/// `NotAuthenticated` for a call on `object` without a valid session.
pub(crate) fn not_authenticated(object: &MoRef) -> VimFault {
    VimFault::new("NotAuthenticated", "The session is not authenticated.")
        .with_field("object", moref_field(object))
        .with_field("privilegeId", FaultField::Text("System.View".into()))
}

/// `InvalidLogin` for a wrong user name or password.
pub(crate) fn invalid_login() -> VimFault {
    VimFault::new(
        "InvalidLogin",
        "Cannot complete login due to an incorrect user name or password.",
    )
}

/// `ManagedObjectNotFound` for a reference to an object that does not exist.
pub(crate) fn not_found(obj: &MoRef) -> VimFault {
    VimFault::new(
        "ManagedObjectNotFound",
        format!(
            "The object 'vim.{}:{}' has already been deleted or has not been completely created",
            obj.mo_type, obj.value
        ),
    )
    .with_field("obj", moref_field(obj))
}

/// `InvalidState` for an operation the object's current state forbids.
pub(crate) fn invalid_state() -> VimFault {
    VimFault::new(
        "InvalidState",
        "The operation is not allowed in the current state.",
    )
}

/// `InvalidArgument` naming the parameter that was not correct.
pub(crate) fn invalid_argument(param: &str) -> VimFault {
    VimFault::new(
        "InvalidArgument",
        format!("A specified parameter was not correct: {param}"),
    )
    .with_field("invalidProperty", FaultField::Text(param.into()))
}

/// `InvalidRequest` for a request the server cannot parse.
pub(crate) fn invalid_request(reason: &str) -> VimFault {
    VimFault::new(
        "InvalidRequest",
        format!("The request is not valid: {reason}"),
    )
}

/// `MethodNotFound` for a method the target object does not have.
pub(crate) fn method_not_found(receiver: &MoRef, method: &str) -> VimFault {
    VimFault::new(
        "MethodNotFound",
        format!("Method '{method}' not found on '{}'", receiver.mo_type),
    )
    .with_field("receiver", moref_field(receiver))
    .with_field("method", FaultField::Text(method.into()))
}

/// `InvalidProperty` for a property path the object does not have.
pub(crate) fn invalid_property(name: &str) -> VimFault {
    VimFault::new("InvalidProperty", format!("Invalid property: '{name}'"))
        .with_field("name", FaultField::Text(name.into()))
}

/// `InvalidPowerState` for powering a VM on (off) that already is.
pub(crate) fn invalid_power_state(powered_on: bool) -> VimFault {
    let existing = if powered_on {
        "poweredOn"
    } else {
        "poweredOff"
    };
    let requested = if powered_on {
        "poweredOff"
    } else {
        "poweredOn"
    };
    VimFault::new(
        "InvalidPowerState",
        format!("The attempted operation cannot be performed in the current state ({existing})."),
    )
    .with_field("requestedState", FaultField::Text(requested.into()))
    .with_field("existingState", FaultField::Text(existing.into()))
}
