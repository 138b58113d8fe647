//! Just enough PEM and DER to recognise the key formats tickets use: SubjectPublicKeyInfo,
//! PKCS#1, PKCS#8 and SEC1. Cryptographic validation is left to aws-lc-rs.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

pub(super) const SEQUENCE: u8 = 0x30;
pub(super) const INTEGER: u8 = 0x02;
pub(super) const BIT_STRING: u8 = 0x03;
pub(super) const OCTET_STRING: u8 = 0x04;
pub(super) const OBJECT_IDENTIFIER: u8 = 0x06;

/// 1.2.840.113549.1.1.1
pub(super) const OID_RSA_ENCRYPTION: &[u8] =
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// 1.2.840.10045.2.1
pub(super) const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// 1.2.840.10045.3.1.7 (P-256)
pub(super) const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// 1.3.101.112
pub(super) const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

const KNOWN_OIDS: &[(&[u8], &str)] = &[
    (OID_RSA_ENCRYPTION, "RSA"),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a],
        "RSASSA-PSS",
    ),
    (OID_EC_PUBLIC_KEY, "EC"),
    (OID_P256, "P-256"),
    (&[0x2b, 0x81, 0x04, 0x00, 0x22], "P-384"),
    (&[0x2b, 0x81, 0x04, 0x00, 0x23], "P-521"),
    (OID_ED25519, "Ed25519"),
    (&[0x2b, 0x65, 0x71], "Ed448"),
    (&[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01], "DSA"),
];

/// One `-----BEGIN label-----` … `-----END label-----` section.
pub(super) struct PemBlock {
    pub(super) label: String,
    pub(super) der: Vec<u8>,
}

impl fmt::Debug for PemBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemBlock")
            .field("label", &self.label)
            .field("der", &format_args!("[{} bytes]", self.der.len()))
            .finish()
    }
}

/// Decodes every PEM section of `text`; text outside sections is ignored.
pub(super) fn parse_pem(text: &str) -> Result<Vec<PemBlock>, String> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim();
        let Some((label, body)) = open.as_mut() else {
            if let Some(label) = line
                .strip_prefix("-----BEGIN ")
                .and_then(|l| l.strip_suffix("-----"))
            {
                open = Some((label.to_owned(), String::new()));
            }
            continue;
        };
        if let Some(end) = line
            .strip_prefix("-----END ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if end != label.as_str() {
                return Err(format!("'END {end}' does not close 'BEGIN {label}'"));
            }
            let der = STANDARD
                .decode(body.as_bytes())
                .map_err(|e| format!("the {label} section is not valid base64 ({e})"))?;
            blocks.push(PemBlock {
                label: std::mem::take(label),
                der,
            });
            open = None;
        } else if line.contains(':') {
            return Err(format!(
                "the {label} section carries PEM headers (a legacy encrypted key?)"
            ));
        } else {
            body.push_str(line);
        }
    }
    match open {
        Some((label, _)) => Err(format!("the {label} section has no END line")),
        None => Ok(blocks),
    }
}

/// Encodes `der` as a PEM section with 64-character lines.
pub(super) fn encode_pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Reads DER TLVs one after another.
pub(super) struct DerReader<'a> {
    rest: &'a [u8],
}

impl<'a> DerReader<'a> {
    /// Starts reading `input`.
    pub(super) fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }

    /// Whether everything has been read.
    pub(super) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Reads the next element, which must carry `tag`, and returns its contents.
    pub(super) fn read(&mut self, tag: u8) -> Result<&'a [u8], String> {
        let (found, contents) = self.read_any()?;
        if found != tag {
            return Err(format!(
                "unexpected DER element (tag 0x{found:02x}, expected 0x{tag:02x})"
            ));
        }
        Ok(contents)
    }

    /// Reads the next element of any tag.
    pub(super) fn read_any(&mut self) -> Result<(u8, &'a [u8]), String> {
        let truncated = || "truncated DER".to_owned();
        let (&tag, rest) = self.rest.split_first().ok_or_else(truncated)?;
        let (&first, rest) = rest.split_first().ok_or_else(truncated)?;
        let (len, rest) = match first {
            0..=0x7f => (usize::from(first), rest),
            0x81..=0x84 => {
                let n = usize::from(first & 0x7f);
                if rest.len() < n {
                    return Err(truncated());
                }
                let (len_bytes, rest) = rest.split_at(n);
                let len = len_bytes
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                (len, rest)
            }
            _ => return Err("unsupported DER length encoding".to_owned()),
        };
        if rest.len() < len {
            return Err(truncated());
        }
        let (contents, rest) = rest.split_at(len);
        self.rest = rest;
        Ok((tag, contents))
    }
}

/// Encodes one DER element.
pub(super) fn der_tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

/// Encodes a big-endian unsigned integer as a DER INTEGER.
pub(super) fn der_unsigned(big_endian: &[u8]) -> Vec<u8> {
    let skip = big_endian.iter().take_while(|b| **b == 0).count();
    let digits = &big_endian[skip..];
    let mut contents = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|b| b & 0x80 != 0) {
        contents.push(0);
    }
    contents.extend_from_slice(digits);
    der_tlv(INTEGER, &contents)
}

/// Number of significant bits of a big-endian unsigned integer.
pub(super) fn bit_length(big_endian: &[u8]) -> usize {
    let skip = big_endian.iter().take_while(|b| **b == 0).count();
    match big_endian.get(skip) {
        None => 0,
        Some(top) => (big_endian.len() - skip) * 8 - top.leading_zeros() as usize,
    }
}

/// A readable name for an algorithm or curve OID (dotted form when unknown).
pub(super) fn oid_name(oid: &[u8]) -> String {
    if let Some((_, name)) = KNOWN_OIDS.iter().find(|(known, _)| *known == oid) {
        return (*name).to_owned();
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    let dotted: Vec<String> = arcs.iter().map(u64::to_string).collect();
    format!("OID {}", dotted.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        let der: Vec<u8> = (0..=255u8).collect();
        let text = encode_pem("PUBLIC KEY", &der);
        let blocks = parse_pem(&format!("junk before\n{text}junk after\n")).expect("parses");
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].label, "PUBLIC KEY");
        assert_eq!(blocks[0].der, der);
    }

    #[test]
    fn pem_errors_are_specific() {
        let err = parse_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n").expect_err("no end");
        assert_eq!(err, "the PUBLIC KEY section has no END line");
        let err = parse_pem("-----BEGIN A-----\nAAAA\n-----END B-----\n").expect_err("mismatch");
        assert_eq!(err, "'END B' does not close 'BEGIN A'");
    }

    #[test]
    fn der_integer_and_length_encoding() {
        assert_eq!(der_unsigned(&[0x00, 0x7f]), vec![0x02, 0x01, 0x7f]);
        assert_eq!(der_unsigned(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        let long = der_tlv(OCTET_STRING, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let mut reader = DerReader::new(&long);
        assert_eq!(reader.read(OCTET_STRING).expect("reads").len(), 300);
        assert!(reader.is_empty());
        assert_eq!(bit_length(&[0x00, 0x01, 0x00]), 9);
        assert_eq!(oid_name(&[0x2b, 0x81, 0x04, 0x00, 0x22]), "P-384");
        assert_eq!(oid_name(&[0x2a, 0x03]), "OID 1.2.3");
    }
}
