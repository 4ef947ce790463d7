//! The policy engine's step: samples per second through the default rules.
//!
//! `cargo bench -p firebreak-gateway --bench policy`; figures in docs/performance.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // bench code

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use firebreak_gateway::policy::{Engine, Policy, Topology};
use firebreak_protocols::{DeviceId, GatewayId, Quality, Sample, Signal, SiteId, ZoneId};

const ZONES: usize = 20;
const PDUS_PER_ZONE: usize = 100;

/// A hall-sized site: 20 zones of 100 PDUs, a UPS and a sensor node each.
fn site() -> (Topology, Vec<Vec<Sample>>) {
    let mut devices = Vec::new();
    let mut polls = Vec::new();
    let sample = |d: &DeviceId, signal: Signal, channel: u8, value: f32| Sample {
        device: d.clone(),
        signal,
        channel,
        value,
        unit: signal.unit(),
        timestamp_ms: 0,
        quality: Quality::Good,
    };
    for z in 0..ZONES {
        let zone = ZoneId::new(&format!("hall-{z}")).unwrap();
        for p in 0..PDUS_PER_ZONE {
            let d = DeviceId::new(&format!("pdu-{z}-{p}")).unwrap();
            polls.push(vec![
                sample(&d, Signal::PduInputVoltage, 0, 230.0),
                sample(&d, Signal::PduCurrent, 0, 12.0),
                sample(&d, Signal::PduPower, 0, 2700.0),
            ]);
            devices.push((d, zone.clone()));
        }
        let ups = DeviceId::new(&format!("ups-{z}")).unwrap();
        polls.push(vec![
            sample(&ups, Signal::UpsOnBattery, 0, 0.0),
            sample(&ups, Signal::UpsInputVoltage, 0, 230.0),
            sample(&ups, Signal::UpsRuntimeRemaining, 0, 900.0),
            sample(&ups, Signal::UpsLoad, 0, 55.0),
        ]);
        devices.push((ups, zone.clone()));
        let node = DeviceId::new(&format!("node-{z}")).unwrap();
        let mut n = vec![
            sample(&node, Signal::OffGas, 0, 0.5),
            sample(&node, Signal::SmokeAlarm, 0, 0.0),
        ];
        for ch in 0..8 {
            n.push(sample(&node, Signal::RackTemperature, ch, 25.0));
        }
        polls.push(n);
        devices.push((node, zone.clone()));
    }
    let topology = Topology {
        site: SiteId::new("bench").unwrap(),
        gateway: GatewayId::new("gw").unwrap(),
        zones: Vec::new(),
        devices,
        witnesses: Vec::new(),
    };
    (topology, polls)
}

fn step(c: &mut Criterion) {
    let (topology, polls) = site();
    let all: Vec<Sample> = polls.iter().flatten().cloned().collect();
    let mut g = c.benchmark_group("policy");

    // One step per second of the whole site's samples: the batch cost per sample.
    let mut engine = Engine::new(Policy::default_policy().unwrap(), &topology);
    let mut now = 0u64;
    g.throughput(Throughput::Elements(all.len() as u64));
    g.bench_function("step/whole-site-batch", |b| {
        b.iter(|| {
            now += 1000;
            black_box(engine.step(now, black_box(&all)))
        })
    });

    // One step per device poll, as the gateway's run loop calls it.
    let mut engine = Engine::new(Policy::default_policy().unwrap(), &topology);
    let mut now = 0u64;
    let mut i = 0usize;
    g.throughput(Throughput::Elements(polls[0].len() as u64));
    g.bench_function("step/one-pdu-poll", |b| {
        b.iter(|| {
            now += 1;
            i = (i + 1) % PDUS_PER_ZONE;
            black_box(engine.step(now, black_box(&polls[i])))
        })
    });
    g.finish();
}

criterion_group!(benches, step);
criterion_main!(benches);
