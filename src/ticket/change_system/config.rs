//! `[ticket.change_system]`: where the change system is, how to log in, and what counts as a
//! change that authorises work. Checked without file access by [`ChangeSystemConfig::validate`];
//! secrets are read by [`Credentials::load`] when the gateway starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use serde::Deserialize;

/// Look-up timeout unless configured otherwise.
pub const DEFAULT_TIMEOUT_SECS: u64 = 5;
/// How long a positive answer is reused unless configured otherwise.
pub const DEFAULT_CACHE_TTL_SECS: u64 = 60;
/// How long a negative answer (or a failure) is reused unless configured otherwise.
pub const DEFAULT_NEGATIVE_CACHE_TTL_SECS: u64 = 5;
/// Longest accepted look-up timeout.
const MAX_TIMEOUT_SECS: u64 = 60;
/// Longest accepted cache lifetime.
const MAX_CACHE_TTL_SECS: u64 = 3600;
/// Largest accepted window leeway.
const MAX_LEEWAY_SECS: u64 = 3600;
/// Largest secret file read (a token or password, not a document).
const MAX_SECRET_BYTES: u64 = 16 * 1024;

/// ServiceNow's `change_request.state` codes by the names operators use.
pub(crate) const STATE_CODES: [(&str, i64); 8] = [
    ("new", -5),
    ("assess", -4),
    ("authorize", -3),
    ("scheduled", -2),
    ("implement", -1),
    ("review", 0),
    ("closed", 3),
    ("canceled", 4),
];

/// The name of a state code (`-1` → `implement`), or the code itself for custom states.
pub(crate) fn state_name(code: i64) -> String {
    STATE_CODES
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(name, _)| (*name).to_owned())
        .unwrap_or_else(|| code.to_string())
}

/// Which change system is asked (a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeSystemKind {
    /// ServiceNow Change Management, over the Table API.
    Servicenow,
}

impl ChangeSystemKind {
    /// `"servicenow"`, as in the policy context's `ticket.source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Servicenow => "servicenow",
        }
    }
}

/// A state in `allowed_states`: a name (`"implement"`) or a raw code (`-1` or `"-1"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StateSpec {
    /// A state name or a code written as a string.
    Name(String),
    /// A raw state code.
    Code(i64),
}

impl StateSpec {
    /// The state code, or `None` for an unknown name.
    fn code(&self) -> Option<i64> {
        match self {
            Self::Code(code) => Some(*code),
            Self::Name(name) => {
                let name = name.trim().to_ascii_lowercase();
                STATE_CODES
                    .iter()
                    .find(|(n, _)| *n == name || (name == "cancelled" && *n == "canceled"))
                    .map(|(_, code)| *code)
                    .or_else(|| name.parse().ok())
            }
        }
    }
}

/// `[ticket.change_system]`: ask the change system whether a ticket authorises the call.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeSystemConfig {
    /// Which change system: `"servicenow"`.
    pub kind: ChangeSystemKind,
    /// The instance's base URL, `https://…` only (e.g. `https://example.service-now.com`).
    pub url: String,
    /// PEM CA bundle for the instance's certificate; default: the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds a whole look-up (both requests) may take; default 5.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Basic-auth user (with `password_file`).
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the basic-auth password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// File holding an OAuth bearer token (instead of `username` + `password_file`).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// States in which a change authorises work; default `["implement"]`.
    #[serde(default = "default_states")]
    pub allowed_states: Vec<StateSpec>,
    /// Require now to be inside the planned window (`start_date` ≤ now < `end_date`); default true.
    #[serde(default = "yes")]
    pub check_window: bool,
    /// Seconds the window is widened at both ends; default 0.
    #[serde(default)]
    pub leeway_secs: u64,
    /// Require the target host to be a configuration item of the change; default true.
    #[serde(default = "yes")]
    pub check_hosts: bool,
    /// Seconds a change found in an allowed state is reused; default 60 (0: never cached).
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl_secs: u64,
    /// Seconds any other answer (wrong state, not found, failure) is reused; default 5.
    #[serde(default = "default_negative_cache_ttl")]
    pub negative_cache_ttl_secs: u64,
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECS
}
fn default_states() -> Vec<StateSpec> {
    vec![StateSpec::Name("implement".to_owned())]
}
fn yes() -> bool {
    true
}
fn default_cache_ttl() -> u64 {
    DEFAULT_CACHE_TTL_SECS
}
fn default_negative_cache_ttl() -> u64 {
    DEFAULT_NEGATIVE_CACHE_TTL_SECS
}

/// A `[ticket.change_system]` key with a value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ChangeSystemConfigError {
    /// The dotted key, e.g. `ticket.change_system.url`.
    pub key: &'static str,
    /// What is wrong and what would be right.
    pub message: String,
}

fn invalid(key: &'static str, message: impl Into<String>) -> ChangeSystemConfigError {
    ChangeSystemConfigError {
        key,
        message: message.into(),
    }
}

/// How the gateway logs in to the change system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialKind {
    /// `username` + `password_file`.
    Basic,
    /// `token_file`.
    Bearer,
}

/// The checked settings of `[ticket.change_system]`, ready for a client.
#[derive(Debug, Clone)]
pub(crate) struct ChangeSystemSettings {
    /// Which system.
    pub(crate) kind: ChangeSystemKind,
    /// Base URL without a trailing `/`.
    pub(crate) base: String,
    /// Timeout of one look-up.
    pub(crate) timeout: Duration,
    /// Allowed state codes, in configured order.
    pub(crate) allowed_states: Vec<i64>,
    /// Window check on.
    pub(crate) check_window: bool,
    /// Window leeway in seconds.
    pub(crate) leeway_secs: i64,
    /// Host check on.
    pub(crate) check_hosts: bool,
    /// Positive cache lifetime.
    pub(crate) cache_ttl: Duration,
    /// Negative cache lifetime.
    pub(crate) negative_cache_ttl: Duration,
}

impl ChangeSystemConfig {
    /// Checks every value that needs no file access; the error names the key.
    pub fn validate(&self) -> Result<(), ChangeSystemConfigError> {
        self.settings().map(|_| ())
    }

    /// The checked settings.
    pub(crate) fn settings(&self) -> Result<ChangeSystemSettings, ChangeSystemConfigError> {
        let base = parse_base_url(&self.url)?;
        self.credential_kind()?;
        if self.timeout_secs == 0 || self.timeout_secs > MAX_TIMEOUT_SECS {
            return Err(invalid(
                "ticket.change_system.timeout_secs",
                format!("must be 1 to {MAX_TIMEOUT_SECS} seconds"),
            ));
        }
        if self.allowed_states.is_empty() {
            return Err(invalid(
                "ticket.change_system.allowed_states",
                "must name at least one state, e.g. [\"implement\"]",
            ));
        }
        let mut allowed_states = Vec::new();
        for spec in &self.allowed_states {
            let code = spec.code().ok_or_else(|| {
                invalid(
                    "ticket.change_system.allowed_states",
                    format!(
                        "{spec:?} is not a state: use new, assess, authorize, scheduled, \
                         implement, review, closed, canceled or a numeric state code"
                    ),
                )
            })?;
            if !allowed_states.contains(&code) {
                allowed_states.push(code);
            }
        }
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return Err(invalid(
                "ticket.change_system.leeway_secs",
                format!("must be at most {MAX_LEEWAY_SECS}"),
            ));
        }
        for (key, value) in [
            ("ticket.change_system.cache_ttl_secs", self.cache_ttl_secs),
            (
                "ticket.change_system.negative_cache_ttl_secs",
                self.negative_cache_ttl_secs,
            ),
        ] {
            if value > MAX_CACHE_TTL_SECS {
                return Err(invalid(
                    key,
                    format!("must be at most {MAX_CACHE_TTL_SECS}"),
                ));
            }
        }
        if self.negative_cache_ttl_secs > self.cache_ttl_secs.max(DEFAULT_NEGATIVE_CACHE_TTL_SECS) {
            return Err(invalid(
                "ticket.change_system.negative_cache_ttl_secs",
                "must not be longer than cache_ttl_secs: a just-approved change must be seen quickly",
            ));
        }
        Ok(ChangeSystemSettings {
            kind: self.kind,
            base,
            timeout: Duration::from_secs(self.timeout_secs),
            allowed_states,
            check_window: self.check_window,
            leeway_secs: i64::try_from(self.leeway_secs).unwrap_or(0),
            check_hosts: self.check_hosts,
            cache_ttl: Duration::from_secs(self.cache_ttl_secs),
            negative_cache_ttl: Duration::from_secs(self.negative_cache_ttl_secs),
        })
    }

    pub(crate) fn credential_kind(&self) -> Result<CredentialKind, ChangeSystemConfigError> {
        match (&self.username, &self.password_file, &self.token_file) {
            (Some(user), Some(_), None) => {
                if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
                    Err(invalid(
                        "ticket.change_system.username",
                        "must be a non-empty user name without ':' or control characters",
                    ))
                } else {
                    Ok(CredentialKind::Basic)
                }
            }
            (None, None, Some(_)) => Ok(CredentialKind::Bearer),
            (Some(_), None, None) => Err(invalid(
                "ticket.change_system.password_file",
                "is required with username (basic authentication)",
            )),
            (None, Some(_), None) => Err(invalid(
                "ticket.change_system.username",
                "is required with password_file (basic authentication)",
            )),
            (None, None, None) => Err(invalid(
                "ticket.change_system.token_file",
                "set either token_file (OAuth bearer token) or username + password_file",
            )),
            _ => Err(invalid(
                "ticket.change_system.token_file",
                "set either token_file or username + password_file, not both",
            )),
        }
    }
}

fn parse_base_url(url: &str) -> Result<String, ChangeSystemConfigError> {
    const KEY: &str = "ticket.change_system.url";
    let uri: Uri = url
        .parse()
        .map_err(|err| invalid(KEY, format!("`{url}` is not a URL: {err}")))?;
    if uri.scheme_str() != Some("https") {
        return Err(invalid(
            KEY,
            format!("`{url}` must start with https:// (credentials never travel in clear text)"),
        ));
    }
    let Some(authority) = uri.authority() else {
        return Err(invalid(KEY, format!("`{url}` has no host")));
    };
    if uri.host().is_none_or(str::is_empty) || authority.as_str().contains('@') {
        return Err(invalid(
            KEY,
            format!("`{url}` must name a host and no user information"),
        ));
    }
    if uri.query().is_some() {
        return Err(invalid(KEY, format!("`{url}` must not have a query")));
    }
    let path = uri.path().trim_end_matches('/');
    Ok(format!("https://{authority}{path}"))
}

/// A secret read from a file; its `Debug` output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// The secret itself, for building the `Authorization` header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The credentials read from the configured files.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// Basic authentication.
    Basic {
        /// The user.
        username: String,
        /// The password.
        password: Secret,
    },
    /// An OAuth bearer token.
    Bearer(Secret),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl Credentials {
    /// Reads the password or token file named by `config`.
    pub(crate) fn load(config: &ChangeSystemConfig) -> Result<Self, ChangeSystemConfigError> {
        match config.credential_kind()? {
            CredentialKind::Basic => Ok(Self::Basic {
                username: config.username.clone().unwrap_or_default(),
                password: read_secret(
                    "ticket.change_system.password_file",
                    config.password_file.as_deref(),
                )?,
            }),
            CredentialKind::Bearer => Ok(Self::Bearer(read_secret(
                "ticket.change_system.token_file",
                config.token_file.as_deref(),
            )?)),
        }
    }

    /// The `Authorization` header value.
    pub(crate) fn header_value(&self) -> String {
        use base64::Engine;
        match self {
            Self::Basic { username, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()))
            ),
            Self::Bearer(token) => format!("Bearer {}", token.expose()),
        }
    }
}

/// Reads a one-line secret; the trailing newline editors add is dropped. Messages never quote it.
fn read_secret(key: &'static str, path: Option<&Path>) -> Result<Secret, ChangeSystemConfigError> {
    let Some(path) = path else {
        return Err(invalid(key, "is required"));
    };
    let fail = |what: String| invalid(key, format!("{}: {what}", path.display()));
    let meta = std::fs::metadata(path).map_err(|err| fail(format!("cannot read: {err}")))?;
    if !meta.is_file() {
        return Err(fail("is not a file".to_owned()));
    }
    if meta.len() > MAX_SECRET_BYTES {
        return Err(fail(format!(
            "is {} bytes; a secret file holds at most {MAX_SECRET_BYTES}",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|err| fail(format!("cannot read: {err}")))?;
    let text = String::from_utf8(bytes).map_err(|_| fail("is not UTF-8 text".to_owned()))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(fail("is empty".to_owned()));
    }
    if secret.chars().any(|c| c.is_control()) {
        return Err(fail(
            "holds more than one line or control characters".to_owned(),
        ));
    }
    Ok(Secret(secret.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ChangeSystemConfig {
        toml::from_str(text).expect("parses")
    }

    const MINIMAL: &str = r#"
        kind = "servicenow"
        url = "https://example.service-now.com"
        token_file = "/etc/vcguard/servicenow.token"
    "#;

    #[test]
    fn defaults() {
        let config = parse(MINIMAL);
        let settings = config.settings().expect("valid");
        assert_eq!(settings.base, "https://example.service-now.com");
        assert_eq!(settings.timeout, Duration::from_secs(5));
        assert_eq!(settings.allowed_states, vec![-1]);
        assert!(settings.check_window && settings.check_hosts);
        assert_eq!(settings.leeway_secs, 0);
        assert_eq!(settings.cache_ttl, Duration::from_secs(60));
        assert_eq!(settings.negative_cache_ttl, Duration::from_secs(5));
        assert_eq!(config.credential_kind(), Ok(CredentialKind::Bearer));
    }

    #[test]
    fn states_by_name_and_code() {
        let mut config = parse(MINIMAL);
        config.allowed_states = vec![
            StateSpec::Name("Implement".into()),
            StateSpec::Code(0),
            StateSpec::Name("-2".into()),
            StateSpec::Code(7),
        ];
        assert_eq!(
            config.settings().expect("valid").allowed_states,
            vec![-1, 0, -2, 7]
        );
        let from_toml = parse(&format!("{MINIMAL}\nallowed_states = [\"review\", -1, 3]"));
        assert_eq!(
            from_toml.settings().expect("valid").allowed_states,
            vec![0, -1, 3]
        );
        config.allowed_states = vec![StateSpec::Name("implemented".into())];
        let err = config.validate().expect_err("unknown state");
        assert_eq!(err.key, "ticket.change_system.allowed_states");
        assert!(err.message.contains("\"implemented\""), "{err}");
        config.allowed_states.clear();
        assert_eq!(
            config.validate().expect_err("empty").key,
            "ticket.change_system.allowed_states"
        );
        assert_eq!(state_name(-1), "implement");
        assert_eq!(state_name(4), "canceled");
        assert_eq!(state_name(7), "7");
    }

    #[test]
    fn url_must_be_https() {
        for (url, expected) in [
            ("http://example.service-now.com", "must start with https://"),
            ("example.service-now.com", "must start with https://"),
            (
                "https://user:pw@example.service-now.com",
                "no user information",
            ),
            (
                "https://example.service-now.com/?x=1",
                "must not have a query",
            ),
            ("not a url", "is not a URL"),
        ] {
            let mut config = parse(MINIMAL);
            config.url = url.to_owned();
            let err = config.validate().expect_err(url);
            assert_eq!(err.key, "ticket.change_system.url", "{url}");
            assert!(err.message.contains(expected), "{url}: {err}");
        }
        let mut config = parse(MINIMAL);
        config.url = "https://proxy.example.test:8443/servicenow/".into();
        assert_eq!(
            config.settings().expect("path prefix").base,
            "https://proxy.example.test:8443/servicenow"
        );
    }

    #[test]
    fn exactly_one_kind_of_credentials() {
        let base = r#"
            kind = "servicenow"
            url = "https://example.service-now.com"
        "#;
        let err = parse(base).validate().expect_err("none");
        assert_eq!(err.key, "ticket.change_system.token_file");
        let err = parse(&format!("{base}\nusername = \"vcguard\""))
            .validate()
            .expect_err("no password");
        assert_eq!(err.key, "ticket.change_system.password_file");
        let err = parse(&format!("{base}\npassword_file = \"p\""))
            .validate()
            .expect_err("no user");
        assert_eq!(err.key, "ticket.change_system.username");
        let err = parse(&format!(
            "{base}\nusername = \"u\"\npassword_file = \"p\"\ntoken_file = \"t\""
        ))
        .validate()
        .expect_err("both");
        assert!(err.message.contains("not both"), "{err}");
        let basic = parse(&format!("{base}\nusername = \"u\"\npassword_file = \"p\""));
        assert_eq!(basic.credential_kind(), Ok(CredentialKind::Basic));
    }

    #[test]
    fn unknown_kind_and_keys_are_refused() {
        let err = toml::from_str::<ChangeSystemConfig>(
            "kind = \"jira\"\nurl = \"https://x\"\ntoken_file = \"t\"",
        )
        .expect_err("kind");
        assert!(err.to_string().contains("servicenow"), "{err}");
        let err = toml::from_str::<ChangeSystemConfig>(&format!("{MINIMAL}\ncache_ttl = 3"))
            .expect_err("typo");
        assert!(
            err.to_string().contains("unknown field `cache_ttl`"),
            "{err}"
        );
    }

    #[test]
    fn bounds() {
        let mut config = parse(MINIMAL);
        config.timeout_secs = 0;
        assert_eq!(
            config.validate().expect_err("timeout").key,
            "ticket.change_system.timeout_secs"
        );
        config.timeout_secs = 5;
        config.cache_ttl_secs = 10;
        config.negative_cache_ttl_secs = 30;
        assert_eq!(
            config.validate().expect_err("negative longer").key,
            "ticket.change_system.negative_cache_ttl_secs"
        );
        config.negative_cache_ttl_secs = 5;
        config.leeway_secs = 86_400;
        assert_eq!(
            config.validate().expect_err("leeway").key,
            "ticket.change_system.leeway_secs"
        );
    }

    #[test]
    fn secrets_are_read_trimmed_and_never_shown() {
        let dir = tempfile::tempdir().expect("dir");
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cr3t-token-value\n").expect("write");
        let mut config = parse(MINIMAL);
        config.token_file = Some(token.clone());
        let credentials = Credentials::load(&config).expect("loads");
        assert_eq!(credentials.header_value(), "Bearer s3cr3t-token-value");
        assert!(!format!("{credentials:?}").contains("s3cr3t"));

        std::fs::write(&token, "line one\nline two\n").expect("write");
        let err = Credentials::load(&config).expect_err("two lines");
        assert_eq!(err.key, "ticket.change_system.token_file");
        assert!(!err.to_string().contains("line one"), "{err}");
        std::fs::write(&token, "").expect("write");
        assert!(Credentials::load(&config).is_err());

        let password = dir.path().join("password");
        std::fs::write(&password, "pa55word").expect("write");
        config.token_file = None;
        config.username = Some("vcguard".into());
        config.password_file = Some(password);
        let basic = Credentials::load(&config).expect("basic");
        // base64("vcguard:pa55word")
        assert_eq!(basic.header_value(), "Basic dmNndWFyZDpwYTU1d29yZA==");
        assert!(!format!("{basic:?}").contains("pa55word"));
    }
}
