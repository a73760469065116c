//! Seeded CloudTrail amplifier for the benchmark suite (`scripts/bench`).
//!
//! ```sh
//! cargo run --release --example gen_cloudtrail -- --corpus ../shared/corpus --lines 1000000 > big.ndjson
//! ```
//!
//! It reads every CloudTrail record of `CORPUS/events/*.ndjson` (files in name order; a line of
//! `panther_tests.ndjson` contributes the record in its `log` key) and writes `--lines` records.
//! Output line `i` is pool record `i mod pool_len`, so the mix of eventNames, services, error
//! events and record shapes is exactly the corpus's, repeated. What varies, deterministically from
//! `--seed`:
//!
//! - the principal: each line draws one of a population of synthetic users (skewed, so a few
//!   principals are busy and most are rare, as in a real account); `userIdentity.userName`, the
//!   last segment of a user or assumed-role `arn`, the `principalId` (the session part of an
//!   assumed role's) and the `accessKeyId` are rewritten for it. `Root`, `AWSService` and
//!   records without those fields keep what they had;
//! - `sourceIPAddress`, when it is an IPv4 address (service names such as `AWS Internal` stay):
//!   the principal's home address most of the time, otherwise one of a larger pool;
//! - `eventTime` (or `@timestamp` on records that have no `eventTime`): monotonic, spread evenly
//!   over `--span-secs` from `--start`, in the original record's own notation;
//! - `eventID` and `requestID`: fresh random values of the same shape as the originals.
//!
//! Key order and every other byte of a record are kept, so the output looks like CloudTrail a
//! pipeline would carry. The data is generated, never committed.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

#[derive(Parser)]
#[command(about = "Amplify the corpus CloudTrail into a large seeded NDJSON stream on stdout")]
struct Args {
    /// The corpus directory (holding `events/*.ndjson`); defaults to $VIGIL_CORPUS.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Number of lines to write.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// Seed of every random choice: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Event time of the first line, `YYYY-MM-DDTHH:MM:SS` (UTC). In the past, so no event
    /// looks like it comes from the future to a correlation clock.
    #[arg(long, default_value = "2024-01-01T00:00:00")]
    start: String,
    /// Seconds between the first and the last event time.
    #[arg(long, default_value_t = 86_400)]
    span_secs: u64,
    /// Number of distinct principals (default: one per 500 lines, at least 50).
    #[arg(long)]
    principals: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let corpus = match args.corpus.clone() {
        Some(dir) => dir,
        None => PathBuf::from(
            std::env::var_os("VIGIL_CORPUS")
                .context("give --corpus or set VIGIL_CORPUS to the corpus directory")?,
        ),
    };
    let mut pool = load_pool(&corpus)?;
    anyhow::ensure!(
        !pool.is_empty(),
        "no CloudTrail record in {}/events",
        corpus.display()
    );
    let start = chrono::NaiveDateTime::parse_from_str(&args.start, "%Y-%m-%dT%H:%M:%S")
        .with_context(|| format!("--start {:?} is not YYYY-MM-DDTHH:MM:SS", args.start))?
        .and_utc()
        .timestamp();
    let n_principals = args.principals.unwrap_or((args.lines / 500).max(50)).max(1);
    let population = Population::new(args.seed, n_principals);
    let mut rng = SplitMix64::new(args.seed ^ 0x6576_656e_7473);

    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let pool_len = pool.len() as u64;
    for line_idx in 0..args.lines {
        let record = &mut pool[(line_idx % pool_len) as usize];
        // Times are spread evenly, so they never go backwards and the last line is exactly
        // `start + span`.
        let offset = match args.lines {
            0 | 1 => 0,
            n => (u128::from(line_idx) * u128::from(args.span_secs) / u128::from(n - 1)) as i64,
        };
        let principal_idx = population.pick(&mut rng);
        vary(record, &population, principal_idx, start + offset, &mut rng);
        serde_json::to_writer(&mut out, &*record)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    eprintln!(
        "gen_cloudtrail: {} lines from {} corpus records, {} principals, seed {}",
        args.lines, pool_len, n_principals, args.seed
    );
    Ok(())
}

/// Every CloudTrail record of `corpus/events/*.ndjson`, in file-name then line order.
fn load_pool(corpus: &std::path::Path) -> anyhow::Result<Vec<Json>> {
    let dir = corpus.join("events");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "ndjson"))
        .collect();
    files.sort();
    let mut pool = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        for (line_idx, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: Json = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not JSON", file.display(), line_idx + 1))?;
            // Panther's test file wraps each record as `{"rule_id", "test_name", "log", ...}`.
            let record = match value {
                Json::Object(mut fields) if get(&fields, "rule_id").is_some() => {
                    match fields.iter().position(|(key, _)| key == "log") {
                        Some(pos) => fields.swap_remove(pos).1,
                        None => continue,
                    }
                }
                other => other,
            };
            if is_cloudtrail(&record) {
                pool.push(record);
            }
        }
    }
    Ok(pool)
}

/// The shape vigil itself uses to recognise CloudTrail: string `eventSource` and `eventName`.
fn is_cloudtrail(record: &Json) -> bool {
    match record {
        Json::Object(fields) => {
            matches!(get(fields, "eventSource"), Some(Json::String(_)))
                && matches!(get(fields, "eventName"), Some(Json::String(_)))
        }
        _ => false,
    }
}

/// Rewrites the varying fields of `record` in place for one output line.
fn vary(
    record: &mut Json,
    population: &Population,
    principal_idx: u64,
    time: i64,
    rng: &mut SplitMix64,
) {
    let Json::Object(fields) = record else {
        return;
    };
    let principal = &population.principals[principal_idx as usize];
    let has_event_time = get(fields, "eventTime").is_some();
    for (key, value) in fields.iter_mut() {
        match (key.as_str(), value) {
            ("userIdentity", Json::Object(identity)) => vary_identity(identity, principal),
            ("sourceIPAddress", Json::String(ip)) if ip.parse::<Ipv4Addr>().is_ok() => {
                // Mostly the principal's own address; now and then one from the wider pool, so
                // a principal is seen from a few addresses and an address serves a few people.
                *ip = if rng.below(10) < 8 {
                    principal.home_ip.clone()
                } else {
                    public_ipv4(population.seed, rng.below(50_000)).to_string()
                };
            }
            ("eventTime", Json::String(text)) => retime(text, time),
            ("@timestamp", Json::String(text)) if !has_event_time => retime(text, time),
            ("eventID" | "requestID", Json::String(text)) => *text = reshape(text, rng),
            _ => {}
        }
    }
}

fn vary_identity(identity: &mut [(String, Json)], principal: &Principal) {
    let kind = match get(identity, "type") {
        Some(Json::String(kind)) => kind.clone(),
        _ => String::new(),
    };
    // The root user, AWS services and whole accounts have no per-person name to vary.
    if matches!(kind.as_str(), "Root" | "AWSService" | "AWSAccount") {
        return;
    }
    for (key, value) in identity.iter_mut() {
        let Json::String(text) = value else { continue };
        match key.as_str() {
            "userName" => *text = principal.name.clone(),
            "arn" if text.contains(":user/") || text.contains(":assumed-role/") => {
                if let Some(slash) = text.rfind('/') {
                    text.truncate(slash + 1);
                    text.push_str(&principal.name);
                }
            }
            // An assumed role's principalId is `ROLEID:session`; a user's is its own id.
            "principalId" => match text.find(':') {
                Some(colon) => {
                    text.truncate(colon + 1);
                    text.push_str(&principal.name);
                }
                None if has_id_prefix(text) => {
                    *text = format!("{}{}", &text[..4], principal.id_suffix);
                }
                None => {}
            },
            "accessKeyId" if has_id_prefix(text) => {
                *text = format!("{}{}", &text[..4], principal.key_suffix);
            }
            _ => {}
        }
    }
}

/// AWS unique ids start with four capitals naming their kind (`AIDA` user, `AROA` role, `AKIA`
/// long-term key, `ASIA` session key); the rest is replaced, so the kind is kept.
fn has_id_prefix(text: &str) -> bool {
    text.len() > 4 && text.bytes().take(4).all(|b| b.is_ascii_uppercase())
}

/// Replaces the `YYYY-MM-DD?HH:MM:SS` head of a time string, keeping its separator and its tail
/// (`Z`, `.000Z`, `.000000000`), so each record keeps its own notation.
fn retime(text: &mut String, time: i64) {
    let bytes = text.as_bytes();
    let looks_like_time = bytes.len() >= 19
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && text.is_char_boundary(19);
    if !looks_like_time {
        return;
    }
    let Some(when) = chrono::DateTime::from_timestamp(time, 0) else {
        return;
    };
    let separator = char::from(bytes[10]);
    let head = format!(
        "{}{separator}{}",
        when.format("%Y-%m-%d"),
        when.format("%H:%M:%S")
    );
    text.replace_range(..19, &head);
}

/// A random string of the same shape: each lowercase hex digit, uppercase hex digit, other
/// letter or digit becomes a random one of its own class; dashes and the rest stay.
fn reshape(text: &str, rng: &mut SplitMix64) -> String {
    const LOWER_HEX: &[u8] = b"0123456789abcdef";
    const UPPER_HEX: &[u8] = b"0123456789ABCDEF";
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    let has_upper_hex = text.bytes().any(|b| matches!(b, b'A'..=b'F'));
    let pick =
        |set: &[u8], rng: &mut SplitMix64| char::from(set[rng.below(set.len() as u64) as usize]);
    text.chars()
        .map(|c| match c {
            '0'..='9' if has_upper_hex => pick(UPPER_HEX, rng),
            '0'..='9' | 'a'..='f' => pick(LOWER_HEX, rng),
            'A'..='F' => pick(UPPER_HEX, rng),
            'G'..='Z' => pick(UPPER, rng),
            'g'..='z' => pick(LOWER, rng),
            other => other,
        })
        .collect()
}

struct Principal {
    name: String,
    /// The 16 characters after the `AIDA`/`AROA` prefix of this principal's unique id.
    id_suffix: String,
    /// The 16 characters after the `AKIA`/`ASIA` prefix of this principal's access key.
    key_suffix: String,
    home_ip: String,
}

struct Population {
    seed: u64,
    principals: Vec<Principal>,
}

impl Population {
    fn new(seed: u64, n_principals: u64) -> Population {
        const FIRST: &[&str] = &[
            "alice",
            "bob",
            "carol",
            "dave",
            "erin",
            "frank",
            "grace",
            "heidi",
            "ivan",
            "judy",
            "mallory",
            "niaj",
            "olivia",
            "peggy",
            "rupert",
            "sybil",
            "trent",
            "victor",
            "walter",
            "yasmin",
            "deploy",
            "ci-runner",
            "terraform",
            "backup",
            "etl",
        ];
        const KEY_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut rng = SplitMix64::new(seed ^ 0x7072_696e_6369_7061);
        let principals = (0..n_principals)
            .map(|idx| {
                let first = FIRST[rng.below(FIRST.len() as u64) as usize];
                let mut suffix = || -> String {
                    (0..16)
                        .map(|_| char::from(KEY_CHARS[rng.below(KEY_CHARS.len() as u64) as usize]))
                        .collect()
                };
                let id_suffix = suffix();
                let key_suffix = suffix();
                Principal {
                    name: format!("{first}-{idx}"),
                    id_suffix,
                    key_suffix,
                    home_ip: public_ipv4(seed, 1_000_000 + idx).to_string(),
                }
            })
            .collect();
        Population { seed, principals }
    }

    /// A skewed draw (the cube of a uniform number): principal 0 is the busiest, and the
    /// busiest tenth of the population makes about half of the calls.
    fn pick(&self, rng: &mut SplitMix64) -> u64 {
        let uniform = rng.unit();
        let idx = (uniform * uniform * uniform * self.principals.len() as f64) as u64;
        idx.min(self.principals.len() as u64 - 1)
    }
}

/// A deterministic address in ranges that cloud and ISP traffic uses, never private, loopback
/// or multicast.
fn public_ipv4(seed: u64, idx: u64) -> Ipv4Addr {
    const FIRST_OCTETS: &[u8] = &[
        3, 13, 18, 34, 35, 44, 52, 54, 63, 81, 92, 98, 104, 141, 185, 203,
    ];
    let mut rng = SplitMix64::new(seed ^ idx.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x6970);
    let first = FIRST_OCTETS[rng.below(FIRST_OCTETS.len() as u64) as usize];
    Ipv4Addr::new(
        first,
        rng.below(256) as u8,
        rng.below(256) as u8,
        1 + rng.below(254) as u8,
    )
}

/// SplitMix64 (Steele, Lea and Flood 2014): tiny, fast and good enough for test data, and it
/// keeps the generator free of a `rand` dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (the modulo bias is irrelevant for test data).
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    /// A number in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A JSON value that keeps the key order of objects. serde_json's own `Value` sorts keys unless
/// its `preserve_order` feature is on, and turning that on here would also turn it on in the
/// vigil binary built in the same cargo invocation.
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

fn get<'a>(fields: &'a [(String, Json)], key: &str) -> Option<&'a Json> {
    fields
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value)
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
        Ok(Json::Bool(value))
    }
    fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
        Ok(Json::Number(value.into()))
    }
    fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
        Ok(Json::Number(value.into()))
    }
    fn visit_f64<E>(self, value: f64) -> Result<Json, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Json::Null, Json::Number))
    }
    fn visit_str<E>(self, value: &str) -> Result<Json, E> {
        Ok(Json::String(value.to_owned()))
    }
    fn visit_string<E>(self, value: String) -> Result<Json, E> {
        Ok(Json::String(value))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        // A duplicated key keeps its last value, in its first position, as serde_json does.
        let mut fields: Vec<(String, Json)> = Vec::new();
        let mut positions = BTreeMap::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            match positions.get(&key) {
                Some(&pos) => fields[pos] = (key, value),
                None => {
                    positions.insert(key.clone(), fields.len());
                    fields.push((key, value));
                }
            }
        }
        Ok(Json::Object(fields))
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(value) => serializer.serialize_bool(*value),
            Json::Number(value) => value.serialize(serializer),
            Json::String(value) => serializer.serialize_str(value),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (key, value) in fields {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}
