//! Pipelined matching (`--threads` > 1, plain path): complete lines are copied into small
//! jobs that the matching threads decode and match, while the caller's thread finishes older
//! lines in input order (the stateful half: script confirmation, correlation, enrichment,
//! output). Chunk boundaries are not barriers: the matching threads work on the next lines
//! while the older ones are observed and written.
//!
//! Invariants:
//! - lines come out exactly in the order they were queued, each once;
//! - a job is taken once, by a matching thread or, when its lines are needed next and no
//!   matching thread has started it, by the caller's thread (which then matches too rather
//!   than wait);
//! - the lines in flight are bounded (`MAX_JOBS` jobs, `MAX_IN_FLIGHT_BYTES` bytes), and
//!   their storage is reused, so the steady state allocates nothing per line;
//! - a line is matched with the engine generation current when it was queued; a line whose
//!   generation is stale when it is finished (a reload came in between) is processed again
//!   whole by the new engine.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::eval::script::{PreConfirmer, PreVerdict};
use crate::eval::{MatchScratch, Matcher};
use crate::event::{Event, EventBuffers};

/// Lines per job. Measured on 2 cores (200,000 generated 1.2 KB CloudTrail lines, best of 3,
/// `--threads 2`): with the 57 SigmaHQ CloudTrail rules, jobs of 8 lines took 0.50 s, 16
/// 0.38-0.49 s, 32 0.38-0.42 s, 64 0.46 s; with every CloudTrail rule (50,000 lines) 16, 32
/// and 64 lines were even (1.13-1.15 s); 4 or 8 jobs in flight made no difference.
pub(super) const JOB_LINES: usize = 32;

/// A job is also closed when its lines reach this many bytes, so that few long lines make
/// a job of the same cost as many short ones.
const JOB_BYTES: usize = 48 * 1024;

/// Jobs in flight at most; queuing one more first finishes the oldest.
const MAX_JOBS: usize = 4;

/// Bytes of queued lines in flight at most (lines may be up to `--max-line-bytes` long).
const MAX_IN_FLIGHT_BYTES: usize = 4 * 1024 * 1024;

/// A reused line buffer larger than this is given back to the allocator rather than kept.
const KEEP_LINE_CAPACITY: usize = 64 * 1024;

thread_local! {
    /// Matching scratch of a matching thread, reused from job to job (it adapts to any
    /// matcher, see `MatchScratch`).
    static WORKER_SCRATCH: std::cell::RefCell<MatchScratch> =
        std::cell::RefCell::new(MatchScratch::default());
}

/// Reusable storage of one queued line.
#[derive(Default)]
pub(super) struct LineStore {
    raw: Vec<u8>,
    buffers: EventBuffers,
    matches: Vec<usize>,
    verdicts: Vec<PreVerdict>,
}

/// A line waiting for a matching thread.
struct Queued {
    store: LineStore,
    arrival_ms: i64,
    tag: u64,
    /// False for a line that must be processed whole (the first line of the input).
    eligible: bool,
}

/// What a matching thread made of a line.
pub(super) enum Outcome {
    /// Decoded (the `\r` before the `\n`, if any, removed: `cr`) and matched, with the
    /// scripts of the matches run ahead where they could be (`Engine::pre_confirmer`).
    Matched {
        event: Event<'static>,
        matches: Vec<usize>,
        verdicts: Vec<PreVerdict>,
        cr: bool,
    },
    /// To be processed whole: not UTF-8, not a JSON object, too long, or the first line.
    Raw(LineStore),
}

/// A line ready to be finished, in order, by [`super::Processor::finish_ready`].
pub struct ReadyLine {
    pub(super) outcome: Outcome,
    pub(super) arrival_ms: i64,
    pub(super) generation: u64,
    /// The caller's tag given to `queue_line` (the source of the line).
    pub tag: u64,
}

enum JobState {
    Pending(Vec<Queued>),
    Running,
    Done(Vec<ReadyLine>),
    /// The matching thread panicked.
    Failed,
}

struct Job {
    state: Mutex<JobState>,
    done: Condvar,
    /// The engine generation and matcher current when the job was queued.
    ctx: MatchContext,
    bytes: usize,
}

impl Job {
    fn lock(&self) -> MutexGuard<'_, JobState> {
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The job's lines, when nobody has taken them yet.
    fn take(&self) -> Option<Vec<Queued>> {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, JobState::Running) {
            JobState::Pending(lines) => Some(lines),
            other => {
                *state = other;
                None
            }
        }
    }

    fn complete(&self, result: JobState) {
        *self.lock() = result;
        self.done.notify_all();
    }
}

/// What to match queued lines with.
#[derive(Clone)]
pub(super) struct MatchContext {
    pub matcher: Arc<Matcher>,
    pub confirmer: Option<PreConfirmer>,
    pub generation: u64,
    pub max_line_bytes: usize,
}

/// The lines in flight and the storage to reuse.
#[derive(Default)]
pub(super) struct Pipeline {
    jobs: VecDeque<Arc<Job>>,
    filling: Vec<Queued>,
    filling_bytes: usize,
    in_flight_bytes: usize,
    spare: Vec<LineStore>,
    /// Matching scratch of the caller's thread when it matches a job itself.
    scratch: MatchScratch,
}

impl Pipeline {
    /// Whether any line is queued and not finished.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.filling.is_empty()
    }

    /// Copies `line` into the queue. Returns whether a job should be sent off now.
    pub fn push(&mut self, line: &[u8], arrival_ms: i64, tag: u64, eligible: bool) -> bool {
        let mut store = self.spare.pop().unwrap_or_default();
        store.raw.clear();
        store.raw.extend_from_slice(line);
        self.filling_bytes += line.len();
        self.in_flight_bytes += line.len();
        self.filling.push(Queued {
            store,
            arrival_ms,
            tag,
            eligible,
        });
        self.filling.len() >= JOB_LINES || self.filling_bytes >= JOB_BYTES
    }

    /// Sends the lines gathered so far to the matching threads as one job.
    pub fn submit(&mut self, pool: &rayon::ThreadPool, ctx: &MatchContext) {
        if self.filling.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut self.filling);
        let job = Arc::new(Job {
            state: Mutex::new(JobState::Pending(lines)),
            done: Condvar::new(),
            ctx: ctx.clone(),
            bytes: std::mem::take(&mut self.filling_bytes),
        });
        self.jobs.push_back(Arc::clone(&job));
        pool.spawn(move || {
            let Some(lines) = job.take() else {
                return;
            };
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                WORKER_SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
                    Ok(mut scratch) => prepare(lines, &job.ctx, &mut scratch),
                    Err(_) => prepare(lines, &job.ctx, &mut MatchScratch::default()),
                })
            }));
            job.complete(match result {
                Ok(ready) => JobState::Done(ready),
                Err(_) => JobState::Failed,
            });
        });
    }

    /// Whether the bound on work in flight is exceeded (finish the oldest job first).
    pub fn is_full(&self) -> bool {
        self.jobs.len() > MAX_JOBS || self.in_flight_bytes > MAX_IN_FLIGHT_BYTES
    }

    /// The lines of the oldest job, in order: matched here when no matching thread has
    /// started them. While a matching thread works on it, this thread matches a younger job
    /// nobody has started rather than wait. `None` when no job is in flight.
    ///
    /// # Panics
    /// When the matching thread that took the job panicked (its lines are lost, and losing
    /// lines silently is not an option).
    pub fn take_oldest(&mut self) -> Option<Vec<ReadyLine>> {
        let job = self.jobs.pop_front()?;
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(job.bytes);
        loop {
            if let Some(lines) = job.take() {
                // With the job's own engine, as a matching thread would have (a reload since
                // then makes its lines stale, see the module doc).
                return Some(prepare(lines, &job.ctx, &mut self.scratch));
            }
            {
                let mut state = job.lock();
                match std::mem::replace(&mut *state, JobState::Running) {
                    JobState::Done(ready) => return Some(ready),
                    JobState::Failed => panic!("a matching thread stopped without its lines"),
                    other => *state = other,
                }
            }
            // Running elsewhere: help with a younger job, or wait when none is left.
            let younger = self
                .jobs
                .iter()
                .find_map(|other| other.take().map(|lines| (other, lines)));
            match younger {
                Some((other, lines)) => {
                    let ready = prepare(lines, &other.ctx, &mut self.scratch);
                    other.complete(JobState::Done(ready));
                }
                None => {
                    let mut state = job.lock();
                    while matches!(*state, JobState::Running) {
                        state = match job.done.wait(state) {
                            Ok(state) => state,
                            Err(poisoned) => poisoned.into_inner(),
                        };
                    }
                }
            }
        }
    }

    /// The lines not yet sent off, matched here (a drain: nobody would start them sooner).
    pub fn take_filling(&mut self, ctx: &MatchContext) -> Vec<ReadyLine> {
        let lines = std::mem::take(&mut self.filling);
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(self.filling_bytes);
        self.filling_bytes = 0;
        prepare(lines, ctx, &mut self.scratch)
    }

    /// Keeps a finished line's storage for the next one.
    pub fn recycle(&mut self, mut store: LineStore) {
        if store.raw.capacity() > KEEP_LINE_CAPACITY {
            store.raw = Vec::new();
        }
        self.spare.push(store);
    }

    /// The engine changed: scratch sized for the old rules starts over.
    pub fn reset_scratch(&mut self) {
        self.scratch = MatchScratch::default();
    }
}

/// Decodes and matches `lines` (on a matching thread, or the caller's).
fn prepare(lines: Vec<Queued>, ctx: &MatchContext, scratch: &mut MatchScratch) -> Vec<ReadyLine> {
    lines
        .into_iter()
        .map(|queued| {
            let Queued {
                store,
                arrival_ms,
                tag,
                eligible,
            } = queued;
            let outcome = if eligible {
                decode(store, arrival_ms, ctx, scratch)
            } else {
                Outcome::Raw(store)
            };
            ReadyLine {
                outcome,
                arrival_ms,
                generation: ctx.generation,
                tag,
            }
        })
        .collect()
}

fn decode(
    store: LineStore,
    arrival_ms: i64,
    ctx: &MatchContext,
    scratch: &mut MatchScratch,
) -> Outcome {
    let LineStore {
        mut raw,
        mut buffers,
        mut matches,
        mut verdicts,
    } = store;
    let cr = raw.last() == Some(&b'\r');
    if cr {
        raw.pop();
    }
    let give_back = |mut raw: Vec<u8>, buffers, matches, verdicts| {
        if cr {
            raw.push(b'\r');
        }
        Outcome::Raw(LineStore {
            raw,
            buffers,
            matches,
            verdicts,
        })
    };
    if raw.len() > ctx.max_line_bytes {
        return give_back(raw, buffers, matches, verdicts);
    }
    let text = match String::from_utf8(raw) {
        Ok(text) => text,
        Err(err) => return give_back(err.into_bytes(), buffers, matches, verdicts),
    };
    match Event::parse_owned(text, &mut buffers) {
        Ok(event) => {
            ctx.matcher.match_rules(&event, scratch, &mut matches);
            verdicts.clear();
            if let Some(confirmer) = &ctx.confirmer {
                confirmer.run(&event, arrival_ms, &matches, &mut verdicts);
            }
            Outcome::Matched {
                event,
                matches,
                verdicts,
                cr,
            }
        }
        Err(text) => give_back(text.into_bytes(), buffers, matches, verdicts),
    }
}

/// The storage of a finished line, with its text as it came (its `\r` put back) in `raw`.
pub(super) fn into_store(
    event: Event<'static>,
    matches: Vec<usize>,
    mut verdicts: Vec<PreVerdict>,
    cr: bool,
) -> LineStore {
    let mut buffers = EventBuffers::default();
    let mut raw = event
        .into_text(&mut buffers)
        .map(String::into_bytes)
        .unwrap_or_default();
    if cr {
        raw.push(b'\r');
    }
    verdicts.clear();
    LineStore {
        raw,
        buffers,
        matches,
        verdicts,
    }
}

impl LineStore {
    pub(super) fn raw(&self) -> &[u8] {
        &self.raw
    }
}
