//! The rule index: the optimiser that picks, per event, the few rules worth evaluating.
//!
//! For every rule it derives from the IR a *necessary condition*: something that must be true
//! of an event for the rule to match. An event only evaluates the rules whose condition holds
//! (the candidates), and the full matcher ([`super::matcher`]) confirms each one, so the index
//! decides nothing: prefilter, then confirm (as the regex crate's literal prefilter and
//! tau-engine's optimiser do). A condition that holds too often (a false positive) only costs
//! time; a condition that fails when the rule would match would lose a detection, so every
//! extraction below errs on the side of "no condition".
//!
//! A condition is a disjunction of atoms; for each rule the best one the IR offers, in this
//! order of selectivity:
//! 1. **exact value**: field `f` has the text `v` (case-folded when the rule says so), looked
//!    up in one hash map per field and case mode for all rules;
//! 2. **needle**: field `f` contains `n` (from `startswith`, `endswith`, `contains`), found
//!    by one Aho-Corasick pass per field and case mode over all such needles;
//! 3. **keyword**: the raw line contains `n`, one Aho-Corasick pass over the line for all
//!    keyword rules. Exact only when no character of `n` can be written differently in JSON
//!    text: `n` is printable ASCII without `"`, `\` and `/`, has a character no number's text
//!    has, and the line has no `\u` escape (and, for a case-insensitive `n`, is ASCII, since
//!    Unicode folding maps a few non-ASCII characters to ASCII ones);
//! 4. **field present**: the field exists;
//!
//! and a rule with none (a `not`, a `null` test, a lone wildcard) is always a candidate.
//! `and` takes the most selective condition among its operands, `or` needs one from each
//! operand and joins them, `not` gives none (except `not null` and `not (absent)`, which mean
//! "present").
//!
//! `EngineConfig::use_index` (`--no-index`) turns the index off; the golden tests run every
//! case both ways and require identical output.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde_json::Value;

use super::matcher::any_scalar;
use crate::event::{Event, text_of};
use crate::ir::{Expr, FieldPath, Predicate, Rule, StrKind, fold_case};

/// One way for a rule's condition to hold.
#[derive(Clone, Debug, PartialEq)]
pub enum Atom {
    /// The field has this text (`cased`) or this folded text.
    Exact {
        path: FieldPath,
        value: String,
        cased: bool,
    },
    /// The field's text contains this needle (folded unless `cased`).
    Needle {
        path: FieldPath,
        needle: String,
        cased: bool,
    },
    /// The raw line contains this needle (folded unless `cased`; see the module doc).
    Keyword { needle: String, cased: bool },
    /// The field exists.
    Present(FieldPath),
}

impl Atom {
    fn rank(&self) -> u8 {
        match self {
            Atom::Exact { .. } => 0,
            Atom::Needle { .. } => 1,
            Atom::Keyword { .. } => 2,
            Atom::Present(_) => 3,
        }
    }
}

/// A necessary condition of an expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Need {
    /// None found: the rule is always a candidate.
    Always,
    /// At least one of these holds whenever the expression does (none: it never holds).
    AnyOf(Vec<Atom>),
}

impl Need {
    /// Lower is more selective: the weakest kind of atom first, then an estimate of how many
    /// events pass. An exact value of a field that rules ask `distinct` values of passes
    /// about one event in `distinct + 1` (`eventName` has many, `eventSource` few, so
    /// `eventName in (a, b)` passes fewer events than `eventSource eq "ec2..."`); any other
    /// atom is counted as passing every event.
    fn is_better(&self, other: &Need, distinct: &dyn Fn(&FieldPath) -> usize) -> bool {
        let (rank, pass) = self.cost(distinct);
        let (other_rank, other_pass) = other.cost(distinct);
        rank < other_rank || (rank == other_rank && pass.total_cmp(&other_pass).is_lt())
    }

    fn cost(&self, distinct: &dyn Fn(&FieldPath) -> usize) -> (u8, f64) {
        match self {
            Need::Always => (u8::MAX, f64::INFINITY),
            Need::AnyOf(atoms) => (
                atoms.iter().map(Atom::rank).max().unwrap_or(0),
                atoms
                    .iter()
                    .map(|atom| match atom {
                        Atom::Exact { path, .. } => 1.0 / (distinct(path) as f64 + 1.0),
                        _ => 1.0,
                    })
                    .sum(),
            ),
        }
    }
}

/// The necessary condition of `expr` (see the module doc), every field alike.
pub fn necessary(expr: &Expr) -> Need {
    necessary_ranked(expr, &|_| 0)
}

/// The necessary condition of `expr`; among equally good operands of an `and`, the one whose
/// exact-value fields have the most `distinct` values.
pub fn necessary_ranked(expr: &Expr, distinct: &dyn Fn(&FieldPath) -> usize) -> Need {
    let necessary = |expr: &Expr| necessary_ranked(expr, distinct);
    match expr {
        Expr::Const(true) => Need::Always,
        Expr::Const(false) => Need::AnyOf(Vec::new()),
        Expr::And(items) => {
            let mut best = Need::Always;
            for item in items {
                let need = necessary(item);
                if need == Need::AnyOf(Vec::new()) {
                    return need;
                }
                if need.is_better(&best, distinct) {
                    best = need;
                }
            }
            best
        }
        Expr::Or(items) => {
            let mut atoms = Vec::new();
            for item in items {
                match necessary(item) {
                    Need::Always => return Need::Always,
                    Need::AnyOf(more) => atoms.extend(more),
                }
            }
            Need::AnyOf(atoms)
        }
        Expr::Not(inner) => match inner.as_ref() {
            Expr::Field {
                path,
                pred: Predicate::Null | Predicate::Exists(false),
            } => Need::AnyOf(vec![Atom::Present(path.clone())]),
            _ => Need::Always,
        },
        Expr::Field { path, pred } => field_need(path, pred),
        // A computed value (ES|QL `EVAL` columns and the like) promises nothing the index can
        // look up; the rest of an `and` usually does.
        Expr::Value(_) => Need::Always,
        Expr::Keyword(matcher) => {
            let safe = match matcher.kind {
                StrKind::Glob => false,
                _ => keyword_needle_is_safe(&matcher.needle),
            };
            if safe {
                Need::AnyOf(vec![Atom::Keyword {
                    needle: matcher.needle.clone(),
                    cased: matcher.cased,
                }])
            } else {
                Need::Always
            }
        }
    }
}

/// Up to two necessary conditions of `expr` that must all hold: the best one of
/// [`necessary_ranked`], and for an `and`, the best condition of another operand when it is a
/// lookup (exact values or needles; a keyword pass or a presence test would cost more than it
/// saves). Rules that share their best condition (a rule and its near copies, which keep the
/// `eventName` and change another value) are then told apart before evaluation.
pub fn necessary_conjuncts(expr: &Expr, distinct: &dyn Fn(&FieldPath) -> usize) -> Vec<Need> {
    let Expr::And(items) = expr else {
        return vec![necessary_ranked(expr, distinct)];
    };
    let mut needs: Vec<Need> = Vec::with_capacity(items.len());
    for item in items {
        let need = necessary_ranked(item, distinct);
        if need == Need::AnyOf(Vec::new()) {
            return vec![need];
        }
        needs.push(need);
    }
    let Some(best) = (0..needs.len()).reduce(|best, at| {
        if needs[at].is_better(&needs[best], distinct) {
            at
        } else {
            best
        }
    }) else {
        return vec![Need::Always];
    };
    let lookup = |need: &Need| matches!(need, Need::AnyOf(atoms) if atoms.iter().all(|atom| atom.rank() <= 1));
    let second = (0..needs.len())
        .filter(|&at| at != best && lookup(&needs[at]) && needs[at] != needs[best])
        .reduce(|kept, at| {
            if needs[at].is_better(&needs[kept], distinct) {
                at
            } else {
                kept
            }
        });
    let mut out = vec![needs[best].clone()];
    if let Some(second) = second
        && lookup(&needs[best])
    {
        out.push(needs[second].clone());
    }
    out
}

fn field_need(path: &FieldPath, pred: &Predicate) -> Need {
    let present = || Need::AnyOf(vec![Atom::Present(path.clone())]);
    match pred {
        // Both hold for an absent field.
        Predicate::Null | Predicate::Exists(false) => Need::Always,
        Predicate::Str(matcher) => match matcher.kind {
            StrKind::Exact => Need::AnyOf(vec![Atom::Exact {
                path: path.clone(),
                value: matcher.needle.clone(),
                cased: matcher.cased,
            }]),
            StrKind::Prefix | StrKind::Suffix | StrKind::Contains => {
                // An empty needle matches any text; a folded non-ASCII needle would need
                // Unicode folding of the haystack, which the ASCII automaton does not do.
                if matcher.needle.is_empty() || (!matcher.cased && !matcher.needle.is_ascii()) {
                    present()
                } else {
                    Need::AnyOf(vec![Atom::Needle {
                        path: path.clone(),
                        needle: matcher.needle.clone(),
                        cased: matcher.cased,
                    }])
                }
            }
            StrKind::Glob => present(),
        },
        Predicate::Regex(regex) => match regex_needles(regex.as_str()) {
            Some(needles) => Need::AnyOf(
                needles
                    .into_iter()
                    .map(|needle| Atom::Needle {
                        path: path.clone(),
                        needle,
                        cased: true,
                    })
                    .collect(),
            ),
            None => present(),
        },
        Predicate::Exists(true)
        | Predicate::Num { .. }
        | Predicate::Cidr(_)
        | Predicate::FieldRef { .. }
        | Predicate::DatePart { .. } => present(),
    }
}

/// Literals one of which every match of `pattern` contains, as written (case-sensitive), or
/// None when the pattern promises none: a literal in a sequence is required, an alternation
/// requires one of its branches' literals, a repetition at least once requires its body's.
/// Case-insensitive letters are classes, not literals, so `(?i)` patterns give none. Parsed
/// with the defaults of `regex::Regex::new`, which builds every IR regex.
fn regex_needles(pattern: &str) -> Option<Vec<String>> {
    use regex_syntax::hir::{Hir, HirKind};
    /// More alternatives than this cost more in the automaton than they save.
    const MAX_NEEDLES: usize = 16;
    fn required(hir: &Hir) -> Option<Vec<String>> {
        match hir.kind() {
            HirKind::Literal(literal) => {
                let text = std::str::from_utf8(&literal.0).ok()?;
                (!text.is_empty()).then(|| vec![text.to_string()])
            }
            HirKind::Capture(capture) => required(&capture.sub),
            HirKind::Repetition(repetition) if repetition.min >= 1 => required(&repetition.sub),
            // The operand whose shortest literal is longest: the most selective.
            HirKind::Concat(items) => items
                .iter()
                .filter_map(required)
                .max_by_key(|needles| needles.iter().map(String::len).min().unwrap_or(0)),
            HirKind::Alternation(items) => {
                let mut all = Vec::new();
                for item in items {
                    all.extend(required(item)?);
                }
                (all.len() <= MAX_NEEDLES).then_some(all)
            }
            _ => None,
        }
    }
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    required(&hir)
}

/// Whether a keyword needle found in a value is also found, as is, in a raw line without
/// escapes (see the module doc): printable ASCII, with a character no number's text has.
fn keyword_needle_is_safe(needle: &str) -> bool {
    !needle.is_empty()
        && needle.bytes().all(|b| (0x20..0x7f).contains(&b))
        && needle
            .bytes()
            .any(|b| !matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
}

/// Whether a safe keyword needle is also found as is in a line whose only escapes are not
/// `\u` escapes: it has no character JSON may write with another escape.
fn keyword_needle_survives_escapes(needle: &str) -> bool {
    !needle.bytes().any(|b| matches!(b, b'"' | b'\\' | b'/'))
}

/// The index over a set of rules (those of one log-source route).
pub struct RuleIndex {
    /// Rules with no necessary condition.
    always: Vec<usize>,
    /// Per rule (by its index in the rule list), the bits of its conditions
    /// ([`necessary_conjuncts`]): `0b1` for one, `0b11` for two. The lookup tables below hold
    /// *entries*, `2 * rule + bit`: an entry found sets that bit, and the rule is a candidate
    /// once every bit of its mask is set.
    masks: Vec<u8>,
    exact: Vec<ExactField>,
    needles: Vec<NeedleField>,
    /// Keyword needles by `2 * folded + escape_sensitive`: case-folded or not, and whether
    /// the needle has a character JSON may write as a short escape (`\"`, `\\`, `\/`).
    keywords: [Option<Automaton>; 4],
    present: Vec<(FieldPath, Vec<usize>)>,
}

struct ExactField {
    path: FieldPath,
    cased: ExactMap,
    folded: ExactMap,
}

/// Exact values to rules. Hashed with foldhash rather than SipHash: the keys are the rules'
/// constants, fixed when the index is built, and events only look them up, so there is no
/// insertion an attacker could steer into collisions; SipHash was a tenth of the time of the
/// 57 SigmaHQ CloudTrail rules (callgrind).
type ExactMap = HashMap<String, Vec<usize>, foldhash::fast::RandomState>;

struct NeedleField {
    path: FieldPath,
    cased: Option<Automaton>,
    folded: Option<Automaton>,
}

/// Needles, each with the rules it stands for, before they are compiled.
type NeedleList = Vec<(String, Vec<usize>)>;

/// Needles and, per needle, the rules it stands for.
struct Automaton {
    searcher: AhoCorasick,
    rules: Vec<Vec<usize>>,
}

impl Automaton {
    fn build(
        needles: Vec<(String, Vec<usize>)>,
        ascii_case_insensitive: bool,
    ) -> Option<Automaton> {
        if needles.is_empty() {
            return None;
        }
        let searcher = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .ascii_case_insensitive(ascii_case_insensitive)
            .build(needles.iter().map(|(needle, _)| needle.as_bytes()))
            .ok()?;
        Some(Automaton {
            searcher,
            rules: needles.into_iter().map(|(_, rules)| rules).collect(),
        })
    }

    /// Every rule of every needle found in `haystack`.
    fn each_rule(&self, haystack: &str, add: &mut dyn FnMut(usize)) {
        for found in self.searcher.find_overlapping_iter(haystack) {
            for &rule in &self.rules[found.pattern().as_usize()] {
                add(rule);
            }
        }
    }

    fn all_rules(&self, add: &mut dyn FnMut(usize)) {
        for rules in &self.rules {
            for &rule in rules {
                add(rule);
            }
        }
    }
}

/// Per-event scratch of [`RuleIndex::candidates`], reused between events.
#[derive(Debug, Default)]
pub struct IndexScratch {
    /// `marks[rule] == epoch` when `bits[rule]` holds this event's conditions of the rule.
    marks: Vec<u32>,
    bits: Vec<u8>,
    epoch: u32,
    /// The case-folded text of a value, reused from event to event.
    folded: String,
}

impl RuleIndex {
    /// Indexes `rule_ids` (indexes into `rules`).
    pub fn new(rules: &[Rule], rule_ids: &[usize]) -> RuleIndex {
        let mut always = Vec::new();
        let mut exact: Vec<ExactField> = Vec::new();
        let mut needles: HashMap<FieldPath, [NeedleList; 2]> = HashMap::new();
        let mut needle_order: Vec<FieldPath> = Vec::new();
        let mut keywords: [NeedleList; 4] = Default::default();
        let mut present: Vec<(FieldPath, Vec<usize>)> = Vec::new();
        let add_needle =
            |list: &mut Vec<(String, Vec<usize>)>, needle: &str, rule: usize| match list
                .iter_mut()
                .find(|(known, _)| known == needle)
            {
                Some((_, rules)) => rules.push(rule),
                None => list.push((needle.to_string(), vec![rule])),
            };
        let mut values: HashMap<&FieldPath, std::collections::HashSet<&str>> = HashMap::new();
        for &rule in rule_ids {
            exact_values(&rules[rule].expr, &mut values);
        }
        let distinct = |path: &FieldPath| values.get(path).map_or(0, |set| set.len());
        let mut masks = vec![0u8; rule_ids.iter().max().map_or(0, |&max| max + 1)];
        let all_needs: Vec<Vec<Need>> = rule_ids
            .iter()
            .map(|&rule| necessary_conjuncts(&rules[rule].expr, &distinct))
            .collect();
        // A second condition costs a lookup per event: it is kept only where another rule has
        // the same best condition (near copies), the one case it tells rules apart.
        let mut shared: HashMap<String, usize> = HashMap::new();
        for needs in &all_needs {
            *shared.entry(format!("{:?}", needs[0])).or_default() += 1;
        }
        for (&rule, mut needs) in rule_ids.iter().zip(all_needs) {
            if needs.len() > 1 && shared.get(&format!("{:?}", needs[0])) == Some(&1) {
                needs.truncate(1);
            }
            let needs: Vec<Vec<Atom>> = needs
                .into_iter()
                .filter_map(|need| match need {
                    Need::Always => None,
                    Need::AnyOf(atoms) => Some(atoms),
                })
                .collect();
            if needs.is_empty() {
                always.push(rule);
                continue;
            }
            masks[rule] = (1u8 << needs.len()) - 1;
            let atoms = needs
                .into_iter()
                .enumerate()
                .flat_map(|(bit, atoms)| atoms.into_iter().map(move |atom| (2 * rule + bit, atom)));
            for (rule, atom) in atoms {
                match atom {
                    Atom::Exact { path, value, cased } => {
                        let field = match exact.iter_mut().position(|field| field.path == path) {
                            Some(at) => &mut exact[at],
                            None => {
                                exact.push(ExactField {
                                    path,
                                    cased: ExactMap::default(),
                                    folded: ExactMap::default(),
                                });
                                let last = exact.len() - 1;
                                &mut exact[last]
                            }
                        };
                        let map = if cased {
                            &mut field.cased
                        } else {
                            &mut field.folded
                        };
                        map.entry(value).or_default().push(rule);
                    }
                    Atom::Needle {
                        path,
                        needle,
                        cased,
                    } => {
                        if !needles.contains_key(&path) {
                            needle_order.push(path.clone());
                        }
                        let lists = needles.entry(path).or_default();
                        add_needle(&mut lists[usize::from(!cased)], &needle, rule);
                    }
                    Atom::Keyword { needle, cased } => {
                        let sensitive = !keyword_needle_survives_escapes(&needle);
                        let slot = 2 * usize::from(!cased) + usize::from(sensitive);
                        add_needle(&mut keywords[slot], &needle, rule);
                    }
                    Atom::Present(path) => {
                        match present.iter_mut().find(|(known, _)| *known == path) {
                            Some((_, rules)) => rules.push(rule),
                            None => present.push((path, vec![rule])),
                        }
                    }
                }
            }
        }
        let needles = needle_order
            .into_iter()
            .filter_map(|path| {
                let [cased, folded] = needles.remove(&path)?;
                Some(NeedleField {
                    path,
                    cased: Automaton::build(cased, false),
                    folded: Automaton::build(folded, true),
                })
            })
            .collect();
        let [cased_plain, cased_sensitive, folded_plain, folded_sensitive] = keywords;
        RuleIndex {
            always,
            masks,
            exact,
            needles,
            keywords: [
                Automaton::build(cased_plain, false),
                Automaton::build(cased_sensitive, false),
                Automaton::build(folded_plain, true),
                Automaton::build(folded_sensitive, true),
            ],
            present,
        }
    }

    /// The candidate rules of `event`, in increasing order, into `out` (cleared first).
    pub fn candidates(&self, event: &Event<'_>, scratch: &mut IndexScratch, out: &mut Vec<usize>) {
        out.clear();
        scratch.epoch = scratch.epoch.wrapping_add(1);
        if scratch.epoch == 0 {
            scratch.marks.iter_mut().for_each(|mark| *mark = 0);
            scratch.epoch = 1;
        }
        let epoch = scratch.epoch;
        if scratch.marks.len() < self.masks.len() {
            scratch.marks.resize(self.masks.len(), 0);
            scratch.bits.resize(self.masks.len(), 0);
        }
        let (marks, bits) = (&mut scratch.marks, &mut scratch.bits);
        let folded = &mut scratch.folded;
        out.extend_from_slice(&self.always);
        let masks = &self.masks;
        let mut add = |entry: usize| {
            let rule = entry / 2;
            if marks[rule] != epoch {
                marks[rule] = epoch;
                bits[rule] = 0;
            }
            let before = bits[rule];
            bits[rule] |= 1 << (entry % 2);
            if bits[rule] != before && bits[rule] == masks[rule] {
                out.push(rule);
            }
        };
        for field in &self.exact {
            event.any_value(&field.path, &mut |value| {
                any_scalar(value, &mut |scalar| {
                    exact_lookup(field, scalar, folded, &mut add);
                    false
                })
            });
        }
        for field in &self.needles {
            event.any_value(&field.path, &mut |value| {
                any_scalar(value, &mut |scalar| {
                    let Some(text) = text_of(scalar) else {
                        return false;
                    };
                    if let Some(automaton) = &field.cased {
                        automaton.each_rule(&text, &mut add);
                    }
                    if let Some(automaton) = &field.folded {
                        if text.is_ascii() {
                            automaton.each_rule(&text, &mut add);
                        } else {
                            automaton.all_rules(&mut add);
                        }
                    }
                    false
                })
            });
        }
        if self.keywords.iter().any(Option::is_some) {
            let text = event.text();
            let ascii = text.is_ascii();
            for (slot, automaton) in self.keywords.iter().enumerate() {
                let Some(automaton) = automaton else {
                    continue;
                };
                let (folded, sensitive) = (slot >= 2, slot % 2 == 1);
                let escaped = if sensitive {
                    event.has_escape()
                } else {
                    event.has_unicode_escape()
                };
                if escaped || (folded && !ascii) {
                    automaton.all_rules(&mut add);
                } else {
                    automaton.each_rule(text, &mut add);
                }
            }
        }
        for (path, rules) in &self.present {
            if event.exists(path) {
                for &rule in rules {
                    add(rule);
                }
            }
        }
        out.sort_unstable();
    }
}

/// Every exact value rules ask of each field.
fn exact_values<'r>(
    expr: &'r Expr,
    out: &mut HashMap<&'r FieldPath, std::collections::HashSet<&'r str>>,
) {
    match expr {
        Expr::And(items) | Expr::Or(items) => items.iter().for_each(|item| exact_values(item, out)),
        Expr::Not(inner) => exact_values(inner, out),
        Expr::Field {
            path,
            pred: Predicate::Str(matcher),
        } if matcher.kind == StrKind::Exact => {
            out.entry(path).or_default().insert(matcher.needle.as_str());
        }
        _ => {}
    }
}

fn exact_lookup(
    field: &ExactField,
    scalar: &Value,
    folded: &mut String,
    add: &mut dyn FnMut(usize),
) {
    let Some(text) = text_of(scalar) else {
        return;
    };
    if let Some(rules) = field.cased.get(text.as_ref()) {
        rules.iter().for_each(|&rule| add(rule));
    }
    if !field.folded.is_empty() {
        let hit = if !text.is_ascii() {
            field.folded.get(&fold_case(&text))
        } else if text.bytes().any(|b| b.is_ascii_uppercase()) {
            // fold_case of ASCII text, into the reused buffer.
            folded.clear();
            folded.push_str(&text);
            folded.make_ascii_lowercase();
            field.folded.get(folded.as_str())
        } else {
            field.folded.get(text.as_ref())
        };
        if let Some(rules) = hit {
            rules.iter().for_each(|&rule| add(rule));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{CmpOp, StrMatch};

    fn str_field(path: &str, kind: StrKind, needle: &str, cased: bool) -> Expr {
        Expr::field(path, Predicate::Str(StrMatch::new(kind, needle, cased)))
    }

    fn exact(path: &str, value: &str, cased: bool) -> Atom {
        Atom::Exact {
            path: FieldPath::new(path),
            value: value.to_string(),
            cased,
        }
    }

    #[test]
    fn and_takes_the_most_selective_operand() {
        let expr = Expr::and(vec![
            Expr::field("a", Predicate::Exists(true)),
            str_field("ua", StrKind::Contains, "curl", false),
            str_field("eventName", StrKind::Exact, "CreateUser", false),
        ]);
        assert_eq!(
            necessary(&expr),
            Need::AnyOf(vec![exact("eventName", "createuser", false)])
        );
    }

    #[test]
    fn or_joins_and_gives_up_on_an_unconstrained_operand() {
        let expr = Expr::or(vec![
            str_field("eventName", StrKind::Exact, "A", true),
            str_field("ua", StrKind::Prefix, "Boto", false),
        ]);
        assert_eq!(
            necessary(&expr),
            Need::AnyOf(vec![
                exact("eventName", "A", true),
                Atom::Needle {
                    path: FieldPath::new("ua"),
                    needle: "boto".to_string(),
                    cased: false
                }
            ])
        );
        let open = Expr::or(vec![
            str_field("eventName", StrKind::Exact, "A", true),
            Expr::field("errorCode", Predicate::Null),
        ]);
        assert_eq!(necessary(&open), Need::Always);
    }

    #[test]
    fn ties_go_to_the_field_with_more_distinct_values() {
        let expr = Expr::and(vec![
            str_field("eventSource", StrKind::Exact, "ec2.amazonaws.com", false),
            str_field("eventName", StrKind::Exact, "CreateRoute", false),
        ]);
        let distinct = |path: &FieldPath| if path.raw == "eventName" { 50 } else { 5 };
        assert_eq!(
            necessary_ranked(&expr, &distinct),
            Need::AnyOf(vec![exact("eventName", "createroute", false)])
        );
    }

    #[test]
    fn not_gives_no_condition_except_not_null() {
        let negated = Expr::not(str_field("eventName", StrKind::Exact, "A", false));
        assert_eq!(necessary(&negated), Need::Always);
        let not_null = Expr::not(Expr::field("errorCode", Predicate::Null));
        assert_eq!(
            necessary(&not_null),
            Need::AnyOf(vec![Atom::Present(FieldPath::new("errorCode"))])
        );
        let filtered = Expr::and(vec![
            str_field("eventName", StrKind::Exact, "A", false),
            Expr::not(str_field("user", StrKind::Exact, "admin", false)),
        ]);
        assert_eq!(
            necessary(&filtered),
            Need::AnyOf(vec![exact("eventName", "a", false)])
        );
    }

    #[test]
    fn numeric_null_and_constant_predicates() {
        let num = Expr::field(
            "n",
            Predicate::Num {
                op: CmpOp::Gt,
                value: 1.0,
            },
        );
        assert_eq!(
            necessary(&num),
            Need::AnyOf(vec![Atom::Present(FieldPath::new("n"))])
        );
        assert_eq!(necessary(&Expr::field("n", Predicate::Null)), Need::Always);
        assert_eq!(
            necessary(&Expr::field("n", Predicate::Exists(false))),
            Need::Always
        );
        assert_eq!(necessary(&Expr::Const(false)), Need::AnyOf(Vec::new()));
        assert_eq!(necessary(&Expr::Const(true)), Need::Always);
    }

    #[test]
    fn case_insensitive_non_ascii_needles_fall_back_to_presence() {
        let expr = str_field("a", StrKind::Contains, "ÄRGER", false);
        assert_eq!(
            necessary(&expr),
            Need::AnyOf(vec![Atom::Present(FieldPath::new("a"))])
        );
        let cased = str_field("a", StrKind::Contains, "ÄRGER", true);
        assert!(
            matches!(&necessary(&cased), Need::AnyOf(atoms) if matches!(atoms[0], Atom::Needle { .. }))
        );
    }

    #[test]
    fn keyword_needles_only_when_the_raw_text_shows_them() {
        let keyword = |needle: &str| Expr::Keyword(StrMatch::new(StrKind::Contains, needle, false));
        assert_eq!(
            necessary(&keyword("Mimikatz")),
            Need::AnyOf(vec![Atom::Keyword {
                needle: "mimikatz".to_string(),
                cased: false
            }])
        );
        // Numbers have another text in the line (`1e1` is 10) and non-ASCII may be written
        // as `\u` escapes; quotes and slashes may be escaped, so such needles are kept apart
        // and only searched in lines without any escape.
        for needle in ["10", "1.5e+3", "é", ""] {
            assert_eq!(necessary(&keyword(needle)), Need::Always, "{needle}");
        }
        assert!(keyword_needle_is_safe("c:/x") && !keyword_needle_survives_escapes("c:/x"));
        assert!(keyword_needle_survives_escapes("mimikatz"));
    }

    /// Candidates are a superset of the matches, on events built to hit each atom kind.
    #[test]
    fn candidates_cover_every_match() {
        let rule = test_rule;
        let rules = vec![
            rule(str_field("eventName", StrKind::Exact, "CreateUser", false)),
            rule(str_field("ua", StrKind::Suffix, "Boto3", true)),
            rule(Expr::Keyword(StrMatch::new(
                StrKind::Contains,
                "secret",
                false,
            ))),
            rule(Expr::field(
                "n",
                Predicate::Num {
                    op: CmpOp::Gt,
                    value: 1.0,
                },
            )),
            rule(Expr::not(str_field(
                "eventName",
                StrKind::Exact,
                "x",
                false,
            ))),
            rule(str_field("n", StrKind::Exact, "10", false)),
            rule(str_field("list", StrKind::Exact, "b", false)),
            rule(Expr::Keyword(StrMatch::new(StrKind::Contains, "a/b", true))),
        ];
        let ids: Vec<usize> = (0..rules.len()).collect();
        let index = RuleIndex::new(&rules, &ids);
        let events = [
            r#"{"eventName":"CREATEUSER"}"#,
            r#"{"ua":"aws-cli Boto3"}"#,
            r#"{"ua":"aws-cli boto3"}"#,
            r#"{"x":{"y":["TopSecret"]}}"#,
            r#"{"x":"\u0053ecret"}"#,
            r#"{"n":1e1}"#,
            r#"{"list":["a","B"]}"#,
            r#"{"path":"a\/b"}"#,
            r#"{"path":"a/b"}"#,
            r#"{}"#,
        ];
        let mut scratch = IndexScratch::default();
        let mut out = Vec::new();
        for text in events {
            let event = Event::parse(text).unwrap();
            index.candidates(&event, &mut scratch, &mut out);
            let matched: Vec<usize> = ids
                .iter()
                .copied()
                .filter(|&id| super::super::matcher::matches(&rules[id].expr, &event))
                .collect();
            for id in &matched {
                assert!(
                    out.contains(id),
                    "{text}: rule {id} matched but not a candidate {out:?}"
                );
            }
            // The index does filter: the negated rule is always there, others only on a hit.
            assert!(out.len() < rules.len(), "{text}: {out:?}");
        }
    }

    /// Trap: a literal taken from a regex must be in every text the regex matches.
    #[test]
    fn regex_needles_are_in_every_match() {
        let cases: &[(&str, Option<&[&str]>)] = &[
            (".+:assumed-role/aws:.+", Some(&[":assumed-role/aws:"])),
            ("^(?:foo|bar)-x$", Some(&["foo", "bar"])),
            ("(ab)+c", Some(&["ab"])),
            ("x{2,}", Some(&["xx"])),
            ("(?i)abc", None),
            ("a*b?", None),
            ("\\d+", None),
            ("a|b*", None),
            ("", None),
            ("[", None),
        ];
        for (pattern, want) in cases {
            let got = regex_needles(pattern);
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            // Which literal stands for a sequence may change; that each is required may not.
            match (&got, &want) {
                (Some(got), Some(want)) => {
                    assert!(
                        got.iter()
                            .all(|g| want.iter().any(|w| w.contains(g.as_str()))),
                        "{pattern}: {got:?}"
                    )
                }
                _ => assert_eq!(got, want, "{pattern}"),
            }
            let Some(needles) = got else { continue };
            let re = regex::Regex::new(pattern).unwrap();
            for hay in [
                "arn:aws:sts::1:assumed-role/aws:x/i-1",
                "foo-x",
                "bar-x",
                "ababc",
                "xxx",
                "ABC",
                "c",
            ] {
                if re.is_match(hay) {
                    assert!(
                        needles.iter().any(|n| hay.contains(n.as_str())),
                        "{pattern} on {hay}: {needles:?}"
                    );
                }
            }
        }
    }

    /// Near copies of a rule keep its best condition (`eventName`) and differ in another
    /// operand of the `and`: the second condition keeps them from being candidates.
    #[test]
    fn second_conditions_tell_near_copies_apart() {
        let and = |source: &str| {
            Expr::and(vec![
                str_field("eventName", StrKind::Exact, "createuser", false),
                str_field("eventSource", StrKind::Exact, source, false),
            ])
        };
        let rules: Vec<Rule> = [and("iam.amazonaws.com"), and("iam.amazonawz.com")]
            .into_iter()
            .chain([Expr::or(vec![
                str_field("eventName", StrKind::Exact, "createuser", false),
                str_field("userAgent", StrKind::Contains, "boto", true),
            ])])
            .chain([Expr::and(vec![
                str_field("eventName", StrKind::Exact, "createuser", false),
                Expr::not(str_field("eventSource", StrKind::Exact, "x", false)),
            ])])
            // More distinct `eventName` values than `eventSource` ones: `eventName` is the
            // best condition, shared by the copies, as in a real rule set.
            .chain(["a", "b"].map(|name| str_field("eventName", StrKind::Exact, name, false)))
            .map(test_rule)
            .collect();
        let ids: Vec<usize> = (0..rules.len()).collect();
        let index = RuleIndex::new(&rules, &ids);
        assert_eq!(necessary_conjuncts(&rules[0].expr, &|_| 0).len(), 2);
        // A rule alone with its best condition gets no second one (it would only cost).
        let alone = RuleIndex::new(&rules, &[0]);
        assert_eq!(alone.masks[0], 0b1);
        assert_eq!(index.masks[0], 0b11);
        let mut scratch = IndexScratch::default();
        let mut out = Vec::new();
        for (text, want) in [
            (
                r#"{"eventName":"CreateUser","eventSource":"iam.amazonaws.com"}"#,
                vec![0, 2, 3],
            ),
            (
                r#"{"eventName":"CreateUser","eventSource":"IAM.amazonawz.com"}"#,
                vec![1, 2, 3],
            ),
            (
                r#"{"eventName":"DeleteUser","eventSource":"iam.amazonaws.com"}"#,
                vec![],
            ),
            (
                r#"{"eventSource":"iam.amazonaws.com","userAgent":"boto3"}"#,
                vec![2],
            ),
        ] {
            index.candidates(&Event::parse(text).unwrap(), &mut scratch, &mut out);
            assert_eq!(out, want, "{text}");
        }
    }

    fn test_rule(expr: Expr) -> Rule {
        use crate::ir::{LogSource, Meta};
        Rule {
            meta: Meta {
                id: String::new(),
                name: None,
                title: String::new(),
                format: crate::ir::Format::Sigma,
                severity: crate::ir::Severity::Low,
                tags: Vec::new(),
                attack: Default::default(),
                description: None,
                references: Vec::new(),
                fields: Vec::new(),
                source: crate::ir::SourceLoc {
                    path: String::new(),
                    line: None,
                },
                doc: Default::default(),
            },
            logsource: LogSource::default(),
            expr,
            extra: crate::ir::RuleExtra::default(),
        }
    }
}
