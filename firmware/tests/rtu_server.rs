//! The node's Modbus RTU server against a model of its documented register map: every valid
//! request gets the registers or the exception the map calls for, arbitrary bytes never panic,
//! and `serve` works over an `embedded-io` UART.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

use std::collections::VecDeque;
use std::convert::Infallible;

use firebreak_firmware::detect::Limits;
use firebreak_firmware::modbus::{Clock, FrameTiming, RtuServer, serve};
use firebreak_firmware::{Node, ResetReason};
use firebreak_protocols::builtin::sensor_node as map;
use firebreak_protocols::rtu::{FunctionCode, Request, Response, decode_response, encode_request};
use proptest::prelude::*;

/// A relay that cannot fail.
#[derive(Debug, Default)]
struct Relay(bool);

impl embedded_hal::digital::ErrorType for Relay {
    type Error = Infallible;
}

impl embedded_hal::digital::OutputPin for Relay {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.0 = false;
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.0 = true;
        Ok(())
    }
}

const UNIT: u8 = 17;

fn node() -> Node<Relay> {
    Node::new(Relay::default(), ResetReason::PowerOn).unwrap()
}

fn input_mapped(a: u32) -> bool {
    a < 12 || (100..=120).contains(&a)
}

fn holding_mapped(a: u32) -> bool {
    (200..=203).contains(&a)
}

/// What the map says the answer to `request` must be, with the limits as they were.
fn expected(request: &Request, limits: &Limits) -> Result<Option<Vec<u16>>, u8> {
    let read = |start: u16, count: u16, mapped: fn(u32) -> bool| {
        if count == 0 || count > 125 {
            return Err(3);
        }
        let (s, c) = (u32::from(start), u32::from(count));
        if (s..s + c).all(mapped) {
            Ok(None)
        } else {
            Err(2)
        }
    };
    match *request {
        Request::ReadInputRegisters { start, count } => read(start, count, input_mapped),
        Request::ReadHoldingRegisters { start, count } => {
            read(start, count, holding_mapped)?;
            let all = [
                0,
                limits.rack_temperature,
                limits.rate_of_rise,
                limits.off_gas,
            ];
            let from = usize::from(start - 200);
            Ok(Some(all[from..from + usize::from(count)].to_vec()))
        }
        Request::WriteSingleRegister { address, value } => {
            let ok = match address {
                map::ALARM_RESET => value == map::ALARM_RESET_KEY,
                map::LIMIT_RACK_TEMPERATURE => Limits::RACK_TEMPERATURE.contains(&value),
                map::LIMIT_RATE_OF_RISE => Limits::RATE_OF_RISE.contains(&value),
                map::LIMIT_OFF_GAS => Limits::OFF_GAS.contains(&value),
                _ => return Err(2),
            };
            if ok { Ok(None) } else { Err(3) }
        }
        Request::Unsupported(_) => Err(1),
        Request::Malformed(_) => Err(3),
    }
}

/// Sends a frame, waits out the silence, returns the answer.
fn ask(
    server: &mut RtuServer,
    node: &mut Node<Relay>,
    t: &mut u64,
    frame: &[u8],
) -> Option<Vec<u8>> {
    for &b in frame {
        assert!(server.receive(*t, b, node).is_none());
        *t += 50;
    }
    *t += 2_500;
    let answer = server.poll(*t, node).map(<[u8]>::to_vec);
    *t += 1_000;
    answer
}

fn request_strategy() -> impl Strategy<Value = Request> {
    let address = prop_oneof![0u16..20, 95u16..125, 195u16..210, any::<u16>()];
    let count = prop_oneof![0u16..20, 120u16..130, any::<u16>()];
    prop_oneof![
        (address.clone(), count.clone())
            .prop_map(|(start, count)| Request::ReadInputRegisters { start, count }),
        (address.clone(), count)
            .prop_map(|(start, count)| Request::ReadHoldingRegisters { start, count }),
        (
            address,
            prop_oneof![Just(map::ALARM_RESET_KEY), 0u16..1000, any::<u16>()]
        )
            .prop_map(|(address, value)| Request::WriteSingleRegister { address, value }),
        any::<u8>()
            .prop_filter("served", |c| ![3, 4, 6].contains(c))
            .prop_map(Request::Unsupported),
    ]
}

proptest! {
    #[test]
    fn every_valid_request_gets_the_answer_the_map_calls_for(
        requests in proptest::collection::vec(request_strategy(), 1..40)
    ) {
        let mut server = RtuServer::new(UNIT, FrameTiming::for_baud(19_200));
        let mut node = node();
        let mut t = 0;
        for request in requests {
            let limits = node.limits();
            let frame = encode_request(UNIT, &request).unwrap();
            let answer = ask(&mut server, &mut node, &mut t, &frame).expect("an answer");
            let (unit, response) = decode_response(&answer).expect("a well-formed response");
            prop_assert_eq!(unit, UNIT);
            match (expected(&request, &limits), response) {
                (Err(code), Response::Exception { function, code: got }) => {
                    prop_assert_eq!(function, request.function() & 0x7F);
                    prop_assert_eq!(got, code, "{:?}", request);
                }
                (Ok(words), Response::Registers(function, got)) => {
                    let count = match request {
                        Request::ReadInputRegisters { count, .. } => {
                            prop_assert_eq!(function, FunctionCode::ReadInputRegisters);
                            count
                        }
                        Request::ReadHoldingRegisters { count, .. } => {
                            prop_assert_eq!(function, FunctionCode::ReadHoldingRegisters);
                            count
                        }
                        _ => panic!("registers for {request:?}"),
                    };
                    prop_assert_eq!(got.len(), usize::from(count));
                    if let Some(words) = words {
                        prop_assert_eq!(got.as_slice(), words.as_slice());
                    }
                }
                (Ok(None), Response::Written { address, value }) => {
                    prop_assert_eq!(
                        request,
                        Request::WriteSingleRegister { address, value }
                    );
                }
                (want, got) => prop_assert!(false, "{:?}: wanted {:?}, got {:?}", request, want, got),
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_get_a_malformed_answer(
        chunks in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..300), 0u64..5_000),
            1..10
        )
    ) {
        let mut server = RtuServer::new(UNIT, FrameTiming::for_baud(19_200));
        let mut node = node();
        let mut t = 0;
        for (bytes, pause) in chunks {
            for b in bytes {
                if let Some(answer) = server.receive(t, b, &mut node) {
                    prop_assert!(decode_response(answer).is_ok());
                }
                t += 50;
            }
            t += pause;
            if let Some(answer) = server.poll(t, &mut node) {
                prop_assert!(decode_response(answer).is_ok());
            }
        }
    }
}

/// A UART on a byte queue, for `serve`.
#[derive(Default)]
struct Loopback {
    rx: VecDeque<u8>,
    tx: Vec<u8>,
}

impl embedded_io::ErrorType for Loopback {
    type Error = Infallible;
}

impl embedded_io::Read for Loopback {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let n = buf.len().min(self.rx.len());
        for b in buf.iter_mut().take(n) {
            *b = self.rx.pop_front().unwrap();
        }
        Ok(n)
    }
}

impl embedded_io::ReadReady for Loopback {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(!self.rx.is_empty())
    }
}

impl embedded_io::Write for Loopback {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.tx.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

struct Manual(u64);

impl Clock for Manual {
    fn now_us(&mut self) -> u64 {
        self.0
    }
}

#[test]
fn serve_answers_over_an_embedded_io_uart() {
    let mut server = RtuServer::new(UNIT, FrameTiming::for_baud(19_200));
    let mut node = node();
    let mut uart = Loopback::default();
    let mut clock = Manual(1_000);
    let read = Request::ReadInputRegisters {
        start: map::FIRMWARE_VERSION,
        count: 9,
    };
    uart.rx.extend(encode_request(UNIT, &read).unwrap());
    serve(&mut server, &mut uart, &mut clock, &mut node).unwrap();
    assert!(uart.tx.is_empty(), "no answer before the silence");
    clock.0 += 2_006;
    serve(&mut server, &mut uart, &mut clock, &mut node).unwrap();
    let (_, response) = decode_response(&uart.tx).unwrap();
    let Response::Registers(_, words) = response else {
        panic!("{response:?}")
    };
    assert_eq!(words.len(), 9);
    assert_eq!(words[8], 0, "reset reason: power-on");
}
