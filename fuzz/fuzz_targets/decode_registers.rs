//! Any register contents through every built-in profile's read plan, and through a
//! descriptor built from the input: a sample or a decode error, never a panic.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::decode_registers(data));
