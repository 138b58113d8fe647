//! Who is calling: the vCenter user behind a request's session token.
//!
//! The gateway learns users from the traffic itself (a successful `Login` through it) and,
//! for a token it has not seen, asks vCenter once with that same token. Tokens are never
//! kept: the cache is keyed by a keyed hash of the token.

mod cache;
mod learn;
mod lookup;
mod token;

pub use cache::{SessionCache, SessionKey};
pub use learn::{LoginResult, login_result};
pub use lookup::{DEFAULT_RELEASE, LookupError, SessionService, lookup_user};
pub use token::{
    DEFAULT_TOKEN_HEADER, IdentityTokenConfig, IdentityTokenError, IdentityTokenVerifier,
    MAX_GROUPS, MAX_TOKEN_BYTES, TokenGroups,
};

/// The caller of one request, placed in request extensions by the identify step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Caller {
    /// The vCenter user name (`VSPHERE.LOCAL\Administrator`), if the session is known.
    pub user: Option<String>,
    /// Keyed hash of the session token, for correlation; never the token itself.
    pub session: Option<SessionKey>,
    /// Groups a verified identity token adds to `user` (guarded calls only).
    pub groups: Vec<String>,
    /// Why the identity token the call carries is refused; a guarded call is then denied.
    pub token_problem: Option<String>,
}
