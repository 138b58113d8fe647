//! The bodies of the cargo-fuzz targets in `fuzz/`, public so that `cargo test`
//! runs every seed of `fuzz/corpus/` through the same logic.
//!
//! Each function classifies arbitrary bytes and checks the invariants the
//! classification promises. It panics only when an invariant is broken: that
//! panic is the fuzzer's finding.

use super::classify::{self, PathClass};
use super::guarded::{CARRIERS, DEFAULT_GUARDED, GuardedMethods, carrier_kind};
use super::json_body;
use super::operation::{GuardedBody, MoRef};
use super::soap::{self, SniffState, SoapSniffer};

/// Path parser: accepted paths never hold an encoded separator, `%25`, `;`,
/// a dot segment or an empty segment (except one trailing `/` on other paths).
pub fn path_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(class) = classify::classify_path(text) else {
        return;
    };
    let path = text.split('?').next().unwrap_or_default();
    let lower = path.to_ascii_lowercase();
    for banned in ["%2f", "%5c", "%25", ";", "//"] {
        assert!(!lower.contains(banned), "accepted {banned} in {text:?}");
    }
    let segments: Vec<&str> = lower.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let dots = segment.replace("%2e", ".");
        assert!(
            dots != "." && dots != "..",
            "accepted dot segment in {text:?}"
        );
        let trailing = i + 1 == segments.len() && i > 0 && class == PathClass::Other;
        assert!(
            !segment.is_empty() || trailing || path == "/",
            "accepted empty segment in {text:?}"
        );
    }
    if class == PathClass::Rest
        && let Ok(Some(call)) = super::lifecycle::classify_rest(text)
    {
        // A remediation is only ever an exact `action=apply`, on a cluster or host id.
        let query = text.split_once('?').map_or("", |(_, q)| q);
        assert!(
            query.split('&').any(|pair| pair == "action=apply"),
            "remediation without action=apply in {text:?}"
        );
        assert_eq!(call.method, super::lifecycle::LIFECYCLE_ACTION);
        assert!(
            !call.target.value.is_empty() && !call.target.value.contains('/'),
            "bad remediation target in {text:?}"
        );
    }
    if let PathClass::VimJson(vim) = class {
        for part in [
            &vim.namespace,
            &vim.release,
            &vim.mo_type,
            &vim.mo_id,
            &vim.name,
        ] {
            assert!(
                !part.is_empty() && !part.contains('/'),
                "bad part in {text:?}"
            );
        }
    }
}

/// JSON bodies: every guarded and carrier parser on the same bytes; a parsed
/// lockdown mode reads back the same from a canonical body.
pub fn json_body(data: &[u8]) {
    let guarded = GuardedMethods::new();
    for method in DEFAULT_GUARDED {
        let _ = json_body::parse_guarded_body(method, Some(data));
    }
    let this = MoRef::new("HostSystem", "host-1");
    for carrier in CARRIERS {
        if let Some(kind) = carrier_kind(carrier) {
            let _ =
                json_body::parse_carrier_body(carrier, kind, &this, false, Some(data), &guarded);
        }
    }
    if let Ok(GuardedBody::ChangeLockdownMode(body)) =
        json_body::parse_guarded_body("ChangeLockdownMode", Some(data))
    {
        let canonical = format!("{{\"mode\":\"{}\"}}", body.mode.as_wire());
        assert_eq!(
            json_body::parse_guarded_body("ChangeLockdownMode", Some(canonical.as_bytes())),
            Ok(GuardedBody::ChangeLockdownMode(body)),
        );
    }
}

/// SOAP: whole-body parse, whole-body sniff and a two-chunk sniff agree on the
/// head whenever the whole-body parse accepts; the tail guard accepts the rest.
pub fn soap_classifier(data: &[u8]) {
    let guarded = GuardedMethods::new();
    let full = soap::parse_soap_call(data, &guarded);
    let _ = classify::classify_soap(data, &guarded);
    let whole = soap::sniff_whole(data);
    let cut = data
        .first()
        .map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let mut sniffer = SoapSniffer::new(data.len().saturating_add(1));
    let split = match sniffer.feed(data.get(..cut).unwrap_or_default()) {
        Ok(SniffState::NeedMore) => match sniffer.feed(data.get(cut..).unwrap_or_default()) {
            Ok(SniffState::NeedMore) => sniffer.finish(),
            Ok(SniffState::Identified(head)) => Ok(head),
            Err(err) => Err(err),
        },
        Ok(SniffState::Identified(head)) => {
            let _ = sniffer.feed(data.get(cut..).unwrap_or_default());
            Ok(head)
        }
        Err(err) => Err(err),
    };
    if let Ok(call) = full {
        assert_eq!(whole.as_ref(), Ok(&call.head), "sniff_whole disagrees");
        assert_eq!(
            split.as_ref(),
            Ok(&call.head),
            "split sniff disagrees at {cut}"
        );
        let _ = classify::operation_from_soap_head(&call.head);
        let guard = sniffer.tail_guard();
        assert!(
            guard.is_ok(),
            "tail guard refused the rest of an accepted body"
        );
        if let Ok(guard) = guard {
            assert!(guard.finish().is_ok(), "tail guard: envelope not closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &str = include_str!("../../tests/fixtures/soap/pyvmomi-9.1.1.0-Login.xml");

    #[test]
    fn odd_markup_after_the_head_keeps_parser_sniffer_and_tail_guard_in_step() {
        let odd = [
            "<!---->",
            "<!-->",
            "<!--->",
            "<!-- - -->",
            "<!-- --->",
            "<!-- > -->",
            "<![CDATA[]]>",
            "<![CDATA[]]]]>",
            "<![CDATA[>]]>",
            "<a b='>'/>",
            "<a b=\"'>\"/>",
            "<a b='/'></a >",
            "<x/>",
            " \r\n\t",
            "&amp;",
            "&#60;",
            "<?pi?>",
            "<!DOCTYPE x>",
        ];
        let places = [
            "</_this>",
            "</Login>",
            "</soapenv:Body>",
            "</soapenv:Envelope>",
        ];
        for snippet in odd {
            for place in places {
                let xml = LOGIN.replacen(place, &format!("{place}{snippet}"), 1);
                soap_classifier(xml.as_bytes());
            }
        }
    }

    #[test]
    fn entries_accept_the_fixtures() {
        path_parser(b"/sdk/vim25/8.0.3.0/HostSystem/host-42/EnterMaintenanceMode_Task");
        path_parser(b"/ui/");
        path_parser(b"/");
        json_body(include_bytes!(
            "../../tests/fixtures/json/ChangeLockdownMode.json"
        ));
        json_body(include_bytes!(
            "../../tests/fixtures/json/CreateScheduledTask-MethodAction.json"
        ));
        soap_classifier(LOGIN.as_bytes());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    const SEEDS: &[&str] = &[
        include_str!("../../tests/fixtures/soap/pyvmomi-9.1.1.0-Login.xml"),
        include_str!("../../tests/fixtures/soap/pyvmomi-8.0.3.0-ChangeLockdownMode.xml"),
        include_str!("../../tests/fixtures/soap/govc-default-ns-ChangeLockdownMode.xml"),
        include_str!("../../tests/fixtures/soap/soap-prefix-EnterMaintenanceMode_Task.xml"),
        include_str!("../../tests/fixtures/soap/govc-ExecuteSoap-maintenanceMode-set.xml"),
        include_str!("../../tests/fixtures/soap/CreateScheduledTask-MethodAction.xml"),
    ];

    const SNIPPETS: &[&str] = &[
        "<!-- c -->",
        "<![CDATA[x]]>",
        "&amp;",
        "&#65;",
        "<x/>",
        "</x>",
        "<x>",
        " ",
        "<_this type=\"A\">b</_this>",
        "<?pi?>",
        "<!DOCTYPE x>",
        "'",
        "\"",
        ">",
        "<",
        "/",
        "<!--",
        "-->",
        "]]>",
        "xmlns:p=\"u\"",
        "\u{feff}",
        "</soapenv:Body><soapenv:Body>",
        "<soapenv:Header/>",
        "</Login>",
        "<Login>",
        "\r\n",
        "&lt;",
        "x",
    ];

    proptest! {
        #[test]
        fn soap_invariants_hold_on_edited_envelopes(
            seed in 0usize..SEEDS.len(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..SNIPPETS.len(), any::<bool>()), 1..4),
        ) {
            let mut text = SEEDS[seed].to_owned();
            for (at, snippet, replace) in edits {
                let mut i = at.index(text.len() + 1);
                while !text.is_char_boundary(i) { i -= 1; }
                let end = if replace { (i + SNIPPETS[snippet].len()).min(text.len()) } else { i };
                let mut end = end;
                while !text.is_char_boundary(end) { end -= 1; }
                text.replace_range(i..end.max(i), SNIPPETS[snippet]);
            }
            soap_classifier(text.as_bytes());
        }

        #[test]
        fn json_invariants_hold(s in r#"[\{\}\[\]":, a-zA-Z_0-9.\-\\]{0,120}"#) {
            json_body(s.as_bytes());
        }

        #[test]
        fn path_invariants_hold(s in "[/%.;a-zA-Z0-9?\\\\2fF5cCeE_-]{0,60}") {
            path_parser(s.as_bytes());
        }
    }
}
