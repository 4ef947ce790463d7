//! The built-in SNMP profiles: RFC 1628's UPS-MIB (and a vendor variant of it), APC
//! PowerNet's rack PDU MIBs (`rPDU2`, current firmware; `rPDU`, the older tables every card
//! still serves) and APC PowerNet's UPS objects.
//!
//! Units and scales are the MIBs' own: UPS-MIB gives runtime in minutes, APC gives currents in
//! tenths of amperes and device power in hundredths of kilowatts. Every number a MIB defines
//! as non-negative takes −1 as "no reading": APC cards and Huawei's UPS answer −1 for what
//! the model does not measure, and such a value gives no sample. `docs/register-maps.md` is generated from these tables
//! (`UPDATE_DOCS=1 cargo test -p firebreak-protocols --features serde,std --test docs`).

use crate::signal::Signal;
use crate::snmp::{OidDescriptor as O, OidProfile};

/// −1: the agent has no reading of this quantity.
const NONE: &[i64] = &[-1];

/// RFC 1628 UPS-MIB (`1.3.6.1.2.1.33`), as standard: voltages in volts.
pub const UPS_MIB: OidProfile<'static> = OidProfile {
    name: "ups-mib",
    description: "RFC 1628 UPS-MIB (any UPS network card that implements the standard MIB: Eaton, Socomec, Riello, Tripp Lite, Vertiv, …)",
    oids: &UPS_MIB_OIDS,
};

const UPS_MIB_OIDS: [O<'static>; 8] = ups_mib(1.0);

/// UPS-MIB as Huawei's UPS2000/UPS5000 cards serve it: voltages in tenths of volts.
pub const UPS_MIB_DECIVOLTS: OidProfile<'static> = OidProfile {
    name: "ups-mib-decivolts",
    description: "RFC 1628 UPS-MIB with voltages in tenths of volts (Huawei UPS2000/UPS5000 SNMP cards)",
    oids: &UPS_MIB_DECIVOLT_OIDS,
};

const UPS_MIB_DECIVOLT_OIDS: [O<'static>; 8] = ups_mib(0.1);

/// The UPS-MIB objects, with the voltages' scale a card uses.
const fn ups_mib(volts: f64) -> [O<'static>; 8] {
    [
        // upsOutputSource: other(1) none(2) normal(3) bypass(4) battery(5) booster(6) reducer(7).
        O::scalar(Signal::UpsOnBattery, "1.3.6.1.2.1.33.1.4.1.0").flag(&[5]),
        // upsBatteryStatus: unknown(1) batteryNormal(2) batteryLow(3) batteryDepleted(4).
        O::scalar(Signal::UpsLowBattery, "1.3.6.1.2.1.33.1.2.1.0")
            .flag(&[3, 4])
            .sentinels(&[1]),
        // upsEstimatedMinutesRemaining, minutes.
        O::scalar(Signal::UpsRuntimeRemaining, "1.3.6.1.2.1.33.1.2.3.0")
            .scaled(60.0, 0.0)
            .valid(0.0, 604_800.0)
            .sentinels(NONE),
        // upsEstimatedChargeRemaining, percent.
        O::scalar(Signal::UpsBatteryCharge, "1.3.6.1.2.1.33.1.2.4.0")
            .valid(0.0, 100.0)
            .sentinels(NONE),
        // upsBatteryTemperature, °C.
        O::scalar(Signal::UpsBatteryTemperature, "1.3.6.1.2.1.33.1.2.7.0")
            .valid(-40.0, 150.0)
            .sentinels(NONE),
        // upsInputVoltage, per input line.
        O::column(Signal::UpsInputVoltage, "1.3.6.1.2.1.33.1.3.3.1.3")
            .scaled(volts, 0.0)
            .valid(0.0, 1_000.0)
            .sentinels(NONE),
        // upsOutputVoltage, per output line.
        O::column(Signal::UpsOutputVoltage, "1.3.6.1.2.1.33.1.4.4.1.2")
            .scaled(volts, 0.0)
            .valid(0.0, 1_000.0)
            .sentinels(NONE),
        // upsOutputPercentLoad, per output line.
        O::column(Signal::UpsLoad, "1.3.6.1.2.1.33.1.4.4.1.5")
            .valid(0.0, 200.0)
            .sentinels(NONE),
    ]
}

/// APC PowerNet rack PDU, `rPDU2` tables (AP79xx/AP86xx/AP88xx/AP89xx on firmware 5 and
/// later).
pub const APC_RPDU2: OidProfile<'static> = OidProfile {
    name: "apc-rpdu2",
    description: "APC rack PDU, PowerNet rPDU2 tables (AP79xx, AP86xx, AP88xx, AP89xx; firmware 5 and later): phases, device power, metered outlets",
    oids: &APC_RPDU2_OIDS,
};

const APC_RPDU2_OIDS: [O<'static>; 5] = [
    // rPDU2PhaseStatusVoltage, volts, per phase.
    O::column(Signal::PduInputVoltage, "1.3.6.1.4.1.318.1.1.26.6.3.1.6")
        .valid(0.0, 600.0)
        .sentinels(NONE),
    // rPDU2PhaseStatusCurrent, tenths of amperes, per phase.
    O::column(Signal::PduCurrent, "1.3.6.1.4.1.318.1.1.26.6.3.1.5")
        .scaled(0.1, 0.0)
        .valid(0.0, 400.0)
        .sentinels(NONE),
    // rPDU2DeviceStatusPower, hundredths of kilowatts, per PDU of a daisy chain.
    O::column(Signal::PduPower, "1.3.6.1.4.1.318.1.1.26.4.3.1.5")
        .scaled(10.0, 0.0)
        .valid(0.0, 200_000.0)
        .sentinels(NONE),
    // rPDU2OutletMeteredStatusCurrent, tenths of amperes, per outlet (outlet-metered models).
    O::column(Signal::PduOutletCurrent, "1.3.6.1.4.1.318.1.1.26.9.4.3.1.6")
        .scaled(0.1, 0.0)
        .valid(0.0, 100.0)
        .sentinels(NONE),
    // rPDU2OutletMeteredStatusPower, watts, per outlet.
    O::column(Signal::PduOutletPower, "1.3.6.1.4.1.318.1.1.26.9.4.3.1.7")
        .valid(0.0, 25_000.0)
        .sentinels(NONE),
];

/// APC PowerNet rack PDU, the older `rPDU` tables, which every APC rack PDU card serves.
pub const APC_RPDU: OidProfile<'static> = OidProfile {
    name: "apc-rpdu",
    description: "APC rack PDU, PowerNet rPDU tables (every AP78xx/AP79xx/AP86xx/AP89xx card): load per phase and bank, device power, outlet loads",
    oids: &APC_RPDU_OIDS,
};

const APC_RPDU_OIDS: [O<'static>; 4] = [
    // rPDUIdentDeviceLinetoLineVoltage, volts.
    O::scalar(Signal::PduInputVoltage, "1.3.6.1.4.1.318.1.1.12.1.15.0")
        .valid(0.0, 600.0)
        .sentinels(NONE),
    // rPDULoadStatusLoad, tenths of amperes, per row of rPDULoadStatusTable (the phases,
    // then the banks).
    O::column(Signal::PduCurrent, "1.3.6.1.4.1.318.1.1.12.2.3.1.1.2")
        .scaled(0.1, 0.0)
        .valid(0.0, 400.0)
        .sentinels(NONE),
    // rPDUIdentDevicePowerWatts, watts.
    O::scalar(Signal::PduPower, "1.3.6.1.4.1.318.1.1.12.1.16.0")
        .valid(0.0, 200_000.0)
        .sentinels(NONE),
    // rPDUOutletStatusLoad, tenths of amperes, per outlet.
    O::column(Signal::PduOutletCurrent, "1.3.6.1.4.1.318.1.1.12.3.5.1.1.7")
        .scaled(0.1, 0.0)
        .valid(0.0, 100.0)
        .sentinels(NONE),
];

/// APC PowerNet UPS objects (Smart-UPS, Symmetra with an AP96xx network card).
pub const APC_UPS: OidProfile<'static> = OidProfile {
    name: "apc-ups",
    description: "APC Smart-UPS and Symmetra, PowerNet upsBasic/upsAdv objects (AP96xx network management cards)",
    oids: &APC_UPS_OIDS,
};

const APC_UPS_OIDS: [O<'static>; 9] = [
    // upsBasicOutputStatus: onLine(2) onBattery(3) …
    O::scalar(Signal::UpsOnBattery, "1.3.6.1.4.1.318.1.1.1.4.1.1.0")
        .flag(&[3])
        .sentinels(&[1]),
    // upsBasicBatteryStatus: unknown(1) batteryNormal(2) batteryLow(3) batteryInFaultCondition(4).
    O::scalar(Signal::UpsLowBattery, "1.3.6.1.4.1.318.1.1.1.2.1.1.0")
        .flag(&[3])
        .sentinels(&[1]),
    // upsAdvBatteryReplaceIndicator: noBatteryNeedsReplacing(1) batteryNeedsReplacing(2).
    O::scalar(Signal::UpsReplaceBattery, "1.3.6.1.4.1.318.1.1.1.2.2.4.0").flag(&[2]),
    // upsAdvBatteryRunTimeRemaining, TimeTicks (hundredths of seconds).
    O::scalar(Signal::UpsRuntimeRemaining, "1.3.6.1.4.1.318.1.1.1.2.2.3.0")
        .scaled(0.01, 0.0)
        .valid(0.0, 604_800.0),
    // upsAdvBatteryCapacity, percent.
    O::scalar(Signal::UpsBatteryCharge, "1.3.6.1.4.1.318.1.1.1.2.2.1.0").valid(0.0, 100.0),
    // upsAdvBatteryTemperature, °C.
    O::scalar(
        Signal::UpsBatteryTemperature,
        "1.3.6.1.4.1.318.1.1.1.2.2.2.0",
    )
    .valid(-40.0, 150.0),
    // upsAdvInputLineVoltage, volts.
    O::scalar(Signal::UpsInputVoltage, "1.3.6.1.4.1.318.1.1.1.3.2.1.0").valid(0.0, 1_000.0),
    // upsAdvOutputVoltage, volts.
    O::scalar(Signal::UpsOutputVoltage, "1.3.6.1.4.1.318.1.1.1.4.2.1.0").valid(0.0, 1_000.0),
    // upsAdvOutputLoad, percent.
    O::scalar(Signal::UpsLoad, "1.3.6.1.4.1.318.1.1.1.4.2.3.0").valid(0.0, 200.0),
];

/// Every built-in SNMP profile.
pub const BUILTIN_OID_PROFILES: &[OidProfile<'static>] =
    &[UPS_MIB, UPS_MIB_DECIVOLTS, APC_UPS, APC_RPDU2, APC_RPDU];

/// The built-in SNMP profile with this name.
pub fn builtin_oid_profile(name: &str) -> Option<&'static OidProfile<'static>> {
    BUILTIN_OID_PROFILES.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::BUILTIN_PROFILES;
    use crate::signal::Quality;
    use crate::snmp::SnmpValue;

    #[test]
    fn builtin_oid_profiles_are_valid_and_named_apart_from_register_maps() {
        for p in BUILTIN_OID_PROFILES {
            assert_eq!(p.validate(), Ok(()), "{}", p.name);
            assert!(
                BUILTIN_PROFILES.iter().all(|r| r.name != p.name),
                "{} is also a register map",
                p.name
            );
            assert_eq!(
                BUILTIN_OID_PROFILES
                    .iter()
                    .filter(|o| o.name == p.name)
                    .count(),
                1
            );
        }
    }

    #[test]
    fn ups_mib_reads_minutes_and_the_output_source() {
        let p = builtin_oid_profile("ups-mib").unwrap();
        let get = |s: Signal| p.oids.iter().find(|d| d.signal == s).unwrap();
        assert_eq!(
            get(Signal::UpsRuntimeRemaining).decode(SnmpValue::Integer(18)),
            Ok((1080.0, Quality::Good))
        );
        assert_eq!(
            get(Signal::UpsOnBattery).decode(SnmpValue::Integer(5)),
            Ok((1.0, Quality::Good))
        );
        assert_eq!(
            get(Signal::UpsLowBattery).decode(SnmpValue::Integer(4)),
            Ok((1.0, Quality::Good))
        );
        // A Huawei card's 236.9 V in the standard profile is out of range, never evidence.
        assert_eq!(
            get(Signal::UpsInputVoltage)
                .decode(SnmpValue::Integer(2369))
                .map(|r| r.1),
            Ok(Quality::OutOfRange)
        );
        let h = builtin_oid_profile("ups-mib-decivolts").unwrap();
        let v = h
            .oids
            .iter()
            .find(|d| d.signal == Signal::UpsInputVoltage)
            .unwrap()
            .decode(SnmpValue::Integer(2369))
            .unwrap();
        assert!((v.0 - 236.9).abs() < 1e-3 && v.1 == Quality::Good);
    }
}
