//! The checks of every fuzz target, shared with the regression test in the normal suite
//! (gateway/tests/fuzz_regressions.rs), so a kept input is checked exactly as it was fuzzed.
//! Each function must not panic for any input.

#![allow(dead_code)]

use std::sync::OnceLock;

use firebreak_gateway::acquire::mqtt::map_payload;
use firebreak_gateway::config::{MqttSignal, SiteConfig};
use firebreak_gateway::policy::Rules;
use firebreak_protocols::message::{decode as decode_msg, encode_vec};
use firebreak_protocols::profile::RegisterDescriptor;
use firebreak_protocols::{
    BUILTIN_PROFILES, ByteOrder, DataType, DeviceId, GatewayStatus, PlanOptions, RawData, Signal,
    Table, Telemetry, Trigger, WordOrder, decode, decode_samples, plan_reads,
};

/// Any bytes on a trigger, status or telemetry topic: decoded or refused; what decodes
/// re-encodes to something that decodes to the same message.
pub fn trigger_payload(data: &[u8]) {
    if let Ok(t) = decode_msg::<Trigger>(data) {
        let again = encode_vec(&t).expect("a decoded trigger encodes");
        assert_eq!(decode_msg::<Trigger>(&again).expect("re-decodes"), t);
    }
    if let Ok(s) = decode_msg::<GatewayStatus>(data) {
        let again = encode_vec(&s).expect("a decoded status encodes");
        assert_eq!(decode_msg::<GatewayStatus>(&again).expect("re-decodes"), s);
    }
    let _ = decode_msg::<Telemetry>(data);
}

/// Any register contents through every built-in profile's read plan, and through a
/// descriptor built from the input: a sample or a decode error.
pub fn decode_registers(data: &[u8]) {
    let words: Vec<u16> = data
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
        .collect();
    let bits: Vec<bool> = data.iter().map(|b| b & 1 == 1).collect();
    let device = DeviceId::new("fuzz").expect("valid id");
    for p in BUILTIN_PROFILES {
        let Ok(plan) = plan_reads::<32>(p.registers, &PlanOptions::default()) else {
            continue;
        };
        for r in &plan {
            let raw = if r.table.is_bits() {
                RawData::Bits(&bits)
            } else {
                RawData::Words(&words)
            };
            for s in decode_samples(&device, p.registers, r, raw, 0).flatten() {
                assert!(s.value.is_finite() || !s.quality.is_evidence());
            }
        }
    }
    // A descriptor the input chooses: type, orders, scale.
    if data.len() >= 4 {
        let data_type = match data[0] % 7 {
            0 => DataType::U16,
            1 => DataType::I16,
            2 => DataType::U32,
            3 => DataType::I32,
            4 => DataType::F32,
            5 => DataType::Bit(data[1] % 16),
            _ => DataType::Bool,
        };
        let word = if data[1] & 1 == 0 {
            WordOrder::HighFirst
        } else {
            WordOrder::LowFirst
        };
        let byte = if data[1] & 2 == 0 {
            ByteOrder::Big
        } else {
            ByteOrder::Swapped
        };
        let d = RegisterDescriptor::new(Signal::RackTemperature, Table::Holding, 0, data_type)
            .order(word, byte)
            .scaled(
                f64::from(i8::from_le_bytes([data[2]])) / 7.0,
                f64::from(data[3]),
            )
            .valid(-40.0, 150.0)
            .sentinel(0x7FFF);
        if d.validate().is_ok()
            && let Ok(plan) = plan_reads::<4>(std::slice::from_ref(&d), &PlanOptions::default())
        {
            for r in &plan {
                let _ = decode(&d, r, RawData::Words(&words));
            }
        }
    }
}

fn signals() -> &'static Vec<MqttSignal> {
    static SIGNALS: OnceLock<Vec<MqttSignal>> = OnceLock::new();
    SIGNALS.get_or_init(|| {
        let c = SiteConfig::parse(firebreak_gateway::config::EXAMPLE, "example").expect("example");
        let mut all: Vec<MqttSignal> = c.mqtt_sources.into_iter().flat_map(|s| s.signals).collect();
        // Deep and odd pointers too.
        let mut deep = all[0].clone();
        deep.pointer = "/a/0/~1b/~0c".into();
        all.push(deep);
        all
    })
}

/// Any payload from an MQTT source through the gateway's JSON mapping: samples or a reason.
pub fn mqtt_payload(data: &[u8]) {
    let device = DeviceId::new("bms").expect("valid id");
    if let Ok(mapped) = map_payload(&device, signals(), data, 0) {
        for s in &mapped.samples {
            assert!(s.value.is_finite() || !s.quality.is_evidence());
        }
    }
}

/// Any text as a site configuration or a rules file: a configuration or an error that names
/// the file.
pub fn site_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = SiteConfig::parse(text, "fuzz.toml") {
            assert!(e.to_string().starts_with("fuzz.toml"));
        }
        if let Err(e) = Rules::parse(text, "rules.toml") {
            assert!(e.to_string().starts_with("rules.toml"));
        }
    }
}
