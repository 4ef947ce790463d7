//! The node: sensor health, local detection, the latching alarm relay, the status block and
//! the registers the Modbus server serves.
//!
//! Each cycle the board reads its sensors into [`Inputs`] and calls [`Node::update`] with the
//! time; the node judges every probe ([`crate::health`]), feeds the healthy readings to the
//! [`Detector`], latches the relay on any cause, and refreshes the register image. The relay
//! clears only by a Modbus write of [`map::ALARM_RESET_KEY`] to [`map::ALARM_RESET`] or by the
//! local reset button ([`Node::local_reset`]), and only once every cause is gone.

use embedded_hal::digital::{OutputPin, StatefulOutputPin};
use firebreak_protocols::builtin::{NO_SENSOR_U16, sensor_node as map};
use firebreak_protocols::rtu::Exception;
use firebreak_protocols::{SENSOR_NODE, Signal};

use crate::detect::{Causes, Detector, Evidence, Limits};
use crate::health::{HealthLimits, ProbeHealth, profile_range};
use crate::image::{ImageError, InputImage, PROBES, ProbeState, Status};
use crate::modbus::{LinkCounters, PortCounters, Registers};
use crate::sensors::{GasSample, Inputs};
use crate::tmp117::MilliCelsius;

const fn parse(s: &str) -> u32 {
    let mut rest = s.as_bytes();
    let mut v: u32 = 0;
    while let [digit, tail @ ..] = rest {
        v = v * 10 + (*digit - b'0') as u32;
        rest = tail;
    }
    v
}

/// The firmware version (major, minor, patch), from the package version.
pub const VERSION: (u8, u8, u16) = (
    parse(env!("CARGO_PKG_VERSION_MAJOR")) as u8,
    parse(env!("CARGO_PKG_VERSION_MINOR")) as u8,
    parse(env!("CARGO_PKG_VERSION_PATCH")) as u16,
);

/// Why the node last reset, as [`map::RESET_REASON`] carries it: the protocol's own type,
/// so the node and the gateway read one table of codes.
pub use firebreak_protocols::ResetReason;

/// Feeds a hardware watchdog. The board's main loop feeds it once per completed cycle, so a
/// hung sensor read or a stuck loop resets the node.
pub trait Watchdog {
    /// Restarts the countdown.
    fn feed(&mut self);
}

/// Bit of the faults register: off-gas sensor faulty.
pub const FAULT_OFF_GAS: u16 = 1 << 8;
/// Bit of the faults register: room temperature sensor faulty.
pub const FAULT_ROOM: u16 = 1 << 9;
/// Bit of the faults register: humidity sensor faulty.
pub const FAULT_HUMIDITY: u16 = 1 << 10;

fn valid_max(signal: Signal) -> f32 {
    SENSOR_NODE
        .registers
        .iter()
        .find(|d| d.signal == signal)
        .map_or(f32::MAX, |d| d.valid.max)
}

const fn room_limits() -> HealthLimits {
    let (min, max) = profile_range(
        Signal::RoomTemperature,
        (MilliCelsius(-40_000), MilliCelsius(85_000)),
    );
    HealthLimits {
        min,
        max,
        ..HealthLimits::rack()
    }
}

/// The battery-room node, driving its alarm relay through `R`.
#[derive(Debug)]
pub struct Node<R> {
    relay: R,
    image: InputImage,
    detector: Detector,
    probes: [ProbeHealth; PROBES],
    room: ProbeHealth,
    latched: bool,
    causes: Causes,
    faults: u16,
    reset_reason: ResetReason,
    uptime_s: u32,
    links: PortCounters,
}

impl<R: OutputPin> Node<R> {
    /// A node with the default limits; the relay is driven off.
    pub fn new(relay: R, reset_reason: ResetReason) -> Result<Self, R::Error> {
        let mut node = Node::unstarted(relay);
        node.start(reset_reason)?;
        Ok(node)
    }

    /// A node not yet started: `const`, so a board can keep it in a static instead of
    /// building it on its stack. Call [`Node::start`] before anything else.
    pub const fn unstarted(relay: R) -> Self {
        const PROBE: ProbeHealth = ProbeHealth::new(HealthLimits::rack());
        Node {
            relay,
            image: InputImage::new(),
            detector: Detector::new(Limits::DEFAULT),
            probes: [PROBE; PROBES],
            room: ProbeHealth::new(room_limits()),
            latched: false,
            causes: Causes::NONE,
            faults: 0,
            reset_reason: ResetReason::Unknown,
            uptime_s: 0,
            links: PortCounters::NONE,
        }
    }

    /// Drives the relay off and records why the node reset.
    pub fn start(&mut self, reset_reason: ResetReason) -> Result<(), R::Error> {
        self.reset_reason = reset_reason;
        self.refresh_status();
        self.relay.set_low()
    }

    /// Gives the relay pin back.
    pub fn destroy(self) -> R {
        self.relay
    }

    /// Whether the relay is latched on.
    pub fn alarm_latched(&self) -> bool {
        self.latched
    }

    /// The causes present at the last update.
    pub fn causes(&self) -> Causes {
        self.causes
    }

    /// The faults register.
    pub fn faults(&self) -> u16 {
        self.faults
    }

    /// Why the node last reset, as it reports it.
    pub fn reset_reason(&self) -> ResetReason {
        self.reset_reason
    }

    /// The register image.
    pub fn image(&self) -> &InputImage {
        &self.image
    }

    /// The detection limits in force.
    pub fn limits(&self) -> Limits {
        self.detector.limits()
    }

    /// The alarm-state register: bit 0 latched, bits 1..=4 causes.
    pub fn alarm_state(&self) -> u16 {
        u16::from(self.latched) << map::ALARM_LATCHED | self.causes.0
    }

    fn refresh_status(&mut self) {
        self.image.set_status(&Status {
            version: VERSION,
            uptime_s: self.uptime_s,
            faults: self.faults,
            links: self.links,
            alarm_state: self.alarm_state(),
            reset_reason: self.reset_reason.code(),
        });
    }

    fn drive(&mut self) -> Result<(), R::Error> {
        if self.latched {
            self.relay.set_high()
        } else {
            self.relay.set_low()
        }
    }

    /// One cycle at `now_ms` (ms since boot) with this cycle's readings.
    pub fn update(&mut self, now_ms: u64, inputs: &Inputs) -> Result<(), R::Error> {
        let mut evidence = Evidence {
            smoke: inputs.smoke,
            ..Evidence::default()
        };
        let mut faults = 0u16;
        // A probe's fast rise is believed with an independent witness of fire: off-gas (as
        // judged last cycle) or the smoke contact (see `ProbeHealth::judge`).
        let excused = inputs.smoke || self.causes.contains(Causes::OFF_GAS);
        for (channel, ((health, sample), healthy)) in self
            .probes
            .iter_mut()
            .zip(inputs.probes.iter())
            .zip(evidence.probes.iter_mut())
            .enumerate()
        {
            let (state, t) = health.judge(now_ms, *sample, excused);
            *healthy = t;
            if state == ProbeState::Faulty {
                faults |= 1 << channel;
            }
            // Channels 0..PROBES exist: this cannot fail.
            let _ = self.image.set_probe(channel as u8, state);
        }
        let (room, _) = self.room.judge(now_ms, inputs.room, excused);
        if room == ProbeState::Faulty {
            faults |= FAULT_ROOM;
        }
        let humidity = match inputs.humidity_tenths {
            Some(h) if f32::from(h) / 10.0 > valid_max(Signal::RoomHumidity) => {
                faults |= FAULT_HUMIDITY;
                None
            }
            h => h,
        };
        self.image.set_room(room, humidity);
        evidence.off_gas_ppm = match inputs.off_gas {
            GasSample::Absent => None,
            GasSample::Ppm(p)
                if u32::from(p) != NO_SENSOR_U16 && f32::from(p) <= valid_max(Signal::OffGas) =>
            {
                Some(p)
            }
            GasSample::Ppm(_) | GasSample::Fault => {
                faults |= FAULT_OFF_GAS;
                None
            }
        };
        self.image.set_off_gas_ppm(evidence.off_gas_ppm);
        for (bit, closed) in [
            (map::CONTACT_SMOKE, inputs.smoke),
            (map::CONTACT_UPS_ON_BATTERY, inputs.ups_on_battery),
            (map::CONTACT_SUPPRESSION, inputs.suppression),
        ] {
            let _ = self.image.set_contact(bit, closed);
        }

        self.causes = self.detector.update(now_ms, &evidence);
        self.latched |= self.causes.any();
        self.faults = faults;
        self.uptime_s = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
        self.refresh_status();
        self.drive()
    }

    /// The local reset button: clears the latch if no cause is present now (a cause still
    /// present keeps it). Whether the relay is now off.
    pub fn local_reset(&mut self) -> Result<bool, R::Error> {
        if !self.causes.any() {
            self.latched = false;
        }
        self.refresh_status();
        self.drive()?;
        Ok(!self.latched)
    }
}

impl<R: StatefulOutputPin> Node<R> {
    /// Whether the relay pin reads back high (energised): what the relay really does, not what
    /// the node asked of it.
    pub fn relay_is_set_high(&mut self) -> Result<bool, R::Error> {
        self.relay.is_set_high()
    }
}

impl<R: OutputPin> Registers for Node<R> {
    fn read_input(&mut self, start: u16, out: &mut [u16]) -> Result<(), Exception> {
        let count = u16::try_from(out.len()).map_err(|_| Exception::IllegalDataValue)?;
        let words = self.image.read(start, count).map_err(|e| match e {
            ImageError::BadCount(_) => Exception::IllegalDataValue,
            _ => Exception::IllegalDataAddress,
        })?;
        out.copy_from_slice(&words);
        Ok(())
    }

    fn read_holding(&mut self, start: u16, out: &mut [u16]) -> Result<(), Exception> {
        let limits = self.detector.limits();
        for (address, w) in (u32::from(start)..).zip(out.iter_mut()) {
            *w = match u16::try_from(address) {
                Ok(map::ALARM_RESET) => 0,
                Ok(map::LIMIT_RACK_TEMPERATURE) => limits.rack_temperature,
                Ok(map::LIMIT_RATE_OF_RISE) => limits.rate_of_rise,
                Ok(map::LIMIT_OFF_GAS) => limits.off_gas,
                _ => return Err(Exception::IllegalDataAddress),
            };
        }
        Ok(())
    }

    fn write_holding(&mut self, address: u16, value: u16) -> Result<(), Exception> {
        let mut limits = self.detector.limits();
        let set = match address {
            map::ALARM_RESET if value == map::ALARM_RESET_KEY => {
                return self
                    .local_reset()
                    .map(|_| ())
                    .map_err(|_| Exception::ServerDeviceFailure);
            }
            map::ALARM_RESET => return Err(Exception::IllegalDataValue),
            map::LIMIT_RACK_TEMPERATURE => limits.set_rack_temperature(value),
            map::LIMIT_RATE_OF_RISE => limits.set_rate_of_rise(value),
            map::LIMIT_OFF_GAS => limits.set_off_gas(value),
            _ => return Err(Exception::IllegalDataAddress),
        };
        set.map_err(|_| Exception::IllegalDataValue)?;
        self.detector.set_limits(limits);
        Ok(())
    }

    fn link_counters(&mut self, counters: LinkCounters) {
        self.links.a = counters;
        self.refresh_status();
    }

    fn port_counters(&mut self, counters: &PortCounters) {
        self.links = *counters;
        self.refresh_status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensors::ProbeSample;
    use embedded_hal_mock::eh1::digital::{Mock as Pin, State, Transaction as T};

    fn at(c: f32) -> ProbeSample {
        ProbeSample::Reading(MilliCelsius((c * 1000.0) as i32))
    }

    /// The relay pin expecting `states` in order.
    fn relay(states: &[State]) -> Pin {
        Pin::new(&states.iter().map(|s| T::set(*s)).collect::<Vec<_>>())
    }

    fn input(start: u16, n: usize, node: &mut Node<Pin>) -> Vec<u16> {
        let mut out = vec![0; n];
        node.read_input(start, &mut out).unwrap();
        out
    }

    #[test]
    fn a_hot_rack_latches_the_relay_until_reset_after_it_cooled() {
        use State::{High, Low};
        // new, then 4 updates (low, low, low, high), reset refused (high), 2 updates while
        // still latched (high, high), reset accepted (low).
        let pin = relay(&[Low, Low, Low, Low, High, High, High, High, Low]);
        let mut node = Node::new(pin, ResetReason::PowerOn).unwrap();
        let mut inputs = Inputs::default();
        // A rise in steps a rack can make (a 20 °C jump would be a faulty probe).
        inputs.probes[0] = at(45.0);
        node.update(0, &inputs).unwrap();
        inputs.probes[0] = at(61.0);
        node.update(1_000, &inputs).unwrap();
        node.update(2_000, &inputs).unwrap();
        assert!(!node.alarm_latched());
        node.update(4_000, &inputs).unwrap();
        assert!(node.alarm_latched());
        assert_eq!(
            input(map::ALARM_STATE, 1, &mut node),
            [1 | 1 << map::ALARM_CAUSE_TEMPERATURE]
        );
        // A reset while the rack is hot is accepted by Modbus and changes nothing.
        assert_eq!(
            node.write_holding(map::ALARM_RESET, map::ALARM_RESET_KEY),
            Ok(())
        );
        assert!(node.alarm_latched());
        // Cooled: the cause goes after its clear hold, the latch stays.
        inputs.probes[0] = at(30.0);
        node.update(5_000, &inputs).unwrap();
        node.update(16_000, &inputs).unwrap();
        assert_eq!(node.causes(), Causes::NONE);
        assert!(node.alarm_latched());
        assert_eq!(input(map::ALARM_STATE, 1, &mut node), [1]);
        assert_eq!(
            node.write_holding(map::ALARM_RESET, 0x1234),
            Err(Exception::IllegalDataValue)
        );
        assert_eq!(
            node.write_holding(map::ALARM_RESET, map::ALARM_RESET_KEY),
            Ok(())
        );
        assert!(!node.alarm_latched());
        node.destroy().done();
    }

    #[test]
    fn faulty_probes_are_reported_and_never_an_alarm() {
        let pin = Pin::new(&vec![T::set(State::Low); 1 + 30]);
        let mut node = Node::new(pin, ResetReason::Watchdog).unwrap();
        let mut inputs = Inputs::default();
        inputs.probes[2] = ProbeSample::BusError;
        inputs.probes[3] = at(250.0); // impossible
        inputs.off_gas = GasSample::Fault;
        inputs.humidity_tenths = Some(1500);
        for s in 0..30u64 {
            node.update(s * 1000, &inputs).unwrap();
        }
        assert!(!node.alarm_latched());
        assert_eq!(
            node.faults(),
            1 << 2 | 1 << 3 | FAULT_OFF_GAS | FAULT_HUMIDITY
        );
        assert_eq!(input(2, 2, &mut node), [0x8000, 0x8000]);
        assert_eq!(input(0, 1, &mut node), [0x7FFF], "absent");
        assert_eq!(input(map::FAULTS, 1, &mut node), [node.faults()]);
        assert_eq!(input(map::RESET_REASON, 1, &mut node), [1]);
        assert_eq!(input(map::UPTIME, 2, &mut node), [0, 29]);
        node.destroy().done();
    }

    #[test]
    fn smoke_latches_and_contacts_are_served() {
        let pin = Pin::new(&[T::set(State::Low), T::set(State::Low), T::set(State::High)]);
        let mut node = Node::new(pin, ResetReason::PowerOn).unwrap();
        let inputs = Inputs {
            smoke: true,
            ups_on_battery: true,
            ..Inputs::default()
        };
        node.update(0, &inputs).unwrap();
        node.update(1_000, &inputs).unwrap();
        assert!(node.alarm_latched());
        assert_eq!(input(map::CONTACTS, 1, &mut node), [0b011]);
        node.destroy().done();
    }

    #[test]
    fn holding_registers_are_the_documented_ones() {
        let pin = Pin::new(&[T::set(State::Low)]);
        let mut node = Node::new(pin, ResetReason::PowerOn).unwrap();
        let mut h = [0u16; 4];
        node.read_holding(map::ALARM_RESET, &mut h).unwrap();
        assert_eq!(h, [0, 600, 10, 50]);
        assert_eq!(node.write_holding(map::LIMIT_RACK_TEMPERATURE, 450), Ok(()));
        assert_eq!(node.limits().rack_temperature, 450);
        assert_eq!(
            node.write_holding(map::LIMIT_OFF_GAS, 0),
            Err(Exception::IllegalDataValue)
        );
        assert_eq!(
            node.write_holding(map::FAULTS, 0),
            Err(Exception::IllegalDataAddress),
            "input registers are not writable"
        );
        assert_eq!(
            node.read_holding(199, &mut [0]),
            Err(Exception::IllegalDataAddress)
        );
        assert_eq!(
            node.read_holding(203, &mut [0, 0]),
            Err(Exception::IllegalDataAddress)
        );
        let mut v = [0u16; 2];
        node.read_input(map::FIRMWARE_VERSION, &mut v).unwrap();
        assert_eq!(
            v,
            [u16::from(VERSION.0) << 8 | u16::from(VERSION.1), VERSION.2]
        );
        assert_eq!(
            node.read_input(12, &mut [0]),
            Err(Exception::IllegalDataAddress)
        );
        node.destroy().done();
    }
}
