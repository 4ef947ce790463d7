//! The shape of the later load run (2,000 devices of 32 registers): one process serves them
//! on nine ports of 247 unit ids, and a client reads every one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use firebreak_hil::clock::ScenarioClock;
use firebreak_hil::sim::{ModbusServer, SimDevice};
use firebreak_hil::time::ScenarioTime;
use firebreak_protocols::{DataType, DeviceId, RegisterDescriptor, Signal, Table};
use tokio_modbus::prelude::*;

const DEVICES: usize = 2000;
const REGISTERS: u16 = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_devices_of_32_registers() {
    // 32 metered outlets: pdu-power channels 0..32, 10 W apart.
    let map: Arc<[RegisterDescriptor]> = (0..REGISTERS)
        .map(|i| {
            RegisterDescriptor::new(Signal::PduPower, Table::Holding, i, DataType::U16)
                .channel(i as u8)
        })
        .collect();
    let clock = ScenarioClock::paused(ScenarioTime::T0);
    let devices: Vec<Arc<SimDevice>> = (0..DEVICES)
        .map(|i| {
            let d = SimDevice::modbus(
                DeviceId::new(&format!("pdu-{i}")).unwrap(),
                Arc::clone(&map),
            );
            for ch in 0..REGISTERS {
                d.set_value(
                    Signal::PduPower,
                    ch as u8,
                    f32::from(ch * 10) + (i % 7) as f32,
                )
                .unwrap();
            }
            Arc::new(d)
        })
        .collect();
    let mut servers = Vec::new();
    for chunk in devices.chunks(247) {
        let units = chunk
            .iter()
            .enumerate()
            .map(|(u, d)| (u as u8 + 1, Arc::clone(d)))
            .collect();
        servers.push(
            ModbusServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), units, clock.clone())
                .await
                .unwrap(),
        );
    }
    assert_eq!(servers.len(), 9);

    let started = Instant::now();
    let mut readers = Vec::new();
    for (s, server) in servers.iter().enumerate() {
        let (addr, units) = (server.local_addr(), server.units().to_vec());
        readers.push(tokio::spawn(async move {
            let mut ctx = tcp::connect_slave(addr, Slave(1)).await.unwrap();
            for unit in units {
                ctx.set_slave(Slave(unit));
                let words = tokio::time::timeout(
                    Duration::from_secs(5),
                    ctx.read_holding_registers(0, REGISTERS),
                )
                .await
                .unwrap()
                .unwrap()
                .unwrap();
                let i = s * 247 + usize::from(unit - 1);
                assert_eq!(words.len(), usize::from(REGISTERS));
                assert_eq!(words[31], 310 + (i % 7) as u16, "device {i}");
            }
        }));
    }
    for r in readers {
        r.await.unwrap();
    }
    let took = started.elapsed();
    eprintln!("read {DEVICES} devices x {REGISTERS} registers in {took:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_eq!(devices[1999].stats().answered, 1);
}
