//! Plain ticket ids checked against the configured pattern.

use regex::Regex;

use super::config::TicketConfigError;

/// Longest plain value quoted back in a refusal; longer or odd values are described instead.
const MAX_QUOTED: usize = 32;

/// A compiled ticket pattern that must match the whole value.
#[derive(Debug, Clone)]
pub(super) struct PatternRule {
    configured: String,
    regex: Regex,
}

impl PatternRule {
    /// Compiles `pattern`, anchored at both ends so `CHG[0-9]{7}` cannot match inside a longer value.
    pub(super) fn new(pattern: &str) -> Result<Self, TicketConfigError> {
        let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|source| {
            TicketConfigError::InvalidPattern {
                pattern: pattern.to_owned(),
                source: Box::new(source),
            }
        })?;
        Ok(Self {
            configured: pattern.to_owned(),
            regex,
        })
    }

    /// The pattern as configured.
    pub(super) fn as_str(&self) -> &str {
        &self.configured
    }

    /// `Ok` when `value` is a ticket id, otherwise the refusal text.
    pub(super) fn check(&self, value: &str) -> Result<(), String> {
        if self.regex.is_match(value) {
            Ok(())
        } else {
            Err(format!(
                "{} does not match the ticket pattern {}",
                describe(value),
                self.configured
            ))
        }
    }
}

/// Quotes short plain values; anything that might be a secret pasted by mistake is only described.
pub(super) fn describe(value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '#'));
    if value.is_empty() {
        "an empty value".to_owned()
    } else if plain && value.len() <= MAX_QUOTED {
        value.to_owned()
    } else {
        format!("a value of {} characters", value.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_value_must_match() {
        let rule = PatternRule::new("CHG[0-9]{7}").expect("compiles");
        assert!(rule.check("CHG0012345").is_ok());
        assert_eq!(
            rule.check("xCHG0012345").expect_err("prefix"),
            "xCHG0012345 does not match the ticket pattern CHG[0-9]{7}"
        );
        assert!(rule.check("CHG0012345\n").is_err());
        assert_eq!(
            rule.check("").expect_err("empty"),
            "an empty value does not match the ticket pattern CHG[0-9]{7}"
        );
        assert_eq!(
            rule.check("Bearer secret-value").expect_err("odd"),
            "a value of 19 characters does not match the ticket pattern CHG[0-9]{7}"
        );
    }

    #[test]
    fn alternation_is_anchored_as_a_whole() {
        let rule = PatternRule::new("CHG[0-9]{7}|INC[0-9]{7}").expect("compiles");
        assert!(rule.check("INC0000001").is_ok());
        assert!(rule.check("CHG0000001-and-more").is_err());
        assert!(rule.check("more-INC0000001").is_err());
    }
}
