//! The Firebreak gateway: reads a site's UPS, PDU and battery-room devices, decides evacuation
//! levels and delivers triggers to failover controllers. `src/main.rs` only parses the command
//! line; everything else lives here so tests and benches use the library.

pub mod acquire;
pub mod campaign;
pub mod cli;
pub mod config;
pub mod control;
pub mod deliver;
pub mod demo;
pub mod drill;
pub mod durable;
pub mod health;
pub mod http;
pub mod keys;
pub mod maintenance;
pub mod page;
pub mod policy;
pub mod probe;
pub mod reload;
pub mod run;
pub mod secrets;
pub mod service;
pub mod subscribe;
pub mod telemetry;
pub mod trust;
pub mod watch;
