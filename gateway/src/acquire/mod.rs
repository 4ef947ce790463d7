//! Acquisition: tasks that read devices and send what they read to the signal table.
//!
//! One task per Modbus TCP device, one per serial line (an RS-485 bus carries one request at
//! a time), one per MQTT source. Each sends [`Event`]s through a bounded channel to the task
//! that owns the [`table::SignalTable`]. The gateway never writes to a device.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use firebreak_protocols::{DeviceId, ReadRequest, Sample};

pub mod modbus;
pub mod mqtt;
pub mod table;

/// How many events may wait for the table task before sources wait.
pub const EVENT_CHANNEL_CAPACITY: usize = 1024;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
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
}

impl RequestError {
    /// A short label for metrics: `exception`, `timeout`, `transport`, `connect`, `decode`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Exception { .. } => "exception",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } => "transport",
            Self::Connect { .. } => "connect",
            Self::Decode { .. } => "decode",
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
