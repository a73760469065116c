//! Sigma value modifiers (`field|contains|all`): their names and the combinations allowed.
//!
//! Every modifier of the v2.1 appendix is known here, plus pySigma's spellings of the regex
//! flags (`ignorecase`, `multiline`, `dotall`) and `wide` for `utf16le`. An unknown modifier
//! or an illegal combination rejects the rule: a modifier is never ignored.

use crate::ir::{CmpOp, DatePart};

use super::strings::Utf16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mod {
    Contains,
    StartsWith,
    EndsWith,
    All,
    Exists,
    Cased,
    Neq,
    Windash,
    Re,
    ReIgnoreCase,
    ReMultiline,
    ReDotAll,
    Base64,
    Base64Offset,
    Utf16(Utf16),
    Cmp(CmpOp),
    Date(DatePart),
    Cidr,
    Expand,
    FieldRef,
}

/// A modifier with the spelling the rule used, for messages.
#[derive(Clone, Copy, Debug)]
pub struct Written<'a> {
    pub modifier: Mod,
    pub name: &'a str,
}

pub fn parse(name: &str) -> Option<Mod> {
    Some(match name {
        "contains" => Mod::Contains,
        "startswith" => Mod::StartsWith,
        "endswith" => Mod::EndsWith,
        "all" => Mod::All,
        "exists" => Mod::Exists,
        "cased" => Mod::Cased,
        "neq" => Mod::Neq,
        "windash" => Mod::Windash,
        "re" => Mod::Re,
        "i" | "ignorecase" => Mod::ReIgnoreCase,
        "m" | "multiline" => Mod::ReMultiline,
        "s" | "dotall" => Mod::ReDotAll,
        "base64" => Mod::Base64,
        "base64offset" => Mod::Base64Offset,
        "utf16le" | "wide" => Mod::Utf16(Utf16::Le),
        "utf16be" => Mod::Utf16(Utf16::Be),
        "utf16" => Mod::Utf16(Utf16::LeBom),
        "lt" => Mod::Cmp(CmpOp::Lt),
        "lte" => Mod::Cmp(CmpOp::Lte),
        "gt" => Mod::Cmp(CmpOp::Gt),
        "gte" => Mod::Cmp(CmpOp::Gte),
        "minute" => Mod::Date(DatePart::Minute),
        "hour" => Mod::Date(DatePart::Hour),
        "day" => Mod::Date(DatePart::Day),
        "week" => Mod::Date(DatePart::Week),
        "month" => Mod::Date(DatePart::Month),
        "year" => Mod::Date(DatePart::Year),
        "cidr" => Mod::Cidr,
        "expand" => Mod::Expand,
        "fieldref" => Mod::FieldRef,
        _ => return None,
    })
}

/// How the values of a field item are interpreted, decided by its modifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Terminal {
    /// Sigma strings, through the transforms in written order.
    Strings,
    Exists,
    Regex,
    Cidr,
    /// `gt`/`lt`... and/or a date part; `cmp` defaults to equality for a date part.
    Compare {
        cmp: Option<CmpOp>,
        date: Option<DatePart>,
    },
    FieldRef,
}

/// Checks a field item's modifiers and says how its values are read. `keyword` is true for
/// a keyword item (`'|all':`), which takes only `all` and `cased`.
pub fn check(mods: &[Written<'_>], keyword: bool) -> Result<Terminal, String> {
    for (idx, written) in mods.iter().enumerate() {
        if let Some(earlier) = mods[..idx]
            .iter()
            .find(|earlier| conflicts(earlier.modifier, written.modifier))
        {
            return Err(if earlier.modifier == written.modifier {
                format!("modifier '{}' is repeated", written.name)
            } else {
                format!(
                    "modifiers '{}' and '{}' cannot be combined",
                    earlier.name, written.name
                )
            });
        }
    }
    let find = |wanted: fn(Mod) -> bool| mods.iter().find(|w| wanted(w.modifier));
    if keyword {
        if let Some(bad) = mods
            .iter()
            .find(|w| !matches!(w.modifier, Mod::All | Mod::Cased))
        {
            return Err(format!(
                "modifier '{}' cannot be used on keywords (only 'all' and 'cased')",
                bad.name
            ));
        }
        return Ok(Terminal::Strings);
    }
    for flag in mods.iter().filter(|w| {
        matches!(
            w.modifier,
            Mod::ReIgnoreCase | Mod::ReMultiline | Mod::ReDotAll
        )
    }) {
        if find(|m| m == Mod::Re).is_none() {
            return Err(format!("modifier '{}' needs 're'", flag.name));
        }
    }
    // The modifier that decides how values are read, and what may go with it.
    let terminal = find(|m| {
        matches!(
            m,
            Mod::Exists | Mod::Re | Mod::Cidr | Mod::Cmp(_) | Mod::Date(_) | Mod::FieldRef
        )
    });
    let (terminal, allowed): (Terminal, fn(Mod) -> bool) = match terminal.map(|w| w.modifier) {
        None => (Terminal::Strings, |m| {
            !matches!(m, Mod::ReIgnoreCase | Mod::ReMultiline | Mod::ReDotAll)
        }),
        Some(Mod::Exists) => (Terminal::Exists, |m| m == Mod::Exists),
        Some(Mod::Re) => (Terminal::Regex, |m| {
            matches!(
                m,
                Mod::Re
                    | Mod::ReIgnoreCase
                    | Mod::ReMultiline
                    | Mod::ReDotAll
                    | Mod::All
                    | Mod::Neq
            )
        }),
        Some(Mod::Cidr) => (Terminal::Cidr, |m| {
            matches!(m, Mod::Cidr | Mod::All | Mod::Neq | Mod::Expand)
        }),
        Some(Mod::Cmp(_) | Mod::Date(_)) => {
            let cmp = mods.iter().find_map(|w| match w.modifier {
                Mod::Cmp(op) => Some(op),
                _ => None,
            });
            let date = mods.iter().find_map(|w| match w.modifier {
                Mod::Date(part) => Some(part),
                _ => None,
            });
            (Terminal::Compare { cmp, date }, |m| {
                matches!(m, Mod::Cmp(_) | Mod::Date(_) | Mod::All | Mod::Neq)
            })
        }
        Some(_) => (Terminal::FieldRef, |m| {
            matches!(
                m,
                Mod::FieldRef
                    | Mod::Contains
                    | Mod::StartsWith
                    | Mod::EndsWith
                    | Mod::Cased
                    | Mod::All
                    | Mod::Neq
            )
        }),
    };
    if let Some(bad) = mods.iter().find(|w| !allowed(w.modifier)) {
        let owner = mods
            .iter()
            .find(|w| w.modifier != bad.modifier && allowed(w.modifier) && is_terminal(w.modifier))
            .map(|w| w.name);
        return Err(match (terminal, owner) {
            (Terminal::Exists, _) => "modifier 'exists' must stand alone".to_string(),
            (_, Some(owner)) => {
                format!("modifiers '{owner}' and '{}' cannot be combined", bad.name)
            }
            (_, None) => format!("modifier '{}' is not allowed here", bad.name),
        });
    }
    // An encoding turns text into bytes; only base64 turns them back into text.
    for (idx, written) in mods.iter().enumerate() {
        if let Mod::Utf16(_) = written.modifier {
            let encoded_later = mods[idx + 1..]
                .iter()
                .any(|w| matches!(w.modifier, Mod::Base64 | Mod::Base64Offset));
            if !encoded_later {
                return Err(format!(
                    "modifier '{}' must be followed by 'base64' or 'base64offset'",
                    written.name
                ));
            }
        }
    }
    Ok(terminal)
}

/// Two modifiers of the same kind (a repeat, two match types, two encodings...).
fn conflicts(a: Mod, b: Mod) -> bool {
    a == b
        || matches!(
            (a, b),
            (Mod::Utf16(_), Mod::Utf16(_))
                | (Mod::Cmp(_), Mod::Cmp(_))
                | (Mod::Date(_), Mod::Date(_))
                | (Mod::Base64, Mod::Base64Offset)
                | (Mod::Base64Offset, Mod::Base64)
                | (
                    Mod::Contains | Mod::StartsWith | Mod::EndsWith,
                    Mod::Contains | Mod::StartsWith | Mod::EndsWith
                )
        )
}

fn is_terminal(modifier: Mod) -> bool {
    matches!(
        modifier,
        Mod::Exists | Mod::Re | Mod::Cidr | Mod::Cmp(_) | Mod::Date(_) | Mod::FieldRef
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(text: &str) -> Result<Terminal, String> {
        let names: Vec<&str> = text.split('|').collect();
        let mut mods = Vec::new();
        for name in names {
            let modifier = parse(name).ok_or_else(|| format!("unknown '{name}'"))?;
            mods.push(Written { modifier, name });
        }
        check(&mods, false)
    }

    #[test]
    fn every_modifier_has_a_name() {
        for name in [
            "contains",
            "startswith",
            "endswith",
            "all",
            "exists",
            "cased",
            "neq",
            "windash",
            "re",
            "i",
            "m",
            "s",
            "ignorecase",
            "multiline",
            "dotall",
            "base64",
            "base64offset",
            "utf16le",
            "wide",
            "utf16be",
            "utf16",
            "lt",
            "lte",
            "gt",
            "gte",
            "minute",
            "hour",
            "day",
            "week",
            "month",
            "year",
            "cidr",
            "expand",
            "fieldref",
        ] {
            assert!(parse(name).is_some(), "{name}");
        }
        assert_eq!(parse("contain"), None);
        assert_eq!(parse("Contains"), None);
    }

    #[test]
    fn legal_combinations() {
        assert_eq!(checked("contains|all"), Ok(Terminal::Strings));
        assert_eq!(checked("base64offset|contains"), Ok(Terminal::Strings));
        assert_eq!(checked("wide|base64offset|contains"), Ok(Terminal::Strings));
        assert_eq!(checked("windash|contains|cased"), Ok(Terminal::Strings));
        assert_eq!(checked("re|i|m|s"), Ok(Terminal::Regex));
        assert_eq!(checked("cidr|neq"), Ok(Terminal::Cidr));
        assert_eq!(
            checked("hour|gte"),
            Ok(Terminal::Compare {
                cmp: Some(CmpOp::Gte),
                date: Some(DatePart::Hour)
            })
        );
        assert_eq!(checked("fieldref|endswith|cased"), Ok(Terminal::FieldRef));
        assert_eq!(checked("exists"), Ok(Terminal::Exists));
        assert_eq!(checked("contains|expand"), Ok(Terminal::Strings));
    }

    #[test]
    fn illegal_combinations() {
        assert_eq!(
            checked("contains|startswith"),
            Err("modifiers 'contains' and 'startswith' cannot be combined".into())
        );
        assert_eq!(
            checked("contains|contains"),
            Err("modifier 'contains' is repeated".into())
        );
        assert_eq!(checked("i"), Err("modifier 'i' needs 're'".into()));
        assert_eq!(
            checked("re|contains"),
            Err("modifiers 're' and 'contains' cannot be combined".into())
        );
        assert_eq!(
            checked("exists|neq"),
            Err("modifier 'exists' must stand alone".into())
        );
        assert_eq!(
            checked("wide|contains"),
            Err("modifier 'wide' must be followed by 'base64' or 'base64offset'".into())
        );
        assert_eq!(
            checked("base64|base64offset"),
            Err("modifiers 'base64' and 'base64offset' cannot be combined".into())
        );
        assert_eq!(
            checked("gt|lt"),
            Err("modifiers 'gt' and 'lt' cannot be combined".into())
        );
        assert_eq!(
            checked("cidr|contains"),
            Err("modifiers 'cidr' and 'contains' cannot be combined".into())
        );
        assert_eq!(
            checked("re|cidr"),
            Err("modifiers 're' and 'cidr' cannot be combined".into())
        );
        assert_eq!(
            checked("fieldref|expand"),
            Err("modifiers 'fieldref' and 'expand' cannot be combined".into())
        );
        assert_eq!(
            checked("gt|cased"),
            Err("modifiers 'gt' and 'cased' cannot be combined".into())
        );
    }

    #[test]
    fn keywords_take_all_and_cased() {
        let all = [Written {
            modifier: Mod::All,
            name: "all",
        }];
        assert_eq!(check(&all, true), Ok(Terminal::Strings));
        let contains = [Written {
            modifier: Mod::Contains,
            name: "contains",
        }];
        assert_eq!(
            check(&contains, true),
            Err("modifier 'contains' cannot be used on keywords (only 'all' and 'cased')".into())
        );
    }
}
