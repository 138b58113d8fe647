//! Who is calling: the vCenter user behind a request's session token.
//!
//! The gateway learns users from the traffic itself (a successful `Login` through it) and,
//! for a token it has not seen, asks vCenter once with that same token. Tokens are never
//! kept: the cache is keyed by a keyed hash of the token.

mod cache;
mod learn;
mod lookup;

pub use cache::{SessionCache, SessionKey};
pub use learn::{LoginResult, login_result};
pub use lookup::{LookupError, lookup_user};

/// The caller of one request, placed in request extensions by the identify step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Caller {
    /// The vCenter user name (`VSPHERE.LOCAL\Administrator`), if the session is known.
    pub user: Option<String>,
    /// Keyed hash of the session token, for correlation; never the token itself.
    pub session: Option<SessionKey>,
}
