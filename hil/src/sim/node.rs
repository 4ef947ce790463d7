//! The battery-room sensor node, and the hook where the firmware's host build attaches.
//!
//! **Today** a scenario's `node` device is a *stand-in*: the simulator serves the node's
//! register map ([`SENSOR_NODE`](firebreak_protocols::SENSOR_NODE), `firebreak-sensor-node`)
//! over Modbus TCP from the scenario, exactly as it serves the UPS and the PDU. The gateway
//! reads the same registers it would read from the node, but over TCP rather than RS-485,
//! and the stand-in has none of the firmware's own logic (its local alarm, `node-alarm`,
//! only changes when a scenario scripts it).
//!
//! **The hook**: [`NodeLink::HostBuild`]. The firmware's host build will run as a process
//! on one end of a PTY pair (socat, as `gateway/tests/acquisition.rs` does for pymodbus), the
//! rig will feed it the scenario's probe, off-gas and contact values, and the gateway will read
//! it over Modbus RTU on the other end ([`Endpoint::ModbusRtu`](super::Endpoint::ModbusRtu)
//! in the generated site configuration). Until that build exists, asking for it fails with
//! [`SimError::NodeHostBuildNotWired`](super::SimError::NodeHostBuildNotWired).

use std::path::PathBuf;

/// How a scenario's sensor node is brought up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NodeLink {
    /// The node's register map served over Modbus TCP from the scenario (see the
    /// [module](self) documentation).
    #[default]
    StandIn,
    /// The firmware's host build over a PTY: **not wired yet**.
    HostBuild {
        /// The host build's executable.
        program: PathBuf,
    },
}

/// The environment variable the rig will read the firmware host build's path from.
pub const NODE_HOST_BIN_ENV: &str = "FIREBREAK_NODE_HOST_BIN";
