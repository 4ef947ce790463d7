//! Hot paths of the shared codec: read planning, register decoding, trigger encoding.
//!
//! `cargo bench -p firebreak-protocols --features serde,std`; figures in docs/performance.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // bench code

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use firebreak_protocols::message::{decode as decode_msg, encode_vec};
use firebreak_protocols::profile::RegisterDescriptor as R;
use firebreak_protocols::{
    DataType, DeviceId, GatewayId, IncidentId, Level, PlanOptions, RawData, Reason, RuleId,
    SENSOR_NODE, Signal, SiteId, Table, Trigger, ZoneId, decode_samples, plan_reads,
};

/// A 32-register device: 16 u16 values and 8 u32 values, scaled, with sentinels.
fn wide_profile() -> Vec<R> {
    let mut regs = Vec::new();
    for i in 0..16u16 {
        regs.push(
            R::new(Signal::PduCurrent, Table::Input, i, DataType::U16)
                .channel(i as u8)
                .scaled(0.01, 0.0)
                .valid(0.0, 400.0)
                .sentinel(0xFFFF),
        );
    }
    for i in 0..8u16 {
        regs.push(
            R::new(Signal::PduPower, Table::Input, 16 + 2 * i, DataType::U32)
                .channel(i as u8)
                .valid(0.0, 200_000.0)
                .sentinel(0xFFFF_FFFF),
        );
    }
    regs
}

fn planning(c: &mut Criterion) {
    let options = PlanOptions::default();
    let wide = wide_profile();
    let mut g = c.benchmark_group("plan_reads");
    g.bench_function("sensor-node", |b| {
        b.iter(|| plan_reads::<16>(black_box(SENSOR_NODE.registers), &options).unwrap())
    });
    g.bench_function("32-registers", |b| {
        b.iter(|| plan_reads::<16>(black_box(&wide), &options).unwrap())
    });
    g.finish();
}

fn decoding(c: &mut Criterion) {
    let wide = wide_profile();
    let plan = plan_reads::<16>(&wide, &PlanOptions::default()).unwrap();
    assert_eq!(plan.len(), 1);
    let request = plan[0];
    let words: Vec<u16> = (0..32).map(|i| 1000 + i).collect();
    let device = DeviceId::new("pdu-0001").unwrap();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(32));
    g.bench_function("32-registers-to-samples", |b| {
        b.iter(|| {
            decode_samples(
                &device,
                black_box(&wide),
                &request,
                RawData::Words(black_box(&words)),
                1_700_000_000_000,
            )
            .filter(Result::is_ok)
            .count()
        })
    });
    g.finish();
}

fn trigger() -> Trigger {
    let mut t = Trigger::new(
        GatewayId::new("gw-paris-1a").unwrap(),
        42,
        IncidentId::new("gw-paris-1a-1700000000000").unwrap(),
        SiteId::new("paris-1").unwrap(),
        Some(ZoneId::new("battery-room-b1").unwrap()),
        Level::Evacuate,
        Level::Prepare,
        1_700_000_123_456,
    )
    .unwrap();
    for (rule, signal, v, th) in [
        ("fire-corroborated", None, 2.0, 2.0),
        ("off-gas", Some(Signal::OffGas), 84.5, 20.0),
        ("rack-temp-rise", Some(Signal::RackTemperature), 3.1, 1.0),
    ] {
        t.push_reason(Reason {
            rule: RuleId::new(rule).unwrap(),
            signal,
            device: signal.map(|_| DeviceId::new("node-b1").unwrap()),
            channel: 0,
            value: v,
            threshold: th,
        })
        .unwrap();
    }
    t.seconds_to_power_loss = Some(420);
    t
}

fn messages(c: &mut Criterion) {
    let t = trigger();
    let bytes = encode_vec(&t).unwrap();
    let mut g = c.benchmark_group("trigger");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| b.iter(|| encode_vec(black_box(&t)).unwrap()));
    g.bench_function("decode", |b| {
        b.iter(|| decode_msg::<Trigger>(black_box(&bytes)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, planning, decoding, messages);
criterion_main!(benches);
