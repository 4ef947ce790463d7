//! MQTT sources: building sensors that publish JSON. Each configured field, found by a JSON
//! pointer, becomes a sample. A payload that is not JSON, or lacks a field, is counted and
//! logged with its topic; it never stops the source.

use std::time::Duration;

use firebreak_protocols::{DeviceId, GatewayId, Quality, Sample};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Event, mono_ms};
use crate::config::{MqttSignal, MqttSourceConfig};

/// The largest payload a source reads; larger ones are malformed.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// What a payload gave: samples, and the fields that could not be used.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// Samples of the fields found.
    pub samples: Vec<Sample>,
    /// One line per field that was missing or not a number.
    pub problems: Vec<String>,
}

/// Maps one payload to samples of `device`, read at `at_ms`.
pub fn map_payload(
    device: &DeviceId,
    signals: &[MqttSignal],
    payload: &[u8],
    at_ms: u64,
) -> Result<Mapped, String> {
    if payload.len() > MAX_PAYLOAD {
        return Err(format!(
            "payload is {} bytes, more than {MAX_PAYLOAD}",
            payload.len()
        ));
    }
    let json: Value =
        serde_json::from_slice(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    let mut mapped = Mapped {
        samples: Vec::new(),
        problems: Vec::new(),
    };
    for m in signals {
        let number = match json.pointer(&m.pointer) {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::Bool(b)) => Some(if *b { 1.0 } else { 0.0 }),
            Some(other) => {
                mapped
                    .problems
                    .push(format!("{}: {} is not a number", m.pointer, kind(other)));
                continue;
            }
            None => {
                mapped.problems.push(format!("{}: missing", m.pointer));
                continue;
            }
        };
        let Some(number) = number else {
            mapped
                .problems
                .push(format!("{}: not a finite number", m.pointer));
            continue;
        };
        let value = (number * m.scale + m.offset) as f32;
        let quality = if !value.is_finite() {
            Quality::SensorFault
        } else if !m.valid.contains(value) {
            Quality::OutOfRange
        } else {
            Quality::Good
        };
        mapped.samples.push(Sample {
            device: device.clone(),
            signal: m.signal,
            channel: m.channel,
            value,
            unit: m.signal.unit(),
            timestamp_ms: at_ms,
            quality,
        });
    }
    Ok(mapped)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Subscribes to one source and sends its samples until the event channel closes.
/// Reconnects on its own; re-subscribes after every connection.
pub async fn run_source(source: MqttSourceConfig, gateway: GatewayId, events: mpsc::Sender<Event>) {
    let client_id = format!("{gateway}-src-{}", source.name);
    let mut options = MqttOptions::new(client_id, source.host.clone(), source.port);
    options.set_keep_alive(Duration::from_secs(10));
    options.set_max_packet_size(MAX_PAYLOAD + 1024, 4096);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let mut up = false;
    let mut failures = 0u32;
    info!(device = %source.name, broker = %format!("mqtt://{}:{}", source.host, source.port), topic = %source.topic, "subscribing");
    loop {
        let event = match eventloop.poll().await {
            Ok(e) => e,
            Err(e) => {
                if up || failures == 0 {
                    warn!(device = %source.name, topic = %source.topic, error = %e, "broker link lost");
                }
                // Every failed attempt counts, including those of a source that never
                // connected: a broker that refuses us, or accepts and never sends CONNACK
                // (rumqttc gives up on it after its connection timeout).
                if events
                    .send(Event::MqttLink {
                        device: source.name.clone(),
                        up: false,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                up = false;
                failures = failures.saturating_add(1);
                let backoff = Duration::from_millis(200u64.saturating_mul(1 << failures.min(7)));
                tokio::time::sleep(backoff.min(Duration::from_secs(10))).await;
                continue;
            }
        };
        match event {
            MqttEvent::Incoming(Packet::ConnAck(_)) => {
                failures = 0;
                up = true;
                if let Err(e) = client.try_subscribe(source.topic.clone(), QoS::AtMostOnce) {
                    warn!(device = %source.name, topic = %source.topic, error = %e, "cannot subscribe");
                }
                if events
                    .send(Event::MqttLink {
                        device: source.name.clone(),
                        up: true,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            MqttEvent::Incoming(Packet::Publish(p)) => {
                let topic = p.topic.clone();
                let event = match map_payload(&source.name, &source.signals, &p.payload, mono_ms())
                {
                    Ok(mapped) => {
                        if !mapped.problems.is_empty() {
                            let problem = mapped.problems.join("; ");
                            warn!(device = %source.name, %topic, %problem, "payload fields unusable");
                            if events
                                .send(Event::MqttMalformed {
                                    device: source.name.clone(),
                                    topic: topic.clone(),
                                    problem,
                                })
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        if mapped.samples.is_empty() {
                            continue;
                        }
                        debug!(device = %source.name, %topic, samples = mapped.samples.len(), "payload");
                        Event::Mqtt {
                            device: source.name.clone(),
                            topic,
                            samples: mapped.samples,
                        }
                    }
                    Err(problem) => {
                        warn!(device = %source.name, %topic, %problem, "malformed payload");
                        Event::MqttMalformed {
                            device: source.name.clone(),
                            topic,
                            problem,
                        }
                    }
                };
                if events.send(event).await.is_err() {
                    return;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_protocols::{Signal, ValidRange};

    fn signals() -> Vec<MqttSignal> {
        vec![
            MqttSignal {
                signal: Signal::RoomTemperature,
                channel: 0,
                pointer: "/t".into(),
                scale: 1.0,
                offset: 0.0,
                valid: ValidRange {
                    min: -40.0,
                    max: 85.0,
                },
            },
            MqttSignal {
                signal: Signal::RoomHumidity,
                channel: 0,
                pointer: "/h/rel".into(),
                scale: 100.0,
                offset: 0.0,
                valid: ValidRange::ANY,
            },
            MqttSignal {
                signal: Signal::SmokeAlarm,
                channel: 0,
                pointer: "/smoke".into(),
                scale: 1.0,
                offset: 0.0,
                valid: ValidRange::ANY,
            },
        ]
    }

    #[test]
    fn maps_fields_with_scale_and_quality() {
        let d = DeviceId::new("bms").unwrap();
        let m = map_payload(
            &d,
            &signals(),
            br#"{"t": 21.5, "h": {"rel": 0.45}, "smoke": true}"#,
            5,
        )
        .unwrap();
        assert!(m.problems.is_empty());
        assert_eq!(m.samples.len(), 3);
        assert_eq!(m.samples[0].value, 21.5);
        assert_eq!(m.samples[1].value, 45.0);
        assert_eq!(m.samples[2].value, 1.0);
        assert_eq!(m.samples[0].timestamp_ms, 5);
        let hot = map_payload(&d, &signals(), br#"{"t": 300}"#, 5).unwrap();
        assert_eq!(hot.samples[0].quality, Quality::OutOfRange);
        assert_eq!(hot.problems, vec!["/h/rel: missing", "/smoke: missing"]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let d = DeviceId::new("bms").unwrap();
        assert!(
            map_payload(&d, &signals(), b"\xff\x00{", 0)
                .unwrap_err()
                .starts_with("payload is not JSON")
        );
        let m = map_payload(&d, &signals(), br#"{"t": "warm"}"#, 0).unwrap();
        assert!(m.samples.is_empty());
        assert_eq!(m.problems[0], "/t: a string is not a number");
        let big = vec![b' '; MAX_PAYLOAD + 1];
        assert!(map_payload(&d, &signals(), &big, 0).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let d = DeviceId::new("bms").unwrap();
            let _ = map_payload(&d, &signals(), &bytes, 0);
        }
    }
}
