//! The timeline families: what the world does, drawn at random within ranges taken from
//! ../shared/DOMAIN.md (docs/campaign.md lists each family, its ranges and the facts behind
//! them). Every timeline is a pure function of (family, seed).

use firebreak_protocols::Signal;

use super::site::{Kind, Reading, Site};

/// A family of timelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// One rack probe fails high (jump or ramp, in range or out of it).
    ProbeFailHigh,
    /// One rack probe fails low, or rails (0x7FFF, 0xFFFF).
    ProbeFailLow,
    /// One rack probe sticks.
    ProbeStuck,
    /// One rack probe flaps between its reading and a failed one.
    ProbeFlap,
    /// Several probes of one node fail together (shared harness, reference, supply).
    HarnessFault,
    /// The UPS reports runtime 0 (or near it) for one poll during a brief utility dip.
    RuntimeGlitchDip,
    /// One-poll glitches of UPS input voltage, load, runtime, on-battery, or a PDU's voltage.
    PowerReadingGlitch,
    /// Brief utility dips: seconds on battery.
    UtilityDip,
    /// UPS self-test: on battery with the utility present.
    UpsSelfTest,
    /// Utility lost, the generator takes the load after 8–20 s.
    GeneratorTransfer,
    /// HVAC failure: the hall or the battery room warms slowly.
    HvacDrift,
    /// An off-gas sensor's baseline drifts up.
    OffGasDrift,
    /// The MQTT room sensor sticks, stops publishing, or its broker link drops.
    MqttStuck,
    /// Sensor nodes (and sometimes the panel or the UPS card) reboot.
    NodeReboot,
    /// The gateway loses its network to one device, one zone or everything.
    NetworkCut,
    /// Battery-room fire with strong, early off-gas.
    FireOffGasStrong,
    /// Battery-room fire with weak, late off-gas.
    FireOffGasWeak,
    /// Battery-room fire the off-gas sensors do not see.
    FireOffGasAbsent,
    /// Battery-room fire in a ventilated room: off-gas diluted; temperature carries it.
    FireVentilated,
    /// Battery-room fire; the node (sometimes the panel) stops answering mid-fire.
    FireNodeLost,
    /// Battery-room fire; the UPS's network card dies in the heat before the UPS does.
    FireUpsCardDies,
    /// Utility lost, the generator never takes the load: runtime runs out.
    GeneratorFails,
    /// Utility lost, the generator takes the load, then trips: runtime runs out.
    GeneratorTrips,
}

impl Family {
    /// The nuisance families: must never evacuate.
    pub const NUISANCE: &'static [Family] = &[
        Family::ProbeFailHigh,
        Family::ProbeFailLow,
        Family::ProbeStuck,
        Family::ProbeFlap,
        Family::HarnessFault,
        Family::RuntimeGlitchDip,
        Family::PowerReadingGlitch,
        Family::UtilityDip,
        Family::UpsSelfTest,
        Family::GeneratorTransfer,
        Family::HvacDrift,
        Family::OffGasDrift,
        Family::MqttStuck,
        Family::NodeReboot,
        Family::NetworkCut,
    ];

    /// The fire and outage families: must evacuate at least the budget before power loss.
    pub const FIRE: &'static [Family] = &[
        Family::FireOffGasStrong,
        Family::FireOffGasWeak,
        Family::FireOffGasAbsent,
        Family::FireVentilated,
        Family::FireNodeLost,
        Family::FireUpsCardDies,
        Family::GeneratorFails,
        Family::GeneratorTrips,
    ];

    /// The family's name on the command line and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Family::ProbeFailHigh => "probe-fail-high",
            Family::ProbeFailLow => "probe-fail-low",
            Family::ProbeStuck => "probe-stuck",
            Family::ProbeFlap => "probe-flap",
            Family::HarnessFault => "harness-fault",
            Family::RuntimeGlitchDip => "runtime-glitch-dip",
            Family::PowerReadingGlitch => "power-reading-glitch",
            Family::UtilityDip => "utility-dip",
            Family::UpsSelfTest => "ups-self-test",
            Family::GeneratorTransfer => "generator-transfer",
            Family::HvacDrift => "hvac-drift",
            Family::OffGasDrift => "off-gas-drift",
            Family::MqttStuck => "mqtt-stuck",
            Family::NodeReboot => "node-reboot",
            Family::NetworkCut => "network-cut",
            Family::FireOffGasStrong => "fire-offgas-strong",
            Family::FireOffGasWeak => "fire-offgas-weak",
            Family::FireOffGasAbsent => "fire-offgas-absent",
            Family::FireVentilated => "fire-ventilated",
            Family::FireNodeLost => "fire-node-lost",
            Family::FireUpsCardDies => "fire-ups-card-dies",
            Family::GeneratorFails => "generator-fails",
            Family::GeneratorTrips => "generator-trips",
        }
    }

    /// The family with this name.
    pub fn from_name(name: &str) -> Option<Family> {
        Family::NUISANCE
            .iter()
            .chain(Family::FIRE)
            .copied()
            .find(|f| f.name() == name)
    }

    /// Whether it is a fire or outage family (else a nuisance).
    pub fn is_fire(self) -> bool {
        Family::FIRE.contains(&self)
    }

    fn salt(self) -> u64 {
        // FNV-1a of the name: stable across builds and orderings.
        self.name().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }
}

/// What a timeline must show.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// Never `evacuate` (a `prepare` is counted, not failed).
    Nuisance,
    /// `evacuate` at least the budget before `power_loss_s`.
    PowerLoss {
        /// When servers lose power, seconds from the start.
        power_loss_s: f64,
        /// Whether the sensors alive at the time carry two independent pieces of evidence
        /// (or, for an outage, the runtime) early enough for an evacuation in time.
        catchable: bool,
        /// Why not, when not.
        why: String,
    },
}

/// A one-poll (or windowed) replacement of what a device returns for one signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Glitch {
    /// Device index.
    pub device: usize,
    /// Signal.
    pub signal: Signal,
    /// Channel.
    pub channel: u8,
    /// From, seconds.
    pub from_s: f64,
    /// Until, seconds.
    pub to_s: f64,
    /// What is read instead.
    pub reading: Reading,
    /// Only the first poll in the window.
    pub once: bool,
}

/// How a faulty sensor reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Jumps to a value.
    Jump(f32),
    /// Moves linearly from the true value to `to` over `over_s`.
    Ramp {
        /// Final value.
        to: f32,
        /// Seconds.
        over_s: f64,
    },
    /// Reads the true value plus an offset growing to `by` over `over_s`.
    Offset {
        /// Final offset.
        by: f32,
        /// Seconds.
        over_s: f64,
    },
    /// A sentinel register value.
    Sentinel(u16),
    /// Stuck at a value, no noise.
    Stuck(f32),
    /// Alternates every `half_s` between the true value and `alt`.
    Flap {
        /// Half period, seconds.
        half_s: f64,
        /// The failed reading.
        alt: Reading,
    },
}

/// What a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A rack probe channel.
    Probe(u8),
    /// The node's off-gas sensor.
    OffGas,
}

/// A sensor fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    /// Node index.
    pub node: usize,
    /// Which sensor.
    pub target: Target,
    /// From, seconds.
    pub from_s: f64,
    /// Until, seconds.
    pub to_s: f64,
    /// How it reads.
    pub mode: Mode,
}

/// A rack probe's physics.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    base: f32,
    wander: f32,
    wander_period_s: f64,
    wander_phase: f64,
    noise: f32,
    /// Share of the fire's heat this probe sees.
    coupling: f32,
    /// Seconds behind the fire's heat.
    lag_s: f64,
    /// It burns out (reads a sentinel) above this temperature.
    burns_at: f32,
    burn_reading: u16,
}

/// A fire's heat at the burning rack, °C above normal.
#[derive(Debug, Clone, Copy)]
pub struct Heat {
    onset_s: f64,
    rate1: f64,
    knee_s: f64,
    rate2: f64,
}

impl Heat {
    fn at(&self, t: f64) -> f64 {
        if t <= self.onset_s {
            0.0
        } else if t <= self.knee_s {
            (t - self.onset_s) * self.rate1
        } else {
            ((self.knee_s - self.onset_s) * self.rate1 + (t - self.knee_s) * self.rate2).min(400.0)
        }
    }
}

/// A slow linear change from `from_s`, capped.
#[derive(Debug, Clone, Copy)]
pub struct Drift {
    from_s: f64,
    per_s: f64,
    max: f64,
}

impl Drift {
    fn at(&self, t: f64) -> f64 {
        if t <= self.from_s {
            0.0
        } else {
            ((t - self.from_s) * self.per_s).min(self.max)
        }
    }
}

/// An off-gas sensor's physics.
#[derive(Debug, Clone, Copy)]
pub struct GasSensor {
    base: f32,
    noise: f32,
    /// Share of the fire's off-gas it sees.
    share: f32,
    lag_s: f64,
    drift: Option<Drift>,
}

/// The fire's off-gas at the source, ppm: rises linearly from `onset_s` to `peak` at `peak_s`.
#[derive(Debug, Clone, Copy)]
pub struct GasFire {
    onset_s: f64,
    peak_s: f64,
    peak: f64,
}

impl GasFire {
    fn at(&self, t: f64) -> f64 {
        if t <= self.onset_s {
            0.0
        } else if t >= self.peak_s {
            self.peak
        } else {
            self.peak * (t - self.onset_s) / (self.peak_s - self.onset_s).max(1.0)
        }
    }
}

/// The UPS in one second.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpsSec {
    on_battery: bool,
    input_v: f32,
    runtime: f32,
    load: f32,
    low: bool,
}

/// What feeds the UPS in one second.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Supply {
    Utility(f32),
    Generator(f32),
    Absent(f32),
    SelfTest(f32),
}

/// The UPS's battery and estimator.
#[derive(Debug, Clone, Copy)]
struct UpsParams {
    /// Runtime at full charge and base load, seconds.
    full_s: f64,
    load0: f64,
    /// Load rise per second while on battery (cooling, fans), % per s.
    load_rise: f64,
    /// Estimator error: reported = true × (1 + bias).
    bias: f64,
    /// The UPS recomputes its runtime every this many seconds.
    update_s: usize,
    /// Low-battery flag below this true runtime.
    low_s: f64,
}

impl UpsParams {
    fn random(rng: &mut fastrand::Rng) -> UpsParams {
        UpsParams {
            // DOMAIN.md: runtime at data-center load is typically 5–15 minutes.
            full_s: uniform(rng, 300.0, 900.0),
            load0: uniform(rng, 30.0, 80.0),
            load_rise: if rng.f32() < 0.3 {
                uniform(rng, 0.005, 0.05)
            } else {
                0.0
            },
            bias: uniform(rng, -0.1, 0.1),
            update_s: rng.usize(1..=30),
            low_s: uniform(rng, 120.0, 180.0),
        }
    }
}

/// Builds the UPS trace; returns it and the second the battery ran out, if it did.
fn ups_trace(supply: &[Supply], p: &UpsParams) -> (Vec<UpsSec>, Option<f64>) {
    let mut charge = p.full_s;
    let mut out = Vec::with_capacity(supply.len());
    let mut reported = p.full_s as f32;
    let mut battery_s = 0.0f64;
    let mut loss = None;
    for (k, s) in supply.iter().enumerate() {
        let (on_battery, input_v) = match *s {
            Supply::Utility(v) | Supply::Generator(v) => (false, v),
            Supply::Absent(v) | Supply::SelfTest(v) => (true, v),
        };
        battery_s = if on_battery { battery_s + 1.0 } else { 0.0 };
        let load = p.load0 + p.load_rise * battery_s;
        if on_battery {
            charge -= load / p.load0;
        } else {
            charge = (charge + p.full_s / 3600.0).min(p.full_s);
        }
        let true_rt = charge.max(0.0) * p.load0 / load;
        if k.is_multiple_of(p.update_s.max(1)) || (on_battery && battery_s <= 1.0) {
            reported = (true_rt * (1.0 + p.bias)).max(0.0) as f32;
        }
        if on_battery && charge <= 0.0 && loss.is_none() {
            loss = Some(k as f64);
        }
        out.push(UpsSec {
            on_battery,
            input_v,
            runtime: reported,
            load: load as f32,
            low: on_battery && true_rt < p.low_s,
        });
    }
    (out, loss)
}

/// The world of one timeline: the physics and every fault, as functions of time.
#[derive(Debug, Clone)]
pub struct World {
    kinds: Vec<Kind>,
    /// The replay ends here, seconds.
    pub duration_s: f64,
    /// The family's moment T0, seconds (the fault, the outage, the smoke).
    pub t0_s: f64,
    probes: Vec<Vec<Probe>>,
    heat: Option<Heat>,
    rack_hvac: Option<Drift>,
    gas: Vec<Option<GasSensor>>,
    gas_fire: Option<GasFire>,
    smoke_at: Option<f64>,
    suppression_at: Option<f64>,
    ups: Vec<UpsSec>,
    ups_noise_v: f32,
    pdu_v: Vec<f32>,
    /// PDUs read 0 V from here (feed lost).
    pdu_feed_lost_at: Option<f64>,
    room_base: f32,
    room_noise: f32,
    room_drift: Option<Drift>,
    room_stuck: Option<(f64, f64, f32)>,
    room_quiet: Vec<(f64, f64)>,
    /// Per device: it stops answering for good from here.
    dead_at: Vec<Option<f64>>,
    /// (device, from, to): not answering (Modbus) or link down (MQTT).
    silences: Vec<(usize, f64, f64)>,
    faults: Vec<Fault>,
    /// One-poll replacements.
    pub glitches: Vec<Glitch>,
    /// What the timeline must show.
    pub expect: Expect,
    /// One line on what was drawn.
    pub what: String,
}

fn uniform(rng: &mut fastrand::Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.f64()
}

fn uniform32(rng: &mut fastrand::Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.f32()
}

/// Noise of standard deviation about `sd` (a sum of uniforms).
fn noise(rng: &mut fastrand::Rng, sd: f32) -> f32 {
    (rng.f32() + rng.f32() + rng.f32() - 1.5) * 2.0 * sd
}

impl World {
    fn new(site: &Site, rng: &mut fastrand::Rng, duration_s: f64, t0_s: f64) -> World {
        let probes = site
            .nodes
            .iter()
            .map(|n| {
                (0..n.channels)
                    .map(|_| Probe {
                        base: uniform32(rng, 20.0, 30.0),
                        wander: uniform32(rng, 0.0, 0.5),
                        wander_period_s: uniform(rng, 600.0, 1800.0),
                        wander_phase: uniform(rng, 0.0, std::f64::consts::TAU),
                        noise: uniform32(rng, 0.02, 0.2),
                        coupling: 0.0,
                        lag_s: 0.0,
                        burns_at: uniform32(rng, 150.0, 260.0),
                        burn_reading: if rng.bool() { 0x7FFF } else { 0xFFFF },
                    })
                    .collect()
            })
            .collect();
        let gas = site
            .nodes
            .iter()
            .map(|n| {
                n.off_gas.then(|| GasSensor {
                    base: uniform32(rng, 0.0, 3.0),
                    noise: uniform32(rng, 0.3, 1.5),
                    share: 1.0,
                    lag_s: 0.0,
                    drift: None,
                })
            })
            .collect();
        let n = duration_s as usize + 2;
        let v = uniform32(rng, 225.0, 240.0);
        let params = UpsParams::random(rng);
        let (ups, _) = ups_trace(&vec![Supply::Utility(v); n], &params);
        World {
            kinds: site.devices.iter().map(|d| d.kind).collect(),
            duration_s,
            t0_s,
            probes,
            heat: None,
            rack_hvac: None,
            gas,
            gas_fire: None,
            smoke_at: None,
            suppression_at: None,
            ups,
            ups_noise_v: uniform32(rng, 0.2, 1.5),
            pdu_v: (0..site.pdus)
                .map(|_| uniform32(rng, 225.0, 240.0))
                .collect(),
            pdu_feed_lost_at: None,
            room_base: uniform32(rng, 20.0, 27.0),
            room_noise: uniform32(rng, 0.02, 0.15),
            room_drift: None,
            room_stuck: None,
            room_quiet: Vec::new(),
            dead_at: vec![None; site.devices.len()],
            silences: Vec::new(),
            faults: Vec::new(),
            glitches: Vec::new(),
            expect: Expect::Nuisance,
            what: String::new(),
        }
    }

    /// Where the replay ends: the duration, or 30 s after the power loss.
    pub fn end_s(&self) -> f64 {
        match &self.expect {
            Expect::PowerLoss { power_loss_s, .. } => (power_loss_s + 30.0).min(self.duration_s),
            Expect::Nuisance => self.duration_s,
        }
    }

    fn kind(&self, device: usize) -> Option<Kind> {
        self.kinds.get(device).copied()
    }

    fn dead(&self, device: usize, t: f64) -> bool {
        self.dead_at
            .get(device)
            .copied()
            .flatten()
            .is_some_and(|d| t >= d)
    }

    /// Whether a Modbus device answers a poll at `t`.
    pub fn answers(&self, device: usize, t: f64) -> bool {
        !self.dead(device, t)
            && !self
                .silences
                .iter()
                .any(|&(d, from, to)| d == device && t >= from && t < to)
    }

    /// Whether an MQTT device's broker link is down at `t`.
    pub fn link_down(&self, device: usize, t: f64) -> bool {
        self.silences
            .iter()
            .any(|&(d, from, to)| d == device && t >= from && t < to)
    }

    /// Whether an MQTT device publishes at `t`.
    pub fn publishes(&self, device: usize, t: f64) -> bool {
        !self.dead(device, t)
            && !self
                .room_quiet
                .iter()
                .any(|&(from, to)| t >= from && t < to)
    }

    /// The true temperature of a probe (no noise, no fault).
    pub fn probe_true(&self, node: usize, ch: usize, t: f64) -> f64 {
        let Some(p) = self.probes.get(node).and_then(|n| n.get(ch)) else {
            return 0.0;
        };
        let wander = f64::from(p.wander)
            * (std::f64::consts::TAU * t / p.wander_period_s + p.wander_phase).sin();
        let hvac = self.rack_hvac.map_or(0.0, |d| d.at(t));
        let heat = self
            .heat
            .map_or(0.0, |h| h.at(t - p.lag_s) * f64::from(p.coupling));
        f64::from(p.base) + wander + hvac + heat
    }

    /// The true off-gas at a node's sensor (no noise, no fault).
    pub fn gas_true(&self, node: usize, t: f64) -> Option<f64> {
        let g = self.gas.get(node).copied().flatten()?;
        let fire = self
            .gas_fire
            .map_or(0.0, |f| f.at(t - g.lag_s) * f64::from(g.share));
        let drift = g.drift.map_or(0.0, |d| d.at(t));
        Some(f64::from(g.base) + fire + drift)
    }

    fn apply_faults(&self, node: usize, target: Target, t: f64, truth: f32, r: Reading) -> Reading {
        let mut out = r;
        for f in &self.faults {
            if f.node != node || f.target != target || t < f.from_s || t >= f.to_s {
                continue;
            }
            let since = t - f.from_s;
            out = match f.mode {
                Mode::Jump(v) => Reading::Value(v),
                Mode::Ramp { to, over_s } => {
                    let k = (since / over_s.max(1.0)).min(1.0) as f32;
                    Reading::Value(truth + (to - truth) * k)
                }
                Mode::Offset { by, over_s } => {
                    let k = (since / over_s.max(1.0)).min(1.0) as f32;
                    match out {
                        Reading::Value(v) => Reading::Value(v + by * k),
                        s => s,
                    }
                }
                Mode::Sentinel(raw) => Reading::Sentinel(raw),
                Mode::Stuck(v) => Reading::Value(v),
                Mode::Flap { half_s, alt } => {
                    if ((since / half_s.max(0.5)) as u64).is_multiple_of(2) {
                        alt
                    } else {
                        out
                    }
                }
            };
        }
        out
    }

    fn ups_at(&self, t: f64) -> UpsSec {
        let k = (t.max(0.0) as usize).min(self.ups.len().saturating_sub(1));
        self.ups.get(k).copied().unwrap_or_default()
    }

    /// What a device returns for one signal at `t`.
    pub fn read(
        &self,
        device: usize,
        signal: Signal,
        ch: u8,
        t: f64,
        rng: &mut fastrand::Rng,
    ) -> Reading {
        let flag = |b: bool| Reading::Value(if b { 1.0 } else { 0.0 });
        match (self.kind(device), signal) {
            (Some(Kind::Node(n)), Signal::RackTemperature) => {
                let Some(p) = self.probes.get(n).and_then(|x| x.get(usize::from(ch))) else {
                    return Reading::Sentinel(0x7FFF);
                };
                let truth = self.probe_true(n, usize::from(ch), t) as f32;
                // Once above its burn-out temperature the probe is gone for good (heat only
                // rises in a fire, so "now above" is "has been above").
                let r = if truth >= p.burns_at {
                    Reading::Sentinel(p.burn_reading)
                } else {
                    Reading::Value(truth + noise(rng, p.noise))
                };
                self.apply_faults(n, Target::Probe(ch), t, truth, r)
            }
            (Some(Kind::Node(n)), Signal::OffGas) => {
                let Some(g) = self.gas.get(n).copied().flatten() else {
                    return Reading::Sentinel(0xFFFF);
                };
                let truth = self.gas_true(n, t).unwrap_or(0.0) as f32;
                let r = Reading::Value((truth + noise(rng, g.noise)).max(0.0));
                self.apply_faults(n, Target::OffGas, t, truth, r)
            }
            (Some(Kind::Panel), Signal::SmokeAlarm) => flag(self.smoke_at.is_some_and(|s| t >= s)),
            (Some(Kind::Panel), Signal::SuppressionReleased) => {
                flag(self.suppression_at.is_some_and(|s| t >= s))
            }
            (Some(Kind::Ups), s) => {
                let u = self.ups_at(t);
                match s {
                    Signal::UpsOnBattery => flag(u.on_battery),
                    Signal::UpsLowBattery => flag(u.low),
                    Signal::UpsInputVoltage => {
                        Reading::Value((u.input_v + noise(rng, self.ups_noise_v)).max(0.0))
                    }
                    Signal::UpsRuntimeRemaining => Reading::Value(u.runtime),
                    Signal::UpsLoad => Reading::Value(u.load + noise(rng, 0.5)),
                    _ => Reading::Value(0.0),
                }
            }
            (Some(Kind::Pdu(p)), _) => {
                if self.pdu_feed_lost_at.is_some_and(|l| t >= l) {
                    Reading::Value(noise(rng, 0.3).abs())
                } else {
                    Reading::Value(self.pdu_v.get(p).copied().unwrap_or(230.0) + noise(rng, 0.4))
                }
            }
            (Some(Kind::Room), _) => {
                if let Some((from, to, v)) = self.room_stuck
                    && t >= from
                    && t < to
                {
                    return Reading::Value(v);
                }
                let drift = self.room_drift.map_or(0.0, |d| d.at(t)) as f32;
                Reading::Value(self.room_base + drift + noise(rng, self.room_noise))
            }
            _ => Reading::Value(0.0),
        }
    }
}

/// One generated timeline.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// The family.
    pub family: Family,
    /// Its seed.
    pub seed: u64,
    /// The site.
    pub site: Site,
    /// The world.
    pub world: World,
    /// The seed of the sensor noise.
    pub noise_seed: u64,
}

/// Builds the timeline of (family, seed). `budget_s` is the evacuation budget the oracle
/// (is the fire catchable at all?) judges against.
pub fn generate(
    family: Family,
    seed: u64,
    budget_s: f64,
) -> Result<Timeline, firebreak_protocols::IdError> {
    let mut rng = fastrand::Rng::with_seed(seed ^ family.salt());
    let site = Site::random(&mut rng)?;
    let world = if family.is_fire() {
        fire_or_outage(family, &site, &mut rng, budget_s)
    } else {
        nuisance(family, &site, &mut rng)
    };
    let noise_seed = rng.u64(..);
    Ok(Timeline {
        family,
        seed,
        site,
        world,
        noise_seed,
    })
}

fn pick_probe(site: &Site, rng: &mut fastrand::Rng) -> (usize, u8) {
    let n = rng.usize(0..site.nodes.len().max(1));
    let ch = site.nodes.get(n).map_or(1, |x| x.channels.max(1));
    (n, rng.u8(0..ch))
}

fn dev(site: &Site, kind: Kind) -> usize {
    site.device(kind).unwrap_or(usize::MAX)
}

/// Supply per second: utility everywhere.
fn utility(n: usize, v: f32) -> Vec<Supply> {
    vec![Supply::Utility(v); n]
}

fn set(supply: &mut [Supply], from: f64, to: f64, s: Supply) {
    let a = from.max(0.0) as usize;
    let b = (to.max(0.0) as usize).min(supply.len());
    if let Some(slice) = supply.get_mut(a..b) {
        slice.fill(s);
    }
}

#[allow(clippy::too_many_lines)]
fn nuisance(family: Family, site: &Site, rng: &mut fastrand::Rng) -> World {
    let lead_in = uniform(rng, 300.0, 600.0);
    // Observation after the event: at least ten minutes.
    let (span, tail) = match family {
        Family::HvacDrift => (uniform(rng, 1800.0, 3600.0), 600.0),
        Family::OffGasDrift => (uniform(rng, 1200.0, 2400.0), 600.0),
        _ => (uniform(rng, 60.0, 900.0), uniform(rng, 600.0, 900.0)),
    };
    let t0 = lead_in;
    let duration = t0 + span + tail;
    let mut w = World::new(site, rng, duration, t0);
    let n = duration as usize + 2;
    let v_in = w.ups.first().map_or(230.0, |u| u.input_v);
    match family {
        Family::ProbeFailHigh => {
            let (node, ch) = pick_probe(site, rng);
            let to = if rng.f32() < 0.8 {
                uniform32(rng, 65.0, 199.0)
            } else {
                uniform32(rng, 201.0, 400.0)
            };
            let mode = if rng.f32() < 0.6 {
                Mode::Jump(to)
            } else {
                Mode::Ramp {
                    to,
                    over_s: uniform(rng, 10.0, 300.0),
                }
            };
            w.faults.push(Fault {
                node,
                target: Target::Probe(ch),
                from_s: t0,
                to_s: f64::MAX,
                mode,
            });
            w.what = format!(
                "node-{} probe {ch} fails high to {to:.1} °C ({mode:?})",
                node + 1
            );
        }
        Family::ProbeFailLow => {
            let (node, ch) = pick_probe(site, rng);
            let mode = match rng.u8(0..4) {
                0 => Mode::Sentinel(0x7FFF),
                1 => Mode::Sentinel(0xFFFF),
                2 => Mode::Jump(uniform32(rng, -40.0, 5.0)),
                _ => Mode::Jump(uniform32(rng, -80.0, -41.0)),
            };
            w.faults.push(Fault {
                node,
                target: Target::Probe(ch),
                from_s: t0,
                to_s: f64::MAX,
                mode,
            });
            w.what = format!("node-{} probe {ch} fails low ({mode:?})", node + 1);
        }
        Family::ProbeStuck => {
            let (node, ch) = pick_probe(site, rng);
            let v = if rng.bool() {
                (w.probe_true(node, usize::from(ch), t0) * 10.0).round() as f32 / 10.0
            } else {
                uniform32(rng, 15.0, 45.0)
            };
            w.faults.push(Fault {
                node,
                target: Target::Probe(ch),
                from_s: t0,
                to_s: f64::MAX,
                mode: Mode::Stuck(v),
            });
            w.what = format!("node-{} probe {ch} stuck at {v:.1} °C", node + 1);
        }
        Family::ProbeFlap => {
            let (node, ch) = pick_probe(site, rng);
            let alt = match rng.u8(0..4) {
                0 => Reading::Sentinel(0x7FFF),
                1 => Reading::Sentinel(0xFFFF),
                2 => Reading::Value(uniform32(rng, 80.0, 199.0)),
                _ => Reading::Value(uniform32(rng, -40.0, 0.0)),
            };
            let half_s = uniform(rng, 1.0, 30.0);
            let until = if rng.bool() { t0 + span } else { f64::MAX };
            w.faults.push(Fault {
                node,
                target: Target::Probe(ch),
                from_s: t0,
                to_s: until,
                mode: Mode::Flap { half_s, alt },
            });
            w.what = format!(
                "node-{} probe {ch} flaps to {alt:?} every {half_s:.0} s",
                node + 1
            );
        }
        Family::HarnessFault => {
            // A node with at least two probes (node-1 always has 2–4).
            let node = match site.nodes.get(1) {
                Some(n2) if n2.channels >= 2 && rng.bool() => 1,
                _ => 0,
            };
            let spec = site.nodes.get(node).copied();
            let channels = spec.map_or(2, |s| s.channels.max(2));
            let k = rng.u8(2..=channels);
            let first = rng.u8(0..=channels.saturating_sub(k));
            let chans: Vec<u8> = (first..first + k).collect();
            let variant = rng.u8(0..5);
            let common = uniform32(rng, 70.0, 199.0);
            let by = uniform32(rng, 20.0, 150.0);
            let over_s = uniform(rng, 10.0, 600.0);
            let half_s = uniform(rng, 2.0, 30.0);
            for &ch in &chans {
                let mode = match variant {
                    0 => Mode::Jump(common + uniform32(rng, -2.0, 2.0)),
                    1 | 4 => Mode::Offset { by, over_s },
                    2 => Mode::Sentinel(0x7FFF),
                    _ => Mode::Flap {
                        half_s,
                        alt: Reading::Value(common),
                    },
                };
                w.faults.push(Fault {
                    node,
                    target: Target::Probe(ch),
                    from_s: t0,
                    to_s: f64::MAX,
                    mode,
                });
            }
            // Variant 4: the node's supply or reference fails: every analog input reads high,
            // the off-gas sensor too (DOMAIN.md: channels sharing a power supply fail together).
            let gas_too = variant == 4 && spec.is_some_and(|s| s.off_gas);
            if gas_too {
                w.faults.push(Fault {
                    node,
                    target: Target::OffGas,
                    from_s: t0,
                    to_s: f64::MAX,
                    mode: Mode::Offset {
                        by: uniform32(rng, 30.0, 1000.0),
                        over_s,
                    },
                });
            }
            w.what = format!(
                "node-{} probes {chans:?} fail together: {}{}",
                node + 1,
                match variant {
                    0 => format!("jump to ~{common:.0} °C"),
                    1 | 4 => format!("offset +{by:.0} °C over {over_s:.0} s"),
                    2 => "0x7FFF".to_string(),
                    _ => format!("flap to {common:.0} °C every {half_s:.0} s"),
                },
                if gas_too {
                    ", off-gas too (supply fault)"
                } else {
                    ""
                }
            );
        }
        Family::RuntimeGlitchDip => {
            let dip = uniform(rng, 2.0, 8.0);
            let mut supply = utility(n, v_in);
            set(
                &mut supply,
                t0,
                t0 + dip,
                Supply::Absent(uniform32(rng, 0.0, 60.0)),
            );
            let params = UpsParams::random(rng);
            w.ups = ups_trace(&supply, &params).0;
            let value = if rng.f32() < 0.6 {
                0.0
            } else {
                uniform32(rng, 1.0, 120.0)
            };
            let after = rng.f32() < 0.3;
            let ups = dev(site, Kind::Ups);
            let (from_s, to_s) = if after {
                (t0 + dip, t0 + dip + 10.0)
            } else {
                (t0, t0 + dip)
            };
            w.glitches.push(Glitch {
                device: ups,
                signal: Signal::UpsRuntimeRemaining,
                channel: 0,
                from_s,
                to_s,
                reading: Reading::Value(value),
                once: true,
            });
            w.what = format!(
                "{dip:.1} s utility dip; runtime reads {value:.0} s for one poll {}; UPS runtime {:.0} s",
                if after { "just after it" } else { "during it" },
                params.full_s
            );
        }
        Family::PowerReadingGlitch => {
            let count = rng.usize(1..=5);
            let ups = dev(site, Kind::Ups);
            let mut what = Vec::new();
            for _ in 0..count {
                let at = t0 + uniform(rng, 0.0, span);
                let (device, signal, reading, label) = match rng.u8(0..5) {
                    0 => (
                        ups,
                        Signal::UpsInputVoltage,
                        Reading::Value(0.0),
                        "ups input 0 V",
                    ),
                    1 => (
                        ups,
                        Signal::UpsLoad,
                        Reading::Value(uniform32(rng, 150.0, 250.0)),
                        "ups load spike",
                    ),
                    2 => (
                        ups,
                        Signal::UpsRuntimeRemaining,
                        Reading::Value(0.0),
                        "ups runtime 0 s",
                    ),
                    3 => (
                        ups,
                        Signal::UpsOnBattery,
                        Reading::Value(1.0),
                        "ups on-battery flag",
                    ),
                    _ => {
                        let p = rng.usize(0..site.pdus.max(1));
                        (
                            dev(site, Kind::Pdu(p)),
                            Signal::PduInputVoltage,
                            Reading::Value(0.0),
                            "pdu input 0 V",
                        )
                    }
                };
                w.glitches.push(Glitch {
                    device,
                    signal,
                    channel: 0,
                    from_s: at,
                    to_s: at + 10.0,
                    reading,
                    once: true,
                });
                what.push(format!("{label} at T0+{:.0}s", at - t0));
            }
            w.what = what.join(", ");
        }
        Family::UtilityDip => {
            let mut supply = utility(n, v_in);
            let dips = rng.usize(1..=3);
            let mut at = t0;
            let mut what = Vec::new();
            for _ in 0..dips {
                let d = uniform(rng, 0.2, 8.0);
                set(
                    &mut supply,
                    at,
                    at + d.max(1.0),
                    Supply::Absent(uniform32(rng, 0.0, 80.0)),
                );
                what.push(format!("{d:.1} s"));
                at += d + uniform(rng, 30.0, span.max(31.0));
            }
            let params = UpsParams::random(rng);
            w.ups = ups_trace(&supply, &params).0;
            w.what = format!(
                "utility dips of {}; UPS runtime {:.0} s (reported ×{:.2})",
                what.join(", "),
                params.full_s,
                1.0 + params.bias
            );
        }
        Family::UpsSelfTest => {
            let mut supply = utility(n, v_in);
            let len = uniform(rng, 5.0, 40.0);
            set(
                &mut supply,
                t0,
                t0 + len,
                Supply::SelfTest(uniform32(rng, 210.0, 240.0)),
            );
            let mut params = UpsParams::random(rng);
            if rng.f32() < 0.4 {
                // Some UPSes report a low runtime while testing.
                params.bias = uniform(rng, -0.9, -0.5);
            }
            w.ups = ups_trace(&supply, &params).0;
            w.what = format!("self-test {len:.0} s, runtime bias {:.2}", params.bias);
        }
        Family::GeneratorTransfer => {
            let mut supply = utility(n, v_in);
            // DOMAIN.md: a generator starts and takes the load in about 10–15 s.
            let takes = uniform(rng, 8.0, 20.0);
            let back = t0 + uniform(rng, 300.0, span.max(301.0));
            set(
                &mut supply,
                t0,
                t0 + takes,
                Supply::Absent(uniform32(rng, 0.0, 30.0)),
            );
            set(
                &mut supply,
                t0 + takes,
                back,
                Supply::Generator(uniform32(rng, 215.0, 240.0)),
            );
            let open = rng.bool();
            if open {
                set(
                    &mut supply,
                    back,
                    back + uniform(rng, 1.0, 2.0),
                    Supply::Absent(0.0),
                );
            }
            let params = UpsParams::random(rng);
            w.ups = ups_trace(&supply, &params).0;
            w.what = format!(
                "generator takes the load after {takes:.1} s; back to utility at T0+{:.0}s{}; \
                 UPS runtime {:.0} s (reported ×{:.2})",
                back - t0,
                if open { " (open transition)" } else { "" },
                params.full_s,
                1.0 + params.bias
            );
        }
        Family::HvacDrift => {
            let per_min = uniform(rng, 0.05, 0.3);
            let max = uniform(rng, 3.0, 16.0);
            let drift = Drift {
                from_s: t0,
                per_s: per_min / 60.0,
                max,
            };
            if rng.bool() {
                w.room_drift = Some(drift);
                w.what = format!("hall HVAC: room +{per_min:.2} °C/min up to +{max:.1} °C");
            } else {
                w.rack_hvac = Some(drift);
                w.what =
                    format!("battery-room HVAC: racks +{per_min:.2} °C/min up to +{max:.1} °C");
            }
        }
        Family::OffGasDrift => {
            let candidates: Vec<usize> = site
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.off_gas)
                .map(|(i, _)| i)
                .collect();
            let node = candidates
                .get(rng.usize(0..candidates.len().max(1)))
                .copied()
                .unwrap_or(0);
            let max = uniform(rng, 5.0, 60.0);
            let per_s = max / span.max(1.0);
            if let Some(Some(g)) = w.gas.get_mut(node) {
                g.drift = Some(Drift {
                    from_s: t0,
                    per_s,
                    max,
                });
            }
            w.what = format!(
                "node-{} off-gas drifts up {max:.0} ppm over {span:.0} s",
                node + 1
            );
        }
        Family::MqttStuck => {
            let room = dev(site, Kind::Room);
            let len = uniform(rng, 60.0, span.max(61.0));
            match rng.u8(0..3) {
                0 => {
                    let v = if rng.bool() {
                        w.room_base
                    } else {
                        uniform32(rng, 15.0, 45.0)
                    };
                    w.room_stuck = Some((t0, f64::MAX, v));
                    w.what = format!("room sensor stuck at {v:.1} °C");
                }
                1 => {
                    w.room_quiet.push((t0, t0 + len));
                    w.what = format!("room sensor stops publishing for {len:.0} s");
                }
                _ => {
                    w.silences.push((room, t0, t0 + len));
                    w.what = format!("broker link down for {len:.0} s");
                }
            }
        }
        Family::NodeReboot => {
            let mut what = Vec::new();
            let mut at = t0;
            for _ in 0..rng.usize(1..=3) {
                let kind = match rng.u8(0..10) {
                    0 | 1 if site.panel => Kind::Panel,
                    2 | 3 => Kind::Ups,
                    _ => Kind::Node(rng.usize(0..site.nodes.len().max(1))),
                };
                let d = dev(site, kind);
                let down = uniform(rng, 5.0, 90.0);
                w.silences.push((d, at, at + down));
                // First polls after the reboot: the ADC or the card is not ready yet.
                let settle = uniform(rng, 1.0, 12.0);
                match kind {
                    Kind::Node(node) => {
                        let channels = site.nodes.get(node).map_or(0, |x| x.channels);
                        for ch in 0..channels {
                            w.faults.push(Fault {
                                node,
                                target: Target::Probe(ch),
                                from_s: at + down,
                                to_s: at + down + settle,
                                mode: Mode::Sentinel(0x7FFF),
                            });
                        }
                        w.faults.push(Fault {
                            node,
                            target: Target::OffGas,
                            from_s: at + down,
                            to_s: at + down + settle,
                            mode: Mode::Jump(0.0),
                        });
                    }
                    Kind::Ups => {
                        w.glitches.push(Glitch {
                            device: d,
                            signal: Signal::UpsRuntimeRemaining,
                            channel: 0,
                            from_s: at + down,
                            to_s: at + down + settle,
                            reading: Reading::Value(0.0),
                            once: false,
                        });
                    }
                    _ => {}
                }
                what.push(format!("{kind:?} down {down:.0} s at T0+{:.0}s", at - t0));
                at += down + uniform(rng, 60.0, 400.0);
            }
            w.what = what.join(", ");
        }
        Family::NetworkCut => {
            let len = uniform(rng, 5.0, 900.0);
            let cut: Vec<usize> = match rng.u8(0..10) {
                0..=2 => vec![rng.usize(0..site.devices.len().max(1))],
                3..=5 => {
                    let zone = rng.usize(0..2);
                    site.devices
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| d.zone == zone)
                        .map(|(i, _)| i)
                        .collect()
                }
                _ => (0..site.devices.len()).collect(),
            };
            for &d in &cut {
                w.silences.push((d, t0, t0 + len));
            }
            w.what = format!("network to {} device(s) cut for {len:.0} s", cut.len());
        }
        _ => {}
    }
    w
}

/// The fire's strength at the off-gas sensors.
#[derive(Debug, Clone, Copy)]
enum GasKind {
    Strong,
    Weak,
    Absent,
    Ventilated,
}

#[allow(clippy::too_many_lines)]
fn fire_or_outage(family: Family, site: &Site, rng: &mut fastrand::Rng, budget_s: f64) -> World {
    match family {
        Family::GeneratorFails | Family::GeneratorTrips => {
            return outage(family, site, rng, budget_s);
        }
        _ => {}
    }
    let gas_kind = match family {
        Family::FireOffGasStrong => GasKind::Strong,
        Family::FireOffGasWeak => GasKind::Weak,
        Family::FireOffGasAbsent => GasKind::Absent,
        Family::FireVentilated => GasKind::Ventilated,
        _ => match rng.u8(0..10) {
            0..=4 => GasKind::Strong,
            5..=7 => GasKind::Weak,
            8 => GasKind::Ventilated,
            _ => GasKind::Absent,
        },
    };
    // DOMAIN.md: off-gas precedes a measurable temperature rise by 5–30 min (strong); in a
    // ventilated room the window shrinks to a few minutes and the signal is weak.
    let (gas_lead, gas_peak) = match gas_kind {
        GasKind::Strong => (uniform(rng, 300.0, 1800.0), uniform(rng, 60.0, 500.0)),
        GasKind::Weak => (uniform(rng, 120.0, 600.0), uniform(rng, 20.0, 60.0)),
        GasKind::Ventilated => (uniform(rng, 60.0, 300.0), uniform(rng, 2.0, 18.0)),
        GasKind::Absent => (0.0, 0.0),
    };
    // DOMAIN.md: one rack warms from T−5 min at a few °C/min, runs away after T0.
    let heat_lead = uniform(rng, 120.0, 480.0);
    let lead_in = gas_lead.max(heat_lead) + uniform(rng, 240.0, 420.0);
    let t0 = lead_in;
    // DOMAIN.md: UPS units near the room fail at about T+8 min; "most servers down from the
    // first moments" for one tenant.
    let loss_after = if rng.f32() < 0.15 {
        uniform(rng, 60.0, 300.0)
    } else {
        uniform(rng, 300.0, 660.0)
    };
    let loss = t0 + loss_after;
    let duration = loss + 60.0;
    let mut w = World::new(site, rng, duration, t0);
    let n = duration as usize + 2;
    w.heat = Some(Heat {
        onset_s: t0 - heat_lead,
        rate1: uniform(rng, 1.5, 5.0) / 60.0,
        knee_s: t0 + uniform(rng, -60.0, 120.0),
        rate2: uniform(rng, 10.0, 40.0) / 60.0,
    });
    // The burning rack: node-1 probe 0; probe 1 on the same rack half the time.
    let same_rack = rng.bool();
    for (ni, node) in w.probes.iter_mut().enumerate() {
        for (ch, p) in node.iter_mut().enumerate() {
            let (c, lag) = match (ni, ch) {
                (0, 0) => (1.0, uniform(rng, 0.0, 30.0)),
                (0, 1) if same_rack => (uniform32(rng, 0.6, 1.0), uniform(rng, 10.0, 60.0)),
                (0, _) => (uniform32(rng, 0.1, 0.5), uniform(rng, 60.0, 240.0)),
                _ => (uniform32(rng, 0.05, 0.4), uniform(rng, 120.0, 400.0)),
            };
            p.coupling = c;
            p.lag_s = lag;
        }
    }
    if !matches!(gas_kind, GasKind::Absent) {
        w.gas_fire = Some(GasFire {
            onset_s: t0 - gas_lead,
            peak_s: t0 + 60.0,
            peak: gas_peak,
        });
    }
    for (ni, g) in w.gas.iter_mut().enumerate() {
        if let Some(g) = g
            && ni > 0
        {
            g.share = uniform32(rng, 0.3, 1.0);
            g.lag_s = uniform(rng, 30.0, 180.0);
        }
    }
    w.smoke_at = Some(t0);
    if rng.f32() < 0.8 {
        w.suppression_at = Some(t0 + uniform(rng, 10.0, 90.0));
    }
    // A basement fire barely warms the hall.
    w.room_drift = Some(Drift {
        from_s: t0 + 60.0,
        per_s: uniform(rng, 0.0, 0.5) / 60.0,
        max: 10.0,
    });
    // The battery room's node burns: its cable, like 2022.
    let node_death = match family {
        Family::FireNodeLost => t0 + uniform(rng, -600.0, 240.0),
        _ => t0 + uniform(rng, 180.0, 900.0),
    };
    let node1 = dev(site, Kind::Node(0));
    let node2 = dev(site, Kind::Node(1));
    let panel = dev(site, Kind::Panel);
    let ups = dev(site, Kind::Ups);
    let shared_cable = rng.bool();
    let set_dead = |w: &mut World, d: usize, at: f64| {
        if let Some(slot) = w.dead_at.get_mut(d) {
            *slot = Some(slot.map_or(at, |x: f64| x.min(at)));
        }
    };
    set_dead(&mut w, node1, node_death);
    let panel_death = if family == Family::FireNodeLost && rng.f32() < 0.4 {
        Some(node_death + uniform(rng, 0.0, 60.0))
    } else {
        None
    };
    if let Some(p) = panel_death {
        set_dead(&mut w, panel, p);
    }
    if shared_cable {
        set_dead(&mut w, node2, node_death + uniform(rng, 0.0, 30.0));
    }
    // Power: the UPS near the room fails at `loss`; sometimes the heat reaches the switchgear
    // first and the UPS goes on battery with the utility gone (its runtime is still long).
    let mut supply = utility(n, w.ups.first().map_or(230.0, |u| u.input_v));
    let switchgear = rng.f32() < 0.3 || (family == Family::FireUpsCardDies && rng.bool());
    let on_battery_at = t0 + uniform(rng, 60.0, (loss_after - 30.0).max(61.0));
    if switchgear && on_battery_at < loss {
        set(&mut supply, on_battery_at, f64::MAX, Supply::Absent(0.0));
    }
    let mut params = UpsParams::random(rng);
    params.full_s = params.full_s.max(loss_after + 120.0);
    w.ups = ups_trace(&supply, &params).0;
    let card_death = (family == Family::FireUpsCardDies)
        .then(|| t0 + uniform(rng, 0.0, (loss_after - 10.0).max(1.0)));
    set_dead(&mut w, ups, card_death.unwrap_or(loss).min(loss));
    // Servers lose power: the UPS dies; the PDUs read 0 V, then go silent; the MQTT room
    // sensor and the nodes (on the same power) go quiet.
    w.pdu_feed_lost_at = Some(loss);
    for p in 0..site.pdus {
        let grace = uniform(rng, 0.0, 10.0);
        set_dead(&mut w, dev(site, Kind::Pdu(p)), loss + grace);
    }
    set_dead(&mut w, dev(site, Kind::Room), loss);
    set_dead(&mut w, node1, loss);
    set_dead(&mut w, node2, loss);
    let (catchable, why) = fire_oracle(&w, site, loss, budget_s);
    w.expect = Expect::PowerLoss {
        power_loss_s: loss,
        catchable,
        why,
    };
    w.what = format!(
        "off-gas {gas_kind:?} (lead {:.0} s, peak {gas_peak:.0} ppm), heat from T−{heat_lead:.0}s, \
         power lost T+{loss_after:.0}s, node-1 lost T{:+.0}s{}{}{}{}",
        gas_lead,
        node_death - t0,
        if shared_cable && site.nodes.len() > 1 {
            ", node-2 too"
        } else {
            ""
        },
        panel_death.map_or(String::new(), |p| format!(", panel lost T{:+.0}s", p - t0)),
        if switchgear && on_battery_at < loss {
            format!(", UPS on battery T+{:.0}s", on_battery_at - t0)
        } else {
            String::new()
        },
        card_death.map_or(String::new(), |c| format!(
            ", UPS card dies T+{:.0}s",
            c - t0
        )),
    );
    w
}

/// Is the fire catchable at all with the sensors alive? The earliest moment two independent
/// witnesses (a different device or a different physics: off-gas of a node, heat of a node,
/// the panel) truthfully show evidence — each held once shown, even if its device then dies —
/// plus 10 s of polling, must leave the budget before the power loss.
fn fire_oracle(w: &World, site: &Site, loss: f64, budget_s: f64) -> (bool, String) {
    let mut witnesses: Vec<(f64, String)> = Vec::new();
    for (ni, node) in site.nodes.iter().enumerate() {
        let death = w
            .dead_at
            .get(dev(site, Kind::Node(ni)))
            .copied()
            .flatten()
            .unwrap_or(f64::MAX)
            .min(loss);
        // Off-gas ≥ 20 ppm held 30 s.
        if node.off_gas {
            let mut since = None;
            let mut t = 0.0;
            while t < death {
                if w.gas_true(ni, t).unwrap_or(0.0) >= 20.0 {
                    let s = *since.get_or_insert(t);
                    if t - s >= 30.0 {
                        witnesses.push((t, format!("off-gas@node-{}", ni + 1)));
                        break;
                    }
                } else {
                    since = None;
                }
                t += 1.0;
            }
        }
        // Heat: ≥ 1 °C/min over 180 s for 30 s, or ≥ 60 °C for 10 s, on a probe not burnt.
        let mut found = None;
        for ch in 0..usize::from(node.channels) {
            let burns = w
                .probes
                .get(ni)
                .and_then(|p| p.get(ch))
                .map_or(f32::MAX, |p| p.burns_at);
            let mut since = None;
            let mut t = 180.0;
            while t < death {
                let now = w.probe_true(ni, ch, t);
                if now >= f64::from(burns) {
                    break;
                }
                let hot = now - w.probe_true(ni, ch, t - 180.0) >= 3.0 || now >= 60.0;
                if hot {
                    let s = *since.get_or_insert(t);
                    if t - s >= 30.0 {
                        found = Some(found.map_or(t, |f: f64| f.min(t)));
                        break;
                    }
                } else {
                    since = None;
                }
                t += 1.0;
            }
        }
        if let Some(t) = found {
            witnesses.push((t, format!("heat@node-{}", ni + 1)));
        }
    }
    if site.panel {
        let death = w
            .dead_at
            .get(dev(site, Kind::Panel))
            .copied()
            .flatten()
            .unwrap_or(f64::MAX);
        let first = [w.smoke_at, w.suppression_at]
            .into_iter()
            .flatten()
            .map(|t| t + 3.0)
            .fold(f64::MAX, f64::min);
        if first < death && first < loss {
            witnesses.push((first, "panel".to_string()));
        }
    }
    witnesses.sort_by(|a, b| a.0.total_cmp(&b.0));
    let deadline = loss - budget_s;
    match witnesses.get(1) {
        Some((t, _)) if t + 10.0 <= deadline => (true, String::new()),
        Some((t, who)) => (
            false,
            format!(
                "second independent witness ({who}) only at T{:+.0}s, {:.0} s before power loss",
                t - w.t0_s,
                loss - t
            ),
        ),
        None => (
            false,
            format!(
                "fewer than two independent witnesses before power loss ({})",
                witnesses
                    .iter()
                    .map(|(_, w)| w.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    }
}

fn outage(family: Family, site: &Site, rng: &mut fastrand::Rng, budget_s: f64) -> World {
    let t0 = uniform(rng, 300.0, 600.0);
    let mut params = UpsParams::random(rng);
    // Generator trips: it took the load first, for 1–20 minutes.
    let trip = (family == Family::GeneratorTrips).then(|| uniform(rng, 60.0, 1200.0));
    let horizon = t0 + trip.unwrap_or(0.0) + 40.0 + params.full_s * 1.5 + 120.0;
    let mut w = World::new(site, rng, horizon, t0);
    let n = horizon as usize + 2;
    let v = w.ups.first().map_or(230.0, |u| u.input_v);
    let mut supply = utility(n, v);
    let residual = uniform32(rng, 0.0, 60.0);
    let outage_start = match trip {
        Some(run) => {
            let takes = uniform(rng, 8.0, 15.0);
            set(&mut supply, t0, t0 + takes, Supply::Absent(residual));
            set(
                &mut supply,
                t0 + takes,
                t0 + takes + run,
                Supply::Generator(uniform32(rng, 215.0, 240.0)),
            );
            set(
                &mut supply,
                t0 + takes + run,
                f64::MAX,
                Supply::Absent(residual),
            );
            t0 + takes + run
        }
        None => {
            set(&mut supply, t0, f64::MAX, Supply::Absent(residual));
            t0
        }
    };
    if rng.f32() < 0.2 {
        // An aged battery.
        params.full_s *= uniform(rng, 0.4, 0.8);
    }
    let (ups, loss) = ups_trace(&supply, &params);
    w.ups = ups;
    let loss = loss.unwrap_or(horizon);
    w.duration_s = loss + 60.0;
    w.pdu_feed_lost_at = Some(loss);
    for d in 0..site.devices.len() {
        let kind = site.devices.get(d).map(|x| x.kind);
        let at = match kind {
            Some(Kind::Pdu(_)) => loss + uniform(rng, 0.0, 10.0),
            Some(Kind::Panel) => continue,
            _ => loss,
        };
        if let Some(slot) = w.dead_at.get_mut(d) {
            *slot = Some(at);
        }
    }
    // Sound evacuation is possible once the generator is overdue (30 s) or the runtime says so.
    let left = loss - (outage_start + 30.0);
    let catchable = left >= budget_s;
    w.expect = Expect::PowerLoss {
        power_loss_s: loss,
        catchable,
        why: if catchable {
            String::new()
        } else {
            format!(
                "runtime {:.0} s: less than the budget after the generator is overdue",
                loss - outage_start
            )
        },
    };
    w.what = format!(
        "utility lost at T0{}; runtime {:.0} s at {:.0} % load (+{:.3} %/s), estimator bias {:+.2}, \
         updated every {} s; power lost T+{:.0}s",
        trip.map_or(String::new(), |r| format!(
            ", generator runs {r:.0} s then trips"
        )),
        loss - outage_start,
        params.load0,
        params.load_rise,
        params.bias,
        params.update_s,
        loss - t0
    );
    w
}
