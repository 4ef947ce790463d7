//! The messages on the wire: [`Trigger`], [`Telemetry`] and [`GatewayStatus`], as JSON.
//!
//! Every message carries a `schema` field (`firebreak.trigger/1`); see `docs/contract.md` for
//! the contract with failover controllers and how versions evolve. The types are plain data
//! with `heapless` fields, so the firmware, the gateway and a controller share one definition.
//! With the `serde` feature, [`encode`] and [`decode`] read and write compact JSON without an
//! allocator; [`decode`] takes bytes from the network and returns errors, never panics.

use core::fmt;

use crate::id::{DeviceId, GatewayId, IncidentId, KeyId, RuleId, SiteId, ZoneId};
use crate::signal::{Quality, Signal, Unit};
use crate::time::{Rfc3339, format_rfc3339};

/// The schema of [`Trigger`].
pub const TRIGGER_SCHEMA: &str = "firebreak.trigger/1";
/// The schema of [`Telemetry`].
pub const TELEMETRY_SCHEMA: &str = "firebreak.telemetry/1";
/// The schema of [`GatewayStatus`].
pub const STATUS_SCHEMA: &str = "firebreak.status/1";
/// The schema of a [`Drill`]: a signed rehearsal of a trigger, never a level. A schema of its
/// own, so that a controller that does not know drills refuses one as malformed (the contract
/// says decoders refuse a schema they do not know) wherever it comes from.
pub const DRILL_SCHEMA: &str = "firebreak.drill/1";

/// Storage of a schema name.
pub type SchemaName = heapless::String<32>;

/// The most reasons one trigger carries; a policy keeps the strongest.
pub const MAX_REASONS: usize = 8;
/// The most values one telemetry message carries; a device with more sends several.
pub const MAX_TELEMETRY_VALUES: usize = 32;
/// The longest payload [`decode`] accepts, in bytes.
pub const MAX_MESSAGE_LEN: usize = 16 * 1024;
/// The deepest nesting of arrays and objects [`decode`] accepts (our messages use 3).
pub const MAX_NESTING: usize = 8;

/// An evacuation level, from calm to act-now. Ordered: `Normal < Watch < Prepare < Evacuate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Level {
    /// Nothing abnormal.
    Normal,
    /// Something is abnormal or unknown (a device lost); people look, controllers need not act.
    Watch,
    /// Evidence of a fire or of power at risk: controllers get ready to move traffic.
    Prepare,
    /// Move traffic now: power loss is expected within the evacuation budget.
    Evacuate,
}

impl Level {
    /// The wire name (`"evacuate"`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Watch => "watch",
            Self::Prepare => "prepare",
            Self::Evacuate => "evacuate",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// Why a level was raised or lowered: one rule, and the value that made it fire.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Reason {
    /// The rule that fired (`rack-temp-rise`).
    pub rule: RuleId,
    /// The signal the rule looked at; absent for rules about the link (`comm-lost`).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub signal: Option<Signal>,
    /// The device the value came from; absent for rules over many devices.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub device: Option<DeviceId>,
    /// The signal's channel on the device.
    #[cfg_attr(feature = "serde", serde(default))]
    pub channel: u8,
    /// The value that was observed, in the signal's unit (or a count, for link rules).
    pub value: f32,
    /// The threshold it was compared with, in the same unit.
    pub threshold: f32,
}

/// The signature of a signed message: Ed25519 over the message's canonical encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Signature {
    /// Which key signed.
    pub key_id: KeyId,
    /// The 64-byte Ed25519 signature, standard base64 with padding (88 characters).
    pub ed25519: heapless::String<88>,
}

/// A change of evacuation level of a site or of one of its zones.
///
/// Published on `firebreak/v1/{site}/triggers` (QoS 1, not retained), and retained on the
/// state topic of its scope. De-duplicate by (`gateway`, `seq`).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Trigger {
    /// Always [`TRIGGER_SCHEMA`].
    pub schema: SchemaName,
    /// The gateway that issued it.
    pub gateway: GatewayId,
    /// Per-gateway sequence number: each trigger of a gateway has a higher one than the last,
    /// across restarts.
    pub seq: u64,
    /// The gateway's boot epoch: higher for each start of the gateway (its start time in Unix
    /// seconds, or one more than the previous start's epoch when the clock says less). Signed
    /// with the rest; absent only from gateways older than it.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub epoch: Option<u64>,
    /// The incident this change belongs to.
    pub incident: IncidentId,
    /// The site.
    pub site: SiteId,
    /// The zone, or absent for the site as a whole.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub zone: Option<ZoneId>,
    /// The new level.
    pub level: Level,
    /// The level before this change.
    pub previous: Level,
    /// Why: the rules that fired, strongest first.
    pub reasons: heapless::Vec<Reason, MAX_REASONS>,
    /// Estimated seconds until servers lose power, where the evidence supports an estimate.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub seconds_to_power_loss: Option<u32>,
    /// When it was issued, RFC 3339 UTC with milliseconds; the same instant as `issued_at_ms`.
    pub issued_at: Rfc3339,
    /// When it was issued, in milliseconds since the Unix epoch.
    pub issued_at_ms: u64,
    /// `true` only on a [`Drill`] (schema [`DRILL_SCHEMA`]); omitted when `false`, so a
    /// trigger's bytes, and so its signature, are those of a gateway older than drills. A
    /// `firebreak.trigger/1` message that says `drill: true` is refused.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_false"))]
    pub drill: bool,
    /// The signature; absent on unsigned triggers.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub signature: Option<Signature>,
}

impl Trigger {
    /// A trigger without reasons, estimate or signature.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gateway: GatewayId,
        seq: u64,
        incident: IncidentId,
        site: SiteId,
        zone: Option<ZoneId>,
        level: Level,
        previous: Level,
        issued_at_ms: u64,
    ) -> Result<Trigger, MessageError> {
        let trigger = Trigger {
            schema: schema_name(TRIGGER_SCHEMA),
            gateway,
            seq,
            epoch: None,
            incident,
            site,
            zone,
            level,
            previous,
            reasons: heapless::Vec::new(),
            seconds_to_power_loss: None,
            issued_at: format_rfc3339(issued_at_ms).ok_or(MessageError::Invalid {
                field: "issued_at_ms",
                problem: "is past year 9999",
            })?,
            issued_at_ms,
            drill: false,
            signature: None,
        };
        trigger.validate()?;
        Ok(trigger)
    }

    /// Adds a reason; an error when [`MAX_REASONS`] are already there or a value is not finite.
    pub fn push_reason(&mut self, reason: Reason) -> Result<(), MessageError> {
        check_reason(&reason)?;
        self.reasons
            .push(reason)
            .map_err(|_| MessageError::Invalid {
                field: "reasons",
                problem: "holds more than MAX_REASONS (8) entries",
            })
    }

    /// Checks what the types alone cannot: the schema, that `level` differs from `previous`,
    /// that both timestamps agree, that reason values are finite.
    pub fn validate(&self) -> Result<(), MessageError> {
        check_schema(&self.schema, TRIGGER_SCHEMA)?;
        if self.drill {
            return Err(MessageError::Invalid {
                field: "drill",
                problem: "is true on a firebreak.trigger/1: a drill is a firebreak.drill/1 message",
            });
        }
        self.validate_body()
    }

    /// The checks a trigger and a drill share.
    fn validate_body(&self) -> Result<(), MessageError> {
        if self.level == self.previous {
            return Err(MessageError::Invalid {
                field: "level",
                problem: "equals previous: a trigger is a change of level",
            });
        }
        if format_rfc3339(self.issued_at_ms).as_ref() != Some(&self.issued_at) {
            return Err(MessageError::Invalid {
                field: "issued_at",
                problem: "is not the instant issued_at_ms names",
            });
        }
        self.reasons.iter().try_for_each(check_reason)
    }

    /// The key subscribers de-duplicate by: the same trigger arrives once per broker and is
    /// re-sent after reconnects.
    pub fn dedup_key(&self) -> (&GatewayId, u64) {
        (&self.gateway, self.seq)
    }
}

#[cfg(feature = "serde")]
fn is_false(b: &bool) -> bool {
    !*b
}

/// A drill: a signed rehearsal of a trigger, issued by `firebreak drill` to test the path to
/// the controllers. It is a [`Trigger`] with schema [`DRILL_SCHEMA`] and `drill: true`,
/// published on `firebreak/v1/{site}/drill/{gateway}` (never on a trigger or state topic), and
/// **never a level**: a controller reports it and changes nothing. Its `seq` is the last
/// trigger `seq` of the gateway when it was issued: a drill takes no `seq` of its own, so it
/// makes no gap and no replay among the triggers. `decode::<Trigger>` refuses a drill, and
/// `decode::<Drill>` a trigger.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Drill(pub Trigger);

impl Drill {
    /// Makes `trigger` a drill (its schema and `drill` field), unsigned.
    pub fn new(mut trigger: Trigger) -> Result<Drill, MessageError> {
        trigger.schema = schema_name(DRILL_SCHEMA);
        trigger.drill = true;
        trigger.signature = None;
        let drill = Drill(trigger);
        drill.validate()?;
        Ok(drill)
    }

    /// Checks the schema, the `drill` field and what a trigger's [`Trigger::validate`] checks.
    pub fn validate(&self) -> Result<(), MessageError> {
        check_schema(&self.0.schema, DRILL_SCHEMA)?;
        if !self.0.drill {
            return Err(MessageError::Invalid {
                field: "drill",
                problem: "is not true on a firebreak.drill/1 message",
            });
        }
        self.0.validate_body()
    }
}

fn check_reason(r: &Reason) -> Result<(), MessageError> {
    if !r.value.is_finite() || !r.threshold.is_finite() {
        return Err(MessageError::Invalid {
            field: "reasons",
            problem: "value and threshold must be finite numbers",
        });
    }
    Ok(())
}

/// One value in a [`Telemetry`] message.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TelemetryValue {
    /// The signal.
    pub signal: Signal,
    /// Its channel on the device.
    pub channel: u8,
    /// The value in `unit`; `null` when the device gave no number (NaN).
    pub value: Option<f32>,
    /// The signal's unit.
    pub unit: Unit,
    /// How far it can be trusted.
    pub quality: Quality,
    /// When it was read, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// A device's latest values, on `firebreak/v1/{site}/telemetry/{device}` (QoS 0).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Telemetry {
    /// Always [`TELEMETRY_SCHEMA`].
    pub schema: SchemaName,
    /// The gateway that read them.
    pub gateway: GatewayId,
    /// The site.
    pub site: SiteId,
    /// The device's zone.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub zone: Option<ZoneId>,
    /// The device.
    pub device: DeviceId,
    /// When the message was issued, in milliseconds since the Unix epoch.
    pub issued_at_ms: u64,
    /// The values.
    pub values: heapless::Vec<TelemetryValue, MAX_TELEMETRY_VALUES>,
}

impl Telemetry {
    /// An empty telemetry message.
    pub fn new(
        gateway: GatewayId,
        site: SiteId,
        zone: Option<ZoneId>,
        device: DeviceId,
        issued_at_ms: u64,
    ) -> Telemetry {
        Telemetry {
            schema: schema_name(TELEMETRY_SCHEMA),
            gateway,
            site,
            zone,
            device,
            issued_at_ms,
            values: heapless::Vec::new(),
        }
    }

    /// Adds a sample's value; `Err` gives the sample back when the message is full.
    pub fn push(&mut self, sample: &crate::Sample) -> Result<(), MessageError> {
        self.values
            .push(TelemetryValue {
                signal: sample.signal,
                channel: sample.channel,
                value: sample.value.is_finite().then_some(sample.value),
                unit: sample.unit,
                quality: sample.quality,
                timestamp_ms: sample.timestamp_ms,
            })
            .map_err(|_| MessageError::Invalid {
                field: "values",
                problem: "holds more than MAX_TELEMETRY_VALUES (32) entries",
            })
    }

    /// Checks the schema and that values are finite or null.
    pub fn validate(&self) -> Result<(), MessageError> {
        check_schema(&self.schema, TELEMETRY_SCHEMA)?;
        if self
            .values
            .iter()
            .any(|v| v.value.is_some_and(|x| !x.is_finite()))
        {
            return Err(MessageError::Invalid {
                field: "values",
                problem: "value must be a finite number or null",
            });
        }
        Ok(())
    }
}

/// Whether a gateway is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Presence {
    /// Connected and heart-beating.
    Online,
    /// Shut down, or gone (the broker published the will message).
    Offline,
}

/// A gateway's liveness, retained on `firebreak/v1/{site}/gateways/{gateway}/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GatewayStatus {
    /// Always [`STATUS_SCHEMA`].
    pub schema: SchemaName,
    /// The gateway.
    pub gateway: GatewayId,
    /// The site it watches.
    pub site: SiteId,
    /// Online or offline.
    pub state: Presence,
    /// The gateway's software version.
    pub version: heapless::String<32>,
    /// Devices answering with good data.
    pub devices_healthy: u16,
    /// Devices configured.
    pub devices_total: u16,
    /// When the status was issued, in milliseconds since the Unix epoch (for the will
    /// message: when the gateway connected).
    pub issued_at_ms: u64,
    /// The gateway's faults, by kind (`outbox`: triggers are not being stored on disk;
    /// `broker-config`: a broker cannot be used for a configuration problem); absent when
    /// there is none. At most [`MAX_FAULTS`], each at most 32 bytes.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "no_faults"))]
    pub faults: heapless::Vec<heapless::String<32>, MAX_FAULTS>,
    /// The devices, or channels of a device, a technician put under maintenance: their
    /// readings are not evidence until `until_ms` (docs/operations.md, "Maintenance");
    /// absent when there is none. At most [`MAX_MAINTENANCE`]. A status is published again as
    /// soon as this changes.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "heapless::Vec::is_empty")
    )]
    pub maintenance: heapless::Vec<MaintenanceNote, MAX_MAINTENANCE>,
    /// The gateway's boot epoch, as in its triggers.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub epoch: Option<u64>,
    /// The connection this status belongs to: counted from 1 at each start of the gateway, one
    /// more for every connection to any of its brokers. The will names the connection it was
    /// registered with.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub session: Option<u64>,
    /// Counts the statuses of one connection: 0 at connect (and for its will), one more for
    /// every heartbeat.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub beat: Option<u64>,
    /// Seconds between heartbeats: a gateway whose status is older than three of them is
    /// silent.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub heartbeat_s: Option<u32>,
    /// The signature, always the last member; absent only from gateways older than it.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub signature: Option<Signature>,
}

/// The most faults a [`GatewayStatus`] lists.
pub const MAX_FAULTS: usize = 4;

/// The most maintenance entries a gateway keeps (and a [`GatewayStatus`] lists).
pub const MAX_MAINTENANCE: usize = 16;

/// A device, or one channel of it, under maintenance, as a [`GatewayStatus`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MaintenanceNote {
    /// The device.
    pub device: DeviceId,
    /// The channel, when only one channel (one probe) of the device is under maintenance.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub channel: Option<u8>,
    /// Since when, in milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// Until when: it ends by itself then, in milliseconds since the Unix epoch.
    pub until_ms: u64,
}

#[cfg(feature = "serde")]
fn no_faults(f: &heapless::Vec<heapless::String<32>, MAX_FAULTS>) -> bool {
    f.is_empty()
}

impl GatewayStatus {
    /// A status message; the version is cut to 32 bytes.
    pub fn new(
        gateway: GatewayId,
        site: SiteId,
        state: Presence,
        version: &str,
        devices_healthy: u16,
        devices_total: u16,
        issued_at_ms: u64,
    ) -> GatewayStatus {
        let mut v = heapless::String::new();
        for c in version.chars() {
            if v.push(c).is_err() {
                break;
            }
        }
        GatewayStatus {
            schema: schema_name(STATUS_SCHEMA),
            gateway,
            site,
            state,
            version: v,
            devices_healthy,
            devices_total,
            issued_at_ms,
            faults: heapless::Vec::new(),
            maintenance: heapless::Vec::new(),
            epoch: None,
            session: None,
            beat: None,
            heartbeat_s: None,
            signature: None,
        }
    }

    /// Adds a fault kind (cut to 32 bytes); beyond [`MAX_FAULTS`] the rest is left out.
    pub fn push_fault(&mut self, kind: &str) {
        let mut k = heapless::String::new();
        for c in kind.chars() {
            if k.push(c).is_err() {
                break;
            }
        }
        if !self.faults.contains(&k) {
            let _ = self.faults.push(k);
        }
    }

    /// Checks the schema and that no more devices are healthy than configured.
    pub fn validate(&self) -> Result<(), MessageError> {
        check_schema(&self.schema, STATUS_SCHEMA)?;
        if self.devices_healthy > self.devices_total {
            return Err(MessageError::Invalid {
                field: "devices_healthy",
                problem: "is more than devices_total",
            });
        }
        Ok(())
    }
}

fn schema_name(s: &str) -> SchemaName {
    let mut n = SchemaName::new();
    // Our schema names are short constants.
    let _ = n.push_str(s);
    n
}

fn check_schema(found: &str, expected: &'static str) -> Result<(), MessageError> {
    if found != expected {
        return Err(MessageError::Schema { expected });
    }
    Ok(())
}

/// Why a message could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageError {
    /// The payload is longer than [`MAX_MESSAGE_LEN`].
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// Arrays and objects nest deeper than [`MAX_NESTING`].
    TooDeep,
    /// The payload is not JSON of the message's shape.
    #[cfg(feature = "serde")]
    Json(serde_json_core::de::Error),
    /// The `schema` field names another message or version.
    Schema {
        /// The schema expected.
        expected: &'static str,
    },
    /// A field has a value the contract does not allow.
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The output buffer is too small.
    BufferTooSmall,
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len } => {
                write!(f, "payload is {len} bytes, more than {MAX_MESSAGE_LEN}")
            }
            Self::TooDeep => write!(f, "payload nests deeper than {MAX_NESTING} levels"),
            #[cfg(feature = "serde")]
            Self::Json(serde_json_core::de::Error::CustomError) => f.write_str(
                "payload has a value the contract does not allow: an id that is empty, longer \
                 than 64 bytes or holds '/', '+', '#' or a control character, or an unknown \
                 signal, unit, quality or level",
            ),
            #[cfg(feature = "serde")]
            Self::Json(e) => write!(f, "payload is not valid JSON of this message: {e}"),
            Self::Schema { expected } => write!(f, "schema is not {expected:?}"),
            Self::Invalid { field, problem } => write!(f, "{field} {problem}"),
            Self::BufferTooSmall => f.write_str("output buffer too small for the message"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for MessageError {}

/// A message of the contract.
pub trait Message: Sized {
    /// Its schema name.
    const SCHEMA: &'static str;
    /// Checks what the types alone cannot.
    fn check(&self) -> Result<(), MessageError>;
}

impl Message for Trigger {
    const SCHEMA: &'static str = TRIGGER_SCHEMA;
    fn check(&self) -> Result<(), MessageError> {
        self.validate()
    }
}

impl Message for Drill {
    const SCHEMA: &'static str = DRILL_SCHEMA;
    fn check(&self) -> Result<(), MessageError> {
        self.validate()
    }
}

impl Message for Telemetry {
    const SCHEMA: &'static str = TELEMETRY_SCHEMA;
    fn check(&self) -> Result<(), MessageError> {
        self.validate()
    }
}

impl Message for GatewayStatus {
    const SCHEMA: &'static str = STATUS_SCHEMA;
    fn check(&self) -> Result<(), MessageError> {
        self.validate()
    }
}

/// A message that carries a [`Signature`] as its last member (see [`crate::signed`]).
pub trait SignedMessage: Message {
    /// Its signature, when it has one.
    fn signature(&self) -> Option<&Signature>;
    /// Sets (or removes) its signature.
    fn set_signature(&mut self, signature: Option<Signature>);
}

impl SignedMessage for Trigger {
    fn signature(&self) -> Option<&Signature> {
        self.signature.as_ref()
    }
    fn set_signature(&mut self, signature: Option<Signature>) {
        self.signature = signature;
    }
}

impl SignedMessage for Drill {
    fn signature(&self) -> Option<&Signature> {
        self.0.signature.as_ref()
    }
    fn set_signature(&mut self, signature: Option<Signature>) {
        self.0.signature = signature;
    }
}

impl SignedMessage for GatewayStatus {
    fn signature(&self) -> Option<&Signature> {
        self.signature.as_ref()
    }
    fn set_signature(&mut self, signature: Option<Signature>) {
        self.signature = signature;
    }
}

/// Checks that arrays and objects in `bytes` nest at most [`MAX_NESTING`] deep, brackets in
/// strings aside. Guards the decoder, which recurses into fields it skips.
pub fn check_nesting(bytes: &[u8]) -> Result<(), MessageError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(MessageError::TooDeep);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(feature = "serde")]
mod json {
    use super::*;

    /// Writes `message` as compact JSON into `buf`; returns the length written. Refuses a
    /// message that breaks the contract.
    pub fn encode<M: Message + serde::Serialize>(
        message: &M,
        buf: &mut [u8],
    ) -> Result<usize, MessageError> {
        message.check()?;
        serde_json_core::to_slice(message, buf).map_err(|_| MessageError::BufferTooSmall)
    }

    /// Reads a message from JSON bytes that came from anywhere: bounded in size and nesting,
    /// unknown fields ignored (for compatible additions), schema and values checked.
    pub fn decode<M: Message + serde::de::DeserializeOwned>(
        bytes: &[u8],
    ) -> Result<M, MessageError> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(MessageError::TooLarge { len: bytes.len() });
        }
        check_nesting(bytes)?;
        let mut scratch = [0u8; 512];
        // Trailing bytes other than white space are an error of the parser's own.
        let (message, _used): (M, usize) =
            serde_json_core::from_slice_escaped(bytes, &mut scratch).map_err(MessageError::Json)?;
        message.check()?;
        Ok(message)
    }

    /// Writes `message` as compact JSON into a new vector.
    #[cfg(feature = "std")]
    pub fn encode_vec<M: Message + serde::Serialize>(
        message: &M,
    ) -> Result<std::vec::Vec<u8>, MessageError> {
        let mut buf = std::vec![0u8; MAX_MESSAGE_LEN];
        let len = encode(message, &mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(feature = "std")]
pub use json::encode_vec;
#[cfg(feature = "serde")]
pub use json::{decode, encode};

#[cfg(test)]
#[cfg(feature = "serde")]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::string::ToString;

    fn trigger() -> Trigger {
        let mut t = Trigger::new(
            GatewayId::new("gw-1").unwrap(),
            42,
            IncidentId::new("gw-1-1665814740000").unwrap(),
            SiteId::new("paris-1").unwrap(),
            Some(ZoneId::new("battery-room").unwrap()),
            Level::Evacuate,
            Level::Prepare,
            1_665_814_740_000,
        )
        .unwrap();
        t.push_reason(Reason {
            rule: RuleId::new("rack-temp-rise").unwrap(),
            signal: Some(Signal::RackTemperature),
            device: Some(DeviceId::new("node-1").unwrap()),
            channel: 3,
            value: 4.5,
            threshold: 1.0,
        })
        .unwrap();
        t.seconds_to_power_loss = Some(420);
        t
    }

    fn round_trip<M>(m: &M) -> M
    where
        M: Message + serde::Serialize + serde::de::DeserializeOwned,
    {
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        let n = encode(m, &mut buf).unwrap();
        decode(&buf[..n]).unwrap()
    }

    #[test]
    fn trigger_round_trips() {
        let t = trigger();
        assert_eq!(round_trip(&t), t);
        let json = encode_vec(&t).unwrap();
        let text = core::str::from_utf8(&json).unwrap();
        assert!(text.starts_with(r#"{"schema":"firebreak.trigger/1","gateway":"gw-1","seq":42,"#));
        assert!(
            text.contains(r#""issued_at":"2022-10-15T06:19:00.000Z","issued_at_ms":1665814740000"#)
        );
        assert!(
            !text.contains("signature"),
            "absent fields are left out: {text}"
        );
    }

    #[test]
    fn full_trigger_fits_and_escapes() {
        let mut t = trigger();
        t.reasons.clear();
        let long = "\"\\".repeat(32); // 64 bytes, each needing an escape
        for _ in 0..MAX_REASONS {
            t.push_reason(Reason {
                rule: RuleId::new(&long).unwrap(),
                signal: Some(Signal::TransferSwitchSource),
                device: Some(DeviceId::new(&long).unwrap()),
                channel: 255,
                value: -f32::MAX,
                threshold: f32::MIN_POSITIVE,
            })
            .unwrap();
        }
        assert!(t.push_reason(t.reasons[0].clone()).is_err());
        t.signature = Some(Signature {
            key_id: KeyId::new(&long).unwrap(),
            ed25519: heapless::String::try_from("A".repeat(88).as_str()).unwrap(),
        });
        assert_eq!(round_trip(&t), t);
        // Other decoders agree on the escaping.
        let v: serde_json::Value = serde_json::from_slice(&encode_vec(&t).unwrap()).unwrap();
        assert_eq!(v["reasons"][7]["rule"], long.as_str());
    }

    #[test]
    fn telemetry_and_status_round_trip() {
        let mut tm = Telemetry::new(
            GatewayId::new("gw-1").unwrap(),
            SiteId::new("paris-1").unwrap(),
            None,
            DeviceId::new("ups-a").unwrap(),
            5,
        );
        let mut sample = crate::Sample {
            device: DeviceId::new("ups-a").unwrap(),
            signal: Signal::UpsRuntimeRemaining,
            channel: 0,
            value: 420.0,
            unit: Unit::Seconds,
            timestamp_ms: 4,
            quality: Quality::Good,
        };
        tm.push(&sample).unwrap();
        sample.value = f32::NAN;
        sample.quality = Quality::SensorFault;
        tm.push(&sample).unwrap();
        let back = round_trip(&tm);
        assert_eq!(back, tm);
        assert_eq!(back.values[1].value, None);
        let st = GatewayStatus::new(
            GatewayId::new("gw-1").unwrap(),
            SiteId::new("paris-1").unwrap(),
            Presence::Offline,
            "0.1.0",
            3,
            4,
            9,
        );
        assert_eq!(round_trip(&st), st);
    }

    /// A drill is a trigger's body under its own schema: its bytes say `drill: true` before
    /// the signature, a trigger's bytes never mention it, and neither decodes as the other.
    #[test]
    fn drills_and_triggers_never_pass_for_each_other() {
        let t = trigger();
        let plain = encode_vec(&t).unwrap();
        assert!(!std::str::from_utf8(&plain).unwrap().contains("drill"));
        let d = Drill::new(t.clone()).unwrap();
        let json = encode_vec(&d).unwrap();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(
            text.starts_with("{\"schema\":\"firebreak.drill/1\""),
            "{text}"
        );
        assert!(text.ends_with(",\"drill\":true}"), "{text}");
        assert_eq!(round_trip(&d), d);
        assert_eq!(
            decode::<Trigger>(&json),
            Err(MessageError::Schema {
                expected: TRIGGER_SCHEMA
            })
        );
        assert_eq!(
            decode::<Drill>(&plain),
            Err(MessageError::Schema {
                expected: DRILL_SCHEMA
            })
        );
        // Either marker alone is refused: a drill field on a trigger, a drill schema without it.
        let marked = text.replace("firebreak.drill/1", "firebreak.trigger/1");
        assert!(matches!(
            decode::<Trigger>(marked.as_bytes()),
            Err(MessageError::Invalid { field: "drill", .. })
        ));
        let unmarked = text.replace(",\"drill\":true", "");
        assert!(matches!(
            decode::<Drill>(unmarked.as_bytes()),
            Err(MessageError::Invalid { field: "drill", .. })
        ));
    }

    #[test]
    fn contract_violations_are_named() {
        let mut t = trigger();
        t.previous = t.level;
        assert_eq!(
            encode_vec(&t).unwrap_err().to_string(),
            "level equals previous: a trigger is a change of level"
        );
        let mut t = trigger();
        t.issued_at_ms += 1;
        assert_eq!(
            encode_vec(&t).unwrap_err(),
            MessageError::Invalid {
                field: "issued_at",
                problem: "is not the instant issued_at_ms names"
            }
        );
        let json = encode_vec(&trigger()).unwrap();
        let text = core::str::from_utf8(&json).unwrap();
        let other = text.replace("firebreak.trigger/1", "firebreak.trigger/2");
        assert_eq!(
            decode::<Trigger>(other.as_bytes()),
            Err(MessageError::Schema {
                expected: TRIGGER_SCHEMA
            })
        );
        let status_as_trigger = encode_vec(&GatewayStatus::new(
            GatewayId::new("g").unwrap(),
            SiteId::new("s").unwrap(),
            Presence::Online,
            "1",
            0,
            0,
            0,
        ))
        .unwrap();
        assert!(decode::<Trigger>(&status_as_trigger).is_err());
        let bad_site = text.replace("\"paris-1\"", "\"paris/1\"");
        let e = decode::<Trigger>(bad_site.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("an id that is empty"), "{e}");
        let trailing = [json.as_slice(), b" x"].concat();
        assert_eq!(
            decode::<Trigger>(&trailing),
            Err(MessageError::Json(
                serde_json_core::de::Error::TrailingCharacters
            ))
        );
        assert!(decode::<Trigger>(&[json.as_slice(), b"\n"].concat()).is_ok());
    }

    #[test]
    fn unknown_fields_are_ignored_for_compatible_additions() {
        let json = encode_vec(&trigger()).unwrap();
        let text = core::str::from_utf8(&json).unwrap();
        let extended = text.replacen('{', r#"{"added_later":{"a":[1,"\"]"]},"#, 1);
        assert_eq!(decode::<Trigger>(extended.as_bytes()), Ok(trigger()));
    }

    #[test]
    fn hostile_payloads_are_refused() {
        let deep = [b"{\"x\":".as_slice(), &[b'['; 10_000]].concat();
        assert_eq!(decode::<Trigger>(&deep), Err(MessageError::TooDeep));
        let big = [b' '; MAX_MESSAGE_LEN + 1];
        assert_eq!(
            decode::<Trigger>(&big),
            Err(MessageError::TooLarge {
                len: MAX_MESSAGE_LEN + 1
            })
        );
        // Brackets inside strings do not count as nesting.
        assert_eq!(check_nesting(br#"{"a":"[[[[[[[[[[[[[[[[[[[["}"#), Ok(()));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode::<Trigger>(&bytes);
            let _ = decode::<Telemetry>(&bytes);
            let _ = decode::<GatewayStatus>(&bytes);
        }

        #[test]
        fn non_ascii_in_enums_never_panics(level in "\\PC{1,40}") {
            // serde echoes an unknown variant in its error: multi-byte text must not break it.
            let json = encode_vec(&trigger()).unwrap();
            let text = core::str::from_utf8(&json).unwrap();
            let bad = text.replace("\"evacuate\"", &std::format!("{:?}", level));
            if level != "evacuate" {
                prop_assert!(decode::<Trigger>(bad.as_bytes()).is_err());
            }
        }

        #[test]
        fn mutated_triggers_never_panic(at in 0usize..400, byte in any::<u8>()) {
            let mut json = encode_vec(&trigger()).unwrap();
            if let Some(b) = json.get_mut(at) {
                *b = byte;
            }
            if let Ok(t) = decode::<Trigger>(&json) {
                prop_assert!(t.validate().is_ok());
            }
        }
    }
}
