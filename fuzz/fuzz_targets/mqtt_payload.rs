//! Any payload from an MQTT source through the gateway's JSON mapping: samples or a
//! "malformed" reason, never a panic.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::mqtt_payload(data));
