//! Witnesses: which readings can fail together, and how many independent ones agree.
//!
//! Every reading has a *witness*: the failure group behind it (one sensor node, one harness,
//! one MQTT source, one UPS card; by default the device, its channels together) and its
//! *physics* (gas, heat, smoke, power). Two readings are independent when they differ in
//! either: two probes of one node are one witness; the node's off-gas and its rack probes are
//! two (different physics); two nodes are two. docs/policy.md, "Evidence".

use firebreak_protocols::Signal;

/// The failure group of a reading: (group index, channel or [`ALL_CHANNELS`]).
pub(super) type WitnessKey = (u32, u16);

/// The channel part of a [`WitnessKey`] when a device's channels fail together.
pub(super) const ALL_CHANNELS: u16 = u16::MAX;

/// What a signal senses. Readings of different physics fail independently even on one device:
/// a shorted harness makes probes read hot, not the gas sensor read gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Physics {
    /// Off-gas: electrolyte vapour, hydrogen.
    Gas,
    /// Temperatures.
    Heat,
    /// Smoke detectors and the fire panel (its suppression output included).
    Smoke,
    /// Power: UPS and PDU readings.
    Power,
    /// Anything else (the node's own alarm, codes, the link to a device).
    Other,
}

impl Physics {
    pub(super) fn of(signal: Signal) -> Physics {
        match signal {
            Signal::OffGas => Physics::Gas,
            Signal::RackTemperature
            | Signal::RoomTemperature
            | Signal::UpsBatteryTemperature
            | Signal::RoomHumidity => Physics::Heat,
            Signal::SmokeAlarm | Signal::SuppressionReleased => Physics::Smoke,
            Signal::UpsOnBattery
            | Signal::UpsLowBattery
            | Signal::UpsReplaceBattery
            | Signal::UpsRuntimeRemaining
            | Signal::UpsBatteryCharge
            | Signal::UpsInputVoltage
            | Signal::UpsOutputVoltage
            | Signal::UpsLoad
            | Signal::PduInputVoltage
            | Signal::PduCurrent
            | Signal::PduPower
            | Signal::PduOutletCurrent
            | Signal::PduOutletPower
            | Signal::GeneratorRunning
            | Signal::TransferSwitchSource => Physics::Power,
            _ => Physics::Other,
        }
    }
}

/// One witness of a rule: its failure group and its physics.
pub(super) type Witness = (WitnessKey, Physics);

/// A small set of witnesses, reused from step to step without allocating.
#[derive(Debug, Clone, Default)]
pub(super) struct Witnesses(Vec<Witness>);

impl Witnesses {
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    pub(super) fn push(&mut self, w: Witness) {
        if !self.0.contains(&w) {
            self.0.push(w);
        }
    }

    pub(super) fn extend(&mut self, other: &Witnesses) {
        for &w in &other.0 {
            self.push(w);
        }
    }

    /// Independent witnesses among readings of one signal: distinct failure groups.
    pub(super) fn groups(&self) -> usize {
        let mut n = 0;
        for (i, (k, _)) in self.0.iter().enumerate() {
            if !self.0.iter().take(i).any(|(o, _)| o == k) {
                n += 1;
            }
        }
        n
    }

    /// Independent witnesses across kinds of evidence: distinct (group, physics) pairs.
    pub(super) fn independent(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_channels_of_one_group_are_one_witness_two_physics_are_two() {
        let mut w = Witnesses::default();
        w.push(((0, ALL_CHANNELS), Physics::Heat));
        w.push(((0, ALL_CHANNELS), Physics::Heat));
        assert_eq!((w.groups(), w.independent()), (1, 1));
        w.push(((0, ALL_CHANNELS), Physics::Gas));
        assert_eq!((w.groups(), w.independent()), (1, 2));
        w.push(((1, ALL_CHANNELS), Physics::Heat));
        assert_eq!((w.groups(), w.independent()), (2, 3));
        w.push(((1, 3), Physics::Heat));
        assert_eq!(w.groups(), 3);
    }
}
