//! The simulated site: its devices, and the gateway's signal table emulated in virtual time.
//!
//! Every device is polled at its own period (1–5 s) and phase; the table reports a sample only
//! when its value or its quality changes; a value turns `stale` when older than the device's
//! freshness window and `comm-lost` after `comm_lost_after` missed polls in a row, exactly as
//! `acquire::table` does. The MQTT room sensor publishes at its own period; its link going
//! down makes it `comm-lost` at once (`comm_lost_after` = 1, as the table does for MQTT).
//! Readings are quantised like the registers of the built-in profiles (0.1 °C, 0.1 V, 1 ppm,
//! 1 s, 1 %) and classified like the decoder: sentinels are `sensor-fault`, values outside the
//! profile's valid range `out-of-range`.

use firebreak_protocols::{
    DeviceId, GatewayId, IdError, Level, Quality, Sample, Signal, SiteId, ZoneId,
};

use crate::policy::{Engine, Policy, Topology};

use super::families::World;

/// Zone index of the battery room.
pub const BATTERY_ROOM: usize = 0;
/// Zone index of the hall.
pub const HALL: usize = 1;
/// Zone names, by index.
pub const ZONES: [&str; 2] = ["battery-room", "hall"];

/// Virtual epoch of every timeline, in ms.
pub const EPOCH_MS: u64 = 1_700_000_000_000;

/// What a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Battery-room sensor node `n` (0-based): rack probes and maybe off-gas.
    Node(usize),
    /// The fire panel: smoke alarm, suppression released.
    Panel,
    /// The UPS.
    Ups,
    /// PDU `n` (0-based) of the hall.
    Pdu(usize),
    /// The MQTT room sensor of the hall.
    Room,
}

/// One device of the simulated site.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// Its id.
    pub id: DeviceId,
    /// What it is.
    pub kind: Kind,
    /// Its zone (index into [`ZONES`]).
    pub zone: usize,
    /// Poll (or publish) period, ms.
    pub period_ms: u64,
    /// First poll, ms after the start.
    pub phase_ms: u64,
    /// Missed polls in a row before comm-lost.
    pub comm_lost_after: u32,
    /// Values older than this are stale, ms.
    pub freshness_ms: u64,
    /// Its signals.
    pub signals: Vec<(Signal, u8)>,
    /// MQTT (publishes) rather than Modbus (polled).
    pub mqtt: bool,
}

/// One battery-room sensor node.
#[derive(Debug, Clone, Copy)]
pub struct NodeSpec {
    /// Rack probes wired (channels 0..n).
    pub channels: u8,
    /// Whether it has an off-gas sensor.
    pub off_gas: bool,
}

/// The simulated site.
#[derive(Debug, Clone)]
pub struct Site {
    /// Every device.
    pub devices: Vec<DeviceSpec>,
    /// The sensor nodes.
    pub nodes: Vec<NodeSpec>,
    /// Whether there is a fire panel.
    pub panel: bool,
    /// PDUs in the hall.
    pub pdus: usize,
}

impl Site {
    /// A random site: one or two nodes of 1–4 probes, with or without a panel, 2–4 PDUs,
    /// random poll periods, phases, freshness windows and comm-lost counts.
    pub fn random(rng: &mut fastrand::Rng) -> Result<Site, IdError> {
        let two_nodes = rng.bool();
        let mut nodes = vec![NodeSpec {
            channels: rng.u8(2..=4),
            off_gas: true,
        }];
        if two_nodes {
            nodes.push(NodeSpec {
                channels: rng.u8(1..=4),
                off_gas: rng.bool(),
            });
        }
        let panel = rng.f32() < 0.7;
        let pdus = rng.usize(2..=4);
        let mut devices = Vec::new();
        let modbus = |rng: &mut fastrand::Rng, name: &str, kind, zone, signals| {
            let period_ms = rng.u64(1..=5) * 1000;
            Ok::<_, IdError>(DeviceSpec {
                id: DeviceId::new(name)?,
                kind,
                zone,
                period_ms,
                phase_ms: rng.u64(0..period_ms),
                comm_lost_after: rng.u32(2..=4),
                freshness_ms: period_ms * rng.u64(2..=4),
                signals,
                mqtt: false,
            })
        };
        for (n, node) in nodes.iter().enumerate() {
            let mut signals: Vec<(Signal, u8)> = (0..node.channels)
                .map(|c| (Signal::RackTemperature, c))
                .collect();
            if node.off_gas {
                signals.push((Signal::OffGas, 0));
            }
            let name = format!("node-{}", n + 1);
            devices.push(modbus(rng, &name, Kind::Node(n), BATTERY_ROOM, signals)?);
        }
        if panel {
            devices.push(modbus(
                rng,
                "panel",
                Kind::Panel,
                BATTERY_ROOM,
                vec![(Signal::SmokeAlarm, 0), (Signal::SuppressionReleased, 0)],
            )?);
        }
        devices.push(modbus(
            rng,
            "ups",
            Kind::Ups,
            HALL,
            vec![
                (Signal::UpsOnBattery, 0),
                (Signal::UpsInputVoltage, 0),
                (Signal::UpsRuntimeRemaining, 0),
                (Signal::UpsLoad, 0),
                (Signal::UpsLowBattery, 0),
            ],
        )?);
        for p in 0..pdus {
            let name = format!("pdu-{}", p + 1);
            devices.push(modbus(
                rng,
                &name,
                Kind::Pdu(p),
                HALL,
                vec![(Signal::PduInputVoltage, 0)],
            )?);
        }
        let period_ms = rng.u64(5..=30) * 1000;
        devices.push(DeviceSpec {
            id: DeviceId::new("room")?,
            kind: Kind::Room,
            zone: HALL,
            period_ms,
            phase_ms: rng.u64(0..period_ms),
            comm_lost_after: 1,
            freshness_ms: 60_000,
            signals: vec![(Signal::RoomTemperature, 0)],
            mqtt: true,
        });
        Ok(Site {
            devices,
            nodes,
            panel,
            pdus,
        })
    }

    /// The index of the device of this kind.
    pub fn device(&self, kind: Kind) -> Option<usize> {
        self.devices.iter().position(|d| d.kind == kind)
    }

    /// The engine's view of the site.
    pub fn topology(&self) -> Result<Topology, IdError> {
        let zone = |i: usize| ZoneId::new(ZONES.get(i).copied().unwrap_or("hall"));
        Ok(Topology {
            site: SiteId::new("campaign")?,
            gateway: GatewayId::new("gw")?,
            zones: vec![zone(BATTERY_ROOM)?, zone(HALL)?],
            devices: self
                .devices
                .iter()
                .map(|d| Ok((d.id.clone(), zone(d.zone)?)))
                .collect::<Result<_, IdError>>()?,
            witnesses: Vec::new(),
        })
    }

    /// One line describing the site.
    pub fn describe(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "{} probes{}",
                    n.channels,
                    if n.off_gas { " + off-gas" } else { "" }
                )
            })
            .collect();
        format!(
            "nodes [{}], panel {}, {} PDUs; polls {}",
            nodes.join("; "),
            if self.panel { "yes" } else { "no" },
            self.pdus,
            self.devices
                .iter()
                .map(|d| format!(
                    "{} {}s/+{}ms lost@{} fresh {}s",
                    d.id,
                    d.period_ms / 1000,
                    d.phase_ms,
                    d.comm_lost_after,
                    d.freshness_ms / 1000
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// What a device returned for one signal, before decoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    /// A value in the signal's unit (quantised and range-checked by decoding).
    Value(f32),
    /// A sentinel register value (0x7FFF, 0xFFFF): a sensor fault.
    Sentinel(u16),
}

/// Decodes a reading like the built-in profiles: quantisation, sentinels, valid ranges.
pub fn decode(signal: Signal, r: Reading) -> (f32, Quality) {
    let (step, lo, hi) = match signal {
        Signal::RackTemperature => (0.1, -40.0, 200.0),
        Signal::RoomTemperature => (0.1, -40.0, 85.0),
        Signal::OffGas => (1.0, 0.0, 10_000.0),
        Signal::UpsInputVoltage | Signal::PduInputVoltage => (0.1, 0.0, 600.0),
        Signal::UpsRuntimeRemaining => (1.0, 0.0, 65_535.0),
        Signal::UpsLoad => (1.0, 0.0, 250.0),
        _ => (1.0, 0.0, 1.0),
    };
    match r {
        Reading::Sentinel(raw) => {
            let v = match signal {
                // Signed, 0.1 °C: 0x7FFF reads 3276.7, 0xFFFF reads -0.1.
                Signal::RackTemperature | Signal::RoomTemperature => f32::from(raw as i16) * 0.1,
                _ => f32::from(raw) * step,
            };
            (v, Quality::SensorFault)
        }
        Reading::Value(v) => {
            let q = (v / step).round() * step;
            if !q.is_finite() {
                (q, Quality::SensorFault)
            } else if q < lo || q > hi {
                (q, Quality::OutOfRange)
            } else {
                (q, Quality::Good)
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    value: f32,
    timestamp_ms: u64,
    quality: Quality,
    reported: Quality,
}

#[derive(Debug, Clone)]
struct DeviceState {
    next_ms: u64,
    missed: u32,
    comm_lost: bool,
    entries: Vec<Option<Entry>>,
}

/// What one timeline did to the engine.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Seconds from the start of the first site transition to watch, prepare, evacuate.
    pub first_s: [Option<f64>; 3],
    /// The highest site level reached.
    pub max: Option<Level>,
    /// Engine steps.
    pub steps: u64,
    /// Samples handed to the engine.
    pub samples: u64,
    /// Site transitions, (seconds from start, level), when asked for.
    pub trace: Vec<(f64, Level, String)>,
}

fn sample(spec: &DeviceSpec, key: (Signal, u8), e: &Entry, quality: Quality) -> Sample {
    Sample {
        device: spec.id.clone(),
        signal: key.0,
        channel: key.1,
        value: e.value,
        unit: key.0.unit(),
        timestamp_ms: EPOCH_MS + e.timestamp_ms,
        quality,
    }
}

fn requalify(spec: &DeviceSpec, dev: &mut DeviceState, now_ms: u64, out: &mut Vec<Sample>) {
    let comm_lost = dev.comm_lost;
    for (key, slot) in spec.signals.iter().zip(dev.entries.iter_mut()) {
        let Some(e) = slot else { continue };
        let q = if comm_lost {
            Quality::CommLost
        } else if now_ms.saturating_sub(e.timestamp_ms) > spec.freshness_ms {
            Quality::Stale
        } else {
            e.quality
        };
        if q != e.reported {
            e.reported = q;
            out.push(sample(spec, *key, e, q));
        }
    }
}

/// Replays `world` on `site` through an engine running `policy`, in virtual time: polls at
/// their instants, the engine stepped at every poll that changed something and every second.
/// The replay ends at [`World::end_s`] (fires: 30 s after the power loss).
pub fn simulate(
    site: &Site,
    world: &World,
    policy: &Policy,
    noise_seed: u64,
    trace: bool,
) -> Result<Run, IdError> {
    let mut rng = fastrand::Rng::with_seed(noise_seed);
    let mut engine = Engine::new(policy.clone(), &site.topology()?);
    let mut devs: Vec<DeviceState> = site
        .devices
        .iter()
        .map(|d| DeviceState {
            next_ms: d.phase_ms,
            missed: 0,
            comm_lost: false,
            entries: vec![None; d.signals.len()],
        })
        .collect();
    let mut glitch_used = vec![false; world.glitches.len()];
    let end_ms = (world.end_s() * 1000.0) as u64;
    let mut next_tick = 1000u64;
    let mut run = Run::default();
    let mut samples: Vec<Sample> = Vec::with_capacity(32);
    loop {
        let next_poll = devs.iter().map(|d| d.next_ms).min().unwrap_or(u64::MAX);
        let now = next_poll.min(next_tick);
        if now > end_ms {
            break;
        }
        samples.clear();
        let t_s = now as f64 / 1000.0;
        let tick = now == next_tick;
        for (i, (spec, dev)) in site.devices.iter().zip(devs.iter_mut()).enumerate() {
            if dev.next_ms != now {
                continue;
            }
            dev.next_ms += spec.period_ms;
            if spec.mqtt {
                if world.link_down(i, t_s) || !world.publishes(i, t_s) {
                    continue;
                }
                let recovered = std::mem::replace(&mut dev.comm_lost, false);
                dev.missed = 0;
                store(
                    spec,
                    dev,
                    world,
                    i,
                    t_s,
                    now,
                    &mut rng,
                    &mut glitch_used,
                    &mut samples,
                );
                if recovered {
                    requalify(spec, dev, now, &mut samples);
                }
            } else {
                if world.answers(i, t_s) {
                    dev.missed = 0;
                    dev.comm_lost = false;
                    store(
                        spec,
                        dev,
                        world,
                        i,
                        t_s,
                        now,
                        &mut rng,
                        &mut glitch_used,
                        &mut samples,
                    );
                } else {
                    dev.missed = dev.missed.saturating_add(1);
                    dev.comm_lost = dev.missed >= spec.comm_lost_after;
                }
                requalify(spec, dev, now, &mut samples);
            }
        }
        if tick {
            next_tick += 1000;
            for (i, (spec, dev)) in site.devices.iter().zip(devs.iter_mut()).enumerate() {
                if spec.mqtt && !dev.comm_lost && world.link_down(i, t_s) {
                    // The broker link went down: comm-lost at once.
                    dev.comm_lost = true;
                }
                requalify(spec, dev, now, &mut samples);
            }
        }
        if samples.is_empty() && !tick {
            continue;
        }
        run.steps += 1;
        run.samples += samples.len() as u64;
        for tr in engine.step(EPOCH_MS + now, &samples) {
            if tr.zone.is_some() {
                continue;
            }
            if let Some(slot) = (tr.level as usize)
                .checked_sub(1)
                .and_then(|i| run.first_s.get_mut(i))
            {
                slot.get_or_insert(t_s);
            }
            run.max = Some(run.max.map_or(tr.level, |m| m.max(tr.level)));
            if trace {
                let why: Vec<String> = tr
                    .reasons
                    .iter()
                    .map(|r| {
                        format!(
                            "{}({}{})",
                            r.rule,
                            r.device.as_ref().map_or("", |d| d.as_str()),
                            if r.channel > 0 {
                                format!("#{}", r.channel)
                            } else {
                                String::new()
                            }
                        )
                    })
                    .collect();
                run.trace.push((t_s, tr.level, why.join(" ")));
            }
        }
    }
    Ok(run)
}

#[allow(clippy::too_many_arguments)]
fn store(
    spec: &DeviceSpec,
    dev: &mut DeviceState,
    world: &World,
    i: usize,
    t_s: f64,
    now: u64,
    rng: &mut fastrand::Rng,
    glitch_used: &mut [bool],
    out: &mut Vec<Sample>,
) {
    for (key, slot) in spec.signals.iter().zip(dev.entries.iter_mut()) {
        let mut reading = world.read(i, key.0, key.1, t_s, rng);
        for (g, used) in world.glitches.iter().zip(glitch_used.iter_mut()) {
            if g.device == i
                && g.signal == key.0
                && g.channel == key.1
                && t_s >= g.from_s
                && t_s < g.to_s
                && !(g.once && *used)
            {
                *used = true;
                reading = g.reading;
            }
        }
        let (value, quality) = decode(key.0, reading);
        let changed = slot
            .as_ref()
            .is_none_or(|e| e.value.to_bits() != value.to_bits() || e.reported != quality);
        let e = Entry {
            value,
            timestamp_ms: now,
            quality,
            reported: quality,
        };
        if changed {
            out.push(sample(spec, *key, &e, quality));
        }
        *slot = Some(e);
    }
}
