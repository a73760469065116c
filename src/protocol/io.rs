//! The stdin/stdout loop (being written).
