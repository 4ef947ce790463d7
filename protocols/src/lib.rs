//! Firebreak's shared vocabulary, defined once for the firmware, the gateway, the HIL rig and
//! the failover controllers that subscribe to triggers.
//!
//! - [`signal`]: the canonical [`Signal`]s with their [`Unit`]s, and the [`Quality`] each
//!   [`Sample`] carries;
//! - [`profile`] and [`builtin`]: typed Modbus register descriptors and device profiles;
//! - [`plan`]: the fewest read requests that cover a profile;
//! - [`decode`](mod@decode): raw registers to values with a quality; [`encode`](mod@encode): the
//!   inverse, values to raw registers (the HIL simulators serve profiles with it);
//! - [`message`]: the [`Trigger`], [`Telemetry`] and [`GatewayStatus`] messages, as JSON;
//! - [`topic`]: the MQTT topic layout;
//! - [`signed`]: the bytes a trigger's signature covers, and where the signature sits;
//! - [`snmp`] and [`snmp_builtin`]: OID descriptors and SNMP device profiles, sans-IO;
//! - [`rtu`]: Modbus RTU frames (CRC, requests, responses, exceptions), sans-IO;
//! - [`series`]: rate of rise, debounce and hysteresis, shared by firmware and policy;
//! - [`id`]: validated names; [`time`]: RFC 3339 timestamps;
//! - `toml_file` (feature `toml`): one TOML reader for every configuration file.
//!
//! `#![no_std]`, no allocator, no I/O. Features: `serde` (derives and the JSON codec),
//! `std` (`std::error::Error` impls, `Vec` encoders), `toml` (the configuration reader, for
//! hosts).

#![no_std]
#![warn(missing_docs)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod builtin;
pub mod decode;
pub mod encode;
pub mod id;
pub mod message;
pub mod plan;
pub mod profile;
pub mod rtu;
pub mod series;
pub mod signal;
pub mod signed;
pub mod snmp;
pub mod snmp_builtin;
pub mod time;
#[cfg(feature = "toml")]
pub mod toml_file;
pub mod topic;

pub use builtin::{BUILTIN_PROFILES, GENERIC_PDU, GENERIC_UPS, SENSOR_NODE, builtin_profile};
pub use decode::{DecodeError, RawData, Reading, decode, decode_samples};
pub use encode::{EncodeError, encode_bit, encode_raw, encode_words};
pub use id::{DeviceId, GatewayId, IdError, IncidentId, KeyId, RuleId, SiteId, ZoneId};
pub use message::{
    Drill, GatewayStatus, Level, MaintenanceNote, MessageError, Presence, Reason, Signature,
    Telemetry, TelemetryValue, Trigger,
};
pub use plan::{PlanError, PlanOptions, ReadRequest, plan_reads};
pub use profile::{
    ByteOrder, DataType, DescriptorError, DeviceProfile, ProfileError, RegisterDescriptor,
    Sentinels, Table, ValidRange, WordOrder,
};
pub use series::{Debounce, Direction, Hysteresis, HysteresisError, RateOfRise};
pub use signal::{Quality, ResetReason, Sample, Signal, SignalKind, TransferSource, Unit};
pub use signed::{SignedError, SignedParts};
pub use snmp::{
    OidDescriptor, OidError, OidKind, OidProfile, OidProfileError, OidShape, SnmpValue, ValueError,
};
pub use snmp_builtin::{BUILTIN_OID_PROFILES, builtin_oid_profile};
pub use topic::{Topic, TopicError};
