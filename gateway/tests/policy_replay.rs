//! Whole incidents replayed through the policy engine in virtual time, with the default
//! rules: the level reached, when, and the lead time before the modelled power loss.
//!
//! The scenario shapes come from ../shared/DOMAIN.md. `replay_table_is_in_the_docs` writes
//! the result table into docs/policy.md (`UPDATE_DOCS=1`) or checks it is there.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

use firebreak_gateway::policy::{Engine, Policy, Topology, Transition};
use firebreak_protocols::{DeviceId, GatewayId, Level, Quality, Sample, Signal, SiteId, ZoneId};

/// Seconds before T0 every scenario starts, so rates and holds have history.
const LEAD_IN_S: i64 = 20 * 60;

/// A value that moves linearly between (time from T0 in seconds, value) points.
fn pl(t: i64, points: &[(i64, f32)]) -> f32 {
    let Some(&(t0, v0)) = points.first() else {
        return 0.0;
    };
    if t <= t0 {
        return v0;
    }
    for w in points.windows(2) {
        let ((a, va), (b, vb)) = (w[0], w[1]);
        if t <= b {
            return va + (vb - va) * (t - a) as f32 / (b - a) as f32;
        }
    }
    points.last().unwrap().1
}

fn s(device: &str, signal: Signal, channel: u8, value: f32, quality: Quality) -> Sample {
    Sample {
        device: DeviceId::new(device).unwrap(),
        signal,
        channel,
        value,
        unit: signal.unit(),
        timestamp_ms: 0,
        quality,
    }
}

/// The replayed site: a battery room with a sensor node and the fire panel; a hall with the
/// UPS, four PDUs and a room sensor.
fn topology() -> Topology {
    let z = |n| ZoneId::new(n).unwrap();
    let d = |n| DeviceId::new(n).unwrap();
    Topology {
        site: SiteId::new("replay").unwrap(),
        gateway: GatewayId::new("gw").unwrap(),
        zones: vec![z("battery-room"), z("hall")],
        devices: vec![
            (d("node"), z("battery-room")),
            (d("panel"), z("battery-room")),
            (d("ups"), z("hall")),
            (d("pdu-1"), z("hall")),
            (d("pdu-2"), z("hall")),
            (d("pdu-3"), z("hall")),
            (d("pdu-4"), z("hall")),
            (d("room"), z("hall")),
        ],
        witnesses: Vec::new(),
    }
}

/// The state of the site at one moment; `None` fields mean "normal".
#[derive(Clone)]
struct World {
    rack: [Option<(f32, Quality)>; 2],
    off_gas: f32,
    smoke: bool,
    suppression: bool,
    ups_on_battery: bool,
    ups_input_v: f32,
    ups_runtime_s: f32,
    ups_load: f32,
    pdu_input_v: [f32; 4],
    room_c: f32,
    /// Devices that do not answer.
    silent: Vec<&'static str>,
}

impl Default for World {
    fn default() -> Self {
        World {
            rack: [Some((24.0, Quality::Good)), Some((24.5, Quality::Good))],
            off_gas: 0.5,
            smoke: false,
            suppression: false,
            ups_on_battery: false,
            ups_input_v: 230.0,
            ups_runtime_s: 900.0,
            ups_load: 55.0,
            pdu_input_v: [230.0; 4],
            room_c: 24.0,
            silent: Vec::new(),
        }
    }
}

impl World {
    /// What the gateway's table would hand the engine after one poll of every device.
    fn samples(&self) -> Vec<Sample> {
        let mut out = Vec::new();
        let mut add = |device: &'static str, signal, channel, value: f32, q: Quality| {
            let q = if self.silent.contains(&device) {
                Quality::CommLost
            } else {
                q
            };
            out.push(s(device, signal, channel, value, q));
        };
        for (ch, probe) in self.rack.iter().enumerate() {
            let (v, q) = probe.unwrap_or((0.0, Quality::SensorFault));
            add("node", Signal::RackTemperature, ch as u8, v, q);
        }
        add("node", Signal::OffGas, 0, self.off_gas, Quality::Good);
        let flag = |b: bool| f32::from(u8::from(b));
        add(
            "panel",
            Signal::SmokeAlarm,
            0,
            flag(self.smoke),
            Quality::Good,
        );
        add(
            "panel",
            Signal::SuppressionReleased,
            0,
            flag(self.suppression),
            Quality::Good,
        );
        add(
            "ups",
            Signal::UpsOnBattery,
            0,
            flag(self.ups_on_battery),
            Quality::Good,
        );
        add(
            "ups",
            Signal::UpsInputVoltage,
            0,
            self.ups_input_v,
            Quality::Good,
        );
        add(
            "ups",
            Signal::UpsRuntimeRemaining,
            0,
            self.ups_runtime_s,
            Quality::Good,
        );
        add("ups", Signal::UpsLoad, 0, self.ups_load, Quality::Good);
        for (i, v) in self.pdu_input_v.iter().enumerate() {
            let name = ["pdu-1", "pdu-2", "pdu-3", "pdu-4"][i];
            add(name, Signal::PduInputVoltage, 0, *v, Quality::Good);
        }
        add(
            "room",
            Signal::RoomTemperature,
            0,
            self.room_c,
            Quality::Good,
        );
        out
    }
}

/// What a scenario must show.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// `evacuate` at least the evacuation budget before power loss.
    EvacuateInTime,
    /// Never above this level.
    NeverAbove(Level),
    /// `evacuate`, then back to `normal` by this many seconds after T0.
    EvacuateThenNormalBy(i64),
}

struct Scenario {
    name: &'static str,
    what: &'static str,
    /// Seconds after T0 the replay ends.
    until_s: i64,
    /// When servers lose power, seconds from T0.
    power_loss_s: Option<i64>,
    expect: Expect,
    world: fn(i64) -> World,
}

fn battery_fire(t: i64, off_gas_peak: f32) -> World {
    let mut w = World {
        // Off-gas from T-12 min; one rack warms from T-5 min at about 3 °C/min, then runs
        // away after T0; the second probe of the rack follows two minutes later.
        off_gas: pl(
            t,
            &[(-720, 0.5), (-480, off_gas_peak * 0.3), (0, off_gas_peak)],
        ),
        rack: [
            Some((
                pl(t, &[(-300, 25.0), (0, 40.0), (240, 160.0)]),
                Quality::Good,
            )),
            Some((
                pl(t, &[(-180, 25.0), (0, 32.0), (300, 140.0)]),
                Quality::Good,
            )),
        ],
        smoke: t >= 0,
        suppression: t >= 20,
        room_c: pl(t, &[(0, 24.0), (480, 38.0)]),
        ..World::default()
    };
    // The rack probes and the node burn at T+6 min; the UPS near the room fails at T+8 min:
    // the hall loses power and every device there goes silent.
    if t >= 360 {
        w.silent.extend(["node", "panel"]);
    }
    if t >= 480 {
        w.silent
            .extend(["ups", "pdu-1", "pdu-2", "pdu-3", "pdu-4", "room"]);
    }
    w
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "battery-room-fire",
            what: "incident-like: off-gas from T-12 min, rack warming from T-5 min, smoke at T0, UPS fails at T+8 min",
            until_s: 900,
            power_loss_s: Some(480),
            expect: Expect::EvacuateInTime,
            world: |t| battery_fire(t, 250.0),
        },
        Scenario {
            name: "ventilated-fire",
            what: "the same fire in a ventilated room: off-gas peaks at 12 ppm, temperature carries the evidence",
            until_s: 900,
            power_loss_s: Some(480),
            expect: Expect::EvacuateInTime,
            world: |t| battery_fire(t, 12.0),
        },
        Scenario {
            name: "generator-fails",
            what: "utility lost at T0, generator never starts: UPS on battery, 10 min runtime runs out",
            until_s: 700,
            power_loss_s: Some(600),
            expect: Expect::EvacuateInTime,
            world: |t| {
                let mut w = World::default();
                if t >= 0 {
                    w.ups_on_battery = true;
                    w.ups_input_v = 0.0;
                    w.ups_runtime_s = (600 - t).max(0) as f32;
                }
                if t >= 600 {
                    w.pdu_input_v = [0.0; 4];
                    w.silent.push("ups");
                }
                w
            },
        },
        Scenario {
            name: "generator-transfer",
            what: "utility lost at T0, generator takes the load after 12 s",
            until_s: 900,
            power_loss_s: None,
            expect: Expect::NeverAbove(Level::Watch),
            world: |t| {
                let mut w = World::default();
                if (0..12).contains(&t) {
                    w.ups_on_battery = true;
                    w.ups_input_v = 0.0;
                    w.ups_runtime_s = 840.0;
                }
                w
            },
        },
        Scenario {
            name: "ups-self-test",
            what: "the UPS goes on battery for 20 s with the utility present",
            until_s: 600,
            power_loss_s: None,
            expect: Expect::NeverAbove(Level::Normal),
            world: |t| {
                let mut w = World::default();
                if (0..20).contains(&t) {
                    w.ups_on_battery = true;
                    w.ups_runtime_s = 240.0;
                }
                w
            },
        },
        Scenario {
            name: "probe-fails-high",
            what: "one rack probe jumps to 140 °C at T0 and stays there; nothing else changes",
            until_s: 1800,
            power_loss_s: None,
            expect: Expect::NeverAbove(Level::Watch),
            world: |t| {
                let mut w = World::default();
                if t >= 0 {
                    w.rack[0] = Some((140.0, Quality::Good));
                }
                w
            },
        },
        Scenario {
            name: "probe-disconnected",
            what: "one rack probe reads 0xFFFF (sensor fault) from T0: reported for a technician",
            until_s: 1800,
            power_loss_s: None,
            expect: Expect::NeverAbove(Level::Watch),
            world: |t| {
                let mut w = World::default();
                if t >= 0 {
                    w.rack[0] = Some((6553.5, Quality::SensorFault));
                }
                w
            },
        },
        Scenario {
            name: "runtime-glitch",
            what: "a 4 s utility dip; the UPS reports a runtime of 0 s for one poll while it recalculates",
            until_s: 900,
            power_loss_s: None,
            expect: Expect::NeverAbove(Level::Watch),
            world: |t| {
                let mut w = World::default();
                if (0..4).contains(&t) {
                    w.ups_on_battery = true;
                    w.ups_input_v = 0.0;
                }
                if t == 2 {
                    w.ups_runtime_s = 0.0;
                }
                w
            },
        },
        Scenario {
            name: "shorted-harness",
            what: "both rack probes of the node jump to 150 °C within 20 s; no off-gas, no smoke, room unchanged",
            until_s: 1800,
            power_loss_s: None,
            expect: Expect::NeverAbove(Level::Watch),
            world: |t| {
                let mut w = World::default();
                let v = pl(t, &[(0, 24.0), (20, 150.0)]);
                w.rack = [Some((v, Quality::Good)), Some((v + 0.5, Quality::Good))];
                w
            },
        },
        Scenario {
            name: "node-lost-mid-fire",
            what: "2022 pattern: off-gas raises prepare, the node dies with its cable at T-4 min, smoke at T0, PDUs lose power at T+8 min",
            until_s: 900,
            power_loss_s: Some(480),
            expect: Expect::EvacuateInTime,
            world: |t| {
                let mut w = battery_fire(t, 250.0);
                // Before the rack's warming is seen: only the off-gas had spoken.
                if t >= -240 {
                    w.silent.push("node");
                }
                if t >= 480 {
                    w.pdu_input_v = [0.0; 4];
                }
                w
            },
        },
        Scenario {
            name: "power-budget-clears",
            what: "utility lost, runtime 300 s: evacuate; utility back at T+1 min (runtime 1800 s): lowered after the hold",
            until_s: 900,
            power_loss_s: None,
            expect: Expect::EvacuateThenNormalBy(60 + 300 + 2),
            world: |t| {
                let mut w = World::default();
                if (0..60).contains(&t) {
                    w.ups_on_battery = true;
                    w.ups_input_v = 0.0;
                    w.ups_runtime_s = 300.0 - t as f32;
                } else if t >= 60 {
                    w.ups_runtime_s = 1800.0;
                }
                w
            },
        },
        Scenario {
            name: "hvac-failure",
            what: "cooling fails at T0: the room warms from 24 to 36 °C over an hour",
            until_s: 3600,
            power_loss_s: None,
            expect: Expect::NeverAbove(Level::Watch),
            world: |t| World {
                room_c: pl(t, &[(0, 24.0), (3600, 36.0)]),
                ..World::default()
            },
        },
        Scenario {
            name: "gateway-network-lost",
            what: "the gateway loses its network to every device for 10 min from T0",
            until_s: 1500,
            power_loss_s: None,
            expect: Expect::NeverAbove(Level::Watch),
            world: |t| {
                let mut w = World::default();
                if (0..600).contains(&t) {
                    w.silent = vec![
                        "node", "panel", "ups", "pdu-1", "pdu-2", "pdu-3", "pdu-4", "room",
                    ];
                }
                w
            },
        },
    ]
}

struct Outcome {
    transitions: Vec<Transition>,
    /// Seconds from T0 of the first site transition to each level.
    first: [Option<i64>; 4],
    max: Level,
    /// The site's last transition: seconds from T0, level.
    last: Option<(i64, Level)>,
}

fn replay(sc: &Scenario) -> Outcome {
    let mut engine = Engine::new(Policy::default_policy().unwrap(), &topology());
    let mut transitions = Vec::new();
    // Virtual time starts at an arbitrary epoch; one poll of every device per second.
    let epoch_ms = 1_700_000_000_000u64;
    for t in -LEAD_IN_S..=sc.until_s {
        let now = epoch_ms + ((t + LEAD_IN_S) as u64) * 1000;
        transitions.extend(engine.step(now, &(sc.world)(t).samples()));
    }
    let mut first = [None; 4];
    let mut max = Level::Normal;
    let mut last = None;
    for tr in transitions.iter().filter(|tr| tr.zone.is_none()) {
        let t = (tr.at_ms - epoch_ms) as i64 / 1000 - LEAD_IN_S;
        first[tr.level as usize].get_or_insert(t);
        max = max.max(tr.level);
        last = Some((t, tr.level));
    }
    Outcome {
        transitions,
        first,
        max,
        last,
    }
}

fn check(sc: &Scenario, o: &Outcome) -> Result<(), String> {
    match sc.expect {
        Expect::EvacuateInTime => {
            let loss = sc.power_loss_s.ok_or("no power loss modelled")?;
            let evac = o.first[Level::Evacuate as usize].ok_or("never evacuated")?;
            let lead = loss - evac;
            let budget = i64::from(Policy::default_policy().unwrap().evacuation_budget_s);
            if lead < budget {
                return Err(format!(
                    "lead time {lead} s is less than the budget {budget} s"
                ));
            }
            Ok(())
        }
        Expect::NeverAbove(level) if o.max > level => {
            Err(format!("reached {} (allowed: {level})", o.max))
        }
        Expect::NeverAbove(_) => Ok(()),
        Expect::EvacuateThenNormalBy(by) => {
            if o.max < Level::Evacuate {
                return Err(format!("reached {}, not evacuate", o.max));
            }
            match o.last {
                Some((t, Level::Normal)) if t <= by => Ok(()),
                Some((t, l)) => Err(format!(
                    "last site level {l} at T+{t} s, not normal by T+{by} s"
                )),
                None => Err("no transition".into()),
            }
        }
    }
}

fn mmss(t: Option<i64>) -> String {
    match t {
        None => "-".into(),
        Some(t) => {
            let sign = if t < 0 { "−" } else { "+" };
            format!("T{sign}{}:{:02}", t.abs() / 60, t.abs() % 60)
        }
    }
}

fn table() -> String {
    let mut out = String::from(
        "| scenario | what happens | expected | reached | first watch | first prepare | first evacuate | power lost | lead time |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for sc in scenarios() {
        let o = replay(&sc);
        let expected = match sc.expect {
            Expect::EvacuateInTime => "evacuate ≥ budget before power loss".to_string(),
            Expect::NeverAbove(l) => format!("never above {l}"),
            Expect::EvacuateThenNormalBy(by) => {
                format!("evacuate, then normal by {}", mmss(Some(by)))
            }
        };
        let lead = match (sc.power_loss_s, o.first[Level::Evacuate as usize]) {
            (Some(p), Some(e)) => format!("{} s", p - e),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            sc.name,
            sc.what,
            expected,
            o.max,
            mmss(o.first[Level::Watch as usize]),
            mmss(o.first[Level::Prepare as usize]),
            mmss(o.first[Level::Evacuate as usize]),
            mmss(sc.power_loss_s),
            lead
        ));
    }
    out
}

#[test]
fn every_scenario_meets_its_expectation() {
    let mut failures = Vec::new();
    for sc in scenarios() {
        let o = replay(&sc);
        if let Err(e) = check(&sc, &o) {
            failures.push(format!("{}: {e}", sc.name));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}\n{}", table());
}

#[test]
fn the_fire_names_its_evidence() {
    let sc = scenarios().into_iter().next().unwrap();
    let o = replay(&sc);
    let evac = o
        .transitions
        .iter()
        .find(|t| t.zone.is_none() && t.level == Level::Evacuate)
        .unwrap();
    let rules: Vec<&str> = evac.reasons.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(rules[0], "fire-corroborated", "{rules:?}");
    assert!(rules.contains(&"off-gas"), "{rules:?}");
    assert!(rules.contains(&"rack-temp-rise"), "{rules:?}");
    // The trigger alone says which sensor, what it read and against what.
    let gas = evac
        .reasons
        .iter()
        .find(|r| r.rule.as_str() == "off-gas")
        .unwrap();
    assert_eq!(gas.device.as_ref().unwrap().as_str(), "node");
    assert!(gas.value >= gas.threshold);
    // The whole incident is one incident; the battery room leads the site.
    assert!(o.transitions.iter().all(|t| t.incident == evac.incident));
    let first = &o.transitions[0];
    assert_eq!(first.zone.as_ref().unwrap().as_str(), "battery-room");
}

#[test]
fn the_outage_carries_a_time_to_power_loss() {
    let sc = scenarios()
        .into_iter()
        .find(|s| s.name == "generator-fails")
        .unwrap();
    let o = replay(&sc);
    let evac = o
        .transitions
        .iter()
        .find(|t| t.zone.is_none() && t.level == Level::Evacuate)
        .unwrap();
    let left = evac.seconds_to_power_loss.unwrap();
    assert!((300..=360).contains(&left), "{left}");
    assert_eq!(evac.reasons[0].rule.as_str(), "power-budget");
}

#[test]
fn a_lost_network_returns_to_normal_once_devices_answer() {
    let sc = scenarios()
        .into_iter()
        .find(|s| s.name == "gateway-network-lost")
        .unwrap();
    let o = replay(&sc);
    let site: Vec<Level> = o
        .transitions
        .iter()
        .filter(|t| t.zone.is_none())
        .map(|t| t.level)
        .collect();
    assert_eq!(site, vec![Level::Watch, Level::Normal]);
    let watch = &o.transitions.iter().find(|t| t.zone.is_none()).unwrap();
    assert!(
        watch
            .reasons
            .iter()
            .all(|r| matches!(r.rule.as_str(), "device-lost" | "zone-dark"))
    );
}

#[test]
fn replay_table_is_in_the_docs() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/policy.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (begin, end) = ("<!-- replay-table:begin -->\n", "<!-- replay-table:end -->");
    let start = doc.find(begin).expect("replay-table:begin marker") + begin.len();
    let stop = doc.find(end).expect("replay-table:end marker");
    let fresh = table();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let new = format!("{}{fresh}{}", &doc[..start], &doc[stop..]);
        std::fs::write(&path, new).unwrap();
    } else {
        assert_eq!(
            &doc[start..stop],
            fresh,
            "docs/policy.md is out of date: run UPDATE_DOCS=1 cargo test -p firebreak-gateway --test policy_replay"
        );
    }
}
