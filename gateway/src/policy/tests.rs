use firebreak_protocols::{
    DeviceId, GatewayId, IncidentId, Level, Quality, Sample, Signal, SiteId, ZoneId,
};
use proptest::prelude::*;

use super::*;

fn topology(devices: &[(&str, &str)]) -> Topology {
    let mut zones: Vec<ZoneId> = Vec::new();
    for (_, z) in devices {
        let z = ZoneId::new(z).unwrap();
        if !zones.contains(&z) {
            zones.push(z);
        }
    }
    Topology {
        site: SiteId::new("site").unwrap(),
        gateway: GatewayId::new("gw").unwrap(),
        zones,
        devices: devices
            .iter()
            .map(|(d, z)| (DeviceId::new(d).unwrap(), ZoneId::new(z).unwrap()))
            .collect(),
        witnesses: Vec::new(),
    }
}

fn policy(rules: &str) -> Policy {
    Policy {
        rules: Rules::parse(rules, "test.toml").unwrap(),
        evacuation_budget_s: 300,
        margin_s: 60,
        hold_ms: 60_000,
    }
}

fn sample(device: &str, signal: Signal, channel: u8, value: f32, quality: Quality) -> Sample {
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

fn good(device: &str, signal: Signal, channel: u8, value: f32) -> Sample {
    sample(device, signal, channel, value, Quality::Good)
}

/// Steps the engine every second from `from_s` to `to_s` with `samples(t)`; returns the
/// transitions with their times.
fn run(
    e: &mut Engine,
    from_s: u64,
    to_s: u64,
    mut samples: impl FnMut(u64) -> Vec<Sample>,
) -> Vec<Transition> {
    let mut out = Vec::new();
    for t in from_s..=to_s {
        out.extend(e.step(t * 1000, &samples(t)));
    }
    out
}

fn site_levels(ts: &[Transition]) -> Vec<(u64, Level)> {
    ts.iter()
        .filter(|t| t.zone.is_none())
        .map(|t| (t.at_ms / 1000, t.level))
        .collect()
}

// Off-gas: a signal that may change at once (no plausibility limit on its rate).
const THRESHOLD: &str = r#"
[[rules]]
id = "hot"
kind = "threshold"
signal = "off-gas"
above = 60.0
clear = 50.0
for_s = 10
level = "prepare"
"#;

#[test]
fn threshold_fires_after_its_hold_and_clears_with_hysteresis_and_hold() {
    let mut e = Engine::new(policy(THRESHOLD), &topology(&[("n1", "room")]));
    let ts = run(&mut e, 0, 200, |t| {
        let v = match t {
            0..20 => 40.0,
            20..100 => 65.0,
            100..120 => 55.0, // inside the band: still hot
            _ => 45.0,
        };
        vec![good("n1", Signal::OffGas, 0, v)]
    });
    // Fires 10 s after 20, clears at 120, lowered 60 s (the hold) later.
    assert_eq!(
        site_levels(&ts),
        vec![(30, Level::Prepare), (180, Level::Normal)]
    );
    let up = ts.iter().find(|t| t.level == Level::Prepare).unwrap();
    assert_eq!(up.reasons.len(), 1);
    assert_eq!(up.reasons[0].rule.as_str(), "hot");
    assert_eq!(up.reasons[0].value, 65.0);
    assert_eq!(up.reasons[0].threshold, 60.0);
    assert_eq!(up.reasons[0].device.as_ref().unwrap().as_str(), "n1");
    assert_eq!(up.zone, None.or(up.zone.clone()));
}

#[test]
fn zone_transitions_come_before_the_site_and_share_an_incident() {
    let mut e = Engine::new(policy(THRESHOLD), &topology(&[("n1", "room")]));
    let ts = run(&mut e, 0, 40, |_| vec![good("n1", Signal::OffGas, 0, 70.0)]);
    assert_eq!(ts.len(), 2);
    assert_eq!(ts[0].zone.as_ref().unwrap().as_str(), "room");
    assert_eq!(ts[1].zone, None);
    assert_eq!(ts[0].incident, ts[1].incident);
    assert_eq!(ts[0].incident.as_str(), "gw-10000");
    assert_eq!(e.incident(), Some(&ts[0].incident));
}

#[test]
fn a_faulty_value_is_not_evidence_and_holds_what_it_had_raised() {
    let mut e = Engine::new(policy(THRESHOLD), &topology(&[("n1", "room")]));
    // 0xFFFF-style fault from the start: nothing.
    let ts = run(&mut e, 0, 100, |_| {
        vec![sample(
            "n1",
            Signal::OffGas,
            0,
            65535.0,
            Quality::SensorFault,
        )]
    });
    assert!(ts.is_empty());
    // Real heat, then the sensor dies: the level is held, not cleared.
    let ts = run(&mut e, 101, 500, |t| {
        if t < 150 {
            vec![good("n1", Signal::OffGas, 0, 70.0)]
        } else {
            vec![sample("n1", Signal::OffGas, 0, 70.0, Quality::CommLost)]
        }
    });
    assert_eq!(site_levels(&ts), vec![(111, Level::Prepare)]);
    assert_eq!(e.site_level(), Level::Prepare);
    // Good and cool again: cleared after the hold.
    let ts = run(&mut e, 501, 600, |_| {
        vec![good("n1", Signal::OffGas, 0, 30.0)]
    });
    assert_eq!(site_levels(&ts), vec![(561, Level::Normal)]);
    assert_eq!(e.incident(), None);
}

#[test]
fn corroboration_needs_independent_sensors() {
    let rules = r#"
[[rules]]
id = "runaway"
kind = "threshold"
signal = "rack-temperature"
above = 100.0
corroborate = 2
level = "evacuate"
"#;
    let mut e = Engine::new(policy(rules), &topology(&[("n1", "room"), ("n2", "room")]));
    // One probe wild: nothing. The same probe reported twice is still one sensor.
    let ts = run(&mut e, 0, 30, |_| {
        vec![
            good("n1", Signal::RackTemperature, 0, 150.0),
            good("n1", Signal::RackTemperature, 0, 150.0),
            good("n2", Signal::RackTemperature, 0, 25.0),
        ]
    });
    assert!(ts.is_empty());
    // A second probe, on another channel of the other node, agrees.
    let ts = run(&mut e, 31, 32, |_| {
        vec![
            good("n1", Signal::RackTemperature, 0, 150.0),
            good("n2", Signal::RackTemperature, 3, 120.0),
        ]
    });
    assert_eq!(site_levels(&ts), vec![(31, Level::Evacuate)]);
    let site = ts.iter().find(|t| t.zone.is_none()).unwrap();
    assert_eq!(site.reasons.len(), 2);
    assert_eq!(site.reasons[1].channel, 3);
}

#[test]
fn rate_of_rise_fires_on_a_ramp_not_on_a_plateau() {
    let rules = r#"
[[rules]]
id = "rise"
kind = "rate"
signal = "rack-temperature"
rise_per_min = 1.0
window_s = 120
for_s = 20
level = "prepare"
"#;
    let mut e = Engine::new(policy(rules), &topology(&[("n1", "room")]));
    // A warm but steady rack: nothing.
    let ts = run(&mut e, 0, 300, |_| {
        vec![good("n1", Signal::RackTemperature, 0, 45.0)]
    });
    assert!(ts.is_empty());
    // 3 °C/min from t = 300: the window needs 40 s of points, then 20 s held.
    let ts = run(&mut e, 301, 600, |t| {
        vec![good(
            "n1",
            Signal::RackTemperature,
            0,
            45.0 + 3.0 * (t - 300) as f32 / 60.0,
        )]
    });
    let at = site_levels(&ts);
    assert_eq!(at.len(), 1, "{at:?}");
    assert!((350..=380).contains(&at[0].0), "{at:?}");
    let r = &ts[0].reasons[0];
    // The rate when it fired: the window still held some of the plateau.
    assert!(r.value >= 1.0 && r.value <= 3.1, "{r:?}");
    assert_eq!(r.threshold, 1.0);
}

#[test]
fn comm_lost_any_and_all() {
    let rules = r#"
[[rules]]
id = "device-lost"
kind = "comm-lost"
devices = "any"
level = "watch"

[[rules]]
id = "zone-dark"
kind = "comm-lost"
devices = "all"
level = "prepare"
"#;
    let topo = topology(&[("a", "hall"), ("b", "hall")]);
    let mut e = Engine::new(policy(rules), &topo);
    let lost = |d| sample(d, Signal::PduPower, 0, 0.0, Quality::CommLost);
    let ts = e.step(1000, &[lost("a"), good("b", Signal::PduPower, 0, 100.0)]);
    assert_eq!(site_levels(&ts), vec![(1, Level::Watch)]);
    assert_eq!(ts[1].reasons[0].rule.as_str(), "device-lost");
    assert_eq!(ts[1].reasons[0].device.as_ref().unwrap().as_str(), "a");
    let ts = e.step(2000, &[lost("b")]);
    assert_eq!(site_levels(&ts), vec![(2, Level::Prepare)]);
    assert_eq!(ts[1].reasons[0].value, 2.0);
}

#[test]
fn a_device_that_never_answered_counts_as_lost() {
    let rules = r#"
[[rules]]
id = "zone-dark"
kind = "comm-lost"
devices = "all"
level = "watch"
"#;
    let topo = topology(&[("a", "hall"), ("b", "hall")]);
    let mut e = Engine::new(policy(rules), &topo);
    // `b` never answered: the table reports its link lost, with no sample to carry it.
    e.set_link(&DeviceId::new("b").unwrap(), true);
    assert!(e.step(1000, &[]).is_empty());
    let ts = e.step(
        2000,
        &[sample("a", Signal::PduPower, 0, 0.0, Quality::CommLost)],
    );
    assert_eq!(site_levels(&ts), vec![(2, Level::Watch)]);
}

#[test]
fn a_harness_fault_is_one_witness_and_a_sensor_fault() {
    // Two probes of one node jump together: one witness, implausible, reported.
    let mut e = Engine::new(
        Policy::default_policy().unwrap(),
        &topology(&[("node", "room"), ("other", "room")]),
    );
    let ts = run(&mut e, 0, 600, |t| {
        let v = if t < 100 {
            24.0
        } else {
            (24.0 + (t - 100) as f32 * 6.5).min(150.0)
        };
        vec![
            good("node", Signal::RackTemperature, 0, v),
            good("node", Signal::RackTemperature, 1, v + 0.5),
        ]
    });
    assert_eq!(site_levels(&ts), vec![(102, Level::Watch)]);
    let faults = e.sensor_faults();
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert!(
        faults
            .iter()
            .all(|f| f.kind == crate::policy::FaultKind::Jump)
    );
    assert_eq!(ts[1].reasons[0].rule.as_str(), "sensor-fault");
    // The same jump with smoke in the room is taken as real: the fire has begun.
    let mut e = Engine::new(
        Policy::default_policy().unwrap(),
        &topology(&[("node", "room"), ("panel", "room")]),
    );
    run(&mut e, 0, 700, |t| {
        let v = if t < 100 {
            24.0
        } else {
            (24.0 + (t - 100) as f32 * 6.5).min(150.0)
        };
        vec![
            good("node", Signal::RackTemperature, 0, v),
            good("panel", Signal::SmokeAlarm, 0, f32::from(u8::from(t >= 90))),
        ]
    });
    assert!(e.sensor_faults().is_empty());
    assert_eq!(e.site_level(), Level::Evacuate);
}

#[test]
fn power_budget_uses_runtime_load_trend_and_ignores_self_tests() {
    let rules = r#"
[[rules]]
id = "power-budget"
kind = "power-budget"
for_s = 15
level = "evacuate"
"#;
    let topo = topology(&[("ups", "hall")]);
    let ups = |t: u64, on_batt: bool, input: f32, runtime: f32, load: f32| {
        let _ = t;
        vec![
            good("ups", Signal::UpsOnBattery, 0, f32::from(u8::from(on_batt))),
            good("ups", Signal::UpsInputVoltage, 0, input),
            good("ups", Signal::UpsRuntimeRemaining, 0, runtime),
            good("ups", Signal::UpsLoad, 0, load),
        ]
    };
    // Self-test: on battery, utility present, short runtime: nothing.
    let mut e = Engine::new(policy(rules), &topo);
    let ts = run(&mut e, 0, 60, |t| ups(t, true, 230.0, 200.0, 50.0));
    assert!(ts.is_empty());
    assert_eq!(e.seconds_to_power_loss(), None);
    // Utility gone: runtime 600 s falling 1 s/s: evacuate once it has been at or under
    // 360 s for 15 s.
    let mut e = Engine::new(policy(rules), &topo);
    let ts = run(&mut e, 0, 400, |t| {
        ups(t, true, 0.0, 600.0 - t as f32, 50.0)
    });
    assert_eq!(site_levels(&ts), vec![(255, Level::Evacuate)]);
    assert_eq!(ts[1].seconds_to_power_loss, Some(345));
    assert_eq!(ts[1].reasons[0].threshold, 360.0);
    // A runtime that is not refreshed still counts down.
    let mut e = Engine::new(policy(rules), &topo);
    e.step(0, &ups(0, true, 0.0, 400.0, 50.0));
    let ts = run(&mut e, 1, 60, |_| Vec::new());
    assert_eq!(site_levels(&ts), vec![(55, Level::Evacuate)]);
    // A rising load shortens the estimate.
    let mut e = Engine::new(policy(rules), &topo);
    run(&mut e, 0, 120, |t| {
        ups(t, true, 0.0, 500.0, 40.0 + 20.0 * t as f32 / 60.0)
    });
    let est = e.seconds_to_power_loss().unwrap();
    assert!(est < 400, "{est}");
}

#[test]
fn share_of_pdus_in_a_zone() {
    let rules = r#"
[[rules]]
id = "feeds-lost"
kind = "share"
signal = "pdu-input-voltage"
below = 90.0
clear = 180.0
share = 0.5
min_devices = 2
level = "evacuate"
"#;
    let topo = topology(&[("p1", "h"), ("p2", "h"), ("p3", "h"), ("p4", "h")]);
    let mut e = Engine::new(policy(rules), &topo);
    let v = |d, x| good(d, Signal::PduInputVoltage, 0, x);
    assert!(
        e.step(
            1000,
            &[v("p1", 0.0), v("p2", 230.0), v("p3", 230.0), v("p4", 230.0)]
        )
        .is_empty()
    );
    // A lost PDU (comm-lost) is not a PDU without power.
    let lost = sample("p2", Signal::PduInputVoltage, 0, 230.0, Quality::CommLost);
    assert!(e.step(2000, &[lost]).is_empty());
    let ts = e.step(3000, &[v("p3", 0.0)]);
    assert_eq!(site_levels(&ts), vec![(3, Level::Evacuate)]);
    assert_eq!(ts[1].reasons.len(), 2);
}

#[test]
fn combine_and_when() {
    let rules = r#"
[[rules]]
id = "on-battery"
kind = "state"
signal = "ups-on-battery"

[[rules]]
id = "input-lost"
kind = "threshold"
signal = "ups-input-voltage"
below = 90.0
clear = 100.0

[[rules]]
id = "utility-lost"
kind = "combine"
of = ["on-battery", "input-lost"]
need = "all"
for_s = 5
level = "watch"

[[rules]]
id = "low-battery"
kind = "state"
signal = "ups-low-battery"
when = "utility-lost"
for_s = 10
level = "evacuate"
"#;
    let topo = topology(&[("ups", "hall")]);
    let mut e = Engine::new(policy(rules), &topo);
    let s = |on: f32, input: f32, low: f32| {
        vec![
            good("ups", Signal::UpsOnBattery, 0, on),
            good("ups", Signal::UpsInputVoltage, 0, input),
            good("ups", Signal::UpsLowBattery, 0, low),
        ]
    };
    // Low battery during a self-test (utility present): nothing.
    assert!(run(&mut e, 0, 30, |_| s(1.0, 230.0, 1.0)).is_empty());
    // Utility gone: watch after 5 s, evacuate with the low-battery flag.
    let ts = run(&mut e, 31, 60, |t| {
        s(1.0, 0.0, f32::from(u8::from(t >= 50)))
    });
    assert_eq!(
        site_levels(&ts),
        vec![(36, Level::Watch), (60, Level::Evacuate)]
    );
    let evac = ts.iter().rfind(|t| t.zone.is_none()).unwrap();
    let names: Vec<&str> = evac.reasons.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(names, vec!["low-battery"]);
    assert_eq!(
        e.firing("hall"),
        vec!["on-battery", "input-lost", "utility-lost", "low-battery"]
    );
}

#[test]
fn evacuate_is_not_cleared_while_its_cause_is_present() {
    let rules = r#"
[[rules]]
id = "smoke"
kind = "state"
signal = "smoke-alarm"
for_s = 10
level = "evacuate"
"#;
    let mut p = policy(rules);
    p.hold_ms = 10_000;
    let mut e = Engine::new(p, &topology(&[("panel", "room")]));
    let smoke = |v| vec![good("panel", Signal::SmokeAlarm, 0, v)];
    run(&mut e, 0, 15, |_| smoke(1.0));
    assert_eq!(e.site_level(), Level::Evacuate);
    // The panel goes silent (the fire took it): still evacuate, for an hour.
    let ts = run(&mut e, 16, 3600, |_| {
        vec![sample(
            "panel",
            Signal::SmokeAlarm,
            0,
            1.0,
            Quality::CommLost,
        )]
    });
    assert!(ts.is_empty());
    // The panel answers again and the alarm is still on: still evacuate.
    assert!(run(&mut e, 3601, 3700, |_| smoke(1.0)).is_empty());
    // Reset: lowered after the hold.
    let ts = run(&mut e, 3701, 3800, |_| smoke(0.0));
    assert_eq!(site_levels(&ts), vec![(3711, Level::Normal)]);
}

#[test]
fn a_higher_level_while_holding_rises_at_once() {
    let rules = r#"
[[rules]]
id = "warm"
kind = "threshold"
signal = "off-gas"
above = 30.0
level = "watch"

[[rules]]
id = "hot"
kind = "threshold"
signal = "off-gas"
above = 40.0
level = "prepare"
"#;
    let mut e = Engine::new(policy(rules), &topology(&[("r", "room")]));
    let ts = run(&mut e, 0, 200, |t| {
        let v = match t {
            0..10 => 20.0,
            10..20 => 35.0,
            20..30 => 45.0,
            30..40 => 35.0,
            _ => 20.0,
        };
        vec![good("r", Signal::OffGas, 0, v)]
    });
    // Up at once; down a level only once everything above it has been clear for the hold
    // (60 s): prepare cleared at 30, watch at 40.
    assert_eq!(
        site_levels(&ts),
        vec![
            (10, Level::Watch),
            (20, Level::Prepare),
            (90, Level::Watch),
            (100, Level::Normal)
        ]
    );
}

#[test]
fn unknown_devices_and_backward_clocks_are_counted_not_fatal() {
    let mut e = Engine::new(policy(THRESHOLD), &topology(&[("n1", "room")]));
    e.step(5000, &[good("ghost", Signal::RackTemperature, 0, 99.0)]);
    e.step(4000, &[]);
    assert_eq!(e.stats().unknown_device, 1);
    assert_eq!(e.stats().clock_backwards, 1);
    assert_eq!(e.site_level(), Level::Normal);
}

/// A node's uptime and reset reason, however wild, raise nothing under the default rules and
/// are never a sensor fault: an uptime past 30 days is not a rail, 0xFFFF is not a sentinel,
/// a reboot (uptime back to 0, reason watchdog) is not evidence of fire or power loss.
#[test]
fn uptime_and_reset_reason_are_never_evidence_nor_faults() {
    let mut e = Engine::new(
        Policy::default_policy().unwrap(),
        &topology(&[("node", "room"), ("ups", "room")]),
    );
    let wild = [
        0.0,
        40.0 * 86_400.0,
        4_294_967_295.0,
        -1.0,
        f32::NAN,
        f32::INFINITY,
        1e30,
        3.0,
        0.0,
    ];
    let mut samples = 0;
    for (t, v) in wild.iter().enumerate() {
        let reason = [0.0, 1.0, 4.0, 65_535.0, f32::NAN][t % 5];
        let mut batch = vec![
            good("node", Signal::DeviceUptime, 0, *v),
            good("node", Signal::ResetReason, 0, reason),
            sample("node", Signal::DeviceUptime, 0, *v, Quality::SensorFault),
            good("node", Signal::RackTemperature, 0, 24.0),
        ];
        if t == 4 {
            batch.push(sample(
                "node",
                Signal::ResetReason,
                0,
                reason,
                Quality::CommLost,
            ));
        }
        samples += 1;
        let ts = e.step(t as u64 * 60_000, &batch);
        assert!(ts.is_empty(), "{ts:?}");
    }
    assert_eq!(e.site_level(), Level::Normal);
    assert!(e.sensor_faults().is_empty(), "{:?}", e.sensor_faults());
    assert_eq!(
        e.stats().samples,
        samples,
        "only the rack probe was taken in"
    );
    assert_eq!(e.stats().implausible, 0);
}

#[test]
fn default_policy_loads() {
    let p = Policy::default_policy().unwrap();
    assert_eq!(p.evacuation_budget_s, DEFAULT_EVACUATION_BUDGET_S);
    assert!(p.rules.index("power-budget").is_some());
}

fn quality() -> impl Strategy<Value = Quality> {
    prop_oneof![
        Just(Quality::Stale),
        Just(Quality::CommLost),
        Just(Quality::SensorFault),
        Just(Quality::OutOfRange),
    ]
}

fn any_signal() -> impl Strategy<Value = Signal> {
    (0..Signal::ALL.len()).prop_map(|i| Signal::ALL[i])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever one sensor reports, the default rules never evacuate on it alone.
    #[test]
    fn one_sensor_cannot_evacuate(
        signal in any_signal(),
        channel in 0u8..8,
        values in proptest::collection::vec(prop_oneof![any::<f32>(), -50.0f32..2000.0], 1..300),
    ) {
        let topo = topology(&[("one", "room"), ("other", "room")]);
        let mut e = Engine::new(Policy::default_policy().unwrap(), &topo);
        for (t, v) in values.iter().enumerate() {
            let ts = e.step(t as u64 * 1000, &[good("one", signal, channel, *v)]);
            for tr in ts {
                prop_assert!(tr.level < Level::Evacuate, "{tr:?}");
            }
        }
    }

    /// One rack probe, however wild, raises at most `watch` under the default rules: a probe
    /// failing high reads like a warming rack, so `prepare` needs a second probe.
    #[test]
    fn one_rack_probe_raises_at_most_watch(
        channel in 0u8..8,
        values in proptest::collection::vec(-40.0f32..200.0, 1..400),
    ) {
        let topo = topology(&[("node", "room")]);
        let mut e = Engine::new(Policy::default_policy().unwrap(), &topo);
        for (t, v) in values.iter().enumerate() {
            for tr in e.step(t as u64 * 1000, &[good("node", Signal::RackTemperature, channel, *v)]) {
                prop_assert!(tr.level <= Level::Watch, "{tr:?}");
            }
        }
    }

    /// Values without good quality never raise a level, under the default rules.
    #[test]
    fn bad_quality_never_raises(
        samples in proptest::collection::vec(
            (any_signal(), 0u8..4, any::<f32>(), quality(), 0usize..3), 1..300),
    ) {
        let topo = topology(&[("a", "room"), ("b", "room"), ("c", "hall")]);
        let mut e = Engine::new(Policy::default_policy().unwrap(), &topo);
        for (t, (signal, channel, value, q, d)) in samples.into_iter().enumerate() {
            // Comm-lost raises `watch` by design (device-lost); nothing else may.
            let device = ["a", "b", "c"][d];
            let ts = e.step(t as u64 * 500, &[sample(device, signal, channel, value, q)]);
            for tr in ts {
                prop_assert!(tr.level <= Level::Watch, "{tr:?}");
                for r in &tr.reasons {
                    prop_assert!(
                        matches!(r.rule.as_str(), "device-lost" | "zone-dark" | "sensor-fault"),
                        "{r:?}"
                    );
                }
            }
        }
    }

    /// The same input gives the same output.
    #[test]
    fn deterministic(
        samples in proptest::collection::vec((0u8..4, -20.0f32..200.0, 0usize..2), 1..200),
    ) {
        let topo = topology(&[("a", "room"), ("b", "room")]);
        let signals = [Signal::RackTemperature, Signal::OffGas, Signal::SmokeAlarm, Signal::RoomTemperature];
        let feed = |e: &mut Engine| {
            let mut out = Vec::new();
            for (t, (s, v, d)) in samples.iter().enumerate() {
                let signal = signals[usize::from(*s)];
                let v = if signal == Signal::SmokeAlarm { f32::from(u8::from(*v > 100.0)) } else { *v };
                out.extend(e.step(t as u64 * 2000, &[good(["a", "b"][*d], signal, 0, v)]));
            }
            out
        };
        let mut e1 = Engine::new(Policy::default_policy().unwrap(), &topo);
        let mut e2 = Engine::new(Policy::default_policy().unwrap(), &topo);
        prop_assert_eq!(feed(&mut e1), feed(&mut e2));
    }
}

/// The healthy site of the "every level comes down" property: a battery room with two nodes,
/// a fire panel and a UPS; a hall with two PDUs and a room sensor.
const SITE: [(&str, &str); 7] = [
    ("node-1", "battery-room"),
    ("node-2", "battery-room"),
    ("panel", "battery-room"),
    ("ups", "battery-room"),
    ("pdu-1", "hall"),
    ("pdu-2", "hall"),
    ("room", "hall"),
];

/// Every (device, signal, channel) of [`SITE`] with its healthy value.
const HEALTHY: [(&str, Signal, u8, f32); 15] = [
    ("node-1", Signal::RackTemperature, 0, 24.0),
    ("node-1", Signal::RackTemperature, 1, 24.5),
    ("node-1", Signal::OffGas, 0, 0.5),
    ("node-2", Signal::RackTemperature, 0, 23.5),
    ("node-2", Signal::OffGas, 0, 0.4),
    ("panel", Signal::SmokeAlarm, 0, 0.0),
    ("panel", Signal::SuppressionReleased, 0, 0.0),
    ("ups", Signal::UpsOnBattery, 0, 0.0),
    ("ups", Signal::UpsInputVoltage, 0, 230.0),
    ("ups", Signal::UpsRuntimeRemaining, 0, 1800.0),
    ("ups", Signal::UpsLoad, 0, 45.0),
    ("ups", Signal::UpsLowBattery, 0, 0.0),
    ("pdu-1", Signal::PduInputVoltage, 0, 230.0),
    ("pdu-2", Signal::PduInputVoltage, 0, 230.0),
    ("room", Signal::RoomTemperature, 0, 23.0),
];

/// The longest a reading can stay judged implausible once it is healthy again: the flap
/// window of a measurement (docs/policy.md, "Plausibility").
const PLAUSIBILITY_SETTLE_S: u64 = 300;

fn disturbance() -> impl Strategy<Value = Vec<Vec<(usize, f32, Quality)>>> {
    let value = prop_oneof![
        4 => -50.0f32..250.0,
        2 => 0.0f32..2000.0,
        1 => Just(0.0f32),
        1 => Just(1.0f32),
        1 => any::<f32>(),
    ];
    let quality = prop_oneof![
        8 => Just(Quality::Good),
        1 => Just(Quality::CommLost),
        1 => Just(Quality::Stale),
        1 => Just(Quality::SensorFault),
        1 => Just(Quality::OutOfRange),
    ];
    // One second each: which readings change, to what, with which quality.
    proptest::collection::vec(
        proptest::collection::vec((0..HEALTHY.len(), value, quality), 0..6),
        1..240,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Every level comes down: whatever raised it, once the site is quiet and healthy the
    /// scope returns to `normal` with a lowering transition, within the hold, plus the time a
    /// reading judged implausible needs to be plausible again (5 min at most: a flap), plus
    /// a few polls.
    #[test]
    fn every_level_comes_down_once_the_site_is_healthy(steps in disturbance()) {
        let mut p = Policy::default_policy().unwrap();
        p.hold_ms = 60_000;
        let mut e = Engine::new(p, &topology(&SITE));
        let sample_of = |i: usize, v: f32, q: Quality| {
            let (d, s, ch, healthy) = HEALTHY[i];
            let v = if s.kind() == firebreak_protocols::SignalKind::State {
                f32::from(u8::from(v >= 0.5 && v.is_finite()))
            } else if q == Quality::Good { v } else { healthy };
            sample(d, s, ch, v, q)
        };
        let healthy: Vec<Sample> = (0..HEALTHY.len())
            .map(|i| good(HEALTHY[i].0, HEALTHY[i].1, HEALTHY[i].2, HEALTHY[i].3))
            .collect();
        let mut ts = e.step(0, &healthy);
        let mut t = 1u64;
        for step in &steps {
            let s: Vec<Sample> = step.iter().map(|&(i, v, q)| sample_of(i, v, q)).collect();
            ts.extend(e.step(t * 1000, &s));
            t += 1;
        }
        let raised = ts.iter().filter(|x| x.zone.is_none()).map(|x| x.level).max();
        let quiet_s = 60 + PLAUSIBILITY_SETTLE_S + 5;
        let mut after = Vec::new();
        for _ in 0..quiet_s {
            after.extend(e.step(t * 1000, &healthy));
            t += 1;
        }
        prop_assert_eq!(
            e.site_level(),
            Level::Normal,
            "raised {:?}; after: {:?}; firing {:?} {:?}; faults {:?}; before {:?}",
            raised,
            after,
            e.firing("battery-room"),
            e.firing("hall"),
            e.sensor_faults(),
            ts
        );
        for (z, l) in e.zone_levels() {
            prop_assert_eq!(l, Level::Normal, "zone {}", z);
        }
        prop_assert!(e.sensor_faults().is_empty(), "{:?}", e.sensor_faults());
        if raised.is_some_and(|l| l > Level::Normal) && e.site_level() == Level::Normal {
            let last = ts.iter().chain(&after).rfind(|x| x.zone.is_none());
            prop_assert!(last.is_some_and(|x| x.level == Level::Normal && x.previous > Level::Normal));
        }
    }
}

#[test]
fn a_resumed_level_is_lowered_once_its_cause_is_gone_and_kept_while_it_persists() {
    let zone = ZoneId::new("room").unwrap();
    let incident = IncidentId::starting(&GatewayId::new("gw").unwrap(), 5000);
    let resumed = [
        (Some(zone.clone()), Level::Prepare, incident.clone()),
        (None, Level::Prepare, incident.clone()),
    ];
    // Restarted after the cause cleared: held through the grace (10 s) and the hold (60 s),
    // then lowered from `prepare`, in the same incident.
    let mut e = Engine::new(policy(THRESHOLD), &topology(&[("n1", "room")]));
    e.resume(&resumed, 100_000, 10_000);
    assert_eq!(e.site_level(), Level::Prepare);
    let ts = run(&mut e, 101, 300, |_| {
        vec![good("n1", Signal::OffGas, 0, 5.0)]
    });
    assert_eq!(site_levels(&ts), vec![(170, Level::Normal)]);
    assert!(
        ts.iter()
            .all(|t| t.previous == Level::Prepare && t.incident == incident)
    );
    // Restarted while the cause persists: kept, never re-raised from normal.
    let mut e = Engine::new(policy(THRESHOLD), &topology(&[("n1", "room")]));
    e.resume(&resumed, 100_000, 10_000);
    let ts = run(&mut e, 101, 600, |_| {
        vec![good("n1", Signal::OffGas, 0, 80.0)]
    });
    assert!(ts.is_empty(), "{ts:?}");
    assert_eq!(e.site_level(), Level::Prepare);
}

#[test]
fn a_device_going_silent_during_a_fire_alarm_escalates_one_silent_before_does_not() {
    let topo = topology(&[("panel", "room"), ("ups", "room")]);
    let smoke = |v: f32| good("panel", Signal::SmokeAlarm, 0, v);
    let ups = |q: Quality| sample("ups", Signal::UpsLoad, 0, 40.0, q);
    // The UPS card dies in the fire the smoke detector sees: evacuate 60 s later.
    let mut e = Engine::new(Policy::default_policy().unwrap(), &topo);
    let ts = run(&mut e, 0, 200, |t| {
        vec![
            smoke(f32::from(u8::from(t >= 10))),
            ups(if t >= 50 {
                Quality::CommLost
            } else {
                Quality::Good
            }),
        ]
    });
    assert_eq!(
        site_levels(&ts),
        vec![(13, Level::Prepare), (110, Level::Evacuate)]
    );
    let evac = ts.iter().rfind(|t| t.zone.is_none()).unwrap();
    assert_eq!(evac.reasons[0].rule.as_str(), "witnesses-lost");
    assert_eq!(evac.reasons[1].device.as_ref().unwrap().as_str(), "ups");
    // A device that was already silent before the alarm is not evidence of the fire.
    let mut e = Engine::new(Policy::default_policy().unwrap(), &topo);
    let ts = run(&mut e, 0, 300, |t| {
        vec![smoke(f32::from(u8::from(t >= 100))), ups(Quality::CommLost)]
    });
    assert!(ts.iter().all(|t| t.level <= Level::Prepare), "{ts:?}");
}

/// One second of a [`disturbance`] as samples, values and qualities as drawn.
fn raw_samples(step: &[(usize, f32, Quality)]) -> Vec<Sample> {
    step.iter()
        .map(|&(i, v, q)| {
            let (d, s, ch, _) = HEALTHY[i];
            sample(d, s, ch, v, q)
        })
        .collect()
}

/// [`SITE`] without one device, keeping every zone.
fn site_without(device: &str, grouped: bool) -> Topology {
    let mut t = site(grouped);
    t.devices.retain(|(d, _)| d.as_str() != device);
    t.witnesses.retain(|(d, _)| d.as_str() != device);
    t
}

/// [`SITE`]; `grouped`: the two nodes behind one harness (one witness), the first node's
/// channels independent, the PDUs one witness.
fn site(grouped: bool) -> Topology {
    let mut t = topology(&SITE);
    if grouped {
        let group = |g: &str| Witness {
            group: Some(g.into()),
            independent_channels: false,
        };
        t.witnesses = vec![
            (
                DeviceId::new("node-1").unwrap(),
                Witness {
                    group: Some("harness".into()),
                    independent_channels: true,
                },
            ),
            (DeviceId::new("node-2").unwrap(), group("harness")),
            (DeviceId::new("pdu-1").unwrap(), group("pdus")),
            (DeviceId::new("pdu-2").unwrap(), group("pdus")),
        ];
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// A device under maintenance is judged as if it did not exist: whatever it and every
    /// other device report, the transitions (levels, times, reasons) are those of the site
    /// without it. So maintenance can never take evidence away from another witness, nor
    /// let the maintained one raise anything.
    #[test]
    fn maintenance_is_the_device_not_existing(
        steps in disturbance(),
        which in 0..SITE.len(),
        grouped in any::<bool>(),
    ) {
        let device = SITE[which].0;
        let mut maintained = Engine::new(Policy::default_policy().unwrap(), &site(grouped));
        let unknown = maintained.set_maintenance(&[(DeviceId::new(device).unwrap(), None)]);
        prop_assert!(unknown.is_empty());
        let mut without =
            Engine::new(Policy::default_policy().unwrap(), &site_without(device, grouped));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (t, step) in steps.iter().enumerate() {
            let all = raw_samples(step);
            let others: Vec<Sample> = all.iter().filter(|s| s.device.as_str() != device).cloned().collect();
            let now = t as u64 * 1000;
            a.extend(maintained.step(now, &all));
            b.extend(without.step(now, &others));
            if t % 7 == 0 {
                // The acquisition table's view of the links, the maintained device silent.
                maintained.set_link(&DeviceId::new(device).unwrap(), true);
            }
        }
        prop_assert_eq!(a, b);
    }

    /// One channel under maintenance is judged as if that channel did not exist; the
    /// device's other channels count as before.
    #[test]
    fn a_channel_under_maintenance_is_that_channel_not_existing(
        steps in disturbance(),
        which in 0..HEALTHY.len(),
        grouped in any::<bool>(),
    ) {
        let (device, _, channel, _) = HEALTHY[which];
        let mut maintained = Engine::new(Policy::default_policy().unwrap(), &site(grouped));
        maintained.set_maintenance(&[(DeviceId::new(device).unwrap(), Some(channel))]);
        let mut without = Engine::new(Policy::default_policy().unwrap(), &site(grouped));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (t, step) in steps.iter().enumerate() {
            let all = raw_samples(step);
            let others: Vec<Sample> = all
                .iter()
                .filter(|s| !(s.device.as_str() == device && s.channel == channel))
                .cloned()
                .collect();
            let now = t as u64 * 1000;
            a.extend(maintained.step(now, &all));
            b.extend(without.step(now, &others));
        }
        prop_assert_eq!(a, b);
    }
}

#[test]
fn maintenance_forgets_what_the_device_said_and_lowers_what_only_it_held() {
    let topo = topology(&[("n1", "room"), ("n2", "room")]);
    let n1 = DeviceId::new("n1").unwrap();
    let mut e = Engine::new(policy(THRESHOLD), &topo);
    // n1 reads off-gas: prepare.
    let ts = run(&mut e, 0, 30, |_| vec![good("n1", Signal::OffGas, 0, 70.0)]);
    assert_eq!(site_levels(&ts), vec![(10, Level::Prepare)]);
    // The technician puts n1 under maintenance (calibration gas): it no longer holds the
    // level, which comes down after the hold (60 s), though n1 still reads 70.
    assert!(e.set_maintenance(&[(n1.clone(), None)]).is_empty());
    assert!(e.under_maintenance(&n1, None) && e.under_maintenance(&n1, Some(3)));
    let ts = run(&mut e, 31, 120, |_| {
        vec![good("n1", Signal::OffGas, 0, 70.0)]
    });
    assert_eq!(site_levels(&ts), vec![(91, Level::Normal)]);
    assert!(e.stats().maintenance >= 90);
    // n2 sees off-gas while n1 is still under maintenance: n2 counts.
    let ts = run(&mut e, 121, 140, |_| {
        vec![
            good("n1", Signal::OffGas, 0, 70.0),
            good("n2", Signal::OffGas, 0, 70.0),
        ]
    });
    assert_eq!(site_levels(&ts), vec![(131, Level::Prepare)]);
    let up = ts.iter().rfind(|t| t.zone.is_none()).unwrap();
    let devices: Vec<&str> = up
        .reasons
        .iter()
        .filter_map(|r| r.device.as_ref().map(|d| d.as_str()))
        .collect();
    assert_eq!(devices, vec!["n2"]);
    // Maintenance over: n1 counts again from its next reading, fresh.
    e.set_maintenance(&[]);
    assert!(!e.under_maintenance(&n1, None));
    e.step(141_000, &[good("n1", Signal::OffGas, 0, 70.0)]);
    assert!(
        e.reasons("room")
            .iter()
            .any(|r| r.device.as_ref() == Some(&n1))
    );
    // A device the engine does not know is named back.
    let ghost = DeviceId::new("ghost").unwrap();
    assert_eq!(e.set_maintenance(&[(ghost.clone(), None)]), vec![ghost]);
}

#[test]
fn a_device_under_maintenance_going_silent_raises_nothing_and_is_not_all_of_a_zone() {
    let topo = topology(&[("a", "room"), ("b", "room")]);
    let mut e = Engine::new(Policy::default_policy().unwrap(), &topo);
    let a = DeviceId::new("a").unwrap();
    e.set_maintenance(&[(a.clone(), None)]);
    // a is unplugged: nothing.
    let ts = run(&mut e, 0, 120, |_| {
        vec![
            sample("a", Signal::OffGas, 0, 0.0, Quality::CommLost),
            good("b", Signal::OffGas, 0, 0.5),
        ]
    });
    assert!(ts.is_empty(), "{ts:?}");
    // b goes silent too: the zone is dark for the devices it watches (b), so device-lost and
    // zone-dark fire on b alone.
    let ts = run(&mut e, 121, 200, |_| {
        vec![
            sample("a", Signal::OffGas, 0, 0.0, Quality::CommLost),
            sample("b", Signal::OffGas, 0, 0.0, Quality::CommLost),
        ]
    });
    assert_eq!(site_levels(&ts).first().map(|l| l.1), Some(Level::Watch));
    let rules: Vec<&str> = e.firing("room");
    assert!(rules.contains(&"zone-dark"), "{rules:?}");
    for r in e.reasons("room") {
        assert_ne!(r.device.as_ref(), Some(&a), "{r:?}");
    }
    // Maintenance over, a still silent: it counts as lost again.
    e.set_maintenance(&[]);
    e.step(201_000, &[]);
    let lost = e
        .reasons("room")
        .into_iter()
        .filter(|r| r.rule.as_str() == "zone-dark")
        .map(|r| r.value)
        .next();
    assert_eq!(lost, Some(2.0));
}
