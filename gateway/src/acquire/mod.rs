//! Acquisition: tasks that read devices and send what they read to the signal table.
//!
//! One task per Modbus TCP device, one per serial line (an RS-485 bus carries one request at
//! a time), one per MQTT source. Each sends [`Event`]s through a bounded channel to the task
//! that owns the [`table::SignalTable`]. The gateway never writes to a device.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use firebreak_protocols::{DeviceId, ReadRequest, Sample};

pub mod modbus;
pub mod mqtt;
pub mod nut;
pub mod reboot;
pub mod table;

/// How many events may wait for the table task before sources wait.
pub const EVENT_CHANNEL_CAPACITY: usize = 1024;

/// The wall clock: milliseconds since the Unix epoch, now. Only for what a person or another
/// machine reads as a date (`issued_at_ms`, displays); NTP may step it either way. Judging —
/// freshness, holds, debounces, rates — uses [`mono_ms`].
pub fn now_ms() -> u64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    wall.saturating_add_signed(WALL_OFFSET_MS.load(Ordering::Relaxed))
}

/// The monotonic clock the gateway judges by: the wall clock at the process's first reading of
/// it, advanced by a monotonic clock since, so its values read like dates but never step.
pub fn mono_ms() -> u64 {
    let (base, wall) = MONO_BASE.get_or_init(|| (Instant::now(), now_ms()));
    wall.saturating_add(u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX))
}

static MONO_BASE: OnceLock<(Instant, u64)> = OnceLock::new();

/// Test hook: an offset added to the wall clock, to step it as NTP would.
static WALL_OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Steps this process's wall clock by `delta_ms` (tests only: what an NTP step does to the
/// gateway, without root and without touching the machine's clock).
#[doc(hidden)]
pub fn step_wall_clock_for_tests(delta_ms: i64) {
    WALL_OFFSET_MS.fetch_add(delta_ms, Ordering::Relaxed);
}

/// Watches the wall clock against the monotonic one and reports steps.
#[derive(Debug, Default)]
pub struct WallClockWatch {
    offset: Option<i64>,
    /// Steps seen so far.
    pub steps: u64,
}

/// A wall clock that moved this far from the monotonic one at once has been stepped.
pub const WALL_STEP_MS: i64 = 2000;

impl WallClockWatch {
    /// Compares the two clocks now; returns the step, if the wall clock was stepped since the
    /// last call.
    pub fn check(&mut self, wall_ms: u64, mono_ms: u64) -> Option<i64> {
        let offset =
            i64::try_from(wall_ms).unwrap_or(i64::MAX) - i64::try_from(mono_ms).unwrap_or(i64::MAX);
        let step = self
            .offset
            .map(|o| offset - o)
            .filter(|d| d.abs() >= WALL_STEP_MS);
        if step.is_some() || self.offset.is_none() {
            self.offset = Some(offset);
        }
        if step.is_some() {
            self.steps += 1;
        }
        step
    }
}

/// What a source reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// One poll of a Modbus device, successful or not.
    Poll(PollReport),
    /// Samples from an MQTT source.
    Mqtt {
        /// The source's device id.
        device: DeviceId,
        /// The topic they came on.
        topic: String,
        /// The samples mapped from the payload.
        samples: Vec<Sample>,
    },
    /// An MQTT payload that could not be used.
    MqttMalformed {
        /// The source's device id.
        device: DeviceId,
        /// The topic.
        topic: String,
        /// Why.
        problem: String,
    },
    /// An MQTT source's broker connection went up or down.
    MqttLink {
        /// The source's device id.
        device: DeviceId,
        /// Whether it is connected.
        up: bool,
        /// Why it is down: refused credentials, an untrusted certificate, unreadable
        /// settings (never a secret).
        error: Option<String>,
    },
}

/// The outcome of one poll of one device: every request of its read plan.
#[derive(Debug, Clone)]
pub struct PollReport {
    /// The device.
    pub device: DeviceId,
    /// When the poll started, in milliseconds since the epoch.
    pub at_ms: u64,
    /// How long the whole poll took.
    pub latency: Duration,
    /// How much later than scheduled the poll started (0 when on time): the gateway keeping
    /// up with its poll intervals, or not.
    pub lateness: Duration,
    /// The values decoded from the requests that were answered.
    pub samples: Vec<Sample>,
    /// What went wrong, per request.
    pub errors: Vec<RequestError>,
    /// Whether the device answered at all (a Modbus exception is an answer).
    pub answered: bool,
}

/// Why one read request gave no values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The device answered with a Modbus exception: it is there, the request is wrong for it.
    #[error("{request}: exception {code:#04x} ({name})", name = exception_name(*.code))]
    Exception {
        /// The request.
        request: ReadRequest,
        /// The exception code (02 illegal data address …).
        code: u8,
    },
    /// No answer within the timeout.
    #[error("{request}: no answer within {timeout_ms} ms")]
    Timeout {
        /// The request.
        request: ReadRequest,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The link failed: connection refused or reset, serial port gone, garbled frame.
    #[error("{request}: {problem}")]
    Transport {
        /// The request.
        request: ReadRequest,
        /// What failed.
        problem: String,
    },
    /// The device could not be reached at all.
    #[error("cannot connect: {problem}")]
    Connect {
        /// What failed.
        problem: String,
    },
    /// The answer does not fit the request (too short, wrong kind).
    #[error("{request}: {problem}")]
    Decode {
        /// The request.
        request: ReadRequest,
        /// What is wrong.
        problem: String,
    },
    /// A source that is not Modbus (a NUT server) answered with an error, not in time, or not
    /// as its protocol says.
    #[error("{problem}")]
    Source {
        /// What went wrong.
        problem: String,
    },
}

impl RequestError {
    /// A short label for metrics: `exception`, `timeout`, `transport`, `connect`, `decode`,
    /// `source`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Exception { .. } => "exception",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } => "transport",
            Self::Connect { .. } => "connect",
            Self::Decode { .. } => "decode",
            Self::Source { .. } => "source",
        }
    }
}

/// The Modbus name of an exception code.
pub fn exception_name(code: u8) -> &'static str {
    match code {
        0x01 => "illegal function",
        0x02 => "illegal data address",
        0x03 => "illegal data value",
        0x04 => "server device failure",
        0x05 => "acknowledge",
        0x06 => "server device busy",
        0x08 => "memory parity error",
        0x0A => "gateway path unavailable",
        0x0B => "gateway target device failed to respond",
        _ => "unknown exception",
    }
}
