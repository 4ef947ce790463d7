//! The Firebreak battery-room sensor node.
//!
//! It reads rack probes, an off-gas sensor and dry contacts, raises a local alarm on its own,
//! and serves its readings over Modbus RTU with the register map of
//! [`firebreak_protocols::SENSOR_NODE`], so the node, the gateway and `docs/register-maps.md`
//! read one table. No allocator: every buffer is a `heapless` one or a fixed array.
//!
//! - [`tmp117`]: the TMP117 I2C temperature sensor driver (`embedded-hal` 1.0);
//! - [`sensors`]: one cycle's [`Inputs`](sensors::Inputs), read through small traits, pins
//!   and drivers;
//! - [`health`]: bus errors, stuck and impossible readings make a probe faulty, never a fire;
//! - [`detect`]: absolute limit, rate of rise, off-gas and smoke, with the shared
//!   `protocols::series` primitives;
//! - [`node`]: the latching relay, the status block, the registers, the [`Watchdog`] trait;
//! - [`image`]: the input register image, encoded as the profile describes;
//! - [`modbus`]: the RTU server (3.5-character framing, CRC, 03/04/06, exceptions) over any
//!   `embedded-io` UART;
//! - [`ports`]: the node's two RTU ports, A and B (one bus per gateway), independent of each
//!   other, answered from the same registers;
//! - [`feed`]: the line protocol that plays the sensors on boards without any (QEMU, host);
//! - [`runner`]: the main loop without its I/O — feed, cycle schedule, fed clock, event
//!   lines — that every board runs.
//!
//! The binaries: `firebreak-node-qemu` (this crate, for `thumbv7em-none-eabihf` on QEMU's
//! `mps2-an386`) and `firebreak-node-sim` (`firmware/sim`, the same node on a host PTY). See
//! `docs/firmware.md`.

#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

pub mod detect;
pub mod feed;
pub mod health;
pub mod image;
pub mod modbus;
pub mod node;
pub mod ports;
pub mod runner;
pub mod sensors;
pub mod tmp117;

pub use node::{Node, ResetReason, Watchdog};
pub use ports::{Port, RtuPorts};
pub use runner::{Action, Board, Runner};
