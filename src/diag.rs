//! Diagnostics: what a loader says about a rule it could not take (or took with a caveat).
//!
//! Loading never fails as a whole. Each loader returns the rules it could lower plus a list of
//! [`Diagnostic`]s; the CLI prints them, `vigil check` summarises them, and `--strict` turns any
//! error into a fatal exit. Codes are stable: never reuse a code that shipped.

use std::fmt;

use crate::ir::SourceLoc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Warning,
    Error,
}

/// Stable diagnostic codes. Add new ones at the end; never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The file could not be read.
    Io = 1,
    /// The file is not valid YAML/TOML.
    Syntax = 2,
    /// A required key is missing or has the wrong type.
    Schema = 3,
    /// The rule uses a construct vigil cannot evaluate exactly; it is skipped, never approximated.
    Unsupported = 4,
    /// A modifier is unknown or used in an invalid combination.
    Modifier = 5,
    /// The condition does not parse or names an unknown identifier.
    Condition = 6,
    /// A correlation references a rule that is not loaded.
    UnknownReference = 7,
    /// An `expand` placeholder has no value in the placeholders file.
    Placeholder = 8,
    /// Two rules share an id; the later one is skipped.
    DuplicateId = 9,
    /// A regular expression does not compile.
    Regex = 10,
    /// A value is invalid for its modifier (bad CIDR, non-numeric gt/lt, ...).
    Value = 11,
    /// A filter document could not be applied.
    Filter = 12,
    /// The rule loaded but something about it deserves attention (deprecated syntax...).
    Note = 13,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Io => "io",
            Code::Syntax => "syntax",
            Code::Schema => "schema",
            Code::Unsupported => "unsupported",
            Code::Modifier => "modifier",
            Code::Condition => "condition",
            Code::UnknownReference => "unknown-reference",
            Code::Placeholder => "placeholder",
            Code::DuplicateId => "duplicate-id",
            Code::Regex => "regex",
            Code::Value => "value",
            Code::Filter => "filter",
            Code::Note => "note",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub level: Level,
    pub code: Code,
    pub source: SourceLoc,
    /// The rule's id (or title) when the problem is inside one rule.
    pub rule: Option<String>,
    /// Lowercase, no trailing period.
    pub message: String,
}

impl Diagnostic {
    pub fn error(code: Code, source: SourceLoc, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            level: Level::Error,
            code,
            source,
            rule: None,
            message: message.into(),
        }
    }

    pub fn warning(code: Code, source: SourceLoc, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            level: Level::Warning,
            ..Diagnostic::error(code, source, message)
        }
    }

    pub fn with_rule(mut self, rule: impl Into<String>) -> Diagnostic {
        self.rule = Some(rule.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

/// `path:line: error[unsupported] rule 1234: reason`
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Warning => "warning",
            Level::Error => "error",
        };
        write!(f, "{}: {level}[{}]", self.source, self.code.as_str())?;
        if let Some(rule) = &self.rule {
            write!(f, " rule {rule}")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_rule_reason() {
        let diag = Diagnostic::error(
            Code::Modifier,
            SourceLoc {
                path: "rules/x.yml".into(),
                line: Some(12),
            },
            "unknown modifier 'contain'",
        )
        .with_rule("5f3c");
        assert_eq!(
            diag.to_string(),
            "rules/x.yml:12: error[modifier] rule 5f3c: unknown modifier 'contain'"
        );
    }
}
