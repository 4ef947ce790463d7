//! `firebreak probe`: read a device by hand, raw or through its profile.

use std::io::Write;
use std::ops::Range;

use firebreak_protocols::{ReadRequest, Table};
use tokio_modbus::client::Context;

use crate::acquire::RequestError;
use crate::acquire::modbus::{self, Data};
use crate::config::{DeviceConfig, Parity, SerialLine, Transport, parse_host_port};

/// Why a probe could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The target is not `tcp://HOST:PORT`, `rtu:///dev/ttyX?baud=…`, `nut://HOST/UPS` or
    /// `snmp://HOST`.
    #[error(
        "{0:?} is not tcp://HOST:PORT, rtu:///dev/PATH?baud=9600&parity=even, nut://HOST[:PORT]/UPS or snmp://HOST[:PORT]"
    )]
    BadTarget(String),
    /// A range is not `START..END`, `START..=END` or `ADDRESS`.
    #[error("{option} {value:?}: {problem}")]
    BadRange {
        /// The option.
        option: &'static str,
        /// What was given.
        value: String,
        /// Why it is refused.
        problem: String,
    },
    /// The device could not be reached.
    #[error("{0}")]
    Connect(String),
    /// A read failed.
    #[error("{0}")]
    Read(#[from] RequestError),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

/// Parses a probe target.
pub fn parse_target(s: &str) -> Result<Transport, ProbeError> {
    let bad = || ProbeError::BadTarget(s.to_string());
    if let Some(rest) = s.strip_prefix("tcp://") {
        return parse_host_port(rest.trim_end_matches('/')).ok_or_else(bad);
    }
    let rest = s.strip_prefix("rtu://").ok_or_else(bad)?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !path.starts_with('/') {
        return Err(bad());
    }
    let mut line = SerialLine {
        path: path.to_string(),
        baud: 19_200,
        parity: Parity::Even,
        stop_bits: 1,
        data_bits: 8,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(bad)?;
        match k {
            "baud" => line.baud = v.parse().map_err(|_| bad())?,
            "parity" => {
                line.parity = match v {
                    "none" | "N" => Parity::None,
                    "even" | "E" => Parity::Even,
                    "odd" | "O" => Parity::Odd,
                    _ => return Err(bad()),
                }
            }
            "stop_bits" => {
                line.stop_bits = v
                    .parse()
                    .ok()
                    .filter(|b| (1..=2).contains(b))
                    .ok_or_else(bad)?
            }
            "data_bits" => {
                line.data_bits = v
                    .parse()
                    .ok()
                    .filter(|b| (7..=8).contains(b))
                    .ok_or_else(bad)?
            }
            _ => return Err(bad()),
        }
    }
    Ok(Transport::Rtu(line))
}

/// Parses `100..120` (end excluded), `100..=119` or `100`.
pub fn parse_range(option: &'static str, s: &str) -> Result<Range<u32>, ProbeError> {
    let err = |problem: &str| ProbeError::BadRange {
        option,
        value: s.to_string(),
        problem: problem.to_string(),
    };
    let num = |t: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| err("addresses are numbers 0..=65535"))
    };
    let (start, end) = if let Some((a, b)) = s.split_once("..=") {
        (num(a)?, num(b)? + 1)
    } else if let Some((a, b)) = s.split_once("..") {
        (num(a)?, num(b)?)
    } else {
        let a = num(s)?;
        (a, a + 1)
    };
    if start >= end || end > 0x1_0000 {
        return Err(err("the range is empty or runs past 65535"));
    }
    Ok(start..end)
}

/// Opens a client context for a transport.
pub async fn connect(
    transport: &Transport,
    unit: u8,
    timeout: std::time::Duration,
) -> Result<Context, ProbeError> {
    match transport {
        Transport::Tcp { host, port } => modbus::connect_tcp(host, *port, unit, timeout)
            .await
            .map_err(ProbeError::Connect),
        Transport::Rtu(line) => {
            let port = modbus::open_serial(line).map_err(ProbeError::Connect)?;
            Ok(tokio_modbus::client::rtu::attach_slave(
                port,
                tokio_modbus::slave::Slave(unit),
            ))
        }
    }
}

/// Reads `range` of `table` in requests within the protocol limits and prints every value.
pub async fn raw(
    ctx: &mut Context,
    table: Table,
    range: Range<u32>,
    timeout: std::time::Duration,
    out: &mut impl Write,
) -> Result<(), ProbeError> {
    let limit = if table.is_bits() {
        firebreak_protocols::plan::MAX_READ_BITS
    } else {
        firebreak_protocols::plan::MAX_READ_REGISTERS
    };
    let (mut start, end) = (range.start, range.end.min(0x1_0000));
    while start < end {
        let count = (end - start).min(u32::from(limit));
        let request = ReadRequest {
            table,
            start: u16::try_from(start).unwrap_or(u16::MAX),
            count: u16::try_from(count).unwrap_or(limit),
        };
        match modbus::read(ctx, &request, timeout).await? {
            Data::Words(words) => {
                for (address, w) in (request.start..).zip(words) {
                    writeln!(
                        out,
                        "{table:<14} {address:>5}  0x{w:04X}  {w:>5}  {:>6}",
                        w as i16
                    )?;
                }
            }
            Data::Bits(bits) => {
                for (address, b) in (request.start..).zip(bits) {
                    writeln!(out, "{table:<14} {address:>5}  {}", u8::from(b))?;
                }
            }
        }
        start += count;
    }
    Ok(())
}

/// Polls a configured device once and prints its decoded signals with units and quality.
pub async fn device(device: &DeviceConfig, out: &mut impl Write) -> Result<(), ProbeError> {
    let mut ctx = connect(&device.transport, device.unit, device.timeout).await?;
    let plan = modbus::device_plan(device);
    let gap = match &device.transport {
        Transport::Rtu(line) => line.frame_gap(),
        Transport::Tcp { .. } => std::time::Duration::ZERO,
    };
    // One look: a probe does not retry, it shows what the device answers now.
    let (report, _) = modbus::poll_once(&mut ctx, device, &plan, gap, 0).await;
    writeln!(
        out,
        "{} ({} unit {}, profile {}) in {:.1} ms",
        device.name,
        device.transport,
        device.unit,
        device.profile.name,
        report.latency.as_secs_f64() * 1000.0
    )?;
    for s in &report.samples {
        writeln!(
            out,
            "  {:<24} ch{:<2} {:>10} {:<5} {}",
            s.signal.name(),
            s.channel,
            s.value,
            s.unit.symbol(),
            s.quality
        )?;
    }
    for e in &report.errors {
        writeln!(out, "  error: {e}")?;
    }
    if !report.answered {
        return Err(report
            .errors
            .into_iter()
            .next()
            .map(ProbeError::Read)
            .unwrap_or_else(|| ProbeError::Connect("no answer".into())));
    }
    Ok(())
}

/// Reads a UPS on a NUT server (`nut://host[:port]/ups`) once and prints every variable, then
/// the signals Firebreak takes from them, with units and quality.
pub async fn nut(
    target: &str,
    timeout: std::time::Duration,
    out: &mut impl Write,
) -> Result<(), ProbeError> {
    let (host, port, ups) = crate::config::parse_nut_url(target)
        .ok_or_else(|| ProbeError::BadTarget(target.to_string()))?;
    let mut client = crate::acquire::nut::NutClient::connect(&host, port, timeout)
        .await
        .map_err(|e| ProbeError::Connect(format!("nut://{host}:{port}/{ups}: {e}")))?;
    let vars = client
        .list_vars(&ups)
        .await
        .map_err(|e| ProbeError::Connect(format!("nut://{host}:{port}/{ups}: {e}")))?;
    for (name, value) in &vars {
        writeln!(out, "{name:<28} {value}")?;
    }
    let device = firebreak_protocols::DeviceId::new(&ups)
        .map_err(|e| ProbeError::Connect(format!("UPS name {ups:?}: {e}")))?;
    let (samples, problems) = crate::acquire::nut::map_vars(&device, &vars, 0);
    writeln!(out, "-- as Firebreak reads it:")?;
    for s in &samples {
        writeln!(
            out,
            "{:<28} {} {} ({})",
            s.signal.name(),
            s.value,
            s.unit.symbol(),
            s.quality
        )?;
    }
    for p in &problems {
        writeln!(out, "unusable: {p}")?;
    }
    Ok(())
}

/// Reads an SNMP source once through its profile and prints every value received (OID,
/// type, value), then the signals Firebreak takes from them, per channel, with units and
/// quality, and what could not be used.
pub async fn snmp(
    source: &crate::config::SnmpSourceConfig,
    out: &mut impl Write,
) -> Result<(), ProbeError> {
    use crate::acquire::snmp::{SnmpClient, map_values};
    let started = std::time::Instant::now();
    let client = SnmpClient::connect(source)
        .await
        .map_err(|e| ProbeError::Connect(format!("{}: {e}", source.url())))?;
    let readout = client
        .read(source, &source.profile)
        .await
        .map_err(|e| ProbeError::Connect(format!("{}: {e}", source.url())))?;
    writeln!(
        out,
        "{} (profile {}) in {:.1} ms: {} values",
        source.url(),
        source.profile.name,
        started.elapsed().as_secs_f64() * 1000.0,
        readout.len()
    )?;
    for (oid, value) in &readout {
        writeln!(out, "  {oid:<40} {value}")?;
    }
    let mapped = map_values(&source.name, &source.profile, &readout, 0);
    writeln!(out, "-- as Firebreak reads it:")?;
    for s in &mapped.samples {
        writeln!(
            out,
            "  {:<24} ch{:<2} {:>10} {:<5} {}",
            s.signal.name(),
            s.channel,
            s.value,
            s.unit.symbol(),
            s.quality
        )?;
    }
    for p in &mapped.no_reading {
        writeln!(out, "  no reading: {p}")?;
    }
    for p in &mapped.problems {
        writeln!(out, "  unusable: {p}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("tcp://127.0.0.1:5020").unwrap(),
            Transport::Tcp {
                host: "127.0.0.1".into(),
                port: 5020
            }
        );
        assert_eq!(
            parse_target("tcp://[::1]:502").unwrap(),
            Transport::Tcp {
                host: "::1".into(),
                port: 502
            }
        );
        let Transport::Rtu(line) =
            parse_target("rtu:///dev/ttyUSB0?baud=9600&parity=none&stop_bits=2").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (line.path.as_str(), line.baud, line.parity, line.stop_bits),
            ("/dev/ttyUSB0", 9600, Parity::None, 2)
        );
        for bad in [
            "127.0.0.1:502",
            "tcp://host",
            "rtu://dev/ttyX",
            "rtu:///dev/x?baud=fast",
            "rtu:///dev/x?speed=1",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("--holding", "100..120").unwrap(), 100..120);
        assert_eq!(parse_range("--holding", "100..=119").unwrap(), 100..120);
        assert_eq!(parse_range("--holding", "7").unwrap(), 7..8);
        assert_eq!(
            parse_range("--input", "5..5").unwrap_err().to_string(),
            "--input \"5..5\": the range is empty or runs past 65535"
        );
        assert!(parse_range("--input", "a..b").is_err());
        assert!(parse_range("--input", "0..65537").is_err());
    }
}
