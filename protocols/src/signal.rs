//! The canonical signals, their units, and the quality every sample carries.

use core::fmt;

use crate::id::DeviceId;

macro_rules! signals {
    ($( $variant:ident = $name:literal, $unit:ident, $kind:ident, $doc:literal; )*) => {
        /// A canonical signal: what a value means, whatever device or register it came from.
        ///
        /// Wire names (serde, topics, configuration) are the kebab-case strings of
        /// [`Signal::name`]. Several instances of one signal on one device (eight rack probes,
        /// three PDU phases) are told apart by the sample's `channel`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
        #[non_exhaustive]
        pub enum Signal {
            $( #[doc = $doc] $variant, )*
        }

        impl Signal {
            /// Every signal, in declaration order.
            pub const ALL: &'static [Signal] = &[$(Signal::$variant),*];

            /// The wire name (`"ups-on-battery"`).
            pub const fn name(self) -> &'static str {
                match self { $(Signal::$variant => $name,)* }
            }

            /// The canonical unit values of this signal are expressed in.
            pub const fn unit(self) -> Unit {
                match self { $(Signal::$variant => Unit::$unit,)* }
            }

            /// Whether the signal is a state (true/false), a measurement or a code.
            pub const fn kind(self) -> SignalKind {
                match self { $(Signal::$variant => SignalKind::$kind,)* }
            }

            /// One sentence on what the signal means, with its unit and source.
            pub const fn description(self) -> &'static str {
                match self { $(Signal::$variant => $doc,)* }
            }

            /// The signal with this wire name.
            pub fn from_name(name: &str) -> Option<Signal> {
                match name { $($name => Some(Signal::$variant),)* _ => None }
            }
        }
    };
}

signals! {
    UpsOnBattery = "ups-on-battery", Bool, State,
        "The UPS is supplying its load from battery (UPS-MIB `upsAlarmOnBattery`). 1 = yes.";
    UpsLowBattery = "ups-low-battery", Bool, State,
        "The UPS battery is low (UPS-MIB `upsAlarmLowBattery`). 1 = yes.";
    UpsReplaceBattery = "ups-replace-battery", Bool, State,
        "The UPS asks for its battery to be replaced (UPS-MIB `upsAlarmBatteryBad`). 1 = yes.";
    UpsRuntimeRemaining = "ups-runtime-remaining", Seconds, Measurement,
        "Estimated runtime left on battery at the present load, in seconds (UPS-MIB `upsEstimatedMinutesRemaining`, at second resolution).";
    UpsBatteryCharge = "ups-battery-charge", Percent, Measurement,
        "Battery charge remaining, in percent (UPS-MIB `upsEstimatedChargeRemaining`).";
    UpsBatteryTemperature = "ups-battery-temperature", Celsius, Measurement,
        "Temperature of the UPS battery as the UPS reports it, in °C (UPS-MIB `upsBatteryTemperature`).";
    UpsInputVoltage = "ups-input-voltage", Volts, Measurement,
        "UPS input (utility) voltage, in volts RMS (UPS-MIB `upsInputVoltage`).";
    UpsOutputVoltage = "ups-output-voltage", Volts, Measurement,
        "UPS output voltage, in volts RMS (UPS-MIB `upsOutputVoltage`).";
    UpsLoad = "ups-load", Percent, Measurement,
        "UPS output load, in percent of rated capacity (UPS-MIB `upsOutputPercentLoad`).";
    PduInputVoltage = "pdu-input-voltage", Volts, Measurement,
        "PDU input voltage, in volts RMS; near 0 means the PDU lost its feed.";
    PduCurrent = "pdu-current", Amperes, Measurement,
        "PDU input current, in amperes RMS.";
    PduPower = "pdu-power", Watts, Measurement,
        "PDU active power, in watts.";
    PduOutletCurrent = "pdu-outlet-current", Amperes, Measurement,
        "Current drawn through one PDU outlet, in amperes RMS; the channel is the outlet number less 1 (APC `rPDU2OutletMeteredStatusCurrent`).";
    PduOutletPower = "pdu-outlet-power", Watts, Measurement,
        "Active power drawn through one PDU outlet, in watts; the channel is the outlet number less 1.";
    RoomTemperature = "room-temperature", Celsius, Measurement,
        "Room (ambient) air temperature, in °C.";
    RoomHumidity = "room-humidity", PercentRh, Measurement,
        "Room relative humidity, in percent.";
    RackTemperature = "rack-temperature", Celsius, Measurement,
        "Temperature at a battery rack or cell, in °C: the earliest thermal evidence of a runaway.";
    OffGas = "off-gas", Ppm, Measurement,
        "Battery off-gas (electrolyte vapour, H₂) concentration, in ppm: often the first sign of a lithium-ion failure, minutes before heat.";
    SmokeAlarm = "smoke-alarm", Bool, State,
        "A smoke detector or the fire panel is in alarm. 1 = alarm.";
    SuppressionReleased = "suppression-released", Bool, State,
        "The fire suppression system has released. 1 = released.";
    GeneratorRunning = "generator-running", Bool, State,
        "The standby generator is running and able to take load. 1 = running.";
    TransferSwitchSource = "transfer-switch-source", Code, Code,
        "Which source the automatic transfer switch connects: 0 = utility, 1 = generator, 2 = none (open).";
    NodeAlarm = "node-alarm", Bool, State,
        "The sensor node's own local alarm relay is latched. 1 = latched.";
    DeviceUptime = "device-uptime", Seconds, Measurement,
        "Seconds since the device itself last booted; a restart sets it back to 0. About the device, never evidence of anything at the site: the gateway detects reboots from it.";
    ResetReason = "reset-reason", Code, Code,
        "Why the device last reset: 0 = power-on, 1 = watchdog, 2 = software, 3 = external (reset pin), 4 = brown-out, 65535 = unknown; a device with other causes maps them onto these. About the device, never evidence of anything at the site.";
}

impl Signal {
    /// Whether the signal describes the device itself (its uptime, why it last reset) rather
    /// than the site. Such a signal is never evidence: no policy rule may read it, and the
    /// policy engine ignores it; the gateway uses it to see a device reboot.
    pub const fn is_diagnostic(self) -> bool {
        matches!(self, Signal::DeviceUptime | Signal::ResetReason)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// Whether a signal is a state, a measurement or a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignalKind {
    /// A true/false state: the value is 0.0 or 1.0.
    State,
    /// A physical quantity in the signal's unit.
    Measurement,
    /// An enumerated code (see the signal's documentation).
    Code,
}

/// The values of [`Signal::TransferSwitchSource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferSource {
    /// Code 0: the load is on utility power.
    Utility,
    /// Code 1: the load is on the generator.
    Generator,
    /// Code 2: the switch is open; neither source feeds the load.
    None,
}

impl TransferSource {
    /// The source a code stands for.
    pub fn from_code(value: f32) -> Option<Self> {
        match value {
            0.0 => Some(Self::Utility),
            1.0 => Some(Self::Generator),
            2.0 => Some(Self::None),
            _ => None,
        }
    }
}

/// The values of [`Signal::ResetReason`]: why a device last reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetReason {
    /// Code 0: power was applied (a cold start).
    PowerOn,
    /// Code 1: the watchdog was not fed: the firmware hung.
    Watchdog,
    /// Code 2: the firmware asked for a reset.
    Software,
    /// Code 3: the reset pin (a button, a supervisor chip).
    External,
    /// Code 4: the supply voltage dropped below what the device needs.
    BrownOut,
    /// Code 65535 (0xFFFF): the device cannot tell.
    Unknown,
}

impl ResetReason {
    /// Every reason, in code order.
    pub const ALL: [ResetReason; 6] = [
        Self::PowerOn,
        Self::Watchdog,
        Self::Software,
        Self::External,
        Self::BrownOut,
        Self::Unknown,
    ];

    /// The reason a code stands for; `None` for a code that is none of them (a NaN, a
    /// fraction, a code no device defines).
    pub fn from_code(value: f32) -> Option<Self> {
        Self::ALL.into_iter().find(|r| f32::from(r.code()) == value)
    }

    /// The code the [`Signal::ResetReason`] signal carries.
    pub const fn code(self) -> u16 {
        match self {
            Self::PowerOn => 0,
            Self::Watchdog => 1,
            Self::Software => 2,
            Self::External => 3,
            Self::BrownOut => 4,
            Self::Unknown => 0xFFFF,
        }
    }

    /// The word used in logs, metrics and status (`"watchdog"`, `"brown-out"`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::PowerOn => "power-on",
            Self::Watchdog => "watchdog",
            Self::Software => "software",
            Self::External => "external",
            Self::BrownOut => "brown-out",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A unit of measure. Wire names are ASCII so that any tool can print them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Unit {
    /// A state: 0 or 1.
    #[cfg_attr(feature = "serde", serde(rename = "bool"))]
    Bool,
    /// An enumerated code.
    #[cfg_attr(feature = "serde", serde(rename = "code"))]
    Code,
    /// Seconds.
    #[cfg_attr(feature = "serde", serde(rename = "s"))]
    Seconds,
    /// Percent.
    #[cfg_attr(feature = "serde", serde(rename = "%"))]
    Percent,
    /// Percent relative humidity.
    #[cfg_attr(feature = "serde", serde(rename = "%RH"))]
    PercentRh,
    /// Degrees Celsius.
    #[cfg_attr(feature = "serde", serde(rename = "degC"))]
    Celsius,
    /// Volts RMS.
    #[cfg_attr(feature = "serde", serde(rename = "V"))]
    Volts,
    /// Amperes RMS.
    #[cfg_attr(feature = "serde", serde(rename = "A"))]
    Amperes,
    /// Watts.
    #[cfg_attr(feature = "serde", serde(rename = "W"))]
    Watts,
    /// Parts per million by volume.
    #[cfg_attr(feature = "serde", serde(rename = "ppm"))]
    Ppm,
}

impl Unit {
    /// The wire symbol (`"degC"`).
    pub const fn symbol(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::Code => "code",
            Self::Seconds => "s",
            Self::Percent => "%",
            Self::PercentRh => "%RH",
            Self::Celsius => "degC",
            Self::Volts => "V",
            Self::Amperes => "A",
            Self::Watts => "W",
            Self::Ppm => "ppm",
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.symbol())
    }
}

/// How far a value can be trusted.
///
/// Only [`Quality::Good`] values count as evidence, of a fire or of anything else: see
/// [`Quality::is_evidence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum Quality {
    /// Read now, inside the valid range, not a sentinel.
    Good,
    /// Read successfully once, but not refreshed within its freshness window.
    Stale,
    /// The device stopped answering: the last value is kept only for display.
    CommLost,
    /// The device answered with a value that means "no sensor" or "sensor broken" (a sentinel
    /// such as 0x7FFF or 0xFFFF, a NaN), or the sensor is known faulty.
    SensorFault,
    /// The value is outside the range the sensor can physically report.
    OutOfRange,
}

impl Quality {
    /// Whether a value of this quality may count as evidence for a policy rule. Only `Good` may.
    pub const fn is_evidence(self) -> bool {
        matches!(self, Self::Good)
    }

    /// The wire name (`"comm-lost"`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Stale => "stale",
            Self::CommLost => "comm-lost",
            Self::SensorFault => "sensor-fault",
            Self::OutOfRange => "out-of-range",
        }
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One value of one signal of one device at one moment.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Sample {
    /// The device it was read from.
    pub device: DeviceId,
    /// What it measures.
    pub signal: Signal,
    /// Which instance of the signal on the device (probe 0..7, phase 0..2); 0 when there is one.
    pub channel: u8,
    /// The value in `unit`. States are 0.0 or 1.0.
    pub value: f32,
    /// The signal's canonical unit.
    pub unit: Unit,
    /// When it was read, in milliseconds since the Unix epoch (UTC).
    pub timestamp_ms: u64,
    /// How far it can be trusted.
    pub quality: Quality,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for (i, s) in Signal::ALL.iter().enumerate() {
            assert_eq!(Signal::from_name(s.name()), Some(*s));
            for other in &Signal::ALL[i + 1..] {
                assert_ne!(s.name(), other.name());
            }
        }
        assert_eq!(Signal::from_name("no-such-signal"), None);
    }

    #[test]
    fn state_signals_are_bool() {
        for s in Signal::ALL {
            assert_eq!(s.kind() == SignalKind::State, s.unit() == Unit::Bool, "{s}");
        }
    }

    #[test]
    fn only_good_is_evidence() {
        assert!(Quality::Good.is_evidence());
        for q in [
            Quality::Stale,
            Quality::CommLost,
            Quality::SensorFault,
            Quality::OutOfRange,
        ] {
            assert!(!q.is_evidence(), "{q}");
        }
    }

    #[test]
    fn transfer_codes() {
        assert_eq!(
            TransferSource::from_code(0.0),
            Some(TransferSource::Utility)
        );
        assert_eq!(
            TransferSource::from_code(1.0),
            Some(TransferSource::Generator)
        );
        assert_eq!(TransferSource::from_code(2.0), Some(TransferSource::None));
        assert_eq!(TransferSource::from_code(3.0), None);
    }

    #[test]
    fn reset_reason_codes() {
        for r in ResetReason::ALL {
            assert_eq!(ResetReason::from_code(f32::from(r.code())), Some(r), "{r}");
        }
        assert_eq!(ResetReason::from_code(1.0), Some(ResetReason::Watchdog));
        assert_eq!(ResetReason::from_code(4.0), Some(ResetReason::BrownOut));
        assert_eq!(ResetReason::from_code(65535.0), Some(ResetReason::Unknown));
        assert_eq!(ResetReason::Watchdog.name(), "watchdog");
        assert_eq!(ResetReason::BrownOut.name(), "brown-out");
        for garbage in [5.0, 1.5, -1.0, f32::NAN, f32::INFINITY, 65534.0] {
            assert_eq!(ResetReason::from_code(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn only_the_device_signals_are_diagnostic() {
        let diagnostic: std::vec::Vec<Signal> = Signal::ALL
            .iter()
            .copied()
            .filter(|s| s.is_diagnostic())
            .collect();
        assert_eq!(diagnostic, [Signal::DeviceUptime, Signal::ResetReason]);
        assert_eq!(Signal::DeviceUptime.unit(), Unit::Seconds);
        assert_eq!(Signal::DeviceUptime.kind(), SignalKind::Measurement);
        assert_eq!(Signal::ResetReason.kind(), SignalKind::Code);
        assert_eq!(
            Signal::from_name("device-uptime"),
            Some(Signal::DeviceUptime)
        );
        assert_eq!(Signal::from_name("reset-reason"), Some(Signal::ResetReason));
    }
}
