//! MQTT sources: building sensors that publish JSON. Each configured field, found by a JSON
//! pointer, becomes a sample. A payload that is not JSON, lacks a field, or is larger than the
//! source's `max_payload`, is counted and logged with its topic; it never stops the source.
//!
//! A source reaches its broker as delivery does (`mqtt://` or `mqtts://`, CA file, client
//! certificate, user name and password): the same [`Link`] reads its secrets and builds its
//! rumqttc options, so a building sensor feed is no easier to spoof than a trigger.
//!
//! **Large messages.** rumqttc 0.25 checks an incoming packet's length in its fixed header
//! against `max_packet_size` before it reads the rest, and a longer one is a connection error
//! (`payload size limit exceeded: N`): the topic is never read, the connection is dropped, and
//! a *retained* message comes back at every subscribe. A source therefore accepts packets up to
//! [`RECEIVE_LIMIT`], far above any `max_payload`: an oversized payload arrives whole, with its
//! topic, and is counted as malformed while the connection goes on. A packet over even that
//! limit is logged once as an error with its size, counted as malformed, and shown as the
//! source's `last_error`; the source reconnects with a back-off that grows to 10 s, so it never
//! spins, but it reads nothing until the message is cleared on the broker (the log says how).

use std::time::Duration;

use firebreak_protocols::{DeviceId, GatewayId, Quality, Sample};
use rumqttc::{AsyncClient, ConnectionError, Event as MqttEvent, Packet, QoS, StateError};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::{Event, mono_ms};
use crate::config::{MqttSignal, MqttSourceConfig};
use crate::deliver::link::{self, Link};

/// The largest MQTT packet a source takes in (16 MiB): far above the largest `max_payload`
/// (1 MiB), so that an oversized payload is received and counted rather than ending the
/// connection, and low enough that one absurd message cannot exhaust the gateway's memory.
pub const RECEIVE_LIMIT: usize = 16 * 1024 * 1024;

/// How often a source whose TLS files or password cannot be read tries them again.
pub const SETTINGS_RETRY: Duration = Duration::from_secs(10);

/// The longest wait between two connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// What a payload gave: samples, and the fields that could not be used.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// Samples of the fields found.
    pub samples: Vec<Sample>,
    /// One line per field that was missing or not a number.
    pub problems: Vec<String>,
}

/// Maps one payload to samples of `device`, read at `at_ms`; a payload over `max_payload`
/// bytes is not parsed.
pub fn map_payload(
    device: &DeviceId,
    signals: &[MqttSignal],
    payload: &[u8],
    max_payload: usize,
    at_ms: u64,
) -> Result<Mapped, String> {
    if payload.len() > max_payload {
        return Err(format!(
            "payload is {} bytes, more than max_payload ({max_payload})",
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

/// Why a connection ended, in words for the log and `/status` (never a secret), and the size
/// of the packet when it was one over [`RECEIVE_LIMIT`].
fn describe(e: &ConnectionError, filter: &str) -> (String, Option<usize>) {
    use rumqttc::mqttbytes::Error as Bytes;
    match e {
        ConnectionError::MqttState(StateError::Deserialization(
            Bytes::PayloadSizeLimitExceeded(size),
        )) => (
            format!(
                "a packet of {size} bytes on {filter} is over the {RECEIVE_LIMIT} bytes a source takes in: \
                 the connection ends before its topic is read, and a retained one comes back at every connect; \
                 clear it (mosquitto_pub -r -n -t TOPIC) or set message_size_limit on the broker"
            ),
            Some(*size),
        ),
        ConnectionError::ConnectionRefused(code) => (
            format!(
                "the broker refused the connection: {code:?} (username, password_file or password_env, client_cert)"
            ),
            None,
        ),
        ConnectionError::Tls(e) => (format!("TLS: {e}{TLS_HINT}"), None),
        // With TLS 1.3 a broker refuses a missing or unknown client certificate after the
        // handshake: rumqttc reports the alert as an I/O error of the first read.
        other => match rustls_error(other) {
            Some(e) => (format!("TLS: {e}{TLS_HINT}"), None),
            None => (other.to_string(), None),
        },
    }
}

const TLS_HINT: &str = " (ca_file must hold the CA that signed the broker's certificate, which must name the URL's host; client_cert and client_key if the broker asks for a certificate)";

/// The TLS error inside an I/O error of the connection, if that is what ended it.
fn rustls_error(e: &ConnectionError) -> Option<&rustls::Error> {
    use rumqttc::mqttbytes::Error as Bytes;
    let io = match e {
        ConnectionError::Io(io)
        | ConnectionError::MqttState(StateError::Io(io))
        | ConnectionError::MqttState(StateError::Deserialization(Bytes::Io(io))) => io,
        _ => return None,
    };
    io.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Whether the connection failed for a reason of its settings (credentials, certificates)
/// rather than of the network: logged as an error.
fn refused(e: &ConnectionError) -> bool {
    matches!(
        e,
        ConnectionError::ConnectionRefused(_) | ConnectionError::Tls(_)
    ) || rustls_error(e).is_some()
}

/// Sends `event` to the table; false when the table is gone (the gateway is stopping).
async fn send(events: &mpsc::Sender<Event>, event: Event) -> bool {
    events.send(event).await.is_ok()
}

/// Reads the source's TLS files and password, trying again every [`SETTINGS_RETRY`] while
/// they cannot be used (the source is `comm-lost` meanwhile, with the reason as its
/// `last_error`). `None` when the gateway stops.
async fn prepare(source: &MqttSourceConfig, events: &mpsc::Sender<Event>) -> Option<Link> {
    let mut logged: Option<String> = None;
    loop {
        let problem = match Link::prepare(&source.broker) {
            Ok(link) => {
                if logged.is_some() {
                    info!(device = %source.name, "mqtt source settings readable again");
                }
                return Some(link);
            }
            Err(e) => format!("{}: {}", e.what, e.problem),
        };
        if logged.as_deref() != Some(problem.as_str()) {
            error!(device = %source.name, broker = %source.broker.url(), %problem, retry_s = SETTINGS_RETRY.as_secs(), "mqtt source cannot connect: its TLS files or password cannot be used; tried again");
        }
        let down = Event::MqttLink {
            device: source.name.clone(),
            up: false,
            error: Some(problem.clone()),
        };
        if !send(events, down).await {
            return None;
        }
        logged = Some(problem);
        tokio::time::sleep(SETTINGS_RETRY).await;
    }
}

/// Subscribes to one source and sends its samples until the event channel closes.
/// Reconnects on its own; re-subscribes after every connection.
pub async fn run_source(source: MqttSourceConfig, gateway: GatewayId, events: mpsc::Sender<Event>) {
    let Some(link) = prepare(&source, &events).await else {
        return;
    };
    let client_id = format!("{gateway}-src-{}", source.name);
    let mut options = link.options(&client_id, KEEP_ALIVE);
    options.set_max_packet_size(RECEIVE_LIMIT, link::MAX_PACKET);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let url = source.broker.url();
    let mut up = false;
    let mut failures = 0u32;
    // The last problem logged: the same one again is only counted, until a connection that
    // ended otherwise is made.
    let mut logged: Option<String> = None;
    let mut oversized = false;
    info!(device = %source.name, broker = %url, topic = %source.topic, "subscribing");
    loop {
        let event = match eventloop.poll().await {
            Ok(e) => e,
            Err(e) => {
                let (problem, size) = describe(&e, &source.topic);
                if logged.as_deref() != Some(problem.as_str()) {
                    if let Some(size) = size {
                        error!(device = %source.name, broker = %url, topic = %source.topic, size, limit = RECEIVE_LIMIT, %problem, "mqtt message too large to receive");
                    } else if refused(&e) {
                        error!(device = %source.name, broker = %url, topic = %source.topic, %problem, "mqtt source cannot connect");
                    } else {
                        warn!(device = %source.name, broker = %url, topic = %source.topic, %problem, "broker link lost");
                    }
                }
                if size.is_some() {
                    let malformed = Event::MqttMalformed {
                        device: source.name.clone(),
                        topic: source.topic.clone(),
                        problem: problem.clone(),
                    };
                    if !send(&events, malformed).await {
                        return;
                    }
                }
                // Every failed attempt counts, including those of a source that never
                // connected: a broker that refuses us, or accepts and never sends CONNACK
                // (rumqttc gives up on it after its connection timeout).
                let down = Event::MqttLink {
                    device: source.name.clone(),
                    up: false,
                    error: Some(problem.clone()),
                };
                if !send(&events, down).await {
                    return;
                }
                // A connection that worked starts the back-off again, unless a message it
                // cannot take ended it: that one comes back at once if it is retained.
                failures = if up && size.is_none() {
                    1
                } else {
                    failures.saturating_add(1)
                };
                up = false;
                oversized = size.is_some();
                logged = Some(problem);
                let backoff = Duration::from_millis(200u64.saturating_mul(1 << failures.min(7)));
                tokio::time::sleep(backoff.min(MAX_BACKOFF)).await;
                continue;
            }
        };
        match event {
            MqttEvent::Incoming(Packet::ConnAck(_)) => {
                up = true;
                if !oversized && logged.take().is_some() {
                    info!(device = %source.name, broker = %url, "broker link back");
                }
                if let Err(e) = client.try_subscribe(source.topic.clone(), QoS::AtMostOnce) {
                    warn!(device = %source.name, topic = %source.topic, error = %e, "cannot subscribe");
                }
                let link_up = Event::MqttLink {
                    device: source.name.clone(),
                    up: true,
                    error: None,
                };
                if !send(&events, link_up).await {
                    return;
                }
            }
            MqttEvent::Incoming(Packet::Publish(p))
                if !publish(&source, &p.topic, &p.payload, &events).await =>
            {
                return;
            }
            _ => {}
        }
    }
}

/// Maps one message and sends what it gave; false when the table is gone.
async fn publish(
    source: &MqttSourceConfig,
    topic: &str,
    payload: &[u8],
    events: &mpsc::Sender<Event>,
) -> bool {
    let mapped = match map_payload(
        &source.name,
        &source.signals,
        payload,
        source.max_payload,
        mono_ms(),
    ) {
        Ok(mapped) => mapped,
        Err(problem) => {
            warn!(device = %source.name, %topic, bytes = payload.len(), %problem, "malformed payload");
            let malformed = Event::MqttMalformed {
                device: source.name.clone(),
                topic: topic.to_string(),
                problem,
            };
            return send(events, malformed).await;
        }
    };
    if !mapped.problems.is_empty() {
        let problem = mapped.problems.join("; ");
        warn!(device = %source.name, %topic, %problem, "payload fields unusable");
        let malformed = Event::MqttMalformed {
            device: source.name.clone(),
            topic: topic.to_string(),
            problem,
        };
        if !send(events, malformed).await {
            return false;
        }
    }
    if mapped.samples.is_empty() {
        return true;
    }
    debug!(device = %source.name, %topic, samples = mapped.samples.len(), "payload");
    let samples = Event::Mqtt {
        device: source.name.clone(),
        topic: topic.to_string(),
        samples: mapped.samples,
    };
    send(events, samples).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_MAX_PAYLOAD;
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
            DEFAULT_MAX_PAYLOAD,
            5,
        )
        .unwrap();
        assert!(m.problems.is_empty());
        assert_eq!(m.samples.len(), 3);
        assert_eq!(m.samples[0].value, 21.5);
        assert_eq!(m.samples[1].value, 45.0);
        assert_eq!(m.samples[2].value, 1.0);
        assert_eq!(m.samples[0].timestamp_ms, 5);
        let hot = map_payload(&d, &signals(), br#"{"t": 300}"#, DEFAULT_MAX_PAYLOAD, 5).unwrap();
        assert_eq!(hot.samples[0].quality, Quality::OutOfRange);
        assert_eq!(hot.problems, vec!["/h/rel: missing", "/smoke: missing"]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let d = DeviceId::new("bms").unwrap();
        assert!(
            map_payload(&d, &signals(), b"\xff\x00{", DEFAULT_MAX_PAYLOAD, 0)
                .unwrap_err()
                .starts_with("payload is not JSON")
        );
        let m = map_payload(&d, &signals(), br#"{"t": "warm"}"#, DEFAULT_MAX_PAYLOAD, 0).unwrap();
        assert!(m.samples.is_empty());
        assert_eq!(m.problems[0], "/t: a string is not a number");
        // Over the limit, even valid JSON is not parsed; at the limit it is.
        let mut big = br#"{"t": 21.5}"#.to_vec();
        big.resize(2048, b' ');
        assert_eq!(
            map_payload(&d, &signals(), &big, 2047, 0).unwrap_err(),
            "payload is 2048 bytes, more than max_payload (2047)"
        );
        assert_eq!(
            map_payload(&d, &signals(), &big, 2048, 0)
                .unwrap()
                .samples
                .len(),
            1
        );
    }

    #[test]
    fn connection_errors_say_what_to_check() {
        use rumqttc::mqttbytes::Error as Bytes;
        let huge = ConnectionError::MqttState(StateError::Deserialization(
            Bytes::PayloadSizeLimitExceeded(20_000_000),
        ));
        let (problem, size) = describe(&huge, "building/#");
        assert_eq!(size, Some(20_000_000));
        assert!(
            problem
                .starts_with("a packet of 20000000 bytes on building/# is over the 16777216 bytes")
                && problem.contains("mosquitto_pub -r -n -t TOPIC"),
            "{problem}"
        );
        assert!(!refused(&huge));
        let refusal =
            ConnectionError::ConnectionRefused(rumqttc::ConnectReturnCode::BadUserNamePassword);
        let (problem, size) = describe(&refusal, "building/#");
        assert_eq!(size, None);
        assert!(problem.starts_with("the broker refused the connection: BadUserNamePassword"));
        assert!(refused(&refusal));
        // A TLS alert that comes as an I/O error of the first read is a TLS problem too.
        let alert = ConnectionError::MqttState(StateError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
        )));
        let (problem, _) = describe(&alert, "building/#");
        assert!(
            problem.starts_with("TLS: received fatal alert: CertificateRequired (ca_file"),
            "{problem}"
        );
        assert!(refused(&alert));
        let reset = ConnectionError::Io(std::io::ErrorKind::ConnectionReset.into());
        assert!(!refused(&reset));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let d = DeviceId::new("bms").unwrap();
            let _ = map_payload(&d, &signals(), &bytes, DEFAULT_MAX_PAYLOAD, 0);
        }
    }
}
