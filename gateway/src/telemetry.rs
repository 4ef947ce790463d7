//! Telemetry out: every device's values, with their quality, on
//! `firebreak/v1/{site}/telemetry/{device}` (`firebreak.telemetry/1`, docs/contract.md), for
//! dashboards and people — never for a controller to act on, and never in the way of a
//! trigger.
//!
//! - **When.** A device's values are published when one of them moved by more than its
//!   signal's deadband (or its quality changed), at most once per `min_interval`, and at least
//!   every `every` even when nothing moved, so a dashboard can tell a quiet device from a dead
//!   feed. A device with more than 32 values is published as several messages.
//! - **Never delaying triggers.** Telemetry has its own MQTT connection to each broker (client
//!   id `{gateway}-{broker}-telemetry`, QoS 0, not retained) and its own bounded queue; when the
//!   queue is full the message is dropped and counted (`firebreak_telemetry_dropped_total`),
//!   never waited for. The triggers' connections, outboxes and tasks are not shared.
//! - **Unsigned.** It is not acted on; triggers and statuses are what is signed.
//!
//! [`Telemetry`] decides what to publish from the samples the gateway reads; [`start`] runs the
//! publishers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use firebreak_protocols::message::{MAX_TELEMETRY_VALUES, Telemetry as TelemetryMessage};
use firebreak_protocols::{DeviceId, GatewayId, Quality, Sample, Signal, SiteId, Unit, ZoneId};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::BrokerConfig;
use crate::deliver::link::Link;

/// How telemetry is published (`[telemetry]` in the site configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// Whether it is published at all.
    pub enabled: bool,
    /// A device is published at least this often.
    pub every: Duration,
    /// A device is published at most this often.
    pub min_interval: Duration,
    /// Messages waiting for the brokers; more are dropped and counted.
    pub queue: usize,
    /// Per signal, the change that is worth publishing at once (defaults by unit otherwise).
    pub deadbands: BTreeMap<Signal, f32>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            enabled: true,
            every: Duration::from_secs(60),
            min_interval: Duration::from_secs(1),
            queue: 256,
            deadbands: BTreeMap::new(),
        }
    }
}

impl TelemetryConfig {
    /// The deadband of `signal`: the configured one, else one by its unit — 0.5 °C, 2 % RH,
    /// 5 ppm, 30 s of runtime, 2 V, 0.5 A, 50 W, 1 %, and any change of a state or code.
    pub fn deadband(&self, signal: Signal) -> f32 {
        if let Some(d) = self.deadbands.get(&signal) {
            return *d;
        }
        match signal.unit() {
            Unit::Celsius => 0.5,
            Unit::PercentRh => 2.0,
            Unit::Ppm => 5.0,
            Unit::Seconds => 30.0,
            Unit::Volts => 2.0,
            Unit::Amperes => 0.5,
            Unit::Watts => 50.0,
            Unit::Percent => 1.0,
            _ => 0.0,
        }
    }
}

/// A signal's latest reading (its device, signal and channel are its keys: a hall has tens of
/// thousands of these, so they are kept small).
#[derive(Debug, Clone)]
struct Latest {
    value: f32,
    unit: firebreak_protocols::Unit,
    quality: Quality,
    timestamp_ms: u64,
    /// The value and quality last published.
    published: Option<(f32, Quality)>,
}

#[derive(Debug, Default)]
struct DeviceState {
    values: BTreeMap<(Signal, u8), Latest>,
    last_published_ms: Option<u64>,
    dirty: bool,
}

/// Decides which devices' telemetry to publish, and builds the messages.
#[derive(Debug)]
pub struct Telemetry {
    config: TelemetryConfig,
    site: SiteId,
    gateway: GatewayId,
    zones: BTreeMap<DeviceId, Option<ZoneId>>,
    devices: BTreeMap<DeviceId, DeviceState>,
}

impl Telemetry {
    /// Telemetry of `site` from `gateway`, each device in its zone.
    pub fn new(
        config: TelemetryConfig,
        site: SiteId,
        gateway: GatewayId,
        zones: BTreeMap<DeviceId, Option<ZoneId>>,
    ) -> Telemetry {
        Telemetry {
            config,
            site,
            gateway,
            zones,
            devices: BTreeMap::new(),
        }
    }

    /// Takes samples as they are read: a value beyond its deadband, or a new quality, makes
    /// its device due.
    pub fn offer(&mut self, samples: &[Sample]) {
        for s in samples {
            let device = self.devices.entry(s.device.clone()).or_default();
            let band = self.config.deadband(s.signal);
            let key = (s.signal, s.channel);
            let published = device.values.get(&key).and_then(|l| l.published);
            let moved = match published {
                None => true,
                Some((value, quality)) => {
                    quality != s.quality
                        || (value - s.value).abs() > band
                        || (band == 0.0 && value != s.value)
                        || value.is_nan() != s.value.is_nan()
                }
            };
            device.values.insert(
                key,
                Latest {
                    value: s.value,
                    unit: s.unit,
                    quality: s.quality,
                    timestamp_ms: s.timestamp_ms,
                    published,
                },
            );
            device.dirty |= moved;
        }
    }

    /// The messages due at `now_ms` (the wall clock: it is the messages' `issued_at_ms`).
    pub fn due(&mut self, now_ms: u64) -> Vec<TelemetryMessage> {
        let min = u64::try_from(self.config.min_interval.as_millis()).unwrap_or(u64::MAX);
        let every = u64::try_from(self.config.every.as_millis()).unwrap_or(u64::MAX);
        let mut out = Vec::new();
        for (name, device) in &mut self.devices {
            let since = device.last_published_ms.map(|t| now_ms.saturating_sub(t));
            let due = match since {
                None => true,
                Some(s) => (device.dirty && s >= min) || s >= every,
            };
            if !due || device.values.is_empty() {
                continue;
            }
            let zone = self.zones.get(name).cloned().flatten();
            let mut latest: Vec<(&(Signal, u8), &mut Latest)> = device.values.iter_mut().collect();
            for chunk in latest.chunks_mut(MAX_TELEMETRY_VALUES) {
                let mut m = TelemetryMessage::new(
                    self.gateway.clone(),
                    self.site.clone(),
                    zone.clone(),
                    name.clone(),
                    now_ms,
                );
                for (key, l) in chunk.iter_mut() {
                    let (signal, channel) = **key;
                    let sample = Sample {
                        device: name.clone(),
                        signal,
                        channel,
                        value: l.value,
                        unit: l.unit,
                        timestamp_ms: l.timestamp_ms,
                        quality: l.quality,
                    };
                    // A value that does not fit the message's rules (never: one per key)
                    // is left for the next message rather than failing the device.
                    if m.push(&sample).is_ok() {
                        l.published = Some((l.value, l.quality));
                    }
                }
                out.push(m);
            }
            device.last_published_ms = Some(now_ms);
            device.dirty = false;
        }
        out
    }
}

/// Counts what telemetry did, for `/metrics`.
#[derive(Debug, Default)]
pub struct TelemetryStats {
    /// Messages handed to a broker's connection.
    pub published: AtomicU64,
    /// Messages dropped: a full queue, or a broker not connected.
    pub dropped: AtomicU64,
}

/// One message for the brokers: its topic and payload, shared by every broker's queue.
type Outgoing = Arc<(String, Vec<u8>)>;

/// The sending end of the publishers: never waits.
#[derive(Debug, Clone)]
pub struct TelemetrySender {
    queues: Vec<mpsc::Sender<Outgoing>>,
    /// The counters.
    pub stats: Arc<TelemetryStats>,
}

impl TelemetrySender {
    /// Queues `m` for every broker; a full queue drops it, counted.
    pub fn send(&self, m: &TelemetryMessage) {
        let Ok(payload) = firebreak_protocols::message::encode_vec(m) else {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let topic = firebreak_protocols::topic::telemetry(&m.site, &m.device).to_string();
        let item = Arc::new((topic, payload));
        for q in &self.queues {
            if q.try_send(item.clone()).is_err() {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Starts one publisher per broker (its own connection, its own queue) on the current tokio
/// runtime; a broker whose settings cannot be read gets no telemetry, said in the log.
pub fn start(
    brokers: &[BrokerConfig],
    gateway: &GatewayId,
    queue: usize,
    tasks: &mut tokio::task::JoinSet<()>,
) -> TelemetrySender {
    let stats = Arc::new(TelemetryStats::default());
    let mut queues = Vec::new();
    for broker in brokers {
        let link = match Link::prepare(broker) {
            Ok(l) => l,
            Err(e) => {
                warn!(broker = %broker.name, error = %e, "telemetry not published to this broker: its settings cannot be read");
                continue;
            }
        };
        let (tx, rx) = mpsc::channel(queue.max(1));
        queues.push(tx);
        let client_id = format!("{gateway}-{}-telemetry", broker.name);
        tasks.spawn(publish(
            link,
            client_id,
            broker.name.clone(),
            rx,
            stats.clone(),
        ));
    }
    TelemetrySender { queues, stats }
}

async fn publish(
    link: Link,
    client_id: String,
    broker: String,
    mut rx: mpsc::Receiver<Outgoing>,
    stats: Arc<TelemetryStats>,
) {
    let options = link.options(&client_id, Duration::from_secs(30));
    // QoS 0: rumqttc's own queue is small and never waited on (try_publish).
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let connected = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let up = connected.clone();
    let name = broker.clone();
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    up.store(true, Ordering::Relaxed);
                    info!(broker = %name, "telemetry connected");
                }
                Ok(_) => {}
                Err(e) => {
                    if up.swap(false, Ordering::Relaxed) {
                        warn!(broker = %name, error = %e, "telemetry connection lost; retried");
                    } else {
                        debug!(broker = %name, error = %e, "telemetry cannot connect; retried");
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    });
    let _poller = AbortOnDrop(poller);
    while let Some(item) = rx.recv().await {
        let (topic, payload) = &*item;
        if !connected.load(Ordering::Relaxed)
            || client
                .try_publish(topic, QoS::AtMostOnce, false, payload.clone())
                .is_err()
        {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        stats.published.fetch_add(1, Ordering::Relaxed);
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The devices of a configuration with their zones.
pub fn zones_of(config: &crate::config::SiteConfig) -> BTreeMap<DeviceId, Option<ZoneId>> {
    config
        .all_devices()
        .into_iter()
        .map(|(d, z, _)| (d.clone(), Some(z.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(signal: Signal, value: f32, quality: Quality) -> Sample {
        Sample {
            device: DeviceId::new("node-1").unwrap(),
            signal,
            channel: 0,
            value,
            unit: signal.unit(),
            timestamp_ms: 0,
            quality,
        }
    }

    fn telemetry() -> Telemetry {
        Telemetry::new(
            TelemetryConfig::default(),
            SiteId::new("paris-1").unwrap(),
            GatewayId::new("gw-1").unwrap(),
            BTreeMap::new(),
        )
    }

    #[test]
    fn published_on_a_move_beyond_the_deadband_rate_limited_and_at_least_every_period() {
        let mut t = telemetry();
        t.offer(&[sample(Signal::RackTemperature, 25.0, Quality::Good)]);
        assert_eq!(t.due(1_000).len(), 1, "the first values at once");
        // Within the deadband (0.5 °C): not news.
        t.offer(&[sample(Signal::RackTemperature, 25.3, Quality::Good)]);
        assert!(t.due(3_000).is_empty());
        // Beyond it: news, but not within the minimum interval (1 s) of the last message.
        let mut t = telemetry();
        t.offer(&[sample(Signal::RackTemperature, 25.0, Quality::Good)]);
        t.due(10_000);
        t.offer(&[sample(Signal::RackTemperature, 26.0, Quality::Good)]);
        assert!(t.due(10_500).is_empty(), "rate-limited to one a second");
        let m = t.due(11_000);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].values[0].value, Some(26.0));
        // Nothing moves: again after `every` (60 s), not before.
        assert!(t.due(70_000).is_empty());
        assert_eq!(t.due(71_000).len(), 1);
        // A quality change is news whatever the value.
        t.offer(&[sample(Signal::RackTemperature, 26.0, Quality::CommLost)]);
        let m = t.due(72_500);
        assert_eq!(m[0].values[0].quality, Quality::CommLost);
        // A state: any change.
        t.offer(&[sample(Signal::SmokeAlarm, 0.0, Quality::Good)]);
        t.due(74_000);
        t.offer(&[sample(Signal::SmokeAlarm, 1.0, Quality::Good)]);
        assert_eq!(t.due(75_500).len(), 1);
    }

    #[test]
    fn a_device_with_more_than_32_values_takes_several_messages() {
        let mut t = telemetry();
        let many: Vec<Sample> = (0..40u8)
            .map(|ch| Sample {
                channel: ch,
                ..sample(Signal::RackTemperature, 20.0, Quality::Good)
            })
            .collect();
        t.offer(&many);
        let m = t.due(1_000);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].values.len() + m[1].values.len(), 40);
    }

    #[test]
    fn a_full_queue_drops_and_counts_never_waits() {
        let (tx, _rx) = mpsc::channel(1);
        let sender = TelemetrySender {
            queues: vec![tx],
            stats: Arc::new(TelemetryStats::default()),
        };
        let mut t = telemetry();
        t.offer(&[sample(Signal::RackTemperature, 25.0, Quality::Good)]);
        let m = t.due(1_000).remove(0);
        for _ in 0..5 {
            sender.send(&m);
        }
        assert_eq!(sender.stats.dropped.load(Ordering::Relaxed), 4);
    }
}
