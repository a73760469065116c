//! The catalog's normalized notation of a rule's logic: one conjunct a line, the same for every
//! source format, read from the IR.
//!
//! It differs from the IR's own printer (`crate::ir::print`) where people read it side by side:
//! - a case-sensitive comparison is written plainly (`eq`, `contains`), a case-insensitive one
//!   with an `i` (`ieq`, `icontains`, its value shown folded, as the IR stores it);
//! - `not (F is_null)` is `F is_not_null`, and `F is_null or F eq ""` is `F is_empty`
//!   (absent, JSON null or the empty string: what a Python truthiness test rejects), with
//!   `F is_not_empty` its negation;
//! - `F eq a or F eq b` is `F in ["a", "b"]`;
//! - `F is_not_null` and `F exists` are dropped beside a comparison of `F` that implies them;
//! - every top-level negated conjunct is gathered, after the positive ones, into one last line
//!   `not (A or B ...)` (De Morgan), whose members are the rule's exclusions.
//!
//! Every rewrite is an equivalence, so the lines mean exactly what the IR means.

use crate::ir::{Expr, FieldPath, Predicate, StrKind, StrMatch};

/// A node of the display tree.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Leaf(Leaf),
    /// Something shown as the IR prints it (a constant, a computed-value condition).
    Other(String),
}

/// One field test.
#[derive(Clone, Debug, PartialEq)]
pub struct Leaf {
    /// The field as the rule names it (`event.action`); `any_string` for a keyword search.
    pub field: String,
    /// The field as a raw CloudTrail record names it (`eventName` for ECS `event.action`).
    pub canonical: String,
    pub op: String,
    /// Values as shown (JSON-quoted strings); several for `in`.
    pub values: Vec<String>,
    /// The values folded to lower case, for comparing rules across formats.
    pub folded: Vec<String>,
}

impl Leaf {
    /// True for the operators that state absence (the negative forms).
    fn is_negative(&self) -> bool {
        matches!(self.op.as_str(), "is_null" | "not_exists" | "is_empty")
    }

    /// True when the test implies that the field has a non-null value.
    fn implies_value(&self) -> bool {
        !matches!(
            self.op.as_str(),
            "is_null" | "is_not_null" | "exists" | "not_exists" | "is_empty"
        ) && self.field != "any_string"
    }

    /// The operator without its case-insensitive `i` (`ieq` → `eq`), for comparing rules.
    pub fn base_op(&self) -> &str {
        match self.op.as_str() {
            "ieq" | "iin" | "icontains" | "istartswith" | "iendswith" | "iglob" => &self.op[1..],
            other => other,
        }
    }
}

fn inverse(op: &str) -> Option<&'static str> {
    Some(match op {
        "is_null" => "is_not_null",
        "is_not_null" => "is_null",
        "exists" => "not_exists",
        "not_exists" => "exists",
        "is_empty" => "is_not_empty",
        "is_not_empty" => "is_empty",
        _ => return None,
    })
}

fn quote(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

fn canonical(path: &FieldPath) -> String {
    match path.derive.and_then(|_| crate::ecs::raw_name(&path.raw)) {
        Some(raw) => raw.to_string(),
        None => path.to_string(),
    }
}

fn leaf(path: &FieldPath, op: &str, values: Vec<String>) -> Node {
    let folded = values.iter().map(|v| crate::ir::fold_case(v)).collect();
    Node::Leaf(Leaf {
        field: path.to_string(),
        canonical: canonical(path),
        op: op.to_string(),
        values,
        folded,
    })
}

fn str_op(matcher: &StrMatch) -> String {
    let base = match matcher.kind {
        StrKind::Exact => "eq",
        StrKind::Prefix => "startswith",
        StrKind::Suffix => "endswith",
        StrKind::Contains => "contains",
        StrKind::Glob => "glob",
    };
    if matcher.cased {
        base.to_string()
    } else {
        format!("i{base}")
    }
}

/// The display tree of an IR expression, simplified.
pub fn from_expr(expr: &Expr) -> Node {
    match expr {
        Expr::Const(value) => Node::Other(value.to_string()),
        Expr::And(items) => and(items.iter().map(from_expr).collect()),
        Expr::Or(items) => or(items.iter().map(from_expr).collect()),
        Expr::Not(inner) => negate(from_expr(inner)),
        Expr::Field { path, pred } => match pred {
            Predicate::Null => leaf(path, "is_null", Vec::new()),
            Predicate::Exists(true) => leaf(path, "exists", Vec::new()),
            Predicate::Exists(false) => leaf(path, "not_exists", Vec::new()),
            Predicate::Str(matcher) => leaf(path, &str_op(matcher), vec![quote(&matcher.needle)]),
            Predicate::Regex(regex) => leaf(path, "regex", vec![quote(regex.as_str())]),
            Predicate::Num { op, value } => leaf(path, op.as_str(), vec![value.to_string()]),
            Predicate::Cidr(cidr) => leaf(path, "cidr", vec![cidr.to_string()]),
            Predicate::FieldRef { other, kind, cased } => {
                let op = str_op(&StrMatch {
                    kind: *kind,
                    needle: String::new(),
                    cased: *cased,
                    glob: None,
                });
                leaf(path, &format!("{op}_field"), vec![other.raw.clone()])
            }
            Predicate::DatePart { part, op, value } => leaf(
                path,
                &format!("{}_{}", part.as_str(), op.as_str()),
                vec![value.to_string()],
            ),
        },
        Expr::Keyword(matcher) => leaf(
            &FieldPath::new("any_string"),
            &str_op(matcher),
            vec![quote(&matcher.needle)],
        ),
        Expr::Value(value) => Node::Other(format!("value {value} is true")),
    }
}

/// `not node`, with the absence operators inverted in place and double negations removed.
pub fn negate(node: Node) -> Node {
    match node {
        Node::Leaf(mut leaf) => match inverse(&leaf.op) {
            Some(op) => {
                leaf.op = op.to_string();
                Node::Leaf(leaf)
            }
            None => Node::Not(Box::new(Node::Leaf(leaf))),
        },
        Node::Not(inner) => *inner,
        Node::Other(text) if text == "true" => Node::Other("false".into()),
        Node::Other(text) if text == "false" => Node::Other("true".into()),
        other => Node::Not(Box::new(other)),
    }
}

fn is_empty_string_eq(node: &Node, field: &str) -> bool {
    matches!(node, Node::Leaf(leaf)
        if leaf.field == field && matches!(leaf.op.as_str(), "eq" | "ieq") && leaf.values == ["\"\""])
}

fn and(items: Vec<Node>) -> Node {
    let mut flat = Vec::new();
    for item in items {
        match item {
            Node::And(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    // `F is_not_null and not F eq ""` is `F is_not_empty`.
    let mut idx = 0;
    while idx < flat.len() {
        let field = match &flat[idx] {
            Node::Leaf(leaf) if leaf.op == "is_not_null" => Some(leaf.field.clone()),
            _ => None,
        };
        if let Some(field) = field
            && let Some(pos) = flat.iter().position(
                |node| matches!(node, Node::Not(inner) if is_empty_string_eq(inner, &field)),
            )
        {
            if let Node::Leaf(leaf) = &mut flat[idx] {
                leaf.op = "is_not_empty".into();
            }
            flat.remove(pos);
            if pos < idx {
                idx -= 1;
            }
        }
        idx += 1;
    }
    // Presence tests implied by a comparison of the same field.
    let valued: Vec<String> = flat
        .iter()
        .filter_map(|node| match node {
            Node::Leaf(leaf) if leaf.implies_value() => Some(leaf.field.clone()),
            _ => None,
        })
        .collect();
    flat.retain(|node| match node {
        Node::Leaf(leaf) if matches!(leaf.op.as_str(), "is_not_null" | "exists") => {
            !valued.contains(&leaf.field)
        }
        _ => true,
    });
    match flat.len() {
        1 => flat.remove(0),
        _ => Node::And(flat),
    }
}

fn or(items: Vec<Node>) -> Node {
    let mut flat = Vec::new();
    for item in items {
        match item {
            Node::Or(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    // `F is_null or F eq ""` is `F is_empty`.
    let mut idx = 0;
    while idx < flat.len() {
        let field = match &flat[idx] {
            Node::Leaf(leaf) if leaf.op == "is_null" => Some(leaf.field.clone()),
            _ => None,
        };
        if let Some(field) = field
            && let Some(pos) = flat
                .iter()
                .position(|node| is_empty_string_eq(node, &field))
        {
            if let Node::Leaf(leaf) = &mut flat[idx] {
                leaf.op = "is_empty".into();
            }
            flat.remove(pos);
            if pos < idx {
                idx -= 1;
            }
        }
        idx += 1;
    }
    // Equalities on one field with one case sense become one `in`.
    let mut out: Vec<Node> = Vec::new();
    for node in flat {
        if let Node::Leaf(leaf) = &node
            && matches!(leaf.op.as_str(), "eq" | "ieq" | "in" | "iin")
        {
            let (set_op, eq_op) = if matches!(leaf.op.as_str(), "ieq" | "iin") {
                ("iin", "ieq")
            } else {
                ("in", "eq")
            };
            let found = out.iter_mut().find_map(|prev| match prev {
                Node::Leaf(prev)
                    if prev.field == leaf.field && (prev.op == set_op || prev.op == eq_op) =>
                {
                    Some(prev)
                }
                _ => None,
            });
            if let Some(prev) = found {
                prev.op = set_op.to_string();
                for (value, folded) in leaf.values.iter().zip(&leaf.folded) {
                    if !prev.values.contains(value) {
                        prev.values.push(value.clone());
                        prev.folded.push(folded.clone());
                    }
                }
                continue;
            }
        }
        out.push(node);
    }
    match out.len() {
        1 => out.remove(0),
        _ => Node::Or(out),
    }
}

/// The normalized conjuncts: the positive ones, then the negated ones gathered into one
/// `not (A or B ...)` node whose members are returned as the exclusions.
pub struct Conjuncts {
    pub positive: Vec<Node>,
    pub exclusions: Vec<Node>,
}

impl Conjuncts {
    pub fn of(node: Node) -> Conjuncts {
        let items = match node {
            Node::And(items) => items,
            other => vec![other],
        };
        let mut positive = Vec::new();
        let mut exclusions = Vec::new();
        for item in items {
            let negative = match &item {
                Node::Not(_) => true,
                Node::Leaf(leaf) => leaf.is_negative(),
                _ => false,
            };
            if negative {
                match negate(item) {
                    Node::Or(inner) => exclusions.extend(inner),
                    other => exclusions.push(other),
                }
            } else {
                positive.push(item);
            }
        }
        Conjuncts {
            positive,
            exclusions,
        }
    }

    /// One line per conjunct.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.positive.iter().map(|n| render(n, false)).collect();
        if !self.exclusions.is_empty() {
            let inner: Vec<String> = self.exclusions.iter().map(|n| render(n, true)).collect();
            lines.push(format!("not ({})", inner.join(" or ")));
        }
        lines
    }
}

/// The text of a node; `nested` parenthesizes a compound node.
pub fn render(node: &Node, nested: bool) -> String {
    match node {
        Node::And(items) | Node::Or(items) => {
            let sep = if matches!(node, Node::And(_)) {
                " and "
            } else {
                " or "
            };
            let text = items
                .iter()
                .map(|item| render(item, true))
                .collect::<Vec<_>>()
                .join(sep);
            if nested { format!("({text})") } else { text }
        }
        Node::Not(inner) => format!("not {}", render(inner, true)),
        Node::Leaf(leaf) => render_leaf(leaf),
        Node::Other(text) => text.clone(),
    }
}

fn render_leaf(leaf: &Leaf) -> String {
    match leaf.values.len() {
        0 => format!("{} {}", leaf.field, leaf.op),
        _ if matches!(leaf.op.as_str(), "in" | "iin") => {
            format!("{} {} [{}]", leaf.field, leaf.op, leaf.values.join(", "))
        }
        _ => format!("{} {} {}", leaf.field, leaf.op, leaf.values.join(", ")),
    }
}

/// Every leaf with its polarity (true outside any negation).
pub fn leaves<'n>(node: &'n Node, positive: bool, out: &mut Vec<(&'n Leaf, bool)>) {
    match node {
        Node::And(items) | Node::Or(items) => {
            for item in items {
                leaves(item, positive, out);
            }
        }
        Node::Not(inner) => leaves(inner, !positive, out),
        Node::Leaf(leaf) => out.push((leaf, positive)),
        Node::Other(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Expr, Predicate, StrKind, StrMatch};

    fn eq(field: &str, value: &str, cased: bool) -> Expr {
        Expr::field(
            field,
            Predicate::Str(StrMatch::new(StrKind::Exact, value, cased)),
        )
    }

    #[test]
    fn python_success_guard_reads_as_one_exclusion() {
        // The shape `crate::python::lower` gives `aws_cloudtrail_success(event) and
        // event.get("eventName") == "CreateUser"`.
        let truthy = |field: &str| {
            Expr::not(Expr::and(vec![
                Expr::not(Expr::field(field, Predicate::Null)),
                Expr::not(eq(field, "", true)),
            ]))
        };
        let expr = Expr::and(vec![
            truthy("errorCode"),
            truthy("errorMessage"),
            Expr::not(Expr::field("eventName", Predicate::Null)),
            eq("eventName", "CreateUser", true),
        ]);
        let conjuncts = Conjuncts::of(from_expr(&expr));
        assert_eq!(
            conjuncts.lines(),
            [
                "eventName eq \"CreateUser\"",
                "not (errorCode is_not_empty or errorMessage is_not_empty)"
            ]
        );
        assert_eq!(conjuncts.exclusions.len(), 2);
    }

    #[test]
    fn equalities_become_in_and_case_is_marked() {
        let expr = Expr::and(vec![
            Expr::or(vec![
                eq("eventName", "StopLogging", false),
                eq("eventName", "DeleteTrail", false),
            ]),
            Expr::field("errorCode", Predicate::Null),
        ]);
        assert_eq!(
            Conjuncts::of(from_expr(&expr)).lines(),
            [
                "eventName iin [\"stoplogging\", \"deletetrail\"]",
                "not (errorCode is_not_null)"
            ]
        );
    }

    #[test]
    fn ecs_fields_have_a_canonical_name() {
        let expr = Expr::Field {
            path: FieldPath::ecs("event.action"),
            pred: Predicate::Str(StrMatch::new(StrKind::Exact, "CreateUser", true)),
        };
        let node = from_expr(&expr);
        let Node::Leaf(leaf) = &node else {
            panic!("not a leaf: {node:?}")
        };
        assert_eq!(leaf.field, "event.action");
        assert_eq!(leaf.canonical, "eventName");
        assert_eq!(leaf.folded, ["\"createuser\""]);
    }
}
