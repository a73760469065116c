//! Tokenizer for the Python subset: indentation, implicit line joining inside brackets,
//! string literals (with prefixes r, b, f, u and triple quotes) and numbers.

use super::PyDiag;

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Name(String),
    Int(i64),
    Float(f64),
    /// A plain string literal, escapes already processed.
    Str(String),
    /// An f-string: the raw text between the quotes and whether it is also raw (`rf""`).
    FStr(String, bool),
    Op(&'static str),
    Newline,
    Indent,
    Dedent,
    Eof,
}

#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    pub line: u32,
}

const OPS: &[&str] = &[
    "**=", "//=", ">>=", "<<=", "...", "->", ":=", "==", "!=", "<=", ">=", "**", "//", "<<", ">>",
    "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@=", "+", "-", "*", "/", "%", "@", "<", ">",
    "=", ".", ",", ":", ";", "(", ")", "[", "]", "{", "}", "&", "|", "^", "~",
];

fn err(line: u32, message: impl Into<String>) -> PyDiag {
    PyDiag {
        line,
        message: message.into(),
    }
}

pub fn tokenize(src: &str) -> Result<Vec<Token>, PyDiag> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut indents: Vec<usize> = vec![0];
    let mut depth = 0usize;
    let mut line: u32 = 1;
    let mut i = 0usize;
    let mut at_line_start = true;
    while i < chars.len() {
        if at_line_start && depth == 0 {
            // Measure the indentation; blank and comment-only lines do not count.
            let mut col = 0usize;
            let mut j = i;
            while j < chars.len() && (chars[j] == ' ' || chars[j] == '\t') {
                col += if chars[j] == '\t' { 8 - col % 8 } else { 1 };
                j += 1;
            }
            if j >= chars.len() {
                break;
            }
            if chars[j] == '\n' || chars[j] == '#' || chars[j] == '\r' {
                while j < chars.len() && chars[j] != '\n' {
                    j += 1;
                }
                i = j + 1;
                line += 1;
                continue;
            }
            if chars[j] == '\\' && chars.get(j + 1) == Some(&'\n') {
                i = j + 2;
                line += 1;
                continue;
            }
            let current = *indents.last().unwrap_or(&0);
            if col > current {
                indents.push(col);
                out.push(Token {
                    tok: Tok::Indent,
                    line,
                });
            } else {
                while col < *indents.last().unwrap_or(&0) {
                    indents.pop();
                    out.push(Token {
                        tok: Tok::Dedent,
                        line,
                    });
                }
                if col != *indents.last().unwrap_or(&0) {
                    return Err(err(line, "syntax error: inconsistent dedent"));
                }
            }
            i = j;
            at_line_start = false;
        }
        let c = chars[i];
        if c == '\n' {
            if depth == 0 {
                out.push(Token {
                    tok: Tok::Newline,
                    line,
                });
                at_line_start = true;
            }
            line += 1;
            i += 1;
            continue;
        }
        if c == ' ' || c == '\t' || c == '\r' || c == '\x0c' {
            i += 1;
            continue;
        }
        if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '\\' && chars.get(i + 1) == Some(&'\n') {
            i += 2;
            line += 1;
            continue;
        }
        let start_line = line;
        // String literals, possibly prefixed.
        if c.is_alphabetic() || c == '_' {
            let mut j = i;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            let word: String = chars[i..j].iter().collect();
            let lower = word.to_ascii_lowercase();
            let is_prefix = matches!(
                lower.as_str(),
                "r" | "u" | "f" | "b" | "rb" | "br" | "fr" | "rf"
            );
            if is_prefix && j < chars.len() && (chars[j] == '"' || chars[j] == '\'') {
                if lower.contains('b') {
                    return Err(err(line, "unsupported: bytes literal"));
                }
                let raw = lower.contains('r');
                let (text, next, lines) = read_string(&chars, j, line)?;
                line += lines;
                i = next;
                let tok = if lower.contains('f') {
                    Tok::FStr(text, raw)
                } else if raw {
                    Tok::Str(text)
                } else {
                    Tok::Str(unescape(&text, start_line)?)
                };
                out.push(Token {
                    tok,
                    line: start_line,
                });
                continue;
            }
            out.push(Token {
                tok: Tok::Name(word),
                line,
            });
            i = j;
            continue;
        }
        if c == '"' || c == '\'' {
            let (text, next, lines) = read_string(&chars, i, line)?;
            line += lines;
            i = next;
            out.push(Token {
                tok: Tok::Str(unescape(&text, start_line)?),
                line: start_line,
            });
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let (tok, next) = read_number(&chars, i, line)?;
            out.push(Token { tok, line });
            i = next;
            continue;
        }
        let mut matched = None;
        for op in OPS {
            let len = op.len();
            if i + len <= chars.len() && chars[i..i + len].iter().copied().eq(op.chars()) {
                matched = Some(*op);
                break;
            }
        }
        let Some(op) = matched else {
            return Err(err(
                line,
                format!("syntax error: unexpected character {c:?}"),
            ));
        };
        match op {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => depth = depth.saturating_sub(1),
            _ => {}
        }
        out.push(Token {
            tok: Tok::Op(op),
            line,
        });
        i += op.len();
    }
    if !matches!(out.last().map(|t| &t.tok), Some(Tok::Newline) | None) {
        out.push(Token {
            tok: Tok::Newline,
            line,
        });
    }
    while indents.len() > 1 {
        indents.pop();
        out.push(Token {
            tok: Tok::Dedent,
            line,
        });
    }
    out.push(Token {
        tok: Tok::Eof,
        line,
    });
    Ok(out)
}

/// Reads a quoted literal starting at the quote; returns its raw body (escapes untouched),
/// the index after it and the number of newlines it spans.
fn read_string(chars: &[char], start: usize, line: u32) -> Result<(String, usize, u32), PyDiag> {
    let quote = chars[start];
    let triple = chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote);
    let mut i = start + if triple { 3 } else { 1 };
    let mut body = String::new();
    let mut lines = 0u32;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(err(line, "syntax error: unterminated string literal"));
        };
        if c == '\\'
            && let Some(&next) = chars.get(i + 1)
        {
            if next == '\n' {
                lines += 1;
            }
            body.push(c);
            body.push(next);
            i += 2;
            continue;
        }
        if triple {
            if c == quote && chars.get(i + 1) == Some(&quote) && chars.get(i + 2) == Some(&quote) {
                return Ok((body, i + 3, lines));
            }
        } else if c == quote {
            return Ok((body, i + 1, lines));
        } else if c == '\n' {
            return Err(err(line, "syntax error: unterminated string literal"));
        }
        if c == '\n' {
            lines += 1;
        }
        body.push(c);
        i += 1;
    }
}

/// Processes backslash escapes the way Python does for a non-raw str literal.
pub fn unescape(text: &str, line: u32) -> Result<String, PyDiag> {
    let mut out = String::with_capacity(text.len());
    let mut it = text.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = it.next() else {
            out.push('\\');
            break;
        };
        match e {
            '\n' => {}
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'v' => out.push('\x0b'),
            '0'..='7' => {
                let mut value = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match it.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            it.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(value).unwrap_or('\u{fffd}'));
            }
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let digits: String = (0..n).filter_map(|_| it.next()).collect();
                let value = u32::from_str_radix(&digits, 16)
                    .ok()
                    .filter(|_| digits.len() == n)
                    .and_then(char::from_u32)
                    .ok_or_else(|| err(line, format!("syntax error: bad \\{e} escape")))?;
                out.push(value);
            }
            'N' => return Err(err(line, "unsupported: \\N{...} escape")),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

fn read_number(chars: &[char], start: usize, line: u32) -> Result<(Tok, usize), PyDiag> {
    let mut i = start;
    if chars[i] == '0' && matches!(chars.get(i + 1), Some('x' | 'X' | 'o' | 'O' | 'b' | 'B')) {
        let radix = match chars[i + 1] {
            'x' | 'X' => 16,
            'o' | 'O' => 8,
            _ => 2,
        };
        i += 2;
        let mut digits = String::new();
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
            if chars[i] != '_' {
                digits.push(chars[i]);
            }
            i += 1;
        }
        let value = i64::from_str_radix(&digits, radix)
            .map_err(|_| err(line, "syntax error: bad integer literal"))?;
        return Ok((Tok::Int(value), i));
    }
    let mut text = String::new();
    let mut is_float = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            text.push(c);
        } else if c == '_' {
        } else if c == '.' && !is_float {
            is_float = true;
            text.push(c);
        } else if (c == 'e' || c == 'E')
            && chars
                .get(i + 1)
                .is_some_and(|d| d.is_ascii_digit() || *d == '-' || *d == '+')
        {
            is_float = true;
            text.push('e');
            if chars[i + 1] == '-' || chars[i + 1] == '+' {
                text.push(chars[i + 1]);
                i += 1;
            }
        } else {
            break;
        }
        i += 1;
    }
    if i < chars.len() && (chars[i] == 'j' || chars[i] == 'J') {
        return Err(err(line, "unsupported: complex literal"));
    }
    if is_float {
        let value: f64 = text
            .parse()
            .map_err(|_| err(line, "syntax error: bad float literal"))?;
        Ok((Tok::Float(value), i))
    } else {
        let value: i64 = text
            .parse()
            .map_err(|_| err(line, "unsupported: integer literal beyond 64 bits"))?;
        Ok((Tok::Int(value), i))
    }
}
