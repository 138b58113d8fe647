//! End-to-end checks of ticket verification, with keys generated at test time.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::mint::{SigningKey, mint_with, signing_key_from_pem};
use super::pem::encode_pem;
use super::*;

const ISSUER: &str = "https://change.example.test";
const AUDIENCE: &str = "vcguard";
/// 2026-11-23T06:00:00Z
const ISSUED: u64 = 1_795_413_600;
/// 2026-11-23T10:00:00Z, four hours later.
const EXPIRES: u64 = 1_795_428_000;
const EMM: &str = "EnterMaintenanceMode_Task";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn pair(kind: KeyKind) -> &'static SigningKeyPair {
    static ED25519: OnceLock<SigningKeyPair> = OnceLock::new();
    static P256: OnceLock<SigningKeyPair> = OnceLock::new();
    static RSA: OnceLock<SigningKeyPair> = OnceLock::new();
    let cell = match kind {
        KeyKind::Ed25519 => &ED25519,
        KeyKind::P256 => &P256,
        KeyKind::Rsa => &RSA,
    };
    cell.get_or_init(|| generate_signing_key(kind).expect("key generation"))
}

fn signer(pair: &SigningKeyPair) -> SigningKey {
    signing_key_from_pem(&pair.private_pem, "test key").expect("private key parses")
}

fn request() -> MintRequest {
    MintRequest {
        id: "CHG0012345".into(),
        hosts: vec!["host-21".into()],
        actions: vec![EMM.into()],
        ttl: Duration::from_secs(4 * 3600),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        not_before: None,
    }
}

fn token(pair: &SigningKeyPair, request: &MintRequest) -> String {
    mint_with(&signer(pair), request, at(ISSUED)).expect("mints")
}

/// Signs arbitrary claims with an arbitrary header, as a foreign issuer would.
fn raw_token(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).expect("encodes")
}

fn standard_claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "iat": ISSUED, "exp": EXPIRES,
        "ticket": "CHG0012345", "hosts": ["host-21"], "actions": [EMM],
    })
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("writes");
    path
}

fn signed_config(keys: Vec<KeySource>) -> TicketConfig {
    TicketConfig {
        signed: Some(SignedConfig {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            keys,
            leeway_secs: DEFAULT_LEEWAY_SECS,
        }),
        ..TicketConfig::default()
    }
}

fn verifier_for(pairs: &[&SigningKeyPair]) -> TicketVerifier {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| KeySource::PemFile(write(dir.path(), &format!("k{i}.pem"), &p.public_pem)))
        .collect();
    TicketVerifier::new(&signed_config(keys)).expect("verifier")
}

fn config_error(keys: Vec<KeySource>) -> String {
    TicketVerifier::new(&signed_config(keys))
        .expect_err("config must be refused")
        .to_string()
}

fn host(mo_id: &str, host_name: Option<&str>) -> TicketTarget {
    TicketTarget {
        hosts: Vec::new(),
        mo_id: mo_id.into(),
        host_name: host_name.map(str::to_owned),
    }
}

fn valid(check: TicketCheck) -> VerifiedTicket {
    match check {
        TicketCheck::Valid(ticket) => ticket,
        TicketCheck::Invalid { reason, .. } => panic!("expected a valid ticket, got: {reason}"),
    }
}

fn invalid(check: &TicketCheck) -> (Option<&str>, TicketKind, &str) {
    match check {
        TicketCheck::Invalid { id, kind, reason } => (id.as_deref(), *kind, reason.as_str()),
        TicketCheck::Valid(ticket) => panic!("expected an invalid ticket, got {ticket:?}"),
    }
}

/// Asserts the refusal, and that neither it nor `Debug` shows the token or its signature.
fn assert_refused(check: &TicketCheck, raw: &str, id: Option<&str>, reason: &str) {
    assert_eq!(invalid(check), (id, TicketKind::Signed, reason));
    let signature = raw.rsplit('.').next().unwrap_or_default();
    let debug = format!("{check:?} {:?}", check.reason_for_policy());
    assert!(!debug.contains(raw), "token leaked: {debug}");
    assert!(
        signature.len() < 8 || !debug.contains(signature),
        "signature leaked: {debug}"
    );
}

fn expected_signed(kid: &str, target: &str) -> VerifiedTicket {
    VerifiedTicket {
        id: "CHG0012345".into(),
        kind: TicketKind::Signed,
        covers_target: true,
        covers_action: true,
        expires_at: Some(EXPIRES),
        key_id: Some(kid.into()),
        target: target.into(),
        action: EMM.into(),
    }
}

#[test]
fn valid_pattern_ticket_covers_everything() {
    let verifier = TicketVerifier::new(&TicketConfig::default()).expect("default config");
    let check = verifier.verify("CHG0012345", EMM, &host("host-21", None), at(ISSUED));
    assert!(check.authorises());
    assert_eq!(check.reason_for_policy(), None);
    assert_eq!(
        check.to_context(),
        json!({"id": "CHG0012345", "kind": "pattern", "verified": true,
               "covers_target": true, "covers_action": true})
    );
    assert_eq!(
        valid(check),
        VerifiedTicket {
            id: "CHG0012345".into(),
            kind: TicketKind::Pattern,
            covers_target: true,
            covers_action: true,
            expires_at: None,
            key_id: None,
            target: "host-21".into(),
            action: EMM.into(),
        }
    );
}

#[test]
fn invalid_pattern_ticket_names_value_and_pattern() {
    let verifier = TicketVerifier::new(&TicketConfig::default()).expect("default config");
    let check = verifier.verify("CHG12", EMM, &host("host-21", None), at(ISSUED));
    assert_eq!(
        invalid(&check),
        (
            None,
            TicketKind::Pattern,
            "CHG12 does not match the ticket pattern ^CHG[0-9]{7}$"
        )
    );
    assert_eq!(
        check.reason_for_policy().as_deref(),
        Some("change ticket rejected: CHG12 does not match the ticket pattern ^CHG[0-9]{7}$")
    );
    assert_eq!(
        check.to_context(),
        json!({"id": "", "kind": "pattern", "verified": false,
               "covers_target": false, "covers_action": false})
    );
}

#[test]
fn plain_ids_refused_when_pattern_is_off() {
    let config = TicketConfig {
        pattern: None,
        ..TicketConfig::default()
    };
    let verifier = TicketVerifier::new(&config).expect("config");
    let check = verifier.verify("CHG0012345", EMM, &host("host-21", None), at(ISSUED));
    assert_eq!(
        invalid(&check).2,
        "plain ticket ids are not accepted (ticket.pattern is off); send a signed ticket"
    );
}

#[test]
fn valid_signed_tickets_for_each_algorithm() {
    for (kind, alg) in [
        (KeyKind::Rsa, Algorithm::RS256),
        (KeyKind::P256, Algorithm::ES256),
        (KeyKind::Ed25519, Algorithm::EdDSA),
    ] {
        let pair = pair(kind);
        let verifier = verifier_for(&[pair]);
        assert_eq!(
            verifier.key_info()[0].algorithm,
            format!("{alg:?}"),
            "{kind:?}"
        );
        let raw = token(pair, &request());
        let header = jsonwebtoken::decode_header(&raw).expect("header");
        assert_eq!(header.alg, alg);
        assert_eq!(header.kid.as_deref(), Some(pair.key_id.as_str()));

        let check = verifier.verify(&raw, EMM, &host("host-21", None), at(ISSUED + 60));
        assert!(check.authorises(), "{kind:?}: {check:?}");
        assert_eq!(
            check.to_context(),
            json!({"id": "CHG0012345", "kind": "signed", "verified": true,
                   "covers_target": true, "covers_action": true, "expires_at": EXPIRES})
        );
        assert_eq!(valid(check), expected_signed(&pair.key_id, "host-21"));
    }
}

#[test]
fn expired_ticket_authorises_nothing() {
    let pair = pair(KeyKind::Ed25519);
    let verifier = verifier_for(&[pair]);
    let raw = token(pair, &request());
    let target = host("host-21", None);
    assert!(
        verifier
            .verify(&raw, EMM, &target, at(EXPIRES + 29))
            .authorises()
    );
    let check = verifier.verify(&raw, EMM, &target, at(EXPIRES + 30));
    assert_refused(
        &check,
        &raw,
        Some("CHG0012345"),
        "ticket expired at 2026-11-23T10:00:00Z",
    );
    assert_eq!(
        check.reason_for_policy().as_deref(),
        Some("change ticket CHG0012345 rejected: ticket expired at 2026-11-23T10:00:00Z")
    );
}

#[test]
fn ticket_not_yet_valid() {
    let pair = pair(KeyKind::Ed25519);
    let verifier = verifier_for(&[pair]);
    let raw = token(
        pair,
        &MintRequest {
            not_before: Some(at(ISSUED + 3600)),
            ..request()
        },
    );
    let target = host("host-21", None);
    let check = verifier.verify(&raw, EMM, &target, at(ISSUED));
    assert_refused(
        &check,
        &raw,
        Some("CHG0012345"),
        "ticket not valid before 2026-11-23T07:00:00Z",
    );
    assert!(
        verifier
            .verify(&raw, EMM, &target, at(ISSUED + 3570))
            .authorises()
    );
}

#[test]
fn wrong_issuer_and_audience() {
    let pair = pair(KeyKind::P256);
    let verifier = verifier_for(&[pair]);
    let target = host("host-21", None);
    let raw = token(
        pair,
        &MintRequest {
            issuer: "https://evil.example.test".into(),
            ..request()
        },
    );
    assert_refused(
        &verifier.verify(&raw, EMM, &target, at(ISSUED)),
        &raw,
        Some("CHG0012345"),
        "issuer 'https://evil.example.test' is not the configured 'https://change.example.test'",
    );
    let raw = token(
        pair,
        &MintRequest {
            audience: "other-gateway".into(),
            ..request()
        },
    );
    assert_refused(
        &verifier.verify(&raw, EMM, &target, at(ISSUED)),
        &raw,
        Some("CHG0012345"),
        "audience 'other-gateway' is not the configured 'vcguard'",
    );
}

#[test]
fn audience_array_must_include_ours() {
    let pair = pair(KeyKind::Ed25519);
    let verifier = verifier_for(&[pair]);
    let key = signer(pair);
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    let target = host("host-21", None);
    let mut claims = standard_claims();
    claims["aud"] = json!(["cmdb", AUDIENCE]);
    let raw = raw_token(&header, &claims, &key.encoding);
    assert!(verifier.verify(&raw, EMM, &target, at(ISSUED)).authorises());
    claims["aud"] = json!(["cmdb", "itsm"]);
    let raw = raw_token(&header, &claims, &key.encoding);
    assert_refused(
        &verifier.verify(&raw, EMM, &target, at(ISSUED)),
        &raw,
        Some("CHG0012345"),
        "audience ['cmdb', 'itsm'] does not include the configured 'vcguard'",
    );
}

#[test]
fn wrong_host_is_valid_but_does_not_cover_the_target() {
    let pair = pair(KeyKind::Ed25519);
    let verifier = verifier_for(&[pair]);
    let raw = token(pair, &request());
    let check = verifier.verify(&raw, EMM, &host("host-22", None), at(ISSUED));
    assert!(!check.authorises());
    assert_eq!(
        check.reason_for_policy().as_deref(),
        Some("ticket CHG0012345 does not cover host-22")
    );
    assert_eq!(check.to_context()["covers_target"], json!(false));
    assert_eq!(check.to_context()["verified"], json!(true));
    assert_eq!(
        valid(check),
        VerifiedTicket {
            covers_target: false,
            ..expected_signed(&pair.key_id, "host-22")
        }
    );
}

#[test]
fn wrong_action_is_valid_but_does_not_cover_the_action() {
    let pair = pair(KeyKind::Ed25519);
    let verifier = verifier_for(&[pair]);
    let raw = token(pair, &request());
    let check = verifier.verify(
        &raw,
        "ChangeLockdownMode",
        &host("host-21", None),
        at(ISSUED),
    );
    assert_eq!(
        check.reason_for_policy().as_deref(),
        Some("ticket CHG0012345 does not cover ChangeLockdownMode")
    );
    let ticket = valid(check);
    assert!(ticket.covers_target && !ticket.covers_action);

    let check = verifier.verify(
        &raw,
        "ChangeLockdownMode",
        &host("host-22", None),
        at(ISSUED),
    );
    assert_eq!(
        check.reason_for_policy().as_deref(),
        Some("ticket CHG0012345 does not cover host-22 or ChangeLockdownMode")
    );
}

#[test]
fn a_ticket_for_a_host_covers_the_objects_on_it() {
    let pair = pair(KeyKind::Ed25519);
    let verifier = verifier_for(&[pair]);
    let raw = token(
        pair,
        &MintRequest {
            actions: vec!["ChangeLockdownMode".into()],
            ..request()
        },
    );
    let on = |host: &str| TicketTarget {
        mo_id: "ham-21".into(),
        host_name: None,
        hosts: vec![host.into()],
    };
    let check = verifier.verify(&raw, "ChangeLockdownMode", &on("host-21"), at(ISSUED));
    assert!(check.authorises(), "{check:?}");
    let check = verifier.verify(&raw, "ChangeLockdownMode", &on("host-22"), at(ISSUED));
    assert_eq!(
        check.reason_for_policy().as_deref(),
        Some("ticket CHG0012345 does not cover ham-21 (on host-22)")
    );
}

#[test]
fn host_names_match_ignoring_case() {
    let pair = pair(KeyKind::Ed25519);
    let verifier = verifier_for(&[pair]);
    let raw = token(
        pair,
        &MintRequest {
            hosts: vec!["esx-21.example.test".into()],
            ..request()
        },
    );
    let named = host("host-21", Some("ESX-21.Example.Test"));
    assert!(verifier.verify(&raw, EMM, &named, at(ISSUED)).authorises());
    let unnamed = host("host-21", None);
    assert!(!valid(verifier.verify(&raw, EMM, &unnamed, at(ISSUED))).covers_target);
    let other = host("host-22", Some("esx-22.example.test"));
    assert_eq!(
        verifier
            .verify(&raw, EMM, &other, at(ISSUED))
            .reason_for_policy()
            .as_deref(),
        Some("ticket CHG0012345 does not cover host-22 (esx-22.example.test)")
    );
}

#[test]
fn forged_signatures_do_not_verify() {
    let trusted = pair(KeyKind::Ed25519);
    let verifier = verifier_for(&[trusted]);
    let target = host("host-21", None);
    let attacker = generate_signing_key(KeyKind::Ed25519).expect("key");

    let raw = token(&attacker, &request());
    assert_refused(
        &verifier.verify(&raw, EMM, &target, at(ISSUED)),
        &raw,
        None,
        &format!(
            "signature does not verify (kid '{}' names no configured key, and no configured EdDSA key verifies it)",
            attacker.key_id
        ),
    );

    let mut impostor = signer(&attacker);
    impostor.kid = trusted.key_id.clone();
    let raw = mint_with(&impostor, &request(), at(ISSUED)).expect("mints");
    assert_refused(
        &verifier.verify(&raw, EMM, &target, at(ISSUED)),
        &raw,
        None,
        &format!("signature does not verify with key '{}'", trusted.key_id),
    );

    let genuine = token(trusted, &request());
    let mut parts: Vec<&str> = genuine.split('.').collect();
    let mut claims = standard_claims();
    claims["hosts"] = json!(["host-21", "host-22"]);
    let tampered_payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    parts[1] = &tampered_payload;
    let raw = parts.join(".");
    assert_refused(
        &verifier.verify(&raw, EMM, &host("host-22", None), at(ISSUED)),
        &raw,
        None,
        &format!("signature does not verify with key '{}'", trusted.key_id),
    );
}

#[test]
fn alg_none_is_refused_and_never_falls_back_to_the_pattern() {
    let pair = pair(KeyKind::Ed25519);
    let mut config = signed_config(vec![]);
    config.pattern = Some(".*".into());
    let dir = tempfile::tempdir().expect("tempdir");
    if let Some(signed) = config.signed.as_mut() {
        signed.keys = vec![KeySource::PemFile(write(
            dir.path(),
            "k.pem",
            &pair.public_pem,
        ))];
    }
    let verifier = TicketVerifier::new(&config).expect("verifier");
    let target = host("host-21", None);
    for alg in ["none", "None", "NONE"] {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
        let payload = URL_SAFE_NO_PAD.encode(standard_claims().to_string());
        let raw = format!("{header}.{payload}.");
        assert_refused(
            &verifier.verify(&raw, EMM, &target, at(ISSUED)),
            &raw,
            None,
            "'alg: none' tickets are not accepted",
        );
    }
    let raw = "a.b.c";
    assert_refused(
        &verifier.verify(raw, EMM, &target, at(ISSUED)),
        raw,
        None,
        "malformed ticket: the header is not base64url",
    );
}

#[test]
fn hs256_with_the_public_key_as_secret_is_refused() {
    let pair = pair(KeyKind::Rsa);
    let verifier = verifier_for(&[pair]);
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(pair.key_id.clone());
    let raw = raw_token(
        &header,
        &standard_claims(),
        &EncodingKey::from_secret(pair.public_pem.as_bytes()),
    );
    assert_refused(
        &verifier.verify(&raw, EMM, &host("host-21", None), at(ISSUED)),
        &raw,
        None,
        "algorithm HS256 is not accepted (RS256, ES256, EdDSA only)",
    );
}

#[test]
fn unknown_kid_tries_every_key_of_the_algorithm() {
    let trusted = pair(KeyKind::Ed25519);
    let second = generate_signing_key(KeyKind::Ed25519).expect("key");
    let verifier = verifier_for(&[trusted, &second]);
    let target = host("host-21", None);

    let mut key = signer(&second);
    key.kid = "change-system-key-7".into();
    let raw = mint_with(&key, &request(), at(ISSUED)).expect("mints");
    assert_eq!(
        valid(verifier.verify(&raw, EMM, &target, at(ISSUED))).key_id,
        Some(second.key_id.clone())
    );

    let no_kid = raw_token(
        &Header::new(Algorithm::EdDSA),
        &standard_claims(),
        &signer(trusted).encoding,
    );
    assert_eq!(
        valid(verifier.verify(&no_kid, EMM, &target, at(ISSUED))).key_id,
        Some(trusted.key_id.clone())
    );
}

#[test]
fn kid_and_algorithm_must_agree_with_the_keys() {
    let ed = pair(KeyKind::Ed25519);
    let p256 = pair(KeyKind::P256);
    let target = host("host-21", None);

    let ed_only = verifier_for(&[ed]);
    let raw = token(p256, &request());
    assert_refused(
        &ed_only.verify(&raw, EMM, &target, at(ISSUED)),
        &raw,
        None,
        &format!(
            "no configured key verifies ES256 tickets (configured: EdDSA '{}')",
            ed.key_id
        ),
    );

    let both = verifier_for(&[ed, p256]);
    let mut key = signer(p256);
    key.kid = ed.key_id.clone();
    let raw = mint_with(&key, &request(), at(ISSUED)).expect("mints");
    assert_refused(
        &both.verify(&raw, EMM, &target, at(ISSUED)),
        &raw,
        None,
        &format!(
            "the ticket is signed with ES256 but names key '{}', which verifies EdDSA only",
            ed.key_id
        ),
    );
}

#[test]
fn malformed_and_incomplete_claims() {
    let pair = pair(KeyKind::Ed25519);
    let verifier = verifier_for(&[pair]);
    let key = signer(pair);
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    let target = host("host-21", None);
    let check = |claims: &Value| {
        let raw = raw_token(&header, claims, &key.encoding);
        (verifier.verify(&raw, EMM, &target, at(ISSUED)), raw)
    };

    let (result, raw) = check(&json!("just a string"));
    assert!(
        invalid(&result)
            .2
            .starts_with("malformed ticket: the claims do not have the expected shape"),
        "{result:?}"
    );
    assert!(!format!("{result:?}").contains(&raw));

    let mut claims = standard_claims();
    claims.as_object_mut().map(|c| c.remove("exp"));
    let (result, raw) = check(&claims);
    assert_refused(
        &result,
        &raw,
        Some("CHG0012345"),
        "malformed ticket: claim 'exp' is missing; signed tickets must expire",
    );

    let mut claims = standard_claims();
    claims.as_object_mut().map(|c| c.remove("ticket"));
    claims["jti"] = json!("CHG0012345");
    let (result, raw) = check(&claims);
    assert_refused(
        &result,
        &raw,
        None,
        "malformed ticket: claim 'ticket' (the change id) is missing",
    );

    let mut claims = standard_claims();
    claims.as_object_mut().map(|c| c.remove("hosts"));
    let (result, raw) = check(&claims);
    assert_refused(
        &result,
        &raw,
        Some("CHG0012345"),
        "malformed ticket: claim 'hosts' is missing (an array of host moIds or names)",
    );

    let payload = URL_SAFE_NO_PAD.encode(standard_claims().to_string());
    for (header_json, reason) in [
        (
            r#"{"alg":"HS256","alg":"EdDSA"}"#,
            "malformed ticket: the header is ambiguous (duplicate field `alg`",
        ),
        (
            r#"["EdDSA"]"#,
            "malformed ticket: the header is not a JSON object",
        ),
        (
            r#"{"typ":"JWT"}"#,
            "malformed ticket: the header has no 'alg'",
        ),
    ] {
        let raw = format!("{}.{payload}.AAAA", URL_SAFE_NO_PAD.encode(header_json));
        let result = verifier.verify(&raw, EMM, &target, at(ISSUED));
        let (id, kind, text) = invalid(&result);
        assert!(id.is_none() && kind == TicketKind::Signed, "{result:?}");
        assert!(text.starts_with(reason), "{text}");
    }

    let mut claims_twice = standard_claims().to_string();
    claims_twice.insert_str(1, r#""hosts":["host-22"],"#);
    let header_json = serde_json::to_string(&header).expect("header");
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&header_json),
        URL_SAFE_NO_PAD.encode(&claims_twice)
    );
    let signature = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(key.encoding.as_bytes())
        .expect("ed25519")
        .sign(message.as_bytes());
    let raw = format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
    let result = verifier.verify(&raw, EMM, &target, at(ISSUED));
    assert!(
        invalid(&result).2.contains("duplicate field `hosts`"),
        "{result:?}"
    );

    let mut crit = header.clone();
    crit.crit = Some(vec!["exp-extension".into()]);
    let raw = raw_token(&crit, &standard_claims(), &key.encoding);
    assert_refused(
        &verifier.verify(&raw, EMM, &target, at(ISSUED)),
        &raw,
        None,
        "the header marks extensions as critical ([\"exp-extension\"]); none are supported",
    );
}

#[test]
fn signed_tickets_refused_when_not_configured() {
    let verifier = TicketVerifier::new(&TicketConfig::default()).expect("default config");
    let raw = token(pair(KeyKind::Ed25519), &request());
    assert_refused(
        &verifier.verify(&raw, EMM, &host("host-21", None), at(ISSUED)),
        &raw,
        None,
        "the value is a signed ticket (JWT), but signed tickets are not configured ([ticket.signed])",
    );
}

fn jwk_of(pair: &SigningKeyPair, kid: Option<&str>) -> Value {
    let key = signer(pair);
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&key.encoding, key.alg).expect("jwk"))
            .expect("serializes");
    if let Some(kid) = kid {
        jwk["kid"] = json!(kid);
    }
    jwk
}

#[test]
fn jwks_keys_load_and_verify() {
    let rsa = pair(KeyKind::Rsa);
    let p256 = pair(KeyKind::P256);
    let ed = pair(KeyKind::Ed25519);
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks = json!({"keys": [
        jwk_of(rsa, Some("rsa-2026")),
        jwk_of(p256, None),
        jwk_of(ed, Some("ed-2026")),
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
    ]});
    let path = write(dir.path(), "change.jwks", &jwks.to_string());
    let verifier =
        TicketVerifier::new(&signed_config(vec![KeySource::JwksFile(path)])).expect("verifier");
    let ids: Vec<(String, String)> = verifier
        .key_info()
        .into_iter()
        .map(|k| (k.key_id, k.algorithm))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("rsa-2026".to_owned(), "RS256".to_owned()),
            (p256.key_id.clone(), "ES256".to_owned()),
            ("ed-2026".to_owned(), "EdDSA".to_owned()),
        ]
    );

    let target = host("host-21", None);
    for (pair, kid) in [
        (rsa, "rsa-2026"),
        (p256, p256.key_id.as_str()),
        (ed, "ed-2026"),
    ] {
        let raw = token(pair, &request());
        assert_eq!(
            valid(verifier.verify(&raw, EMM, &target, at(ISSUED))),
            expected_signed(kid, "host-21")
        );
    }
}

#[test]
fn jwks_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let only_hmac = write(
        dir.path(),
        "hmac.jwks",
        &json!({"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]}).to_string(),
    );
    assert_eq!(
        config_error(vec![KeySource::JwksFile(only_hmac.clone())]),
        format!(
            "{} has no usable keys (RSA >= 2048 bits, P-256 or Ed25519 signing keys): \
             key 'hmac': symmetric key (HMAC tickets are not accepted)",
            only_hmac.display()
        )
    );

    let mut private = jwk_of(pair(KeyKind::Ed25519), Some("ed"));
    private["d"] = json!("AAAA");
    let with_private = write(
        dir.path(),
        "private.jwks",
        &json!({"keys": [private]}).to_string(),
    );
    assert_eq!(
        config_error(vec![KeySource::JwksFile(with_private.clone())]),
        format!(
            "{} holds a private key (key 'ed' has the private parameter 'd'); configure the \
             public key only (e.g. openssl pkey -in PRIVATE.pem -pubout)",
            with_private.display()
        )
    );

    let not_a_set = write(dir.path(), "single.jwks", "{\"kty\": \"OKP\"}");
    assert_eq!(
        config_error(vec![KeySource::JwksFile(not_a_set.clone())]),
        format!(
            "{} is not a valid JWKS file: expected an object with a \"keys\" array",
            not_a_set.display()
        )
    );
}

#[test]
fn key_file_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.pem");
    let err = config_error(vec![KeySource::PemFile(missing.clone())]);
    assert!(
        err.starts_with(&format!(
            "cannot read ticket key file {}: ",
            missing.display()
        )),
        "{err}"
    );

    let private = write(dir.path(), "private.pem", &pair(KeyKind::P256).private_pem);
    assert_eq!(
        config_error(vec![KeySource::PemFile(private.clone())]),
        format!(
            "{} holds a private key (a PRIVATE KEY section); configure the public key only \
             (e.g. openssl pkey -in PRIVATE.pem -pubout)",
            private.display()
        )
    );

    let text = write(dir.path(), "notes.txt", "not a key\n");
    assert_eq!(
        config_error(vec![KeySource::PemFile(text.clone())]),
        format!(
            "{} is not a PEM public key: no -----BEGIN PUBLIC KEY----- section found",
            text.display()
        )
    );

    let spki = aws_lc_rs::rsa::PublicKeyComponents {
        n: &[0xc5u8; 128][..],
        e: &[1u8, 0, 1][..],
    };
    let spki = aws_lc_rs::encoding::AsDer::as_der(&spki).expect("1024-bit SPKI");
    let weak = write(
        dir.path(),
        "weak.pem",
        &encode_pem("PUBLIC KEY", spki.as_ref()),
    );
    assert_eq!(
        config_error(vec![KeySource::PemFile(weak.clone())]),
        format!(
            "{}: RSA key has 1024 bits; at least 2048 are required",
            weak.display()
        )
    );

    let p384 = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
    )
    .expect("p384");
    let public =
        aws_lc_rs::encoding::AsDer::as_der(aws_lc_rs::signature::KeyPair::public_key(&p384))
            .expect("der");
    let p384_path = write(
        dir.path(),
        "p384.pem",
        &encode_pem("PUBLIC KEY", public.as_ref()),
    );
    assert_eq!(
        config_error(vec![KeySource::PemFile(p384_path.clone())]),
        format!(
            "{}: P-384 keys are not accepted (ES256 needs a P-256 key)",
            p384_path.display()
        )
    );

    let public = write(dir.path(), "public.pem", &pair(KeyKind::Ed25519).public_pem);
    let twice = config_error(vec![
        KeySource::PemFile(public.clone()),
        KeySource::PemFile(public.clone()),
    ]);
    assert!(
        twice.starts_with(&format!(
            "key id '{}' is configured twice",
            pair(KeyKind::Ed25519).key_id
        )),
        "{twice}"
    );
}

#[test]
fn mint_reads_the_key_file_and_refuses_public_keys() {
    let pair = pair(KeyKind::Ed25519);
    let dir = tempfile::tempdir().expect("tempdir");
    let private = write(dir.path(), "signing.pem", &pair.private_pem);
    let raw = mint(&private, request()).expect("mints");
    let verifier = verifier_for(&[pair]);
    let now = SystemTime::now();
    assert!(
        verifier
            .verify(&raw, EMM, &host("host-21", None), now)
            .authorises()
    );

    let public = write(dir.path(), "public.pem", &pair.public_pem);
    assert_eq!(
        mint(&public, request())
            .expect_err("public key")
            .to_string(),
        format!(
            "{} is not a usable private key: it is a public key; minting needs the private key",
            public.display()
        )
    );
    let empty_hosts = MintRequest {
        hosts: vec![],
        ..request()
    };
    assert_eq!(
        mint(&private, empty_hosts)
            .expect_err("no hosts")
            .to_string(),
        "cannot mint the ticket: give at least one host, and no empty host"
    );
}

#[test]
fn inspect_shows_claims_but_never_the_signature() {
    let pair = pair(KeyKind::Ed25519);
    let verifier = verifier_for(&[pair]);
    let raw = token(pair, &request());
    let signature = raw.rsplit('.').next().unwrap_or_default().to_owned();

    let report = inspect(&raw, Some(&verifier), at(ISSUED));
    assert!(report.contains("alg: EdDSA"), "{report}");
    assert!(
        report.contains(&format!("kid: {}", pair.key_id)),
        "{report}"
    );
    assert!(report.contains("\"ticket\": \"CHG0012345\""), "{report}");
    assert!(
        report.contains("exp: 2026-11-23T10:00:00Z (in 4h)"),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "verification: VALID: ticket CHG0012345 verified with key '{}' (EdDSA)",
            pair.key_id
        )),
        "{report}"
    );
    assert!(!report.contains(&signature), "{report}");

    let late = inspect(&raw, Some(&verifier), at(EXPIRES + 60));
    assert!(
        late.contains("verification: INVALID: ticket expired at 2026-11-23T10:00:00Z"),
        "{late}"
    );
    let unchecked = inspect(&raw, None, at(ISSUED));
    assert!(
        unchecked.contains("verification: not checked"),
        "{unchecked}"
    );

    let default = TicketVerifier::new(&TicketConfig::default()).expect("default");
    let plain = inspect("CHG0012345", Some(&default), at(ISSUED));
    assert!(plain.contains("kind: plain ticket id"), "{plain}");
    assert!(
        plain.contains("verification: VALID: matches the ticket pattern ^CHG[0-9]{7}$"),
        "{plain}"
    );
}

fn pem_contents(text: &str) -> Vec<u8> {
    ::pem::parse(text).expect("PEM").into_contents()
}

fn mint_error(key_pem: &str) -> String {
    match signing_key_from_pem(key_pem, "key.pem") {
        Ok(_) => panic!("the key must be refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn pkcs1_and_sec1_keys_have_the_key_id_of_their_spki() {
    let rsa = pair(KeyKind::Rsa);
    let p256 = pair(KeyKind::P256);
    let dir = tempfile::tempdir().expect("tempdir");
    let public = aws_lc_rs::rsa::PublicKey::from_der(&pem_contents(&rsa.public_pem)).expect("rsa");
    let path = write(
        dir.path(),
        "rsa.pem",
        &encode_pem("RSA PUBLIC KEY", public.as_ref()),
    );
    let verifier =
        TicketVerifier::new(&signed_config(vec![KeySource::PemFile(path)])).expect("verifier");
    assert_eq!(verifier.key_info()[0].key_id, rsa.key_id);

    let (_, rsa_private) =
        super::pem::pkcs8_parts(&pem_contents(&rsa.private_pem)).expect("PKCS#8");
    let pkcs8 = pem_contents(&p256.private_pem);
    let ec = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &pkcs8,
    )
    .expect("P-256");
    let sec1 = aws_lc_rs::encoding::AsDer::as_der(&ec.private_key()).expect("SEC1");
    let verifier = verifier_for(&[rsa, p256]);
    for (pair, text) in [
        (rsa, encode_pem("RSA PRIVATE KEY", &rsa_private)),
        (p256, encode_pem("EC PRIVATE KEY", sec1.as_ref())),
    ] {
        let key = signing_key_from_pem(&text, "key.pem").expect("private key parses");
        assert_eq!(key.kid, pair.key_id);
        let raw = mint_with(&key, &request(), at(ISSUED)).expect("mints");
        let check = verifier.verify(&raw, EMM, &host("host-21", None), at(ISSUED));
        assert_eq!(valid(check), expected_signed(&pair.key_id, "host-21"));
    }
}

#[test]
fn keys_of_other_algorithms_are_refused_by_name() {
    let spki = |arcs: &[u64]| {
        yasna::construct_der(|writer| {
            writer.write_sequence(|writer| {
                writer.next().write_sequence(|writer| {
                    let oid = yasna::models::ObjectIdentifier::from_slice(arcs);
                    writer.next().write_oid(&oid);
                });
                writer.next().write_bitvec_bytes(&[7u8; 57], 57 * 8);
            })
        })
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for (arcs, name) in [
        (&[1u64, 3, 101, 113][..], "Ed448"),
        (&[1, 2, 3, 4][..], "OID 1.2.3.4"),
    ] {
        let path = write(
            dir.path(),
            "other.pem",
            &encode_pem("PUBLIC KEY", &spki(arcs)),
        );
        assert_eq!(
            config_error(vec![KeySource::PemFile(path.clone())]),
            format!(
                "{}: {name} keys are not accepted (RSA, P-256 or Ed25519 only)",
                path.display()
            )
        );
    }

    let p384 = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
    )
    .expect("P-384");
    let pkcs8 = p384.to_pkcs8v1().expect("PKCS#8");
    assert_eq!(
        mint_error(&encode_pem("PRIVATE KEY", pkcs8.as_ref())),
        "key.pem is not a usable private key: P-384 keys are not accepted (ES256 needs a P-256 key)"
    );
    assert_eq!(
        mint_error(&encode_pem("ENCRYPTED PRIVATE KEY", pkcs8.as_ref())),
        "key.pem is not a usable private key: the key is encrypted; decrypt it first \
         (openssl pkcs8 -in KEY.pem -out PLAIN.pem)"
    );
    // A stand-in body ("AAAA") under legacy encryption headers, not a key; the markers are
    // split so that secret scanners do not take the fixture for one.
    let legacy = concat!(
        "-----BEGIN RSA ",
        "PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n",
        "DEK-Info: AES-128-CBC,00000000000000000000000000000000\n\nAAAA\n",
        "-----END RSA ",
        "PRIVATE KEY-----\n"
    );
    assert_eq!(
        mint_error(legacy),
        "key.pem is not a usable private key: the RSA PRIVATE KEY section carries PEM headers \
         (a legacy encrypted key?)"
    );
}
