//! Any text as a site configuration or a rules file: a configuration or an error naming
//! where, never a panic.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::site_config(data));
