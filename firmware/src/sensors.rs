//! What the node reads each cycle, and the hardware it reads it from.
//!
//! [`Inputs`] is one cycle's raw readings; [`Sensors`] fills it from drivers and pins through
//! small traits ([`TemperatureProbe`], [`OffGasSensor`]) and `embedded-hal`'s [`InputPin`].
//! The node logic only ever sees [`Inputs`], so a board without sensors (the QEMU image, the
//! host simulator) feeds it from elsewhere (see [`crate::feed`]).

use embedded_hal::digital::InputPin;
use embedded_hal::i2c::I2c;

use crate::image::PROBES;
use crate::tmp117::{MilliCelsius, Tmp117};

/// One temperature sensor's outcome this cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProbeSample {
    /// No sensor fitted on this channel.
    #[default]
    Absent,
    /// The sensor did not answer, or answered nonsense at the bus level.
    BusError,
    /// A reading.
    Reading(MilliCelsius),
}

/// The off-gas sensor's outcome this cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GasSample {
    /// No sensor fitted.
    #[default]
    Absent,
    /// The sensor reports a fault, or could not be read.
    Fault,
    /// Parts per million above clean air.
    Ppm(u16),
}

/// One cycle's raw readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inputs {
    /// Rack probes 0..=7.
    pub probes: [ProbeSample; PROBES],
    /// The off-gas sensor.
    pub off_gas: GasSample,
    /// The room temperature sensor.
    pub room: ProbeSample,
    /// Room relative humidity in tenths of a percent, if a sensor is fitted and answers.
    pub humidity_tenths: Option<u16>,
    /// The smoke detector or fire panel contact is in alarm.
    pub smoke: bool,
    /// The UPS's "on battery" contact is closed.
    pub ups_on_battery: bool,
    /// The fire suppression "released" contact is closed.
    pub suppression: bool,
}

/// A temperature sensor.
pub trait TemperatureProbe {
    /// Reads the temperature; `None` for any failure (the node marks the probe faulty).
    fn read(&mut self) -> Option<MilliCelsius>;
}

impl<I2C: I2c> TemperatureProbe for Tmp117<I2C> {
    fn read(&mut self) -> Option<MilliCelsius> {
        // Any error (bus, wrong device, no conversion yet) makes no reading.
        self.temperature().ok()
    }
}

/// An off-gas (electrolyte vapour, H₂) sensor: an ADC channel, a 4–20 mA loop, or a serial
/// detector, depending on the product fitted.
pub trait OffGasSensor {
    /// Reads ppm above clean air; `None` when the sensor reports a fault or cannot be read.
    fn read_ppm(&mut self) -> Option<u16>;
}

/// A dry contact on an input pin with a pull-up: closed pulls the pin low.
#[derive(Debug)]
pub struct Contact<P> {
    pin: P,
    closed_is_low: bool,
}

impl<P: InputPin> Contact<P> {
    /// A contact whose closed state reads low (a pull-up and a contact to ground).
    pub fn closed_low(pin: P) -> Self {
        Contact {
            pin,
            closed_is_low: true,
        }
    }

    /// A contact whose closed state reads high.
    pub fn closed_high(pin: P) -> Self {
        Contact {
            pin,
            closed_is_low: false,
        }
    }

    /// Whether the contact is closed; a pin that cannot be read counts as closed, so a broken
    /// input is seen rather than hidden (the smoke input then raises the alarm: fail-safe).
    pub fn is_closed(&mut self) -> bool {
        match self.pin.is_low() {
            Ok(low) => low == self.closed_is_low,
            Err(_) => true,
        }
    }

    /// Gives the pin back.
    pub fn destroy(self) -> P {
        self.pin
    }
}

/// The node's sensors on real hardware.
#[derive(Debug)]
pub struct Sensors<P, G, S, U, X> {
    /// Rack probes; `None` where no probe is fitted.
    pub probes: [Option<P>; PROBES],
    /// The off-gas sensor, if fitted.
    pub off_gas: Option<G>,
    /// The room temperature sensor, if fitted.
    pub room: Option<P>,
    /// Smoke detector / fire panel contact.
    pub smoke: Contact<S>,
    /// UPS "on battery" contact.
    pub ups_on_battery: Contact<U>,
    /// Fire suppression "released" contact.
    pub suppression: Contact<X>,
}

fn sample<P: TemperatureProbe>(probe: &mut Option<P>) -> ProbeSample {
    match probe.as_mut().map(TemperatureProbe::read) {
        None => ProbeSample::Absent,
        Some(None) => ProbeSample::BusError,
        Some(Some(t)) => ProbeSample::Reading(t),
    }
}

impl<P, G, S, U, X> Sensors<P, G, S, U, X>
where
    P: TemperatureProbe,
    G: OffGasSensor,
    S: InputPin,
    U: InputPin,
    X: InputPin,
{
    /// Reads everything once.
    pub fn sample(&mut self) -> Inputs {
        let mut inputs = Inputs::default();
        for (slot, probe) in inputs.probes.iter_mut().zip(self.probes.iter_mut()) {
            *slot = sample(probe);
        }
        inputs.room = sample(&mut self.room);
        inputs.off_gas = match self.off_gas.as_mut().map(OffGasSensor::read_ppm) {
            None => GasSample::Absent,
            Some(None) => GasSample::Fault,
            Some(Some(ppm)) => GasSample::Ppm(ppm),
        };
        inputs.smoke = self.smoke.is_closed();
        inputs.ups_on_battery = self.ups_on_battery.is_closed();
        inputs.suppression = self.suppression.is_closed();
        inputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tmp117::Address;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::digital::{Mock as Pin, State, Transaction as PinT};
    use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2cT};

    struct Gas(Option<u16>);
    impl OffGasSensor for Gas {
        fn read_ppm(&mut self) -> Option<u16> {
            self.0
        }
    }

    #[test]
    fn samples_probes_gas_and_contacts_through_the_hal() {
        let p0 = I2cMock::new(&[I2cT::write_read(0x48, vec![0], vec![0x0C, 0x80])]);
        let p1 = I2cMock::new(&[
            I2cT::write_read(0x49, vec![0], vec![0, 0]).with_error(ErrorKind::Other)
        ]);
        let smoke = Pin::new(&[PinT::get(State::Low)]);
        let ups = Pin::new(&[PinT::get(State::High)]);
        let supp = Pin::new(&[PinT::get(State::Low)]);
        let mut sensors = Sensors {
            probes: [
                Some(Tmp117::new(p0, Address::Gnd)),
                Some(Tmp117::new(p1, Address::Vplus)),
                None,
                None,
                None,
                None,
                None,
                None,
            ],
            off_gas: Some(Gas(Some(12))),
            room: None,
            smoke: Contact::closed_low(smoke),
            ups_on_battery: Contact::closed_low(ups),
            suppression: Contact::closed_high(supp),
        };
        let inputs = sensors.sample();
        assert_eq!(inputs.probes[0], ProbeSample::Reading(MilliCelsius(25_000)));
        assert_eq!(inputs.probes[1], ProbeSample::BusError);
        assert_eq!(inputs.probes[2], ProbeSample::Absent);
        assert_eq!(inputs.room, ProbeSample::Absent);
        assert_eq!(inputs.off_gas, GasSample::Ppm(12));
        assert!(inputs.smoke);
        assert!(!inputs.ups_on_battery);
        assert!(!inputs.suppression);
        let Sensors {
            probes,
            smoke,
            ups_on_battery,
            suppression,
            ..
        } = sensors;
        for p in probes.into_iter().flatten() {
            p.destroy().done();
        }
        smoke.destroy().done();
        ups_on_battery.destroy().done();
        suppression.destroy().done();
    }
}
