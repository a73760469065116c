//! Per-event latency of a running vigil: how long one event written into an open pipe takes to
//! come out (`scripts/bench` runs it; issue 5 asks for under 1 ms median and 5 ms p99).
//!
//! ```sh
//! cargo run --release --example latency -- --vigil target/release/vigil --events examples/cloudtrail.ndjson
//! ```
//!
//! It spawns vigil (by default with the embedded rule pack; arguments after `--` are passed on),
//! keeps its stdin and stdout open, and for each event: writes the line, then blocks reading
//! stdout until that event's output line arrives, and records the time in between. A pause
//! follows each event so that no batching (vigil reading several lines in one `read`, or writing
//! several in one flush) can help: every event is a lone event on an idle pipe, the case of a
//! quiet log stream. Events cycle through the `--events` file. The first `--warmup` events are
//! not counted (page faults, first allocations). With `--check`, the exit status is 1 when the
//! median or the p99 is over its target.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Measure the time from writing one event into vigil to reading its output line")]
struct Args {
    /// The vigil binary.
    #[arg(long, default_value = "target/release/vigil")]
    vigil: PathBuf,
    /// NDJSON file whose lines are sent, cycling.
    #[arg(long, default_value = "examples/cloudtrail.ndjson")]
    events: PathBuf,
    /// Events measured.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Events sent first and not measured.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Pause after each event, in microseconds.
    #[arg(long, default_value_t = 2000)]
    pause_us: u64,
    /// Exit 1 if the median is 1 ms or more, or the p99 is 5 ms or more.
    #[arg(long)]
    check: bool,
    /// Arguments passed to vigil (after `--`).
    #[arg(last = true)]
    vigil_args: Vec<String>,
}

const MEDIAN_TARGET: Duration = Duration::from_millis(1);
const P99_TARGET: Duration = Duration::from_millis(5);

fn main() -> anyhow::Result<std::process::ExitCode> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.events)
        .with_context(|| format!("reading {}", args.events.display()))?;
    let events: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    anyhow::ensure!(!events.is_empty(), "{} has no line", args.events.display());
    anyhow::ensure!(args.count > 0, "--count must be at least 1");

    let mut child = Command::new(&args.vigil)
        .args(&args.vigil_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", args.vigil.display()))?;
    let mut stdin = child.stdin.take().context("vigil stdin")?;
    let mut stdout = BufReader::new(child.stdout.take().context("vigil stdout")?);

    let mut samples = Vec::with_capacity(args.count);
    let mut enriched = 0usize;
    let mut output = String::new();
    let mut message = Vec::new();
    for idx in 0..args.warmup + args.count {
        message.clear();
        message.extend_from_slice(events[idx % events.len()].as_bytes());
        message.push(b'\n');
        // One write(2) of the whole line: the pipe is unbuffered on our side.
        let sent = Instant::now();
        stdin.write_all(&message).context("writing to vigil")?;
        output.clear();
        let n_read = stdout
            .read_line(&mut output)
            .context("reading from vigil")?;
        let elapsed = sent.elapsed();
        anyhow::ensure!(n_read > 0, "vigil closed its stdout after {idx} events");
        if idx >= args.warmup {
            samples.push(elapsed);
            // A crude but sufficient test: the enrichment key is spliced in before the final `}`.
            if output.contains("\"vigil\":{") {
                enriched += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(args.pause_us));
    }
    drop(stdin);
    let status = child.wait().context("waiting for vigil")?;
    anyhow::ensure!(status.success(), "vigil exited with {status}");

    samples.sort();
    let percentile = |p: f64| {
        let rank = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1]
    };
    let median = percentile(0.5);
    let p99 = percentile(0.99);
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "latency over {} events ({} enriched, {} us pause): min {:.0} us, median {:.0} us, p90 {:.0} us, p99 {:.0} us, max {:.0} us",
        samples.len(),
        enriched,
        args.pause_us,
        micros(samples[0]),
        micros(median),
        micros(percentile(0.9)),
        micros(p99),
        micros(samples[samples.len() - 1]),
    );
    let met = median < MEDIAN_TARGET && p99 < P99_TARGET;
    println!(
        "latency target (median < 1 ms, p99 < 5 ms): {}",
        if met { "met" } else { "missed" }
    );
    Ok(if args.check && !met {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}
