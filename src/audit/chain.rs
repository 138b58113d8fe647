//! The hash chain: line layout, record hashes and the chain fields of a line.
//!
//! A record line is `{…,"prev":"<hex>","hash":"<hex>"}`: `hash` is always the last member,
//! and it is the SHA-256 of the line as written with that member removed, i.e. of the bytes
//! before `,"hash":"` followed by `}`. Every byte of a record is therefore covered, and any
//! tool can check a line without a JSON canonicaliser.

use std::borrow::Cow;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `prev` of the very first record.
pub(super) const ZERO_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// Record format version written in `v`.
pub(super) const FORMAT_VERSION: u64 = 1;

/// The member that ends every line, before the 64 hex digits and `"}`.
const HASH_MEMBER: &[u8] = b",\"hash\":\"";
const HASH_HEX_LEN: usize = 64;
const SUFFIX_LEN: usize = HASH_MEMBER.len() + HASH_HEX_LEN + 2;

/// JSON string with the escapes serde_json writes: `\"`, `\\`, `\b \f \n \r \t`, other
/// controls as `\u00xx` (lowercase hex); everything else as raw UTF-8.
pub(super) fn encode_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[usize::from(b)] {
            continue;
        }
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => b"",
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The bytes a JSON string must escape: controls, `"` and `\`.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Lowercase hex SHA-256.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of bytes.
pub(super) fn hex(bytes: &[u8]) -> String {
    let mut digits = vec![0; bytes.len() * 2];
    // The output is exactly twice as long as the input, so this cannot fail; nor can the UTF-8
    // check of hex digits.
    let _ = hex::encode_to_slice(bytes, &mut digits);
    String::from_utf8(digits).unwrap_or_default()
}

/// The hash of a record whose line, without its `hash` member, is `prefix` + `}`.
fn hash_of_prefix(prefix: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prefix);
    h.update(b"}");
    hex(&h.finalize())
}

/// Splits a line (without newline) into the bytes before `,"hash":"` and the stated hash.
fn split_hash(line: &[u8]) -> Option<(&[u8], &str)> {
    let cut = line.len().checked_sub(SUFFIX_LEN)?;
    let (prefix, suffix) = line.split_at(cut);
    let rest = suffix.strip_prefix(HASH_MEMBER)?;
    let digits = rest.strip_suffix(b"\"}")?;
    if digits
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        std::str::from_utf8(digits).ok().map(|h| (prefix, h))
    } else {
        None
    }
}

/// What the writer knows about one record before it is chained.
pub(super) struct Envelope<'a> {
    pub(super) seq: u64,
    pub(super) time: &'a str,
    pub(super) instance: &'a str,
    pub(super) kind: &'static str,
    pub(super) prev: &'a str,
}

/// Renders one record line (with its trailing `\n`) and returns it with its hash.
/// Layout: `v`, `seq`, `time`, `instance`, `kind`, the body members, `prev`, `hash`.
pub(super) fn render(env: &Envelope<'_>, body_json: &[u8]) -> (Vec<u8>, String) {
    let mut line = Vec::with_capacity(body_json.len() + 320);
    let mut digits = itoa::Buffer::new();
    line.extend_from_slice(b"{\"v\":");
    line.extend_from_slice(digits.format(FORMAT_VERSION).as_bytes());
    line.extend_from_slice(b",\"seq\":");
    line.extend_from_slice(digits.format(env.seq).as_bytes());
    line.extend_from_slice(b",\"time\":");
    encode_str(env.time, &mut line);
    line.extend_from_slice(b",\"instance\":");
    encode_str(env.instance, &mut line);
    line.extend_from_slice(b",\"kind\":");
    encode_str(env.kind, &mut line);
    let inner = body_json
        .strip_prefix(b"{")
        .and_then(|b| b.strip_suffix(b"}"))
        .unwrap_or_default();
    if !inner.is_empty() {
        line.push(b',');
        line.extend_from_slice(inner);
    }
    line.extend_from_slice(b",\"prev\":");
    encode_str(env.prev, &mut line);
    let hash = hash_of_prefix(&line);
    line.extend_from_slice(HASH_MEMBER);
    line.extend_from_slice(hash.as_bytes());
    line.extend_from_slice(b"\"}\n");
    (line, hash)
}

#[derive(Deserialize)]
struct BreakView<'a> {
    #[serde(borrow)]
    file: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct TornView<'a> {
    #[serde(borrow)]
    file: Option<Cow<'a, str>>,
    length: Option<u64>,
}

/// The members `verify` and the writer read; unknown members are skipped.
#[derive(Deserialize)]
struct HeaderView<'a> {
    v: u64,
    seq: u64,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow)]
    prev: Cow<'a, str>,
    unclean_previous_stop: Option<bool>,
    #[serde(borrow)]
    torn_tail: Option<TornView<'a>>,
    failures: Option<u64>,
    #[serde(borrow)]
    chain_break: Option<BreakView<'a>>,
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
    lost: Option<u64>,
    #[serde(borrow)]
    from: Option<Cow<'a, str>>,
    #[serde(borrow)]
    until: Option<Cow<'a, str>>,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    removed: Option<Vec<Cow<'a, str>>>,
}

/// The chain fields of a checked line, and what `verify` notes about it.
#[derive(Debug, Clone)]
pub(super) struct Header {
    pub(super) seq: u64,
    pub(super) kind: String,
    pub(super) time: String,
    pub(super) prev: String,
    pub(super) hash: String,
    pub(super) unclean_previous_stop: bool,
    /// File name and length of a torn line removed at this start.
    pub(super) torn_tail: Option<(String, u64)>,
    pub(super) failures: Option<u64>,
    /// A `start` that could not chain: the file and why.
    pub(super) chain_break: Option<(String, String)>,
    /// What the writer's own record says happened (`reopen`, `gap`): its `reason`.
    pub(super) note: Option<NoteFields>,
}

/// Members of the writer's `reopen`, `gap` and `retention` records that `verify` reports.
#[derive(Debug, Clone, Default)]
pub(super) struct NoteFields {
    pub(super) reason: Option<String>,
    pub(super) lost: Option<u64>,
    pub(super) from: Option<String>,
    pub(super) until: Option<String>,
    pub(super) first_seq: Option<u64>,
    pub(super) last_seq: Option<u64>,
    pub(super) removed: Vec<String>,
}

/// Why a line is not a valid record.
#[derive(Debug, thiserror::Error)]
pub(super) enum LineError {
    /// The line does not end in a well-formed `hash` member.
    #[error("the line does not end with a `hash` member of 64 lowercase hex digits")]
    NoHash,
    /// The content does not hash to the stated value.
    #[error("hash mismatch: the record says {stated}, its content hashes to {computed}")]
    Mismatch {
        /// The `hash` member.
        stated: String,
        /// The hash of the content.
        computed: String,
    },
    /// The line is not a JSON record with the envelope members.
    #[error("not a valid record ({0})")]
    NotJson(#[source] serde_json::Error),
    /// The `v` member names a format this build does not read.
    #[error("unsupported format version {0}")]
    Version(u64),
}

/// Checks a line's own hash and format version and returns its chain fields.
pub(super) fn check_line(line: &[u8]) -> Result<Header, LineError> {
    let (prefix, stated) = split_hash(line).ok_or(LineError::NoHash)?;
    let computed = hash_of_prefix(prefix);
    if computed != stated {
        return Err(LineError::Mismatch {
            stated: stated.to_owned(),
            computed,
        });
    }
    let h: HeaderView<'_> = serde_json::from_slice(line).map_err(LineError::NotJson)?;
    if h.v != FORMAT_VERSION {
        return Err(LineError::Version(h.v));
    }
    let writer_note = matches!(h.kind.as_ref(), "reopen" | "gap" | "retention");
    let note = writer_note.then(|| NoteFields {
        reason: h.reason.map(Cow::into_owned),
        lost: h.lost,
        from: h.from.map(Cow::into_owned),
        until: h.until.map(Cow::into_owned),
        first_seq: h.first_seq,
        last_seq: h.last_seq,
        removed: h
            .removed
            .unwrap_or_default()
            .into_iter()
            .map(Cow::into_owned)
            .collect(),
    });
    Ok(Header {
        seq: h.seq,
        kind: h.kind.into_owned(),
        time: h.time.into_owned(),
        prev: h.prev.into_owned(),
        hash: stated.to_owned(),
        unclean_previous_stop: h.unclean_previous_stop == Some(true),
        torn_tail: h.torn_tail.map(|t| {
            (
                t.file.map(Cow::into_owned).unwrap_or_default(),
                t.length.unwrap_or(0),
            )
        }),
        failures: h.failures,
        chain_break: h.chain_break.map(|b| {
            (
                b.file.map(Cow::into_owned).unwrap_or_default(),
                b.reason.map(Cow::into_owned).unwrap_or_default(),
            )
        }),
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_escapes_match_serde_json() {
        let s: String = (0u8..0x80).map(char::from).chain("é€😀/".chars()).collect();
        let mut ours = Vec::new();
        encode_str(&s, &mut ours);
        assert_eq!(ours, serde_json::to_vec(&s).unwrap());
    }

    fn env(kind: &'static str) -> Envelope<'static> {
        Envelope {
            seq: 7,
            time: "2025-01-01T00:00:00.000000Z",
            instance: "gw-1",
            kind,
            prev: ZERO_HASH,
        }
    }

    #[test]
    fn rendered_line_verifies_and_layout_is_readable() {
        let (line, hash) = render(&env("decision"), br#"{"request_id":"r1","method":"M"}"#);
        let text = String::from_utf8(line.clone()).unwrap();
        let without_hash = format!(
            "{{\"v\":1,\"seq\":7,\"time\":\"2025-01-01T00:00:00.000000Z\",\"instance\":\"gw-1\",\
             \"kind\":\"decision\",\"request_id\":\"r1\",\"method\":\"M\",\"prev\":\"{ZERO_HASH}\"}}"
        );
        assert_eq!(hash, sha256_hex(without_hash.as_bytes()));
        assert_eq!(
            text,
            format!(
                "{},\"hash\":\"{hash}\"}}\n",
                &without_hash[..without_hash.len() - 1]
            )
        );
        serde_json::from_str::<serde_json::Value>(&text).unwrap();
        let header = check_line(line.trim_ascii_end()).unwrap();
        assert_eq!((header.seq, header.hash), (7, hash));
    }

    #[test]
    fn any_byte_change_is_a_mismatch() {
        let (line, _) = render(&env("outcome"), br#"{"status":200}"#);
        let line = line.trim_ascii_end();
        for i in 0..line.len() - SUFFIX_LEN {
            let mut bad = line.to_vec();
            bad[i] = if bad[i] == b' ' { b'\t' } else { b' ' };
            assert!(check_line(&bad).is_err(), "byte {i}");
        }
        assert!(check_line(&line[..line.len() - 1]).is_err());
    }

    #[test]
    fn empty_body_renders() {
        let (line, _) = render(&env("stop"), b"{}");
        check_line(line.trim_ascii_end()).unwrap();
    }
}
