//! The Sigma condition language: a small recursive-descent parser and its resolution against
//! the lowered search identifiers.
//!
//! ```text
//! or_expr  := and_expr ("or" and_expr)*
//! and_expr := not_expr ("and" not_expr)*
//! not_expr := "not" not_expr | primary
//! primary  := "(" or_expr ")" | ("1" | "any" | "all") "of" (PATTERN | "them") | IDENT
//! ```
//!
//! Keywords are lower case, as in pySigma. Legacy v1 aggregations (`| count() by x > 5`) and
//! `near` are rejected as unsupported: correlation rules replace them.

use crate::ir::Expr;

/// The deepest nesting of parentheses and `not` accepted. Real conditions nest a few levels;
/// the parser (and everything that walks the expression) recurses once per level, so an
/// absurdly nested condition in a rule file must be refused rather than overflow the stack.
pub const MAX_DEPTH: usize = 64;

/// A parsed condition, before identifiers are resolved.
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    Ident(String),
    /// `1 of P` / `any of P` (`all == false`) or `all of P`; `pattern` may be `them`.
    Of {
        all: bool,
        pattern: String,
    },
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

/// Why a condition was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CondError {
    /// Not a valid condition, or it names identifiers that do not exist.
    Invalid(String),
    /// A construct of the obsolete v1 syntax (aggregations, `near`).
    Unsupported(String),
}

/// Parses one condition string.
pub fn parse(text: &str) -> Result<Cond, CondError> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err(CondError::Invalid("condition is empty".to_string()));
    }
    if tokens
        .iter()
        .any(|token| *token == Token::Word("near".to_string()))
    {
        return Err(CondError::Unsupported(
            "legacy 'near' in condition is not supported; use a temporal correlation rule"
                .to_string(),
        ));
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let cond = parser.or_expr()?;
    match parser.peek() {
        None => Ok(cond),
        Some(token) => Err(CondError::Invalid(format!(
            "unexpected {} in condition",
            token.describe()
        ))),
    }
}

/// Resolves identifiers and `x of` selectors into one expression. `idents` are the search
/// identifiers in definition order with their lowered expressions.
pub fn resolve(cond: &Cond, idents: &[(String, Expr)]) -> Result<Expr, CondError> {
    match cond {
        Cond::Ident(name) => idents
            .iter()
            .find(|(ident, _)| ident == name)
            .map(|(_, expr)| expr.clone())
            .ok_or_else(|| CondError::Invalid(format!("unknown search identifier '{name}'"))),
        Cond::Of { all, pattern } => {
            let selected: Vec<Expr> = idents
                .iter()
                .filter(|(ident, _)| selects(pattern, ident))
                .map(|(_, expr)| expr.clone())
                .collect();
            if selected.is_empty() {
                let quantifier = if *all { "all" } else { "1" };
                return Err(CondError::Invalid(format!(
                    "'{quantifier} of {pattern}' matches no search identifier"
                )));
            }
            Ok(if *all {
                Expr::and(selected)
            } else {
                Expr::or(selected)
            })
        }
        Cond::Not(inner) => Ok(Expr::not(resolve(inner, idents)?)),
        Cond::And(items) => Ok(Expr::and(
            items
                .iter()
                .map(|item| resolve(item, idents))
                .collect::<Result<_, _>>()?,
        )),
        Cond::Or(items) => Ok(Expr::or(
            items
                .iter()
                .map(|item| resolve(item, idents))
                .collect::<Result<_, _>>()?,
        )),
    }
}

/// Whether selector `pattern` picks identifier `ident`. `them` picks every identifier not
/// starting with `_`; a pattern skips `_`-prefixed identifiers unless it starts with `_` itself
/// (pySigma relies on this for filters).
fn selects(pattern: &str, ident: &str) -> bool {
    if pattern == "them" {
        return !ident.starts_with('_');
    }
    if ident.starts_with('_') && !pattern.starts_with('_') {
        return false;
    }
    wildcard_match(pattern.as_bytes(), ident.as_bytes())
}

/// `*` matches any run of characters; everything else matches itself. Whole-name match.
/// Greedy with one backtrack point (the last star), so it runs in O(pattern x text) time
/// whatever the number of stars.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Position of the last star seen, and the text position it currently stands for.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last star swallow one more character and retry from there.
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Open,
    Close,
    Word(String),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Open => "'('".to_string(),
            Token::Close => "')'".to_string(),
            Token::Word(word) => format!("'{word}'"),
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '*')
}

fn tokenize(text: &str) -> Result<Vec<Token>, CondError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => tokens.push(Token::Open),
            ')' => tokens.push(Token::Close),
            '|' => {
                return Err(CondError::Unsupported(
                    "legacy aggregation ('| count() ...') in condition is not supported; \
                     use a correlation rule"
                        .to_string(),
                ));
            }
            c if is_word_char(c) => {
                let mut end = start + c.len_utf8();
                while let Some(&(idx, next)) = chars.peek() {
                    if !is_word_char(next) {
                        break;
                    }
                    end = idx + next.len_utf8();
                    chars.next();
                }
                tokens.push(Token::Word(text[start..end].to_string()));
            }
            other => {
                return Err(CondError::Invalid(format!(
                    "unexpected character '{other}' in condition"
                )));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Parentheses and `not`s open around the current position.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn peek_word(&self, offset: usize) -> Option<&str> {
        match self.tokens.get(self.pos + offset) {
            Some(Token::Word(word)) => Some(word),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn or_expr(&mut self) -> Result<Cond, CondError> {
        let mut items = vec![self.and_expr()?];
        while self.peek_word(0) == Some("or") {
            self.pos += 1;
            items.push(self.and_expr()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Cond::Or(items)
        })
    }

    fn and_expr(&mut self) -> Result<Cond, CondError> {
        let mut items = vec![self.not_expr()?];
        while self.peek_word(0) == Some("and") {
            self.pos += 1;
            items.push(self.not_expr()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Cond::And(items)
        })
    }

    fn not_expr(&mut self) -> Result<Cond, CondError> {
        if self.peek_word(0) == Some("not") {
            self.pos += 1;
            self.enter()?;
            let inner = self.not_expr()?;
            self.depth -= 1;
            return Ok(Cond::Not(Box::new(inner)));
        }
        self.primary()
    }

    /// One more level of nesting, refused beyond [`MAX_DEPTH`].
    fn enter(&mut self) -> Result<(), CondError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(CondError::Invalid(format!(
                "condition nests deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(())
    }

    fn primary(&mut self) -> Result<Cond, CondError> {
        let Some(token) = self.next() else {
            return Err(CondError::Invalid(
                "condition ends where an identifier was expected".to_string(),
            ));
        };
        let word = match token {
            Token::Open => {
                self.enter()?;
                let inner = self.or_expr()?;
                self.depth -= 1;
                return match self.next() {
                    Some(Token::Close) => Ok(inner),
                    Some(other) => Err(CondError::Invalid(format!(
                        "expected ')' but found {}",
                        other.describe()
                    ))),
                    None => Err(CondError::Invalid("missing ')' in condition".to_string())),
                };
            }
            Token::Close => {
                return Err(CondError::Invalid(
                    "unexpected ')' in condition".to_string(),
                ));
            }
            Token::Word(word) => word,
        };
        if self.peek_word(0) == Some("of") {
            let all = match word.as_str() {
                "1" | "any" => false,
                "all" => true,
                other => {
                    return Err(CondError::Invalid(format!(
                        "'{other} of' is not valid; use '1 of', 'any of' or 'all of'"
                    )));
                }
            };
            self.pos += 1;
            return match self.next() {
                Some(Token::Word(pattern))
                    if !matches!(pattern.as_str(), "and" | "or" | "not" | "of") =>
                {
                    Ok(Cond::Of { all, pattern })
                }
                Some(other) => Err(CondError::Invalid(format!(
                    "expected a pattern or 'them' after '{word} of' but found {}",
                    other.describe()
                ))),
                None => Err(CondError::Invalid(format!(
                    "expected a pattern or 'them' after '{word} of'"
                ))),
            };
        }
        match word.as_str() {
            "and" | "or" | "not" | "of" | "them" => Err(CondError::Invalid(format!(
                "unexpected '{word}' in condition"
            ))),
            _ if word.contains('*') => Err(CondError::Invalid(format!(
                "wildcard '{word}' is only allowed after '1 of' or 'all of'"
            ))),
            _ => Ok(Cond::Ident(word)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Predicate;

    fn ident(name: &str) -> Cond {
        Cond::Ident(name.to_string())
    }

    #[test]
    fn precedence_or_and_not() {
        assert_eq!(
            parse("a or b and not c").unwrap(),
            Cond::Or(vec![
                ident("a"),
                Cond::And(vec![ident("b"), Cond::Not(Box::new(ident("c")))])
            ])
        );
        assert_eq!(
            parse("(a or b) and c").unwrap(),
            Cond::And(vec![Cond::Or(vec![ident("a"), ident("b")]), ident("c")])
        );
        assert_eq!(
            parse("not not a").unwrap(),
            Cond::Not(Box::new(Cond::Not(Box::new(ident("a")))))
        );
        assert_eq!(
            parse("a and b and c").unwrap(),
            Cond::And(vec![ident("a"), ident("b"), ident("c")])
        );
    }

    #[test]
    fn selectors() {
        assert_eq!(
            parse("selection and not 1 of filter_*").unwrap(),
            Cond::And(vec![
                ident("selection"),
                Cond::Not(Box::new(Cond::Of {
                    all: false,
                    pattern: "filter_*".into()
                }))
            ])
        );
        assert_eq!(
            parse("all of them").unwrap(),
            Cond::Of {
                all: true,
                pattern: "them".into()
            }
        );
        assert_eq!(
            parse("any of sel*").unwrap(),
            Cond::Of {
                all: false,
                pattern: "sel*".into()
            }
        );
        // An identifier may be called `all` when no `of` follows.
        assert_eq!(parse("all").unwrap(), ident("all"));
    }

    #[test]
    fn errors() {
        let invalid = |text: &str| match parse(text) {
            Err(CondError::Invalid(message)) => message,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(invalid(""), "condition is empty");
        assert_eq!(
            invalid("a and"),
            "condition ends where an identifier was expected"
        );
        assert_eq!(invalid("(a or b"), "missing ')' in condition");
        assert_eq!(invalid("a b"), "unexpected 'b' in condition");
        assert_eq!(invalid("a)"), "unexpected ')' in condition");
        assert_eq!(
            invalid("2 of sel*"),
            "'2 of' is not valid; use '1 of', 'any of' or 'all of'"
        );
        assert_eq!(
            invalid("sel*"),
            "wildcard 'sel*' is only allowed after '1 of' or 'all of'"
        );
        assert_eq!(invalid("a & b"), "unexpected character '&' in condition");
        assert!(matches!(
            parse("selection | count() by src > 5"),
            Err(CondError::Unsupported(_))
        ));
        assert!(matches!(parse("a near b"), Err(CondError::Unsupported(_))));
        assert!(matches!(parse("near b"), Err(CondError::Unsupported(_))));
    }

    /// A condition nested deeper than any real rule is refused, not a stack overflow.
    #[test]
    fn deep_nesting_is_refused() {
        let deep_parens = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
        let deep_nots = "not ".repeat(100_000) + "a";
        for text in [deep_parens, deep_nots] {
            assert_eq!(
                parse(&text),
                Err(CondError::Invalid(format!(
                    "condition nests deeper than {MAX_DEPTH} levels"
                )))
            );
        }
        let ok = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(parse(&ok), Ok(ident("a")));
    }

    fn leaf(name: &str) -> Expr {
        Expr::field(name, Predicate::Exists(true))
    }

    fn idents() -> Vec<(String, Expr)> {
        ["selection_a", "selection_b", "filter", "_hidden"]
            .iter()
            .map(|name| (name.to_string(), leaf(name)))
            .collect()
    }

    #[test]
    fn resolution() {
        let resolved = |text: &str| resolve(&parse(text).unwrap(), &idents());
        assert_eq!(
            resolved("1 of selection_*").unwrap().to_string(),
            "selection_a exists or selection_b exists"
        );
        assert_eq!(
            resolved("all of them").unwrap().to_string(),
            "selection_a exists and selection_b exists and filter exists"
        );
        assert_eq!(
            resolved("1 of *").unwrap().to_string(),
            "selection_a exists or selection_b exists or filter exists"
        );
        assert_eq!(resolved("1 of _*").unwrap().to_string(), "_hidden exists");
        assert_eq!(resolved("_hidden").unwrap().to_string(), "_hidden exists");
        assert_eq!(
            resolved("1 of nothing*").err(),
            Some(CondError::Invalid(
                "'1 of nothing*' matches no search identifier".into()
            ))
        );
        assert_eq!(
            resolved("selection_a and missing").err(),
            Some(CondError::Invalid(
                "unknown search identifier 'missing'".into()
            ))
        );
    }

    #[test]
    fn wildcards_match_whole_names() {
        assert!(wildcard_match(b"sel*", b"selection"));
        assert!(wildcard_match(b"*tion", b"selection"));
        assert!(wildcard_match(b"s*l*n", b"selection"));
        assert!(!wildcard_match(b"sel", b"selection"));
        assert!(!wildcard_match(b"*x*", b"selection"));
        assert!(wildcard_match(b"*", b""));
        assert!(wildcard_match(b"a**", b"a"));
        assert!(wildcard_match(b"*_*_x", b"a_b_c_x"));
        assert!(!wildcard_match(b"*_*_x", b"a_b_c_y"));
    }

    /// Many stars against a long name must not backtrack exponentially (this took hours).
    #[test]
    fn many_wildcards_stay_fast() {
        let pattern = "*a".repeat(14) + "*b";
        let name = "a".repeat(60);
        let started = std::time::Instant::now();
        assert!(!wildcard_match(pattern.as_bytes(), name.as_bytes()));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
