//! The output schema: the only module that decides what vigil writes.
