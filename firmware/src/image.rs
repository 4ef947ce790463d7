//! The node's input register image: what a Modbus 04 request reads.
//!
//! Readings are stored already encoded as the [`SENSOR_NODE`](firebreak_protocols::SENSOR_NODE)
//! profile describes them (deci-°C, ppm, contact bits, sentinels for absent or broken
//! sensors), so serving a request is a copy.

use core::fmt;

use firebreak_protocols::builtin::{FAULT_I16, NO_SENSOR_I16, NO_SENSOR_U16, sensor_node};
use firebreak_protocols::plan::MAX_READ_REGISTERS;

use crate::modbus::{LinkCounters, PortCounters};

/// Number of rack probes.
pub const PROBES: usize = 8;
/// First address of the readings block (rack probes 0..=7, off-gas, room, humidity, contacts).
const READINGS: u16 = 0;
/// Registers in the readings block.
const READINGS_LEN: usize = 12;
/// First address of the status block.
const STATUS: u16 = sensor_node::FIRMWARE_VERSION;
/// Registers in the status block (100..=120: up to the reset reason, then each RTU port's link
/// counters).
const STATUS_LEN: usize = (sensor_node::PORT_B_LINK + sensor_node::LINK_LEN - STATUS) as usize;

/// A temperature in tenths of a degree Celsius, as the registers carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeciCelsius(pub i16);

impl DeciCelsius {
    /// Rounds °C to the nearest tenth. Values the register cannot carry are an error, and so
    /// are the two values reserved as sentinels (3276.7 and -3276.8 °C).
    pub fn from_celsius(celsius: f32) -> Result<DeciCelsius, ImageError> {
        if !celsius.is_finite() {
            return Err(ImageError::NotRepresentable);
        }
        let tenths = celsius * 10.0;
        let rounded = if tenths >= 0.0 {
            tenths + 0.5
        } else {
            tenths - 0.5
        } as i32;
        match i16::try_from(rounded) {
            // -0.1 °C is 0xFFFF, all ones, which the gateway takes for a floating line (a
            // sentinel on main since the HIL all-ones fault): served as -0.2 °C instead.
            Ok(-1) => Ok(DeciCelsius(-2)),
            Ok(v) if u32::from(v as u16) != NO_SENSOR_I16 && u32::from(v as u16) != FAULT_I16 => {
                Ok(DeciCelsius(v))
            }
            _ => Err(ImageError::NotRepresentable),
        }
    }
}

/// What a probe reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeState {
    /// No probe on this channel: served as 0x7FFF.
    Absent,
    /// The probe is broken (I2C error, stuck, impossible): served as 0x8000.
    Faulty,
    /// A reading.
    Reading(DeciCelsius),
}

/// Why the image refused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageError {
    /// The value cannot be carried by the register (not finite, too large, a sentinel).
    NotRepresentable,
    /// No such probe channel.
    NoSuchChannel(u8),
    /// No such contact bit.
    NoSuchContact(u8),
    /// A read of 0 or more than 125 registers (exception 03).
    BadCount(u16),
    /// A read that touches an unmapped address (exception 02).
    Unmapped(u16),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRepresentable => f.write_str("value cannot be carried by the register"),
            Self::NoSuchChannel(c) => write!(f, "no probe channel {c} (0..={})", PROBES - 1),
            Self::NoSuchContact(b) => write!(f, "no contact bit {b} (0..=15)"),
            Self::BadCount(n) => write!(f, "cannot read {n} registers (1..={MAX_READ_REGISTERS})"),
            Self::Unmapped(a) => write!(f, "input register {a} is not mapped"),
        }
    }
}

/// The status block's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// Major, minor, patch.
    pub version: (u8, u8, u16),
    /// Seconds since boot.
    pub uptime_s: u32,
    /// Faulty sensors, see [`sensor_node::FAULTS`].
    pub faults: u16,
    /// Each RTU port's line counters; port A's CRC and framing errors are also
    /// [`sensor_node::CRC_ERRORS`] and [`sensor_node::FRAMING_ERRORS`].
    pub links: PortCounters,
    /// See [`sensor_node::ALARM_STATE`].
    pub alarm_state: u16,
    /// See [`sensor_node::RESET_REASON`].
    pub reset_reason: u16,
}

/// The input registers the node serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputImage {
    readings: [u16; READINGS_LEN],
    status: [u16; STATUS_LEN],
}

impl Default for InputImage {
    fn default() -> Self {
        Self::new()
    }
}

impl InputImage {
    /// Every sensor absent, every contact open, status zero.
    pub const fn new() -> InputImage {
        const T: u16 = NO_SENSOR_I16 as u16;
        const U: u16 = NO_SENSOR_U16 as u16;
        // Probes 0..=7, off-gas, room temperature, humidity, contacts (all open).
        let readings = [T, T, T, T, T, T, T, T, U, T, U, 0];
        InputImage {
            readings,
            status: [0; STATUS_LEN],
        }
    }

    fn set(&mut self, address: u16, value: u16) {
        if let Some(slot) = self.readings.get_mut(usize::from(address - READINGS)) {
            *slot = value;
        }
    }

    /// Sets rack probe `channel` (0..=7).
    pub fn set_probe(&mut self, channel: u8, state: ProbeState) -> Result<(), ImageError> {
        if usize::from(channel) >= PROBES {
            return Err(ImageError::NoSuchChannel(channel));
        }
        self.set(u16::from(channel), encode_temperature(state));
        Ok(())
    }

    /// Sets the off-gas reading in ppm; `None` when the sensor is absent or broken.
    pub fn set_off_gas_ppm(&mut self, ppm: Option<u16>) {
        let raw = match ppm {
            Some(v) if u32::from(v) != NO_SENSOR_U16 => v,
            _ => NO_SENSOR_U16 as u16,
        };
        self.set(8, raw);
    }

    /// Sets the room temperature and relative humidity (percent, in tenths).
    pub fn set_room(&mut self, temperature: ProbeState, humidity_tenths: Option<u16>) {
        self.set(9, encode_temperature(temperature));
        self.set(10, humidity_tenths.unwrap_or(NO_SENSOR_U16 as u16));
    }

    /// Sets one contact bit of [`sensor_node::CONTACTS`].
    pub fn set_contact(&mut self, bit: u8, closed: bool) -> Result<(), ImageError> {
        if bit > 15 {
            return Err(ImageError::NoSuchContact(bit));
        }
        let index = usize::from(sensor_node::CONTACTS - READINGS);
        if let Some(word) = self.readings.get_mut(index) {
            *word = (*word & !(1 << bit)) | (u16::from(closed) << bit);
        }
        Ok(())
    }

    /// Sets the status block.
    pub fn set_status(&mut self, s: &Status) {
        let (a, b) = (link_block(&s.links.a), link_block(&s.links.b));
        self.status = [
            u16::from(s.version.0) << 8 | u16::from(s.version.1),
            s.version.2,
            (s.uptime_s >> 16) as u16,
            s.uptime_s as u16,
            s.faults,
            s.links.a.crc_errors,
            s.links.a.framing_errors,
            s.alarm_state,
            s.reset_reason,
            a[0],
            a[1],
            a[2],
            a[3],
            a[4],
            a[5],
            b[0],
            b[1],
            b[2],
            b[3],
            b[4],
            b[5],
        ];
    }

    /// The registers a 04 request for `count` registers from `start` reads. A read that
    /// touches an unmapped address is refused, as a Modbus server answers exception 02.
    pub fn read(&self, start: u16, count: u16) -> Result<heapless::Vec<u16, 125>, ImageError> {
        if count == 0 || count > MAX_READ_REGISTERS {
            return Err(ImageError::BadCount(count));
        }
        let mut out = heapless::Vec::new();
        for address in u32::from(start)..u32::from(start) + u32::from(count) {
            let address = u16::try_from(address).map_err(|_| ImageError::Unmapped(u16::MAX))?;
            let value = self
                .register(address)
                .ok_or(ImageError::Unmapped(address))?;
            out.push(value).map_err(|_| ImageError::BadCount(count))?;
        }
        Ok(out)
    }

    fn register(&self, address: u16) -> Option<u16> {
        match address {
            a if a < READINGS + READINGS_LEN as u16 => {
                self.readings.get(usize::from(a - READINGS)).copied()
            }
            a if (STATUS..STATUS + STATUS_LEN as u16).contains(&a) => {
                self.status.get(usize::from(a - STATUS)).copied()
            }
            _ => None,
        }
    }
}

/// A port's link block, laid out by the `sensor_node::LINK_*` offsets.
fn link_block(c: &LinkCounters) -> [u16; sensor_node::LINK_LEN as usize] {
    [
        c.frames_ok,
        c.crc_errors,
        c.framing_errors,
        c.exceptions,
        (c.bytes >> 16) as u16,
        c.bytes as u16,
    ]
}

fn encode_temperature(state: ProbeState) -> u16 {
    match state {
        ProbeState::Absent => NO_SENSOR_I16 as u16,
        ProbeState::Faulty => FAULT_I16 as u16,
        ProbeState::Reading(DeciCelsius(v)) => v as u16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_protocols::{
        DeviceId, PlanOptions, Quality, RawData, SENSOR_NODE, Sample, Signal, decode_samples,
        plan_reads,
    };
    use proptest::prelude::*;

    /// Reads the image the way the gateway does: plan, 04 requests, decode.
    fn gateway_view(image: &InputImage) -> Vec<Sample> {
        let device = DeviceId::new("node").unwrap();
        let plan = plan_reads::<4>(SENSOR_NODE.registers, &PlanOptions::default()).unwrap();
        let mut samples = Vec::new();
        for request in &plan {
            let words = image.read(request.start, request.count).unwrap();
            samples.extend(
                decode_samples(
                    &device,
                    SENSOR_NODE.registers,
                    request,
                    RawData::Words(&words),
                    0,
                )
                .map(Result::unwrap),
            );
        }
        samples
    }

    fn find(samples: &[Sample], signal: Signal, channel: u8) -> &Sample {
        samples
            .iter()
            .find(|s| s.signal == signal && s.channel == channel)
            .unwrap()
    }

    #[test]
    fn the_gateway_reads_what_the_node_serves() {
        let mut image = InputImage::new();
        image
            .set_probe(
                0,
                ProbeState::Reading(DeciCelsius::from_celsius(25.26).unwrap()),
            )
            .unwrap();
        image
            .set_probe(
                1,
                ProbeState::Reading(DeciCelsius::from_celsius(-7.0).unwrap()),
            )
            .unwrap();
        image.set_probe(2, ProbeState::Faulty).unwrap();
        image
            .set_probe(3, ProbeState::Reading(DeciCelsius(2500)))
            .unwrap(); // 250 °C: impossible
        image.set_off_gas_ppm(Some(180));
        image.set_room(ProbeState::Reading(DeciCelsius(231)), Some(455));
        image.set_contact(sensor_node::CONTACT_SMOKE, true).unwrap();
        image.set_status(&Status {
            alarm_state: 1 << sensor_node::ALARM_LATCHED,
            ..Status::default()
        });

        let s = gateway_view(&image);
        assert_eq!(find(&s, Signal::RackTemperature, 0).value, 25.3);
        assert_eq!(find(&s, Signal::RackTemperature, 0).quality, Quality::Good);
        assert_eq!(find(&s, Signal::RackTemperature, 1).value, -7.0);
        assert_eq!(
            find(&s, Signal::RackTemperature, 2).quality,
            Quality::SensorFault
        );
        assert_eq!(
            find(&s, Signal::RackTemperature, 3).quality,
            Quality::OutOfRange
        );
        assert_eq!(
            find(&s, Signal::RackTemperature, 4).quality,
            Quality::SensorFault,
            "absent probe"
        );
        assert_eq!(find(&s, Signal::OffGas, 0).value, 180.0);
        assert_eq!(find(&s, Signal::RoomTemperature, 0).value, 23.1);
        assert_eq!(find(&s, Signal::RoomHumidity, 0).value, 45.5);
        assert_eq!(find(&s, Signal::SmokeAlarm, 0).value, 1.0);
        assert_eq!(find(&s, Signal::UpsOnBattery, 0).value, 0.0);
        assert_eq!(find(&s, Signal::NodeAlarm, 0).value, 1.0);

        image.set_off_gas_ppm(None);
        assert_eq!(
            find(&gateway_view(&image), Signal::OffGas, 0).quality,
            Quality::SensorFault
        );
    }

    #[test]
    fn temperatures_round_and_refuse_what_the_register_cannot_carry() {
        assert_eq!(DeciCelsius::from_celsius(25.26), Ok(DeciCelsius(253)));
        assert_eq!(DeciCelsius::from_celsius(-0.04), Ok(DeciCelsius(0)));
        assert_eq!(
            DeciCelsius::from_celsius(-0.05),
            Ok(DeciCelsius(-2)),
            "0xFFFF is all ones"
        );
        assert_eq!(
            DeciCelsius::from_celsius(f32::NAN),
            Err(ImageError::NotRepresentable)
        );
        assert_eq!(
            DeciCelsius::from_celsius(5000.0),
            Err(ImageError::NotRepresentable)
        );
        assert_eq!(
            DeciCelsius::from_celsius(3276.7),
            Err(ImageError::NotRepresentable),
            "0x7FFF is 'no sensor'"
        );
    }

    #[test]
    fn status_block_and_unmapped_reads() {
        let mut image = InputImage::new();
        image.set_status(&Status {
            version: (1, 2, 3),
            uptime_s: 0x0001_0002,
            links: PortCounters {
                a: LinkCounters {
                    crc_errors: 9,
                    ..LinkCounters::NONE
                },
                b: LinkCounters {
                    frames_ok: 1,
                    crc_errors: 2,
                    framing_errors: 3,
                    exceptions: 4,
                    answered: 5,
                    bytes: 0x0006_0007,
                },
            },
            ..Status::default()
        });
        assert_eq!(
            image.read(100, 6).unwrap().as_slice(),
            &[0x0102, 3, 1, 2, 0, 9]
        );
        // Port A's block repeats its CRC count; port B's follows it, through 120.
        assert_eq!(
            image.read(sensor_node::PORT_A_LINK, 12).unwrap().as_slice(),
            &[0, 9, 0, 0, 0, 0, 1, 2, 3, 4, 6, 7]
        );
        assert_eq!(image.read(100, 21).unwrap().len(), 21);
        assert_eq!(image.read(120, 2), Err(ImageError::Unmapped(121)));
        assert_eq!(image.read(11, 2), Err(ImageError::Unmapped(12)));
        assert_eq!(image.read(0, 0), Err(ImageError::BadCount(0)));
        assert_eq!(image.read(0, 126), Err(ImageError::BadCount(126)));
        assert_eq!(
            image.set_probe(8, ProbeState::Absent),
            Err(ImageError::NoSuchChannel(8))
        );
    }

    proptest! {
        #[test]
        fn reads_never_panic(start in any::<u16>(), count in any::<u16>()) {
            if let Ok(words) = InputImage::new().read(start, count) {
                prop_assert_eq!(words.len(), usize::from(count));
            }
        }
    }
}
