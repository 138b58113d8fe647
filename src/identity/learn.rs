//! Learning a session's user from a successful `Login` answer that passed through the gateway.

use http::HeaderMap;
use quick_xml::Reader;
use quick_xml::events::Event;

use crate::vsphere::credentials::{SESSION_HEADER, SOAP_COOKIE};
use crate::vsphere::operation::Protocol;

/// A session token and the user it belongs to, read from a `Login` response.
pub struct LoginResult {
    /// The new session token (kept only long enough to hash it).
    pub token: String,
    /// The logged-in user, e.g. `VSPHERE.LOCAL\Administrator`.
    pub user: String,
}

/// Reads the token and user of a successful `Login` answer, in either protocol.
pub fn login_result(protocol: Protocol, headers: &HeaderMap, body: &[u8]) -> Option<LoginResult> {
    match protocol {
        Protocol::VimJson => {
            let token = headers
                .get(SESSION_HEADER)?
                .to_str()
                .ok()?
                .trim()
                .to_owned();
            let session: serde_json::Value = serde_json::from_slice(body).ok()?;
            let user = session.get("userName")?.as_str()?.to_owned();
            Some(LoginResult { token, user })
        }
        Protocol::Soap => {
            let token = headers
                .get_all(http::header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(set_cookie_session)?;
            let user = soap_user_name(body)?;
            Some(LoginResult { token, user })
        }
        Protocol::Rest | Protocol::Other => None,
    }
}

/// The `vmware_soap_session` value of one `Set-Cookie` header, quotes stripped.
fn set_cookie_session(set_cookie: &str) -> Option<String> {
    let (name, value) = set_cookie.split(';').next()?.split_once('=')?;
    (name.trim() == SOAP_COOKIE)
        .then(|| value.trim().trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// The text of the first `userName` element inside `returnval` of a SOAP answer.
pub(crate) fn soap_user_name(body: &[u8]) -> Option<String> {
    let mut reader = Reader::from_reader(body);
    let mut in_returnval = false;
    let mut in_user = false;
    let mut text = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(start) => match start.local_name().as_ref() {
                b"returnval" => in_returnval = true,
                b"userName" if in_returnval => in_user = true,
                _ => {}
            },
            Event::Text(t) if in_user => text.push_str(&t.decode().ok()?),
            Event::GeneralRef(r) if in_user => {
                let name = r.decode().ok()?;
                text.push_str(match name.as_ref() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => return None,
                });
            }
            Event::End(end) if in_user && end.local_name().as_ref() == b"userName" => {
                return Some(text);
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn json_login_gives_token_from_header_and_user_from_body() {
        let mut headers = HeaderMap::new();
        headers.insert(SESSION_HEADER, HeaderValue::from_static("abc123"));
        let body = br#"{"_typeName":"UserSession","key":"5270","userName":"VSPHERE.LOCAL\\Administrator"}"#;
        let result = login_result(Protocol::VimJson, &headers, body).expect("login");
        assert_eq!(result.token, "abc123");
        assert_eq!(result.user, "VSPHERE.LOCAL\\Administrator");
    }

    #[test]
    fn soap_login_gives_token_from_cookie_and_user_from_returnval() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::SET_COOKIE,
            HeaderValue::from_static(
                r#"vmware_soap_session="7bea4846"; Path=/; HttpOnly; Secure;"#,
            ),
        );
        let body = br#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><LoginResponse xmlns="urn:vim25"><returnval><key>k</key><userName>VSPHERE.LOCAL\Administrator &amp; co</userName></returnval></LoginResponse></soapenv:Body></soapenv:Envelope>"#;
        let result = login_result(Protocol::Soap, &headers, body).expect("login");
        assert_eq!(result.token, "7bea4846");
        assert_eq!(result.user, "VSPHERE.LOCAL\\Administrator & co");
    }
}
