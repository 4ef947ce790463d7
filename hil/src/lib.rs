//! The hardware-in-loop rig: device simulators, scenarios as data, and (to come) the rig that
//! replays them against the gateway as a separate process, measuring lead time and false
//! alarms.
//!
//! - [`scenario`]: scenario files (`hil/scenarios/*.toml`), read and checked;
//! - [`time`] and [`clock`]: scenario time (`T-12m`) and the scaled clock that drives it;
//! - [`timeline`]: the values a signal takes over a scenario;
//! - [`sim`]: the simulators: UPS, PDU and sensor node as Modbus TCP servers, room sensors
//!   over MQTT, each with faults;
//! - [`node`]: the sensor node in the loop: the firmware's host build, its QEMU image or a
//!   physical node on an RS-485 line, fed the scenario's values and clock;
//! - [`site`]: the gateway's site configuration for a running simulation;
//! - [`rig`]: `firebreak-hil run` and `suite`: the gateway as a separate process, a
//!   verifying subscriber, lead time and latency, the result table, JSON and SVG.
//! - [`load`]: the load run, many simulated devices against the gateway process.
//!
//! `docs/hil.md` describes the scenario format, the suite and the rig.

#![warn(missing_docs)]

pub mod broker;
pub mod cli;
pub mod clock;
pub mod load;
pub mod node;
pub mod rig;
pub mod scenario;
pub mod sim;
pub mod site;
pub mod time;
pub mod timeline;
