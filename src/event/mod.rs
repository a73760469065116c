//! The event view the evaluator reads: a lazy view over the raw text of one JSON object.
//!
//! Decoding: [`Event::parse`] makes one validating pass over the line ([`scan`], which checks
//! the syntax of every value it skips) and records, for each top-level key, the byte range of
//! its raw value. Nothing is built. A nested object is indexed the same way the first time a
//! rule reads a path through it. A field is materialized as a `serde_json::Value` only when a
//! rule reads it, from its own raw slice, and cached for the other rules of the same event, so
//! every matching semantic (number text, duplicate keys, escapes) is serde_json's, exactly as
//! when the whole line was parsed into a `Value`. [`Event::root`] still builds the whole
//! object (cached).
//!
//! Which lines take the fast pass: serde_json stays the judge of what is valid JSON, and the
//! scanner leaves two checks to it. A line that has a `\u` escape (the scanner does not pair
//! surrogates) is also parsed in full by serde_json, and a line nested deeper than
//! [`scan::MAX_DEPTH`] is read by serde_json alone (its depth limit applies); the parsed object
//! is kept as the root cache. A line the scanner refuses is parsed again by serde_json for the
//! verdict and the error message. The one difference left: a number beyond the range of `f64`
//! (`1e400`), which serde_json rejects, is found when its field is read; the event is then
//! marked broken ([`Event::is_broken`]) and the protocol writes the same `invalid_json` record
//! as before. A line whose out-of-range number sits in a field that no rule reads passes
//! unchanged.
//!
//! Lookup rules (shared by every rule format):
//! - a path is first tried as one literal key of the top-level object (`"userIdentity.type"`
//!   written flat, as some shippers flatten), then walked segment by segment;
//! - a key that appears twice at the top level reads as its last occurrence (serde_json's rule);
//! - while walking, an array fans out: `requestParameters.ipPermissions.items.cidrIp` visits
//!   `cidrIp` in every element of `items`;
//! - the value found at the end is handed to the caller as is, arrays included (the matcher
//!   decides that "any element matches").
//!
//! Values are borrowed from the event (`&self`): the caches only grow while an event is in use.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};
use std::ops::Range;

use serde_json::Value;

use crate::ir::FieldPath;

mod scan;

/// Why a text is not an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not valid JSON; the text is serde_json's message.
    InvalidJson(String),
    /// Valid JSON of another type (`"array"`, `"string"`, ...).
    NotObject(&'static str),
}

/// One top-level entry: where its key and raw value sit in the text, and the value once read.
#[derive(Debug)]
pub struct Slot {
    /// The key's length and first 8 bytes, compared before the key itself: most lookups
    /// are decided by these without a call to `memcmp`.
    key_head: (usize, u64),
    key: Key,
    value: Range<usize>,
    parsed: OnceCell<Option<Value>>,
}

#[derive(Debug)]
enum Key {
    /// The key's bytes in the text (it had no escape).
    Span(Range<usize>),
    /// The unescaped key.
    Owned(Box<str>),
}

impl Key {
    fn text<'s>(&'s self, text: &'s str) -> &'s str {
        match self {
            Key::Span(range) => text.get(range.clone()).unwrap_or(""),
            Key::Owned(key) => key,
        }
    }
}

/// Reusable storage of [`Event`]s: hand it to [`Event::parse_with`] and take it back with
/// [`Event::into_buffers`], so that decoding a line allocates nothing once it has grown.
#[derive(Debug, Default)]
pub struct EventBuffers {
    slots: Vec<Slot>,
}

pub struct Event<'a> {
    text: Cow<'a, str>,
    slots: Vec<Slot>,
    root: OnceCell<Value>,
    /// Whether the text has a `\u` escape: the index's raw-text keyword filter is exact only
    /// without one (an escaped character does not appear as itself in the raw bytes).
    has_unicode_escape: bool,
    /// Whether the text has any `\` (so any escape at all).
    has_escape: bool,
    /// Whether the scan saw a number that may be beyond `f64` (`scan::Seen::big_number`).
    big_number: bool,
    /// Whether some top-level key has a `.`: 0 not yet known, 1 no, 2 yes. Without one, a
    /// dotted path cannot be a flat key, and its lookup among the keys is skipped.
    dotted_keys: Cell<u8>,
    /// Set when a value failed to materialize (a number beyond `f64`).
    broken: Cell<bool>,
    derived: Derived,
    nested: Nested,
}

impl std::fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event").field("text", &self.text).finish()
    }
}

static NULL: Value = Value::Null;

impl<'a> Event<'a> {
    /// An event over `text`, which must hold one JSON object.
    pub fn parse(text: &'a str) -> Result<Event<'a>, ParseError> {
        Event::parse_with(text, &mut EventBuffers::default())
    }

    /// [`Event::parse`] reusing `buffers` (left empty until [`Event::into_buffers`]).
    pub fn parse_with(text: &'a str, buffers: &mut EventBuffers) -> Result<Event<'a>, ParseError> {
        let mut slots = std::mem::take(&mut buffers.slots);
        slots.clear();
        Event::parse_cow(Cow::Borrowed(text), slots)
    }

    /// An event over the compact JSON text of `value` (tests and callers that hold a `Value`).
    /// A value that is not an object gives an event with no fields.
    pub fn new(value: &Value) -> Event<'static> {
        let text = value.to_string();
        match Event::parse_cow(Cow::Owned(text), Vec::new()) {
            Ok(event) => event,
            Err(_) => Event {
                text: Cow::Borrowed("{}"),
                slots: Vec::new(),
                root: OnceCell::from(value.clone()),
                has_unicode_escape: false,
                has_escape: false,
                big_number: false,
                dotted_keys: Cell::new(0),
                broken: Cell::new(false),
                derived: Derived::default(),
                nested: Nested::default(),
            },
        }
    }

    /// Gives the storage back for the next event.
    pub fn into_buffers(mut self, buffers: &mut EventBuffers) {
        self.slots.clear();
        buffers.slots = self.slots;
    }

    /// An event that owns its text (a line copied for a matching thread). On failure the
    /// text comes back, for the caller to process the line whole.
    pub fn parse_owned(text: String, buffers: &mut EventBuffers) -> Result<Event<'static>, String> {
        let mut slots = std::mem::take(&mut buffers.slots);
        slots.clear();
        match scan_text(&text, &mut slots) {
            Ok((root, seen)) => Ok(Event::assemble(Cow::Owned(text), slots, root, seen)),
            Err(_) => {
                slots.clear();
                buffers.slots = slots;
                Err(text)
            }
        }
    }

    /// [`Event::into_buffers`], also giving back the text when the event owns it.
    pub fn into_text(self, buffers: &mut EventBuffers) -> Option<String> {
        let Event {
            text, mut slots, ..
        } = self;
        slots.clear();
        buffers.slots = slots;
        match text {
            Cow::Owned(text) => Some(text),
            Cow::Borrowed(_) => None,
        }
    }

    fn parse_cow(text: Cow<'a, str>, mut slots: Vec<Slot>) -> Result<Event<'a>, ParseError> {
        let (root, seen) = scan_text(&text, &mut slots)?;
        Ok(Event::assemble(text, slots, root, seen))
    }

    fn assemble(
        text: Cow<'a, str>,
        slots: Vec<Slot>,
        root: OnceCell<Value>,
        seen: scan::Seen,
    ) -> Event<'a> {
        Event {
            text,
            slots,
            root,
            has_unicode_escape: seen.unicode_escape,
            has_escape: seen.escape,
            big_number: seen.big_number,
            dotted_keys: Cell::new(0),
            broken: Cell::new(false),
            derived: Derived::default(),
            nested: Nested::default(),
        }
    }

    /// The text of the object.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the text contains a `\u` escape.
    pub fn has_unicode_escape(&self) -> bool {
        self.has_unicode_escape
    }

    /// Whether the text contains a `\` (an escape of any kind).
    pub fn has_escape(&self) -> bool {
        self.has_escape
    }

    /// True when a value read from this event was not representable (see the module doc):
    /// the line is then invalid JSON for serde_json, and callers treat it as such.
    pub fn is_broken(&self) -> bool {
        self.broken.get()
    }

    /// Makes [`Event::is_broken`] answer for the whole event, not only for the fields read so
    /// far: builds the whole object when the scan saw a number that may be beyond `f64`. Any
    /// other event cannot break (serde_json already judged the lines the scanner leaves to it).
    pub fn check_whole(&self) {
        if self.big_number {
            self.root();
        }
    }

    /// The whole object, built on first use and cached. Prefer [`Event::first`] and
    /// [`Event::get`], which build only what they read.
    pub fn root(&self) -> &Value {
        self.root
            .get_or_init(|| match serde_json::from_str(&self.text) {
                Ok(value) => value,
                Err(_) => {
                    self.broken.set(true);
                    Value::Null
                }
            })
    }

    /// The value of top-level key `key` (its last occurrence), materialized and cached.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let slot = self.slot(key)?;
        self.materialize(slot)
    }

    /// The value of the top-level key for which `same` holds that a walk over the whole
    /// object (serde_json's map, in key order) would meet first: the smallest such key, at its
    /// last occurrence. Only that value is materialized (callers use it for lookups that
    /// ignore case, such as Panther's `event.get`).
    pub fn find_key(&self, same: impl Fn(&str) -> bool) -> Option<&Value> {
        if let Some(root) = self.root.get() {
            return match root {
                Value::Object(map) => map.iter().find(|(k, _)| same(k)).map(|(_, v)| v),
                _ => None,
            };
        }
        let mut best: Option<&Slot> = None;
        for slot in &self.slots {
            let key = self.key(slot);
            if !same(key) {
                continue;
            }
            match best {
                Some(kept) if self.key(kept) < key => {}
                // A smaller key, or a later occurrence of the same one.
                _ => best = Some(slot),
            }
        }
        best.and_then(|slot| self.materialize(slot))
    }

    /// The distinct top-level keys for which `pred` holds, in the order a walk over the whole
    /// object (serde_json's map, in key order) meets them; nothing is built.
    pub fn keys_where(&self, pred: impl Fn(&str) -> bool) -> Vec<&str> {
        if let Some(root) = self.root.get() {
            return match root {
                Value::Object(map) => map.keys().map(String::as_str).filter(|k| pred(k)).collect(),
                _ => Vec::new(),
            };
        }
        let mut keys: Vec<&str> = self
            .slots
            .iter()
            .map(|slot| self.key(slot))
            .filter(|k| pred(k))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Whether some top-level key satisfies `pred`; nothing is built.
    pub fn any_key(&self, pred: impl Fn(&str) -> bool) -> bool {
        if let Some(root) = self.root.get() {
            return matches!(root, Value::Object(map) if map.keys().any(|k| pred(k)));
        }
        self.slots.iter().any(|slot| pred(self.key(slot)))
    }

    /// The raw JSON text of top-level key `key` (its last occurrence), without building it.
    pub fn raw(&self, key: &str) -> Option<&str> {
        let slot = self.slot(key)?;
        self.text.get(slot.value.clone())
    }

    /// Whether the top level has `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.slot(key).is_some()
    }

    /// Calls `visit` with the value of every top-level key (the last occurrence of a
    /// duplicated key only) until it returns true; returns whether it did.
    pub fn any_top_value<'s>(&'s self, visit: &mut dyn FnMut(&'s Value) -> bool) -> bool {
        for (idx, slot) in self.slots.iter().enumerate() {
            let key = self.key(slot);
            let shadowed = self.slots[idx + 1..]
                .iter()
                .any(|later| self.key(later) == key);
            if shadowed {
                continue;
            }
            if let Some(value) = self.materialize(slot)
                && visit(value)
            {
                return true;
            }
        }
        false
    }

    /// Calls `visit` with each value found at `path` until it returns true; returns whether it
    /// did. A path that leads nowhere visits nothing (unless the path derives a value, see
    /// [`FieldPath::derive`]).
    pub fn any_value<'s>(
        &'s self,
        path: &FieldPath,
        visit: &mut dyn FnMut(&'s Value) -> bool,
    ) -> bool {
        // A path derives only where the event has no value at it, and the event does not
        // change: once derived, the cached value is the answer.
        if let Some(derive) = path.derive
            && let Ok(value) = self.derived_cached(path, derive)
        {
            return value.is_some_and(visit);
        }
        if (path.segments.len() < 2 || self.has_dotted_key())
            && let Some(value) = self.get(path.raw.as_str())
        {
            return visit(value);
        }
        if path.segments.len() >= 2 {
            match self.nested_value(path) {
                Some(Some(value)) => return visit(value),
                Some(None) => {}
                None => {
                    if let Some(hit) = self.walk_materialized(path, visit) {
                        return hit;
                    }
                }
            }
        }
        match path.derive {
            Some(derive) => match self.derived(path, derive) {
                Some(value) => visit(value),
                None => false,
            },
            None => false,
        }
    }

    /// The values at `path` (two segments or more) by walking the materialized top-level
    /// value: Some(hit) when the walk found at least one value, None when it found none.
    fn walk_materialized<'s>(
        &'s self,
        path: &FieldPath,
        visit: &mut dyn FnMut(&'s Value) -> bool,
    ) -> Option<bool> {
        if let Some(head) = self.get(path.segments[0].as_str()) {
            let mut found = false;
            let hit = walk(head, &path.segments[1..], &mut |value| {
                found = true;
                visit(value)
            });
            if found {
                return Some(hit);
            }
        }
        None
    }

    /// The one value at `path` (two segments or more) read from the raw text without building
    /// the objects on the way: each object passed through is indexed once per event (its keys
    /// and the byte ranges of their values) and only the value at the end is materialized, so
    /// a rule reading `userIdentity.type` no longer builds all of `userIdentity`.
    ///
    /// `Some(Some(value))`: found; `Some(None)`: the path leads nowhere; `None`: this path
    /// cannot be read this way and the caller walks the materialized value instead: an array on
    /// the way (it fans out into several values), a head already materialized (walking it is
    /// cheaper), or a line that was parsed whole because of a `\u` escape. The answer is the
    /// walk's: a duplicated key reads as its last occurrence, as in serde_json's map.
    fn nested_value(&self, path: &FieldPath) -> Option<Option<&Value>> {
        if self.root.get().is_some() || self.has_unicode_escape {
            return None;
        }
        let slot = self.slot(path.segments[0].as_str())?;
        if slot.parsed.get().is_some() {
            return None;
        }
        let mut cell = &self.nested.leaves;
        loop {
            match cell.get() {
                Some(node) if node.path == path.raw => return Some(node.value.as_ref()),
                Some(node) => cell = &node.next,
                None => break,
            }
        }
        let mut range = slot.value.clone();
        for segment in &path.segments[1..] {
            let raw = self.text.get(range.clone())?;
            match raw.as_bytes().first() {
                Some(b'{') => {}
                Some(b'[') => return None,
                _ => return Some(self.nested_leaf(cell, path, None)),
            }
            let entries = self.object_index(range.start)?;
            match entries
                .iter()
                .rev()
                .find(|(key, _)| self.key_text(key) == segment.as_str())
            {
                Some((_, next)) => range = next.clone(),
                None => return Some(self.nested_leaf(cell, path, None)),
            }
        }
        let value = self.materialize_range(range);
        Some(self.nested_leaf(cell, path, value))
    }

    fn nested_leaf<'s>(
        &'s self,
        cell: &'s OnceCell<Box<LeafNode>>,
        path: &FieldPath,
        value: Option<Value>,
    ) -> Option<&'s Value> {
        cell.get_or_init(|| {
            Box::new(LeafNode {
                path: path.raw.clone(),
                value,
                next: OnceCell::new(),
            })
        })
        .value
        .as_ref()
    }

    /// The keys and value ranges of the object whose text `raw` starts at byte `start`,
    /// indexed on first use. None when the scanner refuses the text, which the validating pass
    /// over the line makes impossible; the caller then takes the materializing path.
    fn object_index(&self, start: usize) -> Option<&[(Key, Range<usize>)]> {
        let mut cell = &self.nested.objects;
        loop {
            match cell.get() {
                Some(node) if node.start == start => return Some(&node.entries),
                Some(node) => cell = &node.next,
                None => break,
            }
        }
        let mut entries = Vec::new();
        let mut failed = false;
        scan::object(
            self.text.as_bytes(),
            start,
            &mut scan::Seen::default(),
            &mut |member| match member_key(&self.text, &member) {
                Some(key) => entries.push((key, member.value)),
                None => failed = true,
            },
        )
        .ok()?;
        if failed {
            return None;
        }
        let node = cell.get_or_init(|| {
            Box::new(ObjectNode {
                start,
                entries,
                next: OnceCell::new(),
            })
        });
        Some(&node.entries)
    }

    /// The first value found at `path`, if any.
    pub fn first(&self, path: &FieldPath) -> Option<&Value> {
        let mut found = None;
        self.any_value(path, &mut |value| {
            found = Some(value);
            true
        });
        found
    }

    /// True when `path` leads to at least one value (JSON `null` included).
    pub fn exists(&self, path: &FieldPath) -> bool {
        self.any_value(path, &mut |_| true)
    }

    fn key<'s>(&'s self, slot: &'s Slot) -> &'s str {
        self.key_text(&slot.key)
    }

    fn key_text<'s>(&'s self, key: &'s Key) -> &'s str {
        key.text(&self.text)
    }

    fn has_dotted_key(&self) -> bool {
        if self.dotted_keys.get() == 0 {
            let dotted = self.slots.iter().any(|slot| self.key(slot).contains('.'));
            self.dotted_keys.set(if dotted { 2 } else { 1 });
        }
        self.dotted_keys.get() == 2
    }

    fn slot(&self, key: &str) -> Option<&Slot> {
        let head = key_head(key);
        self.slots
            .iter()
            .rev()
            .find(|slot| slot.key_head == head && self.key(slot) == key)
    }

    fn materialize<'s>(&'s self, slot: &'s Slot) -> Option<&'s Value> {
        slot.parsed
            .get_or_init(|| self.materialize_range(slot.value.clone()))
            .as_ref()
    }

    /// The value whose raw text is at `range`; None (and the event marked broken) when
    /// serde_json refuses it (a number beyond `f64`).
    fn materialize_range(&self, range: Range<usize>) -> Option<Value> {
        let raw = self.text.get(range)?;
        // A string without escapes is its own text: no parser needed (the pass over the line
        // already checked it, control characters included).
        if raw.len() >= 2 && raw.starts_with('"') && !raw.as_bytes().contains(&b'\\') {
            return Some(Value::String(raw[1..raw.len() - 1].to_string()));
        }
        match serde_json::from_str(raw) {
            Ok(value) => Some(value),
            Err(_) => {
                self.broken.set(true);
                None
            }
        }
    }

    /// The value `derive` makes for `path`, computed once per event.
    fn derived(&self, path: &FieldPath, derive: DeriveFn) -> Option<&Value> {
        let cell = match self.derived_cached(path, derive) {
            Ok(value) => return value,
            Err(cell) => cell,
        };
        let node = cell.get_or_init(|| {
            Box::new(DerivedNode {
                path: path.raw.clone(),
                hash: path.hash,
                derive: derive as usize,
                value: derive(&path.raw, self),
                next: OnceCell::new(),
            })
        });
        node.value.as_ref()
    }
}

impl Event<'_> {
    /// The cached derived value of `path` (`Ok`), or the empty end of the list (`Err`).
    #[allow(clippy::type_complexity)]
    fn derived_cached(
        &self,
        path: &FieldPath,
        derive: DeriveFn,
    ) -> Result<Option<&Value>, &OnceCell<Box<DerivedNode>>> {
        let mut cell = &self.derived.head;
        loop {
            match cell.get() {
                // Keyed by the derivation too: two formats may derive the same name differently
                // (the ECS view and Panther's case-insensitive keys).
                Some(node)
                    if node.hash == path.hash
                        && node.derive == derive as usize
                        && node.path == path.raw =>
                {
                    return Ok(node.value.as_ref());
                }
                Some(node) => cell = &node.next,
                None => return Err(cell),
            }
        }
    }
}

/// How a [`FieldPath`] derives a value that the event does not carry literally (the Elastic
/// "ECS view" of raw CloudTrail): called with the path's text and the event.
pub type DeriveFn = fn(&str, &Event<'_>) -> Option<Value>;

/// Derived values of one event: an append-only list, so that a value handed out by
/// reference stays where it is while more are added.
/// What [`Event::nested_value`] read below the top level: append-only lists, like
/// [`Derived`], so that references handed out stay valid while more is added.
#[derive(Default)]
struct Nested {
    objects: OnceCell<Box<ObjectNode>>,
    leaves: OnceCell<Box<LeafNode>>,
}

/// One nested object's keys and value ranges, by the offset of its text.
struct ObjectNode {
    start: usize,
    entries: Vec<(Key, Range<usize>)>,
    next: OnceCell<Box<ObjectNode>>,
}

/// The value at one nested path (None: the path leads nowhere).
struct LeafNode {
    path: String,
    value: Option<Value>,
    next: OnceCell<Box<LeafNode>>,
}

#[derive(Default)]
struct Derived {
    head: OnceCell<Box<DerivedNode>>,
}

struct DerivedNode {
    path: String,
    /// `FieldPath::hash` of `path`.
    hash: u64,
    /// The address of the derivation that computed `value`.
    derive: usize,
    value: Option<Value>,
    next: OnceCell<Box<DerivedNode>>,
}

/// serde_json's parse of the whole text, as the judge of validity.
fn strict_parse(text: &str) -> Result<Value, ParseError> {
    match serde_json::from_str::<Value>(text) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(value) => Err(ParseError::NotObject(json_type(&value))),
        Err(err) => Err(ParseError::InvalidJson(err.to_string())),
    }
}

/// The top level through [`scan`]. Err when it refuses the text or when anything other than
/// whitespace follows the object.
fn fast_top_level(text: &str, slots: &mut Vec<Slot>, seen: &mut scan::Seen) -> Result<(), ()> {
    let bytes = text.as_bytes();
    let mut failed = false;
    let end = scan::object(
        bytes,
        0,
        seen,
        &mut |member| match member_key(text, &member) {
            Some(key) => slots.push(Slot {
                key_head: key_head(key.text(text)),
                key,
                value: member.value,
                parsed: OnceCell::new(),
            }),
            None => failed = true,
        },
    )?;
    if failed || !scan::only_ws(bytes, end) {
        return Err(());
    }
    Ok(())
}

/// The key of `member`: its span in `text`, or its unescaped text when it has an escape (None
/// when serde_json refuses the escape, which the scanner leaves to it).
fn member_key(text: &str, member: &scan::Member) -> Option<Key> {
    if !member.key_escaped {
        return Some(Key::Span(member.key.clone()));
    }
    let quoted = text.get(member.key.start - 1..member.key.end + 1)?;
    let key: String = serde_json::from_str(quoted).ok()?;
    Some(Key::Owned(key.into_boxed_str()))
}

fn key_head(key: &str) -> (usize, u64) {
    let mut head = [0u8; 8];
    let n = key.len().min(8);
    head[..n].copy_from_slice(&key.as_bytes()[..n]);
    (key.len(), u64::from_le_bytes(head))
}

/// The top level through serde_json (for texts it already accepted as a whole).
fn serde_top_level(text: &str, slots: &mut Vec<Slot>) -> Result<(), String> {
    use serde::de::{Deserializer, MapAccess, Visitor};
    use serde_json::value::RawValue;

    struct KeyText<'de>(Cow<'de, str>);

    impl<'de> serde::Deserialize<'de> for KeyText<'de> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct KeyVisitor;
            impl<'de> Visitor<'de> for KeyVisitor {
                type Value = KeyText<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a key")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> Result<KeyText<'de>, E> {
                    Ok(KeyText(Cow::Borrowed(v)))
                }
                fn visit_str<E>(self, v: &str) -> Result<KeyText<'de>, E> {
                    Ok(KeyText(Cow::Owned(v.to_string())))
                }
            }
            deserializer.deserialize_str(KeyVisitor)
        }
    }

    struct TopVisitor<'s> {
        base: usize,
        len: usize,
        slots: &'s mut Vec<Slot>,
    }

    impl<'de> Visitor<'de> for TopVisitor<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            use serde::de::Error;
            while let Some((key, value)) = map.next_entry::<KeyText<'de>, &'de RawValue>()? {
                let range_of = |part: &str| -> Result<Range<usize>, A::Error> {
                    let start = (part.as_ptr() as usize)
                        .checked_sub(self.base)
                        .filter(|start| start + part.len() <= self.len)
                        .ok_or_else(|| A::Error::custom("slice outside the text"))?;
                    Ok(start..start + part.len())
                };
                let value = range_of(value.get())?;
                let key_head = key_head(&key.0);
                let key = match key.0 {
                    Cow::Borrowed(key) => Key::Span(range_of(key)?),
                    Cow::Owned(key) => Key::Owned(key.into_boxed_str()),
                };
                self.slots.push(Slot {
                    key_head,
                    key,
                    value,
                    parsed: OnceCell::new(),
                });
            }
            Ok(())
        }
    }

    let mut deserializer = serde_json::Deserializer::from_str(text);
    deserializer
        .deserialize_map(TopVisitor {
            base: text.as_ptr() as usize,
            len: text.len(),
            slots,
        })
        .and_then(|()| deserializer.end())
        .map_err(|err| err.to_string())
}

/// The JSON type name of a value, for error records.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Scans `text` into `slots`: the top-level fields, with the whole value when the scanner
/// leaves the verdict to serde_json.
fn scan_text(
    text: &str,
    slots: &mut Vec<Slot>,
) -> Result<(OnceCell<Value>, scan::Seen), ParseError> {
    let mut root = OnceCell::new();
    let mut seen = scan::Seen::default();
    match fast_top_level(text, slots, &mut seen) {
        // The scanner does not pair `\u` surrogates: serde_json judges.
        Ok(()) if seen.unicode_escape => root = OnceCell::from(strict_parse(text)?),
        Ok(()) => {}
        Err(()) => {
            // Rare (invalid, or nested deeper than the scanner goes): serde_json's verdict
            // and message; what it accepts is read with it.
            let value = strict_parse(text)?;
            slots.clear();
            serde_top_level(text, slots).map_err(ParseError::InvalidJson)?;
            root = OnceCell::from(value);
            seen.escape = memchr::memchr(b'\\', text.as_bytes()).is_some();
            seen.unicode_escape =
                seen.escape && memchr::memmem::find(text.as_bytes(), b"\\u").is_some();
        }
    }
    Ok((root, seen))
}

/// The text a value compares as, for every rule format and for correlation keys: strings as
/// they are, numbers and booleans as their JSON text ([`number_text`]), objects and arrays as
/// compact JSON; `null` has none.
pub fn text_of(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Bool(true) => Some(Cow::Borrowed("true")),
        Value::Bool(false) => Some(Cow::Borrowed("false")),
        Value::Number(number) => Some(Cow::Owned(number_text(number))),
        Value::Object(_) | Value::Array(_) => Some(Cow::Owned(value.to_string())),
        Value::Null => None,
    }
}

/// The canonical text of a JSON number. `10`, `10.0` and `1e1` are the same JSON number, so a
/// whole float within the exactly representable range is written as an integer (`10`): a rule
/// value `10` matches all three, and they group and count as one value in correlations.
pub fn number_text(number: &serde_json::Number) -> String {
    match number.as_f64() {
        Some(float) if number.is_f64() && float.fract() == 0.0 && float.abs() < 9.0e15 => {
            format!("{}", float as i64)
        }
        _ => number.to_string(),
    }
}

/// The number a value compares as: a JSON number, or a string that parses as a finite number.
pub fn number_of(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Number(number) => number.as_f64()?,
        Value::String(text) => text.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    number.is_finite().then_some(number)
}

/// A value that is never found: what [`Event::root`] reads as for a broken event.
pub fn null() -> &'static Value {
    &NULL
}

fn walk<'a>(
    current: &'a Value,
    segments: &[String],
    visit: &mut dyn FnMut(&'a Value) -> bool,
) -> bool {
    let Some((head, rest)) = segments.split_first() else {
        return visit(current);
    };
    match current {
        Value::Object(map) => match map.get(head.as_str()) {
            Some(next) => walk(next, rest, visit),
            None => false,
        },
        Value::Array(items) => items.iter().any(|item| walk(item, segments, visit)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collect(event: &Value, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        Event::new(event).any_value(&FieldPath::new(path), &mut |v| {
            out.push(v.clone());
            false
        });
        out
    }

    #[test]
    fn nested_flat_and_fan_out() {
        let event = json!({
            "userIdentity": {"type": "Root", "sessionContext": {"mfa": "false"}},
            "flat.key": 1,
            "requestParameters": {"items": [{"cidrIp": "0.0.0.0/0"}, {"cidrIp": "10.0.0.0/8"}]}
        });
        assert_eq!(collect(&event, "userIdentity.type"), vec![json!("Root")]);
        assert_eq!(collect(&event, "flat.key"), vec![json!(1)]);
        assert_eq!(
            collect(&event, "requestParameters.items.cidrIp"),
            vec![json!("0.0.0.0/0"), json!("10.0.0.0/8")]
        );
        assert!(collect(&event, "userIdentity.missing").is_empty());
        assert!(collect(&event, "userIdentity.type.deeper").is_empty());
        let ev = Event::new(&event);
        assert!(ev.exists(&FieldPath::new("userIdentity")));
        assert!(!ev.exists(&FieldPath::new("nope")));
    }

    #[test]
    fn whole_floats_read_as_integers() {
        let text = |value: Value| text_of(&value).map(Cow::into_owned);
        assert_eq!(text(json!(10)).as_deref(), Some("10"));
        assert_eq!(text(json!(10.0)).as_deref(), Some("10"));
        assert_eq!(text(json!(-0.0)).as_deref(), Some("0"));
        assert_eq!(text(json!(10.5)).as_deref(), Some("10.5"));
        assert_eq!(text(json!(1e300)).as_deref(), Some("1e+300"));
        assert_eq!(
            text(json!(u64::MAX)).as_deref(),
            Some("18446744073709551615")
        );
    }

    /// The lazy view and a full serde_json parse agree on validity, type and every field,
    /// on the lines where the two parsers are known to differ.
    #[test]
    fn agrees_with_serde_json() {
        let deep_array = format!("{{\"a\":{}1{}}}", "[".repeat(300), "]".repeat(300));
        let deep_ok = format!("{{\"a\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        let lines = [
            r#"{"a":1,"b":[1,2}"#,
            r#"{"a":1} x"#,
            r#"{"a":1}  "#,
            r#"  {"a" : 1 , "c":[ ] } "#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\ud800\u0041"}"#,
            r#"{"a":"\ud83d\ude00","b":"\u00e9"}"#,
            r#"{"a":{"b":tru}}"#,
            r#"{"a":01}"#,
            "{\"a\":\"x\ty\"}",
            r#"{"a\u0062":1,"a":2,"a":3}"#,
            r#"{"k\"q":1}"#,
            r#"[1]"#,
            r#""text""#,
            r#"{}"#,
            r#"{ }"#,
            r#"{"a":-}"#,
            r#"{"a":1,}"#,
            r#"{"a":1}}"#,
            r#"{"a":1.0,"b":1e2,"c":-0,"d":18446744073709551616}"#,
            "",
            "{",
            deep_array.as_str(),
            deep_ok.as_str(),
        ];
        for line in lines {
            let strict = strict_parse(line);
            let lazy = Event::parse(line);
            match (&strict, &lazy) {
                (Ok(value), Ok(event)) => {
                    let Value::Object(map) = value else {
                        panic!("{line}: strict parse is not an object")
                    };
                    for (key, want) in map {
                        assert_eq!(event.get(key), Some(want), "{line}: {key}");
                    }
                    assert_eq!(event.root(), value, "{line}");
                    let mut n_top = 0;
                    event.any_top_value(&mut |_| {
                        n_top += 1;
                        false
                    });
                    assert_eq!(n_top, map.len(), "{line}");
                }
                (Err(want), Err(got)) => assert_eq!(want, got, "{line}"),
                _ => panic!("{line}: serde_json {strict:?}, lazy {lazy:?}"),
            }
        }
    }

    #[test]
    fn nested_reads_agree_with_the_materialized_walk() {
        // Every path below is read twice: by a fresh event (the raw nested reader) and by an
        // event whose head was materialized first (the walk over serde_json's value).
        let lines = [
            r#"{"u":{"type":"Root","arn":"a","s":{"i":{"n":"x"}}},"r":{"k":[{"c":"1"},{"c":"2"}]}}"#,
            r#"{"u":{"type":"A","type":"B"},"u":{"type":"C"}}"#,
            r#"{"u":{"t\"q":1,"t\u0041":2},"v":null}"#,
            r#"{"u":{"n":null,"e":{},"a":[],"f":1.50,"big":18446744073709551616}}"#,
            r#"{"u":"flat","w":[{"x":{"y":1}},{"x":{"y":2}}],"u.type":"literal"}"#,
            r#"{"u":{"s":"a\nb","o":{"p":[1,{"q":2}]}}}"#,
        ];
        let paths = [
            "u.type",
            "u.arn",
            "u.s.i.n",
            "u.s.i",
            "u.s.missing",
            "u.t\"q",
            "u.tA",
            "u.n",
            "u.e",
            "u.a",
            "u.f",
            "u.big",
            "u.type.deeper",
            "r.k.c",
            "r.k",
            "w.x.y",
            "u.s",
            "u.o.p",
            "u.o.p.q",
            "v.x",
            "missing.x",
        ];
        for line in lines {
            for path in paths {
                let field = FieldPath::new(path);
                let read = |event: &Event<'_>| {
                    let mut out = Vec::new();
                    let hit = event.any_value(&field, &mut |v| {
                        out.push(v.clone());
                        false
                    });
                    (hit, out)
                };
                let lazy = Event::parse(line).unwrap();
                let walked = Event::parse(line).unwrap();
                let _ = walked.get(field.segments[0].as_str());
                let whole = Event::new(&serde_json::from_str(line).unwrap());
                let _ = whole.root();
                assert_eq!(read(&lazy), read(&walked), "{line}: {path}");
                assert_eq!(read(&lazy), read(&whole), "{line}: {path}");
                // Cached: a second read gives the same.
                assert_eq!(read(&lazy), read(&walked), "{line}: {path} (again)");
            }
        }
    }

    #[test]
    fn a_nested_out_of_range_number_breaks_only_the_reader_of_its_leaf() {
        let event = Event::parse(r#"{"u":{"a":1e400,"b":"x"}}"#).unwrap();
        assert_eq!(event.first(&FieldPath::new("u.b")), Some(&json!("x")));
        assert!(!event.is_broken());
        assert_eq!(event.first(&FieldPath::new("u.a")), None);
        assert!(event.is_broken());
    }

    #[test]
    fn out_of_range_numbers_break_the_event_when_read() {
        let event = Event::parse(r#"{"a":1e400,"b":"x"}"#).unwrap();
        assert_eq!(event.get("b"), Some(&json!("x")));
        assert!(!event.is_broken());
        assert_eq!(event.get("a"), None);
        assert!(event.is_broken());
    }

    /// Trap: `check_whole` only builds events whose numbers may be out of range; it must still
    /// find every one, with an exponent or without (309 digits), nested or not.
    #[test]
    fn check_whole_finds_every_out_of_range_number() {
        let huge = format!("1{}", "0".repeat(309));
        let long_in_range = format!("0.{}", "1".repeat(400));
        for (text, broken) in [
            (r#"{"u":{"a":[1E400],"b":"x"}}"#.to_string(), true),
            (r#"{"a":-2e+308}"#.to_string(), true),
            (format!(r#"{{"u":{{"a":{huge}}}}}"#), true),
            (format!(r#"{{"a":-{huge}}}"#), true),
            (r#"{"a":1e300,"b":1.5,"c":-0}"#.to_string(), false),
            (format!(r#"{{"a":{long_in_range}}}"#), false),
            (r#"{"a":123456789012345678901234567890}"#.to_string(), false),
        ] {
            let event = Event::parse(&text).unwrap();
            assert!(!event.is_broken());
            event.check_whole();
            assert_eq!(event.is_broken(), broken, "{text}");
            assert_eq!(
                serde_json::from_str::<Value>(&text).is_err(),
                broken,
                "serde_json: {text}"
            );
        }
    }

    /// Trap: the flat lookup of a dotted path is skipped when no top-level key has a dot; a
    /// dot written as an escape must still count.
    #[test]
    fn flat_dotted_keys_are_found_however_written() {
        let path = FieldPath::new("a.b");
        for (text, want) in [
            (r#"{"a.b":1,"a":{"b":2}}"#, json!(1)),
            (r#"{"a":{"b":2},"a\u002eb":1}"#, json!(1)),
            (r#"{"a":{"b":2},"a\/b":3}"#, json!(2)),
            (r#"{"a":{"b":2}}"#, json!(2)),
        ] {
            let event = Event::parse(text).unwrap();
            assert_eq!(event.first(&path), Some(&want), "{text}");
        }
    }

    #[test]
    fn buffers_are_reused() {
        let mut buffers = EventBuffers::default();
        let event = Event::parse_with(r#"{"a":1,"b":2}"#, &mut buffers).unwrap();
        assert_eq!(event.get("b"), Some(&json!(2)));
        event.into_buffers(&mut buffers);
        assert!(buffers.slots.capacity() >= 2);
        let event = Event::parse_with(r#"{"c":3}"#, &mut buffers).unwrap();
        assert_eq!(event.get("c"), Some(&json!(3)));
        assert_eq!(event.get("a"), None);
    }

    /// A toy derivation: `upper` derives the upper-case text of `name` when the event does not
    /// carry `upper` itself.
    #[test]
    fn derived_values_are_cached_and_literal_fields_win() {
        fn upper(_path: &str, event: &Event<'_>) -> Option<Value> {
            let name = event.get("name")?.as_str()?;
            Some(Value::String(name.to_uppercase()))
        }
        let path = FieldPath {
            derive: Some(upper),
            ..FieldPath::new("upper")
        };
        let event = Event::parse(r#"{"name":"bob"}"#).unwrap();
        let first = event.first(&path).unwrap() as *const Value;
        assert_eq!(event.first(&path), Some(&json!("BOB")));
        assert_eq!(event.first(&path).unwrap() as *const Value, first);
        let literal = Event::parse(r#"{"name":"bob","upper":"given"}"#).unwrap();
        assert_eq!(literal.first(&path), Some(&json!("given")));
        let other = FieldPath {
            derive: Some(upper),
            ..FieldPath::new("other")
        };
        assert_eq!(event.first(&other), Some(&json!("BOB")));
        assert_eq!(event.first(&path), Some(&json!("BOB")));
        // The same name derived another way is cached apart.
        fn lower(_path: &str, event: &Event<'_>) -> Option<Value> {
            let name = event.get("name")?.as_str()?;
            Some(Value::String(format!("{name}!")))
        }
        let same_name = FieldPath {
            derive: Some(lower),
            ..FieldPath::new("upper")
        };
        assert_eq!(event.first(&same_name), Some(&json!("bob!")));
        assert_eq!(event.first(&path), Some(&json!("BOB")));
    }
}
