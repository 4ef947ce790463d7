//! OID descriptors and SNMP device profiles: how a device's SNMP objects map onto canonical
//! [`Signal`]s, and how one received value becomes a reading with a quality. Sans-IO: the
//! gateway's SNMP source does the GETs and walks, this module says what to ask for and what
//! the answers mean.
//!
//! A descriptor names either a scalar object (`1.3.6.1.2.1.33.1.2.3.0`) or a table column
//! (`1.3.6.1.4.1.318.1.1.26.9.4.3.1.6`, the outlets' currents), whose rows are walked; a
//! row's channel is its index less the column's first index (outlet 1 is channel 0).
//!
//! The built-in profiles ([`BUILTIN_OID_PROFILES`](crate::snmp_builtin::BUILTIN_OID_PROFILES)) cover RFC 1628's UPS-MIB and APC's
//! PowerNet MIB for rack PDUs (`rPDU`, `rPDU2`) and UPSes; `docs/register-maps.md` lists them,
//! generated from these tables.

use core::fmt;

use crate::profile::ValidRange;
use crate::signal::{Quality, Signal, SignalKind};

/// The most arcs an OID may have (RFC 2578 allows 128; no device profile needs more).
pub const MAX_OID_ARCS: usize = 128;

/// The highest channel a table row can feed.
pub const MAX_CHANNEL: u32 = u8::MAX as u32;

/// How a received value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OidKind {
    /// A number: any integer type (INTEGER, Counter32, Gauge32, TimeTicks, Counter64), or an
    /// OCTET STRING holding a decimal number, as some cards send their readings. Engineering
    /// value = raw × scale + offset.
    Number,
    /// A true/false state from an enumerated INTEGER: 1 when the raw value is one of the
    /// descriptor's [`OidDescriptor::on`] values, else 0 (`upsOutputSource` = battery(5)).
    Flag,
}

impl OidKind {
    /// The configuration name (`"number"`, `"flag"`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::Flag => "flag",
        }
    }
}

/// Where a descriptor's values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OidShape {
    /// One object, read with GET; it feeds the given channel.
    Scalar {
        /// The channel it feeds.
        channel: u8,
    },
    /// A table column, walked; each row feeds channel `index − first_index`, where `index`
    /// is the row's last OID arc.
    Column {
        /// The index of the row that feeds channel 0 (1 for most MIBs).
        first_index: u32,
    },
}

/// One object (or column) in a device's SNMP map, and the canonical signal it feeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OidDescriptor<'a> {
    /// The signal it feeds.
    pub signal: Signal,
    /// The OID, dotted (`1.3.6.1.2.1.33.1.2.3.0`), without a leading dot.
    pub oid: &'a str,
    /// A scalar or a table column.
    pub shape: OidShape,
    /// How the value is read.
    pub kind: OidKind,
    /// For [`OidKind::Flag`]: the raw values that mean 1.
    pub on: &'a [i64],
    /// Multiplier from raw to engineering value.
    pub scale: f64,
    /// Added after scaling.
    pub offset: f64,
    /// Values outside this range are [`Quality::OutOfRange`].
    pub valid: ValidRange,
    /// Raw values that mean "no reading" ([`ValueError::NoReading`]): APC cards answer −1 for
    /// a quantity the model does not measure.
    pub sentinels: &'a [i64],
}

impl<'a> OidDescriptor<'a> {
    /// A scalar number on channel 0, scale 1, offset 0, any value valid, no sentinel.
    pub const fn scalar(signal: Signal, oid: &'a str) -> Self {
        Self {
            signal,
            oid,
            shape: OidShape::Scalar { channel: 0 },
            kind: OidKind::Number,
            on: &[],
            scale: 1.0,
            offset: 0.0,
            valid: ValidRange::ANY,
            sentinels: &[],
        }
    }

    /// A table column of numbers whose first row (index 1) feeds channel 0.
    pub const fn column(signal: Signal, oid: &'a str) -> Self {
        let mut d = Self::scalar(signal, oid);
        d.shape = OidShape::Column { first_index: 1 };
        d
    }

    /// Makes it a flag: 1 when the raw value is one of `on`.
    pub const fn flag(mut self, on: &'a [i64]) -> Self {
        self.kind = OidKind::Flag;
        self.on = on;
        self
    }

    /// Sets scale and offset.
    pub const fn scaled(mut self, scale: f64, offset: f64) -> Self {
        self.scale = scale;
        self.offset = offset;
        self
    }

    /// Sets the valid range of engineering values.
    pub const fn valid(mut self, min: f32, max: f32) -> Self {
        self.valid = ValidRange { min, max };
        self
    }

    /// Sets the raw values meaning "no reading".
    pub const fn sentinels(mut self, raw: &'a [i64]) -> Self {
        self.sentinels = raw;
        self
    }

    /// The channel a value read at `oid` feeds: the scalar's channel when `oid` is this
    /// descriptor's own; for a column, the row index less the first index, when `oid` is one
    /// arc below the column and the channel fits. `None` for any other OID.
    pub fn channel_of(&self, oid: &[u32]) -> Option<u8> {
        let mut own = arcs(self.oid);
        let mut at = oid.iter();
        for a in own.by_ref() {
            if at.next() != Some(&a?) {
                return None;
            }
        }
        match self.shape {
            OidShape::Scalar { channel } => at.next().is_none().then_some(channel),
            OidShape::Column { first_index } => {
                let index = *at.next()?;
                if at.next().is_some() {
                    return None;
                }
                let channel = index.checked_sub(first_index)?;
                u8::try_from(channel).ok()
            }
        }
    }

    /// Checks the descriptor on its own.
    pub fn validate(&self) -> Result<(), OidError> {
        if !oid_is_valid(self.oid) {
            return Err(OidError::BadOid);
        }
        if !self.scale.is_finite() || self.scale == 0.0 || !self.offset.is_finite() {
            return Err(OidError::BadScale);
        }
        if self.valid.min.is_nan() || self.valid.max.is_nan() || self.valid.min > self.valid.max {
            return Err(OidError::BadRange);
        }
        let state = self.signal.kind() == SignalKind::State;
        match self.kind {
            OidKind::Flag if !state => Err(OidError::FlagNeedsState {
                signal: self.signal,
            }),
            OidKind::Number if state => Err(OidError::StateNeedsFlag {
                signal: self.signal,
            }),
            OidKind::Flag if self.on.is_empty() => Err(OidError::FlagWithoutValues),
            _ => Ok(()),
        }
    }

    /// What a received value means: the engineering value and its quality, or why it gives
    /// none. A sentinel is [`ValueError::NoReading`], not a fault: SNMP agents answer it for a
    /// quantity the model does not measure (a switched PDU's outlet current), for as long as
    /// the device runs, so it gives no sample rather than a permanent `sensor-fault`. A value
    /// that cannot be a reading (a NaN in a string) is [`Quality::SensorFault`].
    pub fn decode(&self, raw: SnmpValue<'_>) -> Result<(f32, Quality), ValueError> {
        let n = match raw {
            SnmpValue::Integer(n) => n,
            SnmpValue::Text(bytes) if self.kind == OidKind::Number => {
                return self.number_from_text(bytes);
            }
            SnmpValue::Text(_) | SnmpValue::Other => return Err(ValueError::WrongType),
            SnmpValue::Missing => return Err(ValueError::Missing),
        };
        if self.sentinels.contains(&n) {
            return Err(ValueError::NoReading);
        }
        match self.kind {
            OidKind::Flag => Ok((if self.on.contains(&n) { 1.0 } else { 0.0 }, Quality::Good)),
            OidKind::Number => Ok(self.scale_raw(n as f64)),
        }
    }

    fn number_from_text(&self, bytes: &[u8]) -> Result<(f32, Quality), ValueError> {
        let text = core::str::from_utf8(bytes)
            .map_err(|_| ValueError::NotANumber)?
            .trim();
        if let Ok(n) = text.parse::<i64>()
            && self.sentinels.contains(&n)
        {
            return Err(ValueError::NoReading);
        }
        let raw: f64 = text.parse().map_err(|_| ValueError::NotANumber)?;
        if !raw.is_finite() {
            return Ok((0.0, Quality::SensorFault));
        }
        Ok(self.scale_raw(raw))
    }

    fn scale_raw(&self, raw: f64) -> (f32, Quality) {
        let value = (raw * self.scale + self.offset) as f32;
        if !value.is_finite() {
            return (0.0, Quality::SensorFault);
        }
        let quality = if self.valid.contains(value) {
            Quality::Good
        } else {
            Quality::OutOfRange
        };
        (value, quality)
    }
}

/// A value as an SNMP agent sent it, reduced to what decoding needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnmpValue<'a> {
    /// INTEGER, Counter32, Gauge32, Unsigned32, TimeTicks or Counter64.
    Integer(i64),
    /// OCTET STRING.
    Text(&'a [u8]),
    /// `noSuchObject`, `noSuchInstance` or `endOfMibView`: the agent has no such value.
    Missing,
    /// Any other type (an OID, an address, NULL, Opaque).
    Other,
}

/// Why a received value gives no reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueError {
    /// The agent has no such object or instance.
    Missing,
    /// The agent answered one of the descriptor's sentinels: it has no reading of this
    /// quantity.
    NoReading,
    /// The value has a type the descriptor cannot read (a string for a flag, an OID).
    WrongType,
    /// An OCTET STRING that is not a decimal number.
    NotANumber,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "the agent has no such object (noSuchObject/noSuchInstance)",
            Self::NoReading => "the agent's value for \"no reading\" (a sentinel)",
            Self::WrongType => "a value of a type this descriptor cannot read",
            Self::NotANumber => "a string that is not a decimal number",
        })
    }
}

/// Why a descriptor cannot be used.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum OidError {
    /// Not a dotted OID of 2 to [`MAX_OID_ARCS`] arcs, each a number below 2³².
    BadOid,
    /// The scale is zero or not finite, or the offset is not finite.
    BadScale,
    /// The valid range is empty or not a number.
    BadRange,
    /// A flag can only feed a true/false signal.
    FlagNeedsState {
        /// The signal.
        signal: Signal,
    },
    /// A true/false signal must come from a flag.
    StateNeedsFlag {
        /// The signal.
        signal: Signal,
    },
    /// A flag needs at least one value meaning 1.
    FlagWithoutValues,
}

impl fmt::Display for OidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadOid => f.write_str(
                "not a dotted OID such as \"1.3.6.1.2.1.33.1.2.3.0\" (2 to 128 numeric arcs)",
            ),
            Self::BadScale => f.write_str("scale must be finite and not zero, offset finite"),
            Self::BadRange => f.write_str("valid range is empty or not a number"),
            Self::FlagNeedsState { signal } => write!(
                f,
                "type \"flag\" gives 0 or 1, but signal {signal} is not true/false"
            ),
            Self::StateNeedsFlag { signal } => write!(
                f,
                "signal {signal} is true/false: use type \"flag\" with the values meaning 1 in `on`"
            ),
            Self::FlagWithoutValues => {
                f.write_str("type \"flag\" needs `on`: the raw values meaning 1")
            }
        }
    }
}

/// A device type's SNMP map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OidProfile<'a> {
    /// The name configurations refer to (`"apc-rpdu2"`).
    pub name: &'a str,
    /// One line for humans.
    pub description: &'a str,
    /// The objects it reads.
    pub oids: &'a [OidDescriptor<'a>],
}

/// Why an SNMP profile cannot be used.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum OidProfileError {
    /// The descriptor at `index` is wrong.
    Oid {
        /// Its index in [`OidProfile::oids`].
        index: usize,
        /// What is wrong with it.
        error: OidError,
    },
    /// Two descriptors can feed the same signal and channel (two scalars of one channel, or
    /// a column and anything else of the same signal).
    Duplicate {
        /// The index of the second one.
        index: usize,
        /// The signal.
        signal: Signal,
    },
}

impl fmt::Display for OidProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Oid { index, error } => write!(f, "oids[{index}]: {error}"),
            Self::Duplicate { index, signal } => write!(
                f,
                "oids[{index}]: signal {signal} is already fed by an earlier entry on a channel this one can feed"
            ),
        }
    }
}

impl OidProfile<'_> {
    /// Checks every descriptor, and that no two can feed the same (signal, channel).
    pub fn validate(&self) -> Result<(), OidProfileError> {
        for (index, d) in self.oids.iter().enumerate() {
            d.validate()
                .map_err(|error| OidProfileError::Oid { index, error })?;
            let earlier = self.oids.get(..index).unwrap_or(&[]);
            let clash = earlier.iter().any(|o| {
                o.signal == d.signal
                    && match (o.shape, d.shape) {
                        (OidShape::Scalar { channel: a }, OidShape::Scalar { channel: b }) => {
                            a == b
                        }
                        _ => true,
                    }
            });
            if clash {
                return Err(OidProfileError::Duplicate {
                    index,
                    signal: d.signal,
                });
            }
        }
        Ok(())
    }
}

/// The arcs of a dotted OID, each `None` when it is not a number below 2³².
fn arcs(oid: &str) -> impl Iterator<Item = Option<u32>> + '_ {
    oid.split('.').map(|a| {
        if a.is_empty() || a.len() > 10 || !a.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            a.parse().ok()
        }
    })
}

/// Whether `oid` is a dotted OID of 2 to [`MAX_OID_ARCS`] numeric arcs, each below 2³²,
/// without a leading dot.
pub fn oid_is_valid(oid: &str) -> bool {
    let mut n = 0usize;
    for a in arcs(oid) {
        if a.is_none() {
            return false;
        }
        n += 1;
    }
    (2..=MAX_OID_ARCS).contains(&n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNTIME: OidDescriptor<'static> =
        OidDescriptor::scalar(Signal::UpsRuntimeRemaining, "1.3.6.1.2.1.33.1.2.3.0")
            .scaled(60.0, 0.0)
            .valid(0.0, 604_800.0);

    #[test]
    fn numbers_scale_and_check_their_range() {
        assert_eq!(
            RUNTIME.decode(SnmpValue::Integer(12)),
            Ok((720.0, Quality::Good))
        );
        assert_eq!(
            RUNTIME.decode(SnmpValue::Integer(-3)),
            Ok((-180.0, Quality::OutOfRange))
        );
        assert_eq!(
            RUNTIME.decode(SnmpValue::Text(b" 12 ")),
            Ok((720.0, Quality::Good))
        );
        assert_eq!(
            RUNTIME.decode(SnmpValue::Text(b"soon")),
            Err(ValueError::NotANumber)
        );
        assert_eq!(RUNTIME.decode(SnmpValue::Missing), Err(ValueError::Missing));
        assert_eq!(RUNTIME.decode(SnmpValue::Other), Err(ValueError::WrongType));
    }

    #[test]
    fn sentinels_are_no_reading_in_either_encoding() {
        let d = OidDescriptor::column(Signal::PduInputVoltage, "1.3.6.1.4.1.318.1.1.26.6.3.1.6")
            .sentinels(&[-1]);
        assert_eq!(d.decode(SnmpValue::Integer(-1)), Err(ValueError::NoReading));
        assert_eq!(d.decode(SnmpValue::Text(b"-1")), Err(ValueError::NoReading));
        assert_eq!(
            d.decode(SnmpValue::Text(b"NaN")),
            Ok((0.0, Quality::SensorFault))
        );
        assert_eq!(
            d.decode(SnmpValue::Integer(230)),
            Ok((230.0, Quality::Good))
        );
    }

    #[test]
    fn flags_are_one_for_their_values_only() {
        let d = OidDescriptor::scalar(Signal::UpsOnBattery, "1.3.6.1.2.1.33.1.4.1.0")
            .flag(&[5])
            .sentinels(&[1]);
        assert_eq!(d.validate(), Ok(()));
        assert_eq!(d.decode(SnmpValue::Integer(5)), Ok((1.0, Quality::Good)));
        assert_eq!(d.decode(SnmpValue::Integer(3)), Ok((0.0, Quality::Good)));
        assert_eq!(d.decode(SnmpValue::Integer(1)), Err(ValueError::NoReading));
        assert_eq!(d.decode(SnmpValue::Text(b"5")), Err(ValueError::WrongType));
    }

    #[test]
    fn channels_come_from_the_row_index() {
        let col = OidDescriptor::column(Signal::PduCurrent, "1.3.6.1.4.1.318.1.1.26.6.3.1.5");
        let at =
            |s: &str| -> std::vec::Vec<u32> { s.split('.').map(|a| a.parse().unwrap()).collect() };
        assert_eq!(
            col.channel_of(&at("1.3.6.1.4.1.318.1.1.26.6.3.1.5.1")),
            Some(0)
        );
        assert_eq!(
            col.channel_of(&at("1.3.6.1.4.1.318.1.1.26.6.3.1.5.3")),
            Some(2)
        );
        assert_eq!(
            col.channel_of(&at("1.3.6.1.4.1.318.1.1.26.6.3.1.5.0")),
            None
        );
        assert_eq!(
            col.channel_of(&at("1.3.6.1.4.1.318.1.1.26.6.3.1.5.300")),
            None
        );
        assert_eq!(
            col.channel_of(&at("1.3.6.1.4.1.318.1.1.26.6.3.1.5.1.1")),
            None
        );
        assert_eq!(
            col.channel_of(&at("1.3.6.1.4.1.318.1.1.26.6.3.1.6.1")),
            None
        );
        assert_eq!(col.channel_of(&at("1.3.6.1.4.1.318.1.1.26.6.3.1")), None);
        assert_eq!(RUNTIME.channel_of(&at("1.3.6.1.2.1.33.1.2.3.0")), Some(0));
        assert_eq!(RUNTIME.channel_of(&at("1.3.6.1.2.1.33.1.2.3.0.1")), None);
    }

    #[test]
    fn descriptors_are_checked() {
        assert!(oid_is_valid("1.3.6.1.2.1.1.5.0"));
        for bad in ["", "1", ".1.3.6", "1.3.x", "1..3", "1.3.4294967296", "1.3."] {
            assert!(!oid_is_valid(bad), "{bad}");
        }
        assert_eq!(
            OidDescriptor::scalar(Signal::UpsOnBattery, "1.3.6.1.2.1.33.1.4.1.0").validate(),
            Err(OidError::StateNeedsFlag {
                signal: Signal::UpsOnBattery
            })
        );
        assert_eq!(
            OidDescriptor::scalar(Signal::UpsLoad, "1.3.6.1")
                .flag(&[1])
                .validate(),
            Err(OidError::FlagNeedsState {
                signal: Signal::UpsLoad
            })
        );
        assert_eq!(RUNTIME.scaled(0.0, 0.0).validate(), Err(OidError::BadScale));
        let twice = [RUNTIME, RUNTIME];
        let p = OidProfile {
            name: "x",
            description: "",
            oids: &twice,
        };
        assert_eq!(
            p.validate(),
            Err(OidProfileError::Duplicate {
                index: 1,
                signal: Signal::UpsRuntimeRemaining
            })
        );
    }

    proptest::proptest! {
        #[test]
        fn any_oid_text_or_value_never_panics(oid in ".{0,40}", n in proptest::num::i64::ANY, text in proptest::collection::vec(proptest::num::u8::ANY, 0..20)) {
            let _ = oid_is_valid(&oid);
            let d = OidDescriptor::column(Signal::PduCurrent, "1.3.6.1.4.1.318.1.1.26.6.3.1.5").scaled(0.1, 0.0);
            let _ = d.decode(SnmpValue::Integer(n));
            let _ = d.decode(SnmpValue::Text(&text));
        }
    }
}
