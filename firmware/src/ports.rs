//! The node's two RTU ports: one RS-485 bus per gateway, A and B, answered from the same
//! registers.
//!
//! **Independence.** Each port is a [`RtuServer`] of its own — its own receive buffer, its own
//! frame timing (the silence that ends a frame is measured on that port's bytes only), its own
//! counters — so a frame on one port never touches the other's buffer or timing, and noise on
//! one bus is never glued to a request on the other. They share only the node's registers,
//! which a request reads or writes whole, between two bytes of the other port.
//!
//! **Scheduling.** A bus that never falls silent (line noise, a master that floods, a
//! floating line after a cut) must not starve the other. So the work is bounded per byte and
//! per call: a byte costs O(1) (a push, or a drop once the buffer is full), a frame is decoded
//! once, when it ends, and [`RtuPorts::serve`] reads at most
//! [`SERVE_BYTES_PER_CALL`](crate::modbus::SERVE_BYTES_PER_CALL) bytes of one port a call. A
//! board's main loop calls it once for each port every pass, so each port gets its turn every
//! pass whatever the other receives (a host board drains its queues by the same rule).
//!
//! **Counters.** Each port counts its own traffic ([`LinkCounters`]); before a request on
//! either port is answered the registers get **both** ports' counters
//! ([`Registers::port_counters`]), so a master on A reads B's errors as they are, even while B
//! never delivers a whole request.

use firebreak_protocols::rtu::Exception;

use crate::modbus::{Clock, LinkCounters, PortCounters, Registers, RtuServer, serve};

/// One of the node's RTU ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The first bus (the only one of a single-homed node): its counters are also the status
    /// block's registers 105/106.
    A,
    /// The second bus.
    B,
}

impl Port {
    /// Both ports, A first.
    pub const ALL: [Port; 2] = [Port::A, Port::B];

    /// `"a"` or `"b"`.
    pub fn name(self) -> &'static str {
        match self {
            Port::A => "a",
            Port::B => "b",
        }
    }
}

/// Two RTU servers, one per port, on the same unit address.
#[derive(Debug)]
pub struct RtuPorts {
    a: RtuServer,
    b: RtuServer,
}

/// The registers as one port's server sees them: everything passes through, and the line
/// counters it gives before answering go to the registers with the other port's.
struct Linked<'a, R> {
    regs: &'a mut R,
    port: Port,
    other: LinkCounters,
}

impl<R: Registers> Registers for Linked<'_, R> {
    fn read_input(&mut self, start: u16, out: &mut [u16]) -> Result<(), Exception> {
        self.regs.read_input(start, out)
    }

    fn read_holding(&mut self, start: u16, out: &mut [u16]) -> Result<(), Exception> {
        self.regs.read_holding(start, out)
    }

    fn write_holding(&mut self, address: u16, value: u16) -> Result<(), Exception> {
        self.regs.write_holding(address, value)
    }

    fn link_counters(&mut self, own: LinkCounters) {
        let counters = match self.port {
            Port::A => PortCounters {
                a: own,
                b: self.other,
            },
            Port::B => PortCounters {
                a: self.other,
                b: own,
            },
        };
        self.regs.port_counters(&counters);
    }
}

impl RtuPorts {
    /// Port A's server and port B's (`const`: a board keeps them in a static).
    pub const fn new(a: RtuServer, b: RtuServer) -> Self {
        RtuPorts { a, b }
    }

    /// One port's server.
    pub fn server(&self, port: Port) -> &RtuServer {
        match port {
            Port::A => &self.a,
            Port::B => &self.b,
        }
    }

    /// What each port counted since boot.
    pub fn counters(&self) -> PortCounters {
        PortCounters {
            a: self.a.counters(),
            b: self.b.counters(),
        }
    }

    /// The earliest time a frame open on either port ends if nothing more arrives (µs).
    pub fn deadline_us(&self) -> Option<u64> {
        match (self.a.deadline_us(), self.b.deadline_us()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `port`'s server, and the registers as it must see them.
    fn split<'s, 'r, R: Registers>(
        &'s mut self,
        port: Port,
        regs: &'r mut R,
    ) -> (&'s mut RtuServer, Linked<'r, R>) {
        let (server, other) = match port {
            Port::A => (&mut self.a, self.b.counters()),
            Port::B => (&mut self.b, self.a.counters()),
        };
        (server, Linked { regs, port, other })
    }

    /// A byte arrived on `port` at `now_us`: [`RtuServer::receive`] on that port alone.
    pub fn receive<R: Registers>(
        &mut self,
        port: Port,
        now_us: u64,
        byte: u8,
        regs: &mut R,
    ) -> Option<&[u8]> {
        let (server, mut linked) = self.split(port, regs);
        server.receive(now_us, byte, &mut linked)
    }

    /// The time is `now_us` on `port`: [`RtuServer::poll`] on that port alone.
    pub fn poll<R: Registers>(&mut self, port: Port, now_us: u64, regs: &mut R) -> Option<&[u8]> {
        let (server, mut linked) = self.split(port, regs);
        server.poll(now_us, &mut linked)
    }

    /// Serves `port` over its UART: [`serve`], at most
    /// [`SERVE_BYTES_PER_CALL`](crate::modbus::SERVE_BYTES_PER_CALL) bytes. Call it for each
    /// port on every pass of the main loop.
    pub fn serve<U, C, R>(
        &mut self,
        port: Port,
        uart: &mut U,
        clock: &mut C,
        regs: &mut R,
    ) -> Result<(), U::Error>
    where
        U: embedded_io::Read + embedded_io::ReadReady + embedded_io::Write,
        R: Registers,
        C: Clock,
    {
        let (server, mut linked) = self.split(port, regs);
        serve(server, uart, clock, &mut linked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::{FrameTiming, SERVE_BYTES_PER_CALL};
    use crate::{Node, ResetReason};
    use core::convert::Infallible;
    use firebreak_protocols::builtin::sensor_node as map;
    use firebreak_protocols::rtu::{Request, Response, decode_response, encode_request};
    use std::collections::VecDeque;

    /// A relay pin.
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

    /// A UART: bytes waiting to be read (or endless noise), bytes written, bytes read.
    #[derive(Default)]
    struct MockUart {
        rx: VecDeque<u8>,
        noise: bool,
        tx: Vec<u8>,
        read: usize,
    }

    impl embedded_io::ErrorType for MockUart {
        type Error = Infallible;
    }

    impl embedded_io::Read for MockUart {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
            let mut n = 0;
            for slot in buf.iter_mut() {
                let byte = if self.noise {
                    Some(0xA5 ^ self.read as u8)
                } else {
                    self.rx.pop_front()
                };
                let Some(b) = byte else { break };
                *slot = b;
                n += 1;
                self.read += 1;
            }
            Ok(n)
        }
    }

    impl embedded_io::ReadReady for MockUart {
        fn read_ready(&mut self) -> Result<bool, Infallible> {
            Ok(self.noise || !self.rx.is_empty())
        }
    }

    impl embedded_io::Write for MockUart {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
            self.tx.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> Result<(), Infallible> {
            Ok(())
        }
    }

    /// A clock that moves 50 µs each time it is read.
    struct Ticking(u64);

    impl Clock for Ticking {
        fn now_us(&mut self) -> u64 {
            self.0 += 50;
            self.0
        }
    }

    const GAP_US: u32 = 2_000;

    fn ports() -> RtuPorts {
        RtuPorts::new(
            RtuServer::new(1, FrameTiming::from_gap_us(GAP_US)),
            RtuServer::new(1, FrameTiming::from_gap_us(GAP_US)),
        )
    }

    fn node() -> Node<Relay> {
        Node::new(Relay::default(), ResetReason::PowerOn).unwrap()
    }

    fn read(start: u16, count: u16) -> Vec<u8> {
        encode_request(1, &Request::ReadInputRegisters { start, count })
            .unwrap()
            .to_vec()
    }

    fn words(answer: &[u8]) -> Vec<u16> {
        match decode_response(answer).unwrap().1 {
            Response::Registers(_, w) => w.to_vec(),
            other => panic!("{other:?}"),
        }
    }

    /// Sends `frame` on `port` at `t` (100 µs a byte), then the silence; the answer.
    fn ask(
        ports: &mut RtuPorts,
        node: &mut Node<Relay>,
        port: Port,
        t: &mut u64,
        frame: &[u8],
    ) -> Option<Vec<u8>> {
        for &b in frame {
            assert!(ports.receive(port, *t, b, node).is_none());
            *t += 100;
        }
        *t += u64::from(GAP_US);
        let answer = ports.poll(port, *t, node).map(<[u8]>::to_vec);
        *t += 1_000;
        answer
    }

    #[test]
    fn both_ports_answer_from_the_same_registers() {
        let mut ports = ports();
        let mut node = node();
        let mut t = 0;
        let w = encode_request(
            1,
            &Request::WriteSingleRegister {
                address: map::LIMIT_OFF_GAS,
                value: 80,
            },
        )
        .unwrap();
        assert!(ask(&mut ports, &mut node, Port::B, &mut t, &w).is_some());
        let h = encode_request(
            1,
            &Request::ReadHoldingRegisters {
                start: map::LIMIT_OFF_GAS,
                count: 1,
            },
        )
        .unwrap();
        let on_a = ask(&mut ports, &mut node, Port::A, &mut t, &h).unwrap();
        assert_eq!(words(&on_a), [80], "written on B, read on A");
        assert_eq!(ports.counters().a.answered, 1);
        assert_eq!(ports.counters().b.answered, 1);
    }

    #[test]
    fn a_frame_on_one_port_never_touches_the_other() {
        let mut ports = ports();
        let mut node = node();
        let request = read(0, 2);
        // The two ports' bytes interleaved, byte for byte, with different timing: each port
        // sees its own frame whole, and its own silence ends it.
        let garbage = [0x55u8; 8];
        let mut t = 0;
        for (&a, &g) in request.iter().zip(garbage.iter()) {
            assert!(ports.receive(Port::A, t, a, &mut node).is_none());
            assert!(ports.receive(Port::B, t + 30, g, &mut node).is_none());
            t += 100;
        }
        // B keeps talking; A's silence is A's alone.
        let mut answered = None;
        for i in 0..40u64 {
            let now = t + i * 100;
            assert!(ports.receive(Port::B, now, 0x55, &mut node).is_none());
            if let Some(a) = ports.poll(Port::A, now, &mut node) {
                answered = Some((now, a.to_vec()));
                break;
            }
        }
        let (when, answer) = answered.expect("A answered while B talked");
        assert!(
            when >= t - 100 + u64::from(GAP_US),
            "not before A's silence"
        );
        assert_eq!(words(&answer), [0x7FFF, 0x7FFF]);
        let c = ports.counters();
        assert_eq!(
            (c.a.frames_ok, c.a.crc_errors, c.a.framing_errors),
            (1, 0, 0)
        );
        assert_eq!(c.b.frames_ok, 0);
        // B's run of bytes ends in its own silence: one bad frame, on B only.
        assert!(ports.poll(Port::B, when + 10_000, &mut node).is_none());
        let c = ports.counters();
        assert_eq!(c.b.crc_errors + c.b.framing_errors, 1);
        assert_eq!(c.a.crc_errors + c.a.framing_errors, 0);
    }

    #[test]
    fn a_master_on_a_reads_both_ports_counters_as_they_are() {
        let mut ports = ports();
        let mut node = node();
        let mut t = 0;
        // B: a damaged frame, a short one, and endless noise that never ends its frame.
        let mut bad = read(0, 1);
        bad[2] ^= 1;
        assert!(ask(&mut ports, &mut node, Port::B, &mut t, &bad).is_none());
        assert!(ask(&mut ports, &mut node, Port::B, &mut t, &[1, 4]).is_none());
        assert!(ask(&mut ports, &mut node, Port::B, &mut t, &read(200, 1)).is_some());
        for i in 0..600u64 {
            assert!(ports.receive(Port::B, t + i, 0x55, &mut node).is_none());
        }
        // A, while B is still in its noise: B's block as counted now, A's clean.
        let status = ask(
            &mut ports,
            &mut node,
            Port::A,
            &mut t,
            &read(map::FIRMWARE_VERSION, 21),
        )
        .unwrap();
        let w = words(&status);
        let reg = |a: u16| w[usize::from(a - map::FIRMWARE_VERSION)];
        let (a, b) = (map::PORT_A_LINK, map::PORT_B_LINK);
        assert_eq!(reg(b + map::LINK_CRC_ERRORS), 1);
        assert_eq!(
            reg(b + map::LINK_FRAMING_ERRORS),
            2,
            "the short frame, and the overrun"
        );
        assert_eq!(reg(b + map::LINK_FRAMES_OK), 1);
        assert_eq!(
            reg(b + map::LINK_EXCEPTIONS),
            1,
            "200 is a holding register"
        );
        let b_bytes =
            u32::from(reg(b + map::LINK_BYTES)) << 16 | u32::from(reg(b + map::LINK_BYTES + 1));
        assert_eq!(b_bytes, 8 + 2 + 8 + 600);
        assert_eq!(reg(a + map::LINK_FRAMES_OK), 1, "this request");
        for off in [
            map::LINK_CRC_ERRORS,
            map::LINK_FRAMING_ERRORS,
            map::LINK_EXCEPTIONS,
        ] {
            assert_eq!(reg(a + off), 0);
        }
        assert_eq!(reg(map::CRC_ERRORS), 0, "105/106 are port A's");
        assert_eq!(reg(map::FRAMING_ERRORS), 0);
    }

    #[test]
    fn endless_noise_on_b_never_starves_a() {
        let mut ports = ports();
        let mut node = node();
        let mut uart_a = MockUart::default();
        let mut uart_b = MockUart {
            noise: true,
            ..MockUart::default()
        };
        let mut clock = Ticking(0);
        uart_a.rx.extend(read(0, 1));
        let mut passes = 0;
        // The board's main loop: each port once a pass.
        while uart_a.tx.is_empty() {
            passes += 1;
            assert!(passes < 1_000, "A was never answered");
            let before = uart_b.read;
            ports
                .serve(Port::A, &mut uart_a, &mut clock, &mut node)
                .unwrap();
            ports
                .serve(Port::B, &mut uart_b, &mut clock, &mut node)
                .unwrap();
            assert!(
                uart_b.read - before <= SERVE_BYTES_PER_CALL,
                "bounded work on B"
            );
        }
        assert_eq!(words(&uart_a.tx), [0x7FFF]);
        // A's silence is measured on A: it came within a few passes of its gap, however much
        // B had to say (at 50 µs a clock read, about 2 ms of passes).
        assert!(passes < 30, "{passes} passes");
        assert!(uart_b.read >= 5 * SERVE_BYTES_PER_CALL);
        let c = ports.counters();
        assert_eq!(
            (c.a.answered, c.a.crc_errors, c.a.framing_errors),
            (1, 0, 0)
        );
        assert!(c.b.framing_errors >= 1, "B's noise overran its buffer");
        assert!(uart_b.tx.is_empty(), "noise is never answered");
    }
}
