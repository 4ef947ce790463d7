//! The policy engine: samples in, level transitions out. No I/O and no clock.
//!
//! - `evidence`: witnesses (failure groups and physics) and how many independent ones agree;
//! - `plausibility`: readings that change faster than their physics allows, rails, flaps;
//! - `power`: each UPS's outlook and the time to power loss;
//! - `evaluate`: which rules fire and hold in a zone;
//! - `settle`: levels, holds, the site and the incident;
//! - `explain`: the reasons behind a level.

use std::collections::HashMap;

use firebreak_protocols::series::{Debounce, Hysteresis, RateOfRise};
use firebreak_protocols::{
    DeviceId, GatewayId, IncidentId, Level, Quality, Reason, Sample, Signal, SiteId, ZoneId,
};

use super::rules::{RATE_POINTS, RuleKind, Rules};

mod common_mode;
mod evaluate;
mod evidence;
mod explain;
mod maintenance;
mod plausibility;
mod power;
mod settle;

use evidence::{ALL_CHANNELS, Physics, WitnessKey, Witnesses};
pub use explain::describe;
pub use plausibility::FaultKind;
use plausibility::Plausibility;
use power::{UPS_SIGNALS, Ups};

/// Default seconds the controllers need to move traffic out of a site.
pub const DEFAULT_EVACUATION_BUDGET_S: u32 = 300;
/// Default seconds added to the budget, for delivery and estimation error.
pub const DEFAULT_MARGIN_S: u32 = 60;
/// Default seconds a level is held after its cause cleared.
pub const DEFAULT_HOLD_S: u32 = 300;

/// Rules plus the site's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The rules.
    pub rules: Rules,
    /// Seconds the controllers need to move traffic (their evacuation budget).
    pub evacuation_budget_s: u32,
    /// Seconds added to the budget before `power-budget` rules fire.
    pub margin_s: u32,
    /// A level is lowered only after its cause has been absent this long, in milliseconds.
    pub hold_ms: u64,
}

impl Policy {
    /// The built-in rules with the default budget, margin and hold.
    pub fn default_policy() -> Result<Policy, crate::config::ConfigError> {
        Ok(Policy {
            rules: Rules::default_rules()?,
            evacuation_budget_s: DEFAULT_EVACUATION_BUDGET_S,
            margin_s: DEFAULT_MARGIN_S,
            hold_ms: u64::from(DEFAULT_HOLD_S) * 1000,
        })
    }

    /// Seconds to power loss at or below which `power-budget` rules fire.
    pub fn power_threshold_s(&self) -> f32 {
        (self.evacuation_budget_s + self.margin_s) as f32
    }
}

/// The zones and devices the engine judges: which zone each device is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The site.
    pub site: SiteId,
    /// The gateway: incident ids start with it.
    pub gateway: GatewayId,
    /// The zones.
    pub zones: Vec<ZoneId>,
    /// Every device and its zone.
    pub devices: Vec<(DeviceId, ZoneId)>,
    /// What each device fails together with, where the site configuration says more than the
    /// default (the device alone is one witness, its channels together).
    pub witnesses: Vec<(DeviceId, Witness)>,
}

/// What a device's readings fail together with (docs/policy.md, "Evidence").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Witness {
    /// Its failure group: devices of one group count as one witness. `None`: the device alone.
    pub group: Option<String>,
    /// The site says the device's channels are independent witnesses (separately wired and
    /// powered probes); by default two channels of one device are one witness.
    pub independent_channels: bool,
}

impl Topology {
    /// The topology of a site configuration: its Modbus devices and MQTT sources.
    pub fn from_config(c: &crate::config::SiteConfig) -> Topology {
        Topology {
            site: c.site.clone(),
            gateway: c.gateway.clone(),
            zones: c.zones.clone(),
            devices: c
                .all_devices()
                .into_iter()
                .map(|(d, z, _)| (d.clone(), z.clone()))
                .collect(),
            witnesses: c
                .all_devices()
                .into_iter()
                .map(|(d, _, w)| (d.clone(), w.clone()))
                .filter(|(_, w)| *w != Witness::default())
                .collect(),
        }
    }
}

/// A change of level of the site or of one zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The zone, or `None` for the site.
    pub zone: Option<ZoneId>,
    /// The new level.
    pub level: Level,
    /// The level before.
    pub previous: Level,
    /// The rules behind the new level, strongest first (for a lowering: what still holds).
    pub reasons: Vec<Reason>,
    /// Estimated seconds to power loss, where the evidence supports one.
    pub seconds_to_power_loss: Option<u32>,
    /// When, on the engine's clock.
    pub at_ms: u64,
    /// The incident: from the site leaving `normal` to its return.
    pub incident: IncidentId,
}

/// Counters of what the engine could not use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Samples taken in.
    pub samples: u64,
    /// Samples from devices outside the topology, ignored.
    pub unknown_device: u64,
    /// Steps whose clock went backwards, treated as no time passing.
    pub clock_backwards: u64,
    /// Good samples judged implausible (not evidence).
    pub implausible: u64,
    /// Samples of devices or channels under maintenance, not evidence.
    pub maintenance: u64,
}

/// A reading the engine judged not to be evidence, for a technician: `/status`, the log, and
/// the `sensor-fault` rule's reasons.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorFault {
    /// The device.
    pub device: DeviceId,
    /// Its zone.
    pub zone: ZoneId,
    /// The signal.
    pub signal: Signal,
    /// The channel.
    pub channel: u8,
    /// Why.
    pub kind: FaultKind,
    /// The value judged.
    pub value: f32,
    /// What it was judged against: the reading before a jump, the rail it crossed.
    pub reference: f32,
    /// Since when, on the engine's clock.
    pub since_ms: u64,
}

/// What one sensor tells one rule.
#[derive(Debug, Clone)]
enum Detector {
    Band(Hysteresis),
    Rate(Box<RateOfRise<RATE_POINTS>>, Hysteresis),
    State,
}

/// Why a sensor that was firing stopped being evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lost {
    /// Its device went silent, or its value stale.
    Silent,
    /// Its device reported a sensor fault or an out-of-range value.
    Faulty,
    /// Its reading became implausible.
    Implausible,
}

#[derive(Debug, Clone)]
struct Watch {
    detector: Detector,
    /// Good, plausible evidence past the trip point now.
    fired: bool,
    /// Was fired, then stopped being evidence: holds a level, never raises one.
    lost: Option<Lost>,
    /// The value the rule compared (the rate, for rate rules).
    value: f32,
    /// When it last became fired.
    since_ms: u64,
}

/// One (device, signal, channel).
#[derive(Debug, Clone)]
struct Source {
    device: usize,
    channel: u8,
    signal: Signal,
    witness: WitnessKey,
    physics: Physics,
    check: Plausibility,
    /// Its latest sample's quality is `sensor-fault` or `out-of-range`.
    reported_fault: bool,
    /// Its latest good value, plausible or not.
    last: Option<f32>,
    watches: Vec<Watch>,
    /// Under maintenance: its readings are not evidence and it is no witness
    /// ([`Engine::set_maintenance`]).
    out: bool,
}

impl Source {
    fn fault(&self) -> Option<(FaultKind, f32, f32, u64)> {
        match self.check.fault() {
            Some(f) => Some((f.kind, f.value, f.reference, f.since_ms)),
            None if self.reported_fault => Some((FaultKind::Reported, f32::NAN, f32::NAN, 0)),
            None => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Device {
    id: DeviceId,
    zone: usize,
    comm_lost: bool,
    /// Since when it has been silent.
    lost_since: u64,
    group: u32,
    independent_channels: bool,
    ups: Option<Ups>,
    /// Its rack temperature channels, for the common-mode check.
    heat_sources: Vec<usize>,
    /// Its probes moved together: its kinds of evidence are one witness.
    common_mode: Option<common_mode::CommonMode>,
    /// The whole device is under maintenance.
    out_all: bool,
    /// These channels of it are under maintenance.
    out_channels: Vec<u8>,
}

impl Device {
    fn set_lost(&mut self, lost: bool, now_ms: u64) {
        if lost && !self.comm_lost {
            self.lost_since = now_ms;
        }
        self.comm_lost = lost;
    }

    /// Whether its readings on `channel` are under maintenance.
    fn out(&self, channel: u8) -> bool {
        self.out_all || self.out_channels.contains(&channel)
    }

    /// Whether it is silent and counts as such: a device under maintenance is not watched.
    fn link_lost(&self) -> bool {
        self.comm_lost && !self.out_all
    }

    fn witness(&self, channel: u8) -> WitnessKey {
        if self.independent_channels {
            (self.group, u16::from(channel))
        } else {
            (self.group, ALL_CHANNELS)
        }
    }
}

#[derive(Debug, Clone)]
struct Instance {
    debounce: Debounce,
    active: bool,
    latched: bool,
    holding: bool,
    /// Since when it has been holding.
    since_ms: u64,
    /// Holding on evidence whose sensors went silent or faulty.
    lost: bool,
    /// The witnesses behind it while active, and while holding.
    active_w: Witnesses,
    held_w: Witnesses,
}

#[derive(Debug, Clone)]
struct Zone {
    id: ZoneId,
    level: Level,
    /// Per level above normal (watch, prepare, evacuate): since when nothing holds it.
    clear_since: [Option<u64>; 3],
    instances: Vec<Instance>,
    /// Per rule: (source, watch) pairs of the zone's sensors for that rule.
    watches: Vec<Vec<(usize, usize)>>,
    devices: Vec<usize>,
    /// Its sources, for the checks that look at a zone's other readings.
    sources: Vec<usize>,
    estimate_s: Option<f32>,
}

/// The deterministic policy engine. See the module documentation of [`crate::policy`].
#[derive(Debug, Clone)]
pub struct Engine {
    policy: Policy,
    site: SiteId,
    gateway: GatewayId,
    zones: Vec<Zone>,
    devices: Vec<Device>,
    device_index: HashMap<DeviceId, usize>,
    sources: Vec<Source>,
    source_index: HashMap<(usize, Signal, u8), usize>,
    /// Per signal: the leaf rules that read it.
    rules_by_signal: HashMap<Signal, Vec<usize>>,
    /// Sources with a fault now (few): reviewed every step.
    faulted: Vec<usize>,
    /// Faults that began since [`Engine::drain_fault_events`] was last called (at most 256).
    fault_events: Vec<SensorFault>,
    site_level: Level,
    incident: Option<IncidentId>,
    last_ms: u64,
    stats: EngineStats,
}

/// How long after going on battery a UPS may change its runtime estimate at once.
const RECALCULATION_MS: u64 = 60_000;

/// Most fault events kept between two drains.
const MAX_FAULT_EVENTS: usize = 256;

impl Engine {
    /// An engine at `normal` everywhere.
    pub fn new(policy: Policy, topology: &Topology) -> Engine {
        let mut zones: Vec<Zone> = Vec::new();
        let zone_of = |z: &ZoneId, zones: &mut Vec<Zone>| -> usize {
            if let Some(i) = zones.iter().position(|o| &o.id == z) {
                return i;
            }
            zones.push(Zone {
                id: z.clone(),
                level: Level::Normal,
                clear_since: [None; 3],
                instances: policy
                    .rules
                    .rules
                    .iter()
                    .map(|r| Instance {
                        debounce: Debounce::new(r.for_ms, 0),
                        active: false,
                        latched: false,
                        holding: false,
                        since_ms: 0,
                        lost: false,
                        active_w: Witnesses::default(),
                        held_w: Witnesses::default(),
                    })
                    .collect(),
                watches: vec![Vec::new(); policy.rules.rules.len()],
                devices: Vec::new(),
                sources: Vec::new(),
                estimate_s: None,
            });
            zones.len() - 1
        };
        for z in &topology.zones {
            zone_of(z, &mut zones);
        }
        let mut groups: Vec<String> = Vec::new();
        let mut devices = Vec::new();
        let mut device_index = HashMap::new();
        for (d, z) in &topology.devices {
            if device_index.contains_key(d) {
                continue;
            }
            let spec = topology
                .witnesses
                .iter()
                .find(|(w, _)| w == d)
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            let name = spec.group.unwrap_or_else(|| d.to_string());
            let group = match groups.iter().position(|g| *g == name) {
                Some(i) => i,
                None => {
                    groups.push(name);
                    groups.len() - 1
                }
            } as u32;
            let zone = zone_of(z, &mut zones);
            device_index.insert(d.clone(), devices.len());
            if let Some(zn) = zones.get_mut(zone) {
                zn.devices.push(devices.len());
            }
            devices.push(Device {
                id: d.clone(),
                zone,
                comm_lost: false,
                lost_since: 0,
                group,
                independent_channels: spec.independent_channels,
                ups: None,
                heat_sources: Vec::new(),
                common_mode: None,
                out_all: false,
                out_channels: Vec::new(),
            });
        }
        let mut rules_by_signal: HashMap<Signal, Vec<usize>> = HashMap::new();
        for (i, r) in policy.rules.rules.iter().enumerate() {
            if let Some(s) = r.kind.signal() {
                rules_by_signal.entry(s).or_default().push(i);
            }
        }
        Engine {
            policy,
            site: topology.site.clone(),
            gateway: topology.gateway.clone(),
            zones,
            devices,
            device_index,
            sources: Vec::new(),
            source_index: HashMap::new(),
            rules_by_signal,
            faulted: Vec::new(),
            fault_events: Vec::new(),
            site_level: Level::Normal,
            incident: None,
            last_ms: 0,
            stats: EngineStats::default(),
        }
    }

    /// The policy it runs.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The site it judges.
    pub fn site(&self) -> &SiteId {
        &self.site
    }

    /// The site's level.
    pub fn site_level(&self) -> Level {
        self.site_level
    }

    /// Each zone's level.
    pub fn zone_levels(&self) -> impl Iterator<Item = (&ZoneId, Level)> {
        self.zones.iter().map(|z| (&z.id, z.level))
    }

    /// The open incident, if the site is above `normal`.
    pub fn incident(&self) -> Option<&IncidentId> {
        self.incident.as_ref()
    }

    /// The estimated seconds to power loss of the site, where there is evidence for one.
    pub fn seconds_to_power_loss(&self) -> Option<u32> {
        min_estimate(self.zones.iter().filter_map(|z| z.estimate_s))
    }

    /// What the engine could not use.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// The ids of the rules firing now in a zone.
    pub fn firing(&self, zone: &str) -> Vec<&str> {
        self.zones
            .iter()
            .filter(|z| z.id.as_str() == zone)
            .flat_map(|z| {
                z.instances
                    .iter()
                    .zip(&self.policy.rules.rules)
                    .filter(|(i, _)| i.active)
                    .map(|(_, r)| r.id.as_str())
            })
            .collect()
    }

    /// The reasons behind a zone's level now, with their values and thresholds, strongest
    /// first (what a trigger raising it to this level would carry); empty at `normal` and for
    /// a zone it does not know.
    pub fn reasons(&self, zone: &str) -> Vec<Reason> {
        self.zones
            .iter()
            .enumerate()
            .find(|(_, z)| z.id.as_str() == zone)
            .map(|(i, z)| self.zone_reasons(i, z.level))
            .unwrap_or_default()
    }

    /// The readings judged faulty now, by device, signal and channel.
    pub fn sensor_faults(&self) -> Vec<SensorFault> {
        let mut out: Vec<SensorFault> = self
            .faulted
            .iter()
            .filter_map(|&i| self.sensor_fault(i))
            .collect();
        out.sort_by(|a, b| {
            (a.device.as_str(), a.signal, a.channel).cmp(&(b.device.as_str(), b.signal, b.channel))
        });
        out
    }

    /// The faults that began since the last call, oldest first, for the log.
    pub fn drain_fault_events(&mut self) -> Vec<SensorFault> {
        std::mem::take(&mut self.fault_events)
    }

    /// Marks a device's link: lost (it has not answered: also a device that never answered
    /// since the start) or back. Its samples say the same when it has any; this is for the
    /// devices that never gave one.
    pub fn set_link(&mut self, device: &DeviceId, lost: bool) {
        if let Some(dev) = self
            .device_index
            .get(device)
            .and_then(|&d| self.devices.get_mut(d))
        {
            dev.set_lost(lost, self.last_ms);
        }
    }

    /// Resumes from the levels the controllers were last told (the outbox's latest trigger of
    /// each scope, across a restart): each scope starts at its level, in its incident, and
    /// holds it until `grace_ms` (time to read every device again) plus the hold time have
    /// passed with nothing holding it. A level whose cause is gone is then lowered with a
    /// normal lowering transition (`previous` = the resumed level); a level whose cause
    /// persists is kept, never raised again from `normal`. Scopes the engine does not know
    /// are ignored.
    pub fn resume(
        &mut self,
        levels: &[(Option<ZoneId>, Level, IncidentId)],
        now_ms: u64,
        grace_ms: u64,
    ) {
        let until = now_ms.saturating_add(grace_ms);
        for (zone, level, incident) in levels {
            if *level == Level::Normal {
                continue;
            }
            match zone {
                Some(z) => {
                    if let Some(zn) = self.zones.iter_mut().find(|zn| &zn.id == z) {
                        zn.level = *level;
                        for (lvl, since) in [Level::Watch, Level::Prepare, Level::Evacuate]
                            .into_iter()
                            .zip(zn.clear_since.iter_mut())
                        {
                            if lvl <= *level {
                                *since = Some(until);
                            }
                        }
                    }
                }
                None => {
                    self.site_level = *level;
                    self.incident = Some(incident.clone());
                }
            }
        }
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// Takes in `samples` and advances the engine to `now_ms`; returns the level changes, zones
    /// first, then the site. Call it with no samples to let time pass.
    pub fn step(&mut self, now_ms: u64, samples: &[Sample]) -> Vec<Transition> {
        let now_ms = if now_ms < self.last_ms {
            self.stats.clock_backwards += 1;
            self.last_ms
        } else {
            now_ms
        };
        self.last_ms = now_ms;
        for s in samples {
            self.take(now_ms, s);
        }
        self.review_faults(now_ms);
        let mut out = Vec::new();
        for z in 0..self.zones.len() {
            self.evaluate_zone(z, now_ms);
            self.settle_zone(z, now_ms, &mut out);
        }
        self.settle_site(now_ms, &mut out);
        out
    }

    fn take(&mut self, now_ms: u64, s: &Sample) {
        // A device's own uptime and reset reason say nothing about the site: no rule reads
        // them (the rules refuse them), and they are not judged for plausibility, so they can
        // never raise `sensor-fault` either. The acquisition table watches them for reboots.
        if s.signal.is_diagnostic() {
            return;
        }
        self.stats.samples += 1;
        let Some(&d) = self.device_index.get(&s.device) else {
            self.stats.unknown_device += 1;
            return;
        };
        if let Some(dev) = self.devices.get_mut(d) {
            // A device under maintenance is still followed (silent or not, for when it
            // ends); a channel under maintenance says nothing, not even that much.
            let out = dev.out(s.channel);
            if dev.out_all || !out {
                dev.set_lost(s.quality == Quality::CommLost, now_ms);
            }
            if out {
                self.stats.maintenance += 1;
                return;
            }
        }
        let src = self.source(d, s.signal, s.channel);
        let was = self.fault_of(src).map(|f| f.0);
        let recalculating = s.signal == Signal::UpsRuntimeRemaining
            && self
                .devices
                .get(d)
                .and_then(|dev| dev.ups.as_ref())
                .is_some_and(|u| u.just_on_battery(now_ms, RECALCULATION_MS));
        let Some(source) = self.sources.get_mut(src) else {
            return;
        };
        let lost = match s.quality {
            Quality::Good if s.value.is_finite() => None,
            Quality::Good | Quality::SensorFault | Quality::OutOfRange => Some(Lost::Faulty),
            _ => Some(Lost::Silent),
        };
        if !matches!(s.quality, Quality::CommLost | Quality::Stale) {
            source.reported_fault = lost == Some(Lost::Faulty);
        }
        let lost = match lost {
            None => {
                source.last = Some(s.value);
                if recalculating {
                    source.check.restart(now_ms, s.value);
                }
                if source.check.check(now_ms, s.value) {
                    None
                } else {
                    self.stats.implausible += 1;
                    Some(Lost::Implausible)
                }
            }
            other => other,
        };
        self.apply(src, now_ms, s.value, lost);
        self.note_fault(src, was);
    }

    /// The source of (device, signal, channel), made on first sight.
    fn source(&mut self, d: usize, signal: Signal, channel: u8) -> usize {
        let key = (d, signal, channel);
        if let Some(&i) = self.source_index.get(&key) {
            return i;
        }
        let i = self.sources.len();
        let (zone, witness, out) = self
            .devices
            .get(d)
            .map_or((0, (0, ALL_CHANNELS), false), |dev| {
                (dev.zone, dev.witness(channel), dev.out(channel))
            });
        let rules = self
            .rules_by_signal
            .get(&signal)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut watches = Vec::with_capacity(rules.len());
        for &r in rules {
            let Some(rule) = self.policy.rules.rules.get(r) else {
                continue;
            };
            let detector = match &rule.kind {
                RuleKind::Threshold { band, .. } | RuleKind::Share { band, .. } => {
                    Detector::Band(*band)
                }
                RuleKind::Rate {
                    band, window_ms, ..
                } => Detector::Rate(Box::new(RateOfRise::new(*window_ms, *window_ms / 3)), *band),
                _ => Detector::State,
            };
            if let Some(z) = self.zones.get_mut(zone)
                && let Some(list) = z.watches.get_mut(r)
            {
                list.push((i, watches.len()));
            }
            watches.push(Watch {
                detector,
                fired: false,
                lost: None,
                value: f32::NAN,
                since_ms: 0,
            });
        }
        if signal == Signal::RackTemperature
            && let Some(dev) = self.devices.get_mut(d)
        {
            dev.heat_sources.push(i);
        }
        if let Some(z) = self.zones.get_mut(zone) {
            z.sources.push(i);
        }
        self.sources.push(Source {
            device: d,
            channel,
            signal,
            witness,
            physics: Physics::of(signal),
            check: Plausibility::new(signal),
            reported_fault: false,
            last: None,
            watches,
            out,
        });
        self.source_index.insert(key, i);
        i
    }

    /// Hands one reading to the UPS estimate and the rules' detectors; `lost` says why it is
    /// not evidence, if it is not.
    fn apply(&mut self, src: usize, now_ms: u64, value: f32, lost: Option<Lost>) {
        let Some(source) = self.sources.get_mut(src) else {
            return;
        };
        if UPS_SIGNALS.contains(&source.signal)
            && let Some(dev) = self.devices.get_mut(source.device)
        {
            dev.ups.get_or_insert_with(Ups::default).take(
                now_ms,
                source.signal,
                value,
                lost.is_none(),
            );
        }
        for w in &mut source.watches {
            if let Some(why) = lost {
                if w.fired || w.lost.is_some() {
                    w.lost = Some(why);
                }
                w.fired = false;
                if why != Lost::Implausible
                    && let Detector::Rate(r, band) = &mut w.detector
                {
                    // A gap in the evidence: the rate starts again from good values.
                    r.clear();
                    band.reset();
                }
                continue;
            }
            w.lost = None;
            let was_fired = w.fired;
            match &mut w.detector {
                Detector::Band(band) => {
                    w.fired = band.update(value);
                    w.value = value;
                }
                Detector::Rate(rate, band) => {
                    rate.push(now_ms, value);
                    match rate.per_minute() {
                        Some(r) => {
                            w.fired = band.update(r);
                            w.value = r;
                        }
                        None => w.fired = false,
                    }
                }
                Detector::State => {
                    w.fired = value >= 0.5;
                    w.value = value;
                }
            }
            if w.fired && !was_fired {
                w.since_ms = now_ms;
            }
        }
    }

    /// Keeps the faulted list and the fault events up to date after `src` changed.
    fn note_fault(&mut self, src: usize, was: Option<FaultKind>) {
        let now = self.fault_of(src).map(|f| f.0);
        if now.is_some() && !self.faulted.contains(&src) {
            self.faulted.push(src);
        }
        if now.is_some()
            && now != was
            && self.fault_events.len() < MAX_FAULT_EVENTS
            && let Some(f) = self.sensor_fault(src)
        {
            self.fault_events.push(f);
        }
    }

    /// A source's fault: its own, or its part in its device's common mode.
    fn fault_of(&self, src: usize) -> Option<(FaultKind, f32, f32, u64)> {
        self.sources
            .get(src)
            .and_then(Source::fault)
            .or_else(|| self.common_fault(src))
    }

    fn sensor_fault(&self, src: usize) -> Option<SensorFault> {
        let s = self.sources.get(src)?;
        let (kind, value, reference, since_ms) = self.fault_of(src)?;
        let dev = self.devices.get(s.device)?;
        Some(SensorFault {
            device: dev.id.clone(),
            zone: self.zones.get(dev.zone)?.id.clone(),
            signal: s.signal,
            channel: s.channel,
            kind,
            value,
            reference,
            since_ms,
        })
    }

    /// Lets faults expire, and takes a jump in heat as real when an independent witness in
    /// its zone sees the fire too (docs/policy.md, "Plausibility").
    fn review_faults(&mut self, now_ms: u64) {
        self.review_common_mode(now_ms);
        if self.faulted.is_empty() {
            return;
        }
        let faulted = std::mem::take(&mut self.faulted);
        for &i in &faulted {
            let cleared = self
                .sources
                .get_mut(i)
                .is_some_and(|s| s.check.expire(now_ms))
                || (self.excused(i)
                    && self
                        .sources
                        .get_mut(i)
                        .is_some_and(|s| s.check.excuse(now_ms)));
            if cleared && let Some(v) = self.sources.get(i).and_then(|s| s.last) {
                self.apply(i, now_ms, v, None);
            }
        }
        self.faulted = faulted;
        let keep: Vec<bool> = self
            .faulted
            .iter()
            .map(|&i| self.fault_of(i).is_some())
            .collect();
        let mut keep = keep.into_iter();
        self.faulted.retain(|_| keep.next().unwrap_or(false));
    }

    /// Whether a jump of source `i` is corroborated by an independent witness of fire in its
    /// zone: the same signal from another witness, firing or jumping too; or off-gas, smoke or
    /// suppression evidence firing.
    fn excused(&self, i: usize) -> bool {
        let Some(me) = self.sources.get(i) else {
            return false;
        };
        if me.physics != Physics::Heat || !me.check.jumped_up() {
            return false;
        }
        let Some(zone) = self
            .devices
            .get(me.device)
            .and_then(|d| self.zones.get(d.zone))
        else {
            return false;
        };
        zone.sources.iter().any(|&j| {
            let Some(o) = self.sources.get(j) else {
                return false;
            };
            if j == i || o.out {
                return false;
            }
            let fired = o.watches.iter().any(|w| w.fired);
            if o.signal == me.signal {
                o.witness != me.witness && (fired || o.check.jumped_up())
            } else {
                fired
                    && matches!(
                        o.signal,
                        Signal::OffGas | Signal::SmokeAlarm | Signal::SuppressionReleased
                    )
            }
        })
    }
}

fn min_estimate_f(it: impl Iterator<Item = f32>) -> Option<f32> {
    it.fold(None, |m: Option<f32>, e| Some(m.map_or(e, |m| m.min(e))))
}

fn min_estimate(it: impl Iterator<Item = f32>) -> Option<u32> {
    min_estimate_f(it).map(|e| e.max(0.0) as u32)
}
