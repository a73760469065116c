//! The syntax tree of the Python subset. Statements carry their source line so that load-time
//! and run-time diagnostics can name it.

#[derive(Clone, Debug, PartialEq)]
pub enum Const {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    BitOr,
    BitAnd,
    BitXor,
    LShift,
    RShift,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
    Pos,
    Invert,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Is,
    IsNot,
}

#[derive(Clone, Debug)]
pub enum Arg {
    Pos(Expr),
    Star(Expr),
    Kw(String, Expr),
    StarStar(Expr),
}

#[derive(Clone, Debug)]
pub struct Comprehension {
    pub target: Expr,
    pub iter: Expr,
    pub conds: Vec<Expr>,
}

#[derive(Clone, Debug)]
pub enum FPart {
    Lit(String),
    Expr {
        expr: Box<Expr>,
        conv: Option<char>,
        spec: Vec<FPart>,
    },
}

#[derive(Clone, Debug)]
pub struct Params {
    /// Positional-or-keyword parameters with their optional default.
    pub positional: Vec<(String, Option<Expr>)>,
    pub star: Option<String>,
    pub kwonly: Vec<(String, Option<Expr>)>,
    pub starstar: Option<String>,
}

#[derive(Clone, Debug)]
pub enum Expr {
    Const(Const),
    Name(String),
    Attr(Box<Expr>, String),
    Subscript(Box<Expr>, Box<Expr>),
    Slice(Option<Box<Expr>>, Option<Box<Expr>>, Option<Box<Expr>>),
    Call(Box<Expr>, Vec<Arg>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Unary(UnaryOp, Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Compare(Box<Expr>, Vec<(CmpOp, Expr)>),
    IfExp(Box<Expr>, Box<Expr>, Box<Expr>),
    List(Vec<Expr>),
    Tuple(Vec<Expr>),
    Set(Vec<Expr>),
    /// A `None` key is a `**mapping` spread.
    Dict(Vec<(Option<Expr>, Expr)>),
    ListComp(Box<Expr>, Vec<Comprehension>),
    SetComp(Box<Expr>, Vec<Comprehension>),
    GenExp(Box<Expr>, Vec<Comprehension>),
    DictComp(Box<Expr>, Box<Expr>, Vec<Comprehension>),
    FString(Vec<FPart>),
    Lambda(std::sync::Arc<Params>, Box<Expr>),
    Walrus(String, Box<Expr>),
    Starred(Box<Expr>),
}

#[derive(Clone, Debug)]
pub struct Handler {
    /// The exception class names caught; empty for a bare `except:`.
    pub types: Vec<String>,
    pub name: Option<String>,
    pub body: Vec<Stmt>,
}

#[derive(Clone, Debug)]
pub struct FuncDef {
    pub name: String,
    pub params: Params,
    pub body: Vec<Stmt>,
}

#[derive(Clone, Debug)]
pub enum StmtKind {
    Expr(Expr),
    Assign(Vec<Expr>, Expr),
    AugAssign(Expr, BinOp, Expr),
    Return(Option<Expr>),
    If(Expr, Vec<Stmt>, Vec<Stmt>),
    For(Expr, Expr, Vec<Stmt>, Vec<Stmt>),
    While(Expr, Vec<Stmt>, Vec<Stmt>),
    Break,
    Continue,
    Pass,
    Try {
        body: Vec<Stmt>,
        handlers: Vec<Handler>,
        orelse: Vec<Stmt>,
        finally: Vec<Stmt>,
    },
    Def(std::sync::Arc<FuncDef>),
    /// `import a.b as c`: (dotted module, bound name).
    Import(Vec<(String, String)>),
    /// `from m import a as b`: (module, [(name, bound name)]).
    ImportFrom(String, Vec<(String, String)>),
    Global(Vec<String>),
    Raise(Option<Expr>),
    Assert(Expr, Option<Expr>),
    Del(Vec<Expr>),
}

#[derive(Clone, Debug)]
pub struct Stmt {
    pub line: u32,
    pub kind: StmtKind,
}

impl Stmt {
    /// The statement lists nested directly in this statement: the bodies and `else` of `if`
    /// and loops, and every part of a `try`. A `def`'s body is not one of them (it runs as
    /// another function).
    pub fn blocks(&self) -> Vec<&[Stmt]> {
        match &self.kind {
            StmtKind::If(_, a, b) | StmtKind::For(_, _, a, b) | StmtKind::While(_, a, b) => {
                vec![a, b]
            }
            StmtKind::Try {
                body,
                handlers,
                orelse,
                finally,
            } => std::iter::once(body.as_slice())
                .chain(handlers.iter().map(|h| h.body.as_slice()))
                .chain([orelse.as_slice(), finally.as_slice()])
                .collect(),
            _ => Vec::new(),
        }
    }
}
