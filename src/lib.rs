//! vigil: a streaming detection engine for NDJSON log pipelines.
//!
//! ```text
//! stdin ─▶ protocol (framing, bad-input wrapping)
//!            │ parsed event
//!            ▼
//!          eval::Engine ── routes by log source, evaluates IR rules ──▶ correlate::Correlator
//!            │ Detections                                                 (bounded LRU, event time)
//!            ▼
//!          enrich (the output schema, spliced into the original bytes) ─▶ stdout
//! ```
//!
//! Rules come from `rules` (Sigma today; Panther and Elastic next), which lowers every format
//! into `ir`. Modules in reading order: `ir`, `rules`, `event`, `eval`, `correlate`,
//! `enrich`, `protocol`, `cli`.

pub mod attack;
pub mod catalog;
pub mod cli;
pub mod correlate;
pub mod diag;
pub mod ecs;
pub mod enrich;
pub mod eval;
pub mod event;
pub mod ir;
pub mod panther_rt;
pub mod protocol;
pub mod python;
pub mod rules;
pub mod state;
