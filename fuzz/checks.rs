//! The checks of every fuzz target, shared with the regression test in the normal suite
//! (gateway/tests/fuzz_regressions.rs), so a kept input is checked exactly as it was fuzzed.
//! Each function must not panic for any input.

#![allow(dead_code)]

use std::sync::OnceLock;

use firebreak_firmware::modbus::{FrameTiming, LinkCounters, Registers, RtuServer};
use firebreak_gateway::acquire::mqtt::map_payload;
use firebreak_gateway::config::{DEFAULT_MAX_PAYLOAD, MqttSignal, SiteConfig};
use firebreak_gateway::keys::SigningKey;
use firebreak_gateway::policy::Rules;
use firebreak_gateway::subscribe::{Verdict, Verifier};
use firebreak_protocols::message::{decode as decode_msg, encode_vec};
use firebreak_protocols::profile::RegisterDescriptor;
use firebreak_protocols::rtu::{Exception, decode_request, decode_response};
use firebreak_protocols::{
    BUILTIN_PROFILES, ByteOrder, DataType, DeviceId, GatewayStatus, KeyId, PlanOptions, RawData,
    Signal, Table, Telemetry, Trigger, WordOrder, decode, decode_samples, plan_reads,
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
    if let Ok(mapped) = map_payload(&device, signals(), data, DEFAULT_MAX_PAYLOAD, 0) {
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

/// Registers of a small node: 16 inputs, 4 holdings of which only 0 is writable.
struct Small {
    holding: [u16; 4],
}

impl Registers for Small {
    fn read_input(&mut self, start: u16, out: &mut [u16]) -> Result<(), Exception> {
        let end = usize::from(start) + out.len();
        if end > 16 {
            return Err(Exception::IllegalDataAddress);
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = start.wrapping_add(i as u16);
        }
        Ok(())
    }
    fn read_holding(&mut self, start: u16, out: &mut [u16]) -> Result<(), Exception> {
        let s = usize::from(start);
        let src = self
            .holding
            .get(s..s + out.len())
            .ok_or(Exception::IllegalDataAddress)?;
        out.copy_from_slice(src);
        Ok(())
    }
    fn write_holding(&mut self, address: u16, value: u16) -> Result<(), Exception> {
        match address {
            0 => {
                self.holding[0] = value;
                Ok(())
            }
            _ => Err(Exception::IllegalDataAddress),
        }
    }
    fn link_counters(&mut self, _counters: LinkCounters) {}
}

/// Any bytes on the node's RS-485 line, with any silences between them: the sensor node's
/// RTU server answers or stays silent, never panics, and every answer is a valid frame.
/// Each input byte pair is (silence in 100 µs steps, byte).
pub fn rtu_frame(data: &[u8]) {
    let _ = decode_request(data);
    let _ = decode_response(data);
    let mut server = RtuServer::new(1, FrameTiming::for_baud(19_200));
    let mut regs = Small { holding: [0; 4] };
    let mut now = 0u64;
    let check = |answer: Option<&[u8]>| {
        if let Some(a) = answer {
            let (unit, _) = decode_response(a).expect("the server's answers are valid frames");
            assert_eq!(unit, 1);
        }
    };
    for pair in data.chunks(2) {
        now += u64::from(pair[0]) * 100;
        if let Some(&b) = pair.get(1) {
            let answer = server.receive(now, b, &mut regs).map(<[u8]>::to_vec);
            check(answer.as_deref());
        }
    }
    now += 10_000;
    let answer = server.poll(now, &mut regs).map(<[u8]>::to_vec);
    check(answer.as_deref());
}

/// The key the `trigger_verify` target trusts (a fixed seed, so seeds can be signed).
pub fn signing_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_seed(KeyId::new("k1").expect("valid id"), &[7; 32]))
}

/// Any payload on a trigger topic through the subscriber's `Verifier`: accepted only when
/// signed by the trusted key, never a panic; what is accepted re-verifies as a duplicate.
pub fn trigger_verify(data: &[u8]) {
    let mut v = Verifier::new(vec![signing_key().public()]);
    let now = 1_700_000_000_000;
    if let Verdict::Accepted(_) = v.check(data, now) {
        assert!(matches!(v.check(data, now), Verdict::Duplicate { .. }));
    }
}
