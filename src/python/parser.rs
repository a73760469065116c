//! Recursive-descent parser for the Python subset, producing [`super::ast`]. Anything outside
//! the subset (classes, `with`, decorators, `async`, `yield`, ...) is a diagnostic naming the
//! construct and its line.

use std::sync::Arc;

use super::PyDiag;
use super::ast::*;
use super::lexer::{Tok, Token, tokenize};

/// The largest module source accepted (the largest Panther module of the corpus is 35 KB).
pub const MAX_SOURCE_BYTES: usize = 1 << 20;

/// The most tokens in one module: the AST has at most about one node per token, so this
/// bounds the AST's size (and the work of every pass over it) whatever the source's shape.
pub const MAX_TOKENS: usize = 200_000;

pub fn parse_module(src: &str) -> Result<Vec<Stmt>, PyDiag> {
    if src.len() > MAX_SOURCE_BYTES {
        return Err(PyDiag {
            line: 1,
            message: format!("unsupported: module larger than {MAX_SOURCE_BYTES} bytes"),
        });
    }
    let tokens = tokenize(src)?;
    if tokens.len() > MAX_TOKENS {
        return Err(PyDiag {
            line: tokens.get(MAX_TOKENS).map_or(1, |t| t.line),
            message: format!("unsupported: module of more than {MAX_TOKENS} tokens"),
        });
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let mut body = Vec::new();
    while !p.at_eof() {
        if p.eat_tok(&Tok::Newline) {
            continue;
        }
        body.extend(p.statement()?);
    }
    Ok(body)
}

/// Parses one expression from text (an f-string replacement field).
fn parse_expr_text(src: &str, line: u32) -> Result<Expr, PyDiag> {
    let mut tokens = tokenize(&format!("({src})")).map_err(|d| PyDiag {
        line,
        message: d.message,
    })?;
    for t in &mut tokens {
        t.line = line;
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let e = p.test_list_star()?;
    p.eat_tok(&Tok::Newline);
    if !p.at_eof() {
        return Err(p.error("syntax error in f-string expression"));
    }
    Ok(e)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Current nesting of expressions and blocks: rule source is untrusted, and a parser that
    /// recursed without bound could exhaust the stack.
    depth: usize,
}

/// Deepest nesting of expressions and blocks the parser accepts.
const MAX_NESTING: usize = 100;

const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].tok
    }
    fn peek_at(&self, n: usize) -> &Tok {
        &self.tokens[(self.pos + n).min(self.tokens.len() - 1)].tok
    }
    fn line(&self) -> u32 {
        self.tokens[self.pos.min(self.tokens.len() - 1)].line
    }
    fn at_eof(&self) -> bool {
        matches!(self.peek(), Tok::Eof)
    }
    fn advance(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }
    fn error(&self, message: impl Into<String>) -> PyDiag {
        PyDiag {
            line: self.line(),
            message: message.into(),
        }
    }
    fn unexpected(&self) -> PyDiag {
        let what = match self.peek() {
            Tok::Name(n) => format!("'{n}'"),
            Tok::Op(o) => format!("'{o}'"),
            Tok::Int(_) | Tok::Float(_) => "number".to_string(),
            Tok::Str(_) | Tok::FStr(..) => "string".to_string(),
            Tok::Newline => "end of line".to_string(),
            Tok::Indent => "indent".to_string(),
            Tok::Dedent => "dedent".to_string(),
            Tok::Eof => "end of file".to_string(),
        };
        self.error(format!("syntax error: unexpected {what}"))
    }
    fn eat_tok(&mut self, t: &Tok) -> bool {
        if self.peek() == t {
            self.advance();
            true
        } else {
            false
        }
    }
    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if *o == op)
    }
    fn eat_op(&mut self, op: &str) -> bool {
        if self.is_op(op) {
            self.advance();
            true
        } else {
            false
        }
    }
    fn expect_op(&mut self, op: &str) -> Result<(), PyDiag> {
        if self.eat_op(op) {
            Ok(())
        } else {
            Err(self.error(format!("syntax error: expected '{op}'")))
        }
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Name(n) if n == kw)
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.advance();
            true
        } else {
            false
        }
    }
    fn expect_kw(&mut self, kw: &str) -> Result<(), PyDiag> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.error(format!("syntax error: expected '{kw}'")))
        }
    }
    fn name(&mut self) -> Result<String, PyDiag> {
        match self.peek().clone() {
            Tok::Name(n) if !KEYWORDS.contains(&n.as_str()) => {
                self.advance();
                Ok(n)
            }
            _ => Err(self.unexpected()),
        }
    }
    fn expect_newline(&mut self) -> Result<(), PyDiag> {
        if self.eat_tok(&Tok::Newline) || self.at_eof() {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    // ---- statements ----

    fn statement(&mut self) -> Result<Vec<Stmt>, PyDiag> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error(format!(
                "unsupported: nesting deeper than {MAX_NESTING} levels"
            )));
        }
        let result = self.statement_inner();
        self.depth -= 1;
        result
    }

    fn statement_inner(&mut self) -> Result<Vec<Stmt>, PyDiag> {
        let line = self.line();
        let kind = match self.peek().clone() {
            Tok::Name(n) => match n.as_str() {
                "if" => {
                    self.advance();
                    return Ok(vec![self.if_rest(line)?]);
                }
                "for" => {
                    self.advance();
                    let target = self.target_list()?;
                    self.expect_kw("in")?;
                    let iter = self.test_list()?;
                    let body = self.suite()?;
                    let orelse = if self.eat_kw("else") {
                        self.suite()?
                    } else {
                        Vec::new()
                    };
                    StmtKind::For(target, iter, body, orelse)
                }
                "while" => {
                    self.advance();
                    let cond = self.named_test()?;
                    let body = self.suite()?;
                    let orelse = if self.eat_kw("else") {
                        self.suite()?
                    } else {
                        Vec::new()
                    };
                    StmtKind::While(cond, body, orelse)
                }
                "try" => {
                    self.advance();
                    return Ok(vec![self.try_rest(line)?]);
                }
                "def" => {
                    self.advance();
                    return Ok(vec![self.def_rest(line)?]);
                }
                "class" => return Err(self.error("unsupported: class definition")),
                "with" => return Err(self.error("unsupported: with statement")),
                "async" => return Err(self.error("unsupported: async")),
                "match" if !matches!(self.peek_at(1), Tok::Op(_) | Tok::Newline) => {
                    return Err(self.error("unsupported: match statement"));
                }
                _ => return self.simple_statements(),
            },
            Tok::Op("@") => return Err(self.error("unsupported: decorator")),
            Tok::Indent => return Err(self.error("syntax error: unexpected indent")),
            _ => return self.simple_statements(),
        };
        Ok(vec![Stmt { line, kind }])
    }

    fn suite(&mut self) -> Result<Vec<Stmt>, PyDiag> {
        self.expect_op(":")?;
        if self.eat_tok(&Tok::Newline) {
            if !self.eat_tok(&Tok::Indent) {
                return Err(self.error("syntax error: expected an indented block"));
            }
            let mut body = Vec::new();
            while !self.eat_tok(&Tok::Dedent) {
                if self.at_eof() {
                    break;
                }
                if self.eat_tok(&Tok::Newline) {
                    continue;
                }
                body.extend(self.statement()?);
            }
            Ok(body)
        } else {
            self.simple_statements()
        }
    }

    fn if_rest(&mut self, line: u32) -> Result<Stmt, PyDiag> {
        let cond = self.named_test()?;
        let body = self.suite()?;
        let orelse = if self.is_kw("elif") {
            let l = self.line();
            self.advance();
            vec![self.if_rest(l)?]
        } else if self.eat_kw("else") {
            self.suite()?
        } else {
            Vec::new()
        };
        Ok(Stmt {
            line,
            kind: StmtKind::If(cond, body, orelse),
        })
    }

    fn try_rest(&mut self, line: u32) -> Result<Stmt, PyDiag> {
        let body = self.suite()?;
        let mut handlers = Vec::new();
        while self.is_kw("except") {
            self.advance();
            if self.eat_op("*") {
                return Err(self.error("unsupported: except*"));
            }
            let mut types = Vec::new();
            let mut name = None;
            if !self.is_op(":") {
                let e = self.test()?;
                let items = match e {
                    Expr::Tuple(items) => items,
                    other => vec![other],
                };
                for item in items {
                    types.push(dotted_name(&item).ok_or_else(|| {
                        self.error("unsupported: exception type that is not a name")
                    })?);
                }
                if self.eat_kw("as") {
                    name = Some(self.name()?);
                }
            }
            let hbody = self.suite()?;
            handlers.push(Handler {
                types,
                name,
                body: hbody,
            });
        }
        let orelse = if self.eat_kw("else") {
            self.suite()?
        } else {
            Vec::new()
        };
        let finally = if self.eat_kw("finally") {
            self.suite()?
        } else {
            Vec::new()
        };
        if handlers.is_empty() && finally.is_empty() {
            return Err(self.error("syntax error: try without except or finally"));
        }
        Ok(Stmt {
            line,
            kind: StmtKind::Try {
                body,
                handlers,
                orelse,
                finally,
            },
        })
    }

    fn def_rest(&mut self, line: u32) -> Result<Stmt, PyDiag> {
        let name = self.name()?;
        self.expect_op("(")?;
        let params = self.params(")", true)?;
        self.expect_op(")")?;
        if self.eat_op("->") {
            self.test()?;
        }
        let body = self.suite()?;
        Ok(Stmt {
            line,
            kind: StmtKind::Def(Arc::new(FuncDef { name, params, body })),
        })
    }

    fn params(&mut self, close: &str, annotations: bool) -> Result<Params, PyDiag> {
        let mut params = Params {
            positional: Vec::new(),
            star: None,
            kwonly: Vec::new(),
            starstar: None,
        };
        let mut after_star = false;
        while !self.is_op(close) {
            if self.eat_op("**") {
                params.starstar = Some(self.name()?);
                if annotations && self.eat_op(":") {
                    self.test()?;
                }
            } else if self.eat_op("*") {
                after_star = true;
                if !self.is_op(",") {
                    params.star = Some(self.name()?);
                    if annotations && self.eat_op(":") {
                        self.test()?;
                    }
                }
            } else if self.eat_op("/") {
                // Positional-only marker: the parameters before it stay positional-or-keyword,
                // which only accepts more calls than Python would.
            } else {
                let n = self.name()?;
                if annotations && self.eat_op(":") {
                    self.test()?;
                }
                let default = if self.eat_op("=") {
                    Some(self.test()?)
                } else {
                    None
                };
                if after_star {
                    params.kwonly.push((n, default));
                } else {
                    params.positional.push((n, default));
                }
            }
            if !self.eat_op(",") {
                break;
            }
        }
        Ok(params)
    }

    fn simple_statements(&mut self) -> Result<Vec<Stmt>, PyDiag> {
        let mut out = vec![self.simple_statement()?];
        while self.eat_op(";") {
            if matches!(self.peek(), Tok::Newline | Tok::Eof) {
                break;
            }
            out.push(self.simple_statement()?);
        }
        self.expect_newline()?;
        Ok(out)
    }

    fn simple_statement(&mut self) -> Result<Stmt, PyDiag> {
        let line = self.line();
        if let Tok::Name(n) = self.peek().clone() {
            let kind = match n.as_str() {
                "return" => {
                    self.advance();
                    if matches!(self.peek(), Tok::Newline | Tok::Eof) || self.is_op(";") {
                        Some(StmtKind::Return(None))
                    } else {
                        Some(StmtKind::Return(Some(self.test_list_star()?)))
                    }
                }
                "pass" => {
                    self.advance();
                    Some(StmtKind::Pass)
                }
                "break" => {
                    self.advance();
                    Some(StmtKind::Break)
                }
                "continue" => {
                    self.advance();
                    Some(StmtKind::Continue)
                }
                "global" => {
                    self.advance();
                    let mut names = vec![self.name()?];
                    while self.eat_op(",") {
                        names.push(self.name()?);
                    }
                    Some(StmtKind::Global(names))
                }
                "nonlocal" => return Err(self.error("unsupported: nonlocal")),
                "yield" => return Err(self.error("unsupported: yield (generator function)")),
                "raise" => {
                    self.advance();
                    if matches!(self.peek(), Tok::Newline | Tok::Eof) {
                        Some(StmtKind::Raise(None))
                    } else {
                        let e = self.test()?;
                        if self.eat_kw("from") {
                            self.test()?;
                        }
                        Some(StmtKind::Raise(Some(e)))
                    }
                }
                "assert" => {
                    self.advance();
                    let c = self.test()?;
                    let m = if self.eat_op(",") {
                        Some(self.test()?)
                    } else {
                        None
                    };
                    Some(StmtKind::Assert(c, m))
                }
                "del" => {
                    self.advance();
                    let e = self.test_list()?;
                    Some(StmtKind::Del(match e {
                        Expr::Tuple(items) => items,
                        other => vec![other],
                    }))
                }
                "import" => {
                    self.advance();
                    let mut items = Vec::new();
                    loop {
                        let module = self.dotted()?;
                        let bound = if self.eat_kw("as") {
                            self.name()?
                        } else {
                            module.split('.').next().unwrap_or_default().to_string()
                        };
                        items.push((module, bound));
                        if !self.eat_op(",") {
                            break;
                        }
                    }
                    Some(StmtKind::Import(items))
                }
                "from" => {
                    self.advance();
                    if self.is_op(".") || self.is_op("...") {
                        return Err(self.error("unsupported: relative import"));
                    }
                    let module = self.dotted()?;
                    self.expect_kw("import")?;
                    if self.eat_op("*") {
                        return Err(self.error("unsupported: import *"));
                    }
                    let paren = self.eat_op("(");
                    let mut items = Vec::new();
                    loop {
                        if paren && self.is_op(")") {
                            break;
                        }
                        let n = self.name()?;
                        let bound = if self.eat_kw("as") {
                            self.name()?
                        } else {
                            n.clone()
                        };
                        items.push((n, bound));
                        if !self.eat_op(",") {
                            break;
                        }
                    }
                    if paren {
                        self.expect_op(")")?;
                    }
                    Some(StmtKind::ImportFrom(module, items))
                }
                _ => None,
            };
            if let Some(kind) = kind {
                return Ok(Stmt { line, kind });
            }
        }
        let first = self.test_list_star()?;
        if self.eat_op(":") {
            // An annotated assignment: the annotation is ignored.
            self.test()?;
            if self.eat_op("=") {
                let value = self.test_list_star()?;
                return Ok(Stmt {
                    line,
                    kind: StmtKind::Assign(vec![first], value),
                });
            }
            return Ok(Stmt {
                line,
                kind: StmtKind::Pass,
            });
        }
        if let Tok::Op(op) = self.peek().clone() {
            let aug = match op {
                "+=" => Some(BinOp::Add),
                "-=" => Some(BinOp::Sub),
                "*=" => Some(BinOp::Mul),
                "/=" => Some(BinOp::Div),
                "//=" => Some(BinOp::FloorDiv),
                "%=" => Some(BinOp::Mod),
                "**=" => Some(BinOp::Pow),
                "|=" => Some(BinOp::BitOr),
                "&=" => Some(BinOp::BitAnd),
                "^=" => Some(BinOp::BitXor),
                "<<=" => Some(BinOp::LShift),
                ">>=" => Some(BinOp::RShift),
                _ => None,
            };
            if let Some(bop) = aug {
                self.advance();
                check_target(&first, line)?;
                let value = self.test_list_star()?;
                return Ok(Stmt {
                    line,
                    kind: StmtKind::AugAssign(first, bop, value),
                });
            }
            if op == "@=" {
                return Err(self.error("unsupported: @="));
            }
        }
        if self.is_op("=") {
            let mut targets = vec![first];
            let mut value;
            loop {
                self.expect_op("=")?;
                value = self.test_list_star()?;
                if !self.is_op("=") {
                    break;
                }
                targets.push(value);
            }
            for t in &targets {
                check_target(t, line)?;
            }
            return Ok(Stmt {
                line,
                kind: StmtKind::Assign(targets, value),
            });
        }
        Ok(Stmt {
            line,
            kind: StmtKind::Expr(first),
        })
    }

    fn dotted(&mut self) -> Result<String, PyDiag> {
        let mut s = self.name()?;
        while self.eat_op(".") {
            s.push('.');
            s.push_str(&self.name()?);
        }
        Ok(s)
    }

    // ---- expressions ----

    fn target_list(&mut self) -> Result<Expr, PyDiag> {
        let first = self.or_expr_star()?;
        let e = if self.is_op(",") {
            let mut items = vec![first];
            while self.eat_op(",") {
                if self.is_kw("in") || self.is_op("=") {
                    break;
                }
                items.push(self.or_expr_star()?);
            }
            Expr::Tuple(items)
        } else {
            first
        };
        check_target(&e, self.line())?;
        Ok(e)
    }

    fn or_expr_star(&mut self) -> Result<Expr, PyDiag> {
        if self.eat_op("*") {
            return Ok(Expr::Starred(Box::new(self.bit_or()?)));
        }
        self.bit_or()
    }

    /// `a, b` as a tuple, allowing starred items (return values, assignment sides).
    fn test_list_star(&mut self) -> Result<Expr, PyDiag> {
        let first = self.test_or_star()?;
        if !self.is_op(",") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_op(",") {
            if self.ends_list() {
                break;
            }
            items.push(self.test_or_star()?);
        }
        Ok(Expr::Tuple(items))
    }

    fn test_list(&mut self) -> Result<Expr, PyDiag> {
        self.test_list_star()
    }

    fn ends_list(&self) -> bool {
        matches!(
            self.peek(),
            Tok::Newline | Tok::Eof | Tok::Op(")" | "]" | "}" | "=" | ":" | ";")
        )
    }

    fn test_or_star(&mut self) -> Result<Expr, PyDiag> {
        if self.eat_op("*") {
            return Ok(Expr::Starred(Box::new(self.bit_or()?)));
        }
        self.named_test()
    }

    fn named_test(&mut self) -> Result<Expr, PyDiag> {
        if let (Tok::Name(n), Tok::Op(":=")) = (self.peek().clone(), self.peek_at(1).clone()) {
            self.advance();
            self.advance();
            let value = self.test()?;
            return Ok(Expr::Walrus(n, Box::new(value)));
        }
        self.test()
    }

    fn test(&mut self) -> Result<Expr, PyDiag> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error(format!(
                "unsupported: nesting deeper than {MAX_NESTING} levels"
            )));
        }
        let result = self.test_inner();
        self.depth -= 1;
        result
    }

    fn test_inner(&mut self) -> Result<Expr, PyDiag> {
        if self.eat_kw("lambda") {
            let params = self.params(":", false)?;
            self.expect_op(":")?;
            let body = self.test()?;
            return Ok(Expr::Lambda(Arc::new(params), Box::new(body)));
        }
        let e = self.or_test()?;
        if self.is_kw("if") {
            // Inside a comprehension `if` is a filter, handled by the caller: a conditional
            // expression always has an `else`, so look for it before committing.
            let save = self.pos;
            self.advance();
            let cond = self.or_test()?;
            if self.eat_kw("else") {
                let other = self.test()?;
                return Ok(Expr::IfExp(Box::new(cond), Box::new(e), Box::new(other)));
            }
            self.pos = save;
        }
        Ok(e)
    }

    fn test_no_cond(&mut self) -> Result<Expr, PyDiag> {
        self.or_test()
    }

    fn or_test(&mut self) -> Result<Expr, PyDiag> {
        let first = self.and_test()?;
        if !self.is_kw("or") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_kw("or") {
            items.push(self.and_test()?);
        }
        Ok(Expr::Or(items))
    }

    fn and_test(&mut self) -> Result<Expr, PyDiag> {
        let first = self.not_test()?;
        if !self.is_kw("and") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_kw("and") {
            items.push(self.not_test()?);
        }
        Ok(Expr::And(items))
    }

    fn not_test(&mut self) -> Result<Expr, PyDiag> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error(format!(
                "unsupported: nesting deeper than {MAX_NESTING} levels"
            )));
        }
        let result = self.not_test_inner();
        self.depth -= 1;
        result
    }

    fn not_test_inner(&mut self) -> Result<Expr, PyDiag> {
        if self.eat_kw("not") {
            return Ok(Expr::Unary(UnaryOp::Not, Box::new(self.not_test()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, PyDiag> {
        let first = self.bit_or()?;
        let mut ops = Vec::new();
        loop {
            let op = match self.peek() {
                Tok::Op("==") => CmpOp::Eq,
                Tok::Op("!=") => CmpOp::Ne,
                Tok::Op("<") => CmpOp::Lt,
                Tok::Op("<=") => CmpOp::Le,
                Tok::Op(">") => CmpOp::Gt,
                Tok::Op(">=") => CmpOp::Ge,
                Tok::Name(n) if n == "in" => CmpOp::In,
                Tok::Name(n)
                    if n == "not" && matches!(self.peek_at(1), Tok::Name(m) if m == "in") =>
                {
                    self.advance();
                    CmpOp::NotIn
                }
                Tok::Name(n) if n == "is" => {
                    if matches!(self.peek_at(1), Tok::Name(m) if m == "not") {
                        self.advance();
                        CmpOp::IsNot
                    } else {
                        CmpOp::Is
                    }
                }
                _ => break,
            };
            self.advance();
            ops.push((op, self.bit_or()?));
        }
        if ops.is_empty() {
            Ok(first)
        } else {
            Ok(Expr::Compare(Box::new(first), ops))
        }
    }

    fn binary_level(&mut self, level: usize) -> Result<Expr, PyDiag> {
        const LEVELS: &[&[(&str, BinOp)]] = &[
            &[("|", BinOp::BitOr)],
            &[("^", BinOp::BitXor)],
            &[("&", BinOp::BitAnd)],
            &[("<<", BinOp::LShift), (">>", BinOp::RShift)],
            &[("+", BinOp::Add), ("-", BinOp::Sub)],
            &[
                ("*", BinOp::Mul),
                ("/", BinOp::Div),
                ("//", BinOp::FloorDiv),
                ("%", BinOp::Mod),
            ],
        ];
        if level == LEVELS.len() {
            return self.factor();
        }
        let mut left = self.binary_level(level + 1)?;
        // A chain `a + b + c ...` is parsed by a loop but builds a left-deep tree, and every
        // later walk of the tree recurses once per link: the chain counts as nesting.
        let mut n_links = 0;
        'outer: loop {
            if self.is_op("@") {
                return Err(self.error("unsupported: matrix multiplication"));
            }
            for (op, bop) in LEVELS[level] {
                if self.is_op(op) {
                    n_links += 1;
                    self.check_chain(n_links)?;
                    self.advance();
                    let right = self.binary_level(level + 1)?;
                    left = Expr::Bin(*bop, Box::new(left), Box::new(right));
                    continue 'outer;
                }
            }
            return Ok(left);
        }
    }

    fn bit_or(&mut self) -> Result<Expr, PyDiag> {
        self.binary_level(0)
    }

    fn factor(&mut self) -> Result<Expr, PyDiag> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error(format!(
                "unsupported: nesting deeper than {MAX_NESTING} levels"
            )));
        }
        let result = self.factor_inner();
        self.depth -= 1;
        result
    }

    fn factor_inner(&mut self) -> Result<Expr, PyDiag> {
        let op = match self.peek() {
            Tok::Op("-") => Some(UnaryOp::Neg),
            Tok::Op("+") => Some(UnaryOp::Pos),
            Tok::Op("~") => Some(UnaryOp::Invert),
            _ => None,
        };
        if let Some(op) = op {
            self.advance();
            let inner = self.factor()?;
            if let (UnaryOp::Neg, Expr::Const(Const::Int(n))) = (op, &inner) {
                return Ok(Expr::Const(Const::Int(-n)));
            }
            if let (UnaryOp::Neg, Expr::Const(Const::Float(n))) = (op, &inner) {
                return Ok(Expr::Const(Const::Float(-n)));
            }
            return Ok(Expr::Unary(op, Box::new(inner)));
        }
        self.power()
    }

    fn power(&mut self) -> Result<Expr, PyDiag> {
        if self.is_kw("await") {
            return Err(self.error("unsupported: await"));
        }
        let base = self.atom_expr()?;
        if self.eat_op("**") {
            let exp = self.factor()?;
            return Ok(Expr::Bin(BinOp::Pow, Box::new(base), Box::new(exp)));
        }
        Ok(base)
    }

    /// Refuses a left-deep chain (operators, calls, subscripts, attributes) of `n_links` links
    /// that would take the tree past [`MAX_NESTING`] levels.
    fn check_chain(&self, n_links: usize) -> Result<(), PyDiag> {
        if self.depth + n_links > MAX_NESTING {
            return Err(self.error(format!(
                "unsupported: nesting deeper than {MAX_NESTING} levels"
            )));
        }
        Ok(())
    }

    fn atom_expr(&mut self) -> Result<Expr, PyDiag> {
        let mut e = self.atom()?;
        // Each postfix wraps the tree built so far: a chain counts as nesting (see
        // `binary_level`).
        let mut n_links = 0;
        loop {
            if self.is_op("(") || self.is_op("[") || self.is_op(".") {
                n_links += 1;
                self.check_chain(n_links)?;
            }
            if self.eat_op("(") {
                let args = self.call_args()?;
                self.expect_op(")")?;
                e = Expr::Call(Box::new(e), args);
            } else if self.eat_op("[") {
                let idx = self.subscript_list()?;
                self.expect_op("]")?;
                e = Expr::Subscript(Box::new(e), Box::new(idx));
            } else if self.eat_op(".") {
                let n = match self.advance() {
                    Tok::Name(n) => n,
                    _ => return Err(self.error("syntax error: expected attribute name")),
                };
                e = Expr::Attr(Box::new(e), n);
            } else {
                return Ok(e);
            }
        }
    }

    fn subscript_list(&mut self) -> Result<Expr, PyDiag> {
        let first = self.subscript()?;
        if !self.is_op(",") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_op(",") {
            if self.is_op("]") {
                break;
            }
            items.push(self.subscript()?);
        }
        Ok(Expr::Tuple(items))
    }

    fn subscript(&mut self) -> Result<Expr, PyDiag> {
        let lower = if self.is_op(":") {
            None
        } else {
            let e = self.named_test()?;
            if !self.is_op(":") {
                return Ok(e);
            }
            Some(Box::new(e))
        };
        self.expect_op(":")?;
        let upper = if self.is_op(":") || self.is_op("]") || self.is_op(",") {
            None
        } else {
            Some(Box::new(self.test()?))
        };
        let step = if self.eat_op(":") {
            if self.is_op("]") || self.is_op(",") {
                None
            } else {
                Some(Box::new(self.test()?))
            }
        } else {
            None
        };
        Ok(Expr::Slice(lower, upper, step))
    }

    fn call_args(&mut self) -> Result<Vec<Arg>, PyDiag> {
        let mut args = Vec::new();
        while !self.is_op(")") {
            if self.eat_op("**") {
                args.push(Arg::StarStar(self.test()?));
            } else if self.eat_op("*") {
                args.push(Arg::Star(self.test()?));
            } else if let (Tok::Name(n), Tok::Op("=")) =
                (self.peek().clone(), self.peek_at(1).clone())
            {
                self.advance();
                self.advance();
                args.push(Arg::Kw(n, self.test()?));
            } else {
                let e = self.named_test()?;
                if self.is_kw("for") {
                    let comps = self.comp_for()?;
                    args.push(Arg::Pos(Expr::GenExp(Box::new(e), comps)));
                } else {
                    args.push(Arg::Pos(e));
                }
            }
            if !self.eat_op(",") {
                break;
            }
        }
        Ok(args)
    }

    fn comp_for(&mut self) -> Result<Vec<Comprehension>, PyDiag> {
        let mut comps = Vec::new();
        while self.is_kw("for") {
            self.advance();
            let target = self.target_list()?;
            self.expect_kw("in")?;
            let iter = self.or_test()?;
            let mut conds = Vec::new();
            while self.eat_kw("if") {
                conds.push(self.test_no_cond()?);
            }
            comps.push(Comprehension {
                target,
                iter,
                conds,
            });
            if self.is_kw("async") {
                return Err(self.error("unsupported: async comprehension"));
            }
        }
        Ok(comps)
    }

    fn atom(&mut self) -> Result<Expr, PyDiag> {
        let line = self.line();
        match self.advance() {
            Tok::Int(n) => Ok(Expr::Const(Const::Int(n))),
            Tok::Float(f) => Ok(Expr::Const(Const::Float(f))),
            Tok::Str(s) => self.strings(Some(s), None, line),
            Tok::FStr(s, raw) => self.strings(None, Some((s, raw)), line),
            Tok::Name(n) => match n.as_str() {
                "None" => Ok(Expr::Const(Const::None)),
                "True" => Ok(Expr::Const(Const::Bool(true))),
                "False" => Ok(Expr::Const(Const::Bool(false))),
                "yield" => Err(self.error("unsupported: yield")),
                _ if KEYWORDS.contains(&n.as_str()) => {
                    self.pos -= 1;
                    Err(self.unexpected())
                }
                _ => Ok(Expr::Name(n)),
            },
            Tok::Op("(") => {
                if self.eat_op(")") {
                    return Ok(Expr::Tuple(Vec::new()));
                }
                if self.is_kw("yield") {
                    return Err(self.error("unsupported: yield"));
                }
                let first = self.test_or_star()?;
                if self.is_kw("for") {
                    let comps = self.comp_for()?;
                    self.expect_op(")")?;
                    return Ok(Expr::GenExp(Box::new(first), comps));
                }
                if self.eat_op(")") {
                    return Ok(first);
                }
                let mut items = vec![first];
                while self.eat_op(",") {
                    if self.is_op(")") {
                        break;
                    }
                    items.push(self.test_or_star()?);
                }
                self.expect_op(")")?;
                Ok(Expr::Tuple(items))
            }
            Tok::Op("[") => {
                if self.eat_op("]") {
                    return Ok(Expr::List(Vec::new()));
                }
                let first = self.test_or_star()?;
                if self.is_kw("for") {
                    let comps = self.comp_for()?;
                    self.expect_op("]")?;
                    return Ok(Expr::ListComp(Box::new(first), comps));
                }
                let mut items = vec![first];
                while self.eat_op(",") {
                    if self.is_op("]") {
                        break;
                    }
                    items.push(self.test_or_star()?);
                }
                self.expect_op("]")?;
                Ok(Expr::List(items))
            }
            Tok::Op("{") => {
                if self.eat_op("}") {
                    return Ok(Expr::Dict(Vec::new()));
                }
                if self.eat_op("**") {
                    let spread = self.bit_or()?;
                    return self.dict_rest(vec![(None, spread)]);
                }
                let first = self.test_or_star()?;
                if self.eat_op(":") {
                    let value = self.test()?;
                    if self.is_kw("for") {
                        let comps = self.comp_for()?;
                        self.expect_op("}")?;
                        return Ok(Expr::DictComp(Box::new(first), Box::new(value), comps));
                    }
                    return self.dict_rest(vec![(Some(first), value)]);
                }
                if self.is_kw("for") {
                    let comps = self.comp_for()?;
                    self.expect_op("}")?;
                    return Ok(Expr::SetComp(Box::new(first), comps));
                }
                let mut items = vec![first];
                while self.eat_op(",") {
                    if self.is_op("}") {
                        break;
                    }
                    items.push(self.test_or_star()?);
                }
                self.expect_op("}")?;
                Ok(Expr::Set(items))
            }
            Tok::Op("...") => Err(self.error("unsupported: Ellipsis")),
            _ => {
                self.pos -= 1;
                Err(self.unexpected())
            }
        }
    }

    fn dict_rest(&mut self, mut items: Vec<(Option<Expr>, Expr)>) -> Result<Expr, PyDiag> {
        while self.eat_op(",") {
            if self.is_op("}") {
                break;
            }
            if self.eat_op("**") {
                items.push((None, self.bit_or()?));
                continue;
            }
            let k = self.test()?;
            self.expect_op(":")?;
            let v = self.test()?;
            items.push((Some(k), v));
        }
        self.expect_op("}")?;
        Ok(Expr::Dict(items))
    }

    /// Adjacent string literals concatenate; any f-string among them makes the whole an
    /// f-string.
    fn strings(
        &mut self,
        first_plain: Option<String>,
        first_f: Option<(String, bool)>,
        line: u32,
    ) -> Result<Expr, PyDiag> {
        let mut parts: Vec<FPart> = Vec::new();
        let mut any_f = false;
        let push_lit = |parts: &mut Vec<FPart>, s: String| {
            if let Some(FPart::Lit(prev)) = parts.last_mut() {
                prev.push_str(&s);
            } else {
                parts.push(FPart::Lit(s));
            }
        };
        if let Some(s) = first_plain {
            push_lit(&mut parts, s);
        }
        if let Some((s, raw)) = first_f {
            any_f = true;
            for p in parse_fstring(&s, raw, line)? {
                match p {
                    FPart::Lit(s) => push_lit(&mut parts, s),
                    other => parts.push(other),
                }
            }
        }
        loop {
            match self.peek().clone() {
                Tok::Str(s) => {
                    self.advance();
                    push_lit(&mut parts, s);
                }
                Tok::FStr(s, raw) => {
                    self.advance();
                    any_f = true;
                    for p in parse_fstring(&s, raw, line)? {
                        match p {
                            FPart::Lit(s) => push_lit(&mut parts, s),
                            other => parts.push(other),
                        }
                    }
                }
                _ => break,
            }
        }
        if !any_f {
            let text = match parts.pop() {
                Some(FPart::Lit(s)) => s,
                _ => String::new(),
            };
            return Ok(Expr::Const(Const::Str(text)));
        }
        Ok(Expr::FString(parts))
    }
}

fn dotted_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Name(n) => Some(n.clone()),
        Expr::Attr(base, n) => Some(format!("{}.{n}", dotted_name(base)?)),
        _ => None,
    }
}

fn check_target(e: &Expr, line: u32) -> Result<(), PyDiag> {
    match e {
        Expr::Name(_) | Expr::Subscript(..) => Ok(()),
        Expr::Attr(..) => Err(PyDiag {
            line,
            message: "unsupported: assignment to an attribute".into(),
        }),
        Expr::Tuple(items) | Expr::List(items) => {
            for item in items {
                check_target(item, line)?;
            }
            Ok(())
        }
        Expr::Starred(inner) => check_target(inner, line),
        _ => Err(PyDiag {
            line,
            message: "syntax error: cannot assign to expression".into(),
        }),
    }
}

/// Splits an f-string body into literal text and replacement fields.
fn parse_fstring(body: &str, raw: bool, line: u32) -> Result<Vec<FPart>, PyDiag> {
    let chars: Vec<char> = body.chars().collect();
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    let flush = |lit: &mut String, parts: &mut Vec<FPart>| -> Result<(), PyDiag> {
        if !lit.is_empty() {
            let text = if raw {
                std::mem::take(lit)
            } else {
                super::lexer::unescape(&std::mem::take(lit), line)?
            };
            parts.push(FPart::Lit(text));
        }
        Ok(())
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            if chars.get(i + 1) == Some(&'{') {
                lit.push('{');
                i += 2;
                continue;
            }
            flush(&mut lit, &mut parts)?;
            let (part, next) = fstring_field(&chars, i + 1, raw, line)?;
            parts.push(part);
            i = next;
            continue;
        }
        if c == '}' {
            if chars.get(i + 1) == Some(&'}') {
                lit.push('}');
                i += 2;
                continue;
            }
            return Err(PyDiag {
                line,
                message: "syntax error: single '}' in f-string".into(),
            });
        }
        lit.push(c);
        i += 1;
    }
    flush(&mut lit, &mut parts)?;
    Ok(parts)
}

/// Parses one `{expr!c:spec}` field starting after the `{`; returns it and the index after `}`.
fn fstring_field(
    chars: &[char],
    start: usize,
    raw: bool,
    line: u32,
) -> Result<(FPart, usize), PyDiag> {
    let bad = |m: &str| PyDiag {
        line,
        message: format!("syntax error: {m} in f-string"),
    };
    let mut depth = 0i32;
    let mut i = start;
    let mut quote: Option<char> = None;
    // Find the end of the expression: a top-level '!' (not '!='), ':' or '}'.
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' => depth -= 1,
            '}' if depth > 0 => depth -= 1,
            '}' => break,
            ':' if depth == 0 => break,
            '!' if depth == 0 && chars.get(i + 1) != Some(&'=') => break,
            _ => {}
        }
        i += 1;
    }
    let text: String = chars[start..i].iter().collect();
    if text.trim().is_empty() {
        return Err(bad("empty expression"));
    }
    if text.trim_end().ends_with('=') && !text.trim_end().ends_with("==") {
        return Err(PyDiag {
            line,
            message: "unsupported: f-string '=' specifier".into(),
        });
    }
    let expr = parse_expr_text(&text, line)?;
    let mut conv = None;
    if chars.get(i) == Some(&'!') {
        conv = chars.get(i + 1).copied();
        if !matches!(conv, Some('r' | 's' | 'a')) {
            return Err(bad("bad conversion"));
        }
        i += 2;
    }
    let mut spec = Vec::new();
    if chars.get(i) == Some(&':') {
        i += 1;
        let spec_start = i;
        let mut depth = 0;
        while i < chars.len() {
            match chars[i] {
                '{' => depth += 1,
                '}' if depth > 0 => depth -= 1,
                '}' => break,
                _ => {}
            }
            i += 1;
        }
        let spec_text: String = chars[spec_start..i].iter().collect();
        spec = parse_fstring(&spec_text, raw, line)?;
    }
    if chars.get(i) != Some(&'}') {
        return Err(bad("missing '}'"));
    }
    Ok((
        FPart::Expr {
            expr: Box::new(expr),
            conv,
            spec,
        },
        i + 1,
    ))
}
