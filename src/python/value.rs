//! Run-time values of the Python subset and the Python semantics of equality, ordering,
//! hashing, truthiness, `str()`/`repr()` and the conversion to and from JSON.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use serde_json::Value as Json;

use super::ast::{Expr, FuncDef, Params};

/// A user function or lambda with the scopes it closes over.
pub struct Closure {
    pub name: String,
    pub params: Arc<Params>,
    pub body: ClosureBody,
    /// Default values, evaluated when the `def` ran (Python semantics).
    pub defaults: Vec<Option<Val>>,
    pub kw_defaults: Vec<Option<Val>>,
    pub enclosing: Vec<Scope>,
}

pub enum ClosureBody {
    Def(Arc<FuncDef>),
    Lambda(Arc<Expr>),
}

/// The names bound in one scope. Hashed with foldhash rather than SipHash: the keys are the
/// identifiers of the rule's own source (an event's keys never become names), and every name
/// read hashes its name once per scope it searches.
pub type Names = HashMap<String, Val, foldhash::fast::RandomState>;
pub type Scope = Rc<RefCell<Names>>;

#[derive(Clone)]
pub enum Val {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    List(Rc<RefCell<Vec<Val>>>),
    Tuple(Rc<Vec<Val>>),
    Dict(Rc<RefCell<Dict>>),
    Set(Rc<RefCell<Dict>>),
    /// The event passed to the called function.
    Event,
    Func(Rc<Closure>),
    /// A native function or type, named by its qualified name (`len`, `json.loads`, `str`).
    Native(&'static str),
    /// A method bound to a receiver (`"a".lower`, `event.get`).
    Method(Box<Val>, Rc<str>),
    /// A supported module (`json`, `re`, ...).
    Module(&'static str),
    /// A compiled pattern: the regex, its Python source and its flags.
    Regex(Rc<str>, i64),
    /// An IPinfo enrichment helper object (`get_ipinfo_asn`...): its kind and the event's
    /// `p_enrichment.<table>` value.
    Lut(&'static str, Rc<Val>),
    /// A regex match: the groups (whole match first), as strings or None.
    Match(Rc<Vec<Option<String>>>),
    Ip(std::net::IpAddr),
    Net(std::net::IpAddr, u8),
    /// A naive or aware datetime: microseconds since the epoch, and the UTC offset in seconds
    /// when aware.
    DateTime(i64, Option<i32>),
    /// A timedelta in microseconds.
    Delta(i64),
    /// An exception instance: its class name and message.
    Exc(Rc<str>, Rc<str>),
    /// A test mock (`MagicMock(return_value=...)`): calling it returns the value.
    Mock(Rc<Val>),
}

/// An insertion-ordered hash map with Python key semantics (also used for sets).
#[derive(Default, Clone)]
pub struct Dict {
    pub keys: Vec<Val>,
    pub vals: Vec<Val>,
    index: HashMap<HKey, usize>,
    /// Set on objects that come from the event: Panther hands those out as case-insensitive
    /// mappings (`ImmutableCaseInsensitiveDict`), so a string key missing as written is looked
    /// up by its lower-case form, and `isinstance(x, dict)` is false for them.
    pub case_insensitive: bool,
}

/// The hashable form of a key: `1`, `1.0` and `True` are one key, as in Python.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum HKey {
    None,
    Int(i64),
    Float(u64),
    Str(Rc<str>),
    Tuple(Vec<HKey>),
    Other(String),
}

impl Dict {
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    pub fn get(&self, key: &Val) -> Result<Option<&Val>, String> {
        let h = hkey(key)?;
        if let Some(&i) = self.index.get(&h) {
            return Ok(Some(&self.vals[i]));
        }
        if let (true, Val::Str(s)) = (self.case_insensitive, key) {
            return Ok(self.get_ci(s));
        }
        Ok(None)
    }
    fn get_ci(&self, key: &str) -> Option<&Val> {
        self.keys
            .iter()
            .position(|k| matches!(k, Val::Str(s) if same_lower(s, key)))
            .map(|i| &self.vals[i])
    }
    pub fn get_str(&self, key: &str) -> Option<&Val> {
        match self.index.get(&HKey::Str(Rc::from(key))) {
            Some(&i) => Some(&self.vals[i]),
            None if self.case_insensitive => self.get_ci(key),
            None => None,
        }
    }
    pub fn contains(&self, key: &Val) -> Result<bool, String> {
        Ok(self.get(key)?.is_some())
    }
    pub fn insert(&mut self, key: Val, val: Val) -> Result<(), String> {
        let h = hkey(&key)?;
        if let Some(&i) = self.index.get(&h) {
            self.vals[i] = val;
        } else {
            self.index.insert(h, self.keys.len());
            self.keys.push(key);
            self.vals.push(val);
        }
        Ok(())
    }
    pub fn remove(&mut self, key: &Val) -> Result<Option<Val>, String> {
        let h = hkey(key)?;
        let Some(i) = self.index.remove(&h) else {
            return Ok(None);
        };
        self.keys.remove(i);
        let v = self.vals.remove(i);
        for slot in self.index.values_mut() {
            if *slot > i {
                *slot -= 1;
            }
        }
        Ok(Some(v))
    }
    pub fn clear(&mut self) {
        self.keys.clear();
        self.vals.clear();
        self.index.clear();
    }
}

pub fn hkey(v: &Val) -> Result<HKey, String> {
    Ok(match v {
        Val::None => HKey::None,
        Val::Bool(b) => HKey::Int(*b as i64),
        Val::Int(i) => HKey::Int(*i),
        Val::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 9.0e18 {
                HKey::Int(*f as i64)
            } else {
                HKey::Float(f.to_bits())
            }
        }
        Val::Str(s) => HKey::Str(s.clone()),
        Val::Tuple(items) => HKey::Tuple(items.iter().map(hkey).collect::<Result<_, _>>()?),
        Val::Ip(ip) => HKey::Other(format!("ip:{ip}")),
        Val::Net(ip, p) => HKey::Other(format!("net:{ip}/{p}")),
        Val::DateTime(us, off) => HKey::Other(format!("dt:{us}:{off:?}")),
        Val::Delta(us) => HKey::Other(format!("td:{us}")),
        Val::Native(n) => HKey::Other(format!("native:{n}")),
        Val::Module(n) => HKey::Other(format!("module:{n}")),
        other => return Err(format!("unhashable type: '{}'", type_name(other))),
    })
}

pub fn new_str(s: impl Into<Rc<str>>) -> Val {
    Val::Str(s.into())
}

pub fn new_list(items: Vec<Val>) -> Val {
    Val::List(Rc::new(RefCell::new(items)))
}

pub fn new_dict(d: Dict) -> Val {
    Val::Dict(Rc::new(RefCell::new(d)))
}

pub fn new_set(d: Dict) -> Val {
    Val::Set(Rc::new(RefCell::new(d)))
}

pub fn type_name(v: &Val) -> &'static str {
    match v {
        Val::None => "NoneType",
        Val::Bool(_) => "bool",
        Val::Int(_) => "int",
        Val::Float(_) => "float",
        Val::Str(_) => "str",
        Val::List(_) => "list",
        Val::Tuple(_) => "tuple",
        Val::Dict(_) => "dict",
        Val::Set(_) => "set",
        Val::Event => "PantherEvent",
        Val::Func(_) => "function",
        Val::Native(_) => "builtin_function_or_method",
        Val::Method(..) => "method",
        Val::Module(_) => "module",
        Val::Regex(..) => "re.Pattern",
        Val::Lut(..) => "LookupTableMatches",
        Val::Match(_) => "re.Match",
        Val::Ip(std::net::IpAddr::V4(_)) => "IPv4Address",
        Val::Ip(std::net::IpAddr::V6(_)) => "IPv6Address",
        Val::Net(std::net::IpAddr::V4(_), _) => "IPv4Network",
        Val::Net(std::net::IpAddr::V6(_), _) => "IPv6Network",
        Val::DateTime(..) => "datetime",
        Val::Delta(_) => "timedelta",
        Val::Exc(..) => "Exception",
        Val::Mock(_) => "MagicMock",
    }
}

pub fn truthy(v: &Val) -> bool {
    match v {
        Val::None => false,
        Val::Bool(b) => *b,
        Val::Int(i) => *i != 0,
        Val::Float(f) => *f != 0.0,
        Val::Str(s) => !s.is_empty(),
        Val::List(l) => !l.borrow().is_empty(),
        Val::Tuple(t) => !t.is_empty(),
        Val::Dict(d) | Val::Set(d) => !d.borrow().is_empty(),
        Val::Delta(us) => *us != 0,
        _ => true,
    }
}

fn num(v: &Val) -> Option<f64> {
    match v {
        Val::Bool(b) => Some(*b as i64 as f64),
        Val::Int(i) => Some(*i as f64),
        Val::Float(f) => Some(*f),
        _ => None,
    }
}

fn int_like(v: &Val) -> Option<i64> {
    match v {
        Val::Bool(b) => Some(*b as i64),
        Val::Int(i) => Some(*i),
        _ => None,
    }
}

thread_local! {
    static NEST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    static TOO_DEEP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Containers nested deeper than this (a list holding itself, say) make `repr`, `==` and
/// ordering give up; the call then fails with a run-time error instead of guessing.
const MAX_NEST: usize = 100;

/// Runs `f` one container level deeper, or returns `fallback` and records the overflow.
fn nested<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    let depth = NEST.with(|n| n.get());
    if depth >= MAX_NEST {
        TOO_DEEP.with(|t| t.set(true));
        return fallback;
    }
    NEST.with(|n| n.set(depth + 1));
    let out = f();
    NEST.with(|n| n.set(depth));
    out
}

/// Clears the overflow flag (at the start of a call) and reports whether it was set.
pub fn take_too_deep() -> bool {
    TOO_DEEP.with(|t| t.replace(false))
}

/// Python `==`.
pub fn py_eq(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::List(_) | Val::Tuple(_) | Val::Dict(_) | Val::Set(_), _) => {
            nested(false, || py_eq_inner(a, b))
        }
        _ => py_eq_inner(a, b),
    }
}

fn py_eq_inner(a: &Val, b: &Val) -> bool {
    if let (Some(x), Some(y)) = (int_like(a), int_like(b)) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return x == y;
    }
    match (a, b) {
        (Val::None, Val::None) => true,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::List(x), Val::List(y)) => {
            if Rc::ptr_eq(x, y) {
                return true;
            }
            seq_eq(&x.borrow(), &y.borrow())
        }
        (Val::Tuple(x), Val::Tuple(y)) => seq_eq(x, y),
        (Val::Dict(x), Val::Dict(y)) => {
            if Rc::ptr_eq(x, y) {
                return true;
            }
            let (x, y) = (x.borrow(), y.borrow());
            x.len() == y.len()
                && x.keys
                    .iter()
                    .zip(&x.vals)
                    .all(|(k, v)| matches!(y.get(k), Ok(Some(w)) if py_eq(v, w)))
        }
        (Val::Set(x), Val::Set(y)) => {
            if Rc::ptr_eq(x, y) {
                return true;
            }
            let (x, y) = (x.borrow(), y.borrow());
            x.len() == y.len() && x.keys.iter().all(|k| matches!(y.contains(k), Ok(true)))
        }
        (Val::Event, Val::Event) => true,
        (Val::Native(x), Val::Native(y)) => x == y,
        (Val::Module(x), Val::Module(y)) => x == y,
        (Val::Func(x), Val::Func(y)) => Rc::ptr_eq(x, y),
        (Val::Ip(x), Val::Ip(y)) => x == y,
        (Val::Net(x, p), Val::Net(y, q)) => x == y && p == q,
        (Val::DateTime(x, o), Val::DateTime(y, p)) => x == y && o.is_some() == p.is_some(),
        (Val::Delta(x), Val::Delta(y)) => x == y,
        (Val::Regex(x, f), Val::Regex(y, g)) => x == y && f == g,
        _ => false,
    }
}

fn seq_eq(x: &[Val], y: &[Val]) -> bool {
    x.len() == y.len() && x.iter().zip(y).all(|(a, b)| py_eq(a, b))
}

/// Python ordering (`<`): numbers, strings, lists and tuples; otherwise a TypeError message.
pub fn py_cmp(a: &Val, b: &Val) -> Result<std::cmp::Ordering, String> {
    use std::cmp::Ordering;
    if let (Some(x), Some(y)) = (int_like(a), int_like(b)) {
        return Ok(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return Ok(x.partial_cmp(&y).unwrap_or(Ordering::Equal));
    }
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => Ok(x.cmp(y)),
        (Val::List(x), Val::List(y)) => seq_cmp(&x.borrow(), &y.borrow()),
        (Val::Tuple(x), Val::Tuple(y)) => seq_cmp(x, y),
        (Val::DateTime(x, o), Val::DateTime(y, p)) if o.is_some() == p.is_some() => Ok(x.cmp(y)),
        (Val::Delta(x), Val::Delta(y)) => Ok(x.cmp(y)),
        (Val::Ip(x), Val::Ip(y)) if x.is_ipv4() == y.is_ipv4() => Ok(x.cmp(y)),
        _ => Err(format!(
            "'<' not supported between instances of '{}' and '{}'",
            type_name(a),
            type_name(b)
        )),
    }
}

fn seq_cmp(x: &[Val], y: &[Val]) -> Result<std::cmp::Ordering, String> {
    nested(Ok(std::cmp::Ordering::Equal), || seq_cmp_inner(x, y))
}

fn seq_cmp_inner(x: &[Val], y: &[Val]) -> Result<std::cmp::Ordering, String> {
    for (a, b) in x.iter().zip(y) {
        if !py_eq(a, b) {
            return py_cmp(a, b);
        }
    }
    Ok(x.len().cmp(&y.len()))
}

/// Python's `repr()` of a float.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let s = format!("{f}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

pub fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python `str()`.
pub fn py_str(v: &Val) -> String {
    match v {
        Val::Str(s) => s.to_string(),
        Val::Exc(_, m) => m.to_string(),
        Val::Ip(ip) => ip.to_string(),
        Val::Net(ip, p) => format!("{ip}/{p}"),
        Val::DateTime(us, off) => datetime_str(*us, *off, ' '),
        Val::Delta(us) => delta_str(*us),
        _ => py_repr(v),
    }
}

/// Python `repr()`.
pub fn py_repr(v: &Val) -> String {
    match v {
        Val::List(_) | Val::Tuple(_) | Val::Dict(_) | Val::Set(_) => {
            nested(String::from("..."), || py_repr_inner(v))
        }
        _ => py_repr_inner(v),
    }
}

fn py_repr_inner(v: &Val) -> String {
    match v {
        Val::None => "None".into(),
        Val::Bool(true) => "True".into(),
        Val::Bool(false) => "False".into(),
        Val::Int(i) => i.to_string(),
        Val::Float(f) => float_repr(*f),
        Val::Str(s) => str_repr(s),
        Val::List(l) => {
            let items: Vec<String> = l.borrow().iter().map(py_repr).collect();
            format!("[{}]", items.join(", "))
        }
        Val::Tuple(t) => {
            let items: Vec<String> = t.iter().map(py_repr).collect();
            if items.len() == 1 {
                format!("({},)", items[0])
            } else {
                format!("({})", items.join(", "))
            }
        }
        Val::Dict(d) => {
            let d = d.borrow();
            let items: Vec<String> = d
                .keys
                .iter()
                .zip(&d.vals)
                .map(|(k, v)| format!("{}: {}", py_repr(k), py_repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Val::Set(d) => {
            let d = d.borrow();
            if d.is_empty() {
                return "set()".into();
            }
            let items: Vec<String> = d.keys.iter().map(py_repr).collect();
            format!("{{{}}}", items.join(", "))
        }
        Val::Event => "<PantherEvent>".into(),
        Val::Func(c) => format!("<function {}>", c.name),
        Val::Native(n) => format!("<built-in function {n}>"),
        Val::Method(_, n) => format!("<bound method {n}>"),
        Val::Module(n) => format!("<module '{n}'>"),
        Val::Regex(p, _) => format!("re.compile({})", str_repr(p)),
        Val::Lut(k, _) => format!("<{k}>"),
        Val::Match(_) => "<re.Match object>".into(),
        Val::Ip(ip) => format!("{}('{ip}')", type_name(v)),
        Val::Net(ip, p) => format!("{}('{ip}/{p}')", type_name(v)),
        Val::DateTime(..) => format!("datetime({})", py_str(v)),
        Val::Delta(..) => format!("timedelta({})", py_str(v)),
        Val::Exc(k, m) => format!("{k}({})", str_repr(m)),
        Val::Mock(_) => "<MagicMock>".into(),
    }
}

pub fn datetime_str(us: i64, off: Option<i32>, sep: char) -> String {
    let local = us + off.unwrap_or(0) as i64 * 1_000_000;
    let secs = local.div_euclid(1_000_000);
    let micros = local.rem_euclid(1_000_000);
    let Some(dt) = chrono::DateTime::from_timestamp(secs, 0) else {
        return "<datetime out of range>".into();
    };
    let mut s = dt.format(&format!("%Y-%m-%d{sep}%H:%M:%S")).to_string();
    if micros != 0 {
        s.push_str(&format!(".{micros:06}"));
    }
    if let Some(o) = off {
        let sign = if o < 0 { '-' } else { '+' };
        let a = o.abs();
        s.push_str(&format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60));
    }
    s
}

pub fn delta_str(us: i64) -> String {
    let days = us.div_euclid(86_400_000_000);
    let rest = us.rem_euclid(86_400_000_000);
    let secs = rest / 1_000_000;
    let micros = rest % 1_000_000;
    let mut s = String::new();
    if days != 0 {
        s.push_str(&format!(
            "{days} day{}, ",
            if days.abs() == 1 { "" } else { "s" }
        ));
    }
    s.push_str(&format!(
        "{}:{:02}:{:02}",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    ));
    if micros != 0 {
        s.push_str(&format!(".{micros:06}"));
    }
    s
}

pub fn from_json(v: &Json) -> Val {
    match v {
        Json::Null => Val::None,
        Json::Bool(b) => Val::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Val::Int(i)
            } else {
                Val::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => new_str(s.as_str()),
        Json::Array(items) => new_list(items.iter().map(from_json).collect()),
        Json::Object(map) => {
            let mut d = Dict {
                case_insensitive: true,
                ..Dict::default()
            };
            for (k, v) in map {
                // A string key is always hashable.
                let _ = d.insert(new_str(k.as_str()), from_json(v));
            }
            new_dict(d)
        }
    }
}

/// The JSON form of a value, as the call result and as `json.dumps` sees it (with
/// `default=str` for values JSON has no form for). `event` is the event's JSON.
/// `event` is only materialized in full when the value holds the event object itself.
pub fn to_json(v: &Val, event: &crate::event::Event<'_>, depth: usize) -> Json {
    if depth > 64 {
        return Json::Null;
    }
    match v {
        Val::None => Json::Null,
        Val::Bool(b) => Json::Bool(*b),
        Val::Int(i) => Json::from(*i),
        Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Val::Str(s) => Json::String(s.to_string()),
        Val::List(l) => Json::Array(
            l.borrow()
                .iter()
                .map(|x| to_json(x, event, depth + 1))
                .collect(),
        ),
        Val::Tuple(t) => Json::Array(t.iter().map(|x| to_json(x, event, depth + 1)).collect()),
        Val::Set(s) => Json::Array(
            s.borrow()
                .keys
                .iter()
                .map(|x| to_json(x, event, depth + 1))
                .collect(),
        ),
        Val::Dict(d) => {
            let d = d.borrow();
            let mut map = serde_json::Map::new();
            for (k, v) in d.keys.iter().zip(&d.vals) {
                map.insert(json_key(k), to_json(v, event, depth + 1));
            }
            Json::Object(map)
        }
        Val::Event => event.root().clone(),
        other => Json::String(py_str(other)),
    }
}

/// How `json.dumps` writes a dict key.
pub fn json_key(k: &Val) -> String {
    match k {
        Val::Str(s) => s.to_string(),
        Val::None => "null".into(),
        Val::Bool(true) => "true".into(),
        Val::Bool(false) => "false".into(),
        other => py_str(other),
    }
}

/// Python's `a.lower() == b.lower()`, without allocating when both are ASCII.
pub fn same_lower(a: &str, b: &str) -> bool {
    // Lower-casing an ASCII string keeps its length, so ASCII strings of different lengths
    // differ: most calls (a key against every key of an event) end on the length.
    if a.len() == b.len() && a.eq_ignore_ascii_case(b) {
        return true;
    }
    if a.is_ascii() && b.is_ascii() {
        return false;
    }
    a.to_lowercase() == b.to_lowercase()
}
