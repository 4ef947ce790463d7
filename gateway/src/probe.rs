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

/// Two registers as a 32-bit value in each of the four orders a device may use, named as
/// manuals name them: `ABCD` (high word first, as Modbus sends bytes: `word_order =
/// "high-first"`), `CDAB` (`"low-first"`), `BADC` (bytes swapped: `byte_order = "swapped"`)
/// and `DCBA` (both). Decoded by the same code that reads a profile's registers, so the order
/// whose value makes sense is the one to write in the profile.
pub fn word_orders(words: [u16; 2]) -> [(&'static str, u32); 4] {
    use firebreak_protocols::{ByteOrder, DataType, RawData, RegisterDescriptor, Signal};
    let request = ReadRequest {
        table: Table::Holding,
        start: 0,
        count: 2,
    };
    let one = |word_order, byte_order| {
        let d = RegisterDescriptor::new(Signal::PduPower, Table::Holding, 0, DataType::U32)
            .order(word_order, byte_order);
        firebreak_protocols::decode(&d, &request, RawData::Words(&words)).map_or(0, |r| r.raw)
    };
    use firebreak_protocols::WordOrder::{HighFirst, LowFirst};
    [
        ("ABCD", one(HighFirst, ByteOrder::Big)),
        ("CDAB", one(LowFirst, ByteOrder::Big)),
        ("BADC", one(HighFirst, ByteOrder::Swapped)),
        ("DCBA", one(LowFirst, ByteOrder::Swapped)),
    ]
}

/// A float as a person reads it: plain when it is of a size a sensor reports, else in
/// scientific notation (a wrong order's value is usually absurdly large or small).
fn float(v: f32) -> String {
    if v == 0.0 || (1e-3..1e7).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// The most requests one scan may send: 247 units and a few ranges, not a flood.
pub const MAX_SCAN_REQUESTS: usize = 5000;

/// What `firebreak probe --scan` looks for.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The unit ids to try.
    pub units: Range<u32>,
    /// The address ranges to map on each unit that answers (the first one's first address is
    /// also what each unit is asked for); holding register 0 when empty.
    pub ranges: Vec<(Table, Range<u32>)>,
    /// How long to wait for each answer.
    pub timeout: std::time::Duration,
    /// The pause between two requests, so a scan never floods a device or a bus.
    pub gap: std::time::Duration,
}

/// How one request of a scan went.
enum Answer {
    Values,
    Exception(u8),
    Silent,
}

async fn ask(ctx: &mut Context, request: &ReadRequest, scan: &Scan) -> Answer {
    let answer = match modbus::read(ctx, request, scan.timeout).await {
        Ok(_) => Answer::Values,
        Err(RequestError::Exception { code, .. }) => Answer::Exception(code),
        Err(_) => Answer::Silent,
    };
    tokio::time::sleep(scan.gap).await;
    answer
}

/// Finds the units that answer on `transport` and, on each, which addresses of `scan.ranges`
/// can be read: a unit answers when it sends values or a Modbus exception (except 0x0A/0x0B,
/// a gateway saying nothing is behind it). Each range is read in blocks of up to 16; a block
/// refused with an exception is read again address by address, so a sparse map shows through.
/// Bounded by [`MAX_SCAN_REQUESTS`] and paced by `scan.gap`; sequential, one request at a
/// time.
pub async fn scan(
    transport: &Transport,
    scan: &Scan,
    out: &mut impl Write,
) -> Result<(), ProbeError> {
    use tokio_modbus::slave::{Slave, SlaveContext};
    const BLOCK: u32 = 16;
    let ranges = if scan.ranges.is_empty() {
        vec![(Table::Holding, 0..1)]
    } else {
        scan.ranges.clone()
    };
    let per_unit: usize = ranges
        .iter()
        .map(|(_, r)| (r.len()).div_ceil(BLOCK as usize))
        .sum();
    let units = scan.units.start.max(1)..scan.units.end.min(248);
    if units.is_empty() {
        return Err(ProbeError::BadRange {
            option: "--units",
            value: format!("{}..{}", scan.units.start, scan.units.end),
            problem: "unit ids are 1..=247".into(),
        });
    }
    if units.len().saturating_mul(1 + per_unit) > MAX_SCAN_REQUESTS {
        return Err(ProbeError::BadRange {
            option: "--units",
            value: format!("{}..={}", units.start, units.end - 1),
            problem: format!(
                "with these ranges the scan could send more than {MAX_SCAN_REQUESTS} requests: narrow --units or the ranges"
            ),
        });
    }
    writeln!(
        out,
        "scan {transport}: units {}..={}, {} ms per answer, {} ms between requests",
        units.start,
        units.end - 1,
        scan.timeout.as_millis(),
        scan.gap.as_millis()
    )?;
    let (first_table, first) = ranges.first().cloned().unwrap_or((Table::Holding, 0..1));
    let hello = ReadRequest {
        table: first_table,
        start: u16::try_from(first.start).unwrap_or(0),
        count: 1,
    };
    let mut ctx = connect(transport, 1, scan.timeout).await?;
    let mut found = Vec::new();
    let mut silent = Vec::new();
    let mut failing = Vec::new();
    for unit in units {
        let unit = u8::try_from(unit).unwrap_or(1);
        ctx.set_slave(Slave(unit));
        match ask(&mut ctx, &hello, scan).await {
            Answer::Values => {
                writeln!(out, "unit {unit}: answers ({hello} read)")?;
                found.push(unit);
            }
            Answer::Exception(code @ (0x0A | 0x0B)) => {
                writeln!(
                    out,
                    "unit {unit}: gateway exception {code:#04x}: nothing behind it"
                )?;
                silent.push(unit);
            }
            Answer::Exception(0x04) => {
                // Some servers (pymodbus among them) answer this for a unit they do not have.
                writeln!(
                    out,
                    "unit {unit}: exception 0x04 server device failure: a server without this unit, or a failing one; not mapped"
                )?;
                failing.push(unit);
            }
            Answer::Exception(code) => {
                writeln!(
                    out,
                    "unit {unit}: answers ({hello}: exception {code:#04x} {})",
                    crate::acquire::exception_name(code)
                )?;
                found.push(unit);
            }
            Answer::Silent => {
                silent.push(unit);
                // A TCP device may close the connection on a unit it does not serve.
                if matches!(transport, Transport::Tcp { .. }) {
                    ctx = connect(transport, unit, scan.timeout).await?;
                }
            }
        }
    }
    writeln!(
        out,
        "answering: {}; failure 0x04: {}; silent: {}",
        runs(&found),
        runs(&failing),
        runs(&silent)
    )?;
    for unit in found {
        ctx.set_slave(Slave(unit));
        for (table, range) in &ranges {
            let mut readable = Vec::new();
            let mut refused = 0u32;
            let mut start = range.start;
            while start < range.end {
                let count = (range.end - start).min(BLOCK);
                let block = ReadRequest {
                    table: *table,
                    start: u16::try_from(start).unwrap_or(u16::MAX),
                    count: u16::try_from(count).unwrap_or(1),
                };
                match ask(&mut ctx, &block, scan).await {
                    Answer::Values => readable.extend(start..start + count),
                    Answer::Exception(_) => {
                        for a in start..start + count {
                            let one = ReadRequest {
                                table: *table,
                                start: u16::try_from(a).unwrap_or(u16::MAX),
                                count: 1,
                            };
                            match ask(&mut ctx, &one, scan).await {
                                Answer::Values => readable.push(a),
                                _ => refused += 1,
                            }
                        }
                    }
                    Answer::Silent => refused += count,
                }
                start += count;
            }
            writeln!(
                out,
                "unit {unit} {table} {}..={}: readable {}; {refused} refused or silent",
                range.start,
                range.end - 1,
                if readable.is_empty() {
                    "none".to_string()
                } else {
                    runs(&readable)
                }
            )?;
        }
    }
    Ok(())
}

/// `1..=6, 8, 10..=12`: numbers as runs.
fn runs<T: Copy + Into<u32>>(items: &[T]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = items.iter().map(|&x| x.into()).peekable();
    while let Some(first) = it.next() {
        let mut last = first;
        while it.peek() == Some(&(last + 1)) {
            last += 1;
            it.next();
        }
        out.push(if first == last {
            first.to_string()
        } else {
            format!("{first}..={last}")
        });
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(", ")
    }
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

/// Reads `range` of `table` in requests within the protocol limits and prints every value;
/// with `decode`, each register also as the first word of a 32-bit value in the four word and
/// byte orders ([`word_orders`]).
pub async fn raw(
    ctx: &mut Context,
    table: Table,
    range: Range<u32>,
    timeout: std::time::Duration,
    decode: bool,
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
                for (i, (address, w)) in (request.start..).zip(words.iter().copied()).enumerate() {
                    writeln!(
                        out,
                        "{table:<14} {address:>5}  0x{w:04X}  {w:>5}  {:>6}",
                        w as i16
                    )?;
                    if let (true, Some(&next)) = (decode, words.get(i + 1)) {
                        for (order, raw) in word_orders([w, next]) {
                            writeln!(
                                out,
                                "{:>22} {order}  u32 {raw:>10}  i32 {:>11}  f32 {}",
                                format!("{address}..={}", address + 1),
                                raw as i32,
                                float(f32::from_bits(raw))
                            )?;
                        }
                    }
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
    write_samples(&report.samples, out)?;
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

/// One line a sample: signal, channel, value, unit and quality, in columns (the Modbus and
/// the SNMP probe print alike).
fn write_samples(
    samples: &[firebreak_protocols::Sample],
    out: &mut impl Write,
) -> Result<(), ProbeError> {
    for s in samples {
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
    write_samples(&mapped.samples, out)?;
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
    fn the_four_orders_of_a_32_bit_value() {
        // 1,234,567 = 0x0012_D687, as a device sending the low word first (CDAB) would.
        let orders = word_orders([0xD687, 0x0012]);
        assert_eq!(orders[1], ("CDAB", 1_234_567));
        assert_eq!(orders[0], ("ABCD", 0xD687_0012));
        assert_eq!(orders[2], ("BADC", 0x87D6_1200));
        assert_eq!(orders[3], ("DCBA", 0x1200_87D6));
    }

    #[test]
    fn floats_print_readably() {
        assert_eq!(float(25.3), "25.3");
        assert_eq!(float(0.0), "0");
        assert_eq!(float(-7.421719e13), "-7.421719e13");
    }

    #[test]
    fn numbers_print_as_runs() {
        assert_eq!(runs(&[1u8, 2, 3, 5, 7, 8]), "1..=3, 5, 7..=8");
        assert_eq!(runs::<u8>(&[]), "none");
        assert_eq!(runs(&[10u32]), "10");
    }

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
