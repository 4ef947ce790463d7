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
pub mod snmp;
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

/// The longest wait between polls of a lost device (Modbus, NUT, SNMP).
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long to wait before the next poll of a polled device that missed `missed` polls in a
/// row: the poll interval until it is lost (`comm_lost_after` misses), then doubling per miss
/// up to [`MAX_BACKOFF`], with ±20 % jitter so that devices lost together are not retried in
/// lock-step.
pub fn backoff_delay(poll_interval: Duration, comm_lost_after: u32, missed: u32) -> Duration {
    if missed < comm_lost_after {
        return poll_interval;
    }
    let doublings = (missed - comm_lost_after + 1).min(16);
    let backoff = poll_interval
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
        .max(poll_interval);
    backoff.mul_f64(0.8 + 0.4 * fastrand::f64())
}

/// What one poll of a non-Modbus polled source (NUT, SNMP) gave.
#[derive(Debug, Default)]
pub struct Polled {
    /// The samples.
    pub samples: Vec<Sample>,
    /// What could not be used; the source still answered.
    pub errors: Vec<RequestError>,
}

/// What [`run_polled`] polls and how often.
#[derive(Debug, Clone)]
pub(crate) struct Polling {
    /// The source's kind in logs (`"nut"`).
    pub kind: &'static str,
    /// Its device id.
    pub device: DeviceId,
    /// Its URL in logs (no secret).
    pub url: String,
    /// Time between polls.
    pub poll_interval: Duration,
    /// Missed polls before it is lost and polled with back-off.
    pub comm_lost_after: u32,
}

/// A non-Modbus source read by polling (NUT, SNMP): one read, given the poll's time.
pub(crate) trait Poller: Send {
    /// Reads the source once: its samples, or why it gave none (it did not answer).
    fn poll(
        &mut self,
        at_ms: u64,
    ) -> impl std::future::Future<Output = Result<Polled, RequestError>> + Send;
}

/// Polls a source every `poll_interval` until the event channel closes, as Modbus devices
/// are polled: a failed poll is reported as unanswered, and after `comm_lost_after` failures
/// in a row the device is polled with [`backoff_delay`]. The first failure and the recovery
/// are logged, once each. `wake`, when given, polls at once (at most every
/// [`EARLIEST_REPOLL`]).
pub(crate) async fn run_polled(
    what: Polling,
    events: tokio::sync::mpsc::Sender<Event>,
    mut poller: impl Poller,
    wake: Option<std::sync::Arc<tokio::sync::Notify>>,
) {
    let Polling {
        kind,
        device,
        url,
        poll_interval,
        comm_lost_after,
    } = what;
    let mut missed = 0u32;
    let mut next = tokio::time::Instant::now();
    loop {
        let started = tokio::time::Instant::now();
        let at_ms = mono_ms();
        let result = poller.poll(at_ms).await;
        let mut report = PollReport {
            device: device.clone(),
            at_ms,
            latency: started.elapsed(),
            lateness: started.saturating_duration_since(next),
            samples: Vec::new(),
            errors: Vec::new(),
            answered: false,
        };
        match result {
            Ok(polled) => {
                report.samples = polled.samples;
                report.errors = polled.errors;
                report.answered = true;
                if missed > 0 {
                    tracing::info!(%device, source = kind, "answering again");
                }
                missed = 0;
            }
            Err(e) => {
                if missed == 0 {
                    tracing::warn!(%device, source = kind, %url, error = %e, "not answering");
                }
                missed = missed.saturating_add(1);
                report.errors.push(e);
            }
        }
        if events.send(Event::Poll(report)).await.is_err() {
            return;
        }
        next = started + backoff_delay(poll_interval, comm_lost_after, missed);
        match &wake {
            None => tokio::time::sleep_until(next).await,
            Some(wake) => {
                tokio::select! {
                    () = tokio::time::sleep_until(next) => {}
                    () = wake.notified() => {
                        // Woken (an SNMP trap): poll now, but never more often than
                        // EARLIEST_REPOLL, however many traps arrive.
                        next = (started + EARLIEST_REPOLL).max(tokio::time::Instant::now());
                        tokio::time::sleep_until(next).await;
                    }
                }
            }
        }
    }
}

/// The shortest time between two polls of a source woken early (by SNMP traps).
pub const EARLIEST_REPOLL: Duration = Duration::from_millis(500);

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
