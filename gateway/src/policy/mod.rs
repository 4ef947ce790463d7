//! The policy engine (work in progress).
