//! Sigma string values: wildcards and escapes, and the value transforms of the modifiers
//! (`windash`, `base64`, `base64offset`, the UTF-16 encodings, `expand` placeholders).
//!
//! A value is first parsed into [`Part`]s, which resolves the escapes once:
//! `*` any run, `?` one character, `\*` `\?` `\\` the literal character, and any other `\`
//! a literal backslash. So `\\*` is a backslash then a wildcard, `\\\*` a backslash and a
//! literal star, `\\\\` two backslashes. [`to_str_match`] then picks the cheapest
//! [`StrMatch`]: a value whose only wildcards are `*` at its ends becomes an exact, prefix,
//! suffix or contains test; anything else a glob compiled into an anchored regex.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::ir::{Regex, StrKind, StrMatch};

/// One element of a parsed Sigma string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Lit(char),
    /// `*`: any run of characters, including none.
    Star,
    /// `?`: exactly one character.
    One,
}

/// Upper bound on the variants one written value may expand into (windash positions,
/// placeholder values); beyond it the rule is rejected rather than compiled into a huge OR.
pub const MAX_VARIANTS: usize = 4096;

/// Parses a Sigma string value, resolving wildcards and escapes.
pub fn parse(text: &str) -> Vec<Part> {
    let mut parts = Vec::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => parts.push(Part::Star),
            '?' => parts.push(Part::One),
            '\\' => match chars.peek() {
                Some(&next @ ('*' | '?' | '\\')) => {
                    chars.next();
                    parts.push(Part::Lit(next));
                }
                _ => parts.push(Part::Lit('\\')),
            },
            c => parts.push(Part::Lit(c)),
        }
    }
    parts
}

/// A value taken literally (numbers and booleans written in a rule, base64 output).
pub fn literal(text: &str) -> Vec<Part> {
    text.chars().map(Part::Lit).collect()
}

pub fn has_wildcards(parts: &[Part]) -> bool {
    parts.iter().any(|part| !matches!(part, Part::Lit(_)))
}

/// The literal text of wildcard-free parts.
pub fn plain_text(parts: &[Part]) -> Option<String> {
    parts
        .iter()
        .map(|part| match part {
            Part::Lit(c) => Some(*c),
            Part::Star | Part::One => None,
        })
        .collect()
}

/// Sigma notation of parts, with escapes (for display and error messages).
pub fn display(parts: &[Part]) -> String {
    let mut out = String::with_capacity(parts.len());
    for part in parts {
        match part {
            Part::Star => out.push('*'),
            Part::One => out.push('?'),
            Part::Lit(c @ ('*' | '?' | '\\')) => {
                out.push('\\');
                out.push(*c);
            }
            Part::Lit(c) => out.push(*c),
        }
    }
    out
}

/// Adds `*` at the start (`contains`, `endswith`) and/or end (`contains`, `startswith`)
/// unless one is already there, as pySigma does.
pub fn wrap(mut parts: Vec<Part>, start: bool, end: bool) -> Vec<Part> {
    if start && parts.first() != Some(&Part::Star) {
        parts.insert(0, Part::Star);
    }
    if end && parts.last() != Some(&Part::Star) {
        parts.push(Part::Star);
    }
    parts
}

/// The cheapest string test for a parsed value.
pub fn to_str_match(parts: &[Part], cased: bool) -> Result<StrMatch, regex::Error> {
    let leading = parts.iter().take_while(|p| **p == Part::Star).count();
    let trailing = parts[leading..]
        .iter()
        .rev()
        .take_while(|p| **p == Part::Star)
        .count();
    let middle = &parts[leading..parts.len() - trailing];
    if let Some(text) = plain_text(middle) {
        // A value of stars only (`*`) matches any text: contains "".
        let trailing = if middle.is_empty() { leading } else { trailing };
        let kind = match (leading > 0, trailing > 0) {
            (false, false) => StrKind::Exact,
            (true, false) => StrKind::Suffix,
            (false, true) => StrKind::Prefix,
            (true, true) => StrKind::Contains,
        };
        return Ok(StrMatch::new(kind, &text, cased));
    }
    let mut pattern = String::from(if cased { "(?s)^" } else { "(?si)^" });
    for part in parts {
        match part {
            Part::Lit(c) => {
                let mut buf = [0u8; 4];
                pattern.push_str(&regex::escape(c.encode_utf8(&mut buf)));
            }
            Part::Star => pattern.push_str(".*"),
            Part::One => pattern.push('.'),
        }
    }
    pattern.push('$');
    let compiled = Regex::new(&pattern)?;
    Ok(StrMatch::glob(&display(parts), compiled, cased))
}

/// `windash`: every `-` or `/` that follows a non-word character (or starts the value) and
/// precedes a word character (pySigma's `\B[-/]\b`) becomes each of `-` `/` `–` `—` `―`;
/// the variants are the cartesian product over those positions. `None` when there are more
/// than [`MAX_VARIANTS`].
pub fn windash(parts: &[Part]) -> Option<Vec<Vec<Part>>> {
    const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];
    let is_word = |part: Option<&Part>| matches!(part, Some(Part::Lit(c)) if c.is_alphanumeric() || *c == '_');
    let positions: Vec<usize> = (0..parts.len())
        .filter(|&idx| {
            matches!(parts[idx], Part::Lit('-' | '/'))
                && !is_word(idx.checked_sub(1).and_then(|prev| parts.get(prev)))
                && is_word(parts.get(idx + 1))
        })
        .collect();
    let count = u32::try_from(positions.len())
        .ok()
        .and_then(|n| DASHES.len().checked_pow(n))?;
    if count > MAX_VARIANTS {
        return None;
    }
    let mut variants = vec![parts.to_vec()];
    for &idx in &positions {
        let mut next = Vec::with_capacity(variants.len() * DASHES.len());
        for variant in &variants {
            for dash in DASHES {
                let mut copy = variant.clone();
                copy[idx] = Part::Lit(dash);
                next.push(copy);
            }
        }
        variants = next;
    }
    Some(variants)
}

/// The UTF-16 encodings of `wide`/`utf16le`, `utf16be` and `utf16` (little endian with the
/// byte order mark FF FE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Utf16 {
    Le,
    Be,
    LeBom,
}

pub fn utf16(text: &str, encoding: Utf16) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2 + 2);
    if encoding == Utf16::LeBom {
        out.extend_from_slice(&[0xFF, 0xFE]);
    }
    for unit in text.encode_utf16() {
        match encoding {
            Utf16::Le | Utf16::LeBom => out.extend_from_slice(&unit.to_le_bytes()),
            Utf16::Be => out.extend_from_slice(&unit.to_be_bytes()),
        }
    }
    out
}

pub fn base64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// `base64offset`: the three encodings of `data` at byte offsets 0, 1 and 2 inside a base64
/// stream, with the characters that depend on unknown neighbouring bytes cut off
/// (pySigma `SigmaBase64OffsetModifier`: start offsets 0, 2, 3; end offsets none, -3, -2
/// chosen by `(len + i) % 3`).
pub fn base64_offsets(data: &[u8]) -> Vec<String> {
    const START: [usize; 3] = [0, 2, 3];
    (0..3)
        .map(|shift| {
            let mut padded = vec![b' '; shift];
            padded.extend_from_slice(data);
            let encoded = STANDARD.encode(&padded);
            let cut = match (data.len() + shift) % 3 {
                0 => 0,
                1 => 3,
                _ => 2,
            };
            let end = encoded.len().saturating_sub(cut);
            encoded.get(START[shift]..end).unwrap_or("").to_string()
        })
        .collect()
}

/// Why placeholder expansion failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpandError {
    Unresolved(String),
    TooMany,
}

/// `expand`: replaces each `%name%` (name of word characters) by each of its values from
/// `placeholders`, taking the cartesian product when there are several. `\%` is a literal
/// `%`; other escapes are left for [`parse`]. The values are pasted as Sigma text, so their
/// wildcards work (as pySigma's value-list placeholders do).
pub fn expand(
    text: &str,
    placeholders: &HashMap<String, Vec<String>>,
) -> Result<Vec<String>, ExpandError> {
    let mut variants = vec![String::new()];
    let push_all = |variants: &mut Vec<String>, piece: &str| {
        for variant in variants.iter_mut() {
            variant.push_str(piece);
        }
    };
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        match c {
            '\\' if rest[1..].starts_with('%') => {
                push_all(&mut variants, "%");
                rest = &rest[2..];
            }
            '\\' if rest[1..].starts_with('\\') => {
                push_all(&mut variants, "\\\\");
                rest = &rest[2..];
            }
            '%' => {
                let name_len = rest[1..]
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len() - 1);
                let closes = rest[1 + name_len..].starts_with('%');
                if name_len == 0 || !closes {
                    push_all(&mut variants, "%");
                    rest = &rest[1..];
                    continue;
                }
                let name = &rest[1..1 + name_len];
                let values = match placeholders.get(name) {
                    Some(values) if !values.is_empty() => values,
                    _ => return Err(ExpandError::Unresolved(name.to_string())),
                };
                if variants.len() * values.len() > MAX_VARIANTS {
                    return Err(ExpandError::TooMany);
                }
                variants = variants
                    .iter()
                    .flat_map(|variant| values.iter().map(move |value| format!("{variant}{value}")))
                    .collect();
                rest = &rest[2 + name_len..];
            }
            c => {
                let mut buf = [0u8; 4];
                push_all(&mut variants, c.encode_utf8(&mut buf));
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    Ok(variants)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        let matcher = to_str_match(&parse(text), false).unwrap();
        format!("{matcher}")
    }

    #[test]
    fn escapes() {
        use Part::*;
        assert_eq!(parse(r"a\*b"), vec![Lit('a'), Lit('*'), Lit('b')]);
        assert_eq!(parse(r"a\?"), vec![Lit('a'), Lit('?')]);
        assert_eq!(parse(r"\\*"), vec![Lit('\\'), Star]);
        assert_eq!(parse(r"\\\*"), vec![Lit('\\'), Lit('*')]);
        assert_eq!(parse(r"\\\\"), vec![Lit('\\'), Lit('\\')]);
        assert_eq!(parse(r"C:\Windows"), literal(r"C:\Windows"));
        assert_eq!(parse(r"C:\\Windows"), literal(r"C:\Windows"));
        assert_eq!(parse(r"end\"), literal(r"end\"));
        assert_eq!(parse("a?*"), vec![Lit('a'), One, Star]);
    }

    #[test]
    fn cheapest_kind() {
        assert_eq!(shown("Foo"), r#"eq "foo""#);
        assert_eq!(shown("foo*"), r#"startswith "foo""#);
        assert_eq!(shown("*foo"), r#"endswith "foo""#);
        assert_eq!(shown("*foo*"), r#"contains "foo""#);
        assert_eq!(shown("**foo**"), r#"contains "foo""#);
        assert_eq!(shown("*"), r#"contains """#);
        assert_eq!(shown(r"\*foo"), r#"eq "*foo""#);
        assert_eq!(shown(r"*foo\*"), r#"endswith "foo*""#);
        assert_eq!(shown("f*o"), r#"glob "f*o""#);
        assert_eq!(shown("fo?"), r#"glob "fo?""#);
        assert_eq!(shown(r"C:\\*\\x"), r#"glob "C:\\\\*\\\\x""#);
        assert_eq!(shown(""), r#"eq """#);
    }

    #[test]
    fn globs_are_anchored_and_dotall() {
        let glob = to_str_match(&parse("a*b?"), false).unwrap();
        let regex = glob.glob.unwrap();
        assert!(regex.is_match("A\nxxBc"));
        assert!(!regex.is_match("xab1"));
        assert!(!regex.is_match("ab"));
        let cased = to_str_match(&parse("a*B"), true).unwrap().glob.unwrap();
        assert!(cased.is_match("axB"));
        assert!(!cased.is_match("axb"));
        let literal_dot = to_str_match(&parse("a.*"), false).unwrap();
        assert_eq!(literal_dot.kind, StrKind::Prefix);
        let regex_chars = to_str_match(&parse("(a)*[b]?"), false)
            .unwrap()
            .glob
            .unwrap();
        assert!(regex_chars.is_match("(a)zz[b]!"));
    }

    #[test]
    fn wrapping() {
        assert_eq!(display(&wrap(parse("x"), true, true)), "*x*");
        assert_eq!(display(&wrap(parse("*x"), true, true)), "*x*");
        assert_eq!(display(&wrap(parse("x"), false, true)), "x*");
        assert_eq!(display(&wrap(parse(r"x\*"), false, true)), r"x\**");
    }

    #[test]
    fn windash_variants() {
        let variants: Vec<String> = windash(&parse("-exec bypass"))
            .unwrap()
            .iter()
            .map(|v| display(v))
            .collect();
        assert_eq!(
            variants,
            [
                "-exec bypass",
                "/exec bypass",
                "–exec bypass",
                "—exec bypass",
                "―exec bypass"
            ]
        );
        // Not after a word character, not before a non-word character.
        assert_eq!(windash(&parse("a-b - c")).unwrap().len(), 1);
        assert_eq!(windash(&parse(" -a /b")).unwrap().len(), 25);
        assert!(windash(&parse(" -a -b -c -d -e -f")).is_none());
    }

    #[test]
    fn base64_encodings() {
        assert_eq!(base64(b"http://"), "aHR0cDovLw==");
        // pySigma's documented example for base64offset.
        assert_eq!(
            base64_offsets(b"http://"),
            ["aHR0cDovL", "h0dHA6Ly", "odHRwOi8v"]
        );
        assert_eq!(utf16("ab", Utf16::Le), b"a\0b\0");
        assert_eq!(utf16("ab", Utf16::Be), b"\0a\0b");
        assert_eq!(utf16("a", Utf16::LeBom), b"\xff\xfea\0");
        assert_eq!(base64(&utf16("ping", Utf16::Le)), "cABpAG4AZwA=");
    }

    #[test]
    fn placeholders() {
        let mut map = HashMap::new();
        map.insert("a".to_string(), vec!["1".to_string(), "2".to_string()]);
        map.insert("b".to_string(), vec!["x*".to_string()]);
        assert_eq!(expand("%a%-%b%", &map).unwrap(), ["1-x*", "2-x*"]);
        assert_eq!(expand(r"\%a%", &map).unwrap(), ["%a%"]);
        assert_eq!(expand("100%", &map).unwrap(), ["100%"]);
        assert_eq!(expand("%not closed", &map).unwrap(), ["%not closed"]);
        assert_eq!(expand(r"\\%a%", &map).unwrap(), [r"\\1", r"\\2"]);
        assert_eq!(
            expand("%missing%", &map),
            Err(ExpandError::Unresolved("missing".into()))
        );
    }
}
