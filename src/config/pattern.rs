//! Schema and table names in table pairs: an exact name, or an anchored regular expression.
//!
//! A name is a regex when it contains any of `*?+|(){}[]$^.\` (the rule `add_table_pair`
//! documents). Regexes use Rust `regex` syntax, anchored at both ends. Both kinds match
//! case-sensitively, as MySQL does on Linux with `lower_case_table_names=0`.

use regex::Regex;

/// The characters that make a name a regex.
const REGEX_CHARACTERS: &[char] = &[
    '*', '?', '+', '|', '(', ')', '{', '}', '[', ']', '$', '^', '.', '\\',
];

/// An exact name or an anchored regex.
#[derive(Debug, Clone)]
pub enum NamePattern {
    Exact(String),
    Regex(Regex),
}

impl NamePattern {
    /// Parses a name as stored in `table_pair`; the error is the regex compiler's message.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.contains(REGEX_CHARACTERS) {
            return Ok(NamePattern::Exact(text.to_owned()));
        }
        let message = |error: regex::Error| {
            error
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .to_owned()
        };
        // Compile the text alone first, so that `a)|(b` cannot escape the anchors.
        Regex::new(text).map_err(message)?;
        Regex::new(&format!("^(?:{text})$"))
            .map(NamePattern::Regex)
            .map_err(message)
    }

    /// Whether `name` is matched.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(exact) => exact == name,
            NamePattern::Regex(regex) => regex.is_match(name),
        }
    }

    /// Whether this is a regex rather than an exact name.
    pub fn is_regex(&self) -> bool {
        matches!(self, NamePattern::Regex(_))
    }

    /// The text as the operator wrote it (without the anchors ottr adds).
    pub fn as_str(&self) -> &str {
        match self {
            NamePattern::Exact(exact) => exact,
            NamePattern::Regex(regex) => {
                let anchored = regex.as_str();
                &anchored[4..anchored.len() - 2]
            }
        }
    }
}

impl PartialEq for NamePattern {
    fn eq(&self, other: &Self) -> bool {
        self.is_regex() == other.is_regex() && self.as_str() == other.as_str()
    }
}

impl Eq for NamePattern {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_match_only_themselves_and_case_matters() {
        let pattern = NamePattern::parse("orders").unwrap();
        assert!(!pattern.is_regex());
        assert!(pattern.matches("orders"));
        assert!(!pattern.matches("Orders"));
        assert!(!pattern.matches("orders2"));
    }

    #[test]
    fn regexes_are_anchored_at_both_ends() {
        let pattern = NamePattern::parse("order_.*").unwrap();
        assert!(pattern.is_regex());
        assert!(pattern.matches("order_2026"));
        assert!(!pattern.matches("old_order_2026"));
        let alternation = NamePattern::parse("a|b").unwrap();
        assert!(alternation.matches("a") && alternation.matches("b"));
        assert!(!alternation.matches("ab"));
        assert_eq!(alternation.as_str(), "a|b");
    }

    #[test]
    fn a_regex_cannot_escape_its_anchors() {
        assert!(NamePattern::parse("a)|(b").is_err());
    }

    #[test]
    fn a_regex_that_does_not_compile_says_why() {
        let error = NamePattern::parse("order_(").unwrap_err();
        assert!(error.contains("unclosed"), "{error}");
    }
}
