//! Login sessions: one table shared by the VI/JSON token and the SOAP cookie.

use std::collections::HashMap;

use http::HeaderMap;
use uuid::Uuid;
use vsphere_wire::fault::VimFault;

use super::faults;
use super::value::{VimValue, now_rfc3339};

/// Name of the SOAP session cookie.
pub(crate) const SOAP_COOKIE: &str = "vmware_soap_session";
/// Name of the VI/JSON session header.
pub(crate) const SESSION_HEADER: &str = "vmware-api-session-id";
/// Most live sessions kept; the oldest is dropped beyond it.
const MAX_SESSIONS: usize = 20_000;

/// One logged-in session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// `UserSession.key`: public id, different from the secret token.
    pub(crate) key: String,
    /// The vCenter form of the user name, e.g. `VSPHERE.LOCAL\Administrator`.
    pub(crate) user_name: String,
    /// Display name of the user.
    pub(crate) full_name: String,
    /// When the session logged in.
    pub(crate) login_time: String,
    /// When the session last made a call.
    pub(crate) last_active_time: String,
    /// Locale asked for at login.
    pub(crate) locale: String,
    /// The client's `User-Agent`.
    pub(crate) user_agent: String,
    /// Calls made with the session.
    pub(crate) call_count: i64,
    /// Login order, to drop the oldest first.
    serial: u64,
}

impl Session {
    /// The session as a vim `UserSession`.
    pub(crate) fn to_value(&self) -> VimValue {
        VimValue::Data(
            "UserSession",
            vec![
                ("key", VimValue::str(&self.key)),
                ("userName", VimValue::str(&self.user_name)),
                ("fullName", VimValue::str(&self.full_name)),
                ("loginTime", VimValue::DateTime(self.login_time.clone())),
                (
                    "lastActiveTime",
                    VimValue::DateTime(self.last_active_time.clone()),
                ),
                ("locale", VimValue::str(&self.locale)),
                ("messageLocale", VimValue::str(&self.locale)),
                ("extensionSession", VimValue::Bool(false)),
                ("ipAddress", VimValue::str("127.0.0.1")),
                ("userAgent", VimValue::str(&self.user_agent)),
                ("callCount", VimValue::Long(self.call_count)),
            ],
        )
    }
}

#[cfg(test)]
impl Session {
    /// A session with key `key`, for unit tests.
    pub(crate) fn for_tests(key: &str) -> Self {
        Self {
            key: key.into(),
            user_name: "VSPHERE.LOCAL\\Administrator".into(),
            full_name: "Administrator vsphere.local".into(),
            login_time: now_rfc3339(),
            last_active_time: now_rfc3339(),
            locale: "en".into(),
            user_agent: "test".into(),
            call_count: 1,
            serial: 0,
        }
    }
}

/// Known users and live sessions by secret token.
#[derive(Debug)]
pub(crate) struct SessionTable {
    users: Vec<(String, String)>,
    by_token: HashMap<String, Session>,
    next_serial: u64,
}

impl SessionTable {
    /// A table that accepts `users` (name, password).
    pub(crate) fn new(users: Vec<(String, String)>) -> Self {
        Self {
            users,
            by_token: HashMap::new(),
            next_serial: 0,
        }
    }

    /// Checks the password and opens a session; returns the new token and the session.
    pub(crate) fn login(
        &mut self,
        user: &str,
        password: &str,
        locale: Option<&str>,
        user_agent: &str,
    ) -> Result<(String, Session), VimFault> {
        let known = self
            .users
            .iter()
            .any(|(u, p)| u.eq_ignore_ascii_case(user) && p == password);
        if !known || user.is_empty() {
            return Err(faults::invalid_login());
        }
        if self.by_token.len() >= MAX_SESSIONS {
            let oldest = self
                .by_token
                .iter()
                .min_by_key(|(_, s)| s.serial)
                .map(|(t, _)| t.clone());
            if let Some(token) = oldest {
                self.by_token.remove(&token);
            }
        }
        let token = new_token();
        let now = now_rfc3339();
        let (user_name, full_name) = vcenter_user_name(user);
        self.next_serial += 1;
        let session = Session {
            key: Uuid::new_v4().to_string(),
            user_name,
            full_name,
            login_time: now.clone(),
            last_active_time: now,
            locale: locale.filter(|l| !l.is_empty()).unwrap_or("en").to_string(),
            user_agent: user_agent.to_string(),
            call_count: 1,
            serial: self.next_serial,
        };
        self.by_token.insert(token.clone(), session.clone());
        Ok((token, session))
    }

    /// The session of `token`, if logged in.
    pub(crate) fn get(&self, token: &str) -> Option<&Session> {
        self.by_token.get(token)
    }

    /// Records a call made with `token` (last active time and call count).
    pub(crate) fn touch(&mut self, token: &str) {
        if let Some(s) = self.by_token.get_mut(token) {
            s.last_active_time = now_rfc3339();
            s.call_count += 1;
        }
    }

    /// Every live session as a `UserSession`, oldest login first.
    pub(crate) fn values(&self) -> Vec<VimValue> {
        let mut sessions: Vec<&Session> = self.by_token.values().collect();
        sessions.sort_by_key(|s| s.serial);
        sessions.into_iter().map(Session::to_value).collect()
    }

    /// Replaces the accepted users.
    pub(crate) fn set_users(&mut self, users: Vec<(String, String)>) {
        self.users = users;
    }

    /// Ends the session of `token`; returns it if it existed.
    pub(crate) fn logout(&mut self, token: &str) -> Option<Session> {
        self.by_token.remove(token)
    }
}

/// A new secret session token: 40 random hex digits, as vCenter issues.
fn new_token() -> String {
    let mut hex = Uuid::new_v4().simple().to_string();
    hex.push_str(&Uuid::new_v4().simple().to_string());
    hex.truncate(40);
    hex
}

/// vCenter's form of a login name, and a display name.
///
/// `administrator@vsphere.local` is `VSPHERE.LOCAL\Administrator`; `user@dom.tld` is
/// `DOM.TLD\user`; `DOMAIN\user` and plain names stay as they are.
pub(crate) fn vcenter_user_name(login: &str) -> (String, String) {
    if login.eq_ignore_ascii_case("administrator@vsphere.local") {
        return (
            "VSPHERE.LOCAL\\Administrator".into(),
            "Administrator vsphere.local".into(),
        );
    }
    if let Some((user, domain)) = login.rsplit_once('@') {
        return (
            format!("{}\\{user}", domain.to_ascii_uppercase()),
            user.to_string(),
        );
    }
    let display = login.rsplit('\\').next().unwrap_or(login).to_string();
    (login.to_string(), display)
}

/// The `Set-Cookie` value vCenter sends after a SOAP login; `Secure` only when `secure`.
pub(crate) fn set_cookie_value(token: &str, secure: bool) -> String {
    if secure {
        format!("{SOAP_COOKIE}=\"{token}\"; Path=/; HttpOnly; Secure;")
    } else {
        format!("{SOAP_COOKIE}=\"{token}\"; Path=/; HttpOnly;")
    }
}

/// The SOAP session cookie's value, quotes stripped, tolerating echoed attributes.
pub(crate) fn soap_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name.trim() == SOAP_COOKIE).then(|| value.trim().trim_matches('"').to_string())
        })
        .find(|v| !v.is_empty())
}

/// The VI/JSON session header's value.
pub(crate) fn session_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn cookie_is_read_in_every_echoed_form() {
        for raw in [
            "vmware_soap_session=\"abc123\"; Path=/; HttpOnly; Secure; ; HttpOnly",
            "vmware_soap_session=\"abc123\"; Path=/; HttpOnly; Secure;",
            "vmware_soap_session=abc123; HttpOnly",
            "other=1; vmware_soap_session=abc123",
        ] {
            let mut h = HeaderMap::new();
            h.insert(http::header::COOKIE, HeaderValue::from_static(raw));
            assert_eq!(soap_cookie(&h).as_deref(), Some("abc123"), "{raw}");
        }
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, HeaderValue::from_static(""));
        assert_eq!(soap_cookie(&h), None);
    }

    #[test]
    fn user_names_take_vcenter_form() {
        assert_eq!(
            vcenter_user_name("Administrator@VSPHERE.LOCAL").0,
            "VSPHERE.LOCAL\\Administrator"
        );
        assert_eq!(vcenter_user_name("ops@corp.example").0, "CORP.EXAMPLE\\ops");
        assert_eq!(vcenter_user_name("CORP\\ops").0, "CORP\\ops");
        assert_eq!(vcenter_user_name("root").0, "root");
    }

    #[test]
    fn login_checks_password_and_token_differs_from_key() {
        let mut t = SessionTable::new(vec![("a@b.c".into(), "pw".into())]);
        assert_eq!(
            t.login("a@b.c", "bad", None, "ua")
                .map(|_| ())
                .expect_err("must fail")
                .type_name,
            "InvalidLogin"
        );
        let (token, session) = t.login("a@b.c", "pw", None, "ua").expect("login");
        assert_eq!(token.len(), 40);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(token, session.key);
        assert!(t.get(&token).is_some());
        assert!(t.logout(&token).is_some());
        assert!(t.get(&token).is_none());
    }
}
