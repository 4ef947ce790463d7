//! Keeps `docs/` true to the tables: the register maps, the signal list and the message
//! examples in the documentation are generated here, and these tests fail when the documents
//! drift. `UPDATE_DOCS=1 cargo test -p firebreak-protocols --features serde,std --test docs`
//! rewrites the generated sections.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // test code

use std::fmt::Write;
use std::path::PathBuf;

use firebreak_protocols::builtin::{BUILTIN_PROFILES, sensor_node};
use firebreak_protocols::message::{self, Presence};
use firebreak_protocols::snmp::{OidKind, OidShape};
use firebreak_protocols::snmp_builtin::BUILTIN_OID_PROFILES;
use firebreak_protocols::{
    DataType, DeviceId, GatewayId, GatewayStatus, IncidentId, Level, Quality, Reason,
    RegisterDescriptor, RuleId, Sample, Signal, SiteId, Telemetry, Trigger, ZoneId,
};

fn doc_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name)
}

/// Replaces (with UPDATE_DOCS=1) or checks the text between the markers of `section`.
fn sync_section(file: &str, section: &str, generated: &str) {
    let path = doc_path(file);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let begin = format!("<!-- BEGIN GENERATED {section} -->\n");
    let end = format!("<!-- END GENERATED {section} -->");
    let (Some(b), Some(e)) = (text.find(&begin), text.find(&end)) else {
        panic!("{file}: markers for section {section:?} are missing");
    };
    let current = &text[b + begin.len()..e];
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let updated = format!("{}{generated}{}", &text[..b + begin.len()], &text[e..]);
        std::fs::write(&path, updated).unwrap();
    } else {
        assert_eq!(
            current, generated,
            "docs/{file} section {section} is out of date: run \
             UPDATE_DOCS=1 cargo test -p firebreak-protocols --features serde,std --test docs"
        );
    }
}

/// The JSON blocks of a generated section, in order.
fn json_blocks(file: &str, section: &str) -> Vec<String> {
    let text = std::fs::read_to_string(doc_path(file)).unwrap();
    let begin = format!("<!-- BEGIN GENERATED {section} -->");
    let start = text.find(&begin).unwrap();
    let end = text[start..].find("<!-- END GENERATED").unwrap() + start;
    text[start..end]
        .split("```json\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().to_string())
        .collect()
}

fn type_name(d: &RegisterDescriptor) -> String {
    match d.data_type {
        DataType::Bit(n) => format!("bit {n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn number(x: f64) -> String {
    if x == f32::MAX as f64 || x == f32::MIN as f64 {
        "any".into()
    } else {
        format!("{x}")
    }
}

fn register_maps() -> String {
    let mut out = String::new();
    for p in BUILTIN_PROFILES {
        writeln!(out, "### `{}`\n\n{}.\n", p.name, p.description).unwrap();
        writeln!(
            out,
            "| table | address | type | order | signal | ch | unit | scale | offset | valid | sentinels |"
        )
        .unwrap();
        writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|").unwrap();
        for d in p.registers {
            let order = match d.data_type.width() {
                2 => format!("{:?}/{:?}", d.word_order, d.byte_order),
                _ => "".into(),
            };
            let sentinels: Vec<String> = d
                .sentinels
                .as_slice()
                .iter()
                .map(|s| format!("0x{s:X}"))
                .collect();
            writeln!(
                out,
                "| {} | {} | {} | {} | `{}` | {} | {} | {} | {} | {} .. {} | {} |",
                d.table,
                d.address,
                type_name(d),
                order,
                d.signal,
                d.channel,
                d.signal.unit(),
                d.scale,
                d.offset,
                number(f64::from(d.valid.min)),
                number(f64::from(d.valid.max)),
                sentinels.join(", ")
            )
            .unwrap();
        }
        out.push('\n');
    }
    writeln!(out, "### Sensor node status block and settings\n").unwrap();
    writeln!(
        out,
        "| table | address | name | meaning |\n|---|---|---|---|"
    )
    .unwrap();
    for (table, address, name, meaning) in sensor_node::REGISTERS {
        writeln!(out, "| {table} | {address} | `{name}` | {meaning} |").unwrap();
    }
    out
}

fn oid_profiles() -> String {
    let mut out = String::new();
    for p in BUILTIN_OID_PROFILES {
        writeln!(out, "### `{}`\n\n{}.\n", p.name, p.description).unwrap();
        writeln!(
            out,
            "| OID | shape | type | signal | unit | scale | offset | valid | sentinels |"
        )
        .unwrap();
        writeln!(out, "|---|---|---|---|---|---|---|---|---|").unwrap();
        for d in p.oids {
            let shape = match d.shape {
                OidShape::Scalar { channel } => format!("scalar, ch {channel}"),
                OidShape::Column { first_index } => format!("column, row {first_index} = ch 0"),
            };
            let kind = match d.kind {
                OidKind::Number => "number".to_string(),
                OidKind::Flag => format!(
                    "flag: 1 when {}",
                    d.on.iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            };
            let sentinels: Vec<String> = d.sentinels.iter().map(i64::to_string).collect();
            writeln!(
                out,
                "| `{}` | {} | {} | `{}` | {} | {} | {} | {} .. {} | {} |",
                d.oid,
                shape,
                kind,
                d.signal,
                d.signal.unit(),
                d.scale,
                d.offset,
                number(f64::from(d.valid.min)),
                number(f64::from(d.valid.max)),
                sentinels.join(", ")
            )
            .unwrap();
        }
        out.push('\n');
    }
    out
}

fn signal_table() -> String {
    let mut out = String::from("| signal | unit | kind | meaning |\n|---|---|---|---|\n");
    for s in Signal::ALL {
        writeln!(
            out,
            "| `{}` | `{}` | {:?} | {} |",
            s.name(),
            s.unit(),
            s.kind(),
            s.description()
        )
        .unwrap();
    }
    out
}

fn pretty(json: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(json).unwrap();
    serde_json::to_string_pretty(&v).unwrap()
}

/// The example trigger: the battery-room fire, as the gateway would report it.
fn example_trigger() -> Trigger {
    let gw = GatewayId::new("gw-paris-1a").unwrap();
    let mut t = Trigger::new(
        gw,
        1207,
        IncidentId::new("gw-paris-1a-1665814380000").unwrap(),
        SiteId::new("paris-1").unwrap(),
        Some(ZoneId::new("battery-room-b1").unwrap()),
        Level::Evacuate,
        Level::Prepare,
        1_665_814_752_250,
    )
    .unwrap();
    let node = DeviceId::new("node-b1").unwrap();
    for (rule, signal, channel, value, threshold) in [
        ("rack-temp-rise", Signal::RackTemperature, 3, 4.2, 1.0),
        ("off-gas", Signal::OffGas, 0, 180.0, 50.0),
        ("smoke", Signal::SmokeAlarm, 0, 1.0, 1.0),
    ] {
        t.push_reason(Reason {
            rule: RuleId::new(rule).unwrap(),
            signal: Some(signal),
            device: Some(node.clone()),
            channel,
            value,
            threshold,
        })
        .unwrap();
    }
    t.seconds_to_power_loss = Some(480);
    // The gateway started at 06:13:00Z that morning.
    t.epoch = Some(1_665_814_380);
    t
}

fn example_telemetry() -> Telemetry {
    let device = DeviceId::new("ups-b1").unwrap();
    let mut m = Telemetry::new(
        GatewayId::new("gw-paris-1a").unwrap(),
        SiteId::new("paris-1").unwrap(),
        Some(ZoneId::new("battery-room-b1").unwrap()),
        device.clone(),
        1_665_814_752_000,
    );
    for (signal, value, quality) in [
        (Signal::UpsOnBattery, 0.0, Quality::Good),
        (Signal::UpsRuntimeRemaining, 540.0, Quality::Good),
        (Signal::UpsBatteryTemperature, 0.0, Quality::CommLost),
    ] {
        m.push(&Sample {
            device: device.clone(),
            signal,
            channel: 0,
            value,
            unit: signal.unit(),
            timestamp_ms: 1_665_814_751_800,
            quality,
        })
        .unwrap();
    }
    m
}

fn example_status() -> GatewayStatus {
    let mut s = GatewayStatus::new(
        GatewayId::new("gw-paris-1a").unwrap(),
        SiteId::new("paris-1").unwrap(),
        Presence::Online,
        "0.1.0",
        11,
        12,
        1_665_814_750_000,
    );
    s.epoch = Some(1_665_814_380);
    s.session = Some(1);
    s.beat = Some(37);
    s.heartbeat_s = Some(10);
    s.maintenance
        .push(firebreak_protocols::MaintenanceNote {
            device: DeviceId::new("node-b1").unwrap(),
            channel: Some(2),
            since_ms: 1_665_814_000_000,
            until_ms: 1_665_816_700_000,
        })
        .unwrap();
    s
}

fn examples() -> String {
    let trigger = message::encode_vec(&example_trigger()).unwrap();
    let telemetry = message::encode_vec(&example_telemetry()).unwrap();
    let status = message::encode_vec(&example_status()).unwrap();
    format!(
        "A trigger (`firebreak.trigger/1`), on `firebreak/v1/paris-1/triggers` and retained on \
         `firebreak/v1/paris-1/zones/battery-room-b1/state`:\n\n```json\n{}\n```\n\n\
         Telemetry (`firebreak.telemetry/1`), on `firebreak/v1/paris-1/telemetry/ups-b1`:\n\n\
         ```json\n{}\n```\n\n\
         Gateway status (`firebreak.status/1`), retained on \
         `firebreak/v1/paris-1/gateways/gw-paris-1a/status`:\n\n```json\n{}\n```\n\n\
         The trigger and the status are shown without their `signature` member: on the wire \
         each ends with one, as [Signatures](#signatures) shows.\n",
        pretty(&trigger),
        pretty(&telemetry),
        pretty(&status)
    )
}

/// The documentation's signing key: a fixed seed, so the example is the same every time.
fn example_key() -> ed25519_dalek::SigningKey {
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = i as u8;
    }
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

const EXAMPLE_KEY_ID: &str = "gw-paris-1a-2026";

/// The example trigger, signed as the gateway signs it: (canonical bytes, published payload).
fn signed_example() -> (Vec<u8>, Vec<u8>) {
    use base64::Engine;
    use ed25519_dalek::Signer;
    let canonical = message::encode_vec(&example_trigger()).unwrap();
    let sig = example_key().sign(&canonical);
    let signature = firebreak_protocols::Signature {
        key_id: firebreak_protocols::KeyId::new(EXAMPLE_KEY_ID).unwrap(),
        ed25519: base64::engine::general_purpose::STANDARD
            .encode(sig.to_bytes())
            .as_str()
            .try_into()
            .unwrap(),
    };
    let payload = firebreak_protocols::signed::signed_vec(&canonical, &signature).unwrap();
    (canonical, payload)
}

fn signing() -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (canonical, payload) = signed_example();
    let at = payload.len() - (payload.len() - canonical.len() + 1);
    let public = b64.encode(example_key().verifying_key().as_bytes());
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
    format!(
        "The key (its 32-byte seed is the bytes 0, 1, …, 31, for this example only), as the \
         public key file `gw-paris-1a-2026.pub` that controllers hold:\n\n```json\n\
         {{\"schema\":\"firebreak.public-key/1\",\"key_id\":\"{EXAMPLE_KEY_ID}\",\"ed25519\":\"{public}\"}}\n```\n\n\
         The payload `P` the gateway publishes ({} bytes, one line, exactly as on the wire):\n\n\
         ```text\n{}\n```\n\n\
         The last `,\"signature\":{{` starts at byte {at} (counting from 0). The bytes before it, \
         followed by `}}`, are the canonical bytes `B` ({} bytes) — the signed message:\n\n\
         ```text\n{}\n```\n",
        payload.len(),
        text(&payload),
        canonical.len(),
        text(&canonical),
    )
}

#[test]
fn contract_signing_example_is_generated() {
    sync_section("contract.md", "signing", &signing());
}

/// What a controller in any language does: strip textually, verify over the bytes, decode.
#[test]
fn documented_signed_payload_verifies() {
    use base64::Engine;
    use ed25519_dalek::Verifier;
    let text = std::fs::read_to_string(doc_path("contract.md")).unwrap();
    let start = text.find("<!-- BEGIN GENERATED signing -->").unwrap();
    let blocks: Vec<&str> = text[start..]
        .split("```text\n")
        .skip(1)
        .take(2)
        .map(|b| b.split("\n```").next().unwrap())
        .collect();
    let (payload, canonical) = (blocks[0].as_bytes(), blocks[1].as_bytes());
    let parts = firebreak_protocols::signed::split(payload).unwrap();
    assert_eq!(parts.canonical_vec(), canonical);
    let sig = firebreak_protocols::signed::decode_signature(parts.signature).unwrap();
    assert_eq!(sig.key_id.as_str(), EXAMPLE_KEY_ID);
    let bytes: [u8; 64] = base64::engine::general_purpose::STANDARD
        .decode(sig.ed25519.as_str())
        .unwrap()
        .try_into()
        .unwrap();
    let key = example_key().verifying_key();
    key.verify(canonical, &ed25519_dalek::Signature::from_bytes(&bytes))
        .unwrap();
    // The same trigger either way; the signed bytes are what a controller acts on.
    let whole: Trigger = message::decode(payload).unwrap();
    let signed: Trigger = message::decode(canonical).unwrap();
    assert_eq!(signed, example_trigger());
    assert_eq!(whole.signature, Some(sig));
    // One changed byte, and it no longer verifies.
    let tampered = String::from_utf8(canonical.to_vec())
        .unwrap()
        .replace("\"seq\":1207", "\"seq\":1208");
    assert!(
        key.verify(
            tampered.as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&bytes)
        )
        .is_err()
    );
}

#[test]
fn register_maps_match_the_tables() {
    sync_section("register-maps.md", "register-maps", &register_maps());
}

#[test]
fn oid_profiles_match_the_tables() {
    sync_section("register-maps.md", "oid-profiles", &oid_profiles());
}

#[test]
fn contract_signal_list_matches_the_enum() {
    sync_section("contract.md", "signals", &signal_table());
}

#[test]
fn contract_examples_are_generated() {
    sync_section("contract.md", "examples", &examples());
}

#[test]
fn documented_examples_still_parse() {
    let blocks = json_blocks("contract.md", "examples");
    assert_eq!(blocks.len(), 3, "three examples in docs/contract.md");
    let trigger: Trigger = message::decode(blocks[0].as_bytes()).unwrap();
    assert_eq!(trigger, example_trigger());
    assert_eq!(trigger.level, Level::Evacuate);
    let telemetry: Telemetry = message::decode(blocks[1].as_bytes()).unwrap();
    assert_eq!(telemetry, example_telemetry());
    let status: GatewayStatus = message::decode(blocks[2].as_bytes()).unwrap();
    assert_eq!(status, example_status());
}

/// The example drill: the example trigger's gateway, `seq` (its last trigger), epoch and zone,
/// rehearsing `evacuate`, signed with the example key: the payload on the wire.
fn example_drill_payload() -> Vec<u8> {
    use base64::Engine;
    use ed25519_dalek::Signer;
    let t = example_trigger();
    let at = t.issued_at_ms + 47_750;
    let mut body = Trigger::new(
        t.gateway.clone(),
        t.seq,
        firebreak_protocols::IncidentId::new(&format!("drill-{at}-1")).unwrap(),
        t.site.clone(),
        t.zone.clone(),
        Level::Evacuate,
        Level::Normal,
        at,
    )
    .unwrap();
    body.epoch = t.epoch;
    let drill = firebreak_protocols::Drill::new(body).unwrap();
    let canonical = message::encode_vec(&drill).unwrap();
    let sig = example_key().sign(&canonical);
    let signature = firebreak_protocols::Signature {
        key_id: firebreak_protocols::KeyId::new(EXAMPLE_KEY_ID).unwrap(),
        ed25519: base64::engine::general_purpose::STANDARD
            .encode(sig.to_bytes())
            .as_str()
            .try_into()
            .unwrap(),
    };
    firebreak_protocols::signed::signed_vec(&canonical, &signature).unwrap()
}

fn drill_example() -> String {
    format!(
        "A drill of the example gateway (the copy for its first broker), on \
         `firebreak/v1/paris-1/drill/gw-paris-1a`, signed with the example key (one line, \
         exactly as on the wire):\n\n```json\n{}\n```\n",
        String::from_utf8(example_drill_payload()).unwrap()
    )
}

#[test]
fn contract_drill_example_is_generated() {
    sync_section("contract.md", "drill", &drill_example());
}

/// The documented drill decodes as a drill and never as a trigger.
#[test]
fn documented_drill_is_a_drill_and_never_a_trigger() {
    let blocks = json_blocks("contract.md", "drill");
    assert_eq!(blocks.len(), 1);
    let payload = blocks[0].trim_end().as_bytes();
    assert_eq!(payload, example_drill_payload().as_slice());
    let drill: firebreak_protocols::Drill = message::decode(payload).unwrap();
    assert!(drill.0.drill);
    assert!(message::decode::<Trigger>(payload).is_err());
}
