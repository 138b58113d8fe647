//! Request path parsing with the rules of PROTOCOL.md §6.
//!
//! Every path is checked, not only `/sdk` ones: a proxy behind the gateway that
//! normalised `/api/../sdk/...` or `//sdk/...` would otherwise turn a
//! pass-through path into a guarded call. Percent-encoding is decoded exactly
//! once; anything that another decoder could read differently is refused.

use std::borrow::Cow;

use super::guarded::fold_case;

/// Why a path was refused. Segment numbers count from 1 (`/sdk` is segment 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not an origin-form path.
    #[error("path must start with '/'")]
    NotAbsolute,
    /// `//` or a trailing `/` where not allowed.
    #[error("empty path segment {0} ('//' or a trailing '/') is not allowed")]
    EmptySegment(usize),
    /// `.` or `..`, raw or percent-encoded.
    #[error("dot segment '{raw}' (segment {index}) is not allowed")]
    DotSegment {
        /// Segment number.
        index: usize,
        /// The segment as sent.
        raw: String,
    },
    /// `%2F` or `%5C`.
    #[error("percent-encoded '{ch}' in path segment {index} is not allowed")]
    EncodedSeparator {
        /// Segment number.
        index: usize,
        /// The decoded separator.
        ch: char,
    },
    /// `%25`: a second decoding would change the path.
    #[error("'%25' (double encoding) in path segment {0} is not allowed")]
    DoubleEncoding(usize),
    /// `%` not followed by two hex digits.
    #[error("malformed percent escape in path segment {0}")]
    BadEscape(usize),
    /// `;` (raw or encoded): path parameters are read differently by different servers.
    #[error("';' in path segment {0} is not allowed (no path parameters)")]
    Semicolon(usize),
    /// A control character, raw or decoded.
    #[error("control character in path segment {0} is not allowed")]
    ControlCharacter(usize),
    /// Decoded bytes are not UTF-8.
    #[error("path segment {0} does not decode to UTF-8")]
    InvalidUtf8(usize),
    /// A character that must be percent-encoded (or never appear) in a path.
    #[error("character {ch:?} in path segment {index} is not allowed unencoded")]
    RawCharacter {
        /// Segment number.
        index: usize,
        /// The character.
        ch: char,
    },
    /// `/SDK`, `/Api`, ...: routing could be case-insensitive somewhere behind us.
    #[error("path prefix '{found}' must be spelled '{expected}'")]
    PrefixCase {
        /// As sent (decoded).
        found: String,
        /// The canonical prefix.
        expected: &'static str,
    },
    /// VI/JSON calls take no query parameters; one could carry a parameter we never see.
    #[error("query string on a VI/JSON path is not allowed")]
    QueryOnVimJson,
    /// A MoType or method/property segment that is not a vim name (`[A-Za-z0-9_]+`):
    /// a server that trimmed or folded it could see a guarded method we did not.
    #[error("path segment {index} ('{segment}') is not a vim type, method or property name")]
    NotAName {
        /// Segment number.
        index: usize,
        /// The decoded segment.
        segment: String,
    },
}

/// A VI/JSON path: `/sdk/{namespace}/{release}/[svc/...]{MoType}/{moId}/{name}`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VimPath {
    /// Usually `vim25`.
    pub namespace: String,
    /// Opaque release token, e.g. `8.0.3.0` or `uA046D008`.
    pub release: String,
    /// Service segments between release and MoType (`pbm`, `vsan`, ...), usually none.
    pub service: Vec<String>,
    /// The managed object type as written in the path.
    pub mo_type: String,
    /// The opaque managed object id, decoded (may contain `[`, `]`).
    pub mo_id: String,
    /// Method or property name.
    pub name: String,
}

/// What a path is, before the body is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathClass {
    /// A VI/JSON call or property read.
    VimJson(VimPath),
    /// Any other path under `/sdk`: a SOAP endpoint (`/sdk`, `/sdk/vimService`, ...),
    /// or a static document (`/sdk/vimServiceVersions.xml`) when there is no body.
    SoapEndpoint,
    /// `/api/...` or `/rest/...`: the Automation REST API, passed through.
    Rest,
    /// Anything else, passed through.
    Other,
}

/// Parses a request path (optionally with `?query`) into its class.
///
/// Near-miss spellings of the SOAP endpoint are SOAP endpoints too: vCenter's front proxy
/// routes by path prefix, so `/sdkfoo`, `/sdk.`, `/sdk%20` and the asterisk-form `*` may
/// reach the vim service, and their bodies must be read and classified, never forwarded
/// unread. The ESX Agent Manager's SOAP endpoint `/eam/sdk` is read the same way.
pub fn parse_path(path_and_query: &str) -> Result<PathClass, PathError> {
    if path_and_query == "*" {
        return Ok(PathClass::SoapEndpoint);
    }
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    if rest.is_empty() {
        return Ok(PathClass::Other);
    }
    let segments = decode_segments(rest)?;
    let first = segments.first().map(Cow::as_ref).unwrap_or_default();
    let prefix = ["sdk", "api", "rest"]
        .into_iter()
        .find(|p| fold_case(first) == *p);
    if let Some(expected) = prefix
        && first != expected
    {
        return Err(PathError::PrefixCase {
            found: first.to_owned(),
            expected,
        });
    }
    let soap_near_miss = prefix.is_none() && (is_sdk_near_miss(first) || is_eam_sdk(&segments));
    let last = segments.len();
    for (i, segment) in segments.iter().enumerate() {
        let trailing_slash_allowed = prefix.is_none() && !soap_near_miss && i + 1 == last && i > 0;
        if segment.is_empty() && !trailing_slash_allowed {
            return Err(PathError::EmptySegment(i + 1));
        }
    }
    match prefix {
        Some("sdk") => Ok(sdk_path(&segments, query)?),
        Some(_) => Ok(PathClass::Rest),
        None if soap_near_miss => Ok(PathClass::SoapEndpoint),
        None => Ok(PathClass::Other),
    }
}

/// A first segment that a prefix-routing proxy could send to `/sdk`: any spelling that
/// starts with `sdk` after case folding (`sdkfoo`, `sdk.`, `sdk `, `SDK.`, `sdkTunnel`).
fn is_sdk_near_miss(first: &str) -> bool {
    fold_case(first.trim_start()).starts_with("sdk")
}

/// `/eam/sdk` (and anything below it): the ESX Agent Manager's SOAP endpoint.
fn is_eam_sdk(segments: &[Cow<'_, str>]) -> bool {
    match segments {
        [first, second, ..] => fold_case(first) == "eam" && is_sdk_near_miss(second),
        _ => false,
    }
}

fn sdk_path(segments: &[Cow<'_, str>], query: Option<&str>) -> Result<PathClass, PathError> {
    let [_, namespace, release, service @ .., mo_type, mo_id, name] = segments else {
        return Ok(PathClass::SoapEndpoint);
    };
    if query.is_some() {
        return Err(PathError::QueryOnVimJson);
    }
    let count = segments.len();
    for (segment, index) in [(mo_type, count - 2), (name, count)] {
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(PathError::NotAName {
                index,
                segment: segment.to_string(),
            });
        }
    }
    Ok(PathClass::VimJson(VimPath {
        namespace: namespace.to_string(),
        release: release.to_string(),
        service: service.iter().map(ToString::to_string).collect(),
        mo_type: mo_type.to_string(),
        mo_id: mo_id.to_string(),
        name: name.to_string(),
    }))
}

/// The decoded segments of a path (no query), with the rules of [`parse_path`].
pub(crate) fn decode_path_segments(path: &str) -> Result<Vec<Cow<'_, str>>, PathError> {
    let rest = path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    decode_segments(rest)
}

/// The decoded segments of `rest`, a path without its leading `/`.
fn decode_segments(rest: &str) -> Result<Vec<Cow<'_, str>>, PathError> {
    let mut segments = Vec::with_capacity(8);
    let mut tail = rest;
    loop {
        let end = tail.bytes().position(|b| b == b'/');
        let raw = end.map_or(tail, |end| &tail[..end]);
        segments.push(decode_segment(raw, segments.len() + 1)?);
        match end {
            Some(end) => tail = &tail[end + 1..],
            None => return Ok(segments),
        }
    }
}

/// ASCII characters a segment may not hold unencoded (besides controls and `;`).
const fn is_refused_raw(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'"' | b'#' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
    )
}

/// Bytes a segment holds as they are: anything else is an escape, refused, or not ASCII.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x20;
    while b < 0x7f {
        table[b] = !matches!(b as u8, b'%' | b';') && !is_refused_raw(b as u8);
        b += 1;
    }
    table
};

/// Decodes one segment; borrows it when it holds no escapes (then it decodes to itself).
fn decode_segment(raw: &str, index: usize) -> Result<Cow<'_, str>, PathError> {
    if raw.bytes().all(|b| PLAIN[usize::from(b)]) {
        return refuse_dot_segment(Cow::Borrowed(raw), raw, index);
    }
    decode_segment_byte_by_byte(raw, index)
}

/// [`decode_segment`] for a segment with escapes or bytes to refuse.
fn decode_segment_byte_by_byte(raw: &str, index: usize) -> Result<Cow<'_, str>, PathError> {
    let bytes = raw.as_bytes();
    let escaped = bytes.contains(&b'%');
    let mut out = Vec::with_capacity(if escaped { bytes.len() } else { 0 });
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|h| hex_value(*h));
            let lo = bytes.get(i + 2).and_then(|l| hex_value(*l));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::BadEscape(index));
            };
            let decoded = hi << 4 | lo;
            match decoded {
                b'/' => return Err(PathError::EncodedSeparator { index, ch: '/' }),
                b'\\' => return Err(PathError::EncodedSeparator { index, ch: '\\' }),
                b'%' => return Err(PathError::DoubleEncoding(index)),
                b';' => return Err(PathError::Semicolon(index)),
                0..=0x1f | 0x7f => return Err(PathError::ControlCharacter(index)),
                _ => out.push(decoded),
            }
            i += 3;
            continue;
        }
        match b {
            b';' => return Err(PathError::Semicolon(index)),
            0..=0x1f | 0x7f => return Err(PathError::ControlCharacter(index)),
            _ if is_refused_raw(b) => {
                return Err(PathError::RawCharacter {
                    index,
                    ch: char::from(b),
                });
            }
            0x80.. => {
                let ch = raw
                    .get(i..)
                    .and_then(|s| s.chars().next())
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                return Err(PathError::RawCharacter { index, ch });
            }
            _ if escaped => out.push(b),
            _ => {}
        }
        i += 1;
    }
    let decoded = if escaped {
        let decoded = String::from_utf8(out).map_err(|_| PathError::InvalidUtf8(index))?;
        // Escapes can spell controls beyond ASCII (U+0080–U+009F); the raw bytes above held none.
        if decoded.chars().any(char::is_control) {
            return Err(PathError::ControlCharacter(index));
        }
        Cow::Owned(decoded)
    } else {
        Cow::Borrowed(raw)
    };
    refuse_dot_segment(decoded, raw, index)
}

/// `decoded` unless it is `.` or `..` (sent as `raw`).
fn refuse_dot_segment<'a>(
    decoded: Cow<'a, str>,
    raw: &str,
    index: usize,
) -> Result<Cow<'a, str>, PathError> {
    if decoded == "." || decoded == ".." {
        return Err(PathError::DotSegment {
            index,
            raw: raw.to_owned(),
        });
    }
    Ok(decoded)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vim(path: &str) -> VimPath {
        match parse_path(path) {
            Ok(PathClass::VimJson(p)) => p,
            other => panic!("{path}: expected VI/JSON, got {other:?}"),
        }
    }

    #[test]
    fn every_ascii_character_alone_decodes_the_same_by_either_way() {
        for b in 0u8..0x80 {
            let raw = char::from(b).to_string();
            for segment in [raw.clone(), format!("a{raw}b"), format!("{raw}{raw}")] {
                assert_eq!(
                    decode_segment(&segment, 2),
                    decode_segment_byte_by_byte(&segment, 2),
                    "{segment:?}"
                );
            }
        }
    }

    #[test]
    fn vi_json_paths_split_into_their_parts() {
        let p = vim("/sdk/vim25/8.0.3.0/HostSystem/host-42/EnterMaintenanceMode_Task");
        assert_eq!(p.namespace, "vim25");
        assert_eq!(p.release, "8.0.3.0");
        assert!(p.service.is_empty());
        assert_eq!(p.mo_type, "HostSystem");
        assert_eq!(p.mo_id, "host-42");
        assert_eq!(p.name, "EnterMaintenanceMode_Task");
        let p =
            vim("/sdk/vim25/uA046D008/HostAccessManager/ha-host-access-manager/ChangeLockdownMode");
        assert_eq!(p.release, "uA046D008");
        let p = vim("/sdk/vim25/8.0.3.0/ServiceInstance/ServiceInstance/content");
        assert_eq!(p.name, "content");
    }

    #[test]
    fn service_segment_keeps_the_last_three() {
        let p = vim("/sdk/vim25/8.0.3.0/pbm/HostSystem/host-1/EnterMaintenanceMode_Task");
        assert_eq!(p.service, vec!["pbm".to_owned()]);
        assert_eq!(p.mo_type, "HostSystem");
        assert_eq!(p.name, "EnterMaintenanceMode_Task");
        let p = vim("/sdk/vim25/8.0.3.0/a/b/HostSystem/host-1/EnterMaintenanceMode_Task");
        assert_eq!(p.service.len(), 2);
        assert_eq!(p.name, "EnterMaintenanceMode_Task");
    }

    #[test]
    fn mo_ids_are_decoded_once() {
        let p = vim("/sdk/vim25/8.0.3.0/Datastore/%5Bds1%5D%20x/summary");
        assert_eq!(p.mo_id, "[ds1] x");
        let p = vim("/sdk/vim25/8.0.3.0/HostSystem/host-1/%45nterMaintenanceMode_Task");
        assert_eq!(p.name, "EnterMaintenanceMode_Task");
        let p = vim("/sdk/%76im25/8.0.3.0/HostSystem/host-1/x");
        assert_eq!(p.namespace, "vim25");
    }

    #[test]
    fn other_classes() {
        assert_eq!(parse_path("/sdk"), Ok(PathClass::SoapEndpoint));
        assert_eq!(parse_path("/sdk/vimService"), Ok(PathClass::SoapEndpoint));
        assert_eq!(parse_path("/sdk/webService"), Ok(PathClass::SoapEndpoint));
        assert_eq!(
            parse_path("/sdk/vimServiceVersions.xml"),
            Ok(PathClass::SoapEndpoint)
        );
        assert_eq!(
            parse_path("/sdk/vim25/8.0.3.0/HostSystem/host-1"),
            Ok(PathClass::SoapEndpoint)
        );
        assert_eq!(parse_path("/api/session"), Ok(PathClass::Rest));
        assert_eq!(
            parse_path("/api/vcenter/system?action=hello"),
            Ok(PathClass::Rest)
        );
        assert_eq!(
            parse_path("/rest/com/vmware/cis/session"),
            Ok(PathClass::Rest)
        );
        assert_eq!(parse_path("/ui/"), Ok(PathClass::Other));
        assert_eq!(parse_path("/"), Ok(PathClass::Other));
        assert_eq!(parse_path("*"), Ok(PathClass::SoapEndpoint));
        assert_eq!(parse_path("/%73dk"), Ok(PathClass::SoapEndpoint));
    }

    #[test]
    fn near_miss_soap_endpoints_are_soap_endpoints() {
        for path in [
            "/sdkfoo",
            "/sdk.",
            "/sdk%2e",
            "/sdk%20",
            "/sdk%20/vimService",
            "/sdk..",
            "/sdkTunnel",
            "/Sdk.",
            "/eam/sdk",
            "/eam/sdk/vimService",
            "/eam/SDK",
            "/eam/sdk.",
        ] {
            assert_eq!(parse_path(path), Ok(PathClass::SoapEndpoint), "{path}");
        }
        assert_eq!(parse_path("/eam/ui"), Ok(PathClass::Other));
        assert_eq!(parse_path("/sd"), Ok(PathClass::Other));
        assert_eq!(parse_path("/ui/sdk"), Ok(PathClass::Other));
    }

    #[test]
    fn refusals() {
        let cases: &[(&str, PathError)] = &[
            ("sdk", PathError::NotAbsolute),
            (
                "//sdk/vim25/8.0.3.0/HostSystem/host-1/EnterMaintenanceMode_Task",
                PathError::EmptySegment(1),
            ),
            (
                "/sdk//vim25/8.0.3.0/HostSystem/host-1/X",
                PathError::EmptySegment(2),
            ),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host-1/EnterMaintenanceMode_Task/",
                PathError::EmptySegment(7),
            ),
            ("/sdk/", PathError::EmptySegment(2)),
            ("/api/", PathError::EmptySegment(2)),
            ("/ui//sdk", PathError::EmptySegment(2)),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host%2F1/EnterMaintenanceMode_Task",
                PathError::EncodedSeparator { index: 5, ch: '/' },
            ),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host%5c1/X",
                PathError::EncodedSeparator { index: 5, ch: '\\' },
            ),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host-1/%2545nterMaintenanceMode_Task",
                PathError::DoubleEncoding(6),
            ),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host-1/%E",
                PathError::BadEscape(6),
            ),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host-1/%zz",
                PathError::BadEscape(6),
            ),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host-1;x=y/X",
                PathError::Semicolon(5),
            ),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host-1%3bx/X",
                PathError::Semicolon(5),
            ),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host-1/X%00",
                PathError::ControlCharacter(6),
            ),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host-1/X%C2%85",
                PathError::ControlCharacter(6),
            ),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host-1/X%C0%AF",
                PathError::InvalidUtf8(6),
            ),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host-1/a b",
                PathError::RawCharacter { index: 6, ch: ' ' },
            ),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host-1/a\\b",
                PathError::RawCharacter { index: 6, ch: '\\' },
            ),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host-1/\u{e9}",
                PathError::RawCharacter {
                    index: 6,
                    ch: '\u{e9}',
                },
            ),
            (
                "/SDK/vim25/8.0.3.0/HostSystem/host-1/X",
                PathError::PrefixCase {
                    found: "SDK".into(),
                    expected: "sdk",
                },
            ),
            (
                "/Api/session",
                PathError::PrefixCase {
                    found: "Api".into(),
                    expected: "api",
                },
            ),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host-1/X?mode=lockdownStrict",
                PathError::QueryOnVimJson,
            ),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host-1/EnterMaintenanceMode_Task%20",
                PathError::NotAName {
                    index: 6,
                    segment: "EnterMaintenanceMode_Task ".into(),
                },
            ),
            (
                "/sdk/vim25/8.0.3.0/HostSystem/host-1/EnterMaintenanceMode_Task%E2%80%8B",
                PathError::NotAName {
                    index: 6,
                    segment: "EnterMaintenanceMode_Task\u{200b}".into(),
                },
            ),
            (
                "/sdk/vim25/8.0.3.0/Host.System/host-1/X",
                PathError::NotAName {
                    index: 4,
                    segment: "Host.System".into(),
                },
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(parse_path(path).as_ref(), Err(expected), "{path}");
        }
    }

    #[test]
    fn dot_segments_raw_and_encoded() {
        for path in [
            "/api/../sdk/vim25/8.0.3.0/HostSystem/host-1/EnterMaintenanceMode_Task",
            "/sdk/vim25/8.0.3.0/./HostSystem/host-1/X",
            "/sdk/vim25/8.0.3.0/HostSystem/host-1/X/..",
            "/sdk/vim25/8.0.3.0/%2e/HostSystem/host-1/X",
            "/sdk/vim25/8.0.3.0/%2E%2e/HostSystem/host-1/X",
            "/sdk/vim25/8.0.3.0/.%2E/HostSystem/host-1/X",
            "/ui/%2e%2e/sdk",
        ] {
            assert!(
                matches!(parse_path(path), Err(PathError::DotSegment { .. })),
                "{path}: {:?}",
                parse_path(path)
            );
        }
        assert!(parse_path("/sdk/vim25/8.0.3.0/HostSystem/host...1/X").is_ok());
    }

    #[test]
    fn messages_name_what_to_fix() {
        let err = parse_path("/sdk/vim%2F25/8.0.3.0/HostSystem/host-1/X").expect_err("refused");
        assert_eq!(
            err.to_string(),
            "percent-encoded '/' in path segment 2 is not allowed"
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn segment() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("a".to_owned()),
                Just(".".to_owned()),
                Just("..".to_owned()),
                Just("%2e".to_owned()),
                Just("%2E".to_owned()),
                Just("%2f".to_owned()),
                Just("%2F".to_owned()),
                Just("%5c".to_owned()),
                Just("%25".to_owned()),
                Just("%".to_owned()),
                Just(";".to_owned()),
                Just("/".to_owned()),
                Just("sdk".to_owned()),
                Just("X".to_owned()),
                Just("-".to_owned()),
                Just("%5B".to_owned()),
            ],
            0..4,
        )
        .prop_map(|parts| parts.concat())
    }

    /// Spellings of the SOAP endpoint's first segment a client or a proxy might produce.
    fn sdk_spelling() -> impl Strategy<Value = String> {
        let letter = |c: char| {
            let lower = c.to_string();
            let upper = c.to_ascii_uppercase().to_string();
            let encoded = format!("%{:02x}", c as u32);
            let encoded_upper = format!("%{:02X}", c.to_ascii_uppercase() as u32);
            prop::sample::select(vec![lower, upper, encoded, encoded_upper])
        };
        let suffix = prop::sample::select(vec![
            "", ".", "%2e", "%2E", "%20", "%09", "x", "Tunnel", "..", "%2e%2e", "~", "-", "_",
            "%00", "%7f", "%25", ";", "%3b", "%2f", "%5c", "/", "//",
        ]);
        (letter('s'), letter('d'), letter('k'), suffix)
            .prop_map(|(s, d, k, suffix)| format!("{s}{d}{k}{suffix}"))
    }

    proptest! {
        #[test]
        fn every_spelling_of_the_soap_endpoint_is_read_or_refused(
            first in sdk_spelling(),
            rest in prop::sample::select(vec!["", "/vimService", "/webService", "/x", "?q=1"]),
            eam in any::<bool>(),
        ) {
            let path = if eam { format!("/eam/{first}{rest}") } else { format!("/{first}{rest}") };
            // Never a pass-through class: a SOAP endpoint (body read and classified), a
            // VI/JSON path (classified), or refused.
            match parse_path(&path) {
                Ok(PathClass::Rest) | Ok(PathClass::Other) => {
                    prop_assert!(false, "{path} would be forwarded unread");
                }
                Ok(PathClass::SoapEndpoint) | Ok(PathClass::VimJson(_)) | Err(_) => {}
            }
        }

        #[test]
        fn a_segment_decodes_the_same_by_either_way(
            raw in "[ -~\u{80}-\u{10ffff}]{0,12}|[%.;a-zA-Z0-9 #<>^`{|}\\\\2fF5cCeE\u{7f}\u{1}]{0,12}"
        ) {
            prop_assert_eq!(decode_segment(&raw, 3), decode_segment_byte_by_byte(&raw, 3));
        }

        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_path(&s);
        }

        #[test]
        fn never_panics_on_ascii_soup(s in "[/%.;a-zA-Z0-9?\\\\2fF5cCeE]{0,40}") {
            let _ = parse_path(&s);
        }

        #[test]
        fn accepted_paths_have_no_dot_empty_or_encoded_separator_segment(
            segs in prop::collection::vec(segment(), 1..9)
        ) {
            let path = format!("/{}", segs.join("/"));
            if path == "/" {
                return Ok(());
            }
            if let Ok(class) = parse_path(&path) {
                let lower = path.to_ascii_lowercase();
                prop_assert!(!lower.contains("%2f"), "{}", path);
                prop_assert!(!lower.contains("%5c"), "{}", path);
                prop_assert!(!lower.contains("%25"), "{}", path);
                prop_assert!(!lower.contains(';'), "{}", path);
                let raw_segments: Vec<&str> = path[1..].split('/').collect();
                for (i, raw) in raw_segments.iter().enumerate() {
                    let decoded = raw.to_ascii_lowercase().replace("%2e", ".");
                    prop_assert!(decoded != "." && decoded != "..", "{}", path);
                    let trailing = i + 1 == raw_segments.len() && i > 0;
                    prop_assert!(!raw.is_empty() || (trailing && class == PathClass::Other), "{}", path);
                }
            }
        }
    }
}
