//! The Firebreak battery-room sensor node.
//!
//! It reads rack probes, an off-gas sensor and dry contacts, raises a local alarm on its own,
//! and serves its readings over Modbus RTU with the register map of
//! [`firebreak_protocols::SENSOR_NODE`], so the node, the gateway and `docs/register-maps.md`
//! read one table. No allocator: every buffer is a `heapless` one.
//!
//! Built so far: [`image`], the input register image the Modbus server serves. The probe
//! drivers, local detection and the RTU server follow (see the firmware issue).

#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

pub mod image;
