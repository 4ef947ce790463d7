//! Modbus RTU frames, sans-IO: the CRC, requests and responses as bytes, for the sensor node's
//! server (and for tests and tools that play its master).
//!
//! An RTU frame is delimited by silence on the line (3.5 character times), not by its content,
//! so decoding here takes one *complete* frame, as the server's framer cut it, and says what is
//! wrong with it. Nothing panics on any input: proptests feed arbitrary bytes to every decoder.
//!
//! Only what the node serves is modelled: 03 Read Holding Registers, 04 Read Input Registers
//! and 06 Write Single Register. Any other function code decodes to
//! [`Request::Unsupported`], which a server answers with exception 01.
//!
//! Why not `modbus-core`: its 0.2.0 `rtu::server::decode_request` reaches `unreachable!()`
//! (a panic) after 256 bytes of line noise, and it treats a complete frame with an unsupported
//! function code as "need more bytes" instead of something to answer with exception 01.

use core::fmt;

use crate::plan::MAX_READ_REGISTERS;

/// The longest RTU frame: address, 253 bytes of PDU, CRC.
pub const MAX_FRAME: usize = 256;
/// The shortest RTU frame: address, function code, CRC.
pub const MIN_FRAME: usize = 4;
/// The unit address every server obeys (writes only) and never answers.
pub const BROADCAST: u8 = 0;

/// A frame's bytes, as a server receives or sends them.
pub type Frame = heapless::Vec<u8, MAX_FRAME>;

/// The Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF) of `data`. On the wire
/// it is sent low byte first: `crc16(d).to_le_bytes()`.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in data {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// The function codes the node serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FunctionCode {
    /// 03 (0x03) Read Holding Registers.
    ReadHoldingRegisters,
    /// 04 (0x04) Read Input Registers.
    ReadInputRegisters,
    /// 06 (0x06) Write Single Register.
    WriteSingleRegister,
}

impl FunctionCode {
    /// The code on the wire.
    pub const fn code(self) -> u8 {
        match self {
            Self::ReadHoldingRegisters => 0x03,
            Self::ReadInputRegisters => 0x04,
            Self::WriteSingleRegister => 0x06,
        }
    }

    /// The function code for a wire code, if the node serves it.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0x03 => Some(Self::ReadHoldingRegisters),
            0x04 => Some(Self::ReadInputRegisters),
            0x06 => Some(Self::WriteSingleRegister),
            _ => None,
        }
    }
}

/// Modbus exception codes a server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Exception {
    /// 01 Illegal Function: the function code is not served.
    IllegalFunction,
    /// 02 Illegal Data Address: an address in the request is not mapped (or not writable).
    IllegalDataAddress,
    /// 03 Illegal Data Value: a count or value is not allowed, or the request's length is
    /// wrong for its function.
    IllegalDataValue,
    /// 04 Server Device Failure: the server could not perform the request.
    ServerDeviceFailure,
}

impl Exception {
    /// The code on the wire.
    pub const fn code(self) -> u8 {
        match self {
            Self::IllegalFunction => 0x01,
            Self::IllegalDataAddress => 0x02,
            Self::IllegalDataValue => 0x03,
            Self::ServerDeviceFailure => 0x04,
        }
    }

    /// The exception for a wire code.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0x01 => Some(Self::IllegalFunction),
            0x02 => Some(Self::IllegalDataAddress),
            0x03 => Some(Self::IllegalDataValue),
            0x04 => Some(Self::ServerDeviceFailure),
            _ => None,
        }
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::IllegalFunction => "illegal function (01)",
            Self::IllegalDataAddress => "illegal data address (02)",
            Self::IllegalDataValue => "illegal data value (03)",
            Self::ServerDeviceFailure => "server device failure (04)",
        })
    }
}

/// What a master asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// 03: `count` holding registers from `start`.
    ReadHoldingRegisters {
        /// First address.
        start: u16,
        /// Number of registers.
        count: u16,
    },
    /// 04: `count` input registers from `start`.
    ReadInputRegisters {
        /// First address.
        start: u16,
        /// Number of registers.
        count: u16,
    },
    /// 06: write `value` to holding register `address`.
    WriteSingleRegister {
        /// The address.
        address: u16,
        /// The value.
        value: u16,
    },
    /// A served function code whose request has the wrong length: answered with 03.
    Malformed(FunctionCode),
    /// A function code the node does not serve: answered with 01.
    Unsupported(u8),
}

impl Request {
    /// The function code on the wire.
    pub const fn function(&self) -> u8 {
        match self {
            Self::ReadHoldingRegisters { .. } => 0x03,
            Self::ReadInputRegisters { .. } => 0x04,
            Self::WriteSingleRegister { .. } => 0x06,
            Self::Malformed(f) => f.code(),
            Self::Unsupported(code) => *code,
        }
    }
}

/// Why a frame was dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// Fewer than [`MIN_FRAME`] bytes.
    TooShort(usize),
    /// More than [`MAX_FRAME`] bytes.
    TooLong(usize),
    /// The CRC does not match the bytes.
    Crc {
        /// The CRC the bytes have.
        expected: u16,
        /// The CRC the frame carries.
        actual: u16,
    },
    /// A response that is not one (for masters): wrong length or byte count.
    BadResponse,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "frame of {n} bytes is shorter than {MIN_FRAME}"),
            Self::TooLong(n) => write!(f, "frame of {n} bytes is longer than {MAX_FRAME}"),
            Self::Crc { expected, actual } => {
                write!(f, "CRC 0x{actual:04X} should be 0x{expected:04X}")
            }
            Self::BadResponse => f.write_str("not a well-formed response"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FrameError {}

/// Checks a frame's length and CRC; the address and PDU without the CRC.
fn check(frame: &[u8]) -> Result<(u8, &[u8]), FrameError> {
    if frame.len() < MIN_FRAME {
        return Err(FrameError::TooShort(frame.len()));
    }
    if frame.len() > MAX_FRAME {
        return Err(FrameError::TooLong(frame.len()));
    }
    let (body, tail) = frame.split_at(frame.len() - 2);
    let actual = match tail {
        [lo, hi] => u16::from_le_bytes([*lo, *hi]),
        _ => return Err(FrameError::TooShort(frame.len())),
    };
    let expected = crc16(body);
    if expected != actual {
        return Err(FrameError::Crc { expected, actual });
    }
    match body.split_first() {
        Some((&unit, pdu)) => Ok((unit, pdu)),
        None => Err(FrameError::TooShort(frame.len())),
    }
}

fn word(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// Decodes one complete request frame: the unit it is addressed to and the request.
pub fn decode_request(frame: &[u8]) -> Result<(u8, Request), FrameError> {
    let (unit, pdu) = check(frame)?;
    let Some((&code, data)) = pdu.split_first() else {
        return Err(FrameError::TooShort(frame.len()));
    };
    let Some(function) = FunctionCode::from_code(code) else {
        return Ok((unit, Request::Unsupported(code)));
    };
    let (Some(a), Some(b), 4) = (word(data, 0), word(data, 2), data.len()) else {
        return Ok((unit, Request::Malformed(function)));
    };
    let request = match function {
        FunctionCode::ReadHoldingRegisters => Request::ReadHoldingRegisters { start: a, count: b },
        FunctionCode::ReadInputRegisters => Request::ReadInputRegisters { start: a, count: b },
        FunctionCode::WriteSingleRegister => Request::WriteSingleRegister {
            address: a,
            value: b,
        },
    };
    Ok((unit, request))
}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// More registers than a response carries (125).
    TooManyRegisters(usize),
    /// The request cannot be sent (a [`Request::Malformed`] one).
    NotEncodable,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyRegisters(n) => {
                write!(f, "{n} registers, a response carries {MAX_READ_REGISTERS}")
            }
            Self::NotEncodable => f.write_str("a malformed request cannot be encoded"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EncodeError {}

/// Appends the CRC. The frames built here are at most 255 bytes before it, so it fits.
fn seal(mut frame: Frame) -> Frame {
    let crc = crc16(&frame);
    // Every builder below stays under MAX_FRAME - 2 bytes, so these pushes cannot fail.
    let _ = frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

fn frame_of(parts: &[u8]) -> Frame {
    let mut frame = Frame::new();
    let _ = frame.extend_from_slice(parts);
    frame
}

/// A request frame, as a master sends it.
pub fn encode_request(unit: u8, request: &Request) -> Result<Frame, EncodeError> {
    let (a, b) = match *request {
        Request::ReadHoldingRegisters { start, count } => (start, count),
        Request::ReadInputRegisters { start, count } => (start, count),
        Request::WriteSingleRegister { address, value } => (address, value),
        Request::Unsupported(code) => return Ok(seal(frame_of(&[unit, code]))),
        Request::Malformed(_) => return Err(EncodeError::NotEncodable),
    };
    let [a0, a1] = a.to_be_bytes();
    let [b0, b1] = b.to_be_bytes();
    Ok(seal(frame_of(&[unit, request.function(), a0, a1, b0, b1])))
}

/// The answer to 03 or 04: the registers read.
pub fn encode_read_response(
    unit: u8,
    function: FunctionCode,
    words: &[u16],
) -> Result<Frame, EncodeError> {
    if words.len() > usize::from(MAX_READ_REGISTERS) {
        return Err(EncodeError::TooManyRegisters(words.len()));
    }
    // 125 registers: 250 bytes + address, code, byte count = 253, and 255 with the CRC.
    let mut frame = frame_of(&[unit, function.code(), (words.len() * 2) as u8]);
    for w in words {
        let _ = frame.extend_from_slice(&w.to_be_bytes());
    }
    Ok(seal(frame))
}

/// The answer to 06: the request echoed.
pub fn encode_write_response(unit: u8, address: u16, value: u16) -> Frame {
    let [a0, a1] = address.to_be_bytes();
    let [v0, v1] = value.to_be_bytes();
    seal(frame_of(&[unit, 0x06, a0, a1, v0, v1]))
}

/// An exception answer to function `function`.
pub fn encode_exception(unit: u8, function: u8, exception: Exception) -> Frame {
    seal(frame_of(&[unit, function | 0x80, exception.code()]))
}

/// A server's answer, as a master decodes it.
// No allocator to box the registers into; a response is built one at a time.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Registers read by 03 or 04.
    Registers(FunctionCode, heapless::Vec<u16, 125>),
    /// 06 echoed.
    Written {
        /// The address.
        address: u16,
        /// The value.
        value: u16,
    },
    /// An exception to function `function` (without the 0x80 bit).
    Exception {
        /// The function the exception answers.
        function: u8,
        /// The exception code, as sent.
        code: u8,
    },
}

/// Decodes one complete response frame: the unit that answered and what it said.
pub fn decode_response(frame: &[u8]) -> Result<(u8, Response), FrameError> {
    let (unit, pdu) = check(frame)?;
    let bad = FrameError::BadResponse;
    let response = match pdu {
        [code, exception] if code & 0x80 != 0 => Response::Exception {
            function: code & 0x7F,
            code: *exception,
        },
        [0x06, a0, a1, v0, v1] => Response::Written {
            address: u16::from_be_bytes([*a0, *a1]),
            value: u16::from_be_bytes([*v0, *v1]),
        },
        [code @ (0x03 | 0x04), count, data @ ..] => {
            let function = FunctionCode::from_code(*code).ok_or(bad)?;
            if usize::from(*count) != data.len() || data.len() % 2 != 0 {
                return Err(bad);
            }
            let mut words = heapless::Vec::new();
            for pair in data.chunks_exact(2) {
                let w = word(pair, 0).ok_or(bad)?;
                words.push(w).map_err(|_| bad)?;
            }
            Response::Registers(function, words)
        }
        _ => return Err(bad),
    };
    Ok((unit, response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc_of_the_spec_example() {
        // Modbus over serial line V1.02, 6.2.2: 02 07 -> CRC 0x1241, sent 41 12.
        assert_eq!(crc16(&[0x02, 0x07]), 0x1241);
        // Read 2 input registers of unit 1 from 0x082B (CRC checked with a separate
        // implementation).
        let frame = encode_request(
            0x01,
            &Request::ReadInputRegisters {
                start: 0x082B,
                count: 2,
            },
        )
        .unwrap();
        assert_eq!(
            frame.as_slice(),
            &[0x01, 0x04, 0x08, 0x2B, 0x00, 0x02, 0x03, 0xA3]
        );
    }

    #[test]
    fn decodes_served_requests() {
        // The classic example: unit 0x11 reads holding registers 0x6B..0x6D.
        let f = [0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87];
        assert_eq!(
            decode_request(&f),
            Ok((
                0x11,
                Request::ReadHoldingRegisters {
                    start: 0x6B,
                    count: 3
                }
            ))
        );
        let w = encode_request(
            7,
            &Request::WriteSingleRegister {
                address: 200,
                value: 0x5AA5,
            },
        )
        .unwrap();
        assert_eq!(
            decode_request(&w),
            Ok((
                7,
                Request::WriteSingleRegister {
                    address: 200,
                    value: 0x5AA5
                }
            ))
        );
    }

    #[test]
    fn unsupported_and_malformed_requests_are_answerable() {
        let f = seal(frame_of(&[1, 0x2B, 0x0E, 0x01, 0x00]));
        assert_eq!(decode_request(&f), Ok((1, Request::Unsupported(0x2B))));
        let short = seal(frame_of(&[1, 0x03, 0x00, 0x00, 0x01]));
        assert_eq!(
            decode_request(&short),
            Ok((1, Request::Malformed(FunctionCode::ReadHoldingRegisters)))
        );
        let e = encode_exception(1, 0x2B, Exception::IllegalFunction);
        assert_eq!(
            decode_response(&e),
            Ok((
                1,
                Response::Exception {
                    function: 0x2B,
                    code: 1
                }
            ))
        );
    }

    #[test]
    fn damaged_frames_are_errors() {
        let mut f = encode_request(1, &Request::ReadInputRegisters { start: 0, count: 1 })
            .unwrap()
            .to_vec();
        f[3] ^= 0x01;
        assert!(matches!(decode_request(&f), Err(FrameError::Crc { .. })));
        assert_eq!(decode_request(&[1, 3, 0]), Err(FrameError::TooShort(3)));
        assert_eq!(decode_request(&[0; 300]), Err(FrameError::TooLong(300)));
    }

    #[test]
    fn a_full_read_response_fits_a_frame() {
        let words = [0xABCDu16; 125];
        let f = encode_read_response(1, FunctionCode::ReadInputRegisters, &words).unwrap();
        assert_eq!(f.len(), 255);
        let (_, r) = decode_response(&f).unwrap();
        assert_eq!(
            r,
            Response::Registers(
                FunctionCode::ReadInputRegisters,
                heapless::Vec::from_slice(&words).unwrap()
            )
        );
        assert_eq!(
            encode_read_response(1, FunctionCode::ReadInputRegisters, &[0; 126]),
            Err(EncodeError::TooManyRegisters(126))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_request(&bytes);
            let _ = decode_response(&bytes);
        }

        #[test]
        fn sealed_arbitrary_pdus_decode_to_something(
            unit in any::<u8>(), pdu in proptest::collection::vec(any::<u8>(), 1..200)
        ) {
            let mut f = frame_of(&[unit]);
            f.extend_from_slice(&pdu).unwrap();
            let f = seal(f);
            let (u, _) = decode_request(&f).unwrap();
            prop_assert_eq!(u, unit);
        }

        #[test]
        fn requests_round_trip(unit in any::<u8>(), a in any::<u16>(), b in any::<u16>(), which in 0..3u8) {
            let request = match which {
                0 => Request::ReadHoldingRegisters { start: a, count: b },
                1 => Request::ReadInputRegisters { start: a, count: b },
                _ => Request::WriteSingleRegister { address: a, value: b },
            };
            let f = encode_request(unit, &request).unwrap();
            prop_assert_eq!(decode_request(&f), Ok((unit, request)));
        }
    }
}
