//! Decoding: raw registers and bits, as a read request returned them, into values with a
//! quality.
//!
//! Decoding sets `Good`, `SensorFault` (a sentinel or a NaN) and `OutOfRange`. `Stale` and
//! `CommLost` depend on time and on the link, which the reader (the gateway's signal table)
//! knows and decoding does not.

use core::fmt;

use crate::id::DeviceId;
use crate::plan::ReadRequest;
use crate::profile::{ByteOrder, DataType, RegisterDescriptor, WordOrder};
use crate::signal::{Quality, Sample};

/// What a read request returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawData<'a> {
    /// Registers, from a 03 or 04 response.
    Words(&'a [u16]),
    /// Bits, from a 01 or 02 response.
    Bits(&'a [bool]),
}

/// A decoded value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The raw value as read: one or two registers (after word and byte order), or a bit.
    pub raw: u32,
    /// The engineering value: raw × scale + offset, in the signal's unit.
    pub value: f32,
    /// `Good`, `SensorFault` or `OutOfRange`.
    pub quality: Quality,
}

/// Why a value could not be decoded from a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The response holds bits where words were expected, or the other way round.
    WrongKind {
        /// The address of the value.
        address: u16,
    },
    /// The request did not read the value (wrong table or addresses).
    NotInRequest {
        /// The address of the value.
        address: u16,
    },
    /// The response is shorter than the request.
    ShortResponse {
        /// Registers or bits requested.
        expected: u16,
        /// Registers or bits received.
        got: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::WrongKind { address } => write!(
                f,
                "address {address}: response holds bits where registers were expected, or the reverse"
            ),
            Self::NotInRequest { address } => {
                write!(f, "address {address} was not read by this request")
            }
            Self::ShortResponse { expected, got } => {
                write!(f, "response holds {got} values, {expected} were requested")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}

/// Decodes the value `d` describes from the response `data` to `request`.
pub fn decode(
    d: &RegisterDescriptor,
    request: &ReadRequest,
    data: RawData<'_>,
) -> Result<Reading, DecodeError> {
    if !request.covers(d) {
        return Err(DecodeError::NotInRequest { address: d.address });
    }
    let offset = usize::from(d.address - request.start);
    let raw = match data {
        RawData::Bits(bits) if d.table.is_bits() => {
            check_len(request, bits.len())?;
            u32::from(
                *bits
                    .get(offset)
                    .ok_or(DecodeError::NotInRequest { address: d.address })?,
            )
        }
        RawData::Words(words) if !d.table.is_bits() => {
            check_len(request, words.len())?;
            let word = |i: usize| -> Result<u32, DecodeError> {
                let w = *words
                    .get(offset + i)
                    .ok_or(DecodeError::NotInRequest { address: d.address })?;
                Ok(u32::from(match d.byte_order {
                    ByteOrder::Big => w,
                    ByteOrder::Swapped => w.swap_bytes(),
                }))
            };
            match d.data_type.width() {
                1 => word(0)?,
                _ => {
                    let (first, second) = (word(0)?, word(1)?);
                    match d.word_order {
                        WordOrder::HighFirst => first << 16 | second,
                        WordOrder::LowFirst => second << 16 | first,
                    }
                }
            }
        }
        _ => return Err(DecodeError::WrongKind { address: d.address }),
    };
    Ok(interpret(d, raw))
}

fn check_len(request: &ReadRequest, got: usize) -> Result<(), DecodeError> {
    if got < usize::from(request.count) {
        return Err(DecodeError::ShortResponse {
            expected: request.count,
            got,
        });
    }
    Ok(())
}

/// Turns a raw value into an engineering value and its quality.
pub fn interpret(d: &RegisterDescriptor, raw: u32) -> Reading {
    let number = match d.data_type {
        DataType::Bool | DataType::U16 | DataType::U32 => f64::from(raw),
        DataType::Bit(n) => f64::from((raw >> (n & 15)) & 1),
        DataType::I16 => f64::from(raw as u16 as i16),
        DataType::I32 => f64::from(raw as i32),
        DataType::F32 => f64::from(f32::from_bits(raw)),
    };
    // A bit's sentinels are whole-register values: a status word of 0xFFFF is no reading of
    // any of its bits (a UPS card that lost its UPS answers all ones).
    let sentinel = d.sentinels.contains(raw);
    let raw = match d.data_type {
        DataType::Bit(n) => (raw >> (n & 15)) & 1,
        _ => raw,
    };
    // Scale in f64, round once: 253 × 0.1 reads 25.3, not 25.300001.
    let value = (number * d.scale + d.offset) as f32;
    let quality = if sentinel || !value.is_finite() {
        Quality::SensorFault
    } else if !d.valid.contains(value) {
        Quality::OutOfRange
    } else {
        Quality::Good
    };
    Reading {
        raw,
        value,
        quality,
    }
}

/// Decodes every value of `registers` that `request` read, as samples of `device` taken at
/// `timestamp_ms`. Values the request did not read are skipped; a response too short or of
/// the wrong kind yields errors, one per value, never a sample.
pub fn decode_samples<'a>(
    device: &'a DeviceId,
    registers: &'a [RegisterDescriptor],
    request: &'a ReadRequest,
    data: RawData<'a>,
    timestamp_ms: u64,
) -> impl Iterator<Item = Result<Sample, DecodeError>> + 'a {
    registers
        .iter()
        .filter(move |d| request.covers(d))
        .map(move |d| {
            decode(d, request, data).map(|r| Sample {
                device: device.clone(),
                signal: d.signal,
                channel: d.channel,
                value: r.value,
                unit: d.signal.unit(),
                timestamp_ms,
                quality: r.quality,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::{GENERIC_PDU, GENERIC_UPS, SENSOR_NODE};
    use crate::plan::{PlanOptions, plan_reads};
    use crate::profile::Table;
    use crate::signal::Signal;
    use proptest::prelude::*;

    fn one(d: RegisterDescriptor, words: &[u16]) -> Reading {
        let req = ReadRequest {
            table: d.table,
            start: d.address,
            count: d.data_type.width(),
        };
        decode(&d, &req, RawData::Words(words)).unwrap()
    }

    #[test]
    fn sensor_node_registers_decode_with_quality() {
        let device = DeviceId::new("node-1").unwrap();
        let plan = plan_reads::<4>(SENSOR_NODE.registers, &PlanOptions::default()).unwrap();
        let first = plan[0];
        // 25.3 °C, 61.2 °C, no probe, broken probe, -5.0 °C, 250.0 °C (impossible), …
        let mut words = [0u16; 12];
        words[..6].copy_from_slice(&[253, 612, 0x7FFF, 0x8000, (-50i16) as u16, 2500]);
        words[8] = 12; // off-gas ppm
        words[11] = 0b101; // smoke + suppression
        let samples: heapless::Vec<Sample, 16> = decode_samples(
            &device,
            SENSOR_NODE.registers,
            &first,
            RawData::Words(&words),
            7,
        )
        .map(Result::unwrap)
        .collect();
        let get = |signal, channel| {
            samples
                .iter()
                .find(|s| s.signal == signal && s.channel == channel)
                .unwrap()
        };
        assert_eq!(get(Signal::RackTemperature, 0).value, 25.3);
        assert_eq!(get(Signal::RackTemperature, 0).quality, Quality::Good);
        assert_eq!(get(Signal::RackTemperature, 1).value, 61.2);
        assert_eq!(
            get(Signal::RackTemperature, 2).quality,
            Quality::SensorFault
        );
        assert_eq!(
            get(Signal::RackTemperature, 3).quality,
            Quality::SensorFault
        );
        assert_eq!(get(Signal::RackTemperature, 4).value, -5.0);
        assert_eq!(get(Signal::RackTemperature, 5).quality, Quality::OutOfRange);
        assert_eq!(get(Signal::OffGas, 0).value, 12.0);
        assert_eq!(get(Signal::SmokeAlarm, 0).value, 1.0);
        assert_eq!(get(Signal::UpsOnBattery, 0).value, 0.0);
        assert_eq!(get(Signal::SuppressionReleased, 0).value, 1.0);
        assert_eq!(get(Signal::OffGas, 0).unit, crate::Unit::Ppm);
        assert_eq!(get(Signal::OffGas, 0).timestamp_ms, 7);
        // The alarm word is read by the second request, not this one.
        assert!(samples.iter().all(|s| s.signal != Signal::NodeAlarm));
    }

    #[test]
    fn ups_bits_and_runtime() {
        let req = ReadRequest {
            table: Table::Holding,
            start: 0,
            count: 7,
        };
        let words = [0b011, 420, 87, 251, 2301, 2299, 64];
        let device = DeviceId::new("ups-a").unwrap();
        let s: heapless::Vec<Sample, 16> = decode_samples(
            &device,
            GENERIC_UPS.registers,
            &req,
            RawData::Words(&words),
            0,
        )
        .map(Result::unwrap)
        .collect();
        let v = |sig| s.iter().find(|x| x.signal == sig).unwrap().value;
        assert_eq!(v(Signal::UpsOnBattery), 1.0);
        assert_eq!(v(Signal::UpsLowBattery), 1.0);
        assert_eq!(v(Signal::UpsReplaceBattery), 0.0);
        assert_eq!(v(Signal::UpsRuntimeRemaining), 420.0);
        assert_eq!(v(Signal::UpsInputVoltage), 230.1);
    }

    #[test]
    fn thirty_two_bit_orders() {
        let base = GENERIC_PDU.registers[2]; // u32 power, high word first
        assert_eq!(one(base, &[0x0001, 0x86A0]).value, 100_000.0);
        let low_first = base.order(WordOrder::LowFirst, ByteOrder::Big);
        assert_eq!(one(low_first, &[0x86A0, 0x0001]).value, 100_000.0);
        let swapped = base.order(WordOrder::HighFirst, ByteOrder::Swapped);
        assert_eq!(one(swapped, &[0x0100, 0xA086]).value, 100_000.0);
        assert_eq!(one(base, &[0xFFFF, 0xFFFF]).quality, Quality::SensorFault);
        let f = RegisterDescriptor::new(Signal::PduPower, Table::Input, 0, DataType::F32);
        let bits = 1234.5f32.to_bits();
        assert_eq!(one(f, &[(bits >> 16) as u16, bits as u16]).value, 1234.5);
        let nan = f32::NAN.to_bits();
        assert_eq!(
            one(f, &[(nan >> 16) as u16, nan as u16]).quality,
            Quality::SensorFault
        );
        let i = RegisterDescriptor::new(Signal::PduPower, Table::Input, 0, DataType::I32);
        assert_eq!(one(i, &[0xFFFF, 0xFFFE]).value, -2.0);
    }

    #[test]
    fn bad_responses_are_errors() {
        let d = GENERIC_UPS.registers[3];
        let req = ReadRequest {
            table: Table::Holding,
            start: 0,
            count: 7,
        };
        assert_eq!(
            decode(&d, &req, RawData::Words(&[1, 2])),
            Err(DecodeError::ShortResponse {
                expected: 7,
                got: 2
            })
        );
        assert_eq!(
            decode(&d, &req, RawData::Bits(&[true; 7])),
            Err(DecodeError::WrongKind { address: 1 })
        );
        let other = ReadRequest {
            table: Table::Input,
            start: 0,
            count: 7,
        };
        assert_eq!(
            decode(&d, &other, RawData::Words(&[0; 7])),
            Err(DecodeError::NotInRequest { address: 1 })
        );
    }

    proptest! {
        #[test]
        fn arbitrary_responses_never_panic(
            words in proptest::collection::vec(any::<u16>(), 0..20),
            bits in proptest::collection::vec(any::<bool>(), 0..20),
            start in 0u16..20,
            count in 0u16..20,
            table in 0usize..4,
        ) {
            let req = ReadRequest { table: Table::ALL[table], start, count };
            let device = DeviceId::new("d").unwrap();
            for profile in crate::builtin::BUILTIN_PROFILES {
                for data in [RawData::Words(&words), RawData::Bits(&bits)] {
                    for s in decode_samples(&device, profile.registers, &req, data, 0).flatten() {
                        prop_assert!(s.quality != Quality::Good || s.value.is_finite());
                    }
                }
            }
        }

        #[test]
        fn good_values_are_in_range(raw in any::<u16>()) {
            for d in SENSOR_NODE.registers {
                let r = interpret(d, u32::from(raw));
                if r.quality == Quality::Good {
                    prop_assert!(d.valid.contains(r.value));
                }
            }
        }
    }
}
