//! The throughput baseline: parse every NDJSON line with serde_json into a `Value` and write it
//! back out (`cargo run --release --example json_baseline < file > /dev/null`). Any detection
//! engine that parses events has to do at least this much, so vigil's throughput is reported
//! as a ratio to it, measured in the same run (`scripts/throughput`).

use std::io::{BufRead, BufWriter, Write};

fn main() -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut output = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        match serde_json::from_slice::<serde_json::Value>(text) {
            Ok(value) => serde_json::to_writer(&mut output, &value)?,
            Err(_) => output.write_all(text)?,
        }
        output.write_all(b"\n")?;
    }
    output.flush()
}
