//! Command line: flags, subcommands, exit codes.
//!
//! `vigil [run] [FLAGS]` filters NDJSON from stdin to stdout (see `crate::protocol::io`);
//! `vigil check PATH...` validates rule files; `vigil rules` lists what is loaded;
//! `vigil explain RULE_ID` and `vigil catalog --out DIR` show the rule catalog.
//! Every flag is documented where it is defined: the doc comments are the `--help` text.
//!
//! Exit codes (also in `--help`):
//! - 0: success, including stdout closed by the reader (EPIPE) and SIGTERM/SIGINT;
//! - 1: `vigil check` found at least one error diagnostic;
//! - 2: usage error or fatal: a bad flag value, an unreadable `--rules` path or
//!   placeholders file, `--strict` with an error diagnostic, an I/O failure.
//!
//! During `run`, stderr carries only JSON lines (`{"level": ..., "msg": ..., ...}`): hosts such
//! as Vector (`include_stderr`) turn each stderr line into an event. Usage errors found by the
//! flag parser itself come before the run and are printed as plain text by clap.

mod catalog;
mod check;
mod explain;
mod lifecycle;
mod metrics;
mod rules_cmd;
mod run;
mod test;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::correlate::Limits;
use crate::ir::LogSource;
use crate::protocol::InvalidPolicy;
use crate::rules::{self, LoadOptions, Loaded, Loader};

/// Exit code: success (also EPIPE, SIGTERM, SIGINT).
pub const EXIT_OK: u8 = 0;
/// Exit code: `vigil check` found errors.
pub const EXIT_CHECK_FAILED: u8 = 1;
/// Exit code: usage error or fatal error.
pub const EXIT_FATAL: u8 = 2;

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success, including a closed stdout (EPIPE) and SIGTERM/SIGINT
  1  `vigil check` found error diagnostics; `vigil test` had a failing test or invalid rule
  2  usage error or fatal error (bad flag value, unreadable --rules path or --placeholders
     file, --strict with error diagnostics, I/O failure)";

/// Streaming detection engine for NDJSON log pipelines.
///
/// Reads one JSON event per line on stdin and writes every event to stdout, in order; events
/// that match a detection rule get one more top-level key (`vigil` by default) listing the
/// matches. Lines that are not JSON objects are written as error records. Without a
/// subcommand, `run` is assumed.
#[derive(Debug, Parser)]
#[command(
    name = "vigil",
    version,
    args_conflicts_with_subcommands = true,
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

// Parsed once at startup: the size of the largest variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Filter NDJSON events from stdin to stdout, enriched with the rules they match (default).
    #[command(after_help = EXIT_CODES_HELP)]
    Run(Box<RunArgs>),
    /// Load rule files, print every diagnostic and a summary; exit 1 on any error.
    #[command(after_help = EXIT_CODES_HELP)]
    Check(CheckArgs),
    /// List the loaded rules and correlations, one per line (tab-separated: id, format,
    /// severity, type, title, ATT&CK tactics and techniques).
    #[command(after_help = EXIT_CODES_HELP)]
    Rules(RulesArgs),
    /// Run the tests rules carry (Panther `Tests:`, Sigma `tests:`); print each failure and
    /// a summary; exit 1 on any failed test or rule that did not load.
    #[command(after_help = EXIT_CODES_HELP)]
    Test(TestArgs),
    /// Show one loaded rule: metadata, ATT&CK coverage, its logic in vigil's normalized
    /// notation, exclusions, indicators shared with other rules, rules detecting the same
    /// action, output fields, tests and their results.
    #[command(after_help = EXIT_CODES_HELP)]
    Explain(ExplainArgs),
    /// Write the catalog of every loaded rule: a static HTML site (index, a page per rule,
    /// overlaps, ATT&CK coverage matrix) or one JSON document.
    #[command(after_help = EXIT_CODES_HELP)]
    Catalog(CatalogArgs),
}

#[derive(Debug, Args)]
struct ExplainArgs {
    /// The id of a loaded rule or correlation (as `vigil rules` lists them).
    #[arg(value_name = "RULE_ID")]
    rule_id: String,
    #[command(flatten)]
    source: RuleSourceArgs,
    /// Output: plain text for a terminal, Markdown, or one JSON object.
    #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
    format: ExplainFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ExplainFormat {
    Text,
    Md,
    Json,
}

#[derive(Debug, Args)]
struct CatalogArgs {
    #[command(flatten)]
    source: RuleSourceArgs,
    /// Directory to write into (created if missing; files of the same names are replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// `html`: a static site readable with JavaScript off; `json`: one document,
    /// `DIR/catalog.json`, with the same data.
    #[arg(long, value_enum, default_value_t = CatalogFormat::Html)]
    format: CatalogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CatalogFormat {
    Html,
    Json,
}

#[derive(Debug, Args)]
struct TestArgs {
    /// Rule files or directories; without any, the embedded default pack.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Print one JSON object per test instead of the failures and a summary.
    #[arg(long)]
    json: bool,
    /// NDJSON file of extra test cases, one `{"rule_id", "test_name", "expected", "log",
    /// "mocks"}` per line (the shape of Panther test exports). Repeatable.
    #[arg(long = "cases", value_name = "FILE")]
    cases: Vec<PathBuf>,
    /// Evaluation steps one call of a Python rule function may take.
    #[arg(long, value_name = "N", default_value_t = crate::eval::script::ScriptConfig::default().step_budget)]
    step_budget: u64,
}

/// Where rules come from; shared by `run` and `rules`.
#[derive(Debug, Args)]
struct RuleSourceArgs {
    /// A rule file or a directory of rule files (searched recursively for .yml/.yaml/.toml, skipping hidden entries such as a ConfigMap's `..data`).
    /// Repeatable. Without it, the embedded default rule pack is used.
    #[arg(long = "rules", value_name = "PATH")]
    rules: Vec<PathBuf>,
    /// YAML file giving values for Sigma `|expand` placeholders: each key a placeholder
    /// name, each value a string or a list of strings.
    #[arg(long, value_name = "FILE")]
    placeholders: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    source: RuleSourceArgs,
    /// Make any rule diagnostic of level error fatal: exit 2 before reading input.
    #[arg(long)]
    strict: bool,
    /// Log source of events not recognised by their shape, e.g. `aws:cloudtrail` or
    /// `windows::process_creation` (an empty part is left open). Only rules admitting it
    /// are evaluated on such events; without it every rule is.
    #[arg(long, value_name = "PRODUCT:SERVICE[:CATEGORY]", value_parser = parse_logsource)]
    logsource: Option<LogSource>,
    /// Event field holding the event time, for correlation windows (dotted path).
    /// Repeatable: the first that parses wins. Default: eventTime, @timestamp, timestamp,
    /// time, date. Events without one use their arrival time.
    #[arg(long = "time-field", value_name = "FIELD", value_parser = parse_non_empty)]
    time_fields: Vec<String>,
    /// Most correlation groups kept in memory, over all correlations; the least recently
    /// used group is evicted beyond it.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_groups,
          value_parser = parse_positive)]
    max_groups: usize,
    /// Most entries (timestamps or values) kept per correlation group; the oldest go first.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_entries_per_group,
          value_parser = parse_positive)]
    max_group_entries: usize,
    /// Most entries kept over all correlation groups (about 32 bytes each); least recently
    /// used groups are evicted beyond it. With --max-groups, the ceiling of correlation memory.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_entries,
          value_parser = parse_positive)]
    max_entries: usize,
    /// Evaluation steps one call of a Panther Python rule function may take; a `rule()` that
    /// runs out is counted (`--stats`: script.budget_overruns) and does not match.
    #[arg(long, value_name = "N", default_value_t = crate::eval::script::ScriptConfig::default().step_budget,
          value_parser = parse_positive_u64)]
    step_budget: u64,
    /// Most keys of the Panther caching helpers' state (string sets, counters); the least
    /// recently used key is evicted beyond it.
    #[arg(long, value_name = "N", default_value_t = crate::panther_rt::kv::KvLimits::default().max_keys,
          value_parser = parse_positive)]
    max_kv_keys: usize,
    /// Most bytes of keys and string-set members in that state; least recently used keys are
    /// evicted beyond it.
    #[arg(long, value_name = "N", default_value_t = crate::panther_rt::kv::KvLimits::default().max_bytes,
          value_parser = parse_positive)]
    max_kv_bytes: usize,
    /// Most live (rule, dedup string) counters of rules with a `Threshold`; the least recently
    /// used is evicted beyond it.
    #[arg(long, value_name = "N", default_value_t = crate::eval::script::ScriptConfig::default().max_threshold_keys,
          value_parser = parse_positive)]
    max_threshold_keys: usize,
    /// Top-level key of the enrichment added to matching events (and of the error marker).
    #[arg(long, value_name = "NAME", default_value = "vigil", value_parser = parse_field_name)]
    field: String,
    /// Longest input line accepted, in bytes. A longer line is written as a `too_long` error
    /// record carrying its first N bytes (or passed through with `--invalid pass`); at most
    /// N bytes of one line are ever buffered.
    #[arg(long, value_name = "N", default_value_t = 1024 * 1024, value_parser = parse_positive)]
    max_line_bytes: usize,
    /// Largest enrichment object added to one event, in bytes. A larger one (many matches, or
    /// rule code returning a huge `alert_context`) is written without the rule-code outputs
    /// (`context`, `dedup`), or as the summary alone, with `"truncated": true`; counted in
    /// `--stats` (`enrichments_truncated`).
    #[arg(long, value_name = "N", default_value_t = crate::protocol::DEFAULT_MAX_ENRICHMENT_BYTES,
          value_parser = parse_positive)]
    max_enrichment_bytes: usize,
    /// What to write for a line that is not a JSON object (or is too long): `wrap` writes a
    /// valid JSON error record `{"message": <text>, "vigil": {"error": <kind>}}`; `pass`
    /// writes the line's bytes unchanged.
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = Invalid::Wrap)]
    invalid: Invalid,
    /// Write only the events that matched (drops unmatched events and bad lines).
    #[arg(long)]
    only_matches: bool,
    /// Flush stdout after every line. By default output is block-buffered and flushed
    /// whenever no more input is ready, and at exit.
    #[arg(long)]
    line_buffered: bool,
    /// Evaluate the JSON object held in the first of these top-level fields that is present
    /// (an object, or a string holding one), e.g. `message` for Vector records; the outer
    /// record is what gets written and enriched. Comma-separated.
    #[arg(long, value_name = "FIELD[,FIELD..]", value_parser = parse_payload)]
    payload: Option<PayloadFields>,
    /// Expand a line `{"KEY": [records...]}` into one output line per record, e.g.
    /// `Records` for CloudTrail files.
    #[arg(long, value_name = "KEY", value_parser = parse_non_empty)]
    unwrap: Option<String>,
    /// At exit, write one JSON line of counters to stderr (lines, events, matches, errors
    /// per kind, hits per rule and correlation, correlation memory, throughput).
    #[arg(long)]
    stats: bool,
    /// Every DURATION (`500ms`, `10s`, `5m`, `1h`), write one JSON line of the running
    /// counters to stderr (`"msg": "stats interval"`), with rates over the interval and since
    /// the start.
    #[arg(long, value_name = "DURATION", value_parser = lifecycle::parse_duration)]
    stats_interval: Option<std::time::Duration>,
    /// Serve the counters in the Prometheus text format at `http://ADDR/metrics` (e.g.
    /// `127.0.0.1:9464`; port 0 picks a free port, logged on stderr). Loopback addresses
    /// only, unless --metrics-any.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Allow --metrics on a non-loopback address (anyone who reaches it can read rule ids
    /// and counts).
    #[arg(long, requires = "metrics")]
    metrics_any: bool,
    /// Evaluate every rule of an event's log source instead of only the candidates the rule
    /// index picks. A debugging aid: the output is the same, only slower; if it is not, the
    /// index has a bug.
    #[arg(long)]
    no_index: bool,
    /// Threads that decode and match lines (default: the available cores, at most 2, the
    /// most we have measured; see README "Benchmarks"). Correlation, native rule code and
    /// output stay on one thread, in input order; `--threads 1` does everything on it.
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    threads: Option<usize>,
    /// Keep correlation and stateful-rule state (correlation groups, thresholds, the Panther
    /// key-value cache) in this file: loaded at start, saved atomically every
    /// --state-interval and at exit. A missing file starts empty; an unusable one (truncated,
    /// corrupt, another format version, over the bound the memory limits set) starts empty
    /// with a warning. State of rules that are gone or changed is dropped.
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,
    /// How often --state is saved while running (`500ms`, `30s`, `5m`, `1h`).
    #[arg(long, value_name = "DURATION", default_value = "30s",
          value_parser = lifecycle::parse_duration)]
    state_interval: std::time::Duration,
    /// Reload the rules when a file under a --rules path (or --placeholders) is added,
    /// removed or changed (polled every second). SIGHUP reloads them too, with or without
    /// this flag. A reload with error diagnostics keeps the previous rules.
    #[arg(long)]
    watch: bool,
    /// Read events from sockets instead of stdin: `unix:PATH` or `tcp:ADDR:PORT`
    /// (`tcp:[::1]:PORT` for IPv6). Repeatable. Any number of connections, each framed like
    /// stdin; each connection's lines come out in its order, interleaved with other
    /// connections' lines only at line boundaries. Stdin is not read, and the run ends on
    /// SIGTERM/SIGINT or a closed stdout. A stale socket file at PATH is replaced (a live
    /// socket or any other file is refused) and removed at exit. See README "Socket input".
    #[arg(long = "listen", value_name = "ADDR", value_parser = crate::protocol::listen::ListenAddr::parse)]
    listen: Vec<crate::protocol::listen::ListenAddr>,
    /// Allow `--listen tcp:` addresses that are not loopback (127.0.0.0/8, ::1). vigil has no
    /// authentication: anyone who can connect can inject events.
    #[arg(long, requires = "listen")]
    listen_any: bool,
    /// Most connections open at once with --listen; a connection past it is closed at once
    /// and counted (`--stats`: connections.refused). Each open connection may buffer up to
    /// --max-line-bytes of an incomplete line.
    #[arg(long, value_name = "N", default_value_t = crate::protocol::listen::DEFAULT_MAX_CONNECTIONS,
          value_parser = parse_positive)]
    max_connections: usize,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Rule files or directories to check.
    #[arg(value_name = "PATH", required = true)]
    paths: Vec<PathBuf>,
    /// YAML file giving values for Sigma `|expand` placeholders.
    #[arg(long, value_name = "FILE")]
    placeholders: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RulesArgs {
    #[command(flatten)]
    source: RuleSourceArgs,
    /// Also print each rule's logic in the IR notation, indented below it.
    #[arg(long)]
    ir: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Invalid {
    Wrap,
    Pass,
}

impl From<Invalid> for InvalidPolicy {
    fn from(invalid: Invalid) -> InvalidPolicy {
        match invalid {
            Invalid::Wrap => InvalidPolicy::Wrap,
            Invalid::Pass => InvalidPolicy::Pass,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PayloadFields(Vec<String>);

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout with exit 0; errors to stderr with exit 2.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() {
                EXIT_FATAL
            } else {
                EXIT_OK
            });
        }
    };
    let code = match cli.command {
        None => run::run(cli.run),
        Some(Command::Run(args)) => run::run(*args),
        Some(Command::Check(args)) => check::check(args),
        Some(Command::Rules(args)) => rules_cmd::rules(args),
        Some(Command::Test(args)) => test::test(args),
        Some(Command::Explain(args)) => explain::explain(args),
        Some(Command::Catalog(args)) => catalog::catalog(args),
    };
    ExitCode::from(code)
}

/// Loads the rules named on the command line, or the default pack when there are none.
/// A path given on the command line that cannot be read is fatal; problems with files found
/// inside a directory are diagnostics.
fn load_rules(paths: &[PathBuf], placeholders: Option<&Path>) -> anyhow::Result<Loaded> {
    let options = LoadOptions {
        placeholders: match placeholders {
            Some(path) => read_placeholders(path)?,
            None => HashMap::new(),
        },
    };
    if paths.is_empty() {
        return Ok(rules::load_default_pack(options));
    }
    for path in paths {
        check_readable(path)?;
    }
    let mut loader = Loader::new(options);
    for path in paths {
        loader.add_path(path);
    }
    Ok(loader.finish())
}

fn check_readable(path: &Path) -> anyhow::Result<()> {
    let metadata = std::fs::metadata(path)
        .with_context(|| format!("cannot read rules path {}", path.display()))?;
    if metadata.is_dir() {
        std::fs::read_dir(path)
            .with_context(|| format!("cannot read rules directory {}", path.display()))?;
    } else {
        std::fs::File::open(path)
            .with_context(|| format!("cannot read rules file {}", path.display()))?;
    }
    Ok(())
}

/// Reads a placeholders file: a YAML mapping of name → string or list of strings.
fn read_placeholders(path: &Path) -> anyhow::Result<HashMap<String, Vec<String>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read placeholders file {}", path.display()))?;
    parse_placeholders(&text)
        .with_context(|| format!("invalid placeholders file {}", path.display()))
}

fn parse_placeholders(text: &str) -> anyhow::Result<HashMap<String, Vec<String>>> {
    let docs = rules::yaml::parse_documents(text)
        .map_err(|err| anyhow::format_err!("line {}: {}", err.line, err.message))?;
    let mut out = HashMap::new();
    let doc = match docs.as_slice() {
        [] => return Ok(out),
        [doc] => doc,
        _ => anyhow::bail!("expected one YAML document, found {}", docs.len()),
    };
    if doc.value == rules::yaml::Value::Null {
        return Ok(out);
    }
    let Some(entries) = doc.as_map() else {
        anyhow::bail!("line {}: expected a mapping of placeholder names", doc.line);
    };
    for (key, value) in entries {
        let Some(values) = value.string_list() else {
            anyhow::bail!(
                "line {}: placeholder {} must be a string or a list of strings",
                value.line,
                key.text
            );
        };
        out.insert(key.text.clone(), values);
    }
    Ok(out)
}

/// `product:service[:category]`; an empty part is left open, at least one must be set.
fn parse_logsource(text: &str) -> Result<LogSource, String> {
    let parts: Vec<&str> = text.split(':').map(str::trim).collect();
    if parts.len() > 3 {
        return Err("expected at most three parts: product:service[:category]".to_string());
    }
    if parts.iter().all(|part| part.is_empty()) {
        return Err("expected product:service[:category] with at least one part".to_string());
    }
    let part = |idx: usize| parts.get(idx).copied().filter(|part| !part.is_empty());
    Ok(LogSource::new(part(0), part(1), part(2)))
}

/// A comma-separated list of non-empty field names.
fn parse_payload(text: &str) -> Result<PayloadFields, String> {
    let fields: Vec<String> = text.split(',').map(|f| f.trim().to_string()).collect();
    if fields.iter().any(String::is_empty) {
        return Err("expected FIELD[,FIELD..] with no empty field name".to_string());
    }
    Ok(PayloadFields(fields))
}

fn parse_positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(err) => Err(err.to_string()),
    }
}

fn parse_positive_u64(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(err) => Err(err.to_string()),
    }
}

fn parse_non_empty(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("must not be empty".to_string());
    }
    Ok(text.to_string())
}

/// `--field`: not empty, and not `message`, the error record's other key (an error record
/// would otherwise hold `message` twice and lose the raw text to most JSON parsers).
fn parse_field_name(text: &str) -> Result<String, String> {
    if text == "message" {
        return Err("must not be 'message', the key of an error record's text".to_string());
    }
    parse_non_empty(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("vigil").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn logsource_parts() {
        assert_eq!(
            parse_logsource("aws:cloudtrail"),
            Ok(LogSource::new(Some("aws"), Some("cloudtrail"), None))
        );
        assert_eq!(
            parse_logsource("Windows::process_creation"),
            Ok(LogSource::new(
                Some("windows"),
                None,
                Some("process_creation")
            ))
        );
        assert_eq!(
            parse_logsource("linux"),
            Ok(LogSource::new(Some("linux"), None, None))
        );
        assert!(parse_logsource("").is_err());
        assert!(parse_logsource("::").is_err());
        assert!(parse_logsource("a:b:c:d").is_err());
    }

    #[test]
    fn payload_list() {
        assert_eq!(
            parse_payload("message"),
            Ok(PayloadFields(vec!["message".to_string()]))
        );
        assert_eq!(
            parse_payload("message, log,exec"),
            Ok(PayloadFields(vec![
                "message".to_string(),
                "log".to_string(),
                "exec".to_string()
            ]))
        );
        assert!(parse_payload("").is_err());
        assert!(parse_payload("message,,log").is_err());
    }

    #[test]
    fn invalid_policy() {
        let cli = parse(&["--invalid", "pass"]).unwrap();
        assert_eq!(InvalidPolicy::from(cli.run.invalid), InvalidPolicy::Pass);
        let cli = parse(&[]).unwrap();
        assert_eq!(InvalidPolicy::from(cli.run.invalid), InvalidPolicy::Wrap);
        assert!(parse(&["--invalid", "drop"]).is_err());
    }

    #[test]
    fn run_is_the_default_subcommand() {
        let cli = parse(&["--stats", "--rules", "a", "--rules", "b"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.run.stats);
        assert_eq!(cli.run.source.rules.len(), 2);
        let cli = parse(&["run", "--only-matches"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Run(ref args)) if args.only_matches));
        let cli = parse(&["check", "x.yml"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Check(_))));
        assert!(parse(&["check"]).is_err());
    }

    #[test]
    fn no_index_flag() {
        assert!(!parse(&[]).unwrap().run.no_index);
        assert!(parse(&["--no-index"]).unwrap().run.no_index);
    }

    #[test]
    fn threads_flag() {
        assert_eq!(parse(&[]).unwrap().run.threads, None);
        assert_eq!(parse(&["--threads", "2"]).unwrap().run.threads, Some(2));
        assert!(parse(&["--threads", "0"]).is_err());
        assert!(parse(&["--threads", "two"]).is_err());
    }

    #[test]
    fn numeric_flags() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.run.max_line_bytes, 1_048_576);
        assert_eq!(cli.run.max_groups, 100_000);
        assert_eq!(cli.run.field, "vigil");
        assert!(parse(&["--max-line-bytes", "0"]).is_err());
        assert_eq!(cli.run.max_enrichment_bytes, 262_144);
        assert!(parse(&["--max-enrichment-bytes", "0"]).is_err());
        assert!(parse(&["--max-groups", "-1"]).is_err());
        assert!(parse(&["--max-group-entries", "ten"]).is_err());
        assert!(parse(&["--field", ""]).is_err());
        assert!(parse(&["--field", "message"]).is_err());
        assert_eq!(cli.run.step_budget, 100_000);
        assert!(parse(&["--step-budget", "0"]).is_err());
        assert!(parse(&["--max-kv-keys", "0"]).is_err());
        assert!(parse(&["--max-threshold-keys", "x"]).is_err());
        let cli = parse(&["test", "--json", "--cases", "c.ndjson", "r"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Test(ref args)) if args.json && args.cases.len() == 1)
        );
    }

    #[test]
    fn explain_and_catalog_flags() {
        let cli = parse(&[
            "explain",
            "AWS.IAM.CreateUser",
            "--rules",
            "r",
            "--format",
            "md",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Explain(ref args))
            if args.rule_id == "AWS.IAM.CreateUser" && args.format == ExplainFormat::Md
                && args.source.rules.len() == 1));
        assert!(parse(&["explain"]).is_err());
        assert!(parse(&["explain", "x", "--format", "html"]).is_err());
        let cli = parse(&["catalog", "--out", "site"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Catalog(ref args))
            if args.format == CatalogFormat::Html && args.out == Path::new("site")));
        assert!(parse(&["catalog"]).is_err(), "--out is required");
        assert!(parse(&["catalog", "--out", "d", "--format", "json"]).is_ok());
    }

    #[test]
    fn state_and_reload_flags() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.run.state, None);
        assert_eq!(cli.run.state_interval, std::time::Duration::from_secs(30));
        assert!(!cli.run.watch);
        let cli = parse(&["--state", "s.bin", "--state-interval", "500ms", "--watch"]).unwrap();
        assert_eq!(cli.run.state, Some(PathBuf::from("s.bin")));
        assert_eq!(
            cli.run.state_interval,
            std::time::Duration::from_millis(500)
        );
        assert!(cli.run.watch);
        assert!(parse(&["--state-interval", "0s"]).is_err());
        assert!(parse(&["--state-interval", "10"]).is_err());
    }

    #[test]
    fn listen_flags() {
        use crate::protocol::listen::{DEFAULT_MAX_CONNECTIONS, ListenAddr};
        let cli = parse(&[]).unwrap();
        assert!(cli.run.listen.is_empty());
        assert_eq!(cli.run.max_connections, DEFAULT_MAX_CONNECTIONS);
        let cli = parse(&[
            "--listen",
            "unix:/tmp/v.sock",
            "--listen",
            "tcp:127.0.0.1:9",
        ])
        .unwrap();
        assert_eq!(
            cli.run.listen,
            [
                ListenAddr::Unix(PathBuf::from("/tmp/v.sock")),
                ListenAddr::Tcp {
                    host: "127.0.0.1".to_string(),
                    port: 9
                }
            ]
        );
        assert!(parse(&["--listen", "/tmp/v.sock"]).is_err());
        assert!(
            parse(&["--listen-any"]).is_err(),
            "--listen-any needs --listen"
        );
        assert!(parse(&["--listen", "tcp:0.0.0.0:1", "--listen-any"]).is_ok());
        assert!(parse(&["--max-connections", "0"]).is_err());
    }

    #[test]
    fn placeholders_file() {
        let parsed = parse_placeholders("admins: root\nports:\n  - '22'\n  - 3389\n").unwrap();
        assert_eq!(parsed["admins"], ["root"]);
        assert_eq!(parsed["ports"], ["22", "3389"]);
        assert!(parse_placeholders("").unwrap().is_empty());
        assert!(parse_placeholders("- a\n- b\n").is_err());
        assert!(parse_placeholders("a: {b: c}\n").is_err());
        assert!(parse_placeholders("a: [\n").is_err());
    }
}
