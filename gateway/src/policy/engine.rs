//! The policy engine: samples in, level transitions out. No I/O and no clock.

use std::collections::HashMap;

use firebreak_protocols::message::MAX_REASONS;
use firebreak_protocols::series::{Debounce, Hysteresis, RateOfRise};
use firebreak_protocols::{
    DeviceId, GatewayId, IncidentId, Level, Quality, Reason, Sample, Signal, SiteId, ZoneId,
};

use super::rules::{RATE_POINTS, Rule, RuleKind, Rules};

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
                .devices
                .iter()
                .map(|d| (d.name.clone(), d.zone.clone()))
                .chain(
                    c.mqtt_sources
                        .iter()
                        .map(|s| (s.name.clone(), s.zone.clone())),
                )
                .collect(),
            witnesses: Vec::new(),
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
}

/// What one sensor tells one rule.
#[derive(Debug, Clone)]
enum Detector {
    Band(Hysteresis),
    Rate(Box<RateOfRise<RATE_POINTS>>, Hysteresis),
    State,
}

#[derive(Debug, Clone)]
struct Watch {
    detector: Detector,
    /// Good evidence past the trip point now.
    fired: bool,
    /// Was fired, then its sensor lost quality: holds a level, never raises one.
    lost_while_fired: bool,
    /// The value the rule compared (the rate, for rate rules).
    value: f32,
}

/// One (device, signal, channel).
#[derive(Debug, Clone)]
struct Source {
    device: usize,
    channel: u8,
    signal: Signal,
    watches: Vec<Watch>,
}

#[derive(Debug, Clone, Default)]
struct Ups {
    on_battery: Option<bool>,
    runtime: Option<(f32, u64)>,
    input_v: Option<f32>,
    load: Option<f32>,
    load_trend: Option<Box<RateOfRise<RATE_POINTS>>>,
}

#[derive(Debug, Clone)]
struct Device {
    id: DeviceId,
    zone: usize,
    comm_lost: bool,
    ups: Option<Ups>,
}

#[derive(Debug, Clone)]
struct Instance {
    debounce: Debounce,
    active: bool,
    latched: bool,
    holding: bool,
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
    site_level: Level,
    incident: Option<IncidentId>,
    last_ms: u64,
    stats: EngineStats,
}

const UPS_SIGNALS: [Signal; 4] = [
    Signal::UpsOnBattery,
    Signal::UpsRuntimeRemaining,
    Signal::UpsInputVoltage,
    Signal::UpsLoad,
];

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
                    })
                    .collect(),
                watches: vec![Vec::new(); policy.rules.rules.len()],
                devices: Vec::new(),
                estimate_s: None,
            });
            zones.len() - 1
        };
        for z in &topology.zones {
            zone_of(z, &mut zones);
        }
        let mut devices = Vec::new();
        let mut device_index = HashMap::new();
        for (d, z) in &topology.devices {
            if device_index.contains_key(d) {
                continue;
            }
            let zone = zone_of(z, &mut zones);
            device_index.insert(d.clone(), devices.len());
            if let Some(zn) = zones.get_mut(zone) {
                zn.devices.push(devices.len());
            }
            devices.push(Device {
                id: d.clone(),
                zone,
                comm_lost: false,
                ups: None,
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
        let mut out = Vec::new();
        for z in 0..self.zones.len() {
            self.evaluate_zone(z, now_ms);
            self.settle_zone(z, now_ms, &mut out);
        }
        self.settle_site(now_ms, &mut out);
        out
    }

    fn take(&mut self, now_ms: u64, s: &Sample) {
        self.stats.samples += 1;
        let Some(&d) = self.device_index.get(&s.device) else {
            self.stats.unknown_device += 1;
            return;
        };
        let good = s.quality.is_evidence() && s.value.is_finite();
        if let Some(dev) = self.devices.get_mut(d) {
            dev.comm_lost = s.quality == Quality::CommLost;
            if UPS_SIGNALS.contains(&s.signal) {
                let ups = dev.ups.get_or_insert_with(Ups::default);
                take_ups(ups, now_ms, s, good);
            }
        }
        let Some(rules) = self.rules_by_signal.get(&s.signal) else {
            return;
        };
        let key = (d, s.signal, s.channel);
        let src = match self.source_index.get(&key) {
            Some(&i) => i,
            None => {
                let i = self.sources.len();
                let zone = self.devices.get(d).map_or(0, |dev| dev.zone);
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
                        } => Detector::Rate(
                            Box::new(RateOfRise::new(*window_ms, *window_ms / 3)),
                            *band,
                        ),
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
                        lost_while_fired: false,
                        value: f32::NAN,
                    });
                }
                self.sources.push(Source {
                    device: d,
                    channel: s.channel,
                    signal: s.signal,
                    watches,
                });
                self.source_index.insert(key, i);
                i
            }
        };
        let Some(source) = self.sources.get_mut(src) else {
            return;
        };
        for w in &mut source.watches {
            if !good {
                w.lost_while_fired |= w.fired;
                w.fired = false;
                if let Detector::Rate(r, band) = &mut w.detector {
                    // A gap in the evidence: the rate starts again from good values.
                    r.clear();
                    band.reset();
                }
                continue;
            }
            w.lost_while_fired = false;
            match &mut w.detector {
                Detector::Band(band) => {
                    w.fired = band.update(s.value);
                    w.value = s.value;
                }
                Detector::Rate(rate, band) => {
                    rate.push(now_ms, s.value);
                    match rate.per_minute() {
                        Some(r) => {
                            w.fired = band.update(r);
                            w.value = r;
                        }
                        None => w.fired = false,
                    }
                }
                Detector::State => {
                    w.fired = s.value >= 0.5;
                    w.value = s.value;
                }
            }
        }
    }

    fn evaluate_zone(&mut self, z: usize, now_ms: u64) {
        let threshold = self.policy.power_threshold_s();
        let present_v = self
            .policy
            .rules
            .rules
            .iter()
            .find_map(|r| match r.kind {
                RuleKind::PowerBudget {
                    input_present_above,
                } => Some(input_present_above),
                _ => None,
            })
            .unwrap_or(super::rules::DEFAULT_INPUT_PRESENT_V);
        let Some(zone) = self.zones.get_mut(z) else {
            return;
        };
        zone.estimate_s = min_estimate_f(zone.devices.iter().filter_map(|&d| {
            self.devices
                .get(d)
                .and_then(|dev| estimate(dev, now_ms, present_v))
        }));
        for (r, rule) in self.policy.rules.rules.iter().enumerate() {
            let (raw, hold_raw) = match &rule.kind {
                RuleKind::Threshold { corroborate, .. }
                | RuleKind::Rate { corroborate, .. }
                | RuleKind::State { corroborate, .. } => {
                    let (fired, held) = count_watches(&self.sources, zone.watches.get(r));
                    (fired >= *corroborate, held >= *corroborate)
                }
                RuleKind::Share {
                    share, min_devices, ..
                } => {
                    let total = zone.watches.get(r).map_or(0, Vec::len);
                    let (fired, held) = count_watches(&self.sources, zone.watches.get(r));
                    let need = (*min_devices).max((share * total as f32).ceil() as usize);
                    (total > 0 && fired >= need, total > 0 && held >= need)
                }
                RuleKind::CommLost { all } => {
                    let n = zone.devices.len();
                    let lost = zone
                        .devices
                        .iter()
                        .filter(|&&d| self.devices.get(d).is_some_and(|dev| dev.comm_lost))
                        .count();
                    let raw = if *all { n > 0 && lost == n } else { lost > 0 };
                    (raw, raw)
                }
                RuleKind::PowerBudget { .. } => {
                    let raw = zone.estimate_s.is_some_and(|e| e <= threshold);
                    // Once fired, an estimate that disappears (the UPS went silent) holds.
                    (raw, raw || zone.estimate_s.is_none())
                }
                RuleKind::Combine { of, need } => {
                    let active = of
                        .iter()
                        .filter(|&&c| zone.instances.get(c).is_some_and(|i| i.active))
                        .count();
                    let holding = of
                        .iter()
                        .filter(|&&c| zone.instances.get(c).is_some_and(|i| i.holding))
                        .count();
                    (active >= *need, holding >= *need)
                }
            };
            let (gate_active, gate_holding) = match rule.when {
                Some(g) => zone
                    .instances
                    .get(g)
                    .map_or((false, false), |i| (i.active, i.holding)),
                None => (true, true),
            };
            let Some(inst) = zone.instances.get_mut(r) else {
                continue;
            };
            inst.active = inst.debounce.update(now_ms, raw && gate_active);
            if inst.active {
                inst.latched = true;
            } else if !(hold_raw && gate_holding) {
                inst.latched = false;
            }
            inst.holding = inst.active || inst.latched;
        }
    }

    fn settle_zone(&mut self, z: usize, now_ms: u64, out: &mut Vec<Transition>) {
        let rules = &self.policy.rules.rules;
        let Some(zone) = self.zones.get(z) else {
            return;
        };
        let level_of = |pick: fn(&Instance) -> bool| {
            zone.instances
                .iter()
                .zip(rules)
                .filter(|(i, _)| pick(i))
                .filter_map(|(_, r)| r.level)
                .max()
                .unwrap_or(Level::Normal)
        };
        let up = level_of(|i| i.active);
        let hold = level_of(|i| i.holding).max(up);
        let current = zone.level;
        let hold_ms = self.policy.hold_ms;
        let Some(zone) = self.zones.get_mut(z) else {
            return;
        };
        // A level stays until nothing has held it for the hold time.
        let mut kept = hold;
        for (lvl, since) in [Level::Watch, Level::Prepare, Level::Evacuate]
            .into_iter()
            .zip(zone.clear_since.iter_mut())
        {
            if hold >= lvl {
                *since = None;
            } else if lvl <= current {
                let from = *since.get_or_insert(now_ms);
                if now_ms.saturating_sub(from) < hold_ms {
                    kept = kept.max(lvl);
                }
            } else {
                *since = None;
            }
        }
        let new = if up > current {
            Some(up)
        } else if kept < current {
            Some(kept)
        } else {
            None
        };
        let Some(level) = new else {
            return;
        };
        let reasons = self.zone_reasons(z, level);
        let incident = self.open_incident(now_ms);
        let Some(zone) = self.zones.get_mut(z) else {
            return;
        };
        zone.level = level;
        out.push(Transition {
            zone: Some(zone.id.clone()),
            level,
            previous: current,
            reasons,
            seconds_to_power_loss: zone.estimate_s.map(|e| e.max(0.0) as u32),
            at_ms: now_ms,
            incident,
        });
    }

    fn settle_site(&mut self, now_ms: u64, out: &mut Vec<Transition>) {
        let level = self
            .zones
            .iter()
            .map(|z| z.level)
            .max()
            .unwrap_or(Level::Normal);
        if level == self.site_level {
            return;
        }
        let mut reasons = Vec::new();
        for z in 0..self.zones.len() {
            if self.zones.get(z).is_some_and(|zn| zn.level == level) {
                for r in self.zone_reasons(z, level) {
                    if reasons.len() < MAX_REASONS && !reasons.contains(&r) {
                        reasons.push(r);
                    }
                }
            }
        }
        let incident = self.open_incident(now_ms);
        out.push(Transition {
            zone: None,
            level,
            previous: self.site_level,
            reasons,
            seconds_to_power_loss: self.seconds_to_power_loss(),
            at_ms: now_ms,
            incident,
        });
        self.site_level = level;
        if level == Level::Normal {
            self.incident = None;
        }
    }

    fn open_incident(&mut self, now_ms: u64) -> IncidentId {
        self.incident
            .get_or_insert_with(|| IncidentId::starting(&self.gateway, now_ms))
            .clone()
    }

    /// The reasons behind `level` in zone `z`: the rules at that level that are firing (or,
    /// when lowering, still holding), strongest first, at most [`MAX_REASONS`].
    fn zone_reasons(&self, z: usize, level: Level) -> Vec<Reason> {
        let mut out = Vec::new();
        let Some(zone) = self.zones.get(z) else {
            return out;
        };
        let rules = &self.policy.rules.rules;
        let mut order: Vec<usize> = (0..rules.len())
            .filter(|&r| {
                rules.get(r).and_then(|x| x.level) == Some(level)
                    && zone.instances.get(r).is_some_and(|i| i.holding)
            })
            .collect();
        // Firing before merely holding.
        order.sort_by_key(|&r| !zone.instances.get(r).is_some_and(|i| i.active));
        for r in order {
            self.rule_reasons(zone, r, &mut out);
        }
        out
    }

    fn rule_reasons(&self, zone: &Zone, r: usize, out: &mut Vec<Reason>) {
        let Some(rule) = self.policy.rules.rules.get(r) else {
            return;
        };
        let push = |out: &mut Vec<Reason>, reason: Reason| {
            if out.len() < MAX_REASONS && !out.contains(&reason) {
                out.push(reason);
            }
        };
        let reason =
            |signal, device: Option<&Device>, channel, value: f32, threshold: f32| Reason {
                rule: rule.id.clone(),
                signal,
                device: device.map(|d| d.id.clone()),
                channel,
                value: if value.is_finite() { value } else { 0.0 },
                threshold,
            };
        match &rule.kind {
            RuleKind::Threshold { band, .. }
            | RuleKind::Rate { band, .. }
            | RuleKind::Share { band, .. } => {
                let mut fired = 0;
                for &(s, w) in zone.watches.get(r).into_iter().flatten() {
                    let Some(src) = self.sources.get(s) else {
                        continue;
                    };
                    let Some(watch) = src.watches.get(w) else {
                        continue;
                    };
                    if watch.fired || watch.lost_while_fired {
                        fired += 1;
                        push(
                            out,
                            reason(
                                Some(src.signal),
                                self.devices.get(src.device),
                                src.channel,
                                watch.value,
                                band.trip(),
                            ),
                        );
                    }
                }
                let _ = fired;
            }
            RuleKind::State { .. } => {
                for &(s, w) in zone.watches.get(r).into_iter().flatten() {
                    let Some(src) = self.sources.get(s) else {
                        continue;
                    };
                    if src
                        .watches
                        .get(w)
                        .is_some_and(|w| w.fired || w.lost_while_fired)
                    {
                        push(
                            out,
                            reason(
                                Some(src.signal),
                                self.devices.get(src.device),
                                src.channel,
                                1.0,
                                1.0,
                            ),
                        );
                    }
                }
            }
            RuleKind::CommLost { all } => {
                let lost: Vec<&Device> = zone
                    .devices
                    .iter()
                    .filter_map(|&d| self.devices.get(d))
                    .filter(|d| d.comm_lost)
                    .collect();
                let need = if *all { zone.devices.len() } else { 1 };
                push(
                    out,
                    reason(
                        None,
                        if lost.len() == 1 {
                            lost.first().copied()
                        } else {
                            None
                        },
                        0,
                        lost.len() as f32,
                        need as f32,
                    ),
                );
            }
            RuleKind::PowerBudget { .. } => {
                push(
                    out,
                    reason(
                        Some(Signal::UpsRuntimeRemaining),
                        None,
                        0,
                        zone.estimate_s.unwrap_or(0.0),
                        self.policy.power_threshold_s(),
                    ),
                );
            }
            RuleKind::Combine { of, need } => {
                let firing: Vec<usize> = of
                    .iter()
                    .copied()
                    .filter(|&c| zone.instances.get(c).is_some_and(|i| i.holding))
                    .collect();
                push(
                    out,
                    reason(None, None, 0, firing.len() as f32, *need as f32),
                );
                for c in firing {
                    self.rule_reasons(zone, c, out);
                }
            }
        }
    }
}

fn count_watches(sources: &[Source], list: Option<&Vec<(usize, usize)>>) -> (usize, usize) {
    let (mut fired, mut held) = (0, 0);
    for &(s, w) in list.into_iter().flatten() {
        if let Some(watch) = sources.get(s).and_then(|src| src.watches.get(w)) {
            fired += usize::from(watch.fired);
            held += usize::from(watch.fired || watch.lost_while_fired);
        }
    }
    (fired, held)
}

fn take_ups(ups: &mut Ups, now_ms: u64, s: &Sample, good: bool) {
    match s.signal {
        Signal::UpsOnBattery => ups.on_battery = good.then_some(s.value >= 0.5),
        Signal::UpsRuntimeRemaining => ups.runtime = good.then_some((s.value, now_ms)),
        Signal::UpsInputVoltage => ups.input_v = good.then_some(s.value),
        Signal::UpsLoad => {
            ups.load = good.then_some(s.value);
            let trend = ups
                .load_trend
                .get_or_insert_with(|| Box::new(RateOfRise::new(120_000, 30_000)));
            if good {
                trend.push(now_ms, s.value);
            } else {
                trend.clear();
            }
        }
        _ => {}
    }
}

/// Seconds to power loss of one UPS, or `None` when it is not on battery with the utility
/// gone, or its runtime is unknown.
///
/// The reported runtime is aged by the time since it was read, and corrected for a rising
/// load: runtime scales with the inverse of load, so over the remaining `T` seconds with load
/// `L` rising `r` %/min the mean load is `L + r·T/120`, and `T' = T·L / (L + r·T/120)`.
fn estimate(dev: &Device, now_ms: u64, present_v: f32) -> Option<f32> {
    let ups = dev.ups.as_ref()?;
    if dev.comm_lost || ups.on_battery != Some(true) {
        return None;
    }
    if ups.input_v.is_some_and(|v| v >= present_v) {
        return None; // a self-test: the utility is there
    }
    let (runtime, at) = ups.runtime?;
    let t = (runtime - now_ms.saturating_sub(at) as f32 / 1000.0).max(0.0);
    let rise = ups.load_trend.as_ref().and_then(|r| r.per_minute());
    Some(match (ups.load, rise) {
        (Some(l), Some(r)) if l > 1.0 && r > 0.0 => t * l / (l + r * t / 120.0),
        _ => t,
    })
}

fn min_estimate_f(it: impl Iterator<Item = f32>) -> Option<f32> {
    it.fold(None, |m: Option<f32>, e| Some(m.map_or(e, |m| m.min(e))))
}

fn min_estimate(it: impl Iterator<Item = f32>) -> Option<u32> {
    min_estimate_f(it).map(|e| e.max(0.0) as u32)
}

/// The rule behind a reason, for explanations: its id and the level it raises.
pub fn describe(rule: &Rule) -> String {
    match rule.level {
        Some(l) => format!("{} (raises {l})", rule.id),
        None => format!("{} (building block)", rule.id),
    }
}
