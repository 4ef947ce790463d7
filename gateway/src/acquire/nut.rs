//! NUT sources: a UPS served by Network UPS Tools' `upsd` (TCP 3493), read with its network
//! protocol — `USERNAME`/`PASSWORD` when configured, then `LIST VAR <ups>` every poll — so any
//! of the hundreds of UPS models NUT's drivers know becomes a Firebreak device.
//!
//! The variables map onto Firebreak signals ([`map_vars`]): the `ups.status` flags `OB` (on
//! battery), `LB` (low battery; `FSD`, a forced shutdown, counts as low) and `RB` (replace
//! battery), then `battery.runtime`, `battery.charge`, `battery.temperature`,
//! `input.voltage`, `output.voltage` and `ups.load`. A poll is one `LIST VAR`; it fails as a
//! whole (a closed connection, a timeout, an `ERR` answer such as `UNKNOWN-UPS` or
//! `DATA-STALE`, or `ups.status` `WAIT`: upsd has no data from its driver yet), and like a
//! Modbus device's, missed polls turn the device `comm-lost`, and a lost source is polled
//! again with exponential backoff ([`super::backoff_delay`]).
//! Nothing read from the network is trusted: lines are bounded, malformed ones are errors
//! naming the line, never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use firebreak_protocols::{DeviceId, Quality, Sample, Signal};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{Event, Polled, RequestError};
use crate::config::NutSourceConfig;

/// The longest line read from `upsd`.
pub const MAX_LINE: usize = 1024;
/// The most variables one `LIST VAR` may give.
pub const MAX_VARS: usize = 1024;

/// Why talking to `upsd` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NutError {
    /// No connection, or it broke.
    #[error("{0}")]
    Io(String),
    /// No answer in time.
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// `upsd` said `ERR …`.
    #[error("upsd answered ERR {0}")]
    Err(String),
    /// An answer the protocol does not allow.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

/// A connection to `upsd`.
#[derive(Debug)]
pub struct NutClient {
    stream: BufReader<TcpStream>,
    timeout: Duration,
}

impl NutClient {
    /// Connects within `timeout`.
    pub async fn connect(host: &str, port: u16, timeout: Duration) -> Result<NutClient, NutError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| NutError::Timeout(timeout.as_millis() as u64))?
            .map_err(|e| NutError::Io(format!("nut://{host}:{port}: {e}")))?;
        Ok(NutClient {
            stream: BufReader::new(stream),
            timeout,
        })
    }

    async fn send(&mut self, line: &str) -> Result<(), NutError> {
        let bytes = format!("{line}\n");
        let write = self.stream.get_mut().write_all(bytes.as_bytes());
        tokio::time::timeout(self.timeout, write)
            .await
            .map_err(|_| NutError::Timeout(self.timeout.as_millis() as u64))?
            .map_err(|e| NutError::Io(e.to_string()))
    }

    async fn line(&mut self) -> Result<String, NutError> {
        let mut buf = Vec::new();
        let read = async {
            loop {
                let chunk = self
                    .stream
                    .fill_buf()
                    .await
                    .map_err(|e| NutError::Io(e.to_string()))?;
                if chunk.is_empty() {
                    return Err(NutError::Io("upsd closed the connection".into()));
                }
                let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (chunk.len(), false),
                };
                buf.extend_from_slice(chunk.get(..take).unwrap_or_default());
                self.stream.consume(take);
                if buf.len() > MAX_LINE {
                    return Err(NutError::Protocol(format!(
                        "a line longer than {MAX_LINE} bytes"
                    )));
                }
                if done {
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(self.timeout, read)
            .await
            .map_err(|_| NutError::Timeout(self.timeout.as_millis() as u64))??;
        let text = String::from_utf8(buf)
            .map_err(|_| NutError::Protocol("a line that is not UTF-8".into()))?;
        let text = text.trim_end_matches(['\n', '\r']).to_string();
        if let Some(err) = text.strip_prefix("ERR ") {
            return Err(NutError::Err(err.trim().to_string()));
        }
        Ok(text)
    }

    /// `USERNAME` and `PASSWORD`; `upsd` answers `OK` to each.
    pub async fn login(&mut self, username: &str, password: &str) -> Result<(), NutError> {
        for (what, value) in [("USERNAME", username), ("PASSWORD", password)] {
            if value.contains(['\n', '\r', '"']) || value.is_empty() {
                return Err(NutError::Protocol(format!(
                    "{what} must be one line without quotes"
                )));
            }
            self.send(&format!("{what} {value}")).await?;
            let answer = self.line().await?;
            if answer != "OK" {
                return Err(NutError::Protocol(format!("{what}: {answer:?}")));
            }
        }
        Ok(())
    }

    /// `LIST VAR ups`: every variable of the UPS, by name.
    pub async fn list_vars(&mut self, ups: &str) -> Result<BTreeMap<String, String>, NutError> {
        self.send(&format!("LIST VAR {ups}")).await?;
        let begin = self.line().await?;
        if begin != format!("BEGIN LIST VAR {ups}") {
            return Err(NutError::Protocol(begin));
        }
        let mut vars = BTreeMap::new();
        let prefix = format!("VAR {ups} ");
        loop {
            let line = self.line().await?;
            if line == format!("END LIST VAR {ups}") {
                return Ok(vars);
            }
            let (name, value) = line
                .strip_prefix(&prefix)
                .and_then(parse_var)
                .ok_or_else(|| NutError::Protocol(line.clone()))?;
            if vars.len() >= MAX_VARS {
                return Err(NutError::Protocol(format!(
                    "more than {MAX_VARS} variables"
                )));
            }
            vars.insert(name, value);
        }
    }
}

/// `name "value"` (the value quoted, `\"` and `\\` escaped) of a `VAR` line.
fn parse_var(rest: &str) -> Option<(String, String)> {
    let (name, quoted) = rest.split_once(' ')?;
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    let mut value = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?),
            '"' => return None,
            c => value.push(c),
        }
    }
    (!name.is_empty()).then(|| (name.to_string(), value))
}

/// The signals NUT's variables give, and what could not be used.
pub fn map_vars(
    device: &DeviceId,
    vars: &BTreeMap<String, String>,
    at_ms: u64,
) -> (Vec<Sample>, Vec<String>) {
    let mut samples = Vec::new();
    let mut problems = Vec::new();
    let mut push = |signal: Signal, value: f32, quality: Quality| {
        samples.push(Sample {
            device: device.clone(),
            signal,
            channel: 0,
            value,
            unit: signal.unit(),
            timestamp_ms: at_ms,
            quality,
        });
    };
    if let Some(status) = vars.get("ups.status") {
        let flags: Vec<&str> = status.split_whitespace().collect();
        let has = |f: &str| if flags.contains(&f) { 1.0 } else { 0.0 };
        push(Signal::UpsOnBattery, has("OB"), Quality::Good);
        let low = if flags.contains(&"LB") || flags.contains(&"FSD") {
            1.0
        } else {
            0.0
        };
        push(Signal::UpsLowBattery, low, Quality::Good);
        push(Signal::UpsReplaceBattery, has("RB"), Quality::Good);
    }
    for (name, signal, range) in [
        (
            "battery.runtime",
            Signal::UpsRuntimeRemaining,
            0.0..=604_800.0,
        ),
        ("battery.charge", Signal::UpsBatteryCharge, 0.0..=100.0),
        (
            "battery.temperature",
            Signal::UpsBatteryTemperature,
            -40.0..=150.0,
        ),
        ("input.voltage", Signal::UpsInputVoltage, 0.0..=1_000.0),
        ("output.voltage", Signal::UpsOutputVoltage, 0.0..=1_000.0),
        ("ups.load", Signal::UpsLoad, 0.0..=200.0),
    ] {
        let Some(text) = vars.get(name) else {
            continue;
        };
        match text.trim().parse::<f32>() {
            Ok(v) if v.is_finite() => {
                let quality = if range.contains(&v) {
                    Quality::Good
                } else {
                    Quality::OutOfRange
                };
                push(signal, v, quality);
            }
            _ => problems.push(format!("{name} = {text:?} is not a number")),
        }
    }
    (samples, problems)
}

/// Polls one NUT source until the event channel closes.
pub async fn run_source(source: NutSourceConfig, events: mpsc::Sender<Event>) {
    let password = match &source.password {
        None => None,
        Some(p) => match p.read() {
            Ok(p) => Some(p),
            Err((what, problem)) => {
                let problem = format!("{what}: {problem}");
                warn!(device = %source.name, %problem, "nut source cannot log in; polled without a login");
                None
            }
        },
    };
    info!(device = %source.name, url = %source.url(), "polling");
    super::run_polled(
        super::Polling {
            kind: "nut",
            device: source.name.clone(),
            url: source.url(),
            poll_interval: source.poll_interval,
            comm_lost_after: source.comm_lost_after,
        },
        events,
        NutPoller {
            source,
            password,
            client: None,
            told: BTreeSet::new(),
        },
        None,
    )
    .await;
}

/// One NUT source's connection, opened again after a failed poll, and what was logged of it.
struct NutPoller {
    source: NutSourceConfig,
    password: Option<String>,
    client: Option<NutClient>,
    /// Variables already logged as unusable.
    told: BTreeSet<String>,
}

impl super::Poller for NutPoller {
    async fn poll(&mut self, at_ms: u64) -> Result<Polled, RequestError> {
        let vars = match poll(&self.source, self.password.as_deref(), &mut self.client).await {
            Ok(vars) => vars,
            Err(e) => {
                self.client = None;
                return Err(match e {
                    NutError::Io(problem) => RequestError::Connect { problem },
                    other => RequestError::Source {
                        problem: other.to_string(),
                    },
                });
            }
        };
        let (samples, problems) = map_vars(&self.source.name, &vars, at_ms);
        let mut errors = Vec::new();
        for p in problems {
            if self.told.insert(p.clone()) {
                warn!(device = %self.source.name, problem = %p, "nut variable unusable");
                errors.push(RequestError::Source { problem: p });
            }
        }
        Ok(Polled { samples, errors })
    }
}

async fn poll(
    source: &NutSourceConfig,
    password: Option<&str>,
    client: &mut Option<NutClient>,
) -> Result<BTreeMap<String, String>, NutError> {
    let c = match client {
        Some(c) => c,
        None => {
            let mut c = NutClient::connect(&source.host, source.port, source.timeout).await?;
            if let (Some(user), Some(pass)) = (&source.username, password) {
                c.login(user, pass).await?;
            }
            client.insert(c)
        }
    };
    let vars = c.list_vars(&source.ups).await?;
    // upsd says WAIT until its driver has given it data: nothing is known yet.
    if vars.get("ups.status").is_some_and(|s| s.trim() == "WAIT") {
        return Err(NutError::Err(
            "ups.status WAIT: upsd has no data from its driver yet".into(),
        ));
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn value(samples: &[Sample], signal: Signal) -> Option<(f32, Quality)> {
        samples
            .iter()
            .find(|s| s.signal == signal)
            .map(|s| (s.value, s.quality))
    }

    #[test]
    fn status_flags_and_numbers_map_to_signals() {
        let d = DeviceId::new("ups-1").unwrap();
        let (s, problems) = map_vars(
            &d,
            &vars(&[
                ("ups.status", "OB DISCHRG LB"),
                ("battery.runtime", "120"),
                ("battery.charge", "20"),
                ("input.voltage", "0.0"),
                ("ups.load", "35"),
                ("battery.temperature", "28.5"),
                ("device.model", "Dummy UPS"),
            ]),
            7,
        );
        assert!(problems.is_empty());
        assert_eq!(value(&s, Signal::UpsOnBattery), Some((1.0, Quality::Good)));
        assert_eq!(value(&s, Signal::UpsLowBattery), Some((1.0, Quality::Good)));
        assert_eq!(
            value(&s, Signal::UpsReplaceBattery),
            Some((0.0, Quality::Good))
        );
        assert_eq!(
            value(&s, Signal::UpsRuntimeRemaining),
            Some((120.0, Quality::Good))
        );
        assert_eq!(
            value(&s, Signal::UpsInputVoltage),
            Some((0.0, Quality::Good))
        );
        assert_eq!(
            value(&s, Signal::UpsBatteryTemperature),
            Some((28.5, Quality::Good))
        );
        let (s, _) = map_vars(&d, &vars(&[("ups.status", "OL FSD")]), 0);
        assert_eq!(value(&s, Signal::UpsOnBattery), Some((0.0, Quality::Good)));
        assert_eq!(value(&s, Signal::UpsLowBattery), Some((1.0, Quality::Good)));
        let (s, problems) = map_vars(
            &d,
            &vars(&[("battery.charge", "150"), ("battery.runtime", "soon")]),
            0,
        );
        assert_eq!(
            value(&s, Signal::UpsBatteryCharge),
            Some((150.0, Quality::OutOfRange))
        );
        assert_eq!(problems, ["battery.runtime = \"soon\" is not a number"]);
    }

    #[test]
    fn var_lines_are_parsed_strictly() {
        assert_eq!(
            parse_var(r#"ups.status "OB LB""#),
            Some(("ups.status".into(), "OB LB".into()))
        );
        assert_eq!(
            parse_var(r#"device.model "A \"B\" \\C""#),
            Some(("device.model".into(), r#"A "B" \C"#.into()))
        );
        for bad in [
            "ups.status OB",
            r#"ups.status "OB"#,
            r#" "x""#,
            r#"a "b"c""#,
            "",
            r#"a "\"#,
        ] {
            assert_eq!(parse_var(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_var_lines_never_panic(line in ".{0,80}") {
            let _ = parse_var(&line);
        }
    }
}
