//! The typed request the gateway hands to the engine, and parsing of `Type::"id"` references.

use std::fmt;
use std::str::FromStr;

use cedar_policy::EntityUid;

use super::NAMESPACE;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A vCenter user (id = the user name vCenter reports, e.g. `VSPHERE.LOCAL\Administrator`).
    User {
        /// The vCenter user name.
        name: String,
        /// The groups the identity step found for this user (Cedar `Group` ids).
        groups: Vec<String>,
    },
    /// A caller with no known session.
    Unauthenticated,
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User { name, groups } => {
                write!(f, "User::\"{}\"", name.escape_debug())?;
                if !groups.is_empty() {
                    write!(f, " (groups: {})", groups.join(", "))?;
                }
                Ok(())
            }
            Self::Unauthenticated => f.write_str("Unauthenticated"),
        }
    }
}

/// The managed object a call targets, as vSphere names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The vim managed-object type (`HostSystem`, `HostAccessManager`, ...); types the schema
    /// does not declare are evaluated as `ManagedObject`.
    pub mo_type: String,
    /// The managed-object id (`host-21`, `ha-host-access-manager`, ...).
    pub id: String,
}

impl Resource {
    /// A resource of the given type and id.
    pub fn new(mo_type: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            mo_type: mo_type.into(),
            id: id.into(),
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::\"{}\"", self.mo_type, self.id.escape_debug())
    }
}

/// One guarded call, as the engine decides on it.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRequest {
    /// Who is calling.
    pub principal: Principal,
    /// The vim method name, e.g. `ChangeLockdownMode`.
    pub action: String,
    /// The target object.
    pub resource: Resource,
    /// The action's context as a JSON object (shape in `policies/schema.cedarschema`).
    pub context: serde_json::Value,
}

/// A `Type::"id"` reference that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntityRefError {
    /// Not Cedar entity syntax.
    #[error("`{input}` is not an entity reference like Type::\"id\": {message}")]
    Syntax {
        /// The text given.
        input: String,
        /// Cedar's parse error.
        message: String,
    },
    /// A namespace other than `VSphere`.
    #[error("`{input}`: only the VSphere namespace is known")]
    Namespace {
        /// The text given.
        input: String,
    },
    /// A principal of a type other than `User` or `Unauthenticated`.
    #[error("`{input}`: a principal is User::\"name\" or Unauthenticated")]
    PrincipalType {
        /// The text given.
        input: String,
    },
}

/// Parses an entity reference, returning its type basename (namespace `VSphere` optional)
/// and its unescaped id.
fn parse_ref(input: &str) -> Result<(String, String), EntityRefError> {
    let trimmed = input.trim();
    let uid = EntityUid::from_str(trimmed).map_err(|e| EntityRefError::Syntax {
        input: trimmed.to_string(),
        message: e.to_string(),
    })?;
    let ty = uid.type_name();
    let namespace = ty.namespace();
    if !(namespace.is_empty() || namespace == NAMESPACE) {
        return Err(EntityRefError::Namespace {
            input: trimmed.to_string(),
        });
    }
    Ok((ty.basename().to_string(), uid.id().unescaped().to_string()))
}

/// Parses a principal: `User::"VSPHERE.LOCAL\\Administrator"` (Cedar string escapes) or
/// `Unauthenticated` (bare, or `Unauthenticated::"..."`); the `VSphere::` prefix is optional.
/// The user's groups are left empty.
pub fn parse_principal(input: &str) -> Result<Principal, EntityRefError> {
    let trimmed = input.trim();
    if trimmed == "Unauthenticated" || trimmed == "VSphere::Unauthenticated" {
        return Ok(Principal::Unauthenticated);
    }
    let (ty, id) = parse_ref(trimmed)?;
    match ty.as_str() {
        "User" => Ok(Principal::User {
            name: id,
            groups: Vec::new(),
        }),
        "Unauthenticated" => Ok(Principal::Unauthenticated),
        _ => Err(EntityRefError::PrincipalType {
            input: trimmed.to_string(),
        }),
    }
}

/// Parses a resource: `HostAccessManager::"ham-21"`, `HostSystem::"host-21"` (any type name;
/// the `VSphere::` prefix is optional).
pub fn parse_resource(input: &str) -> Result<Resource, EntityRefError> {
    let (mo_type, id) = parse_ref(input)?;
    Ok(Resource { mo_type, id })
}
