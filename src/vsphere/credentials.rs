//! The credential a request carries: the VI/JSON session header, the SOAP session cookie,
//! or an `Authorization` header. PROTOCOL.md §6: several different ones are refused.

use http::{HeaderMap, HeaderName, header};

use super::classify::Refusal;

/// VI/JSON (and `/api`) session header.
pub const SESSION_HEADER: &str = "vmware-api-session-id";
/// SOAP session cookie name.
pub const SOAP_COOKIE: &str = "vmware_soap_session";

/// One credential found in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A session token, from the `vmware-api-session-id` header or the SOAP cookie.
    Session(String),
    /// An `Authorization` header (basic or bearer); its value is never kept.
    Authorization,
}

/// The one credential in `headers`, `None` if there is none, or a refusal if there are
/// several different ones (a session header and a cookie with the same token count once).
pub fn single_credential(headers: &HeaderMap) -> Result<Option<Credential>, Refusal> {
    const SESSION: HeaderName = HeaderName::from_static(SESSION_HEADER);
    let mut found = None;
    let mut several = false;
    let mut add = |credential: Credential| match &found {
        None => found = Some(credential),
        Some(first) => several |= *first != credential,
    };
    for value in headers.get_all(SESSION) {
        add(Credential::Session(text(value)?.trim().to_owned()));
    }
    for value in headers.get_all(header::COOKIE) {
        for token in soap_cookie_values(text(value)?) {
            add(Credential::Session(token));
        }
    }
    if headers.contains_key(header::AUTHORIZATION) {
        add(Credential::Authorization);
    }
    if several {
        return Err(Refusal::invalid_request(
            "the request carries several different credentials (session header, SOAP session cookie, Authorization); send exactly one",
        ));
    }
    Ok(found)
}

fn text(value: &http::HeaderValue) -> Result<&str, Refusal> {
    value
        .to_str()
        .map_err(|_| Refusal::invalid_request("a credential header is not plain text"))
}

/// Every `vmware_soap_session` value in a `Cookie` header, quotes stripped. Tolerates
/// pyVmomi echoing the whole `Set-Cookie` string (`; Path=/; HttpOnly; Secure;`).
pub fn soap_cookie_values(cookie_header: &str) -> Vec<String> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| name.trim() == SOAP_COOKIE)
        .map(|(_, value)| value.trim().trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn pyvmomi_echoed_cookie_is_one_session() {
        let map = headers(&[(
            "cookie",
            r#"vmware_soap_session="7bea4846"; Path=/; HttpOnly; Secure; ; HttpOnly"#,
        )]);
        assert_eq!(
            single_credential(&map),
            Ok(Some(Credential::Session("7bea4846".into())))
        );
    }

    #[test]
    fn same_token_in_header_and_cookie_counts_once() {
        let map = headers(&[
            ("vmware-api-session-id", "abc"),
            ("cookie", "vmware_soap_session=\"abc\""),
        ]);
        assert_eq!(
            single_credential(&map),
            Ok(Some(Credential::Session("abc".into())))
        );
    }

    #[test]
    fn different_credentials_are_refused() {
        for map in [
            headers(&[
                ("vmware-api-session-id", "abc"),
                ("cookie", "vmware_soap_session=def"),
            ]),
            headers(&[
                ("vmware-api-session-id", "abc"),
                ("authorization", "Basic eDp5"),
            ]),
            headers(&[
                ("vmware-api-session-id", "abc"),
                ("vmware-api-session-id", "def"),
            ]),
            headers(&[("cookie", "vmware_soap_session=a; vmware_soap_session=b")]),
        ] {
            assert!(single_credential(&map).is_err(), "{map:?}");
        }
        assert_eq!(single_credential(&HeaderMap::new()), Ok(None));
    }
}
