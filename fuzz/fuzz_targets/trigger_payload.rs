//! Any bytes on a trigger, status or telemetry topic: decoded or refused, never a panic; what
//! decodes re-encodes to something that decodes to the same message.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::trigger_payload(data));
