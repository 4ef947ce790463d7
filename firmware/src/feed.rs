//! The sensor feed: a tiny line protocol through which a test rig plays the node's sensors on
//! boards that have none (the QEMU image's second UART, the host simulator's stdin).
//!
//! One command a line (ASCII, at most [`LINE_MAX`] bytes, `\n` or `\r\n`):
//!
//! | line | meaning |
//! |---|---|
//! | `t<N> <°C>` / `t<N> err` / `t<N> -` | rack probe N (0..=7): a reading, a bus error, absent |
//! | `room <°C>` / `room err` / `room -` | room temperature |
//! | `hum <%>` / `hum -` | room relative humidity |
//! | `gas <ppm>` / `gas err` / `gas -` | off-gas |
//! | `smoke 0\|1`, `ups 0\|1`, `supp 0\|1` | the contacts (1 closed) |
//! | `reset` | the local reset button |
//! | `status` | one `status …` line with relay, alarm, faults, uptime, counters, time, reset reason |
//! | `clock <ms>` | the fed clock: switches the node to fed time and runs the cycles due up to `<ms>` |
//! | `hang` | the main loop hangs: the watchdog resets the node |
//!
//! Every line is answered with `ok`, `err <why>` or the status line; the node also writes
//! `alarm at=<ms> state=0x<XXXX> faults=0x<XXXX>` when its alarm state changes and
//! `relay on` / `relay off` when the relay changes. Everything fed holds until changed.
//! [`crate::runner`] carries the lines out.

use core::fmt::{self, Write};

use crate::image::PROBES;
use crate::modbus::PortCounters;
use crate::sensors::{GasSample, Inputs, ProbeSample};
use crate::tmp117::MilliCelsius;

/// The longest line.
pub const LINE_MAX: usize = 64;

/// A parsed line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Command {
    /// Sets a rack probe.
    Probe(u8, ProbeSample),
    /// Sets the room temperature.
    Room(ProbeSample),
    /// Sets the humidity, tenths of a percent.
    Humidity(Option<u16>),
    /// Sets the off-gas sensor.
    OffGas(GasSample),
    /// Sets the smoke contact.
    Smoke(bool),
    /// Sets the UPS-on-battery contact.
    UpsOnBattery(bool),
    /// Sets the suppression contact.
    Suppression(bool),
    /// Presses the local reset button.
    Reset,
    /// Asks for the status line.
    Status,
    /// The fed clock, ms ([`crate::runner`]).
    Clock(u64),
    /// Hangs the main loop, so the watchdog resets the node.
    Hang,
}

/// Why a line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedError {
    /// Longer than [`LINE_MAX`].
    TooLong,
    /// Not one of the commands.
    UnknownCommand,
    /// The value is not what the command takes.
    BadValue,
    /// No such probe channel.
    NoSuchProbe,
    /// A `clock` line lower than the one before.
    ClockWentBack,
    /// A `clock` line more than [`crate::runner::MAX_CLOCK_STEP_MS`] after the one before.
    ClockJumpTooLarge,
}

impl fmt::Display for FeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLong => "line too long",
            Self::UnknownCommand => "unknown command",
            Self::BadValue => "bad value",
            Self::NoSuchProbe => "no such probe (t0..t7)",
            Self::ClockWentBack => "clock went back",
            Self::ClockJumpTooLarge => "clock jump too large",
        })
    }
}

/// A decimal number (`-12`, `72.5`, `0.125`) in thousandths, exactly: no float parsing, which
/// would cost the image several KiB of tables.
fn thousandths(v: &str) -> Result<i32, FeedError> {
    let (negative, digits) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || fraction.len() > 3 {
        return Err(FeedError::BadValue);
    }
    let mut value: i32 = 0;
    let padded = fraction.bytes().chain(core::iter::repeat(b'0')).take(3);
    for c in whole.bytes().chain(padded) {
        if !c.is_ascii_digit() {
            return Err(FeedError::BadValue);
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i32::from(c - b'0')))
            .ok_or(FeedError::BadValue)?;
    }
    Ok(if negative { -value } else { value })
}

fn temperature(v: &str) -> Result<ProbeSample, FeedError> {
    match v {
        "-" => Ok(ProbeSample::Absent),
        "err" => Ok(ProbeSample::BusError),
        _ => Ok(ProbeSample::Reading(MilliCelsius(thousandths(v)?))),
    }
}

fn contact(v: &str) -> Result<bool, FeedError> {
    match v {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(FeedError::BadValue),
    }
}

/// A non-negative integer: digits only (no sign, no point), within `u64`.
fn whole(v: &str) -> Result<u64, FeedError> {
    if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
        return Err(FeedError::BadValue);
    }
    v.parse().map_err(|_| FeedError::BadValue)
}

/// Parses one line (without its line ending).
pub fn parse(line: &str) -> Result<Command, FeedError> {
    let mut words = line.split_ascii_whitespace();
    let (Some(cmd), value, None) = (words.next(), words.next(), words.next()) else {
        return Err(FeedError::UnknownCommand);
    };
    let value = || value.ok_or(FeedError::BadValue);
    Ok(match cmd {
        "reset" => Command::Reset,
        "status" => Command::Status,
        "hang" => Command::Hang,
        "clock" => Command::Clock(whole(value()?)?),
        "room" => Command::Room(temperature(value()?)?),
        "hum" => Command::Humidity(match value()? {
            "-" => None,
            v => {
                let tenths = thousandths(v)? / 100;
                Some(u16::try_from(tenths).map_err(|_| FeedError::BadValue)?)
            }
        }),
        "gas" => Command::OffGas(match value()? {
            "-" => GasSample::Absent,
            "err" => GasSample::Fault,
            v => GasSample::Ppm(v.parse().map_err(|_| FeedError::BadValue)?),
        }),
        "smoke" => Command::Smoke(contact(value()?)?),
        "ups" => Command::UpsOnBattery(contact(value()?)?),
        "supp" => Command::Suppression(contact(value()?)?),
        probe if probe.starts_with('t') => {
            let channel: u8 = probe
                .get(1..)
                .and_then(|n| n.parse().ok())
                .filter(|&n| usize::from(n) < PROBES)
                .ok_or(FeedError::NoSuchProbe)?;
            Command::Probe(channel, temperature(value()?)?)
        }
        _ => return Err(FeedError::UnknownCommand),
    })
}

/// The sensors as fed so far.
#[derive(Debug, Clone, Default)]
pub struct Feed {
    inputs: Inputs,
}

impl Feed {
    /// Nothing fitted, every contact open.
    pub const fn new() -> Self {
        Feed {
            inputs: Inputs {
                probes: [ProbeSample::Absent; PROBES],
                off_gas: GasSample::Absent,
                room: ProbeSample::Absent,
                humidity_tenths: None,
                smoke: false,
                ups_on_battery: false,
                suppression: false,
            },
        }
    }

    /// This cycle's readings.
    pub fn inputs(&self) -> &Inputs {
        &self.inputs
    }

    /// Applies a sensor command; `false` for the commands that are not sensor values
    /// ([`Command::Reset`], [`Command::Status`], [`Command::Clock`], [`Command::Hang`]), which
    /// the [`crate::runner`] carries out.
    pub fn apply(&mut self, command: Command) -> bool {
        let i = &mut self.inputs;
        match command {
            Command::Probe(n, s) => {
                if let Some(slot) = i.probes.get_mut(usize::from(n)) {
                    *slot = s;
                }
            }
            Command::Room(s) => i.room = s,
            Command::Humidity(h) => i.humidity_tenths = h,
            Command::OffGas(g) => i.off_gas = g,
            Command::Smoke(c) => i.smoke = c,
            Command::UpsOnBattery(c) => i.ups_on_battery = c,
            Command::Suppression(c) => i.suppression = c,
            Command::Reset | Command::Status | Command::Clock(_) | Command::Hang => return false,
        }
        true
    }
}

/// Collects bytes into lines.
#[derive(Debug, Default)]
pub struct LineBuffer {
    line: heapless::Vec<u8, LINE_MAX>,
    overflow: bool,
}

impl LineBuffer {
    /// Empty.
    pub const fn new() -> Self {
        LineBuffer {
            line: heapless::Vec::new(),
            overflow: false,
        }
    }

    /// Adds a byte; at the end of a line, the line (or why it is refused) and the buffer
    /// starts over.
    pub fn push(&mut self, byte: u8) -> Option<Result<Command, FeedError>> {
        match byte {
            b'\r' => None,
            b'\n' => {
                let overflow = core::mem::take(&mut self.overflow);
                let line = core::mem::take(&mut self.line);
                if overflow {
                    return Some(Err(FeedError::TooLong));
                }
                let text = core::str::from_utf8(&line).map_err(|_| FeedError::BadValue);
                match text.map(str::trim) {
                    Ok("") => None,
                    Ok(t) => Some(parse(t)),
                    Err(e) => Some(Err(e)),
                }
            }
            _ => {
                if self.line.push(byte).is_err() {
                    self.overflow = true;
                }
                None
            }
        }
    }
}

/// What the status line shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusLine {
    /// The relay is latched.
    pub relay: bool,
    /// The alarm-state register.
    pub alarm_state: u16,
    /// The faults register.
    pub faults: u16,
    /// Seconds since boot.
    pub uptime_s: u32,
    /// The Modbus line counters of each RTU port.
    pub links: PortCounters,
}

impl fmt::Display for StatusLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "status relay={} alarm=0x{:04X} faults=0x{:04X} uptime={} crc={} framing={} answered={} \
             crc_b={} framing_b={} answered_b={}",
            u8::from(self.relay),
            self.alarm_state,
            self.faults,
            self.uptime_s,
            self.links.a.crc_errors,
            self.links.a.framing_errors,
            self.links.a.answered,
            self.links.b.crc_errors,
            self.links.b.framing_errors,
            self.links.b.answered
        )
    }
}

/// A reply or event line, formatted without allocating: room for the longest status line
/// (every counter at its maximum, a 20-digit time and a board's extra fields).
pub type Reply = heapless::String<256>;

/// The reply to a refused line.
pub fn error_reply(e: FeedError) -> Reply {
    let mut r = Reply::new();
    let _ = write!(r, "err {e}");
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_command() {
        assert_eq!(
            parse("t3 72.5"),
            Ok(Command::Probe(
                3,
                ProbeSample::Reading(MilliCelsius(72_500))
            ))
        );
        assert_eq!(
            parse("t0 err"),
            Ok(Command::Probe(0, ProbeSample::BusError))
        );
        assert_eq!(parse("t7 -"), Ok(Command::Probe(7, ProbeSample::Absent)));
        assert_eq!(parse("t8 20"), Err(FeedError::NoSuchProbe));
        assert_eq!(
            parse("room 23.1"),
            Ok(Command::Room(ProbeSample::Reading(MilliCelsius(23_100))))
        );
        assert_eq!(parse("hum 45.5"), Ok(Command::Humidity(Some(455))));
        assert_eq!(parse("gas 120"), Ok(Command::OffGas(GasSample::Ppm(120))));
        assert_eq!(parse("gas 70000"), Err(FeedError::BadValue));
        assert_eq!(parse("smoke 1"), Ok(Command::Smoke(true)));
        assert_eq!(parse("ups 0"), Ok(Command::UpsOnBattery(false)));
        assert_eq!(parse("supp 2"), Err(FeedError::BadValue));
        assert_eq!(parse("reset"), Ok(Command::Reset));
        assert_eq!(parse("status"), Ok(Command::Status));
        assert_eq!(parse("hang"), Ok(Command::Hang));
        assert_eq!(parse("clock 0"), Ok(Command::Clock(0)));
        assert_eq!(parse("clock 1234567"), Ok(Command::Clock(1_234_567)));
        for bad in [
            "clock",
            "clock -1",
            "clock +5",
            "clock 1.5",
            "clock 1e3",
            "clock x",
            "clock 99999999999999999999",
        ] {
            assert_eq!(parse(bad), Err(FeedError::BadValue), "{bad}");
        }
        assert_eq!(parse("t1 NaN"), Err(FeedError::BadValue));
        assert_eq!(
            parse("t1 -0.125"),
            Ok(Command::Probe(1, ProbeSample::Reading(MilliCelsius(-125))))
        );
        assert_eq!(parse("t1 1.2345"), Err(FeedError::BadValue));
        assert_eq!(parse("t1 99999999"), Err(FeedError::BadValue));
        assert_eq!(parse("t1 .5"), Err(FeedError::BadValue));
        assert_eq!(parse("hum -1"), Err(FeedError::BadValue));
        assert_eq!(parse("t1 1 2"), Err(FeedError::UnknownCommand));
        assert_eq!(parse("fire"), Err(FeedError::UnknownCommand));
    }

    #[test]
    fn lines_are_collected_and_bounded() {
        let mut b = LineBuffer::new();
        let mut out = Vec::new();
        for &c in b"smoke 1\r\n\n t0 21.5 \n" {
            out.extend(b.push(c));
        }
        assert_eq!(
            out,
            [
                Ok(Command::Smoke(true)),
                Ok(Command::Probe(
                    0,
                    ProbeSample::Reading(MilliCelsius(21_500))
                ))
            ]
        );
        for _ in 0..100 {
            assert_eq!(b.push(b'x'), None);
        }
        assert_eq!(b.push(b'\n'), Some(Err(FeedError::TooLong)));
        for &c in b"reset" {
            b.push(c);
        }
        assert_eq!(b.push(b'\n'), Some(Ok(Command::Reset)));
    }

    #[test]
    fn the_feed_holds_what_it_was_given() {
        let mut f = Feed::new();
        assert!(f.apply(Command::Probe(2, ProbeSample::BusError)));
        assert!(f.apply(Command::Smoke(true)));
        assert!(!f.apply(Command::Reset));
        assert_eq!(f.inputs().probes[2], ProbeSample::BusError);
        assert!(f.inputs().smoke);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut b = LineBuffer::new();
            for c in bytes {
                let _ = b.push(c);
            }
        }
    }
}
