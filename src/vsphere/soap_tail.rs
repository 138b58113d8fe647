//! Checks the streamed rest of an unguarded SOAP request after its head.
//!
//! The sniffer names a call from the first element in `Body` and its `_this`;
//! the rest is streamed to vCenter unread. Without this guard a client could
//! send an unguarded method first and a guarded one as a second element in
//! `Body` (or in a second `Body`), or a second `_this`. The guard follows the
//! element nesting byte by byte (tags, comments, CDATA, quoted attribute values)
//! and fails as soon as anything appears after the method element other than
//! whitespace, comments and the closing tags. It is not a full XML parser:
//! vCenter still rejects malformed XML; the guard only makes sure that nothing
//! well-formed can follow the method the gateway classified.
//!
//! Use: feed every chunk before forwarding it; on `Err`, do not forward that
//! chunk and abort the upstream request, so vCenter never sees a complete body.
//! Call [`SoapTailGuard::finish`] at the end of the stream.

use super::soap::SoapError;

const NAME_KEEP: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Text,
    /// After `<`.
    Open,
    /// Reading a start tag's name.
    StartName,
    /// Inside a start tag after its name; `quote` is the open quote, if any.
    StartTag {
        quote: Option<u8>,
        slash: bool,
    },
    /// Inside an end tag.
    EndTag,
    /// After `<!`: `seen` bytes of `--` or `[CDATA[` matched so far.
    Bang {
        seen: usize,
        cdata: bool,
    },
    /// Inside a comment; `dashes` consecutive `-` just seen.
    Comment {
        dashes: u8,
    },
    /// Inside CDATA; `brackets` consecutive `]` just seen.
    CData {
        brackets: u8,
    },
}

/// Incremental structure check of the bytes after an identified SOAP head.
#[derive(Debug, Clone)]
pub struct SoapTailGuard {
    depth: u32,
    lex: Lex,
    name: Vec<u8>,
    failed: Option<&'static str>,
}

/// Nesting levels: 1 = inside `Envelope`, 2 = inside `Body`, 3 = inside the method element.
const IN_BODY: u32 = 2;
const IN_METHOD: u32 = 3;

impl SoapTailGuard {
    /// A guard starting at nesting `depth` (3: after `</_this>`; 2: after the method element).
    pub fn new(depth: u32) -> Self {
        Self {
            depth,
            lex: Lex::Text,
            name: Vec::new(),
            failed: None,
        }
    }

    /// Checks the next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), SoapError> {
        if let Some(reason) = self.failed {
            return Err(SoapError::Tail(reason));
        }
        for &b in chunk {
            if let Err(reason) = self.step(b) {
                self.failed = Some(reason);
                return Err(SoapError::Tail(reason));
            }
        }
        Ok(())
    }

    /// The stream ended: the envelope must be closed.
    pub fn finish(&self) -> Result<(), SoapError> {
        if let Some(reason) = self.failed {
            return Err(SoapError::Tail(reason));
        }
        if self.depth != 0 || self.lex != Lex::Text {
            return Err(SoapError::Truncated);
        }
        Ok(())
    }

    fn step(&mut self, b: u8) -> Result<(), &'static str> {
        self.lex = match self.lex {
            Lex::Text => match b {
                b'<' => Lex::Open,
                b' ' | b'\t' | b'\r' | b'\n' => Lex::Text,
                _ if self.depth >= IN_METHOD => Lex::Text,
                _ => return Err("text after the method element"),
            },
            Lex::Open => match b {
                b'/' => Lex::EndTag,
                b'!' => Lex::Bang {
                    seen: 0,
                    cdata: false,
                },
                b'?' => return Err("processing instruction"),
                _ => {
                    self.name.clear();
                    self.name.push(b);
                    Lex::StartName
                }
            },
            Lex::StartName => match b {
                b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>' => {
                    self.check_start()?;
                    return self.step_start_tag(None, false, b);
                }
                _ => {
                    if self.name.len() < NAME_KEEP {
                        self.name.push(b);
                    }
                    Lex::StartName
                }
            },
            Lex::StartTag { quote, slash } => return self.step_start_tag(quote, slash, b),
            Lex::EndTag => match b {
                b'>' => {
                    self.depth = self
                        .depth
                        .checked_sub(1)
                        .ok_or("end tag after the Envelope")?;
                    Lex::Text
                }
                _ => Lex::EndTag,
            },
            Lex::Bang { seen, cdata } => {
                const CDATA: &[u8] = b"[CDATA[";
                match (seen, cdata, b) {
                    (0, _, b'-') => Lex::Bang {
                        seen: 1,
                        cdata: false,
                    },
                    (1, false, b'-') => Lex::Comment { dashes: 0 },
                    (0, _, b'[') => Lex::Bang {
                        seen: 1,
                        cdata: true,
                    },
                    (n, true, _) if CDATA.get(n) == Some(&b) => {
                        if n + 1 == CDATA.len() {
                            if self.depth < IN_METHOD {
                                return Err("CDATA after the method element");
                            }
                            Lex::CData { brackets: 0 }
                        } else {
                            Lex::Bang {
                                seen: n + 1,
                                cdata: true,
                            }
                        }
                    }
                    _ => return Err("DOCTYPE or unknown markup"),
                }
            }
            Lex::Comment { dashes } => match (b, dashes) {
                (b'-', d) => Lex::Comment {
                    dashes: d.saturating_add(1),
                },
                (b'>', d) if d >= 2 => Lex::Text,
                _ => Lex::Comment { dashes: 0 },
            },
            Lex::CData { brackets } => match (b, brackets) {
                (b']', n) => Lex::CData {
                    brackets: n.saturating_add(1),
                },
                (b'>', n) if n >= 2 => Lex::Text,
                _ => Lex::CData { brackets: 0 },
            },
        };
        Ok(())
    }

    fn step_start_tag(
        &mut self,
        quote: Option<u8>,
        slash: bool,
        b: u8,
    ) -> Result<(), &'static str> {
        self.lex = match (quote, b) {
            (Some(q), _) if b == q => Lex::StartTag {
                quote: None,
                slash: false,
            },
            (Some(q), _) => Lex::StartTag {
                quote: Some(q),
                slash: false,
            },
            (None, b'"' | b'\'') => Lex::StartTag {
                quote: Some(b),
                slash: false,
            },
            (None, b'>') => {
                if !slash {
                    self.depth = self.depth.saturating_add(1);
                }
                Lex::Text
            }
            (None, b'/') => Lex::StartTag {
                quote: None,
                slash: true,
            },
            (None, _) => Lex::StartTag {
                quote: None,
                slash: false,
            },
        };
        Ok(())
    }

    /// Rules for a start tag at the current depth, once its name is read.
    fn check_start(&self) -> Result<(), &'static str> {
        let local = self
            .name
            .rsplit(|&c| c == b':')
            .next()
            .unwrap_or(&self.name);
        match self.depth {
            IN_METHOD if local == b"_this" => Err("a second _this"),
            d if d >= IN_METHOD => Ok(()),
            IN_BODY => Err("a second element in the SOAP Body"),
            1 => Err("an element after the SOAP Body"),
            _ => Err("an element after the SOAP Envelope"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(depth: u32, rest: &str) -> Result<(), SoapError> {
        let mut guard = SoapTailGuard::new(depth);
        guard.feed(rest.as_bytes())?;
        guard.finish()
    }

    #[test]
    fn ordinary_rest_passes() {
        assert_eq!(
            run(
                3,
                "<userName versionId=\"9.1.1.0\">a&lt;b</userName><password>x&gt;y</password></Login></soapenv:Body>\n</soapenv:Envelope>\n"
            ),
            Ok(())
        );
        assert_eq!(run(2, "</soapenv:Body></soapenv:Envelope>"), Ok(()));
        assert_eq!(
            run(
                3,
                "<a x='>' y=\"/>\"/><![CDATA[</Login><b>]]><!-- </Body><x> --></M> <!-- c --></Body></Envelope><!-- end -->"
            ),
            Ok(())
        );
        assert_eq!(run(3, "<p:_thisNot/></M></B></E>"), Ok(()));
    }

    #[test]
    fn smuggled_content_fails() {
        for rest in [
            "</Login><ChangeLockdownMode/></Body></Envelope>",
            "</Login></Body><Body><ChangeLockdownMode/></Body></Envelope>",
            "</Login></Body></Envelope><Envelope/>",
            "<_this type=\"HostSystem\">host-2</_this></M></B></E>",
            "<vim:_this type=\"HostSystem\">host-2</vim:_this></M></B></E>",
            "</Login>x</Body></Envelope>",
            "</Login>&amp;</Body></Envelope>",
            "</Login><![CDATA[x]]></Body></Envelope>",
            "</Login><?pi?></Body></Envelope>",
            "<!DOCTYPE x></M></B></E>",
            "</M></B></E></X>",
        ] {
            assert!(run(3, rest).is_err(), "{rest}");
        }
        assert_eq!(run(3, "</M></B>"), Err(SoapError::Truncated));
        assert_eq!(run(3, "</M></B></E><!-- open"), Err(SoapError::Truncated));
    }

    #[test]
    fn any_chunking_gives_the_same_verdict() {
        let rest = b"<a x='>'/><![CDATA[]]]]><!-- -- -->text</M></B></E>";
        let bad = b"<a x='>'/></M><Second/></B></E>";
        for (input, ok) in [(&rest[..], true), (&bad[..], false)] {
            for cut in 0..=input.len() {
                let mut guard = SoapTailGuard::new(3);
                let result = guard
                    .feed(&input[..cut])
                    .and_then(|()| guard.feed(&input[cut..]))
                    .and_then(|()| guard.finish());
                assert_eq!(result.is_ok(), ok, "cut at {cut}");
            }
        }
    }
}
