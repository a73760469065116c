//! The stdin/stdout loop: bounded line framing, the flush policy, signals, EPIPE.
//!
//! This module only moves bytes. Every complete line goes to [`Processor::process_line`], and
//! whatever the processor appends is what reaches stdout; the per-line errors it collects are
//! reported on stderr as rate-limited JSON lines.
//!
//! # Design
//!
//! ```text
//! reader thread ── read(2) into 64 KiB chunks ──┐
//!                                               ├─▶ sync_channel(4) ─▶ main thread: frame lines
//! signal thread ── SIGTERM/SIGINT → Stop ───────┘     (memchr), Processor, output buffer, flush
//! ```
//!
//! - **Threads, not tokio.** There is one input and one output, and both are blocking file
//!   descriptors; a runtime would add a scheduler and an async stdin that is itself a blocking
//!   thread underneath. Sockets (`--listen`, [`super::listen`]) replace the stdin thread with
//!   one poll(2) thread over every connection, feeding the same channel.
//! - **Sources.** Every chunk carries its source: stdin is source 0, each connection has its
//!   own id. The main thread keeps one framer per source (the current one in `Pump`, the
//!   others parked with their incomplete line), so a source's lines come out in its order and
//!   lines of different sources interleave only at line boundaries. A source at a line
//!   boundary holds no buffer. With one source (stdin) nothing of this shows.
//! - **Bounded memory and backpressure.** The channel holds at most 4 chunks, so a slow stdout
//!   (the host stopped reading: backpressure, never an error) stalls the main thread, which
//!   stalls the reader, which stops reading stdin. Chunk buffers are handed back to the reader
//!   and reused.
//! - **Framing is bounded.** At most `--max-line-bytes` + 1 bytes of one line are buffered (the
//!   extra byte lets a line of exactly the maximum end in `\r\n`). When a line grows past that,
//!   the framer keeps its first `--max-line-bytes` bytes, discards the rest up to the newline
//!   while counting it, and hands the prefix and the total length to
//!   [`Processor::process_too_long`]. A line that fits in one read chunk is handed whole to
//!   [`Processor::process_line`], which applies the same limit itself.
//! - **`--invalid pass` and over-long lines.** Such a line is streamed to stdout as it arrives:
//!   the buffered bytes first, then every later chunk up to the newline, so memory stays
//!   bounded and the bytes come out unchanged (except a final `\r`, dropped as the processor
//!   drops it from every line). The processor still counts it (`lines_in`, `lines_out`,
//!   `too_long`) through `process_too_long`, whose error record is discarded. With
//!   `--only-matches` nothing of it is written, as for every other bad line.
//! - **Flush policy.** Output goes to a 64 KiB block buffer. It is written out when full, and
//!   written and flushed whenever the channel has nothing ready (every complete line read so
//!   far has then been processed: the "idle flush"), at EOF and at shutdown. `--line-buffered`
//!   flushes after every input line. The buffer is a plain `Vec<u8>` rather than a
//!   `BufWriter`: the processor appends its output to a `Vec` anyway, so this saves a copy.
//!   Stdout is locked once for the whole run.
//! - **Arrival time** is the wall clock (ms) when the chunk holding the line's end was read.
//!
//! # How a run ends
//!
//! - EOF: a final line without a newline is processed like any other, then flush.
//! - Stop (SIGTERM/SIGINT, or [`StopHandle::stop`] in tests): stop reading, process the
//!   complete lines already read (the chunk in hand, those queued in the channel and the one
//!   the reader thread holds), flush. The reader thread checks the stop request before every
//!   read and the main thread takes every chunk it read until it confirms it has stopped, so a
//!   byte taken from stdin is always either written out or counted in `discarded_bytes`.
//!   [`PolledStdin`] waits for input in short slices so that an idle reader sees the request
//!   promptly. An over-long line in progress is finished as `too_long`; a short incomplete
//!   line is dropped and reported. A second signal kills the process at once (the default
//!   action).
//! - Closed stdout (EPIPE): [`Ending::BrokenPipe`], quietly; the caller exits 0. With
//!   [`PolledStdin`] it is noticed within [`STOP_POLL_MS`] even while stdin is idle.
//! - A read error on stdin: reported, the lines read so far are finished, [`Ending::ReadError`].

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memchr::memchr;
use serde_json::json;

use super::{ErrorKind, InvalidPolicy, LineError, Processor, ReadyLine};

/// Bytes asked of each `read(2)` on stdin.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Size of the output block buffer.
pub const OUTPUT_BUFFER_BYTES: usize = 64 * 1024;
/// Chunks the reader may run ahead of the main thread.
const CHANNEL_CHUNKS: usize = 4;
/// At most one stderr report per error kind per this interval.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Options of the loop itself (everything else is in the processor's config).
#[derive(Clone, Copy, Debug, Default)]
pub struct IoOptions {
    /// Flush stdout after every input line (`--line-buffered`).
    pub line_buffered: bool,
}

/// Why the loop returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Eof,
    Stopped,
    /// Stdout was closed by the reader; not an error.
    BrokenPipe,
    ReadError,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSummary {
    pub ending: Ending,
    /// Physical input lines seen (a final line without newline included).
    pub lines: u64,
    /// Bytes handed to stdout.
    pub bytes_out: u64,
    /// Bytes of incomplete lines dropped: at shutdown, or when a connection failed.
    pub discarded_bytes: u64,
    /// Connection counts of a `--listen` run; `None` when reading stdin.
    pub connections: Option<ConnectionStats>,
}

/// Connection counts of a `--listen` run (`--stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Connections taken on.
    pub accepted: u64,
    /// Connections closed at once because `--max-connections` were open.
    pub refused: u64,
    /// Connections still open when the run ended.
    pub open: u64,
}

/// Asks a running loop to stop: finish the complete lines already read, flush, return.
#[derive(Clone)]
pub struct StopHandle {
    requested: Arc<AtomicBool>,
    wake: SyncSender<Message>,
}

impl StopHandle {
    pub fn stop(&self) {
        self.requested.store(true, Ordering::SeqCst);
        // When the channel is full the main thread is busy and checks the flag after its next
        // message; it is woken either way.
        let _ = self.wake.try_send(Message::Stop);
    }
}

/// Installs SIGTERM and SIGINT handlers that call `handle.stop()`. A second signal gets the
/// default action (the process is killed), so a stuck shutdown can still be interrupted.
pub fn stop_on_signals(handle: StopHandle) -> io::Result<()> {
    use signal_hook::consts::signal::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("vigil-signals".to_string())
        .spawn(move || {
            let mut stopping = false;
            for signal in signals.forever() {
                if stopping {
                    let _ = signal_hook::low_level::emulate_default_handler(signal);
                }
                stopping = true;
                handle.stop();
            }
        })?;
    Ok(())
}

/// Stdin for [`run`]: each read first waits (poll(2)) at most [`STOP_POLL_MS`] for input
/// and returns `Interrupted` when none came, so the reader thread checks for a stop request
/// at least that often and is never inside a blocking read when the loop stops: a byte read
/// from stdin is a byte processed. Reads are at least [`CHUNK_BYTES`], larger than the
/// standard library's stdin buffer, which they therefore bypass (so poll sees all input).
pub struct PolledStdin {
    stdin: io::Stdin,
}

/// How long [`PolledStdin`] waits for input before letting the reader check for a stop.
pub const STOP_POLL_MS: i32 = 100;

impl PolledStdin {
    pub fn new() -> PolledStdin {
        PolledStdin { stdin: io::stdin() }
    }
}

impl Default for PolledStdin {
    fn default() -> PolledStdin {
        PolledStdin::new()
    }
}

impl Read for PolledStdin {
    /// Also watches stdout: when the host closes its end (POLLERR on a pipe, POLLHUP on a
    /// hung-up terminal or socket), the read fails with `BrokenPipe`, so a closed stdout ends
    /// the run even while stdin is idle, not only at the next write.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut poll_fds = [
            libc::pollfd {
                fd: libc::STDIN_FILENO,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: libc::STDOUT_FILENO,
                events: 0,
                revents: 0,
            },
        ];
        // SAFETY: `poll_fds` is an array of valid, initialised `pollfd`s that outlives the
        // call, and the count passed is its length.
        let ready = unsafe {
            libc::poll(
                poll_fds.as_mut_ptr(),
                poll_fds.len() as libc::nfds_t,
                STOP_POLL_MS,
            )
        };
        if ready > 0 && poll_fds[1].revents & (libc::POLLERR | libc::POLLHUP) != 0 {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        match ready {
            // Nothing yet, or a signal arrived: let the caller check for a stop and retry.
            0 => Err(io::ErrorKind::Interrupted.into()),
            _ if ready < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {
                Err(io::ErrorKind::Interrupted.into())
            }
            // Input, end of input, or an error condition that the read reports.
            _ => self.stdin.read(buf),
        }
    }
}

/// Writes one JSON value as one line, in one `write` call so concurrent writers cannot
/// interleave it. Errors are ignored: stderr is best effort.
pub fn write_json_line(out: &mut impl Write, value: &serde_json::Value) {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    let _ = out.write_all(&line);
    let _ = out.flush();
}

/// Work the caller does at line boundaries while the loop runs: periodic state saves, rule
/// reloads, metrics. The loop stays the only owner of the processor; it lends it here.
pub trait Housekeeping {
    /// The longest the loop waits for input before calling [`Housekeeping::tick`] anyway;
    /// `None` (the default) means ticks come only with input.
    fn period(&self) -> Option<Duration> {
        None
    }
    /// Called at a line boundary (no line is half processed): after each chunk of input, and
    /// at least every [`Housekeeping::period`] while the input is idle. Implementations keep
    /// their own deadlines and report their own failures; a failure here never ends the run.
    fn tick(&mut self, _processor: &mut Processor) {}
    /// Called once after the last line was processed and flushed, before [`run`] returns
    /// (whatever the ending).
    fn finish(&mut self, _processor: &mut Processor) {}
}

/// No housekeeping.
impl Housekeeping for () {}

/// Two jobs in one: each is ticked and finished, the first one first; the loop wakes at the
/// shorter of their periods (each job keeps its own deadlines, so extra ticks are harmless).
impl<A: Housekeeping, B: Housekeeping> Housekeeping for (A, B) {
    fn period(&self) -> Option<Duration> {
        match (self.0.period(), self.1.period()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    fn tick(&mut self, processor: &mut Processor) {
        self.0.tick(processor);
        self.1.tick(processor);
    }
    fn finish(&mut self, processor: &mut Processor) {
        self.0.finish(processor);
        self.1.finish(processor);
    }
}

impl<H: Housekeeping + ?Sized> Housekeeping for &mut H {
    fn period(&self) -> Option<Duration> {
        (**self).period()
    }
    fn tick(&mut self, processor: &mut Processor) {
        (**self).tick(processor);
    }
    fn finish(&mut self, processor: &mut Processor) {
        (**self).finish(processor);
    }
}

/// Runs the loop until EOF, a stop request, a closed `output` or a read error.
///
/// `input` is read on its own thread. A stop waits for that thread to finish the read it is
/// in, so `input` should return within a bounded time even with no data (as [`PolledStdin`]
/// does with `Interrupted`); a plain blocking reader delays a stop until its next read ends. `diagnostics` (stderr) receives JSON lines only.
/// `install_stop` gets the handle that stops the loop; it runs before any input is read.
/// `housekeeping` is called at line boundaries (see [`Housekeeping`]).
/// Errors are write errors on `output` other than a broken pipe, or a failure to set up.
pub fn run<R, W, E>(
    processor: &mut Processor,
    input: R,
    output: W,
    diagnostics: E,
    options: IoOptions,
    install_stop: impl FnOnce(StopHandle) -> io::Result<()>,
    housekeeping: &mut dyn Housekeeping,
) -> io::Result<RunSummary>
where
    R: Read + Send + 'static,
    W: Write,
    E: Write,
{
    let start_reader =
        |sender: SyncSender<Message>, recycled: Receiver<Vec<u8>>, requested: Arc<AtomicBool>| {
            std::thread::Builder::new()
                .name("vigil-stdin".to_string())
                .spawn(move || read_loop(input, sender, recycled, &requested))
                .map(drop)
        };
    run_sources(
        processor,
        start_reader,
        output,
        diagnostics,
        options,
        Sources::Stdin,
        install_stop,
        housekeeping,
    )
}

/// What feeds the loop: stdin alone, or the connections of `--listen` (see
/// [`super::listen`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sources {
    /// One source (id 0): over-long lines stream through with `--invalid pass`, and reports
    /// name no connection.
    Stdin,
    /// Many sources, one per connection: lines of different sources may only interleave at
    /// line boundaries, so an over-long line is never streamed through (it becomes a
    /// `too_long` error record even with `--invalid pass`), and reports name the connection.
    Connections,
}

/// The loop of [`run`] over any input thread: `start_reader` gets the channel's sending end,
/// the recycled chunk buffers and the stop flag, and starts the thread (or threads) that
/// send [`Message`]s; they must end with [`Message::ReaderStopped`] after seeing the stop
/// flag, or with [`Message::Eof`].
#[allow(clippy::too_many_arguments)]
pub(super) fn run_sources<W, E>(
    processor: &mut Processor,
    start_reader: impl FnOnce(SyncSender<Message>, Receiver<Vec<u8>>, Arc<AtomicBool>) -> io::Result<()>,
    output: W,
    diagnostics: E,
    options: IoOptions,
    sources: Sources,
    install_stop: impl FnOnce(StopHandle) -> io::Result<()>,
    housekeeping: &mut dyn Housekeeping,
) -> io::Result<RunSummary>
where
    W: Write,
    E: Write,
{
    let (sender, receiver) = mpsc::sync_channel(CHANNEL_CHUNKS);
    let requested = Arc::new(AtomicBool::new(false));
    install_stop(StopHandle {
        requested: Arc::clone(&requested),
        wake: sender.clone(),
    })?;
    let (recycle, recycled) = mpsc::channel();
    start_reader(sender, recycled, Arc::clone(&requested))?;

    let mut pump = Pump::new(processor, output, diagnostics, options, sources);
    let result = pump_messages(&mut pump, &receiver, &requested, &recycle, housekeeping);
    housekeeping.finish(pump.processor);
    let ending = match result {
        Ok(ending) => ending,
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ending::BrokenPipe,
        Err(err) => return Err(err),
    };
    Ok(pump.summary(ending))
}

/// What input threads send to the main thread.
pub(super) enum Message {
    /// Bytes read from one source: stdin is source 0, each connection has its own id, never
    /// reused within a run.
    Data {
        source: u64,
        buf: Vec<u8>,
        len: usize,
        arrival_ms: i64,
    },
    /// End of stdin: the run ends.
    Eof,
    /// Stdin failed (the run ends), or stdout was closed (`BrokenPipe`, from any input thread).
    ReadError(io::Error),
    /// One connection ended. On an orderly close its last line, even without a newline, is a
    /// line; after an error it is dropped as incomplete.
    Closed {
        source: u64,
        error: Option<io::Error>,
    },
    /// A report for stderr from an input thread, written by the main thread so that stderr
    /// has one writer.
    Report {
        level: &'static str,
        msg: &'static str,
        fields: serde_json::Value,
    },
    /// From a [`StopHandle`]: wakes the main thread.
    Stop,
    /// From the reader thread, last: it saw the stop request and reads nothing more.
    ReaderStopped,
}

fn read_loop<R: Read>(
    mut input: R,
    sender: SyncSender<Message>,
    recycled: Receiver<Vec<u8>>,
    requested: &AtomicBool,
) {
    loop {
        if requested.load(Ordering::SeqCst) {
            let _ = sender.send(Message::ReaderStopped);
            return;
        }
        let mut buf = recycled.try_recv().unwrap_or_else(|_| vec![0; CHUNK_BYTES]);
        let message = match input.read(&mut buf) {
            Ok(0) => Message::Eof,
            Ok(len) => Message::Data {
                source: 0,
                buf,
                len,
                arrival_ms: now_ms(),
            },
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => Message::ReadError(err),
        };
        let last = !matches!(message, Message::Data { .. });
        if sender.send(message).is_err() || last {
            return;
        }
    }
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn pump_messages<W: Write, E: Write>(
    pump: &mut Pump<'_, W, E>,
    receiver: &Receiver<Message>,
    requested: &AtomicBool,
    recycle: &Sender<Vec<u8>>,
    housekeeping: &mut dyn Housekeeping,
) -> io::Result<Ending> {
    loop {
        let message = match receiver.try_recv() {
            Ok(message) => message,
            Err(TryRecvError::Empty) => {
                // Idle: every complete line read so far is processed, so let the host see it.
                pump.drain()?;
                pump.sink.flush()?;
                match housekeeping.period() {
                    None => receiver.recv().unwrap_or(Message::Eof),
                    Some(period) => match receiver.recv_timeout(period) {
                        Ok(message) => message,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            housekeeping.tick(pump.processor);
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => Message::Eof,
                    },
                }
            }
            Err(TryRecvError::Disconnected) => Message::Eof,
        };
        match message {
            Message::Data {
                source,
                buf,
                len,
                arrival_ms,
            } => {
                pump.select(source);
                pump.feed(&buf[..len], arrival_ms)?;
                let _ = recycle.send(buf);
                housekeeping.tick(pump.processor);
            }
            Message::Closed { source, error } => {
                pump.select(source);
                pump.close(error)?;
                housekeeping.tick(pump.processor);
            }
            Message::Report { level, msg, fields } => pump.reporter.event(level, msg, fields),
            Message::Eof => {
                pump.finish()?;
                pump.sink.flush()?;
                return Ok(Ending::Eof);
            }
            // Stdout closed while the reader waited (see `PolledStdin`).
            Message::ReadError(err) if err.kind() == io::ErrorKind::BrokenPipe => {
                return Ok(Ending::BrokenPipe);
            }
            Message::ReadError(err) => {
                pump.reporter.event(
                    "error",
                    "cannot read stdin",
                    json!({"detail": err.to_string()}),
                );
                pump.finish()?;
                pump.sink.flush()?;
                return Ok(Ending::ReadError);
            }
            Message::Stop | Message::ReaderStopped => {}
        }
        if requested.load(Ordering::SeqCst) {
            // Every chunk the reader took from stdin is finished; it reads nothing more once
            // it has seen the request, and says so last.
            let mut at_eof = false;
            loop {
                match receiver.recv() {
                    Ok(Message::Data {
                        source,
                        buf,
                        len,
                        arrival_ms,
                    }) => {
                        pump.select(source);
                        pump.feed(&buf[..len], arrival_ms)?;
                        let _ = recycle.send(buf);
                    }
                    Ok(Message::Closed { source, error }) => {
                        pump.select(source);
                        pump.close(error)?;
                    }
                    Ok(Message::Report { level, msg, fields }) => {
                        pump.reporter.event(level, msg, fields);
                    }
                    Ok(Message::Stop) => {}
                    Ok(Message::Eof) => {
                        at_eof = true;
                        break;
                    }
                    Ok(Message::ReaderStopped | Message::ReadError(_)) | Err(_) => break,
                }
            }
            // At EOF the last line is complete even without a newline.
            if at_eof {
                pump.finish()?;
            } else {
                pump.stop_all()?;
            }
            pump.sink.flush()?;
            return Ok(Ending::Stopped);
        }
    }
}

/// What finishes a queued line for the pump: the stateful half and output, then error
/// reports (naming the line's own connection) and the flush policy.
fn finisher<'s, W: Write, E: Write>(
    sink: &'s mut Sink<W>,
    reporter: &'s mut Reporter<E>,
    line_no: &'s mut u64,
    sources: Sources,
) -> impl FnMut(&mut Processor, ReadyLine) -> io::Result<()> + 's {
    move |processor, ready| {
        *line_no += 1;
        let connection = match sources {
            Sources::Stdin => None,
            Sources::Connections => Some(ready.tag),
        };
        processor.finish_ready(ready, &mut sink.buf);
        for error in processor.take_errors() {
            reporter.line_error(&error, *line_no, connection, Instant::now());
        }
        sink.line_done()
    }
}

/// The framer and everything it feeds: processor, output buffer, error reporter.
struct Pump<'p, W: Write, E: Write> {
    processor: &'p mut Processor,
    sink: Sink<W>,
    reporter: Reporter<E>,
    /// The current incomplete line (at most `max_line_bytes + 1` bytes), or the kept prefix of
    /// an over-long one.
    partial: Vec<u8>,
    overflow: Option<Overflow>,
    max_line_bytes: usize,
    /// Stream over-long lines through (`--invalid pass` without `--only-matches`).
    pass_long: bool,
    line_no: u64,
    last_arrival_ms: i64,
    discarded_bytes: u64,
    sources: Sources,
    /// The source whose framing state is in `partial` and `overflow`.
    source: u64,
    /// The framing state of other sources that are inside a line. A source at a line
    /// boundary has no entry, so idle connections hold no buffer.
    parked: HashMap<u64, Framing>,
}

/// The framing state of one source while another one is being fed.
struct Framing {
    partial: Vec<u8>,
    overflow: Option<Overflow>,
}

/// The state of an over-long line being discarded (or streamed through).
struct Overflow {
    /// Bytes of the line seen so far, without the `\n`.
    total: u64,
    /// Whether the last byte seen was `\r` (not counted in the line's length when it ends).
    last_cr: bool,
}

impl<'p, W: Write, E: Write> Pump<'p, W, E> {
    fn new(
        processor: &'p mut Processor,
        output: W,
        diagnostics: E,
        options: IoOptions,
        sources: Sources,
    ) -> Self {
        let config = processor.config();
        let max_line_bytes = config.max_line_bytes;
        let pass_long = config.invalid == InvalidPolicy::Pass
            && !config.only_matches
            && sources == Sources::Stdin;
        Pump {
            processor,
            sink: Sink::new(output, options.line_buffered),
            reporter: Reporter::new(diagnostics),
            partial: Vec::new(),
            overflow: None,
            max_line_bytes,
            pass_long,
            line_no: 0,
            last_arrival_ms: 0,
            discarded_bytes: 0,
            sources,
            source: 0,
            parked: HashMap::new(),
        }
    }

    /// Makes `source` the one that `feed`, `finish`, `stop` and `close` act on, parking the
    /// current source's incomplete line. A no-op for stdin, the only source of its run.
    fn select(&mut self, source: u64) {
        if source == self.source {
            return;
        }
        let incoming = self.parked.remove(&source);
        let outgoing_idle = self.partial.is_empty() && self.overflow.is_none();
        match (outgoing_idle, incoming) {
            // Both at a line boundary: keep the buffer (and its capacity) for the next one.
            (true, None) => {}
            (true, Some(framing)) => {
                self.partial = framing.partial;
                self.overflow = framing.overflow;
            }
            (false, incoming) => {
                let framing = incoming.unwrap_or(Framing {
                    partial: Vec::new(),
                    overflow: None,
                });
                let outgoing = Framing {
                    partial: std::mem::replace(&mut self.partial, framing.partial),
                    overflow: std::mem::replace(&mut self.overflow, framing.overflow),
                };
                self.parked.insert(self.source, outgoing);
            }
        }
        self.source = source;
    }

    /// The selected connection ended: after an orderly close its last line is a line, as at
    /// EOF; after an error it is dropped as incomplete (the peer may not have finished it).
    fn close(&mut self, error: Option<io::Error>) -> io::Result<()> {
        self.drain()?;
        match error {
            None => self.finish(),
            Some(err) => {
                if self.overflow.is_some() {
                    return self.finish_overflow();
                }
                if !self.partial.is_empty() {
                    self.discarded_bytes += self.partial.len() as u64;
                    self.reporter.event(
                        "warn",
                        "incomplete line dropped: connection error",
                        json!({
                            "connection": self.source,
                            "bytes": self.partial.len(),
                            "detail": err.to_string(),
                        }),
                    );
                    self.partial.clear();
                }
                Ok(())
            }
        }
    }

    /// Shutdown of every source: [`Pump::stop`] on each, in source order.
    fn stop_all(&mut self) -> io::Result<()> {
        self.stop()?;
        let mut waiting: Vec<u64> = self.parked.keys().copied().collect();
        waiting.sort_unstable();
        for source in waiting {
            self.select(source);
            self.stop()?;
        }
        Ok(())
    }

    /// The source to name in reports: none for stdin.
    fn connection(&self) -> Option<u64> {
        match self.sources {
            Sources::Stdin => None,
            Sources::Connections => Some(self.source),
        }
    }

    fn summary(&self, ending: Ending) -> RunSummary {
        RunSummary {
            ending,
            lines: self.line_no,
            bytes_out: self.sink.bytes_out,
            discarded_bytes: self.discarded_bytes,
            connections: None,
        }
    }

    /// Longest incomplete line kept in memory.
    fn limit(&self) -> usize {
        self.max_line_bytes.saturating_add(1)
    }

    fn feed(&mut self, mut data: &[u8], arrival_ms: i64) -> io::Result<()> {
        self.last_arrival_ms = arrival_ms;
        while !data.is_empty() {
            let newline = memchr(b'\n', data);
            if self.overflow.is_some() {
                let end = newline.unwrap_or(data.len());
                self.overflow_bytes(&data[..end])?;
                match newline {
                    Some(idx) => {
                        self.finish_overflow()?;
                        data = &data[idx + 1..];
                        continue;
                    }
                    None => return Ok(()),
                }
            }
            match newline {
                Some(idx) => {
                    if self.partial.is_empty() {
                        // The whole line is in this chunk: no copy.
                        self.line(&data[..idx], arrival_ms)?;
                    } else if self.partial.len() + idx <= self.limit() {
                        self.partial.extend_from_slice(&data[..idx]);
                        let line = std::mem::take(&mut self.partial);
                        let result = self.line(&line, arrival_ms);
                        self.partial = line;
                        self.partial.clear();
                        result?;
                    } else {
                        self.start_overflow(&data[..idx])?;
                        self.finish_overflow()?;
                    }
                    data = &data[idx + 1..];
                }
                None => {
                    if self.partial.len() + data.len() <= self.limit() {
                        self.partial.extend_from_slice(data);
                    } else {
                        self.start_overflow(data)?;
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// EOF: the last line, even without a newline, is a line.
    fn finish(&mut self) -> io::Result<()> {
        if self.overflow.is_some() {
            return self.finish_overflow();
        }
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line, self.last_arrival_ms)?;
        }
        self.drain()
    }

    /// Shutdown: a short incomplete line may still be being written by the host, so it is
    /// dropped; an over-long one is already known to be too long and is finished as such.
    fn stop(&mut self) -> io::Result<()> {
        // Complete lines were read, so they are processed.
        self.drain()?;
        if self.overflow.is_some() {
            return self.finish_overflow();
        }
        if !self.partial.is_empty() {
            self.discarded_bytes += self.partial.len() as u64;
            let mut fields = json!({"line": self.line_no + 1, "bytes": self.partial.len()});
            if let (Some(connection), Some(map)) = (self.connection(), fields.as_object_mut()) {
                map.insert("connection".to_string(), connection.into());
            }
            self.reporter
                .event("warn", "incomplete line dropped at shutdown", fields);
            self.partial.clear();
        }
        Ok(())
    }

    /// One complete line: queued for the matching threads when the processor pipelines,
    /// else processed at once.
    fn line(&mut self, line: &[u8], arrival_ms: i64) -> io::Result<()> {
        if self.processor.is_pipelined() {
            let tag = self.source;
            let (processor, finish) = self.finishing();
            return processor.queue_line(line, arrival_ms, tag, finish);
        }
        self.line_no += 1;
        self.processor
            .process_line(line, arrival_ms, &mut self.sink.buf);
        self.report_errors();
        self.sink.line_done()
    }

    /// Finishes the queued lines (see [`Processor::queue_line`]), in order.
    fn drain(&mut self) -> io::Result<()> {
        if !self.processor.has_queued() {
            return Ok(());
        }
        let (processor, finish) = self.finishing();
        processor.drain(finish)
    }

    /// The processor, and what finishes its queued lines into this pump ([`finisher`]).
    fn finishing(
        &mut self,
    ) -> (
        &mut Processor,
        impl FnMut(&mut Processor, ReadyLine) -> io::Result<()> + '_,
    ) {
        let Pump {
            processor,
            sink,
            reporter,
            line_no,
            sources,
            ..
        } = self;
        (
            &mut **processor,
            finisher(sink, reporter, line_no, *sources),
        )
    }

    /// The current line (`partial` + `more`) turned out longer than the limit.
    fn start_overflow(&mut self, more: &[u8]) -> io::Result<()> {
        // Its bytes may be streamed through at once: what came before goes first.
        self.drain()?;
        let total = (self.partial.len() + more.len()) as u64;
        let last_cr = more.last().or(self.partial.last()) == Some(&b'\r');
        if self.pass_long {
            self.sink.pass_bytes(&self.partial)?;
            self.sink.pass_bytes(more)?;
            self.partial.clear();
        } else {
            let keep = self
                .max_line_bytes
                .saturating_sub(self.partial.len())
                .min(more.len());
            self.partial.extend_from_slice(&more[..keep]);
            self.partial.truncate(self.max_line_bytes);
        }
        self.overflow = Some(Overflow { total, last_cr });
        Ok(())
    }

    fn overflow_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(overflow) = &mut self.overflow
            && let Some(&last) = bytes.last()
        {
            overflow.total += bytes.len() as u64;
            overflow.last_cr = last == b'\r';
            if self.pass_long {
                self.sink.pass_bytes(bytes)?;
            }
        }
        Ok(())
    }

    fn finish_overflow(&mut self) -> io::Result<()> {
        let Some(overflow) = self.overflow.take() else {
            return Ok(());
        };
        self.drain()?;
        self.line_no += 1;
        let total_len = overflow.total - u64::from(overflow.last_cr);
        if self.pass_long {
            // The bytes are out already; the processor only counts the line. Its error
            // record (built from an empty prefix, so it is small) is discarded.
            let mut discarded = Vec::new();
            self.processor
                .process_too_long(&[], total_len, &mut discarded);
            self.sink.end_passed_line();
        } else {
            self.processor
                .process_too_long(&self.partial, total_len, &mut self.sink.buf);
        }
        self.partial.clear();
        self.report_errors();
        self.sink.line_done()
    }

    fn report_errors(&mut self) {
        let line_no = self.line_no;
        let connection = self.connection();
        for error in self.processor.take_errors() {
            self.reporter
                .line_error(&error, line_no, connection, Instant::now());
        }
    }
}

/// The output block buffer. The processor appends to `buf` directly.
struct Sink<W: Write> {
    out: W,
    buf: Vec<u8>,
    line_buffered: bool,
    bytes_out: u64,
    /// A `\r` held back from a streamed over-long line: dropped if the newline follows.
    pending_cr: bool,
}

impl<W: Write> Sink<W> {
    fn new(out: W, line_buffered: bool) -> Sink<W> {
        Sink {
            out,
            buf: Vec::with_capacity(OUTPUT_BUFFER_BYTES),
            line_buffered,
            bytes_out: 0,
            pending_cr: false,
        }
    }

    fn line_done(&mut self) -> io::Result<()> {
        if self.line_buffered {
            self.flush()
        } else if self.buf.len() >= OUTPUT_BUFFER_BYTES {
            self.write_out()
        } else {
            Ok(())
        }
    }

    /// Streams part of an over-long line (`--invalid pass`).
    fn pass_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some((&last, body)) = bytes.split_last() else {
            return Ok(());
        };
        if std::mem::take(&mut self.pending_cr) {
            self.buf.push(b'\r');
        }
        self.buf.extend_from_slice(body);
        if last == b'\r' {
            self.pending_cr = true;
        } else {
            self.buf.push(last);
        }
        if self.buf.len() >= OUTPUT_BUFFER_BYTES {
            self.write_out()?;
        }
        Ok(())
    }

    fn end_passed_line(&mut self) {
        self.pending_cr = false;
        self.buf.push(b'\n');
    }

    fn write_out(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf)?;
            self.bytes_out += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out()?;
        self.out.flush()
    }
}

/// Stderr reporting: JSON lines, bad input rate-limited per error kind.
struct Reporter<E: Write> {
    out: E,
    kinds: [KindReport; ErrorKind::ALL.len()],
}

#[derive(Clone, Copy, Default)]
struct KindReport {
    last: Option<Instant>,
    /// Errors of this kind not reported since `last`.
    suppressed: u64,
}

impl<E: Write> Reporter<E> {
    fn new(out: E) -> Reporter<E> {
        Reporter {
            out,
            kinds: [KindReport::default(); ErrorKind::ALL.len()],
        }
    }

    /// Reports a bad line unless one of the same kind was reported less than a second ago;
    /// the next report carries the number suppressed in between.
    fn line_error(
        &mut self,
        error: &LineError,
        line_no: u64,
        connection: Option<u64>,
        now: Instant,
    ) {
        let idx = ErrorKind::ALL
            .iter()
            .position(|&kind| kind == error.kind)
            .unwrap_or(0);
        let state = &mut self.kinds[idx];
        if let Some(last) = state.last
            && now.saturating_duration_since(last) < REPORT_INTERVAL
        {
            state.suppressed += 1;
            return;
        }
        let suppressed = std::mem::take(&mut state.suppressed);
        state.last = Some(now);
        let mut report = json!({
            "level": "warn",
            "msg": "bad input line",
            "kind": error.kind.as_str(),
            "line": line_no,
            "detail": error.detail,
            "suppressed": suppressed,
        });
        // `line` counts the lines of every connection; `connection` says whose this was.
        if let (Some(connection), Some(map)) = (connection, report.as_object_mut()) {
            map.insert("connection".to_string(), connection.into());
        }
        write_json_line(&mut self.out, &report);
    }

    fn event(&mut self, level: &str, msg: &str, fields: serde_json::Value) {
        let mut value = json!({"level": level, "msg": msg});
        if let (Some(map), serde_json::Value::Object(fields)) = (value.as_object_mut(), fields) {
            map.extend(fields);
        }
        write_json_line(&mut self.out, &value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::Limits;
    use crate::eval::{Engine, EngineConfig};
    use crate::ir::RuleSet;
    use crate::protocol::ProtocolConfig;

    fn processor(config: ProtocolConfig) -> Processor {
        let (engine, _) = Engine::new(RuleSet::default(), EngineConfig::new(Limits::default()));
        Processor::new(engine, config)
    }

    /// Feeds `input` in pieces of `step` bytes, then EOF; returns stdout, stderr.
    fn pump(config: ProtocolConfig, input: &[u8], step: usize) -> (Vec<u8>, String, Processor) {
        let mut processor = processor(config);
        let mut out = Vec::new();
        let mut err = Vec::new();
        {
            let mut pump = Pump::new(
                &mut processor,
                &mut out,
                &mut err,
                IoOptions::default(),
                Sources::Stdin,
            );
            for piece in input.chunks(step) {
                pump.feed(piece, 1).unwrap();
            }
            pump.finish().unwrap();
            pump.sink.flush().unwrap();
        }
        (out, String::from_utf8(err).unwrap(), processor)
    }

    fn lines(out: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(out)
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn frames_lines_across_any_chunking() {
        let input = b"{\"a\":1}\n{\"b\":2}\r\n{\"c\":3}";
        for step in 1..input.len() + 1 {
            let (out, _, processor) = pump(ProtocolConfig::default(), input, step);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n",
                "step {step}"
            );
            assert_eq!(processor.counters().lines_in, 3);
        }
    }

    #[test]
    fn over_long_lines_keep_a_bounded_prefix() {
        let config = ProtocolConfig {
            max_line_bytes: 8,
            ..ProtocolConfig::default()
        };
        // 8 bytes fit (also with \r), 9 do not.
        let input = b"{\"a\":12}\n{\"a\":12}\r\n{\"a\":123}\n0123456789abcdef\r\n{}\n";
        for step in 1..input.len() + 1 {
            let (out, err, processor) = pump(config.clone(), input, step);
            let out = lines(&out);
            assert_eq!(out.len(), 5, "step {step}");
            assert_eq!(out[0], "{\"a\":12}");
            assert_eq!(out[1], "{\"a\":12}");
            assert_eq!(
                out[2],
                r#"{"message":"{\"a\":123","vigil":{"error":"too_long"}}"#
            );
            assert_eq!(
                out[3],
                r#"{"message":"01234567","vigil":{"error":"too_long"}}"#
            );
            assert_eq!(out[4], "{}");
            assert_eq!(processor.counters().error_count(ErrorKind::TooLong), 2);
            assert_eq!(processor.counters().lines_in, 5);
            // Bytes counted as the processor counts them: without the \r, with the \n.
            assert_eq!(processor.counters().bytes_in, input.len() as u64 - 2);
            assert!(err.contains("\"kind\":\"too_long\""), "{err}");
        }
    }

    #[test]
    fn over_long_lines_pass_through_unchanged() {
        let config = ProtocolConfig {
            max_line_bytes: 4,
            invalid: InvalidPolicy::Pass,
            ..ProtocolConfig::default()
        };
        let input = b"{}\n0123456789\r\nab\rcd\ref\n{\"x\":1}";
        for step in 1..input.len() + 1 {
            let (out, _, processor) = pump(config.clone(), input, step);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "{}\n0123456789\nab\rcd\ref\n{\"x\":1}\n",
                "step {step}"
            );
            let counters = processor.counters();
            assert_eq!(counters.lines_in, 4);
            assert_eq!(counters.lines_out, 4);
            // `{"x":1}` is over 4 bytes as well.
            assert_eq!(counters.error_count(ErrorKind::TooLong), 3);
        }
    }

    #[test]
    fn only_matches_with_pass_writes_no_over_long_line() {
        let config = ProtocolConfig {
            max_line_bytes: 4,
            invalid: InvalidPolicy::Pass,
            only_matches: true,
            ..ProtocolConfig::default()
        };
        let (out, _, processor) = pump(config, b"0123456789\n{}\n", 3);
        assert!(out.is_empty());
        assert_eq!(processor.counters().error_count(ErrorKind::TooLong), 1);
    }

    #[test]
    fn stop_drops_a_short_partial_line_and_finishes_an_over_long_one() {
        let config = ProtocolConfig {
            max_line_bytes: 4,
            ..ProtocolConfig::default()
        };
        let mut processor = processor(config);
        let mut out = Vec::new();
        let mut err = Vec::new();
        {
            let mut pump = Pump::new(
                &mut processor,
                &mut out,
                &mut err,
                IoOptions::default(),
                Sources::Stdin,
            );
            pump.feed(b"{}\n{\"a", 1).unwrap();
            pump.stop().unwrap();
            pump.feed(b"0123456789", 1).unwrap();
            pump.stop().unwrap();
            pump.sink.flush().unwrap();
            assert_eq!(pump.discarded_bytes, 3);
        }
        assert_eq!(
            lines(&out),
            ["{}", r#"{"message":"0123","vigil":{"error":"too_long"}}"#]
        );
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("incomplete line dropped at shutdown"), "{err}");
    }

    #[test]
    fn each_source_has_its_own_framer() {
        // `--invalid pass`: with several sources an over-long line is not streamed through
        // (it would split another source's line), it becomes an error record.
        let config = ProtocolConfig {
            max_line_bytes: 8,
            invalid: InvalidPolicy::Pass,
            ..ProtocolConfig::default()
        };
        let mut processor = processor(config);
        let mut out = Vec::new();
        let mut err = Vec::new();
        {
            let mut pump = Pump::new(
                &mut processor,
                &mut out,
                &mut err,
                IoOptions::default(),
                Sources::Connections,
            );
            let feeds: [(u64, &[u8]); 8] = [
                (1, b"{\"a\""),
                (2, b"{\"b\":1}\n{\"b"),
                (3, b"0123456"),
                (1, b":1}\r"),
                (3, b"789abc"),
                (2, b"\":2}\n{\"b\":3}"),
                (1, b"\n{\"a"),
                (3, b"\n"),
            ];
            for (source, data) in feeds {
                pump.select(source);
                pump.feed(data, 1).unwrap();
            }
            // Source 2 closes: its last line counts. Source 1 is dropped at the stop.
            pump.select(2);
            pump.close(None).unwrap();
            pump.stop_all().unwrap();
            pump.sink.flush().unwrap();
            assert_eq!(pump.discarded_bytes, 3);
            assert!(pump.parked.is_empty());
        }
        assert_eq!(
            lines(&out),
            [
                r#"{"b":1}"#,
                r#"{"b":2}"#,
                r#"{"a":1}"#,
                r#"{"message":"01234567","vigil":{"error":"too_long"}}"#,
                r#"{"b":3}"#,
            ]
        );
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains(r#""connection":3"#), "{err}");
        assert!(err.contains(r#""connection":1"#), "{err}");
    }

    #[test]
    fn reports_are_rate_limited_per_kind() {
        let mut err = Vec::new();
        let mut reporter = Reporter::new(&mut err);
        let start = Instant::now();
        let json = LineError {
            kind: ErrorKind::InvalidJson,
            detail: "x".to_string(),
        };
        let utf8 = LineError {
            kind: ErrorKind::InvalidUtf8,
            detail: "y".to_string(),
        };
        reporter.line_error(&json, 1, None, start);
        reporter.line_error(&json, 2, None, start + Duration::from_millis(10));
        reporter.line_error(&utf8, 3, None, start + Duration::from_millis(20));
        reporter.line_error(&json, 4, None, start + Duration::from_millis(999));
        reporter.line_error(&json, 5, None, start + Duration::from_millis(1000));
        let reports: Vec<serde_json::Value> = String::from_utf8(err)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let summary: Vec<(u64, u64)> = reports
            .iter()
            .map(|r| {
                (
                    r["line"].as_u64().unwrap(),
                    r["suppressed"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(summary, [(1, 0), (3, 0), (5, 2)]);
        assert_eq!(reports[0]["kind"], "invalid_json");
        assert_eq!(reports[0]["level"], "warn");
    }

    /// A reader that hands out at most `step` bytes per read.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let len = self.step.min(buf.len()).min(self.data.len() - self.pos);
            buf[..len].copy_from_slice(&self.data[self.pos..self.pos + len]);
            self.pos += len;
            Ok(len)
        }
    }

    #[test]
    fn run_reads_to_eof_through_the_reader_thread() {
        let mut input = Vec::new();
        for idx in 0..2000 {
            input.extend_from_slice(format!("{{\"n\":{idx}}}\n").as_bytes());
        }
        let mut processor = processor(ProtocolConfig::default());
        let mut out = Vec::new();
        let mut err = Vec::new();
        let reader = Trickle {
            data: input.clone(),
            pos: 0,
            step: 777,
        };
        let summary = run(
            &mut processor,
            reader,
            &mut out,
            &mut err,
            IoOptions::default(),
            |_| Ok(()),
            &mut (),
        )
        .unwrap();
        assert_eq!(summary.ending, Ending::Eof);
        assert_eq!(summary.lines, 2000);
        assert_eq!(summary.bytes_out, input.len() as u64);
        assert_eq!(out, input);
        assert!(err.is_empty());
    }

    /// A writer that fails like a closed pipe after `limit` bytes.
    struct ClosedAfter {
        written: usize,
        limit: usize,
    }

    impl Write for ClosedAfter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.written >= self.limit {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.written += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_output_ends_the_run_quietly() {
        let input = b"{}\n".repeat(100_000);
        let mut processor = processor(ProtocolConfig::default());
        let mut err = Vec::new();
        let summary = run(
            &mut processor,
            io::Cursor::new(input),
            ClosedAfter {
                written: 0,
                limit: 10,
            },
            &mut err,
            IoOptions {
                line_buffered: true,
            },
            |_| Ok(()),
            &mut (),
        )
        .unwrap();
        assert_eq!(summary.ending, Ending::BrokenPipe);
        assert!(err.is_empty());
    }

    /// Records what the processor had done at each call.
    #[derive(Default)]
    struct Recorder {
        /// (lines_in, lines_out) at each tick.
        ticks: Vec<(u64, u64)>,
        finished: Option<u64>,
    }

    impl Housekeeping for Recorder {
        fn period(&self) -> Option<Duration> {
            Some(Duration::from_millis(10))
        }
        fn tick(&mut self, processor: &mut Processor) {
            let counters = processor.counters();
            self.ticks.push((counters.lines_in, counters.lines_out));
        }
        fn finish(&mut self, processor: &mut Processor) {
            assert!(self.finished.is_none(), "finish is called once");
            self.finished = Some(processor.counters().lines_in);
        }
    }

    /// Two lines, then a pause with no input, then a third line and EOF.
    struct PausingReader {
        step: usize,
    }

    impl Read for PausingReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.step += 1;
            let data: &[u8] = match self.step {
                1 => b"{\"a\":1}\n{\"a\":2}\n",
                2 => {
                    std::thread::sleep(Duration::from_millis(150));
                    b"{\"a\":3}\n"
                }
                _ => b"",
            };
            buf[..data.len()].copy_from_slice(data);
            Ok(data.len())
        }
    }

    #[test]
    fn housekeeping_ticks_at_line_boundaries_and_while_idle() {
        let mut processor = processor(ProtocolConfig::default());
        let mut out = Vec::new();
        let mut recorder = Recorder::default();
        let summary = run(
            &mut processor,
            PausingReader { step: 0 },
            &mut out,
            io::sink(),
            IoOptions::default(),
            |_| Ok(()),
            &mut recorder,
        )
        .unwrap();
        assert_eq!(summary.lines, 3);
        // Every tick sees whole lines only: as many out as in.
        assert!(recorder.ticks.iter().all(|(lines_in, out)| lines_in == out));
        // The pause of 150 ms holds several idle ticks (period 10 ms) with two lines done.
        let idle = recorder.ticks.iter().filter(|t| **t == (2, 2)).count();
        assert!(idle >= 3, "ticks: {:?}", recorder.ticks);
        assert_eq!(recorder.finished, Some(3));
    }
}
