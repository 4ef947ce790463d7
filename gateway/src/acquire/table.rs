//! The signal table: the latest sample of every (device, signal, channel), with the quality
//! it has *now*.
//!
//! A value keeps the quality decoding gave it (`good`, `sensor-fault`, `out-of-range`) while
//! it is fresh and its device answers. It turns `stale` when it is older than the device's
//! freshness window, and `comm-lost` when the device has missed `comm_lost_after` polls in a
//! row (or its MQTT broker link is down). The table reports every change of value or of
//! quality, so the policy engine sees a device going dark as samples, not as silence.
//!
//! It also follows each device's own state when the device reports it: its `device-uptime`
//! and `reset-reason`, and the reboots its uptime reveals ([`super::reboot`]), for `/status`,
//! `/metrics` and the log.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use firebreak_protocols::{DeviceId, Quality, ResetReason, Sample, Signal, ZoneId};
use serde::Serialize;

use super::reboot::{UptimeWatch, Verdict};
use super::{Event, PollReport};
use crate::config::SiteConfig;

/// Most reboots kept between two [`SignalTable::take_reboots`] (the log's; counts and
/// `/status` are not bounded by it).
const MAX_PENDING_REBOOTS: usize = 256;

/// A device's reboot, as `/status` shows the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reboot {
    /// When the gateway saw it, in ms since the epoch (the wall clock).
    pub at_ms: u64,
    /// Why the device reset (`reset-reason` as a word: `watchdog`, `brown-out` … or the code;
    /// `unknown` when it did not say since it booted).
    pub reason: String,
    /// Its uptime when the gateway saw it back, in seconds.
    pub uptime_s: u64,
}

/// A reboot just seen, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebootEvent {
    /// The device.
    pub device: DeviceId,
    /// What `/status` shows.
    pub reboot: Reboot,
    /// Its uptime at the reading before, in seconds.
    pub before_s: u64,
    /// Time between that reading and this one, in ms (a silence, when long).
    pub gap_ms: u64,
}

/// The word for a `reset-reason` code: its name, the code itself when no reason has it, or
/// `unknown` for something that is not a code at all.
pub fn reason_word(code: f32) -> String {
    match ResetReason::from_code(code) {
        Some(r) => r.name().to_string(),
        None if code.is_finite() => code.to_string(),
        None => ResetReason::Unknown.name().to_string(),
    }
}

/// What the table keeps to judge a device's own readings.
#[derive(Debug, Clone, Default)]
struct DeviceSelf {
    watch: UptimeWatch,
    /// When the reset reason was last read (monotonic ms).
    reason_at_ms: u64,
}

/// Every quality, in the order [`SignalTable::quality_summary`] counts them.
pub const QUALITIES: [Quality; 5] = [
    Quality::Good,
    Quality::Stale,
    Quality::CommLost,
    Quality::SensorFault,
    Quality::OutOfRange,
];

/// A signal's key: device, signal, channel.
pub type Key = (DeviceId, Signal, u8);

#[derive(Debug, Clone)]
struct Entry {
    /// The value, in `unit`.
    value: f32,
    /// The signal's unit.
    unit: firebreak_protocols::Unit,
    /// When it was read.
    timestamp_ms: u64,
    /// The quality decoding gave it.
    quality: Quality,
    /// The quality last reported to the policy.
    reported: Quality,
}

impl Entry {
    /// The sample of `key` with quality `quality`.
    fn sample(&self, key: &Key, quality: Quality) -> Sample {
        Sample {
            device: key.0.clone(),
            signal: key.1,
            channel: key.2,
            value: self.value,
            unit: self.unit,
            timestamp_ms: self.timestamp_ms,
            quality,
        }
    }

    /// Its quality now, given its device's health.
    fn quality(&self, health: Option<&DeviceHealth>, now_ms: u64) -> Quality {
        match health {
            Some(h) if h.comm_lost => Quality::CommLost,
            Some(h) if now_ms.saturating_sub(self.timestamp_ms) > duration_ms(h.freshness) => {
                Quality::Stale
            }
            _ => self.quality,
        }
    }
}

/// What the table knows of one device's link.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceHealth {
    /// The zone.
    pub zone: ZoneId,
    /// `modbus` or `mqtt`.
    pub source: &'static str,
    /// Values older than this are stale.
    #[serde(skip)]
    pub freshness: Duration,
    /// Missed polls in a row before comm-lost.
    pub comm_lost_after: u32,
    /// Missed polls in a row now.
    pub missed: u32,
    /// Whether the device is considered lost.
    pub comm_lost: bool,
    /// Polls (or MQTT messages) so far.
    pub polls: u64,
    /// Errors so far, by kind (`timeout`, `exception`, `malformed` …).
    pub errors: BTreeMap<&'static str, u64>,
    /// The last error, as text.
    pub last_error: Option<String>,
    /// When the device last answered, in ms since the epoch.
    pub last_ok_ms: Option<u64>,
    /// The last poll's duration in ms.
    pub last_latency_ms: Option<f64>,
    /// Sum of poll durations in seconds, for the latency metric.
    #[serde(skip)]
    pub latency_sum_s: f64,
    /// The device's own uptime at its last reading, in seconds (`device-uptime`); `null` for
    /// a device that does not report one.
    pub uptime_s: Option<u64>,
    /// Why the device last reset, as a word (`reset-reason`): `power-on`, `watchdog`,
    /// `software`, `external`, `brown-out`, `unknown`, or the code; `null` when not reported.
    pub reset_reason: Option<String>,
    /// The last reboot seen since the gateway started.
    pub last_reboot: Option<Reboot>,
    /// Reboots seen since the gateway started, by reason.
    pub reboots: BTreeMap<String, u64>,
    #[serde(skip)]
    itself: DeviceSelf,
}

/// The table.
#[derive(Debug, Clone, Default)]
pub struct SignalTable {
    entries: BTreeMap<Key, Entry>,
    devices: BTreeMap<DeviceId, DeviceHealth>,
    lateness: Lateness,
    /// Devices whose link changed (lost: true) since [`SignalTable::take_link_changes`].
    link_changes: Vec<(DeviceId, bool)>,
    /// The first tick: MQTT sources silent since then for their freshness window are lost.
    started_ms: Option<u64>,
    /// Reboots seen since [`SignalTable::take_reboots`].
    reboots: Vec<RebootEvent>,
    /// How much faster than the gateway's clock devices count their uptime (`--time-scale`).
    time_scale: f64,
}

/// Upper bounds (seconds) of the poll lateness histogram's buckets.
pub const LATENESS_BUCKETS_S: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// How late polls start against their schedule, over every Modbus device: a histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lateness {
    /// Polls per bucket of [`LATENESS_BUCKETS_S`] (not cumulative); the last counts the rest.
    pub buckets: [u64; LATENESS_BUCKETS_S.len() + 1],
    /// Polls counted.
    pub count: u64,
    /// Sum of lateness, in seconds.
    pub sum_s: f64,
}

impl Lateness {
    /// Counts one poll.
    pub fn record(&mut self, late: Duration) {
        let s = late.as_secs_f64();
        let i = LATENESS_BUCKETS_S
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(LATENESS_BUCKETS_S.len());
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
        self.count += 1;
        self.sum_s += s;
    }
}

/// One row of [`SignalTable::snapshot`].
#[derive(Debug, Clone, Serialize)]
pub struct SignalView {
    /// The device.
    pub device: String,
    /// The signal.
    pub signal: Signal,
    /// The channel.
    pub channel: u8,
    /// The value; `null` when not a number.
    pub value: Option<f32>,
    /// The unit.
    pub unit: &'static str,
    /// The quality now.
    pub quality: Quality,
    /// Age in milliseconds.
    pub age_ms: u64,
}

impl SignalTable {
    /// An empty table for the devices and sources of `config`.
    pub fn new(config: &SiteConfig) -> SignalTable {
        let mut devices = BTreeMap::new();
        for d in &config.devices {
            devices.insert(
                d.name.clone(),
                DeviceHealth::new(d.zone.clone(), "modbus", d.freshness, d.comm_lost_after),
            );
        }
        for s in &config.mqtt_sources {
            devices.insert(
                s.name.clone(),
                DeviceHealth::new(s.zone.clone(), "mqtt", s.freshness, 1),
            );
        }
        for s in &config.nut_sources {
            devices.insert(
                s.name.clone(),
                DeviceHealth::new(s.zone.clone(), "nut", s.freshness, s.comm_lost_after),
            );
        }
        for s in &config.snmp_sources {
            devices.insert(
                s.name.clone(),
                DeviceHealth::new(s.zone.clone(), "snmp", s.freshness, s.comm_lost_after),
            );
        }
        SignalTable {
            entries: BTreeMap::new(),
            devices,
            lateness: Lateness::default(),
            link_changes: Vec::new(),
            started_ms: None,
            reboots: Vec::new(),
            time_scale: 1.0,
        }
    }

    /// Devices count their uptime `scale` times faster than the gateway's clock: a replay at
    /// `--time-scale` (the HIL rig's devices live in scenario time).
    pub fn set_time_scale(&mut self, scale: f64) {
        self.time_scale = scale;
    }

    /// The reboots seen since the last call, oldest first (at most 256 are kept between two
    /// calls; the counts in [`DeviceHealth::reboots`] miss none).
    pub fn take_reboots(&mut self) -> Vec<RebootEvent> {
        std::mem::take(&mut self.reboots)
    }

    /// The devices whose link changed since the last call: `true` when lost, `false` when
    /// back. The policy needs them for devices with no value to requalify — a device that
    /// never answered since the start is lost too.
    pub fn take_link_changes(&mut self) -> Vec<(DeviceId, bool)> {
        std::mem::take(&mut self.link_changes)
    }

    /// Applies an event; returns the samples whose value or quality changed, with the quality
    /// they have now. `now_ms` is the monotonic clock ([`super::mono_ms`]).
    pub fn apply(&mut self, event: &Event, now_ms: u64) -> Vec<Sample> {
        self.apply_at(event, now_ms, super::now_ms())
    }

    /// [`apply`](Self::apply), with the wall clock's time, which dates the reboots it sees.
    pub fn apply_at(&mut self, event: &Event, now_ms: u64, wall_ms: u64) -> Vec<Sample> {
        match event {
            Event::Poll(report) => {
                let changed = self.apply_poll(report, now_ms);
                self.watch_itself(&report.device, &report.samples, wall_ms);
                changed
            }
            Event::Mqtt {
                device, samples, ..
            } => {
                let Some(h) = self.devices.get_mut(device) else {
                    return Vec::new();
                };
                h.polls += 1;
                h.missed = 0;
                h.last_ok_ms = Some(now_ms);
                let recovered = std::mem::replace(&mut h.comm_lost, false);
                if recovered {
                    self.link_changes.push((device.clone(), false));
                }
                self.watch_itself(device, samples, wall_ms);
                let mut changed = self.store(samples, now_ms);
                if recovered {
                    changed.extend(self.requalify(Some(device), now_ms));
                }
                changed
            }
            Event::MqttMalformed {
                device, problem, ..
            } => {
                if let Some(h) = self.devices.get_mut(device) {
                    *h.errors.entry("malformed").or_default() += 1;
                    h.last_error = Some(problem.clone());
                }
                Vec::new()
            }
            Event::MqttLink { device, up, error } => {
                let Some(h) = self.devices.get_mut(device) else {
                    return Vec::new();
                };
                if *up {
                    return Vec::new();
                }
                if let Some(e) = error {
                    h.last_error = Some(e.clone());
                }
                if !h.comm_lost {
                    self.link_changes.push((device.clone(), true));
                }
                h.comm_lost = true;
                *h.errors.entry("link").or_default() += 1;
                self.requalify(Some(device), now_ms)
            }
        }
    }

    fn apply_poll(&mut self, report: &PollReport, now_ms: u64) -> Vec<Sample> {
        let Some(h) = self.devices.get_mut(&report.device) else {
            return Vec::new();
        };
        h.polls += 1;
        h.last_latency_ms = Some(report.latency.as_secs_f64() * 1000.0);
        h.latency_sum_s += report.latency.as_secs_f64();
        self.lateness.record(report.lateness);
        for e in &report.errors {
            *h.errors.entry(e.kind()).or_default() += 1;
        }
        if let Some(e) = report.errors.last() {
            h.last_error = Some(e.to_string());
        }
        let was_lost = h.comm_lost;
        if report.answered {
            h.missed = 0;
            h.comm_lost = false;
            h.last_ok_ms = Some(report.at_ms);
        } else {
            h.missed = h.missed.saturating_add(1);
            h.comm_lost = h.missed >= h.comm_lost_after;
        }
        if h.comm_lost != was_lost {
            self.link_changes.push((report.device.clone(), h.comm_lost));
        }
        let mut changed = self.store(&report.samples, now_ms);
        changed.extend(self.requalify(Some(&report.device), now_ms));
        changed
    }

    /// Follows what `device` says of itself in `samples` (channel 0, good quality): its reset
    /// reason, its uptime, and a reboot when its uptime says so.
    fn watch_itself(&mut self, device: &DeviceId, samples: &[Sample], wall_ms: u64) {
        let mut uptime = None;
        let mut reason = None;
        for s in samples {
            if s.channel != 0 || s.quality != Quality::Good {
                continue;
            }
            match s.signal {
                Signal::DeviceUptime => uptime = Some(s),
                Signal::ResetReason => reason = Some(s),
                _ => {}
            }
        }
        if uptime.is_none() && reason.is_none() {
            return;
        }
        let Some(h) = self.devices.get_mut(device) else {
            return;
        };
        if let Some(r) = reason {
            h.reset_reason = Some(reason_word(r.value));
            h.itself.reason_at_ms = r.timestamp_ms;
        }
        let Some(u) = uptime else { return };
        let verdict = h
            .itself
            .watch
            .observe_scaled(u.timestamp_ms, u.value, self.time_scale);
        if verdict == Verdict::Ignored {
            return;
        }
        // `as` saturates: a garbage uptime shows as 0 or u64::MAX, never panics.
        let uptime_s = u.value as u64;
        h.uptime_s = Some(uptime_s);
        let Verdict::Rebooted {
            before_s, gap_ms, ..
        } = verdict
        else {
            return;
        };
        // The reason counts only if it was read after the uptime reading before the reboot
        // (with this one, usually): else it is the previous boot's.
        let before_ms = u.timestamp_ms.saturating_sub(gap_ms);
        let reason = match &h.reset_reason {
            Some(r) if h.itself.reason_at_ms > before_ms => r.clone(),
            _ => ResetReason::Unknown.name().to_string(),
        };
        *h.reboots.entry(reason.clone()).or_default() += 1;
        let reboot = Reboot {
            at_ms: wall_ms,
            reason,
            uptime_s,
        };
        h.last_reboot = Some(reboot.clone());
        if self.reboots.len() < MAX_PENDING_REBOOTS {
            self.reboots.push(RebootEvent {
                device: device.clone(),
                reboot,
                before_s: before_s as u64,
                gap_ms,
            });
        }
    }

    fn store(&mut self, samples: &[Sample], now_ms: u64) -> Vec<Sample> {
        let mut changed = Vec::with_capacity(samples.len());
        for s in samples {
            let entry = Entry {
                value: s.value,
                unit: s.unit,
                timestamp_ms: s.timestamp_ms,
                quality: s.quality,
                reported: s.quality,
            };
            let quality = entry.quality(self.devices.get(&s.device), now_ms);
            let key = (s.device.clone(), s.signal, s.channel);
            let value_changed = self
                .entries
                .get(&key)
                .is_none_or(|e| e.value.to_bits() != s.value.to_bits() || e.reported != quality);
            self.entries.insert(
                key,
                Entry {
                    reported: quality,
                    ..entry
                },
            );
            if value_changed {
                changed.push(Sample {
                    quality,
                    ..s.clone()
                });
            }
        }
        changed
    }

    /// Re-evaluates the quality of every entry (of one device, or all) and reports changes.
    /// One device's entries are a contiguous range of the map (keys sort by device first), so
    /// a poll costs its own signals; nothing is allocated but the changes.
    fn requalify(&mut self, only: Option<&DeviceId>, now_ms: u64) -> Vec<Sample> {
        let devices = &self.devices;
        let mut changed = Vec::new();
        let mut check = |key: &Key, e: &mut Entry, health: Option<&DeviceHealth>| {
            let quality = e.quality(health, now_ms);
            if quality != e.reported {
                e.reported = quality;
                changed.push(e.sample(key, quality));
            }
        };
        match only {
            Some(d) => {
                let health = devices.get(d);
                let Some(&first) = Signal::ALL.iter().min() else {
                    return changed;
                };
                for (key, e) in self
                    .entries
                    .range_mut((d.clone(), first, 0)..)
                    .take_while(|(k, _)| &k.0 == d)
                {
                    check(key, e, health);
                }
            }
            None => {
                let mut current: Option<(&DeviceId, Option<&DeviceHealth>)> = None;
                for (key, e) in self.entries.iter_mut() {
                    let health = match current {
                        Some((d, h)) if d == &key.0 => h,
                        _ => {
                            let h = devices.get(&key.0);
                            current = Some((&key.0, h));
                            h
                        }
                    };
                    check(key, e, health);
                }
            }
        }
        changed
    }

    /// Ages the table to `now_ms`: reports values that turned stale.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Sample> {
        let started = *self.started_ms.get_or_insert(now_ms);
        for (d, h) in self.devices.iter_mut() {
            // An MQTT source that never published within its freshness window: as lost as a
            // Modbus device that never answered.
            if h.source == "mqtt"
                && !h.comm_lost
                && h.last_ok_ms.is_none()
                && now_ms.saturating_sub(started) > duration_ms(h.freshness)
            {
                h.comm_lost = true;
                *h.errors.entry("silent").or_default() += 1;
                self.link_changes.push((d.clone(), true));
            }
        }
        self.requalify(None, now_ms)
    }

    /// Every signal with its quality now, ordered by device, signal, channel.
    pub fn snapshot(&self, now_ms: u64) -> Vec<SignalView> {
        self.entries
            .iter()
            .map(|(k, e)| SignalView {
                device: k.0.to_string(),
                signal: k.1,
                channel: k.2,
                value: e.value.is_finite().then_some(e.value),
                unit: e.unit.symbol(),
                quality: e.quality(self.devices.get(&k.0), now_ms),
                age_ms: now_ms.saturating_sub(e.timestamp_ms),
            })
            .collect()
    }

    /// Per device: how many of its signals have each quality (in [`QUALITIES`] order) and the
    /// age of its oldest value. Walks the table once, without allocating per signal.
    pub fn quality_summary(&self, now_ms: u64) -> Vec<(&DeviceId, [u32; 5], u64)> {
        let mut out: Vec<(&DeviceId, [u32; 5], u64)> = Vec::with_capacity(self.devices.len());
        for ((device, _, _), e) in &self.entries {
            if out.last().is_none_or(|(d, _, _)| *d != device) {
                out.push((device, [0; 5], 0));
            }
            if let Some((_, counts, oldest)) = out.last_mut() {
                let q = e.quality(self.devices.get(device), now_ms);
                if let Some(i) = QUALITIES.iter().position(|&x| x == q)
                    && let Some(c) = counts.get_mut(i)
                {
                    *c += 1;
                }
                *oldest = (*oldest).max(now_ms.saturating_sub(e.timestamp_ms));
            }
        }
        out
    }

    /// The current sample of one signal, with its quality now.
    pub fn get(
        &self,
        device: &DeviceId,
        signal: Signal,
        channel: u8,
        now_ms: u64,
    ) -> Option<Sample> {
        let key = (device.clone(), signal, channel);
        let e = self.entries.get(&key)?;
        Some(e.sample(&key, e.quality(self.devices.get(device), now_ms)))
    }

    /// The channels a device has reported, in order, each once (a range of the table: not a
    /// walk over every signal of the site).
    pub fn channels_of(&self, device: &DeviceId) -> Vec<u8> {
        let Some(&first) = Signal::ALL.iter().min() else {
            return Vec::new();
        };
        let mut out: Vec<u8> = self
            .entries
            .range((device.clone(), first, 0)..)
            .take_while(|((d, _, _), _)| d == device)
            .map(|((_, _, c), _)| *c)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every device's link health.
    pub fn devices(&self) -> &BTreeMap<DeviceId, DeviceHealth> {
        &self.devices
    }

    /// How late Modbus polls have started against their schedule.
    pub fn lateness(&self) -> &Lateness {
        &self.lateness
    }

    /// Every current value with its quality now: what a policy engine built afresh (a
    /// reload) is given so it does not wait for the next poll of each device.
    pub fn samples(&self, now_ms: u64) -> Vec<Sample> {
        self.entries
            .iter()
            .map(|(k, e)| e.sample(k, e.quality(self.devices.get(&k.0), now_ms)))
            .collect()
    }

    /// Takes a new configuration's devices and sources (a reload): devices it no longer has
    /// are dropped with their values; new ones start empty; the others keep their values and
    /// counters, with the zone, freshness and loss threshold of the new configuration —
    /// except those in `reset`, whose definition changed (address, profile …): their values
    /// are dropped, since the new task reads them again, and their counters start afresh.
    pub fn reconfigure(&mut self, config: &SiteConfig, reset: &BTreeSet<DeviceId>) {
        let fresh = SignalTable::new(config);
        let mut devices = fresh.devices;
        for (id, h) in devices.iter_mut() {
            if reset.contains(id) {
                continue;
            }
            if let Some(old) = self.devices.remove(id)
                && old.source == h.source
            {
                let (zone, freshness, comm_lost_after) =
                    (h.zone.clone(), h.freshness, h.comm_lost_after);
                *h = old;
                h.zone = zone;
                h.freshness = freshness;
                h.comm_lost_after = comm_lost_after;
            }
        }
        self.entries
            .retain(|k, _| devices.contains_key(&k.0) && !reset.contains(&k.0));
        self.link_changes
            .retain(|(d, _)| devices.contains_key(d) && !reset.contains(d));
        self.devices = devices;
    }
}

impl DeviceHealth {
    fn new(zone: ZoneId, source: &'static str, freshness: Duration, comm_lost_after: u32) -> Self {
        DeviceHealth {
            zone,
            source,
            freshness,
            comm_lost_after,
            missed: 0,
            comm_lost: false,
            polls: 0,
            errors: BTreeMap::new(),
            last_error: None,
            last_ok_ms: None,
            last_latency_ms: None,
            latency_sum_s: 0.0,
            uptime_s: None,
            reset_reason: None,
            last_reboot: None,
            reboots: BTreeMap::new(),
            itself: DeviceSelf::default(),
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lateness_lands_in_its_bucket() {
        let mut l = Lateness::default();
        l.record(Duration::ZERO);
        l.record(Duration::from_millis(15));
        l.record(Duration::from_secs(60));
        assert_eq!(l.buckets[0], 1);
        assert_eq!(l.buckets[4], 1); // <= 20 ms
        assert_eq!(l.buckets[LATENESS_BUCKETS_S.len()], 1);
        assert_eq!(l.count, 3);
        assert!((l.sum_s - 60.015).abs() < 1e-9);
    }

    use super::*;
    use crate::acquire::RequestError;
    use firebreak_protocols::{ReadRequest, Table, Unit};

    const CONFIG: &str = r#"
[site]
name = "s"
gateway = "g"
[[zones]]
name = "z"
[[devices]]
name = "ups"
zone = "z"
transport = "tcp"
address = "127.0.0.1:1"
unit = 1
profile = "generic-ups"
comm_lost_after = 2
freshness_ms = 3000
"#;

    fn table() -> SignalTable {
        SignalTable::new(&SiteConfig::parse(CONFIG, "t").unwrap())
    }

    fn ups() -> DeviceId {
        DeviceId::new("ups").unwrap()
    }

    fn sample(at_ms: u64, value: f32) -> Sample {
        Sample {
            device: ups(),
            signal: Signal::UpsRuntimeRemaining,
            channel: 0,
            value,
            unit: Unit::Seconds,
            timestamp_ms: at_ms,
            quality: Quality::Good,
        }
    }

    fn report(at_ms: u64, samples: Vec<Sample>, answered: bool) -> Event {
        let request = ReadRequest {
            table: Table::Holding,
            start: 0,
            count: 7,
        };
        Event::Poll(PollReport {
            lateness: Duration::ZERO,
            device: ups(),
            at_ms,
            latency: Duration::from_millis(3),
            samples,
            errors: if answered {
                vec![]
            } else {
                vec![RequestError::Timeout {
                    request,
                    timeout_ms: 500,
                }]
            },
            answered,
        })
    }

    #[test]
    fn a_devices_channels_are_the_ones_it_reported() {
        let mut t = table();
        assert!(t.channels_of(&ups()).is_empty());
        let on = |channel, signal| Sample {
            channel,
            signal,
            ..sample(1000, 1.0)
        };
        t.apply(
            &report(
                1000,
                vec![
                    on(2, Signal::UpsRuntimeRemaining),
                    on(0, Signal::UpsLoad),
                    on(2, Signal::UpsLoad),
                ],
                true,
            ),
            1000,
        );
        assert_eq!(t.channels_of(&ups()), vec![0, 2]);
        assert!(t.channels_of(&DeviceId::new("other").unwrap()).is_empty());
    }

    #[test]
    fn a_device_that_never_answered_is_a_link_change() {
        let mut t = table();
        assert!(t.apply(&report(1000, vec![], false), 1000).is_empty());
        assert!(t.take_link_changes().is_empty());
        // No value to requalify, but the link is reported lost, once.
        assert!(t.apply(&report(2000, vec![], false), 2000).is_empty());
        assert_eq!(t.take_link_changes(), vec![(ups(), true)]);
        assert!(t.apply(&report(3000, vec![], false), 3000).is_empty());
        assert!(t.take_link_changes().is_empty());
        t.apply(&report(4000, vec![sample(4000, 420.0)], true), 4000);
        assert_eq!(t.take_link_changes(), vec![(ups(), false)]);
    }

    #[test]
    fn values_age_to_stale_and_device_loss_is_comm_lost() {
        let mut t = table();
        let changed = t.apply(&report(1000, vec![sample(1000, 420.0)], true), 1000);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].quality, Quality::Good);
        // Same value again: nothing new to report.
        assert!(
            t.apply(&report(2000, vec![sample(2000, 420.0)], true), 2000)
                .is_empty()
        );
        assert!(t.tick(4000).is_empty());
        let stale = t.tick(5001);
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].quality, Quality::Stale);
        // One missed poll: not yet lost. Two: comm-lost, reported once.
        assert!(t.apply(&report(6000, vec![], false), 6000).is_empty());
        let lost = t.apply(&report(7000, vec![], false), 7000);
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].quality, Quality::CommLost);
        assert_eq!(lost[0].value, 420.0, "the last value is kept for display");
        assert!(t.devices()[&ups()].comm_lost);
        assert_eq!(t.devices()[&ups()].errors["timeout"], 2);
        // Recovery: a fresh value is good again.
        let back = t.apply(&report(8000, vec![sample(8000, 400.0)], true), 8000);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].quality, Quality::Good);
        assert_eq!(
            t.get(&ups(), Signal::UpsRuntimeRemaining, 0, 8000)
                .unwrap()
                .value,
            400.0
        );
    }

    #[test]
    fn an_exception_answer_is_not_comm_lost() {
        let mut t = table();
        t.apply(&report(1000, vec![sample(1000, 420.0)], true), 1000);
        let request = ReadRequest {
            table: Table::Holding,
            start: 0,
            count: 7,
        };
        let exception = Event::Poll(PollReport {
            lateness: Duration::ZERO,
            device: ups(),
            at_ms: 2000,
            latency: Duration::from_millis(1),
            samples: vec![],
            errors: vec![RequestError::Exception { request, code: 2 }],
            answered: true,
        });
        for at in [2000, 3000, 4000] {
            t.apply(&exception, at);
        }
        let h = &t.devices()[&ups()];
        assert!(!h.comm_lost);
        assert_eq!(h.errors["exception"], 3);
        assert_eq!(
            h.last_error.as_deref(),
            Some("03 holding 0..7: exception 0x02 (illegal data address)")
        );
        // The value was not refreshed: it goes stale, not comm-lost.
        assert_eq!(t.snapshot(4001)[0].quality, Quality::Stale);
    }

    #[test]
    fn decoded_faults_keep_their_quality() {
        let mut t = table();
        let mut s = sample(1000, 65535.0);
        s.quality = Quality::SensorFault;
        let changed = t.apply(&report(1000, vec![s], true), 1000);
        assert_eq!(changed[0].quality, Quality::SensorFault);
    }
}

#[cfg(test)]
mod reboot_tests {
    use super::*;
    use crate::acquire::RequestError;
    use firebreak_protocols::{ReadRequest, Table};

    const CONFIG: &str = r#"
[site]
name = "s"
gateway = "g"
[[zones]]
name = "z"
[[devices]]
name = "node"
zone = "z"
transport = "tcp"
address = "127.0.0.1:1"
unit = 1
profile = "firebreak-sensor-node"
comm_lost_after = 2
[[devices]]
name = "ups"
zone = "z"
transport = "tcp"
address = "127.0.0.1:2"
unit = 1
profile = "generic-ups"
"#;

    const WALL: u64 = 1_700_000_000_000;

    fn table() -> SignalTable {
        SignalTable::new(&SiteConfig::parse(CONFIG, "t").unwrap())
    }

    fn node() -> DeviceId {
        DeviceId::new("node").unwrap()
    }

    fn sample(signal: Signal, value: f32, at_ms: u64) -> Sample {
        Sample {
            device: node(),
            signal,
            channel: 0,
            value,
            unit: signal.unit(),
            timestamp_ms: at_ms,
            quality: Quality::Good,
        }
    }

    /// A poll of the node at `at_s` seconds answering `uptime` and `reason` (when given).
    fn poll(at_s: u64, uptime: Option<f32>, reason: Option<f32>) -> Event {
        let at_ms = at_s * 1000;
        let mut samples = vec![sample(Signal::RackTemperature, 24.0, at_ms)];
        samples.extend(uptime.map(|u| sample(Signal::DeviceUptime, u, at_ms)));
        samples.extend(reason.map(|r| sample(Signal::ResetReason, r, at_ms)));
        Event::Poll(PollReport {
            device: node(),
            at_ms,
            latency: Duration::from_millis(5),
            lateness: Duration::ZERO,
            samples,
            errors: vec![],
            answered: true,
        })
    }

    fn silent(at_s: u64) -> Event {
        Event::Poll(PollReport {
            device: node(),
            at_ms: at_s * 1000,
            latency: Duration::from_millis(500),
            lateness: Duration::ZERO,
            samples: vec![],
            errors: vec![RequestError::Timeout {
                request: ReadRequest {
                    table: Table::Input,
                    start: 0,
                    count: 12,
                },
                timeout_ms: 500,
            }],
            answered: false,
        })
    }

    /// Polls the node every second from `from_s` to `to_s`, up since `boot_s`, with `reason`.
    fn run(t: &mut SignalTable, from_s: u64, to_s: u64, boot_s: u64, reason: f32) {
        for s in from_s..=to_s {
            let e = poll(s, Some((s - boot_s) as f32), Some(reason));
            t.apply_at(&e, s * 1000, WALL + s * 1000);
        }
    }

    fn health(t: &SignalTable) -> &DeviceHealth {
        &t.devices()[&node()]
    }

    #[test]
    fn an_uptime_that_goes_back_is_one_reboot_with_its_reason() {
        let mut t = table();
        // Up since t = 0 after a power-on; the gateway starts reading at t = 1000 s.
        run(&mut t, 1000, 1010, 0, 0.0);
        assert!(
            t.take_reboots().is_empty(),
            "the first reading is not a reboot"
        );
        let h = health(&t);
        assert_eq!(h.uptime_s, Some(1010));
        assert_eq!(h.reset_reason.as_deref(), Some("power-on"));
        assert_eq!((h.last_reboot.as_ref(), h.reboots.len()), (None, 0));

        // The watchdog bites at t = 1010.5; the node answers again at 1011 s, up 0 s.
        run(&mut t, 1011, 1015, 1011, 1.0);
        let reboots = t.take_reboots();
        assert_eq!(reboots.len(), 1, "{reboots:?}");
        let r = &reboots[0];
        assert_eq!(r.device, node());
        assert_eq!(
            r.reboot,
            Reboot {
                at_ms: WALL + 1_011_000,
                reason: "watchdog".into(),
                uptime_s: 0,
            }
        );
        assert_eq!((r.before_s, r.gap_ms), (1010, 1000));
        let h = health(&t);
        assert_eq!(h.last_reboot.as_ref(), Some(&r.reboot));
        assert_eq!(h.reboots, BTreeMap::from([("watchdog".to_string(), 1)]));
        assert_eq!(h.uptime_s, Some(4));
        assert_eq!(h.reset_reason.as_deref(), Some("watchdog"));
        // The UPS reports no uptime: nothing of this for it.
        let ups = &t.devices()[&DeviceId::new("ups").unwrap()];
        assert_eq!((ups.uptime_s, &ups.reset_reason), (None, &None));

        // In /status: the shape technicians read.
        let json = serde_json::to_value(health(&t)).unwrap();
        assert_eq!(json["uptime_s"], 4);
        assert_eq!(json["reset_reason"], "watchdog");
        assert_eq!(json["last_reboot"]["reason"], "watchdog");
        assert_eq!(json["last_reboot"]["uptime_s"], 0);
        assert_eq!(json["last_reboot"]["at_ms"], WALL + 1_011_000);
        assert_eq!(json["reboots"]["watchdog"], 1);
    }

    #[test]
    fn a_node_back_from_a_silence_with_a_short_uptime_rebooted() {
        let mut t = table();
        run(&mut t, 100, 110, 0, 0.0);
        // Silent for a minute (a brown-out): comm-lost, then back, up 20 s, reason brown-out.
        for s in 111..=170 {
            t.apply_at(&silent(s), s * 1000, WALL + s * 1000);
        }
        assert!(health(&t).comm_lost);
        run(&mut t, 171, 172, 151, 4.0);
        let reboots = t.take_reboots();
        assert_eq!(reboots.len(), 1, "{reboots:?}");
        assert_eq!(reboots[0].reboot.reason, "brown-out");
        assert_eq!(reboots[0].reboot.uptime_s, 20);
        assert_eq!(reboots[0].gap_ms, 61_000);
        assert!(!health(&t).comm_lost);

        // A network cut instead: back with the uptime the silence explains — no reboot.
        let mut t = table();
        run(&mut t, 100, 110, 0, 0.0);
        for s in 111..=170 {
            t.apply_at(&silent(s), s * 1000, WALL + s * 1000);
        }
        run(&mut t, 171, 175, 0, 0.0);
        assert!(t.take_reboots().is_empty());
        assert_eq!(health(&t).last_reboot, None);
        assert_eq!(health(&t).uptime_s, Some(175));
    }

    #[test]
    fn a_reason_from_before_the_boot_is_not_its_reason() {
        let mut t = table();
        run(&mut t, 100, 110, 0, 1.0);
        // Back with a short uptime, but the reset reason was not read this time.
        let e = poll(111, Some(0.0), None);
        t.apply_at(&e, 111_000, WALL + 111_000);
        let reboots = t.take_reboots();
        assert_eq!(reboots.len(), 1);
        assert_eq!(reboots[0].reboot.reason, "unknown");
        // A code no reason has is shown as the code.
        run(&mut t, 112, 115, 111, 9.0);
        assert_eq!(health(&t).reset_reason.as_deref(), Some("9"));
        run(&mut t, 116, 117, 116, 9.0);
        assert_eq!(t.take_reboots()[0].reboot.reason, "9");
        assert_eq!(
            health(&t).reboots,
            BTreeMap::from([("unknown".to_string(), 1), ("9".to_string(), 1)])
        );
    }

    #[test]
    fn garbage_uptimes_do_not_panic_and_are_not_reboots() {
        let mut t = table();
        run(&mut t, 100, 110, 0, 0.0);
        for (i, v) in [f32::NAN, f32::INFINITY, -5.0, f32::MAX, 4.0e9, 3.0, 1e-30]
            .into_iter()
            .enumerate()
        {
            let s = 111 + i as u64;
            let e = poll(s, Some(v), Some(f32::NAN));
            t.apply_at(&e, s * 1000, WALL + s * 1000);
        }
        // 3.0 after garbage: the garbage was never confirmed as the uptime, so no reboot.
        assert!(t.take_reboots().is_empty());
        assert_eq!(health(&t).reset_reason.as_deref(), Some("unknown"));
        // A sensor-fault quality uptime is not read at all.
        let mut e = poll(200, Some(0.0), Some(1.0));
        if let Event::Poll(r) = &mut e {
            for s in &mut r.samples {
                s.quality = Quality::SensorFault;
            }
        }
        t.apply_at(&e, 200_000, WALL + 200_000);
        assert!(t.take_reboots().is_empty());
    }
}
