//! Socket input (`--listen unix:PATH`, `--listen tcp:ADDR:PORT`): vigil as the middle of a
//! Vector topology, fed by a `socket` sink instead of stdin.
//!
//! This module binds the listeners and runs the thread that accepts connections and reads
//! them; framing, processing, output and the flush policy are the stdin loop's
//! ([`super::io`]), which keeps one framer per connection.
//!
//! # Design
//!
//! ```text
//! poll thread ── poll(2) over listeners + connections ──┐
//!   accept (up to --max-connections), read 64 KiB       ├─▶ sync_channel(4) ─▶ main thread: one
//!   chunks, one read per ready connection per round     │     framer per connection, Processor,
//! signal thread ── SIGTERM/SIGINT → Stop ───────────────┘     output buffer, flush
//! ```
//!
//! - **One poll(2) thread, not a thread per connection.** Up to `--max-connections` (default
//!   [`DEFAULT_MAX_CONNECTIONS`]) connections cost one thread and one read buffer in hand
//!   rather than one of each per connection. Each round reads at most one chunk from each
//!   ready connection, so a busy connection cannot starve the others. A shutdown has a single
//!   reader to wait for, which keeps the stdin loop's promise: a byte read from a socket is
//!   either written out or counted in `discarded_bytes`. No tokio: the engine side is one
//!   thread, and poll(2) over a few hundred descriptors is cheap at these rates.
//! - **Backpressure and bounded memory.** The poll thread blocks when the channel is full (a
//!   slow stdout), and then reads nothing from any socket; the senders' writes block in
//!   turn. The main thread keeps an incomplete line for each connection, each at most
//!   `--max-line-bytes` + 1 bytes, so the worst case is `--max-connections` ×
//!   `--max-line-bytes` (256 MiB with the defaults, and only if every connection stops in the
//!   middle of a megabyte line).
//! - **Ordering.** The lines of one connection come out in the order they were sent; lines of
//!   different connections interleave only at line boundaries. For that reason an over-long
//!   line is never streamed through to stdout (as stdin does with `--invalid pass`): it
//!   becomes a `too_long` error record carrying its first `--max-line-bytes` bytes.
//! - **Loopback only by default.** A TCP address must resolve to loopback addresses only
//!   (127.0.0.0/8, ::1) unless `--listen-any` is given: vigil has no authentication.
//! - **Unix socket files.** A file at the path is replaced only if it is a socket that no
//!   process listens on (a stale one: connecting is refused); a regular file, a directory, a
//!   symbolic link or a live socket is refused. The file is removed when the run ends, and
//!   only if it is still the one vigil created (same device and inode).
//!
//! # How a run ends
//!
//! End of input is not an ending: a closed connection only ends that connection (its last
//! line, even without a newline, is a line). The run ends on SIGTERM/SIGINT, as for stdin:
//! stop accepting and reading, finish the complete lines already read from every connection,
//! drop the incomplete ones (reported, counted in `discarded_bytes`), flush, remove the
//! socket files; or when stdout is closed (noticed within [`pio::STOP_POLL_MS`] even when no
//! connection sends anything).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use serde_json::json;

use super::Processor;
use super::io::{
    self as pio, CHUNK_BYTES, ConnectionStats, Housekeeping, IoOptions, Message, RunSummary,
    Sources, StopHandle,
};

/// Default of `--max-connections`: far more than a Vector topology needs (one socket sink
/// holds one connection), few enough that the worst-case partial-line memory stays bounded.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Connections accepted from one listener per poll round, so that a burst of connections
/// does not delay reading the open ones.
const ACCEPTS_PER_ROUND: usize = 16;
/// After an accept error such as "too many open files", listeners are left alone this long
/// (the pending connection would otherwise wake poll(2) at once, again and again).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// At most one report of refused connections or accept errors per this interval.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// One `--listen` address, as written on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// `unix:PATH`: a Unix stream socket.
    Unix(PathBuf),
    /// `tcp:HOST:PORT`: HOST is an IP address (IPv6 in brackets) or a name.
    Tcp { host: String, port: u16 },
}

impl ListenAddr {
    /// Parses `unix:PATH` or `tcp:HOST:PORT` (`tcp:[::1]:PORT` for IPv6).
    pub fn parse(text: &str) -> Result<ListenAddr, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("expected unix:PATH with a non-empty path".to_string());
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        let Some(rest) = text.strip_prefix("tcp:") else {
            return Err("expected unix:PATH or tcp:ADDR:PORT".to_string());
        };
        let Some((host, port)) = rest.rsplit_once(':') else {
            return Err("expected tcp:ADDR:PORT".to_string());
        };
        let host = match host.strip_prefix('[') {
            Some(inner) => match inner.strip_suffix(']') {
                Some(inner) => inner,
                None => return Err("unclosed '[' in the address".to_string()),
            },
            None if host.contains(':') => {
                return Err("write an IPv6 address in brackets: tcp:[::1]:PORT".to_string());
            }
            None => host,
        };
        if host.is_empty() {
            return Err("expected tcp:ADDR:PORT with a non-empty address".to_string());
        }
        let port = port
            .parse::<u16>()
            .map_err(|err| format!("bad port '{port}': {err}"))?;
        Ok(ListenAddr::Tcp {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
            ListenAddr::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp:[{host}]:{port}")
            }
            ListenAddr::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
        }
    }
}

/// What `--listen`, `--listen-any` and `--max-connections` ask for.
#[derive(Clone, Debug)]
pub struct ListenConfig {
    pub addrs: Vec<ListenAddr>,
    /// Accept non-loopback TCP addresses (`--listen-any`).
    pub allow_any: bool,
    /// Most connections open at once; more are closed at once and counted.
    pub max_connections: usize,
    /// End the run when stdout is closed even while no connection sends anything (the
    /// binary watches its real stdout; in-process tests write to a buffer and do not).
    pub watch_stdout: bool,
}

/// Why a listener could not be set up. Each message names the address.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "--listen {addr}: {ip} is not a loopback address; vigil has no authentication, so \
         only loopback addresses are accepted unless --listen-any is given"
    )]
    NotLoopback { addr: ListenAddr, ip: IpAddr },
    #[error("--listen {addr}: cannot resolve the address: {source}")]
    Resolve {
        addr: ListenAddr,
        #[source]
        source: io::Error,
    },
    #[error("--listen {addr}: {path} exists and is {kind}, not a socket; refusing to replace it")]
    NotASocket {
        addr: ListenAddr,
        path: String,
        kind: &'static str,
    },
    #[error("--listen {addr}: another process is listening on {path}; refusing to take it over")]
    InUse { addr: ListenAddr, path: String },
    #[error("--listen {addr}: {action}: {source}")]
    Io {
        addr: ListenAddr,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The bound listeners of a run. Dropping it (also after a failed [`Listeners::bind`])
/// removes the socket files it created.
pub struct Listeners {
    listeners: Vec<Listener>,
    socket_files: Vec<SocketFile>,
    max_connections: usize,
    watch_stdout: bool,
}

impl Listeners {
    /// Binds every address, in order; the first failure is returned (and the sockets bound
    /// before it are closed and their files removed).
    pub fn bind(config: &ListenConfig) -> Result<Listeners, BindError> {
        let mut listeners = Listeners {
            listeners: Vec::new(),
            socket_files: Vec::new(),
            max_connections: config.max_connections.max(1),
            watch_stdout: config.watch_stdout,
        };
        for addr in &config.addrs {
            match addr {
                ListenAddr::Unix(path) => {
                    let (listener, file) = bind_unix(addr, path)?;
                    listeners.listeners.push(Listener::Unix(listener));
                    listeners.socket_files.push(file);
                }
                ListenAddr::Tcp { host, port } => {
                    let listener = bind_tcp(addr, host, *port, config.allow_any)?;
                    listeners.listeners.push(Listener::Tcp(listener));
                }
            }
        }
        Ok(listeners)
    }

    /// The bound addresses, in the `--listen` syntax; a TCP port 0 shows the port chosen.
    pub fn addresses(&self) -> Vec<String> {
        self.listeners.iter().map(Listener::address).collect()
    }
}

/// Runs the loop of [`pio::run`] over the connections of `listeners` until a stop request or
/// a closed `output` (end of input is not an ending here). Reports `{"msg": "listening"}`
/// for each address first. The socket files are removed before it returns.
pub fn run<W, E>(
    processor: &mut Processor,
    listeners: Listeners,
    output: W,
    diagnostics: E,
    options: IoOptions,
    install_stop: impl FnOnce(StopHandle) -> io::Result<()>,
    housekeeping: &mut dyn Housekeeping,
) -> io::Result<RunSummary>
where
    W: Write,
    E: Write,
{
    let Listeners {
        listeners,
        socket_files,
        max_connections,
        watch_stdout,
    } = listeners;
    // Set when the loop has returned, so that the poll thread ends even if it was never asked
    // to stop (the loop ended on a closed stdout).
    let done = Arc::new(AtomicBool::new(false));
    let mut poll_thread = None;
    let start_reader =
        |sender: SyncSender<Message>, recycled: Receiver<Vec<u8>>, requested: Arc<AtomicBool>| {
            let done = Arc::clone(&done);
            let handle = std::thread::Builder::new()
                .name("vigil-listen".to_string())
                .spawn(move || {
                    let mut poller = Poller {
                        listeners,
                        connections: Vec::new(),
                        next_id: 1,
                        max_connections,
                        watch_stdout,
                        stats: ConnectionStats::default(),
                        accept_paused_until: None,
                        refused_reports: Limiter::default(),
                        error_reports: Limiter::default(),
                        sender,
                        recycled,
                    };
                    poller.run(&requested, &done);
                    poller.stats.open = poller.connections.len() as u64;
                    poller.stats
                })?;
            poll_thread = Some(handle);
            Ok(())
        };
    let result = pio::run_sources(
        processor,
        start_reader,
        output,
        diagnostics,
        options,
        Sources::Connections,
        install_stop,
        housekeeping,
    );
    done.store(true, Ordering::SeqCst);
    let stats = poll_thread
        .and_then(|handle| handle.join().ok())
        .unwrap_or_default();
    drop(socket_files);
    let mut summary = result?;
    summary.connections = Some(stats);
    Ok(summary)
}

/// A Unix socket file vigil created; removed on drop if it is still the same file.
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        // Another vigil may have replaced a file it took for stale: leave that one alone.
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && meta.dev() == self.dev
            && meta.ino() == self.ino
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn bind_unix(addr: &ListenAddr, path: &Path) -> Result<(UnixListener, SocketFile), BindError> {
    let io_error = |action: &'static str| {
        let addr = addr.clone();
        move |source: io::Error| BindError::Io {
            addr,
            action,
            source,
        }
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            let file_type = meta.file_type();
            if !file_type.is_socket() {
                let kind = if file_type.is_dir() {
                    "a directory"
                } else if file_type.is_symlink() {
                    "a symbolic link"
                } else if file_type.is_file() {
                    "a regular file"
                } else {
                    "a special file"
                };
                return Err(BindError::NotASocket {
                    addr: addr.clone(),
                    path: path.display().to_string(),
                    kind,
                });
            }
            match UnixStream::connect(path) {
                Ok(_) => {
                    return Err(BindError::InUse {
                        addr: addr.clone(),
                        path: path.display().to_string(),
                    });
                }
                // Nobody listens: a stale socket left by a process that died.
                Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path)
                        .map_err(io_error("cannot remove the stale socket"))?;
                }
                // A full backlog (EAGAIN) means someone listens; anything else (no
                // permission) means we cannot tell: refuse rather than delete.
                Err(err) => {
                    return Err(io_error("cannot tell whether the socket is in use")(err));
                }
            }
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_error("cannot inspect the path")(err)),
    }
    let listener = UnixListener::bind(path).map_err(io_error("cannot bind"))?;
    let meta = std::fs::symlink_metadata(path).map_err(io_error("cannot inspect the socket"))?;
    let file = SocketFile {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    listener
        .set_nonblocking(true)
        .map_err(io_error("cannot set non-blocking mode"))?;
    Ok((listener, file))
}

fn bind_tcp(
    addr: &ListenAddr,
    host: &str,
    port: u16,
    allow_any: bool,
) -> Result<TcpListener, BindError> {
    let resolved: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| BindError::Resolve {
            addr: addr.clone(),
            source,
        })?
        .collect();
    if resolved.is_empty() {
        return Err(BindError::Resolve {
            addr: addr.clone(),
            source: io::Error::new(io::ErrorKind::NotFound, "no address found"),
        });
    }
    if !allow_any && let Some(bad) = resolved.iter().find(|a| !is_loopback(a.ip())) {
        return Err(BindError::NotLoopback {
            addr: addr.clone(),
            ip: bad.ip(),
        });
    }
    // The first address that binds (for `localhost`, usually 127.0.0.1 or ::1).
    let listener = TcpListener::bind(&resolved[..]).map_err(|source| BindError::Io {
        addr: addr.clone(),
        action: "cannot bind",
        source,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| BindError::Io {
            addr: addr.clone(),
            action: "cannot set non-blocking mode",
            source,
        })?;
    Ok(listener)
}

/// 127.0.0.0/8, ::1, and 127.0.0.0/8 written as IPv4-mapped IPv6 (`::ffff:127.0.0.1`).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    fn fd(&self) -> RawFd {
        match self {
            Listener::Unix(listener) => listener.as_raw_fd(),
            Listener::Tcp(listener) => listener.as_raw_fd(),
        }
    }

    fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Unix(listener) => listener.accept().map(|(stream, _)| Stream::Unix(stream)),
            Listener::Tcp(listener) => listener.accept().map(|(stream, _)| Stream::Tcp(stream)),
        }
    }

    fn address(&self) -> String {
        match self {
            Listener::Unix(listener) => match listener.local_addr() {
                Ok(local) => match local.as_pathname() {
                    Some(path) => format!("unix:{}", path.display()),
                    None => "unix:(unnamed)".to_string(),
                },
                Err(_) => "unix:(unknown)".to_string(),
            },
            Listener::Tcp(listener) => match listener.local_addr() {
                Ok(local) => format!("tcp:{local}"),
                Err(_) => "tcp:(unknown)".to_string(),
            },
        }
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn fd(&self) -> RawFd {
        match self {
            Stream::Unix(stream) => stream.as_raw_fd(),
            Stream::Tcp(stream) => stream.as_raw_fd(),
        }
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Stream::Unix(stream) => stream.set_nonblocking(true),
            Stream::Tcp(stream) => stream.set_nonblocking(true),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(stream) => stream.read(buf),
            Stream::Tcp(stream) => stream.read(buf),
        }
    }
}

struct Connection {
    id: u64,
    stream: Stream,
}

/// Rate limit of one kind of report: at most one per [`REPORT_INTERVAL`], the next one
/// carrying how many were suppressed.
#[derive(Default)]
struct Limiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl Limiter {
    /// `Some(suppressed)` when a report is due now.
    fn due(&mut self, now: Instant) -> Option<u64> {
        if let Some(last) = self.last
            && now.saturating_duration_since(last) < REPORT_INTERVAL
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// The poll thread's state.
struct Poller {
    listeners: Vec<Listener>,
    connections: Vec<Connection>,
    next_id: u64,
    max_connections: usize,
    watch_stdout: bool,
    stats: ConnectionStats,
    accept_paused_until: Option<Instant>,
    refused_reports: Limiter,
    error_reports: Limiter,
    sender: SyncSender<Message>,
    recycled: Receiver<Vec<u8>>,
}

/// What to poll for, in the order of the `pollfd` array.
#[derive(Clone, Copy)]
enum Slot {
    Stdout,
    Listener(usize),
    Connection(usize),
}

impl Poller {
    fn run(&mut self, requested: &AtomicBool, done: &AtomicBool) {
        for address in self
            .listeners
            .iter()
            .map(Listener::address)
            .collect::<Vec<_>>()
        {
            if !self.send(Message::Report {
                level: "info",
                msg: "listening",
                fields: json!({"address": address}),
            }) {
                return;
            }
        }
        let mut poll_fds: Vec<libc::pollfd> = Vec::new();
        let mut slots: Vec<Slot> = Vec::new();
        let mut spare: Option<Vec<u8>> = None;
        loop {
            if done.load(Ordering::SeqCst) {
                return;
            }
            if requested.load(Ordering::SeqCst) {
                // Stop accepting and reading; what was read is on its way to the main thread.
                let _ = self.sender.send(Message::ReaderStopped);
                return;
            }
            poll_fds.clear();
            slots.clear();
            let pollfd = |fd: RawFd, events: libc::c_short| libc::pollfd {
                fd,
                events,
                revents: 0,
            };
            if self.watch_stdout {
                poll_fds.push(pollfd(libc::STDOUT_FILENO, 0));
                slots.push(Slot::Stdout);
            }
            let now = Instant::now();
            if self.accept_paused_until.is_none_or(|until| now >= until) {
                self.accept_paused_until = None;
                for (idx, listener) in self.listeners.iter().enumerate() {
                    poll_fds.push(pollfd(listener.fd(), libc::POLLIN));
                    slots.push(Slot::Listener(idx));
                }
            }
            for (idx, connection) in self.connections.iter().enumerate() {
                poll_fds.push(pollfd(connection.stream.fd(), libc::POLLIN));
                slots.push(Slot::Connection(idx));
            }
            // SAFETY: `poll_fds` is a vector of valid, initialised `pollfd`s that outlives the
            // call, and the count passed is its length.
            let ready = unsafe {
                libc::poll(
                    poll_fds.as_mut_ptr(),
                    poll_fds.len() as libc::nfds_t,
                    pio::STOP_POLL_MS,
                )
            };
            if ready <= 0 {
                // Nothing ready, or a signal arrived: check for a stop and poll again.
                continue;
            }
            let mut closed: Vec<usize> = Vec::new();
            for (poll_fd, &slot) in poll_fds.iter().zip(&slots) {
                if poll_fd.revents == 0 {
                    continue;
                }
                let keep_going = match slot {
                    Slot::Stdout => {
                        if poll_fd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                            let _ = self
                                .sender
                                .send(Message::ReadError(io::ErrorKind::BrokenPipe.into()));
                            return;
                        }
                        true
                    }
                    Slot::Listener(idx) => self.accept(idx),
                    Slot::Connection(idx) => match self.read(idx, &mut spare) {
                        Some(open) => {
                            if !open {
                                closed.push(idx);
                            }
                            true
                        }
                        None => false,
                    },
                };
                if !keep_going {
                    // The main thread is gone.
                    return;
                }
            }
            // Highest index first, so the lower ones stay valid.
            for idx in closed.into_iter().rev() {
                self.connections.remove(idx);
            }
        }
    }

    /// Sends to the main thread; `false` when it has gone.
    fn send(&self, message: Message) -> bool {
        self.sender.send(message).is_ok()
    }

    /// Accepts pending connections of one listener; `false` when the main thread has gone.
    fn accept(&mut self, idx: usize) -> bool {
        for _ in 0..ACCEPTS_PER_ROUND {
            let Some(listener) = self.listeners.get(idx) else {
                return true;
            };
            let stream = match listener.accept() {
                Ok(stream) => stream,
                Err(err) => {
                    return match err.kind() {
                        io::ErrorKind::WouldBlock
                        | io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionAborted => true,
                        // Out of descriptors or memory: the connection stays in the backlog,
                        // so wait a little before trying again.
                        _ => {
                            self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                            match self.error_reports.due(Instant::now()) {
                                Some(suppressed) => self.send(Message::Report {
                                    level: "error",
                                    msg: "cannot accept a connection",
                                    fields: json!({
                                        "detail": err.to_string(),
                                        "suppressed": suppressed,
                                    }),
                                }),
                                None => true,
                            }
                        }
                    };
                }
            };
            if self.connections.len() >= self.max_connections {
                // Closed at once (dropped), before reading anything from it.
                drop(stream);
                self.stats.refused += 1;
                if let Some(suppressed) = self.refused_reports.due(Instant::now())
                    && !self.send(Message::Report {
                        level: "warn",
                        msg: "connection refused: --max-connections are open",
                        fields: json!({
                            "max_connections": self.max_connections,
                            "suppressed": suppressed,
                        }),
                    })
                {
                    return false;
                }
                continue;
            }
            if let Err(err) = stream.set_nonblocking() {
                // A blocking connection would stall every other one: refuse it.
                self.stats.refused += 1;
                if !self.send(Message::Report {
                    level: "error",
                    msg: "cannot set up a connection",
                    fields: json!({"detail": err.to_string()}),
                }) {
                    return false;
                }
                continue;
            }
            self.stats.accepted += 1;
            self.connections.push(Connection {
                id: self.next_id,
                stream,
            });
            self.next_id += 1;
        }
        true
    }

    /// One read from a ready connection. `Some(open)` says whether the connection stays
    /// open; `None` when the main thread has gone.
    fn read(&mut self, idx: usize, spare: &mut Option<Vec<u8>>) -> Option<bool> {
        let Some(connection) = self.connections.get_mut(idx) else {
            return Some(true);
        };
        let mut buf = spare
            .take()
            .or_else(|| self.recycled.try_recv().ok())
            .unwrap_or_else(|| vec![0; CHUNK_BYTES]);
        let source = connection.id;
        let (message, open) = match connection.stream.read(&mut buf) {
            Ok(len) if len > 0 => {
                let message = Message::Data {
                    source,
                    buf,
                    len,
                    arrival_ms: pio::now_ms(),
                };
                (message, true)
            }
            Ok(_) => {
                *spare = Some(buf);
                let message = Message::Closed {
                    source,
                    error: None,
                };
                (message, false)
            }
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                *spare = Some(buf);
                return Some(true);
            }
            Err(err) => {
                *spare = Some(buf);
                let message = Message::Closed {
                    source,
                    error: Some(err),
                };
                (message, false)
            }
        };
        self.send(message).then_some(open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::Limits;
    use crate::eval::{Engine, EngineConfig};
    use crate::ir::RuleSet;
    use crate::protocol::ProtocolConfig;
    use std::sync::mpsc;

    #[test]
    fn parses_listen_addresses() {
        assert_eq!(
            ListenAddr::parse("unix:/run/vigil.sock"),
            Ok(ListenAddr::Unix(PathBuf::from("/run/vigil.sock")))
        );
        assert_eq!(
            ListenAddr::parse("tcp:127.0.0.1:5170"),
            Ok(ListenAddr::Tcp {
                host: "127.0.0.1".to_string(),
                port: 5170
            })
        );
        assert_eq!(
            ListenAddr::parse("tcp:[::1]:0"),
            Ok(ListenAddr::Tcp {
                host: "::1".to_string(),
                port: 0
            })
        );
        assert_eq!(
            ListenAddr::parse("tcp:[::1]:9").map(|a| a.to_string()),
            Ok("tcp:[::1]:9".to_string())
        );
        for bad in [
            "unix:",
            "/run/vigil.sock",
            "tcp:5170",
            "tcp::5170",
            "tcp:::1:5170",
            "tcp:[::1:5170",
            "tcp:localhost:http",
            "tcp:localhost:70000",
            "udp:127.0.0.1:1",
        ] {
            assert!(ListenAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_addresses() {
        for ok in ["127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ok.parse().unwrap()), "{ok}");
        }
        for bad in ["0.0.0.0", "10.0.0.1", "::", "::ffff:10.0.0.1", "128.0.0.1"] {
            assert!(!is_loopback(bad.parse().unwrap()), "{bad}");
        }
    }

    fn config(addrs: Vec<ListenAddr>) -> ListenConfig {
        ListenConfig {
            addrs,
            allow_any: false,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            watch_stdout: false,
        }
    }

    /// A fresh directory for socket files (paths must stay short: 108 bytes at most).
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vl-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn non_loopback_tcp_is_refused_without_listen_any() {
        let addr = ListenAddr::parse("tcp:0.0.0.0:0").unwrap();
        let err = Listeners::bind(&config(vec![addr.clone()])).err().unwrap();
        assert!(matches!(err, BindError::NotLoopback { .. }), "{err}");
        assert!(err.to_string().contains("--listen-any"), "{err}");
        let mut any = config(vec![addr]);
        any.allow_any = true;
        let listeners = Listeners::bind(&any).unwrap();
        assert!(listeners.addresses()[0].starts_with("tcp:0.0.0.0:"));
    }

    #[test]
    fn unix_socket_files_are_replaced_only_when_stale() {
        let dir = temp_dir("files");
        let path = dir.join("s.sock");
        let addr = ListenAddr::Unix(path.clone());

        std::fs::write(&path, "data").unwrap();
        let err = Listeners::bind(&config(vec![addr.clone()])).err().unwrap();
        assert!(err.to_string().contains("a regular file"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
        std::fs::remove_file(&path).unwrap();

        std::fs::create_dir(&path).unwrap();
        let err = Listeners::bind(&config(vec![addr.clone()])).err().unwrap();
        assert!(err.to_string().contains("a directory"), "{err}");
        std::fs::remove_dir(&path).unwrap();

        // A live socket (this listener) is not taken over.
        let live = UnixListener::bind(&path).unwrap();
        let err = Listeners::bind(&config(vec![addr.clone()])).err().unwrap();
        assert!(matches!(err, BindError::InUse { .. }), "{err}");
        // Once its owner is gone the file is stale and replaced.
        drop(live);
        assert!(path.exists());
        let listeners = Listeners::bind(&config(vec![addr.clone()])).unwrap();
        assert!(UnixStream::connect(&path).is_ok());
        drop(listeners);
        assert!(!path.exists(), "the socket file is removed on drop");

        // A failed bind of a later address removes the socket files bound before it.
        let bad = dir.join("not-a-socket");
        std::fs::write(&bad, "").unwrap();
        let err = Listeners::bind(&config(vec![addr, ListenAddr::Unix(bad)]));
        assert!(err.is_err());
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn processor() -> Processor {
        let (engine, _) = Engine::new(RuleSet::default(), EngineConfig::new(Limits::default()));
        Processor::new(engine, ProtocolConfig::default())
    }

    /// Records (lines_in, lines_out) at each tick, and whether `finish` came.
    #[derive(Default)]
    struct Recorder {
        ticks: Vec<(u64, u64)>,
        finished: bool,
    }

    impl Housekeeping for Recorder {
        fn period(&self) -> Option<Duration> {
            Some(Duration::from_millis(10))
        }
        fn tick(&mut self, processor: &mut Processor) {
            let counters = processor.counters();
            self.ticks.push((counters.lines_in, counters.lines_out));
        }
        fn finish(&mut self, _processor: &mut Processor) {
            self.finished = true;
        }
    }

    #[test]
    fn housekeeping_ticks_with_connections_and_while_idle() {
        let dir = temp_dir("housekeeping");
        let path = dir.join("s.sock");
        let listeners = Listeners::bind(&config(vec![ListenAddr::Unix(path.clone())])).unwrap();
        let (handle_tx, handle_rx) = mpsc::channel();
        let client = std::thread::spawn(move || {
            let stop: StopHandle = handle_rx.recv().unwrap();
            let mut conn = UnixStream::connect(&path).unwrap();
            conn.write_all(b"{\"a\":1}\n{\"a\":2}\n").unwrap();
            drop(conn);
            // Idle: no connection sends anything.
            std::thread::sleep(Duration::from_millis(200));
            stop.stop();
        });
        let mut processor = processor();
        let mut recorder = Recorder::default();
        run(
            &mut processor,
            listeners,
            io::sink(),
            io::sink(),
            IoOptions::default(),
            |handle| {
                handle_tx.send(handle).unwrap();
                Ok(())
            },
            &mut recorder,
        )
        .unwrap();
        client.join().unwrap();
        assert!(recorder.ticks.iter().all(|(lines_in, out)| lines_in == out));
        let idle = recorder.ticks.iter().filter(|t| **t == (2, 2)).count();
        assert!(idle >= 3, "ticks: {:?}", recorder.ticks);
        assert!(recorder.finished);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn interleaved_connections_keep_their_lines_whole() {
        let dir = temp_dir("run");
        let path = dir.join("s.sock");
        let listeners = Listeners::bind(&config(vec![ListenAddr::Unix(path.clone())])).unwrap();
        let (handle_tx, handle_rx) = mpsc::channel();
        let client_path = path.clone();
        let client = std::thread::spawn(move || {
            let stop: StopHandle = handle_rx.recv().unwrap();
            let mut a = UnixStream::connect(&client_path).unwrap();
            let mut b = UnixStream::connect(&client_path).unwrap();
            // Each line is split across writes, with the other connection writing between.
            a.write_all(b"{\"a\":").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            b.write_all(b"{\"b\":1}\n{\"b\"").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            a.write_all(b"1}\n{\"a\":2}").unwrap();
            drop(a);
            std::thread::sleep(Duration::from_millis(50));
            b.write_all(b":2}\n{\"b\":3").unwrap();
            std::thread::sleep(Duration::from_millis(200));
            stop.stop();
            b
        });
        let mut processor = processor();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let summary = run(
            &mut processor,
            listeners,
            &mut out,
            &mut err,
            IoOptions::default(),
            |handle| {
                handle_tx.send(handle).unwrap();
                Ok(())
            },
            &mut (),
        )
        .unwrap();
        drop(client.join().unwrap());
        let out = String::from_utf8(out).unwrap();
        // Whole lines, each connection's in its order (the order across connections depends
        // on when the poll thread got to them).
        let (a, b): (Vec<&str>, Vec<&str>) = out.lines().partition(|line| line.contains('a'));
        assert_eq!(a, [r#"{"a":1}"#, r#"{"a":2}"#], "{out}");
        assert_eq!(b, [r#"{"b":1}"#, r#"{"b":2}"#], "{out}");
        assert_eq!(summary.ending, pio::Ending::Stopped);
        // `{"b":3` was incomplete at the stop.
        assert_eq!(summary.discarded_bytes, 6);
        assert_eq!(
            summary.connections,
            Some(ConnectionStats {
                accepted: 2,
                refused: 0,
                open: 1
            })
        );
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains(r#""msg":"listening""#), "{err}");
        assert!(err.contains("incomplete line dropped at shutdown"), "{err}");
        assert!(!path.exists(), "the socket file is removed at the end");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
