//! The Modbus RTU server (slave): frames cut by silence on the line, checked with
//! [`firebreak_protocols::rtu`], answered from a [`Registers`] implementation.
//!
//! Sans-IO: [`RtuServer::receive`] takes each byte with the time it arrived and
//! [`RtuServer::poll`] the time now; both return the bytes to send, if any. [`serve`] drives it
//! over any `embedded-io` UART, a bounded amount of work per call. One server serves one bus;
//! a node on two buses has two, [`crate::ports::RtuPorts`].
//!
//! Framing follows *Modbus over serial line* V1.02 §2.5.1.1: a frame ends after 3.5 character
//! times of silence (11 bits a character; a fixed 1750 µs above 19200 baud). The 1.5-character
//! inter-byte limit is not enforced: USB adapters, PTYs and emulated UARTs do not keep it, and
//! the CRC catches what it would. Over an emulated line with no real baud rate (a PTY, QEMU's
//! UART) the binaries use a longer silence, see [`FrameTiming::from_gap_us`].

use firebreak_protocols::plan::MAX_READ_REGISTERS;
use firebreak_protocols::rtu::{
    self, BROADCAST, Exception, Frame, FrameError, FunctionCode, MAX_FRAME, Request,
};

/// The node's registers, as the server reads and writes them.
pub trait Registers {
    /// Fills `out` with the input registers from `start` (04).
    fn read_input(&mut self, start: u16, out: &mut [u16]) -> Result<(), Exception>;
    /// Fills `out` with the holding registers from `start` (03).
    fn read_holding(&mut self, start: u16, out: &mut [u16]) -> Result<(), Exception>;
    /// Writes one holding register (06).
    fn write_holding(&mut self, address: u16, value: u16) -> Result<(), Exception>;
    /// The line counters of a server on one bus (port A), before each request is answered
    /// (for the status block).
    fn link_counters(&mut self, _counters: LinkCounters) {}
    /// Every port's line counters, before a request on any of them is answered: what
    /// [`crate::ports::RtuPorts`] calls instead of [`Registers::link_counters`]. By default,
    /// port A's go to [`Registers::link_counters`].
    fn port_counters(&mut self, counters: &PortCounters) {
        self.link_counters(counters.a);
    }
}

/// What the server counted since boot; every counter saturates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkCounters {
    /// Frames received intact (good CRC, 4..=256 bytes) for this unit or broadcast.
    pub frames_ok: u16,
    /// Frames dropped for a bad CRC.
    pub crc_errors: u16,
    /// Frames dropped for bad framing: shorter than 4 bytes, or longer than 256 (counted
    /// when the receive buffer overruns, not when the frame ends).
    pub framing_errors: u16,
    /// Exception responses sent.
    pub exceptions: u16,
    /// Requests answered (responses and exceptions).
    pub answered: u16,
    /// Bytes received.
    pub bytes: u32,
}

impl LinkCounters {
    /// Nothing counted (`const`, for statics).
    pub const NONE: LinkCounters = LinkCounters {
        frames_ok: 0,
        crc_errors: 0,
        framing_errors: 0,
        exceptions: 0,
        answered: 0,
        bytes: 0,
    };
}

/// The line counters of both RTU ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortCounters {
    /// Port A's (the first bus).
    pub a: LinkCounters,
    /// Port B's (the second bus).
    pub b: LinkCounters,
}

impl PortCounters {
    /// Nothing counted on either port.
    pub const NONE: PortCounters = PortCounters {
        a: LinkCounters::NONE,
        b: LinkCounters::NONE,
    };
}

/// The silence that ends a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTiming {
    gap_us: u32,
}

impl FrameTiming {
    /// 3.5 character times at `baud` (11 bits a character), and 1750 µs above 19200 baud.
    pub const fn for_baud(baud: u32) -> FrameTiming {
        let gap_us = if baud == 0 || baud > 19_200 {
            1_750
        } else {
            // 3.5 * 11 bits = 38.5 bits, rounded up.
            38_500_000u32.div_ceil(baud)
        };
        FrameTiming { gap_us }
    }

    /// A given silence, for lines that carry no real baud rate (a PTY, an emulated UART),
    /// where bytes of one frame can arrive milliseconds apart.
    pub const fn from_gap_us(gap_us: u32) -> FrameTiming {
        FrameTiming { gap_us }
    }

    /// The silence in µs.
    pub const fn gap_us(self) -> u32 {
        self.gap_us
    }
}

/// The RTU server for one unit address.
#[derive(Debug)]
pub struct RtuServer {
    unit: u8,
    timing: FrameTiming,
    rx: Frame,
    rx_overflow: usize,
    last_byte_us: Option<u64>,
    tx: Frame,
    counters: LinkCounters,
}

impl RtuServer {
    /// A server answering as `unit` (1..=247).
    pub const fn new(unit: u8, timing: FrameTiming) -> Self {
        RtuServer {
            unit,
            timing,
            rx: Frame::new(),
            rx_overflow: 0,
            last_byte_us: None,
            tx: Frame::new(),
            counters: LinkCounters::NONE,
        }
    }

    /// The unit address.
    pub fn unit(&self) -> u8 {
        self.unit
    }

    /// What was counted since boot.
    pub fn counters(&self) -> LinkCounters {
        self.counters
    }

    /// When the frame being received ends if nothing more arrives (µs), if one is open.
    pub fn deadline_us(&self) -> Option<u64> {
        self.last_byte_us
            .map(|t| t.saturating_add(u64::from(self.timing.gap_us)))
    }

    /// A byte arrived at `now_us`. If it follows a silence that ended an open frame, that
    /// frame is answered first: the answer is returned.
    pub fn receive<R: Registers>(&mut self, now_us: u64, byte: u8, regs: &mut R) -> Option<&[u8]> {
        let answered = self.end_of_frame_before(now_us, regs);
        self.counters.bytes = self.counters.bytes.saturating_add(1);
        if self.rx.push(byte).is_err() {
            // Counted when the buffer overruns, so endless noise shows as it happens; the
            // rest of the frame is dropped until the silence that ends it.
            if self.rx_overflow == 0 {
                self.count_error(FrameError::TooLong(MAX_FRAME + 1));
            }
            self.rx_overflow = self.rx_overflow.saturating_add(1);
        }
        self.last_byte_us = Some(now_us);
        if answered { Some(&self.tx) } else { None }
    }

    /// The time is `now_us`: if the line has been silent long enough to end the open frame,
    /// the frame is answered: the answer is returned.
    pub fn poll<R: Registers>(&mut self, now_us: u64, regs: &mut R) -> Option<&[u8]> {
        if self.end_of_frame_before(now_us, regs) {
            Some(&self.tx)
        } else {
            None
        }
    }

    /// Closes the open frame if `now_us` is past its deadline; whether an answer is in `tx`.
    fn end_of_frame_before<R: Registers>(&mut self, now_us: u64, regs: &mut R) -> bool {
        match self.deadline_us() {
            Some(deadline) if now_us >= deadline => {}
            _ => return false,
        }
        self.last_byte_us = None;
        let overflow = core::mem::take(&mut self.rx_overflow);
        let frame = core::mem::take(&mut self.rx);
        if overflow > 0 {
            // Counted when it overran.
            return false;
        }
        self.answer(&frame, regs)
    }

    fn count_error(&mut self, e: FrameError) {
        let c = &mut self.counters;
        match e {
            FrameError::Crc { .. } => c.crc_errors = c.crc_errors.saturating_add(1),
            _ => c.framing_errors = c.framing_errors.saturating_add(1),
        }
    }

    /// Answers one complete frame into `tx`; whether there is an answer to send.
    fn answer<R: Registers>(&mut self, frame: &[u8], regs: &mut R) -> bool {
        let (unit, request) = match rtu::decode_request(frame) {
            Ok(r) => r,
            Err(e) => {
                self.count_error(e);
                return false;
            }
        };
        if unit != self.unit && unit != BROADCAST {
            return false;
        }
        self.counters.frames_ok = self.counters.frames_ok.saturating_add(1);
        regs.link_counters(self.counters);
        let me = self.unit;
        let reply = match request {
            Request::ReadInputRegisters { start, count } => {
                read(regs, me, FunctionCode::ReadInputRegisters, start, count)
            }
            Request::ReadHoldingRegisters { start, count } => {
                read(regs, me, FunctionCode::ReadHoldingRegisters, start, count)
            }
            Request::WriteSingleRegister { address, value } => regs
                .write_holding(address, value)
                .map(|()| rtu::encode_write_response(me, address, value)),
            Request::Malformed(_) => Err(Exception::IllegalDataValue),
            Request::Unsupported(_) => Err(Exception::IllegalFunction),
        };
        // Broadcasts are obeyed (writes) and never answered.
        if unit == BROADCAST {
            return false;
        }
        self.tx = match reply {
            Ok(frame) => frame,
            Err(e) => {
                self.counters.exceptions = self.counters.exceptions.saturating_add(1);
                rtu::encode_exception(me, request.function(), e)
            }
        };
        self.counters.answered = self.counters.answered.saturating_add(1);
        true
    }
}

fn read<R: Registers>(
    regs: &mut R,
    unit: u8,
    function: FunctionCode,
    start: u16,
    count: u16,
) -> Result<Frame, Exception> {
    // Modbus Application Protocol V1.1b3 §6.3/6.4: count first (03), then addresses (02).
    if count == 0 || count > MAX_READ_REGISTERS {
        return Err(Exception::IllegalDataValue);
    }
    if u32::from(start) + u32::from(count) > 0x1_0000 {
        return Err(Exception::IllegalDataAddress);
    }
    let mut words = [0u16; MAX_READ_REGISTERS as usize];
    let out = words
        .get_mut(..usize::from(count))
        .ok_or(Exception::IllegalDataValue)?;
    match function {
        FunctionCode::ReadInputRegisters => regs.read_input(start, out)?,
        _ => regs.read_holding(start, out)?,
    }
    rtu::encode_read_response(unit, function, out).map_err(|_| Exception::ServerDeviceFailure)
}

/// A clock in µs since boot, monotonic.
pub trait Clock {
    /// Now.
    fn now_us(&mut self) -> u64;
}

/// The most bytes [`serve`] reads in one call: a bus that never falls silent (noise, a
/// flooding master) costs its caller at most this much work a call, so a main loop serving
/// several buses, or other work, is never starved by one.
pub const SERVE_BYTES_PER_CALL: usize = 32;

/// Serves over an `embedded-io` UART: reads what is ready, at most [`SERVE_BYTES_PER_CALL`]
/// bytes, and answers complete frames. Call it often (at least every few hundred µs at 19200
/// baud); bytes left in the UART wait for the next call.
pub fn serve<U, R, C>(
    server: &mut RtuServer,
    uart: &mut U,
    clock: &mut C,
    regs: &mut R,
) -> Result<(), U::Error>
where
    U: embedded_io::Read + embedded_io::ReadReady + embedded_io::Write,
    R: Registers,
    C: Clock,
{
    let mut buf = [0u8; SERVE_BYTES_PER_CALL];
    if uart.read_ready()? {
        let n = uart.read(&mut buf)?;
        let now = clock.now_us();
        for &b in buf.get(..n).unwrap_or(&[]) {
            if let Some(answer) = server.receive(now, b, regs) {
                uart.write_all(answer)?;
                uart.flush()?;
            }
        }
    }
    let now = clock.now_us();
    if let Some(answer) = server.poll(now, regs) {
        uart.write_all(answer)?;
        uart.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_protocols::rtu::{Response, decode_response, encode_request};

    /// Input registers 0..=9 read their address; holding 5 is writable up to 100.
    #[derive(Default)]
    struct Ten {
        holding: u16,
        counters: LinkCounters,
    }

    impl Registers for Ten {
        fn read_input(&mut self, start: u16, out: &mut [u16]) -> Result<(), Exception> {
            for (i, w) in out.iter_mut().enumerate() {
                let a = usize::from(start) + i;
                if a > 9 {
                    return Err(Exception::IllegalDataAddress);
                }
                *w = a as u16;
            }
            Ok(())
        }
        fn read_holding(&mut self, start: u16, out: &mut [u16]) -> Result<(), Exception> {
            match (start, out) {
                (5, [w]) => {
                    *w = self.holding;
                    Ok(())
                }
                _ => Err(Exception::IllegalDataAddress),
            }
        }
        fn write_holding(&mut self, address: u16, value: u16) -> Result<(), Exception> {
            match (address, value) {
                (5, 0..=100) => {
                    self.holding = value;
                    Ok(())
                }
                (5, _) => Err(Exception::IllegalDataValue),
                _ => Err(Exception::IllegalDataAddress),
            }
        }
        fn link_counters(&mut self, c: LinkCounters) {
            self.counters = c;
        }
    }

    /// Sends `bytes` 100 µs apart from `t`, then waits for the silence; the answer.
    fn exchange(s: &mut RtuServer, regs: &mut Ten, t: &mut u64, bytes: &[u8]) -> Option<Vec<u8>> {
        for &b in bytes {
            assert!(s.receive(*t, b, regs).is_none());
            *t += 100;
        }
        assert!(s.poll(*t, regs).is_none(), "answered before the silence");
        *t += u64::from(s.timing.gap_us());
        let answer = s.poll(*t, regs).map(<[u8]>::to_vec);
        *t += 10_000;
        answer
    }

    #[test]
    fn timing_follows_the_spec() {
        assert_eq!(FrameTiming::for_baud(9600).gap_us(), 4011);
        assert_eq!(FrameTiming::for_baud(19_200).gap_us(), 2006);
        assert_eq!(FrameTiming::for_baud(115_200).gap_us(), 1750);
    }

    #[test]
    fn answers_reads_writes_and_exceptions() {
        let mut s = RtuServer::new(7, FrameTiming::for_baud(19_200));
        let mut regs = Ten::default();
        let mut t = 1_000;
        let req = |r: Request| encode_request(7, &r).unwrap().to_vec();
        let ask = |s: &mut RtuServer, regs: &mut Ten, t: &mut u64, r: Vec<u8>| {
            decode_response(&exchange(s, regs, t, &r).unwrap()).unwrap()
        };

        let (u, r) = ask(
            &mut s,
            &mut regs,
            &mut t,
            req(Request::ReadInputRegisters { start: 2, count: 3 }),
        );
        assert_eq!(u, 7);
        assert_eq!(
            r,
            Response::Registers(
                FunctionCode::ReadInputRegisters,
                heapless::Vec::from_slice(&[2, 3, 4]).unwrap()
            )
        );
        let w = Request::WriteSingleRegister {
            address: 5,
            value: 42,
        };
        assert_eq!(
            ask(&mut s, &mut regs, &mut t, req(w)).1,
            Response::Written {
                address: 5,
                value: 42
            }
        );
        assert_eq!(regs.holding, 42);
        let exception = |function, code| Response::Exception { function, code };
        let cases = [
            (
                Request::ReadInputRegisters { start: 8, count: 3 },
                exception(4, 2),
            ),
            (
                Request::ReadInputRegisters { start: 0, count: 0 },
                exception(4, 3),
            ),
            (
                Request::ReadInputRegisters {
                    start: 0,
                    count: 126,
                },
                exception(4, 3),
            ),
            (
                Request::ReadInputRegisters {
                    start: 0xFFFF,
                    count: 2,
                },
                exception(4, 2),
            ),
            (
                Request::ReadHoldingRegisters { start: 4, count: 1 },
                exception(3, 2),
            ),
            (
                Request::WriteSingleRegister {
                    address: 5,
                    value: 101,
                },
                exception(6, 3),
            ),
            (
                Request::WriteSingleRegister {
                    address: 6,
                    value: 1,
                },
                exception(6, 2),
            ),
            (Request::Unsupported(0x10), exception(0x10, 1)),
            (Request::Unsupported(0x2B), exception(0x2B, 1)),
        ];
        for (request, expected) in cases {
            assert_eq!(
                ask(&mut s, &mut regs, &mut t, req(request)).1,
                expected,
                "{request:?}"
            );
        }
        assert_eq!(s.counters().answered, 2 + 9);
    }

    #[test]
    fn other_units_and_broadcasts_get_no_answer() {
        let mut s = RtuServer::new(7, FrameTiming::for_baud(19_200));
        let mut regs = Ten::default();
        let mut t = 0;
        let read = Request::ReadInputRegisters { start: 0, count: 1 };
        assert!(
            exchange(
                &mut s,
                &mut regs,
                &mut t,
                &encode_request(8, &read).unwrap()
            )
            .is_none()
        );
        let w = Request::WriteSingleRegister {
            address: 5,
            value: 9,
        };
        assert!(exchange(&mut s, &mut regs, &mut t, &encode_request(0, &w).unwrap()).is_none());
        assert_eq!(regs.holding, 9, "a broadcast write is obeyed");
        assert_eq!(
            s.counters(),
            LinkCounters {
                frames_ok: 1,
                bytes: 16,
                ..LinkCounters::NONE
            },
            "the broadcast was received, nothing was answered"
        );
    }

    #[test]
    fn damaged_and_short_frames_are_counted_and_dropped() {
        let mut s = RtuServer::new(1, FrameTiming::for_baud(9600));
        let mut regs = Ten::default();
        let mut t = 0;
        let mut f = encode_request(1, &Request::ReadInputRegisters { start: 0, count: 1 })
            .unwrap()
            .to_vec();
        f[2] ^= 0x40;
        assert!(exchange(&mut s, &mut regs, &mut t, &f).is_none());
        assert!(exchange(&mut s, &mut regs, &mut t, &[1, 4]).is_none());
        assert!(exchange(&mut s, &mut regs, &mut t, &[0x55; 300]).is_none());
        assert_eq!(
            s.counters(),
            LinkCounters {
                crc_errors: 1,
                framing_errors: 2,
                bytes: 8 + 2 + 300,
                ..LinkCounters::NONE
            }
        );
        // The status block sees the counters as they were when a request came in.
        let good = encode_request(1, &Request::ReadInputRegisters { start: 0, count: 1 }).unwrap();
        assert!(exchange(&mut s, &mut regs, &mut t, &good).is_some());
        assert_eq!(regs.counters.crc_errors, 1);
        assert_eq!((s.counters().frames_ok, s.counters().answered), (1, 1));
    }

    #[test]
    fn endless_noise_is_counted_once_as_it_overruns() {
        let mut s = RtuServer::new(1, FrameTiming::for_baud(19_200));
        let mut regs = Ten::default();
        for i in 0..(MAX_FRAME as u64 + 1) {
            assert!(s.receive(i * 100, 0x55, &mut regs).is_none());
        }
        assert_eq!(s.counters().framing_errors, 1, "counted at the overrun");
        // The noise goes on, never a silence.
        for i in (MAX_FRAME as u64 + 1)..(MAX_FRAME as u64 + 1_001) {
            assert!(s.receive(i * 100, 0xAA, &mut regs).is_none());
        }
        assert!(s.poll(1_000_000, &mut regs).is_none());
        assert_eq!(s.counters().framing_errors, 1, "and not again at its end");
        assert_eq!(s.counters().bytes, MAX_FRAME as u32 + 1 + 1_000);
        // The next frame is whole again.
        let good = encode_request(1, &Request::ReadInputRegisters { start: 0, count: 1 }).unwrap();
        let mut t = 2_000_000;
        assert!(exchange(&mut s, &mut regs, &mut t, &good).is_some());
    }

    #[test]
    fn exceptions_and_frames_are_counted() {
        let mut s = RtuServer::new(7, FrameTiming::for_baud(19_200));
        let mut regs = Ten::default();
        let mut t = 0;
        let bad = Request::ReadInputRegisters { start: 9, count: 2 };
        let good = Request::ReadInputRegisters { start: 0, count: 2 };
        for r in [bad, good, bad] {
            assert!(exchange(&mut s, &mut regs, &mut t, &encode_request(7, &r).unwrap()).is_some());
        }
        let w = Request::WriteSingleRegister {
            address: 5,
            value: 1,
        };
        assert!(exchange(&mut s, &mut regs, &mut t, &encode_request(0, &w).unwrap()).is_none());
        let c = s.counters();
        assert_eq!(
            (c.frames_ok, c.answered, c.exceptions, c.crc_errors),
            (4, 3, 2, 0)
        );
        assert_eq!(c.bytes, 4 * 8);
    }

    #[test]
    fn a_pause_inside_a_frame_splits_it() {
        let mut s = RtuServer::new(1, FrameTiming::for_baud(19_200));
        let mut regs = Ten::default();
        let f = encode_request(1, &Request::ReadInputRegisters { start: 0, count: 1 }).unwrap();
        let (a, b) = f.split_at(3);
        let mut t = 0;
        assert!(exchange(&mut s, &mut regs, &mut t, a).is_none());
        assert!(exchange(&mut s, &mut regs, &mut t, b).is_none());
        assert_eq!(s.counters().framing_errors + s.counters().crc_errors, 2);
        // A request that follows a frame without a poll in between is still answered once
        // its own silence passes, and the one before it is closed by the new byte.
        let mut t = 1_000_000;
        for &byte in f.iter() {
            assert!(s.receive(t, byte, &mut regs).is_none());
            t += 100;
        }
        t += 5_000;
        let first = s.receive(t, f[0], &mut regs).map(<[u8]>::to_vec);
        assert!(first.is_some(), "the silence closed the first request");
    }
}
