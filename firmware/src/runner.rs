//! The node's main loop without its I/O: the sensor feed, the 100 ms cycle schedule, the fed
//! clock and the event lines, shared by every board (the QEMU image, the host simulator).
//!
//! A board keeps only its I/O: it hands the runner each byte of its feed line
//! ([`Runner::push`]), serves Modbus on the runner's [`Node`] ([`Runner::node_mut`]), calls
//! [`Runner::poll`] on every pass of its main loop, feeds its watchdog, and says through
//! [`Board`] where lines go. Everything is driven by the board's own clock, milliseconds since
//! boot (`own_ms`), passed in: the runner reads no clock.
//!
//! ## Node time: own or fed
//!
//! Until the first `clock <ms>` line, the node runs a cycle every [`CYCLE_MS`] of its own
//! clock, at `own_ms`. The first `clock` line switches it to **fed time** until it reboots:
//! from then on the own clock runs no cycle, and node time is `base + fed`, where `base` is
//! `own_ms` when that first line arrived (so node time never goes back) and `fed` the last
//! `clock` value. Each `clock <ms>` runs, in order, every cycle due on the fed clock's fixed
//! 100 ms grid — fed times that are multiples of 100, after the last cycle's, up to and
//! including `<ms>` — with the inputs as held, as `Node::update(base + t)`; the first `clock`
//! line runs one cycle at its own value. Then it answers `ok`. A `clock` lower than the last
//! is refused (`err clock went back`), so is a step over [`MAX_CLOCK_STEP_MS`]
//! (`err clock jump too large`); nothing runs then.
//!
//! Every rule of the node (rate-of-rise window, debounces, health) judges differences of node
//! time, and in fed time those are differences of fed time: the same feed lines give the same
//! decisions however fast they are sent — a scenario replayed at x60 latches at the same
//! scenario time as in real time. Modbus framing still uses the board's real clock.
//!
//! A `clock` line's cycles (up to 6000) run in the [`Runner::poll`]s that follow it,
//! [`CYCLES_PER_POLL`] at a time, so a board keeps serving Modbus and feeding its watchdog
//! however long a step or a burst of lines is; while [`Runner::busy`], it should not push more
//! bytes (a byte pushed anyway first finishes the step).
//!
//! ## Event lines
//!
//! Unprompted, besides the replies:
//!
//! - `alarm at=<ms> state=0x<XXXX> faults=0x<XXXX>` whenever the alarm-state register (bit 0
//!   latched, bits 1..=4 causes) changes after a cycle or a reset (the feed's `reset`, or a
//!   Modbus write, reported at the next poll). `<ms>` is the fed time of that cycle when fed,
//!   else the node's own ms since boot;
//! - `relay on` / `relay off` when the relay pin reads back changed, after the `alarm` line of
//!   the same change.
//!
//! The status line is `status relay= alarm= faults= uptime= crc= framing= answered= crc_b=
//! framing_b= answered_b=` (RTU port A's counters, then port B's), the board's own fields ([`Board::status_fields`]), then `at=<ms> reset=<code>`; `uptime` is node
//! time in seconds.

use core::fmt::Write as _;

use embedded_hal::digital::StatefulOutputPin;

use crate::feed::{Command, Feed, FeedError, LineBuffer, Reply, StatusLine, error_reply};
use crate::modbus::PortCounters;
use crate::node::{Node, ResetReason};
use crate::sensors::Inputs;

/// The node judges its sensors this often, on its own clock or on the fed clock's grid.
pub const CYCLE_MS: u64 = 100;
/// The largest step one `clock` line may make: 6000 cycles.
pub const MAX_CLOCK_STEP_MS: u64 = 600_000;
/// The most cycles of a `clock` step run in one [`Runner::poll`].
pub const CYCLES_PER_POLL: u32 = 25;

/// What the runner needs of the board.
pub trait Board {
    /// Writes one line, without its line ending, to the feed output.
    fn say(&mut self, line: &str);
    /// Each RTU port's line counters, for the status line.
    fn link_counters(&mut self) -> PortCounters;
    /// Appends the board's own status fields, each as ` name=value` (QEMU: `stack_peak=`).
    fn status_fields(&mut self, _status: &mut Reply) {}
}

/// What the board must do after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Action {
    /// Carry on.
    Continue,
    /// `hang` was answered: stop feeding the watchdog and serving, until it resets the node.
    Hang,
}

/// The node's time base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Time {
    /// The board's clock; the next cycle is due at `next_cycle_ms`.
    Own { next_cycle_ms: u64 },
    /// The fed clock: node time is `base_ms + fed_ms`; `last_cycle_ms` is the fed time of the
    /// last cycle run (`None`: the first `clock` line's cycle is still due).
    Fed {
        base_ms: u64,
        fed_ms: u64,
        last_cycle_ms: Option<u64>,
    },
}

/// The node with its feed, its cycle schedule, its clock and its event lines.
#[derive(Debug)]
pub struct Runner<R> {
    node: Node<R>,
    feed: Feed,
    lines: LineBuffer,
    time: Time,
    /// A `clock` line waits for its cycles before its `ok`.
    owe_ok: bool,
    /// What the event lines last said.
    alarm_was: u16,
    relay_was: bool,
    /// The node time of every cycle run, for the tests.
    #[cfg(test)]
    cycles: Vec<u64>,
}

impl<R: StatefulOutputPin> Runner<R> {
    /// A runner for a node not yet started (`const`: a board keeps it in a static). Call
    /// [`Runner::start`] first.
    pub const fn new(relay: R) -> Self {
        Runner {
            node: Node::unstarted(relay),
            feed: Feed::new(),
            lines: LineBuffer::new(),
            time: Time::Own { next_cycle_ms: 0 },
            owe_ok: false,
            alarm_was: 0,
            relay_was: false,
            #[cfg(test)]
            cycles: Vec::new(),
        }
    }

    /// Starts the node (relay off) with the reason it reset; own time, first cycle at once.
    pub fn start(&mut self, reset_reason: ResetReason) -> Result<(), R::Error> {
        self.node.start(reset_reason)?;
        self.alarm_was = self.node.alarm_state();
        self.relay_was = self.node.relay_is_set_high()?;
        Ok(())
    }

    /// The node.
    pub fn node(&self) -> &Node<R> {
        &self.node
    }

    /// The node, to serve Modbus with ([`crate::modbus::Registers`]).
    pub fn node_mut(&mut self) -> &mut Node<R> {
        &mut self.node
    }

    /// The inputs as fed.
    pub fn inputs(&self) -> &Inputs {
        self.feed.inputs()
    }

    /// Whether a `clock` line switched the node to fed time.
    pub fn is_fed(&self) -> bool {
        matches!(self.time, Time::Fed { .. })
    }

    /// Whether a `clock` line is still to be carried out (its cycles, its `ok`): call
    /// [`Runner::poll`] again at once, and push no more bytes until it is done.
    pub fn busy(&self) -> bool {
        self.owe_ok
    }

    /// When, on the own clock, the next cycle is due; `None` when fed (only `clock` lines
    /// run cycles then).
    pub fn next_cycle_ms(&self) -> Option<u64> {
        match self.time {
            Time::Own { next_cycle_ms } => Some(next_cycle_ms),
            Time::Fed { .. } => None,
        }
    }

    /// Node time: `own_ms` on the own clock, `base + fed` when fed.
    pub fn node_ms(&self, own_ms: u64) -> u64 {
        match self.time {
            Time::Own { .. } => own_ms,
            Time::Fed {
                base_ms, fed_ms, ..
            } => base_ms.saturating_add(fed_ms),
        }
    }

    /// The time events and the status line give: the fed clock when fed, else `own_ms`.
    pub fn at_ms(&self, own_ms: u64) -> u64 {
        match self.time {
            Time::Own { .. } => own_ms,
            Time::Fed { fed_ms, .. } => fed_ms,
        }
    }

    /// A byte of the feed arrived (at `own_ms` on the board's clock); a complete line is
    /// carried out and answered. [`Action::Hang`] after `hang`'s `ok`: push nothing more.
    pub fn push(&mut self, byte: u8, own_ms: u64, board: &mut impl Board) -> Action {
        // Lines are carried out in order: a step still running finishes first.
        if self.owe_ok {
            self.advance(u32::MAX, board);
        }
        match self.lines.push(byte) {
            None => Action::Continue,
            Some(Err(e)) => {
                board.say(&error_reply(e));
                Action::Continue
            }
            Some(Ok(command)) => self.execute(command, own_ms, board),
        }
    }

    /// A whole line (without its line ending), as [`Runner::push`] of its bytes and `\n`.
    pub fn push_line(&mut self, line: &str, own_ms: u64, board: &mut impl Board) -> Action {
        for &b in line.as_bytes().iter().chain(b"\n") {
            if self.push(b, own_ms, board) == Action::Hang {
                return Action::Hang;
            }
        }
        Action::Continue
    }

    /// One pass of the main loop at `own_ms`: on the own clock, the cycle if one is due; when
    /// fed, up to [`CYCLES_PER_POLL`] cycles of the last `clock` line; then the event lines
    /// for whatever changed (a Modbus reset among them).
    pub fn poll(&mut self, own_ms: u64, board: &mut impl Board) {
        match self.time {
            Time::Own { next_cycle_ms } if own_ms >= next_cycle_ms => {
                self.time = Time::Own {
                    next_cycle_ms: own_ms.saturating_add(CYCLE_MS),
                };
                self.cycle(own_ms, own_ms, board);
            }
            Time::Own { .. } => {}
            Time::Fed { .. } => self.advance(CYCLES_PER_POLL, board),
        }
        self.report(self.at_ms(own_ms), board);
    }

    fn execute(&mut self, command: Command, own_ms: u64, board: &mut impl Board) -> Action {
        match command {
            Command::Clock(ms) => match self.set_clock(ms, own_ms) {
                // The cycles run in the passes that follow: however many lines arrive at
                // once, a pass of the main loop never does more than CYCLES_PER_POLL.
                Ok(()) => self.owe_ok = true,
                Err(e) => board.say(&error_reply(e)),
            },
            Command::Reset => {
                let _ = self.node.local_reset();
                self.report(self.at_ms(own_ms), board);
                board.say("ok");
            }
            Command::Status => self.status(own_ms, board),
            Command::Hang => {
                board.say("ok");
                return Action::Hang;
            }
            command => {
                self.feed.apply(command);
                board.say("ok");
            }
        }
        Action::Continue
    }

    fn set_clock(&mut self, ms: u64, own_ms: u64) -> Result<(), FeedError> {
        match &mut self.time {
            Time::Own { .. } => {
                self.time = Time::Fed {
                    base_ms: own_ms,
                    fed_ms: ms,
                    last_cycle_ms: None,
                };
            }
            Time::Fed { fed_ms, .. } if ms < *fed_ms => return Err(FeedError::ClockWentBack),
            Time::Fed { fed_ms, .. } if ms - *fed_ms > MAX_CLOCK_STEP_MS => {
                return Err(FeedError::ClockJumpTooLarge);
            }
            Time::Fed { fed_ms, .. } => *fed_ms = ms,
        }
        Ok(())
    }

    /// The fed time of the next cycle due, if one is.
    fn next_fed_cycle(&self) -> Option<u64> {
        let Time::Fed {
            fed_ms,
            last_cycle_ms,
            ..
        } = self.time
        else {
            return None;
        };
        match last_cycle_ms {
            None => Some(fed_ms),
            Some(last) => (last / CYCLE_MS)
                .checked_add(1)
                .and_then(|n| n.checked_mul(CYCLE_MS))
                .filter(|&t| t <= fed_ms),
        }
    }

    /// Runs up to `budget` cycles due on the fed clock; the `ok` of the `clock` line once none
    /// is left.
    fn advance(&mut self, budget: u32, board: &mut impl Board) {
        for _ in 0..budget {
            let Some(t) = self.next_fed_cycle() else {
                break;
            };
            let Time::Fed {
                base_ms,
                last_cycle_ms,
                ..
            } = &mut self.time
            else {
                break;
            };
            *last_cycle_ms = Some(t);
            let now = base_ms.saturating_add(t);
            self.cycle(now, t, board);
        }
        if self.owe_ok && self.next_fed_cycle().is_none() {
            self.owe_ok = false;
            board.say("ok");
        }
    }

    /// One cycle at node time `now_ms`, reported at `at_ms`.
    fn cycle(&mut self, now_ms: u64, at_ms: u64, board: &mut impl Board) {
        #[cfg(test)]
        self.cycles.push(now_ms);
        // A relay that cannot be driven shows in its readback, reported below.
        let _ = self.node.update(now_ms, self.feed.inputs());
        self.report(at_ms, board);
    }

    /// The event lines for what changed since they last spoke.
    fn report(&mut self, at_ms: u64, board: &mut impl Board) {
        let state = self.node.alarm_state();
        if state != self.alarm_was {
            self.alarm_was = state;
            let mut line = Reply::new();
            let _ = write!(
                line,
                "alarm at={at_ms} state=0x{state:04X} faults=0x{:04X}",
                self.node.faults()
            );
            board.say(&line);
        }
        let relay = self.node.relay_is_set_high().unwrap_or(self.relay_was);
        if relay != self.relay_was {
            self.relay_was = relay;
            board.say(if relay { "relay on" } else { "relay off" });
        }
    }

    fn status(&mut self, own_ms: u64, board: &mut impl Board) {
        let status = StatusLine {
            relay: self.node.relay_is_set_high().unwrap_or(self.relay_was),
            alarm_state: self.node.alarm_state(),
            faults: self.node.faults(),
            uptime_s: u32::try_from(self.node_ms(own_ms) / 1000).unwrap_or(u32::MAX),
            links: board.link_counters(),
        };
        let mut line = Reply::new();
        let _ = write!(line, "{status}");
        board.status_fields(&mut line);
        let _ = write!(
            line,
            " at={} reset={}",
            self.at_ms(own_ms),
            self.node.reset_reason().code()
        );
        board.say(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::{LinkCounters, Registers};
    use crate::sensors::ProbeSample;
    use crate::tmp117::MilliCelsius;
    use core::convert::Infallible;
    use firebreak_protocols::builtin::sensor_node as map;
    use proptest::prelude::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// A relay pin that reads back what it was set to.
    #[derive(Debug, Clone, Default)]
    struct Relay(Rc<Cell<bool>>);

    impl embedded_hal::digital::ErrorType for Relay {
        type Error = Infallible;
    }

    impl embedded_hal::digital::OutputPin for Relay {
        fn set_low(&mut self) -> Result<(), Infallible> {
            self.0.set(false);
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Infallible> {
            self.0.set(true);
            Ok(())
        }
    }

    impl StatefulOutputPin for Relay {
        fn is_set_high(&mut self) -> Result<bool, Infallible> {
            Ok(self.0.get())
        }
        fn is_set_low(&mut self) -> Result<bool, Infallible> {
            Ok(!self.0.get())
        }
    }

    /// Collects what the node says.
    #[derive(Debug, Default)]
    struct Lines {
        said: Vec<String>,
        extra: Option<&'static str>,
    }

    impl Board for Lines {
        fn say(&mut self, line: &str) {
            self.said.push(line.to_string());
        }
        fn link_counters(&mut self) -> PortCounters {
            PortCounters {
                a: LinkCounters {
                    crc_errors: 1,
                    framing_errors: 2,
                    answered: 3,
                    ..LinkCounters::NONE
                },
                b: LinkCounters {
                    crc_errors: 4,
                    framing_errors: 5,
                    answered: 6,
                    ..LinkCounters::NONE
                },
            }
        }
        fn status_fields(&mut self, status: &mut Reply) {
            if let Some(extra) = self.extra {
                status.push_str(extra).unwrap();
            }
        }
    }

    impl Lines {
        fn take(&mut self) -> Vec<String> {
            std::mem::take(&mut self.said)
        }
    }

    fn runner(reason: ResetReason) -> Runner<Relay> {
        let mut r = Runner::new(Relay::default());
        r.start(reason).unwrap();
        r
    }

    /// Sends `line` at `own_ms`; what the node said.
    fn send(r: &mut Runner<Relay>, out: &mut Lines, own_ms: u64, line: &str) -> Vec<String> {
        assert_eq!(r.push_line(line, own_ms, out), Action::Continue);
        while r.busy() {
            r.poll(own_ms, out);
        }
        out.take()
    }

    fn cycles(r: &mut Runner<Relay>) -> Vec<u64> {
        std::mem::take(&mut r.cycles)
    }

    fn at(c: f32) -> ProbeSample {
        ProbeSample::Reading(MilliCelsius((c * 1000.0).round() as i32))
    }

    #[test]
    fn the_own_clock_runs_a_cycle_every_100_ms_and_events_carry_its_time() {
        let mut r = runner(ResetReason::PowerOn);
        let mut out = Lines::default();
        for ms in (0..=250).step_by(10) {
            r.poll(ms, &mut out);
        }
        assert_eq!(cycles(&mut r), [0, 100, 200]);
        assert_eq!(r.next_cycle_ms(), Some(300));
        assert_eq!(send(&mut r, &mut out, 260, "smoke 1"), ["ok"]);
        for ms in (300..=2_000).step_by(100) {
            r.poll(ms, &mut out);
        }
        // The contact closed at the 300 ms cycle and held 1 s.
        assert_eq!(
            out.take(),
            ["alarm at=1300 state=0x0011 faults=0x0000", "relay on"]
        );
        assert!(!r.is_fed());
        assert_eq!(r.node_ms(2_040), 2_040);
    }

    #[test]
    fn clock_lines_run_every_cycle_of_the_fed_grid_and_only_them() {
        let mut r = runner(ResetReason::PowerOn);
        let mut out = Lines::default();
        r.poll(0, &mut out);
        r.poll(100, &mut out);
        assert_eq!(cycles(&mut r), [0, 100]);
        // The first clock line: one cycle at its own value, node time = own time + fed.
        assert_eq!(send(&mut r, &mut out, 130, "clock 50"), ["ok"]);
        assert_eq!(cycles(&mut r), [130 + 50]);
        assert!(r.is_fed());
        assert_eq!(r.next_cycle_ms(), None);
        // The own clock runs nothing any more, however long it runs.
        for ms in (130..60_000).step_by(100) {
            r.poll(ms, &mut out);
        }
        assert_eq!(cycles(&mut r), [0u64; 0]);
        assert_eq!(send(&mut r, &mut out, 60_000, "clock 250"), ["ok"]);
        assert_eq!(cycles(&mut r), [230, 330]);
        assert_eq!(send(&mut r, &mut out, 60_001, "clock 250"), ["ok"]);
        assert_eq!(send(&mut r, &mut out, 60_002, "clock 299"), ["ok"]);
        assert_eq!(cycles(&mut r), [0u64; 0]);
        assert_eq!(send(&mut r, &mut out, 60_003, "clock 300"), ["ok"]);
        assert_eq!(send(&mut r, &mut out, 60_004, "clock 1000"), ["ok"]);
        assert_eq!(cycles(&mut r), [430, 530, 630, 730, 830, 930, 1030, 1130]);
        assert_eq!(r.node_ms(1), 130 + 1000);
        assert_eq!(r.at_ms(1), 1000);
    }

    #[test]
    fn a_clock_that_goes_back_or_jumps_too_far_is_refused_and_runs_nothing() {
        let mut r = runner(ResetReason::PowerOn);
        let mut out = Lines::default();
        // The first line may start the fed clock anywhere.
        assert_eq!(send(&mut r, &mut out, 0, "clock 5000000"), ["ok"]);
        assert_eq!(cycles(&mut r), [5_000_000]);
        assert_eq!(
            send(&mut r, &mut out, 0, "clock 4999999"),
            ["err clock went back"]
        );
        assert_eq!(
            send(&mut r, &mut out, 0, "clock 5600001"),
            ["err clock jump too large"]
        );
        assert_eq!(send(&mut r, &mut out, 0, "clock soon"), ["err bad value"]);
        assert_eq!(send(&mut r, &mut out, 0, "clock -5"), ["err bad value"]);
        assert_eq!(send(&mut r, &mut out, 0, "clock"), ["err bad value"]);
        assert_eq!(cycles(&mut r), [0u64; 0]);
        assert_eq!(r.at_ms(0), 5_000_000);
        // Exactly the largest step is taken: 6000 cycles.
        assert_eq!(send(&mut r, &mut out, 0, "clock 5600000"), ["ok"]);
        assert_eq!(cycles(&mut r).len(), 6_000);
        // The step is from the last value, not the first.
        assert_eq!(send(&mut r, &mut out, 0, "clock 6200000"), ["ok"]);
        assert_eq!(cycles(&mut r).len(), 6_000);
    }

    #[test]
    fn a_long_step_runs_in_slices_and_answers_once_done() {
        let mut r = runner(ResetReason::PowerOn);
        let mut out = Lines::default();
        assert_eq!(send(&mut r, &mut out, 0, "clock 0"), ["ok"]);
        cycles(&mut r);
        assert_eq!(r.push_line("clock 10000", 5, &mut out), Action::Continue);
        assert!(r.busy());
        assert_eq!(out.take(), [""; 0], "no ok before the cycles ran");
        assert_eq!(cycles(&mut r).len(), 0, "the pass that pushed runs nothing");
        r.poll(6, &mut out);
        assert_eq!(cycles(&mut r).len(), CYCLES_PER_POLL as usize);
        r.poll(6, &mut out);
        assert_eq!(cycles(&mut r).len(), CYCLES_PER_POLL as usize);
        // The next line waits for the step: it finishes first, then the line is answered.
        assert_eq!(r.push_line("smoke 1", 7, &mut out), Action::Continue);
        assert!(!r.busy());
        assert_eq!(out.take(), ["ok", "ok"]);
        assert_eq!(cycles(&mut r).len(), 100 - 2 * CYCLES_PER_POLL as usize);
    }

    #[test]
    fn status_gives_node_time_the_fed_time_and_the_reset_reason() {
        let mut r = runner(ResetReason::Watchdog);
        let mut out = Lines {
            extra: Some(" stack_peak=1234"),
            ..Lines::default()
        };
        assert_eq!(
            send(&mut r, &mut out, 4_321, "status"),
            [
                "status relay=0 alarm=0x0000 faults=0x0000 uptime=4 crc=1 framing=2 answered=3 \
              crc_b=4 framing_b=5 answered_b=6 stack_peak=1234 at=4321 reset=1"
            ]
        );
        assert_eq!(send(&mut r, &mut out, 7_000, "clock 120000"), ["ok"]);
        assert_eq!(
            send(&mut r, &mut out, 7_500, "status"),
            [
                "status relay=0 alarm=0x0000 faults=0x0000 uptime=127 crc=1 framing=2 answered=3 \
              crc_b=4 framing_b=5 answered_b=6 stack_peak=1234 at=120000 reset=1"
            ]
        );
    }

    #[test]
    fn alarm_lines_come_with_their_fed_time_before_the_relay_line() {
        let mut r = runner(ResetReason::PowerOn);
        let mut out = Lines::default();
        assert_eq!(send(&mut r, &mut out, 0, "clock 0"), ["ok"]);
        assert_eq!(send(&mut r, &mut out, 0, "t0 61.0"), ["ok"]);
        assert_eq!(send(&mut r, &mut out, 1, "t1 err"), ["ok"]);
        // Over the limit from the 100 ms cycle, held 3 s: latched at 3100.
        assert_eq!(
            send(&mut r, &mut out, 2, "clock 5000"),
            ["alarm at=3100 state=0x0003 faults=0x0002", "relay on", "ok"]
        );
        // Cooled: the cause clears 10 s later, the latch holds; the button then clears it.
        assert_eq!(send(&mut r, &mut out, 3, "t0 45.0"), ["ok"]);
        assert_eq!(send(&mut r, &mut out, 4, "reset"), ["ok"]);
        assert_eq!(
            send(&mut r, &mut out, 5, "clock 20000"),
            ["alarm at=15100 state=0x0001 faults=0x0002", "ok"]
        );
        assert_eq!(
            send(&mut r, &mut out, 6, "reset"),
            [
                "alarm at=20000 state=0x0000 faults=0x0002",
                "relay off",
                "ok"
            ]
        );
        // A Modbus reset is reported at the next pass, at the fed time.
        assert_eq!(send(&mut r, &mut out, 7, "smoke 1"), ["ok"]);
        assert_eq!(send(&mut r, &mut out, 8, "smoke 0"), ["ok"]);
        assert_eq!(send(&mut r, &mut out, 9, "smoke 1"), ["ok"]);
        assert_eq!(
            send(&mut r, &mut out, 10, "clock 21100"),
            [
                "alarm at=21100 state=0x0011 faults=0x0002",
                "relay on",
                "ok"
            ]
        );
        assert_eq!(send(&mut r, &mut out, 11, "smoke 0"), ["ok"]);
        assert_eq!(
            send(&mut r, &mut out, 12, "clock 40000"),
            ["alarm at=31200 state=0x0001 faults=0x0002", "ok"]
        );
        r.node_mut()
            .write_holding(map::ALARM_RESET, map::ALARM_RESET_KEY)
            .unwrap();
        r.poll(13, &mut out);
        assert_eq!(
            out.take(),
            ["alarm at=40000 state=0x0000 faults=0x0002", "relay off"]
        );
    }

    #[test]
    fn a_clock_line_with_nothing_due_is_answered_in_order() {
        let mut r = runner(ResetReason::PowerOn);
        let mut out = Lines::default();
        assert_eq!(send(&mut r, &mut out, 0, "clock 0"), ["ok"]);
        assert_eq!(cycles(&mut r), [0]);
        // No pass between the lines: the first `ok` still comes first.
        assert_eq!(r.push_line("clock 0", 1, &mut out), Action::Continue);
        assert_eq!(r.push_line("clock 50", 1, &mut out), Action::Continue);
        assert_eq!(r.push_line("status", 1, &mut out), Action::Continue);
        let said = out.take();
        assert_eq!(said[..2], ["ok", "ok"]);
        assert!(said[2].starts_with("status "), "{said:?}");
        assert_eq!(said.len(), 3);
        assert_eq!(cycles(&mut r), [0u64; 0]);
    }

    #[test]
    fn hang_is_answered_then_handed_to_the_board() {
        let mut r = runner(ResetReason::PowerOn);
        let mut out = Lines::default();
        assert_eq!(r.push_line("hang", 0, &mut out), Action::Hang);
        assert_eq!(out.take(), ["ok"]);
        assert_eq!(cycles(&mut r), [0u64; 0]);
    }

    /// A rack warming 3 °C/min, fed at 1 s steps from fed time 0: the lines, and the value
    /// each second holds.
    fn ramp(seconds: u64) -> (Vec<String>, Vec<f32>) {
        let mut lines = vec!["clock 0".to_string()];
        let mut values = Vec::new();
        for s in 0..seconds {
            let c = 25.0 + 0.05 * s as f32;
            values.push(c);
            lines.push(format!("t0 {c:.3}"));
            lines.push(format!("clock {}", (s + 1) * 1000));
        }
        (lines, values)
    }

    /// The same rack driven straight through `Node::update` at 100 ms steps: every change of
    /// the alarm state, with its time.
    fn direct(values: &[f32]) -> Vec<(u64, u16)> {
        let mut node = Node::new(Relay::default(), ResetReason::PowerOn).unwrap();
        let mut inputs = Inputs::default();
        let mut was = 0;
        let mut history = Vec::new();
        node.update(0, &inputs).unwrap();
        for t in (100..=values.len() as u64 * 1000).step_by(100) {
            // The value sent after `clock s*1000` holds for the cycles after it.
            inputs.probes[0] = at(values[((t - 1) / 1000) as usize]);
            node.update(t, &inputs).unwrap();
            if node.alarm_state() != was {
                was = node.alarm_state();
                history.push((t, was));
            }
        }
        history
    }

    /// The alarm lines as (at, state).
    fn alarms(said: &[String]) -> Vec<(u64, u16)> {
        said.iter()
            .filter_map(|l| {
                let rest = l.strip_prefix("alarm at=")?;
                let (at, rest) = rest.split_once(" state=0x")?;
                Some((
                    at.parse().unwrap(),
                    u16::from_str_radix(&rest[..4], 16).unwrap(),
                ))
            })
            .collect()
    }

    /// Feeds `lines`, the own clock advancing by `gaps` (cycled) between them.
    fn fed(lines: &[String], gaps: &[u64]) -> Vec<String> {
        let mut r = runner(ResetReason::PowerOn);
        let mut out = Lines::default();
        let mut own = 0;
        for (i, line) in lines.iter().enumerate() {
            let gap = gaps.get(i % gaps.len().max(1)).copied().unwrap_or(0);
            // The board's main loop keeps polling while real time passes.
            for ms in (own..own + gap).step_by(7) {
                r.poll(ms, &mut out);
            }
            own += gap;
            assert_eq!(r.push_line(line, own, &mut out), Action::Continue);
            while r.busy() {
                r.poll(own, &mut out);
            }
        }
        out.take()
    }

    #[test]
    fn fed_clock_decisions_match_real_time_ones_exactly() {
        let (lines, values) = ramp(60);
        let expected = direct(&values);
        // Rate of rise: a rate from 20 s of readings (the first at 100 ms), held 10 s.
        assert_eq!(expected, [(30_100, 0x0005)]);
        let said = fed(&lines, &[0]);
        assert_eq!(alarms(&said), expected);
        let relay = said.iter().position(|l| l == "relay on").unwrap();
        assert!(said[relay - 1].starts_with("alarm at=30100 "), "{said:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Whatever real time passes between the lines (before the first clock line and
        /// after), the alarm history is the same.
        #[test]
        fn real_time_between_lines_changes_nothing(
            gaps in proptest::collection::vec(0u64..3_000, 1..12)
        ) {
            let (lines, values) = ramp(45);
            prop_assert_eq!(alarms(&fed(&lines, &gaps)), direct(&values));
        }
    }
}
