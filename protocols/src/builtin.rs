//! The built-in device profiles and the sensor node's non-signal registers.
//!
//! `docs/register-maps.md` is generated from these tables (`UPDATE_DOCS=1 cargo test -p
//! firebreak-protocols register_maps`) and a test fails when the two differ.

use crate::profile::{DataType, DeviceProfile, RegisterDescriptor as R, Table};
use crate::signal::Signal;

/// Raw value meaning "no sensor" in a signed 16-bit register.
pub const NO_SENSOR_I16: u32 = 0x7FFF;
/// Raw value meaning "sensor broken" in a signed 16-bit register.
pub const FAULT_I16: u32 = 0x8000;
/// Raw value meaning "no sensor" in an unsigned 16-bit register.
pub const NO_SENSOR_U16: u32 = 0xFFFF;
/// Raw value meaning "no sensor" in an unsigned 32-bit value.
pub const NO_SENSOR_U32: u32 = 0xFFFF_FFFF;

/// The Firebreak battery-room sensor node's own map (the firmware serves it over Modbus RTU).
///
/// Readings are input registers 0..=11; the node's status block is input registers
/// 100..=120 (108 and below as before the node had two RTU ports; 109..=120 each port's link
/// counters) and its writable settings holding registers 200..=203 (see [`sensor_node`]).
/// Of the status block, the alarm relay (107), the uptime (102..=103) and the reset reason
/// (108) are mapped as signals: the gateway sees the node's own alarm and its reboots.
pub const SENSOR_NODE: DeviceProfile<'static> = DeviceProfile {
    name: "firebreak-sensor-node",
    description: "Firebreak battery-room sensor node (Modbus RTU)",
    registers: &SENSOR_NODE_REGISTERS,
};

const fn rack_probe(channel: u8) -> R {
    R::new(
        Signal::RackTemperature,
        Table::Input,
        channel as u16,
        DataType::I16,
    )
    .channel(channel)
    .scaled(0.1, 0.0)
    .valid(-40.0, 200.0)
    .sentinel(NO_SENSOR_I16)
    .sentinel(FAULT_I16)
    // All ones (-0.1 °C) is what a floating or disconnected line reads: no reading.
    .sentinel(NO_SENSOR_U16)
}

const SENSOR_NODE_REGISTERS: [R; 17] = [
    rack_probe(0),
    rack_probe(1),
    rack_probe(2),
    rack_probe(3),
    rack_probe(4),
    rack_probe(5),
    rack_probe(6),
    rack_probe(7),
    R::new(Signal::OffGas, Table::Input, 8, DataType::U16)
        .valid(0.0, 10_000.0)
        .sentinel(NO_SENSOR_U16),
    R::new(Signal::RoomTemperature, Table::Input, 9, DataType::I16)
        .scaled(0.1, 0.0)
        .valid(-40.0, 85.0)
        .sentinel(NO_SENSOR_I16)
        .sentinel(FAULT_I16),
    R::new(Signal::RoomHumidity, Table::Input, 10, DataType::U16)
        .scaled(0.1, 0.0)
        .valid(0.0, 100.0)
        .sentinel(NO_SENSOR_U16),
    R::new(
        Signal::SmokeAlarm,
        Table::Input,
        sensor_node::CONTACTS,
        DataType::Bit(sensor_node::CONTACT_SMOKE),
    )
    .sentinel(NO_SENSOR_U16),
    R::new(
        Signal::UpsOnBattery,
        Table::Input,
        sensor_node::CONTACTS,
        DataType::Bit(sensor_node::CONTACT_UPS_ON_BATTERY),
    )
    .sentinel(NO_SENSOR_U16),
    R::new(
        Signal::SuppressionReleased,
        Table::Input,
        sensor_node::CONTACTS,
        DataType::Bit(sensor_node::CONTACT_SUPPRESSION),
    )
    .sentinel(NO_SENSOR_U16),
    // No sentinel: every u32 is an uptime (the node saturates at 0xFFFFFFFF, 136 years).
    R::new(
        Signal::DeviceUptime,
        Table::Input,
        sensor_node::UPTIME,
        DataType::U32,
    ),
    R::new(
        Signal::NodeAlarm,
        Table::Input,
        sensor_node::ALARM_STATE,
        DataType::Bit(sensor_node::ALARM_LATCHED),
    )
    .sentinel(NO_SENSOR_U16),
    // No sentinel either: 0xFFFF is the code "unknown", a reason the node reports, not a
    // broken sensor (a sentinel would make it `sensor-fault`).
    R::new(
        Signal::ResetReason,
        Table::Input,
        sensor_node::RESET_REASON,
        DataType::U16,
    ),
];

/// The sensor node's registers that are not signals: its status block and its settings.
pub mod sensor_node {
    /// Input register: dry contacts, one bit each.
    pub const CONTACTS: u16 = 11;
    /// Bit of [`CONTACTS`]: smoke detector or fire panel in alarm.
    pub const CONTACT_SMOKE: u8 = 0;
    /// Bit of [`CONTACTS`]: the UPS's "on battery" relay output.
    pub const CONTACT_UPS_ON_BATTERY: u8 = 1;
    /// Bit of [`CONTACTS`]: fire suppression released.
    pub const CONTACT_SUPPRESSION: u8 = 2;

    /// Input register: firmware version, major in the high byte, minor in the low byte.
    pub const FIRMWARE_VERSION: u16 = 100;
    /// Input register: firmware patch version.
    pub const FIRMWARE_PATCH: u16 = 101;
    /// Input registers 102 (high word) and 103 (low word): seconds since boot, u32.
    pub const UPTIME: u16 = 102;
    /// Input register: bit n set = probe n (0..=7) faulty; bit 8 off-gas, bit 9 room
    /// temperature, bit 10 humidity sensor faulty.
    pub const FAULTS: u16 = 104;
    /// Input register: frames dropped for a bad CRC since boot on RTU port A (saturates at
    /// 65535); the same count as port A's [`LINK_CRC_ERRORS`].
    pub const CRC_ERRORS: u16 = 105;
    /// Input register: frames dropped for bad framing or length since boot on RTU port A
    /// (saturates); the same count as port A's [`LINK_FRAMING_ERRORS`].
    pub const FRAMING_ERRORS: u16 = 106;
    /// Input register: local alarm state; bit [`ALARM_LATCHED`] is the relay, bits 1..=4 the
    /// causes ([`ALARM_CAUSE_TEMPERATURE`] …).
    pub const ALARM_STATE: u16 = 107;
    /// Bit of [`ALARM_STATE`]: the alarm relay is latched.
    pub const ALARM_LATCHED: u8 = 0;
    /// Bit of [`ALARM_STATE`]: a rack probe passed the absolute limit.
    pub const ALARM_CAUSE_TEMPERATURE: u8 = 1;
    /// Bit of [`ALARM_STATE`]: a rack probe rose faster than the rate-of-rise limit.
    pub const ALARM_CAUSE_RATE_OF_RISE: u8 = 2;
    /// Bit of [`ALARM_STATE`]: off-gas passed its limit.
    pub const ALARM_CAUSE_OFF_GAS: u8 = 3;
    /// Bit of [`ALARM_STATE`]: the smoke contact closed.
    pub const ALARM_CAUSE_SMOKE: u8 = 4;
    /// Input register: why the node last reset (0 power-on, 1 watchdog, 2 software,
    /// 3 external pin, 4 brown-out, 0xFFFF unknown).
    pub const RESET_REASON: u16 = 108;

    /// First input register of RTU port A's link counters (109..=114). The node has two RTU
    /// ports, one RS-485 bus per gateway; each port's block is [`LINK_LEN`] registers, laid
    /// out by the `LINK_*` offsets. Diagnostics only: no signal, no policy reads them.
    pub const PORT_A_LINK: u16 = 109;
    /// First input register of RTU port B's link counters (115..=120).
    pub const PORT_B_LINK: u16 = 115;
    /// Offset in a port's block: frames received intact (good CRC, 4..=256 bytes) addressed
    /// to the node or broadcast (saturates).
    pub const LINK_FRAMES_OK: u16 = 0;
    /// Offset in a port's block: frames dropped for a bad CRC (saturates).
    pub const LINK_CRC_ERRORS: u16 = 1;
    /// Offset in a port's block: frames dropped for bad framing — shorter than 4 bytes, or
    /// longer than 256 (the receive buffer overran) — (saturates).
    pub const LINK_FRAMING_ERRORS: u16 = 2;
    /// Offset in a port's block: exception responses sent (saturates).
    pub const LINK_EXCEPTIONS: u16 = 3;
    /// Offset in a port's block: bytes received, u32 high word first (offsets 4..=5;
    /// saturates).
    pub const LINK_BYTES: u16 = 4;
    /// Registers in a port's block.
    pub const LINK_LEN: u16 = 6;

    /// Holding register, write-only in effect: writing [`ALARM_RESET_KEY`] clears a latched
    /// alarm whose causes are gone. Reads 0.
    pub const ALARM_RESET: u16 = 200;
    /// The value that [`ALARM_RESET`] accepts; any other is refused with exception 03.
    pub const ALARM_RESET_KEY: u16 = 0x5AA5;
    /// Holding register: rack temperature limit, 0.1 °C.
    pub const LIMIT_RACK_TEMPERATURE: u16 = 201;
    /// Holding register: rack rate-of-rise limit, 0.1 °C per minute.
    pub const LIMIT_RATE_OF_RISE: u16 = 202;
    /// Holding register: off-gas limit, ppm.
    pub const LIMIT_OFF_GAS: u16 = 203;

    /// Default rack temperature limit: 60.0 °C, well under the 80–120 °C at which cells vent.
    pub const DEFAULT_LIMIT_RACK_TEMPERATURE: u16 = 600;
    /// Default rate-of-rise limit: 1.0 °C/min, the rise bench data calls abnormal without a
    /// load change.
    pub const DEFAULT_LIMIT_RATE_OF_RISE: u16 = 10;
    /// Default off-gas limit: 50 ppm above clean air.
    pub const DEFAULT_LIMIT_OFF_GAS: u16 = 50;

    /// Every non-signal register: (table, address, name, meaning), for the documentation.
    pub const REGISTERS: &[(super::Table, u16, &str, &str)] = &[
        (
            super::Table::Input,
            CONTACTS,
            "contacts",
            "dry contacts: bit 0 smoke, bit 1 UPS on battery, bit 2 suppression released",
        ),
        (
            super::Table::Input,
            FIRMWARE_VERSION,
            "firmware-version",
            "major << 8 | minor",
        ),
        (
            super::Table::Input,
            FIRMWARE_PATCH,
            "firmware-patch",
            "patch version",
        ),
        (
            super::Table::Input,
            UPTIME,
            "uptime",
            "seconds since boot, u32, high word first (102-103): signal `device-uptime`",
        ),
        (
            super::Table::Input,
            FAULTS,
            "faults",
            "bit n: probe n faulty (0-7); bit 8 off-gas, 9 room temperature, 10 humidity",
        ),
        (
            super::Table::Input,
            CRC_ERRORS,
            "crc-errors",
            "port A: frames dropped for a bad CRC (saturating; = 110)",
        ),
        (
            super::Table::Input,
            FRAMING_ERRORS,
            "framing-errors",
            "port A: frames dropped for bad framing (saturating; = 111)",
        ),
        (
            super::Table::Input,
            ALARM_STATE,
            "alarm-state",
            "bit 0 relay latched; causes: bit 1 temperature, 2 rate of rise, 3 off-gas, 4 smoke",
        ),
        (
            super::Table::Input,
            RESET_REASON,
            "reset-reason",
            "0 power-on, 1 watchdog, 2 software, 3 external, 4 brown-out, 0xFFFF unknown: signal `reset-reason`",
        ),
        (
            super::Table::Input,
            PORT_A_LINK,
            "port-a-frames-ok",
            "RTU port A: frames received intact for this unit or broadcast (saturating)",
        ),
        (
            super::Table::Input,
            PORT_A_LINK + 1,
            "port-a-crc-errors",
            "RTU port A: frames dropped for a bad CRC (saturating)",
        ),
        (
            super::Table::Input,
            PORT_A_LINK + 2,
            "port-a-framing-errors",
            "RTU port A: frames dropped as shorter than 4 or longer than 256 bytes (saturating)",
        ),
        (
            super::Table::Input,
            PORT_A_LINK + 3,
            "port-a-exceptions",
            "RTU port A: exception responses sent (saturating)",
        ),
        (
            super::Table::Input,
            PORT_A_LINK + 4,
            "port-a-bytes",
            "RTU port A: bytes received, u32, high word first (113-114; saturating)",
        ),
        (
            super::Table::Input,
            PORT_B_LINK,
            "port-b-frames-ok",
            "RTU port B: frames received intact for this unit or broadcast (saturating)",
        ),
        (
            super::Table::Input,
            PORT_B_LINK + 1,
            "port-b-crc-errors",
            "RTU port B: frames dropped for a bad CRC (saturating)",
        ),
        (
            super::Table::Input,
            PORT_B_LINK + 2,
            "port-b-framing-errors",
            "RTU port B: frames dropped as shorter than 4 or longer than 256 bytes (saturating)",
        ),
        (
            super::Table::Input,
            PORT_B_LINK + 3,
            "port-b-exceptions",
            "RTU port B: exception responses sent (saturating)",
        ),
        (
            super::Table::Input,
            PORT_B_LINK + 4,
            "port-b-bytes",
            "RTU port B: bytes received, u32, high word first (119-120; saturating)",
        ),
        (
            super::Table::Holding,
            ALARM_RESET,
            "alarm-reset",
            "write 0x5AA5 to clear a latched alarm whose causes are gone; reads 0",
        ),
        (
            super::Table::Holding,
            LIMIT_RACK_TEMPERATURE,
            "limit-rack-temperature",
            "0.1 degC, default 600 (60.0 degC)",
        ),
        (
            super::Table::Holding,
            LIMIT_RATE_OF_RISE,
            "limit-rate-of-rise",
            "0.1 degC/min, default 10 (1.0 degC/min)",
        ),
        (
            super::Table::Holding,
            LIMIT_OFF_GAS,
            "limit-off-gas",
            "ppm, default 50",
        ),
    ];
}

/// A generic UPS, its fields modelled on RFC 1628 (UPS-MIB), in holding registers 0..=6.
///
/// Register 0 carries the UPS-MIB well-known alarms as bits; runtime is in seconds rather than
/// the MIB's minutes, because an evacuation budget is counted in seconds.
pub const GENERIC_UPS: DeviceProfile<'static> = DeviceProfile {
    name: "generic-ups",
    description: "Generic UPS after RFC 1628 UPS-MIB (Modbus TCP, holding registers)",
    registers: &GENERIC_UPS_REGISTERS,
};

/// Bit of UPS register 0: `upsAlarmOnBattery`.
pub const UPS_ALARM_ON_BATTERY: u8 = 0;
/// Bit of UPS register 0: `upsAlarmLowBattery`.
pub const UPS_ALARM_LOW_BATTERY: u8 = 1;
/// Bit of UPS register 0: `upsAlarmBatteryBad` (replace battery).
pub const UPS_ALARM_BATTERY_BAD: u8 = 2;

const GENERIC_UPS_REGISTERS: [R; 9] = [
    R::new(
        Signal::UpsOnBattery,
        Table::Holding,
        0,
        DataType::Bit(UPS_ALARM_ON_BATTERY),
    )
    .sentinel(NO_SENSOR_U16),
    R::new(
        Signal::UpsLowBattery,
        Table::Holding,
        0,
        DataType::Bit(UPS_ALARM_LOW_BATTERY),
    )
    .sentinel(NO_SENSOR_U16),
    R::new(
        Signal::UpsReplaceBattery,
        Table::Holding,
        0,
        DataType::Bit(UPS_ALARM_BATTERY_BAD),
    )
    .sentinel(NO_SENSOR_U16),
    R::new(
        Signal::UpsRuntimeRemaining,
        Table::Holding,
        1,
        DataType::U16,
    )
    .valid(0.0, 65_534.0)
    .sentinel(NO_SENSOR_U16),
    R::new(Signal::UpsBatteryCharge, Table::Holding, 2, DataType::U16)
        .valid(0.0, 100.0)
        .sentinel(NO_SENSOR_U16),
    R::new(
        Signal::UpsBatteryTemperature,
        Table::Holding,
        3,
        DataType::I16,
    )
    .scaled(0.1, 0.0)
    .valid(-40.0, 120.0)
    .sentinel(NO_SENSOR_I16),
    R::new(Signal::UpsInputVoltage, Table::Holding, 4, DataType::U16)
        .scaled(0.1, 0.0)
        .valid(0.0, 600.0)
        .sentinel(NO_SENSOR_U16),
    R::new(Signal::UpsOutputVoltage, Table::Holding, 5, DataType::U16)
        .scaled(0.1, 0.0)
        .valid(0.0, 600.0)
        .sentinel(NO_SENSOR_U16),
    R::new(Signal::UpsLoad, Table::Holding, 6, DataType::U16)
        .valid(0.0, 250.0)
        .sentinel(NO_SENSOR_U16),
];

/// A generic single-feed metered PDU, in input registers 0..=3.
pub const GENERIC_PDU: DeviceProfile<'static> = DeviceProfile {
    name: "generic-pdu",
    description: "Generic metered PDU (Modbus TCP, input registers)",
    registers: &GENERIC_PDU_REGISTERS,
};

const GENERIC_PDU_REGISTERS: [R; 3] = [
    R::new(Signal::PduInputVoltage, Table::Input, 0, DataType::U16)
        .scaled(0.1, 0.0)
        .valid(0.0, 600.0)
        .sentinel(NO_SENSOR_U16),
    R::new(Signal::PduCurrent, Table::Input, 1, DataType::U16)
        .scaled(0.01, 0.0)
        .valid(0.0, 400.0)
        .sentinel(NO_SENSOR_U16),
    R::new(Signal::PduPower, Table::Input, 2, DataType::U32)
        .valid(0.0, 200_000.0)
        .sentinel(NO_SENSOR_U32),
];

/// Every built-in profile.
pub const BUILTIN_PROFILES: &[DeviceProfile<'static>] = &[SENSOR_NODE, GENERIC_UPS, GENERIC_PDU];

/// The built-in profile with this name.
pub fn builtin_profile(name: &str) -> Option<&'static DeviceProfile<'static>> {
    BUILTIN_PROFILES.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_are_valid() {
        for p in BUILTIN_PROFILES {
            assert_eq!(p.validate(), Ok(()), "{}", p.name);
        }
    }

    #[test]
    fn lookup_by_name() {
        assert_eq!(builtin_profile("generic-ups"), Some(&GENERIC_UPS));
        assert_eq!(builtin_profile("apc-smt"), None);
    }

    #[test]
    fn an_all_ones_ups_status_word_is_no_reading() {
        use crate::{PlanOptions, RawData, decode, plan_reads};
        let plan = plan_reads::<8>(GENERIC_UPS.registers, &PlanOptions::default()).unwrap();
        let words = [0xFFFFu16; 16];
        for d in GENERIC_UPS.registers.iter().filter(|d| d.address == 0) {
            let r = plan.iter().find(|r| r.covers(d)).unwrap();
            let reading = decode(d, r, RawData::Words(&words)).unwrap();
            assert_eq!(reading.quality, crate::Quality::SensorFault, "{}", d.signal);
        }
        // One bit set is a reading.
        let words = [1u16; 16];
        let d = &GENERIC_UPS.registers[0];
        let r = plan.iter().find(|r| r.covers(d)).unwrap();
        let reading = decode(d, r, RawData::Words(&words)).unwrap();
        assert_eq!(
            (reading.value, reading.quality),
            (1.0, crate::Quality::Good)
        );
    }

    #[test]
    fn the_status_block_gives_uptime_and_reset_reason() {
        use crate::{
            DeviceId, PlanOptions, Quality, RawData, ResetReason, decode_samples, plan_reads,
        };
        let device = DeviceId::new("node-1").unwrap();
        let plan = plan_reads::<4>(SENSOR_NODE.registers, &PlanOptions::default()).unwrap();
        let status = plan
            .iter()
            .find(|r| {
                r.table == Table::Input
                    && r.start > sensor_node::CONTACTS
                    && r.start <= sensor_node::UPTIME
            })
            .unwrap();
        // The status block as the firmware serves it, from input register 100: version 1.2,
        // patch 3, uptime 0x0001_0002 s (65538), no faults, no errors, alarm latched,
        // reset by the watchdog.
        let block: [u16; 9] = [0x0102, 3, 0x0001, 0x0002, 0, 0, 0, 1, 1];
        let words = &block[usize::from(status.start - sensor_node::FIRMWARE_VERSION)..];
        let samples: heapless::Vec<crate::Sample, 8> = decode_samples(
            &device,
            SENSOR_NODE.registers,
            status,
            RawData::Words(words),
            42,
        )
        .map(Result::unwrap)
        .collect();
        let get = |signal| samples.iter().find(|s| s.signal == signal).unwrap();
        let uptime = get(Signal::DeviceUptime);
        assert_eq!(
            (
                uptime.value,
                uptime.unit,
                uptime.quality,
                uptime.timestamp_ms
            ),
            (65_538.0, crate::Unit::Seconds, Quality::Good, 42)
        );
        let reason = get(Signal::ResetReason);
        assert_eq!((reason.value, reason.quality), (1.0, Quality::Good));
        assert_eq!(
            ResetReason::from_code(reason.value),
            Some(ResetReason::Watchdog)
        );
        assert_eq!(get(Signal::NodeAlarm).value, 1.0);
        // "Unknown" is a reason, not a broken sensor; a huge uptime is an uptime.
        let block: [u16; 9] = [0x0102, 3, 0xFFFF, 0xFFFF, 0, 0, 0, 0, 0xFFFF];
        let words = &block[usize::from(status.start - sensor_node::FIRMWARE_VERSION)..];
        for s in decode_samples(
            &device,
            SENSOR_NODE.registers,
            status,
            RawData::Words(words),
            0,
        ) {
            let s = s.unwrap();
            assert_eq!(s.quality, Quality::Good, "{}", s.signal);
            match s.signal {
                Signal::DeviceUptime => assert_eq!(s.value, 4_294_967_295.0),
                Signal::ResetReason => {
                    assert_eq!(ResetReason::from_code(s.value), Some(ResetReason::Unknown))
                }
                _ => {}
            }
        }
    }

    #[test]
    fn the_port_link_blocks_extend_the_status_block_without_gaps_or_signals() {
        use sensor_node::*;
        // Port A's block follows the reset reason, port B's follows A's: 100..=120 reads in
        // one request.
        assert_eq!(PORT_A_LINK, RESET_REASON + 1);
        assert_eq!(PORT_B_LINK, PORT_A_LINK + LINK_LEN);
        assert_eq!(LINK_BYTES + 2, LINK_LEN);
        // Documented once each, and none of them a signal: the gateway never reads them.
        for port in [PORT_A_LINK, PORT_B_LINK] {
            for a in port..port + LINK_LEN {
                let documented = REGISTERS
                    .iter()
                    .filter(|(t, address, _, _)| *t == Table::Input && *address == a)
                    .count();
                let expected = usize::from(a != port + LINK_BYTES + 1);
                assert_eq!(documented, expected, "input {a}");
                assert!(
                    SENSOR_NODE
                        .registers
                        .iter()
                        .all(|d| d.address != a || d.table != Table::Input),
                    "input {a} is a signal"
                );
            }
        }
    }

    #[test]
    fn rack_probes_keep_their_sentinels() {
        for d in SENSOR_NODE
            .registers
            .iter()
            .filter(|d| d.signal == Signal::RackTemperature)
        {
            assert_eq!(
                d.sentinels.as_slice(),
                &[NO_SENSOR_I16, FAULT_I16, NO_SENSOR_U16]
            );
        }
    }
}
