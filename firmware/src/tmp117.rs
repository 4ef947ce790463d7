//! Driver for the Texas Instruments TMP117 digital temperature sensor (±0.1 °C, I2C), in the
//! shape of the `ads1x1x` driver: [`Tmp117::new`] takes the bus, [`Tmp117::destroy`] gives it
//! back, and errors are typed ([`Error`]).
//!
//! The TMP117 converts continuously after power-on (one conversion a second, averaging 8),
//! so reading the temperature is one register read. Until its first conversion completes,
//! its result register holds the reset value 0x8000 (−256 °C): that is [`Error::NotReady`],
//! never a temperature.
//!
//! Four address pins settings give four sensors a bus; eight rack probes take two buses, or one
//! bus behind a multiplexer, each probe holding its own `I2c` handle (`embedded-hal-bus`
//! shares a bus between drivers).

use core::fmt;

use embedded_hal::i2c::I2c;

/// Temperature result register.
const TEMP_RESULT: u8 = 0x00;
/// Configuration register.
const CONFIGURATION: u8 = 0x01;
/// Device ID register.
const DEVICE_ID: u8 = 0x0F;
/// Device ID bits 11:0 of every TMP117.
const DEVICE_ID_TMP117: u16 = 0x0117;
/// The temperature result's reset value: no conversion yet.
const NO_CONVERSION: i16 = i16::MIN;
/// Configuration bit 13: a conversion completed since the register was last read.
const DATA_READY: u16 = 1 << 13;

/// The I2C address, set by the ADD0 pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Address {
    /// ADD0 to ground: 0x48.
    #[default]
    Gnd,
    /// ADD0 to V+: 0x49.
    Vplus,
    /// ADD0 to SDA: 0x4A.
    Sda,
    /// ADD0 to SCL: 0x4B.
    Scl,
}

impl Address {
    /// The 7-bit address.
    pub const fn bits(self) -> u8 {
        match self {
            Self::Gnd => 0x48,
            Self::Vplus => 0x49,
            Self::Sda => 0x4A,
            Self::Scl => 0x4B,
        }
    }
}

/// A TMP117 error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The I2C bus failed (no acknowledge, arbitration lost, …).
    I2c(E),
    /// The device at the address is not a TMP117: its device id.
    WrongDevice(u16),
    /// No conversion has completed since power-on (the result register holds 0x8000).
    NotReady,
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::I2c(e) => write!(f, "I2C: {e:?}"),
            Self::WrongDevice(id) => write!(f, "device id 0x{id:04X} is not a TMP117"),
            Self::NotReady => f.write_str("no conversion yet"),
        }
    }
}

/// A temperature in thousandths of a degree Celsius.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MilliCelsius(pub i32);

impl MilliCelsius {
    /// From the result register: 7.8125 m°C per bit.
    pub const fn from_raw(raw: i16) -> MilliCelsius {
        MilliCelsius(raw as i32 * 125 / 16)
    }
}

/// A TMP117 on an I2C bus.
#[derive(Debug)]
pub struct Tmp117<I2C> {
    i2c: I2C,
    address: u8,
}

impl<I2C: I2c> Tmp117<I2C> {
    /// A driver for the sensor at `address`. Nothing is sent: call [`Tmp117::verify`] to
    /// check that a TMP117 answers.
    pub fn new(i2c: I2C, address: Address) -> Self {
        Tmp117 {
            i2c,
            address: address.bits(),
        }
    }

    /// Gives the bus back.
    pub fn destroy(self) -> I2C {
        self.i2c
    }

    fn read_register(&mut self, register: u8) -> Result<u16, Error<I2C::Error>> {
        let mut buf = [0u8; 2];
        self.i2c
            .write_read(self.address, &[register], &mut buf)
            .map_err(Error::I2c)?;
        Ok(u16::from_be_bytes(buf))
    }

    /// Checks that the device is a TMP117; its revision (bits 15:12 of the device id).
    pub fn verify(&mut self) -> Result<u8, Error<I2C::Error>> {
        let id = self.read_register(DEVICE_ID)?;
        if id & 0x0FFF != DEVICE_ID_TMP117 {
            return Err(Error::WrongDevice(id));
        }
        Ok((id >> 12) as u8)
    }

    /// Whether a conversion completed since the result was last read (reading the
    /// configuration register clears the flag).
    pub fn data_ready(&mut self) -> Result<bool, Error<I2C::Error>> {
        Ok(self.read_register(CONFIGURATION)? & DATA_READY != 0)
    }

    /// The latest temperature.
    pub fn temperature(&mut self) -> Result<MilliCelsius, Error<I2C::Error>> {
        let raw = self.read_register(TEMP_RESULT)? as i16;
        if raw == NO_CONVERSION {
            return Err(Error::NotReady);
        }
        Ok(MilliCelsius::from_raw(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

    #[test]
    fn reads_temperatures_with_the_datasheet_resolution() {
        let expectations = [
            Transaction::write_read(0x48, vec![0x0F], vec![0x01, 0x17]),
            // 0x0C80 = 3200 * 7.8125 m°C = 25 °C.
            Transaction::write_read(0x48, vec![0x00], vec![0x0C, 0x80]),
            // 0xFF80 = -128 * 7.8125 m°C = -1 °C.
            Transaction::write_read(0x48, vec![0x00], vec![0xFF, 0x80]),
            Transaction::write_read(0x48, vec![0x00], vec![0x00, 0x01]),
        ];
        let mut t = Tmp117::new(Mock::new(&expectations), Address::Gnd);
        assert_eq!(t.verify(), Ok(0));
        assert_eq!(t.temperature(), Ok(MilliCelsius(25_000)));
        assert_eq!(t.temperature(), Ok(MilliCelsius(-1_000)));
        assert_eq!(t.temperature(), Ok(MilliCelsius(7)));
        t.destroy().done();
    }

    #[test]
    fn reset_value_is_not_a_temperature() {
        let expectations = [
            Transaction::write_read(0x4A, vec![0x00], vec![0x80, 0x00]),
            Transaction::write_read(0x4A, vec![0x01], vec![0x22, 0x20]),
        ];
        let mut t = Tmp117::new(Mock::new(&expectations), Address::Sda);
        assert_eq!(t.temperature(), Err(Error::NotReady));
        assert_eq!(t.data_ready(), Ok(true));
        t.destroy().done();
    }

    #[test]
    fn bus_errors_and_wrong_devices_are_typed() {
        let expectations = [
            Transaction::write_read(0x49, vec![0x00], vec![0, 0]).with_error(ErrorKind::Other),
            Transaction::write_read(0x49, vec![0x0F], vec![0x01, 0x19]),
        ];
        let mut t = Tmp117::new(Mock::new(&expectations), Address::Vplus);
        assert_eq!(t.temperature(), Err(Error::I2c(ErrorKind::Other)));
        assert_eq!(t.verify(), Err(Error::WrongDevice(0x0119)));
        t.destroy().done();
    }
}
