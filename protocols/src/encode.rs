//! Encoding: an engineering value into the raw register contents or bit a device serves for
//! it, the inverse of [`decode`](mod@crate::decode). The HIL simulators serve the built-in
//! profiles with it, so a simulated UPS and the gateway read one and the same table.
//!
//! raw = round((value − offset) / scale), in `f64`, then laid out by data type, word order and
//! byte order exactly as [`decode`](crate::decode()) reads them back. Values are `f32`, so a
//! 32-bit integer above 2²⁴ comes back to the nearest `f32`, as it does when decoded.

use core::fmt;

use crate::profile::{ByteOrder, DataType, RegisterDescriptor, WordOrder};

/// Why a value cannot be encoded for a descriptor.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The value is NaN or infinite.
    NotFinite {
        /// The value.
        value: f32,
    },
    /// After offset and scale the value does not fit the data type (300.0 °C in an `i16` of
    /// 0.1 °C fits; 4000.0 °C does not).
    DoesNotFit {
        /// The value.
        value: f32,
        /// The data type.
        data_type: DataType,
    },
    /// A bit or bool takes 0 or 1 (after offset and scale, rounded).
    NotABit {
        /// The value.
        value: f32,
    },
    /// Registers were given for a coil or discrete input, or the other way round.
    WrongKind {
        /// The address of the value.
        address: u16,
    },
    /// The register slice is shorter than the value.
    ShortBuffer {
        /// Registers the value needs.
        needed: u16,
        /// Registers given.
        got: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotFinite { value } => write!(f, "{value} is not a finite number"),
            Self::DoesNotFit { value, data_type } => {
                write!(f, "{value} does not fit data type {data_type:?}")
            }
            Self::NotABit { value } => write!(f, "{value} is not 0 or 1"),
            Self::WrongKind { address } => write!(
                f,
                "address {address}: registers given for a bit, or a bit for registers"
            ),
            Self::ShortBuffer { needed, got } => {
                write!(f, "the value needs {needed} registers, {got} were given")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EncodeError {}

/// Rounds half away from zero, saturating at the `i64` range (`f64::round` needs `std`).
fn round(x: f64) -> i64 {
    if x >= 0.0 {
        (x + 0.5) as i64
    } else {
        (x - 0.5) as i64
    }
}

/// The raw value `d` stores for `value`: what [`Reading::raw`](crate::Reading::raw) reads
/// back (for a [`DataType::Bit`], the bit alone: 0 or 1).
pub fn encode_raw(d: &RegisterDescriptor, value: f32) -> Result<u32, EncodeError> {
    if !value.is_finite() {
        return Err(EncodeError::NotFinite { value });
    }
    let does_not_fit = EncodeError::DoesNotFit {
        value,
        data_type: d.data_type,
    };
    let number = (f64::from(value) - d.offset) / d.scale;
    if !number.is_finite() {
        return Err(does_not_fit);
    }
    let fits = |min: i64, max: i64| {
        let n = round(number);
        (min..=max).contains(&n).then_some(n)
    };
    match d.data_type {
        DataType::U16 => fits(0, i64::from(u16::MAX))
            .map(|n| n as u32)
            .ok_or(does_not_fit),
        DataType::I16 => fits(i64::from(i16::MIN), i64::from(i16::MAX))
            .map(|n| u32::from(n as i16 as u16))
            .ok_or(does_not_fit),
        DataType::U32 => fits(0, i64::from(u32::MAX))
            .map(|n| n as u32)
            .ok_or(does_not_fit),
        DataType::I32 => fits(i64::from(i32::MIN), i64::from(i32::MAX))
            .map(|n| n as i32 as u32)
            .ok_or(does_not_fit),
        DataType::F32 => {
            let f = number as f32;
            if f.is_finite() {
                Ok(f.to_bits())
            } else {
                Err(does_not_fit)
            }
        }
        DataType::Bool | DataType::Bit(_) => fits(0, 1)
            .map(|n| n as u32)
            .ok_or(EncodeError::NotABit { value }),
    }
}

fn order_bytes(w: u16, order: ByteOrder) -> u16 {
    match order {
        ByteOrder::Big => w,
        ByteOrder::Swapped => w.swap_bytes(),
    }
}

/// Writes `value` into `words`, the registers of `d`'s table starting at `d.address`
/// (`words[0]` is the register at `d.address`). A [`DataType::Bit`] changes only its bit
/// of `words[0]`, so several bits of one register are encoded one after the other.
pub fn encode_words(
    d: &RegisterDescriptor,
    value: f32,
    words: &mut [u16],
) -> Result<(), EncodeError> {
    if d.table.is_bits() || d.data_type == DataType::Bool {
        return Err(EncodeError::WrongKind { address: d.address });
    }
    let short = EncodeError::ShortBuffer {
        needed: d.data_type.width(),
        got: words.len(),
    };
    let raw = encode_raw(d, value)?;
    match d.data_type {
        DataType::Bit(n) => {
            let first = words.first_mut().ok_or(short)?;
            let mask = 1u16 << (n & 15);
            let logical = order_bytes(*first, d.byte_order);
            let logical = if raw == 1 {
                logical | mask
            } else {
                logical & !mask
            };
            *first = order_bytes(logical, d.byte_order);
        }
        DataType::U16 | DataType::I16 => {
            *words.first_mut().ok_or(short)? = order_bytes(raw as u16, d.byte_order);
        }
        _ => {
            let (high, low) = ((raw >> 16) as u16, raw as u16);
            let (first, second) = match d.word_order {
                WordOrder::HighFirst => (high, low),
                WordOrder::LowFirst => (low, high),
            };
            let [a, b, ..] = words else {
                return Err(short);
            };
            *a = order_bytes(first, d.byte_order);
            *b = order_bytes(second, d.byte_order);
        }
    }
    Ok(())
}

/// The state of a coil or discrete input for `value` (0 or 1).
pub fn encode_bit(d: &RegisterDescriptor, value: f32) -> Result<bool, EncodeError> {
    if !d.table.is_bits() {
        return Err(EncodeError::WrongKind { address: d.address });
    }
    Ok(encode_raw(d, value)? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::{BUILTIN_PROFILES, GENERIC_PDU, GENERIC_UPS};
    use crate::decode::{RawData, decode, interpret};
    use crate::plan::ReadRequest;
    use crate::profile::Table;
    use crate::signal::{Quality, Signal};
    use proptest::prelude::*;
    use std::string::ToString;

    fn read_back(d: &RegisterDescriptor, words: &[u16]) -> f32 {
        let req = ReadRequest {
            table: d.table,
            start: d.address,
            count: d.data_type.width(),
        };
        decode(d, &req, RawData::Words(words)).unwrap().value
    }

    #[test]
    fn spec_vectors() {
        let ups = GENERIC_UPS.registers;
        // 25.3 °C in 0.1 °C steps is 253; -5.0 °C is 0xFFCE.
        assert_eq!(encode_raw(&ups[5], 25.3), Ok(253));
        assert_eq!(encode_raw(&ups[5], -5.0), Ok(0xFFCE));
        assert_eq!(encode_raw(&ups[6], 230.1), Ok(2301));
        let mut w = [0u16; 2];
        encode_words(&GENERIC_PDU.registers[2], 100_000.0, &mut w).unwrap();
        assert_eq!(w, [0x0001, 0x86A0]);
        let low_first = GENERIC_PDU.registers[2].order(WordOrder::LowFirst, ByteOrder::Swapped);
        encode_words(&low_first, 100_000.0, &mut w).unwrap();
        assert_eq!(w, [0xA086, 0x0100]);
    }

    #[test]
    fn bits_share_a_register() {
        let ups = GENERIC_UPS.registers;
        let mut w = [0u16];
        encode_words(&ups[0], 1.0, &mut w).unwrap();
        encode_words(&ups[1], 1.0, &mut w).unwrap();
        encode_words(&ups[2], 0.0, &mut w).unwrap();
        assert_eq!(w, [0b011]);
        encode_words(&ups[0], 0.0, &mut w).unwrap();
        assert_eq!(w, [0b010]);
        let swapped = ups[1].order(WordOrder::HighFirst, ByteOrder::Swapped);
        let mut s = [0u16];
        encode_words(&swapped, 1.0, &mut s).unwrap();
        assert_eq!(s, [0x0200]);
        assert_eq!(read_back(&swapped, &s), 1.0);
    }

    #[test]
    fn refusals_name_the_problem() {
        let ups = GENERIC_UPS.registers;
        assert_eq!(
            encode_raw(&ups[5], 4000.0),
            Err(EncodeError::DoesNotFit {
                value: 4000.0,
                data_type: DataType::I16
            })
        );
        assert_eq!(
            encode_raw(&ups[5], 4000.0).unwrap_err().to_string(),
            "4000 does not fit data type I16"
        );
        assert_eq!(
            encode_raw(&ups[3], -1.0),
            Err(EncodeError::DoesNotFit {
                value: -1.0,
                data_type: DataType::U16
            })
        );
        assert_eq!(
            encode_raw(&ups[0], 2.0),
            Err(EncodeError::NotABit { value: 2.0 })
        );
        assert!(matches!(
            encode_raw(&ups[3], f32::NAN),
            Err(EncodeError::NotFinite { .. })
        ));
        assert_eq!(
            encode_words(&GENERIC_PDU.registers[2], 1.0, &mut [0u16]),
            Err(EncodeError::ShortBuffer { needed: 2, got: 1 })
        );
        let coil = RegisterDescriptor::new(Signal::SmokeAlarm, Table::Coil, 3, DataType::Bool);
        assert_eq!(
            encode_words(&coil, 1.0, &mut [0u16]),
            Err(EncodeError::WrongKind { address: 3 })
        );
        assert_eq!(encode_bit(&coil, 1.0), Ok(true));
        assert_eq!(
            encode_bit(&ups[0], 1.0),
            Err(EncodeError::WrongKind { address: 0 })
        );
    }

    fn any_order() -> impl Strategy<Value = (WordOrder, ByteOrder)> {
        (
            prop_oneof![Just(WordOrder::HighFirst), Just(WordOrder::LowFirst)],
            prop_oneof![Just(ByteOrder::Big), Just(ByteOrder::Swapped)],
        )
    }

    fn any_word_type() -> impl Strategy<Value = DataType> {
        prop_oneof![
            Just(DataType::U16),
            Just(DataType::I16),
            Just(DataType::U32),
            Just(DataType::I32),
            Just(DataType::F32),
            (0u8..16).prop_map(DataType::Bit),
        ]
    }

    proptest! {
        /// Every raw value of a built-in descriptor that decodes to a finite number encodes
        /// back to the same raw value (32-bit values within the exact range of f32).
        #[test]
        fn builtin_raw_values_round_trip(raw in any::<u32>()) {
            for p in BUILTIN_PROFILES {
                for d in p.registers {
                    let raw = match d.data_type {
                        DataType::Bit(_) | DataType::Bool => raw & 1,
                        DataType::U16 | DataType::I16 => raw & 0xFFFF,
                        _ => raw & 0x00FF_FFFF,
                    };
                    let r = interpret(d, raw);
                    prop_assert!(r.value.is_finite());
                    // For a bit, `r.raw` is the bit alone.
                    prop_assert_eq!(encode_raw(d, r.value), Ok(r.raw), "{} {:?}", p.name, d);
                }
            }
        }

        /// A value encoded into registers reads back within half a step of the scale, in any
        /// word and byte order.
        #[test]
        fn values_round_trip_through_decode(
            data_type in any_word_type(),
            (word_order, byte_order) in any_order(),
            scale in prop_oneof![Just(1.0f64), Just(0.1), Just(0.01), Just(10.0), Just(-0.5)],
            offset in prop_oneof![Just(0.0f64), Just(-40.0), Just(273.15)],
            fraction in 0.0f64..1.0,
            filler in any::<u16>(),
        ) {
            let d = RegisterDescriptor::new(Signal::PduPower, Table::Input, 10, data_type)
                .scaled(scale, offset)
                .order(word_order, byte_order);
            // A value inside what the type can hold (f32 values: keep 32-bit integers exact).
            let (lo, hi) = match data_type {
                DataType::Bit(_) | DataType::Bool => (0.0, 1.0),
                DataType::U16 => (0.0, 65_535.0),
                DataType::I16 => (-32_768.0, 32_767.0),
                DataType::U32 => (0.0, 16_000_000.0),
                DataType::I32 | DataType::F32 => (-8_000_000.0, 8_000_000.0),
            };
            let raw_number = lo + (hi - lo) * fraction;
            let raw_number = if matches!(data_type, DataType::Bit(_)) { raw_number.round() } else { raw_number };
            let value = (raw_number * scale + offset) as f32;
            let mut words = [filler, filler];
            encode_words(&d, value, &mut words).unwrap();
            let back = read_back(&d, &words);
            let step = scale.abs() / 2.0 + f64::from(value.abs()) * 1e-6 + 1e-6;
            prop_assert!((f64::from(back) - f64::from(value)).abs() <= step,
                "{value} came back as {back} ({data_type:?} {word_order:?} {byte_order:?} x{scale} +{offset})");
            if let DataType::Bit(n) = data_type {
                // The other bits of the register are untouched.
                let logical = |w: u16| if byte_order == ByteOrder::Swapped { w.swap_bytes() } else { w };
                prop_assert_eq!(logical(words[0]) & !(1 << n), logical(filler) & !(1 << n));
            }
        }

        #[test]
        fn encoding_never_panics(value in any::<f32>(), data_type in any_word_type(), scale in any::<f64>()) {
            let d = RegisterDescriptor::new(Signal::PduPower, Table::Holding, 0, data_type).scaled(scale, 0.0);
            let mut words = [0u16; 2];
            if encode_words(&d, value, &mut words).is_ok() {
                let r = interpret(&d, encode_raw(&d, value).unwrap());
                prop_assert!(r.quality != Quality::Good || r.value.is_finite());
            }
        }
    }
}
