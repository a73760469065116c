//! The NDJSON protocol with the host pipeline: framing, bad input, flush policy.
