//! A validating scanner over JSON text that records where each member of one object sits,
//! without building anything: the top level of every line, and nested objects on demand.
//!
//! It accepts exactly the JSON that serde_json accepts (RFC 8259: whitespace is space, tab,
//! LF and CR; no leading zeros; strings without raw control characters; the nine escapes),
//! with two differences its callers settle: it does not check that a `\u` escape pairs its
//! surrogates, and it does not check that a number fits an `f64` (`1e400`). A line with a
//! `\u` escape is judged by serde_json first ([`super::Event`]), and a number is checked when
//! a rule reads it. Nesting is walked with an explicit stack, so depth costs no call stack,
//! and text nested deeper than [`MAX_DEPTH`] is refused: the caller then asks serde_json,
//! whose depth limit is the one that applies.
//!
//! Strings are skipped sixteen bytes at a time (SSE2) or eight (a `u64`): a block with no
//! `"`, `\` or byte below 0x20 is passed over whole, and in a block with one the first such
//! byte is found by its bit.

use std::ops::Range;

/// What a scan saw besides the structure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Some string has an escape.
    pub escape: bool,
    /// Some string has a `\u` escape.
    pub unicode_escape: bool,
    /// Some number may be beyond the range of `f64` (which serde_json refuses): it has an
    /// exponent, or [`LONG_NUMBER`] characters or more. Any other number is below 1e300.
    pub big_number: bool,
}

/// Numbers at least this long (sign, digits, `.`) are flagged in [`Seen::big_number`]: an `f64`
/// overflows only past 1.8e308, which without an exponent takes 309 integer digits.
pub const LONG_NUMBER: usize = 300;

/// One member of an object: the key's text between its quotes (escapes not decoded; see
/// `key_escaped`) and the value's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub key: Range<usize>,
    pub key_escaped: bool,
    pub value: Range<usize>,
}

/// The members of the object that starts at `start` (after any whitespace) in `bytes`, in
/// order, through `visit`; returns the offset just past the closing brace. Err when the text
/// there is not one valid JSON object.
pub fn object(
    bytes: &[u8],
    start: usize,
    seen: &mut Seen,
    visit: &mut dyn FnMut(Member),
) -> Result<usize, ()> {
    let mut i = skip_ws(bytes, start);
    if bytes.get(i) != Some(&b'{') {
        return Err(());
    }
    i = skip_ws(bytes, i + 1);
    if bytes.get(i) == Some(&b'}') {
        return Ok(i + 1);
    }
    loop {
        if bytes.get(i) != Some(&b'"') {
            return Err(());
        }
        let (key_end, key_escaped) = string(bytes, i, seen)?;
        let key = i + 1..key_end - 1;
        i = skip_ws(bytes, key_end);
        if bytes.get(i) != Some(&b':') {
            return Err(());
        }
        let value_start = skip_ws(bytes, i + 1);
        let value_end = value(bytes, value_start, seen)?;
        visit(Member {
            key,
            key_escaped,
            value: value_start..value_end,
        });
        i = skip_ws(bytes, value_end);
        match bytes.get(i) {
            Some(b',') => i = skip_ws(bytes, i + 1),
            Some(b'}') => return Ok(i + 1),
            _ => return Err(()),
        }
    }
}

/// Whether `bytes[from..]` is whitespace only.
pub fn only_ws(bytes: &[u8], from: usize) -> bool {
    skip_ws(bytes, from) == bytes.len()
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(i) {
        i += 1;
    }
    i
}

/// The most containers open at once below the scanned object; deeper text is refused, and the
/// caller hands it to serde_json, whose own depth limit (128) then decides. Real CloudTrail
/// nests far less.
pub const MAX_DEPTH: usize = 100;

/// The offset just past the value that starts at `i`.
fn value(bytes: &[u8], mut i: usize, seen: &mut Seen) -> Result<usize, ()> {
    // Open containers, innermost last: true for an object.
    let mut stack = [false; MAX_DEPTH];
    let mut depth = 0;
    loop {
        // A value starts at i.
        match bytes.get(i) {
            Some(b'{') => {
                i = skip_ws(bytes, i + 1);
                if bytes.get(i) == Some(&b'}') {
                    i += 1;
                } else {
                    if depth == MAX_DEPTH {
                        return Err(());
                    }
                    stack[depth] = true;
                    depth += 1;
                    i = member_key(bytes, i, seen)?;
                    continue;
                }
            }
            Some(b'[') => {
                i = skip_ws(bytes, i + 1);
                if bytes.get(i) == Some(&b']') {
                    i += 1;
                } else {
                    if depth == MAX_DEPTH {
                        return Err(());
                    }
                    stack[depth] = false;
                    depth += 1;
                    continue;
                }
            }
            Some(b'"') => i = string(bytes, i, seen)?.0,
            Some(b'-' | b'0'..=b'9') => {
                let start = i;
                i = number(bytes, i)?;
                if !seen.big_number
                    && (i - start >= LONG_NUMBER
                        || bytes[start..i].iter().any(|&b| matches!(b, b'e' | b'E')))
                {
                    seen.big_number = true;
                }
            }
            Some(b't') => i = literal(bytes, i, b"true")?,
            Some(b'f') => i = literal(bytes, i, b"false")?,
            Some(b'n') => i = literal(bytes, i, b"null")?,
            _ => return Err(()),
        }
        // A value ended at i: close containers until one continues.
        loop {
            if depth == 0 {
                return Ok(i);
            }
            i = skip_ws(bytes, i);
            let in_object = stack[depth - 1];
            match bytes.get(i) {
                Some(b',') => {
                    i = skip_ws(bytes, i + 1);
                    if in_object {
                        i = member_key(bytes, i, seen)?;
                    }
                    break;
                }
                Some(b'}') if in_object => {
                    depth -= 1;
                    i += 1;
                }
                Some(b']') if !in_object => {
                    depth -= 1;
                    i += 1;
                }
                _ => return Err(()),
            }
        }
    }
}

/// A member's `"key" :` at `i`; the offset of its value (whitespace skipped).
fn member_key(bytes: &[u8], i: usize, seen: &mut Seen) -> Result<usize, ()> {
    if bytes.get(i) != Some(&b'"') {
        return Err(());
    }
    let i = skip_ws(bytes, string(bytes, i, seen)?.0);
    if bytes.get(i) != Some(&b':') {
        return Err(());
    }
    Ok(skip_ws(bytes, i + 1))
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The bytes of `word` (little-endian) that are `"`, `\` or below 0x20, each flagged by its
/// high bit. Bits above the lowest flagged byte may be false (a borrow carries upward); the
/// lowest flag is always exact, and a word with none has no such byte.
fn special_bytes(word: u64) -> u64 {
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let quote = zero_in(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    quote | backslash | control
}

/// The offset of the first `"`, `\` or byte below 0x20 at or after `i` (`bytes.len()` when
/// there is none): sixteen bytes at a time with SSE2 (part of every x86_64), then eight at a
/// time in a `u64`, then one by one.
fn skip_plain(bytes: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is in the x86_64 baseline, so these intrinsics are always available;
        // each load reads the 16 bytes at `i`, inside `bytes` by the loop condition, and
        // `_mm_loadu_si128` has no alignment requirement.
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let max_control = _mm_set1_epi8(0x1f);
            while i + 16 <= bytes.len() {
                let chunk = _mm_loadu_si128(bytes.as_ptr().add(i).cast::<__m128i>());
                // min(byte, 0x1f) == byte exactly when byte <= 0x1f (unsigned).
                let control = _mm_cmpeq_epi8(_mm_min_epu8(chunk, max_control), chunk);
                let hits = _mm_or_si128(
                    _mm_or_si128(
                        _mm_cmpeq_epi8(chunk, quote),
                        _mm_cmpeq_epi8(chunk, backslash),
                    ),
                    control,
                );
                let mask = _mm_movemask_epi8(hits) as u32;
                if mask != 0 {
                    return i + mask.trailing_zeros() as usize;
                }
                i += 16;
            }
        }
    }
    skip_plain_words(bytes, i)
}

/// [`skip_plain`] eight bytes at a time, then one by one.
fn skip_plain_words(bytes: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let special = special_bytes(u64::from_le_bytes(word));
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

/// The string that starts with the quote at `i`: the offset past its closing quote, and
/// whether it has an escape.
fn string(bytes: &[u8], i: usize, seen: &mut Seen) -> Result<(usize, bool), ()> {
    let mut i = i + 1;
    let mut escaped = false;
    loop {
        i = skip_plain(bytes, i);
        match bytes.get(i) {
            Some(b'"') => return Ok((i + 1, escaped)),
            Some(b'\\') => {
                escaped = true;
                seen.escape = true;
                match bytes.get(i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                    Some(b'u') => {
                        seen.unicode_escape = true;
                        let hex = bytes.get(i + 2..i + 6).ok_or(())?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return Err(());
                        }
                        i += 6;
                    }
                    _ => return Err(()),
                }
            }
            Some(&b) if b < 0x20 => return Err(()),
            Some(_) => i += 1,
            None => return Err(()),
        }
    }
}

/// The number at `i` (JSON grammar); the offset past it.
fn number(bytes: &[u8], mut i: usize) -> Result<usize, ()> {
    let digits = |mut i: usize| -> usize {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    if bytes.get(i) == Some(&b'-') {
        i += 1;
    }
    match bytes.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i + 1),
        _ => return Err(()),
    }
    if bytes.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        if end == i + 1 {
            return Err(());
        }
        i = end;
    }
    if let Some(b'e' | b'E') = bytes.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = bytes.get(i) {
            i += 1;
        }
        let end = digits(i);
        if end == i {
            return Err(());
        }
        i = end;
    }
    Ok(i)
}

fn literal(bytes: &[u8], i: usize, word: &[u8]) -> Result<usize, ()> {
    if bytes.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        Err(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The scanner's verdict on `text` as one object with nothing but whitespace after it.
    fn accepts(text: &str) -> bool {
        let bytes = text.as_bytes();
        object(bytes, 0, &mut Seen::default(), &mut |_| {}).is_ok_and(|end| only_ws(bytes, end))
    }

    /// serde_json's verdict, with the two checks the scanner leaves to it (surrogate pairs,
    /// number range) and its depth limit taken out of the comparison by the callers below.
    fn serde_accepts(text: &str) -> bool {
        serde_json::from_str::<serde_json::Value>(text).is_ok_and(|value| value.is_object())
    }

    fn agree(text: &str) {
        let has_u = text.contains("\\u");
        let scanner = accepts(text);
        let serde = serde_accepts(text);
        if has_u && scanner && !serde {
            return; // unpaired surrogate: serde_json judges (Event::parse asks it)
        }
        if scanner
            && !serde
            && serde_json::from_str::<serde_json::Value>(text)
                .is_err_and(|err| err.to_string().contains("number out of range"))
        {
            return; // 1e400: found when read (Event::is_broken)
        }
        assert_eq!(scanner, serde, "{text:?}");
    }

    #[test]
    fn agrees_with_serde_json_on_edge_cases() {
        for text in [
            "{}",
            " {} ",
            "{ }",
            "{",
            "}",
            "",
            "[]",
            "{\"a\":1}",
            "{\"a\":1,}",
            "{,}",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\" : 1 , \"b\" : [ ] }",
            "{\"a\":[1,]}",
            "{\"a\":[,1]}",
            "{\"a\":[1 2]}",
            "{\"a\":{\"b\":1,}}",
            "{\"a\":{\"b\"1}}",
            "{\"a\":01}",
            "{\"a\":-0}",
            "{\"a\":-}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":1e}",
            "{\"a\":1e+}",
            "{\"a\":1E-5}",
            "{\"a\":-1.5e10}",
            "{\"a\":+1}",
            "{\"a\":0x1}",
            "{\"a\":1e400}",
            "{\"a\":tru}",
            "{\"a\":true}",
            "{\"a\":nul}",
            "{\"a\":null}",
            "{\"a\":falsey}",
            "{\"a\":NaN}",
            "{\"a\":\"x\ty\"}",
            "{\"a\":\"x\\ty\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u00e9\"}",
            "{\"a\":\"\\u00g9\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\\\\"}",
            "{\"a\":\"\\\"\"}",
            "{\"a\":\"unterminated}",
            "{\"a\":\"x\"} x",
            "{\"a\":\"x\"}\n",
            "{\"a\":1}}",
            "{\"k\\\"q\":1}",
            "{\"a\":[{},[],{\"b\":[{\"c\":\"\\/\"}]}]}",
            "{\"a\":\"é\u{7f}\"}",
            "{\"a\":1}\u{a0}",
            "\t\r\n{}\t\r\n",
            "{\"a\":\"12345678\\\"12345678\"}",
            "{\"a\":\"1234567\u{1f}\"}",
            "{\"a\":[[[[[]]]]]}",
            "{\"a\":[[[[[]]]]}",
        ] {
            agree(text);
        }
    }

    #[test]
    fn plain_runs_end_at_the_first_special_byte() {
        let naive = |bytes: &[u8], i: usize| {
            (i..bytes.len())
                .find(|&at| matches!(bytes[at], b'"' | b'\\' | 0..=0x1f))
                .unwrap_or(bytes.len())
        };
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..80 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        // Mostly plain bytes (high ones included), now and then a special one.
                        match state % 40 {
                            0 => b'"',
                            1 => b'\\',
                            2 => (state >> 8) as u8 % 0x20,
                            _ => 0x20 + (state >> 8) as u8 % 0xe0,
                        }
                    })
                    .collect();
                for start in [0, 1.min(len), len / 2, len] {
                    let want = naive(&bytes, start);
                    assert_eq!(skip_plain(&bytes, start), want, "{bytes:?} from {start}");
                    assert_eq!(
                        skip_plain_words(&bytes, start),
                        want,
                        "{bytes:?} from {start}"
                    );
                }
            }
        }
    }

    #[test]
    fn depth_past_the_limit_is_refused_for_serde_json_to_judge() {
        let nested = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        assert!(accepts(&nested(MAX_DEPTH)));
        assert!(!accepts(&nested(MAX_DEPTH + 1)));
        assert!(!accepts(&nested(100_000)));
    }

    #[test]
    fn members_and_escapes_are_reported() {
        let text = r#"{"a":1, "b\"c" : [2,{"d":"\u00e9"}] ,"a":"x\ny"}"#;
        let mut members = Vec::new();
        let mut seen = Seen::default();
        let end = object(text.as_bytes(), 0, &mut seen, &mut |m| members.push(m)).unwrap();
        assert_eq!(end, text.len());
        let parts: Vec<_> = members
            .iter()
            .map(|m| (&text[m.key.clone()], m.key_escaped, &text[m.value.clone()]))
            .collect();
        assert_eq!(
            parts,
            [
                ("a", false, "1"),
                ("b\\\"c", true, r#"[2,{"d":"\u00e9"}]"#),
                ("a", false, r#""x\ny""#),
            ]
        );
        assert_eq!(
            seen,
            Seen {
                escape: true,
                unicode_escape: true,
                big_number: false,
            }
        );
    }

    /// JSON-like text: valid documents broken at random places with the characters that
    /// matter to the grammar.
    fn json_like() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap_or_default()),
            "[ -~\u{e9}\u{1f600}\t]{0,24}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        ];
        let value = leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z\"\\\\]{0,6}", inner), 0..5).prop_map(|v| {
                    let members: Vec<String> = v
                        .into_iter()
                        .map(|(k, v)| format!("{}:{}", serde_json::to_string(&k).unwrap(), v))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        });
        let object = prop::collection::vec(("[a-zA-Z.]{0,8}", value), 0..8).prop_map(|v| {
            let members: Vec<String> = v
                .into_iter()
                .map(|(k, v)| format!("{} : {}", serde_json::to_string(&k).unwrap(), v))
                .collect();
            format!(" {{{}}} ", members.join(" ,"))
        });
        let edits = prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                0..3_u8,
                prop::sample::select(vec![
                    "\"", "\\", "{", "}", "[", "]", ",", ":", " ", "0", "-", ".", "e", "t", "n",
                    "\u{1}", "\\u", "1e400", "\n",
                ]),
            ),
            0..3,
        );
        (object, edits).prop_map(|(mut text, edits)| {
            for (at, op, piece) in edits {
                let mut at = at.index(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                match op {
                    0 => text.insert_str(at, piece),
                    1 => {
                        let end = (at + 1..=text.len())
                            .find(|&e| text.is_char_boundary(e))
                            .unwrap_or(at);
                        text.replace_range(at..end, piece);
                    }
                    _ => {
                        let end = (at + 1..=text.len())
                            .find(|&e| text.is_char_boundary(e))
                            .unwrap_or(at);
                        text.replace_range(at..end, "");
                    }
                }
            }
            text
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn agrees_with_serde_json_on_broken_documents(text in json_like()) {
            agree(&text);
        }

        #[test]
        fn members_are_serde_jsons(text in json_like()) {
            let Ok(serde_json::Value::Object(want)) = serde_json::from_str::<serde_json::Value>(&text) else {
                return Ok(());
            };
            let bytes = text.as_bytes();
            let mut got = serde_json::Map::new();
            let mut seen = Seen::default();
            let end = object(bytes, 0, &mut seen, &mut |m| {
                let key: String = serde_json::from_str(&text[m.key.start - 1..m.key.end + 1]).unwrap();
                let value: serde_json::Value = serde_json::from_str(&text[m.value.clone()]).unwrap();
                got.insert(key, value);
            });
            prop_assert!(end.is_ok_and(|end| only_ws(bytes, end)), "{}", text);
            prop_assert_eq!(got, want);
            prop_assert_eq!(seen.escape, text.contains('\\'));
        }
    }
}
