//! Modbus polling with tokio-modbus: one task per TCP device, one per serial line.
//!
//! tokio-modbus has no request timeout of its own (a silent device hangs a call forever), so
//! every request runs under [`tokio::time::timeout`]; after a timeout or a transport error the
//! connection is dropped and opened again, so that a late answer is never taken for the next
//! one. A device that misses `comm_lost_after` polls in a row is polled again with exponential
//! back-off and jitter, up to [`MAX_BACKOFF`].

use std::time::{Duration, Instant};

use firebreak_protocols::{RawData, ReadRequest, Table, decode_samples, plan_reads};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_modbus::client::{Client, Context, Reader};
use tokio_modbus::slave::{Slave, SlaveContext};
use tracing::{debug, info, warn};

use super::{Event, PollReport, RequestError, mono_ms};
use crate::config::{DeviceConfig, MAX_PLAN_REQUESTS, Parity, SerialLine, Transport};

/// The longest wait between two attempts to reach a dead device.
pub use super::MAX_BACKOFF;

/// Registers or bits, as a read returned them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// From 03/04.
    Words(Vec<u16>),
    /// From 01/02.
    Bits(Vec<bool>),
}

impl Data {
    /// A view for `protocols` decoding.
    pub fn raw(&self) -> RawData<'_> {
        match self {
            Data::Words(w) => RawData::Words(w),
            Data::Bits(b) => RawData::Bits(b),
        }
    }
}

/// Sends one read request, bounded by `timeout`.
pub async fn read(
    ctx: &mut Context,
    request: &ReadRequest,
    timeout: Duration,
) -> Result<Data, RequestError> {
    let call = async {
        match request.table {
            Table::Coil => ctx
                .read_coils(request.start, request.count)
                .await
                .map(|r| r.map(Data::Bits)),
            Table::DiscreteInput => ctx
                .read_discrete_inputs(request.start, request.count)
                .await
                .map(|r| r.map(Data::Bits)),
            Table::Holding => ctx
                .read_holding_registers(request.start, request.count)
                .await
                .map(|r| r.map(Data::Words)),
            Table::Input => ctx
                .read_input_registers(request.start, request.count)
                .await
                .map(|r| r.map(Data::Words)),
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(RequestError::Timeout {
            request: *request,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }),
        Ok(Err(e)) => Err(RequestError::Transport {
            request: *request,
            problem: e.to_string(),
        }),
        Ok(Ok(Err(code))) => Err(RequestError::Exception {
            request: *request,
            code: u8::from(code),
        }),
        Ok(Ok(Ok(data))) => {
            let got = match &data {
                Data::Words(w) => w.len(),
                Data::Bits(b) => b.len(),
            };
            if got < usize::from(request.count) {
                return Err(RequestError::Decode {
                    request: *request,
                    problem: format!("{got} values in the answer, {} requested", request.count),
                });
            }
            Ok(data)
        }
    }
}

/// The read plan of a device (validated when the configuration was loaded).
pub fn device_plan(device: &DeviceConfig) -> Vec<ReadRequest> {
    plan_reads::<MAX_PLAN_REQUESTS>(&device.profile.registers, &device.plan)
        .map(|p| p.to_vec())
        .unwrap_or_default()
}

/// Polls every request of `plan` once, retrying a failed request up to `retries` times on the
/// same link, waiting `gap` before each request (the RTU inter-frame silence; zero on TCP).
/// Returns the report and whether the link must be opened again (a timeout or transport error
/// leaves it in an unknown state).
pub async fn poll_once(
    ctx: &mut Context,
    device: &DeviceConfig,
    plan: &[ReadRequest],
    gap: Duration,
    retries: u8,
) -> (PollReport, bool) {
    let started = Instant::now();
    let at_ms = mono_ms();
    let mut report = PollReport {
        device: device.name.clone(),
        at_ms,
        latency: Duration::ZERO,
        lateness: Duration::ZERO,
        samples: Vec::new(),
        errors: Vec::new(),
        answered: false,
    };
    let mut reconnect = false;
    for request in plan {
        let mut attempt = 0;
        let outcome = loop {
            if !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            let outcome = read(ctx, request, device.timeout).await;
            match &outcome {
                Err(RequestError::Timeout { .. } | RequestError::Transport { .. })
                    if attempt < retries =>
                {
                    attempt += 1;
                    debug!(device = %device.name, %request, attempt, "retrying");
                }
                _ => break outcome,
            }
        };
        match outcome {
            Ok(data) => {
                report.answered = true;
                for sample in decode_samples(
                    &device.name,
                    &device.profile.registers,
                    request,
                    data.raw(),
                    at_ms,
                ) {
                    match sample {
                        Ok(s) => report.samples.push(s),
                        Err(e) => report.errors.push(RequestError::Decode {
                            request: *request,
                            problem: e.to_string(),
                        }),
                    }
                }
            }
            Err(e) => {
                match &e {
                    RequestError::Exception { .. } => report.answered = true,
                    RequestError::Timeout { .. } | RequestError::Transport { .. } => {
                        reconnect = true
                    }
                    _ => {}
                }
                report.errors.push(e);
                if reconnect {
                    // The link is in an unknown state: stop this poll, reconnect for the next.
                    break;
                }
            }
        }
    }
    report.latency = started.elapsed();
    (report, reconnect)
}

/// How long to wait before the next poll of a device that missed `missed` polls in a row.
pub fn next_delay(device: &DeviceConfig, missed: u32) -> Duration {
    super::backoff_delay(device.poll_interval, device.comm_lost_after, missed)
}

fn connect_failed(device: &DeviceConfig, problem: String) -> PollReport {
    PollReport {
        device: device.name.clone(),
        at_ms: mono_ms(),
        latency: Duration::ZERO,
        lateness: Duration::ZERO,
        samples: Vec::new(),
        errors: vec![RequestError::Connect { problem }],
        answered: false,
    }
}

/// Opens a Modbus TCP connection, bounded by the device's timeout.
pub async fn connect_tcp(
    host: &str,
    port: u16,
    unit: u8,
    timeout: Duration,
) -> Result<Context, String> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| {
            format!(
                "tcp://{host}:{port}: no connection within {} ms",
                timeout.as_millis()
            )
        })?
        .map_err(|e| format!("tcp://{host}:{port}: {e}"))?;
    let _ = stream.set_nodelay(true);
    Ok(tokio_modbus::client::tcp::attach_slave(stream, Slave(unit)))
}

/// Polls one Modbus TCP device until the event channel closes.
pub async fn run_tcp_device(device: DeviceConfig, events: mpsc::Sender<Event>) {
    let Transport::Tcp { host, port } = device.transport.clone() else {
        return;
    };
    let plan = device_plan(&device);
    let mut ctx: Option<Context> = None;
    let mut missed = 0u32;
    let mut due: Option<Instant> = None;
    info!(device = %device.name, address = %device.transport, "polling");
    loop {
        let started = Instant::now();
        let lateness = due.map_or(Duration::ZERO, |d| started.saturating_duration_since(d));
        if ctx.is_none() {
            match connect_tcp(&host, port, device.unit, device.timeout).await {
                Ok(c) => ctx = Some(c),
                Err(problem) => {
                    if missed == 0 {
                        warn!(device = %device.name, %problem, "cannot connect");
                    }
                    missed = missed.saturating_add(1);
                    if events
                        .send(Event::Poll(connect_failed(&device, problem)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let next = started + next_delay(&device, missed);
                    due = Some(next);
                    tokio::time::sleep_until(next.into()).await;
                    continue;
                }
            }
        }
        // A retry on TCP opens a new connection first: an answer that arrives after its
        // timeout would otherwise be read as the answer to the retry (a transaction id
        // mismatch at best).
        let mut earlier = Vec::new();
        let mut attempt = 0u8;
        let mut report = loop {
            let Some(c) = ctx.as_mut() else {
                break connect_failed(&device, "no connection".into());
            };
            let (report, reconnect) = poll_once(c, &device, &plan, Duration::ZERO, 0).await;
            if reconnect && let Some(mut c) = ctx.take() {
                let _ = tokio::time::timeout(device.timeout, c.disconnect()).await;
            }
            if !reconnect || attempt >= device.retries {
                break report;
            }
            attempt += 1;
            debug!(device = %device.name, attempt, "retrying on a new connection");
            earlier.extend(report.errors);
            match connect_tcp(&host, port, device.unit, device.timeout).await {
                Ok(c) => ctx = Some(c),
                Err(problem) => break connect_failed(&device, problem),
            }
        };
        if !earlier.is_empty() {
            earlier.append(&mut report.errors);
            report.errors = earlier;
        }
        report.latency = started.elapsed();
        report.lateness = lateness;
        missed = if report.answered {
            0
        } else {
            missed.saturating_add(1)
        };
        for e in &report.errors {
            warn!(device = %device.name, address = %device.transport, error = %e, "read failed");
        }
        if events.send(Event::Poll(report)).await.is_err() {
            return;
        }
        let next = started + next_delay(&device, missed);
        due = Some(next);
        tokio::time::sleep_until(next.into()).await;
    }
}

/// Opens a serial line for Modbus RTU.
pub fn open_serial(line: &SerialLine) -> Result<tokio_serial::SerialStream, String> {
    use tokio_serial::SerialPortBuilderExt;
    tokio_serial::new(&line.path, line.baud)
        .parity(match line.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .stop_bits(if line.stop_bits == 2 {
            tokio_serial::StopBits::Two
        } else {
            tokio_serial::StopBits::One
        })
        .data_bits(if line.data_bits == 7 {
            tokio_serial::DataBits::Seven
        } else {
            tokio_serial::DataBits::Eight
        })
        .open_native_async()
        .map_err(|e| format!("{}: {e}", line.path))
}

/// Polls every device on one serial line, one request at a time, with the inter-frame gap
/// between frames, until the event channel closes.
pub async fn run_rtu_bus(
    line: SerialLine,
    devices: Vec<DeviceConfig>,
    events: mpsc::Sender<Event>,
) {
    let plans: Vec<Vec<ReadRequest>> = devices.iter().map(device_plan).collect();
    let mut due: Vec<Instant> = vec![Instant::now(); devices.len()];
    let mut missed: Vec<u32> = vec![0; devices.len()];
    let mut ctx: Option<Context> = None;
    let gap = line.frame_gap();
    info!(line = %line, devices = devices.len(), "polling serial line");
    loop {
        let Some((i, when)) = due.iter().copied().enumerate().min_by_key(|(_, t)| *t) else {
            return;
        };
        tokio::time::sleep_until(when.into()).await;
        let (Some(device), Some(plan)) = (devices.get(i), plans.get(i)) else {
            return;
        };
        let miss = missed.get(i).copied().unwrap_or(0);
        if ctx.is_none() {
            match open_serial(&line) {
                Ok(port) => ctx = Some(tokio_modbus::client::rtu::attach(port)),
                Err(problem) => {
                    if miss == 0 {
                        warn!(line = %line, %problem, "cannot open serial line");
                    }
                    let next = miss.saturating_add(1);
                    set(&mut missed, i, next);
                    set(&mut due, i, Instant::now() + next_delay(device, next));
                    if events
                        .send(Event::Poll(connect_failed(device, problem)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    continue;
                }
            }
        }
        let Some(c) = ctx.as_mut() else { continue };
        c.set_slave(Slave(device.unit));
        let lateness = Instant::now().saturating_duration_since(when);
        let (mut report, reconnect) = poll_once(c, device, plan, gap, device.retries).await;
        report.lateness = lateness;
        let next = if report.answered {
            0
        } else {
            miss.saturating_add(1)
        };
        set(&mut missed, i, next);
        set(
            &mut due,
            i,
            when.max(Instant::now() - device.poll_interval) + next_delay(device, next),
        );
        for e in &report.errors {
            warn!(device = %device.name, address = %line, unit = device.unit, error = %e, "read failed");
        }
        if reconnect {
            // Reopening the port drops whatever half frame is still in flight.
            ctx = None;
        }
        if events.send(Event::Poll(report)).await.is_err() {
            return;
        }
    }
}

fn set<T>(v: &mut [T], i: usize, value: T) {
    if let Some(slot) = v.get_mut(i) {
        *slot = value;
    }
}
