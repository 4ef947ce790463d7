//! The firmware's sensor feed as the rig speaks it: what a scenario's node device reads at a
//! moment, as feed lines (`t3 39.250`, `gas 60`, `smoke 1`), and what the node says back
//! (`ok`, `alarm at=… state=…`, its ready banner, its status line). The protocol is the
//! firmware's own (`firmware/src/feed.rs`, `docs/firmware.md`); this side never links it.

use firebreak_protocols::Signal;

use crate::scenario::Fault;
use crate::sim::SimDevice;
use crate::time::ScenarioTime;

/// The rack probes a node has.
pub const PROBES: u8 = 8;

/// One input of the node: the feed's key (`t3`, `room`, `gas`, …), the signal and channel
/// behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Input {
    /// The feed's command word.
    pub key: &'static str,
    /// The scenario signal.
    pub signal: Signal,
    /// Its channel.
    pub channel: u8,
}

const KEYS: [&str; PROBES as usize] = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"];

/// Every input the feed sets, in a fixed order.
pub fn inputs() -> Vec<Input> {
    let mut v: Vec<Input> = KEYS
        .iter()
        .zip(0u8..)
        .map(|(key, channel)| Input {
            key,
            signal: Signal::RackTemperature,
            channel,
        })
        .collect();
    for (key, signal) in [
        ("room", Signal::RoomTemperature),
        ("hum", Signal::RoomHumidity),
        ("gas", Signal::OffGas),
        ("smoke", Signal::SmokeAlarm),
        ("ups", Signal::UpsOnBattery),
        ("supp", Signal::SuppressionReleased),
    ] {
        v.push(Input {
            key,
            signal,
            channel: 0,
        });
    }
    v
}

/// The feed's text for a value of `input`: a temperature to a thousandth of a degree
/// (what the feed takes), humidity to a tenth, off-gas in whole ppm, contacts 0/1.
pub fn value_text(input: &Input, value: f32) -> String {
    match input.signal {
        Signal::SmokeAlarm | Signal::UpsOnBattery | Signal::SuppressionReleased => {
            if value != 0.0 { "1" } else { "0" }.to_string()
        }
        Signal::OffGas => format!("{}", value.round().clamp(0.0, 65_534.0) as u32),
        Signal::RoomHumidity => format!("{:.1}", value.clamp(0.0, 6_553.0)),
        _ => {
            let text = format!("{value:.3}");
            // "-0.000" is not a number the feed takes.
            if text == "-0.000" {
                "0.000".into()
            } else {
                text
            }
        }
    }
}

/// What the sensor behind `input` reads at `t`: its scripted value, or, when a `garbage` or
/// `all-ones` fault acts on that value, a sensor that fails (`err`; humidity, which has no
/// error reading, `-`). `stuck` is in the value already ([`SimDevice::value_at`]). Faults on
/// the whole device are the line's business ([`super::line`]), not the sensors'.
pub fn reading(device: &SimDevice, input: &Input, t: ScenarioTime) -> String {
    let faults = device.faults_at(t);
    let broken = faults.values.iter().any(|(s, c, f, _)| {
        *s == input.signal && *c == input.channel && matches!(f, Fault::Garbage | Fault::AllOnes)
    });
    if broken {
        return match input.signal {
            Signal::RoomHumidity => "-".into(),
            Signal::SmokeAlarm | Signal::UpsOnBattery | Signal::SuppressionReleased => {
                // A contact has no failed reading: it stays as it was scripted.
                value_text(input, device.value_at(input.signal, input.channel, t))
            }
            _ => "err".into(),
        };
    }
    value_text(input, device.value_at(input.signal, input.channel, t))
}

/// Whether a device-wide fault on the line applies at `t` (see [`super::line`]).
pub fn device_fault(device: &SimDevice, t: ScenarioTime) -> Option<Fault> {
    let f = device.faults_at(t);
    f.link
        .or(match f.device {
            Some((fault @ (Fault::Garbage | Fault::AllOnes), _)) => Some(fault),
            _ => None,
        })
        .or((!f.delay.is_zero()).then_some(Fault::Slow(f.delay)))
}

/// A line the node wrote on its feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The banner: the node (re)booted, with its reset reason code when it says it.
    Ready {
        /// `reset=<code>`.
        reset: Option<u16>,
    },
    /// A feed line was taken.
    Ok,
    /// A feed line was refused, and why.
    Err(String),
    /// The alarm-state register changed: at fed-clock `at_ms`, to `state`.
    Alarm {
        /// Fed-clock milliseconds.
        at_ms: u64,
        /// The alarm-state register.
        state: u16,
        /// The faults register.
        faults: u16,
    },
    /// The relay turned on or off.
    Relay(bool),
    /// The answer to `status`.
    Status(StatusCounters),
    /// Anything else (QEMU's own messages).
    Other(String),
}

/// The line counters of a node's status line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatusCounters {
    /// Frames dropped for a bad CRC.
    pub crc_errors: u64,
    /// Frames dropped for bad framing.
    pub framing_errors: u64,
    /// Requests answered.
    pub answered: u64,
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

fn hex(v: &str) -> Option<u16> {
    u16::from_str_radix(v.strip_prefix("0x")?, 16).ok()
}

/// Reads one line of the node's output.
pub fn parse_output(line: &str) -> Output {
    let line = line.trim();
    match line {
        "ok" => return Output::Ok,
        "relay on" => return Output::Relay(true),
        "relay off" => return Output::Relay(false),
        _ => {}
    }
    if let Some(why) = line.strip_prefix("err") {
        return Output::Err(why.trim().to_string());
    }
    if line.starts_with("alarm ") {
        let parsed = (|| {
            Some(Output::Alarm {
                at_ms: field(line, "at")?.parse().ok()?,
                state: hex(field(line, "state")?)?,
                faults: field(line, "faults").and_then(hex).unwrap_or(0),
            })
        })();
        return parsed.unwrap_or_else(|| Output::Other(line.to_string()));
    }
    if line.starts_with("status ") {
        let n = |name| field(line, name).and_then(|v| v.parse().ok()).unwrap_or(0);
        return Output::Status(StatusCounters {
            crc_errors: n("crc"),
            framing_errors: n("framing"),
            answered: n("answered"),
        });
    }
    if line.starts_with("firebreak-node") && line.ends_with("ready") {
        return Output::Ready {
            reset: field(line, "reset").and_then(|v| v.parse().ok()),
        };
    }
    Output::Other(line.to_string())
}

/// The causes of an alarm-state value, by name (`docs/firmware.md`).
pub fn causes(state: u16) -> Vec<&'static str> {
    [
        (1, "temperature"),
        (2, "rate-of-rise"),
        (3, "off-gas"),
        (4, "smoke"),
    ]
    .into_iter()
    .filter(|(bit, _)| state & 1 << bit != 0)
    .map(|(_, name)| name)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    #[test]
    fn values_are_written_as_the_feed_takes_them() {
        let all = inputs();
        assert_eq!(all.len(), 14);
        let probe = all[3];
        assert_eq!(probe.key, "t3");
        assert_eq!(value_text(&probe, 39.25), "39.250");
        assert_eq!(value_text(&probe, -0.0001), "0.000");
        let gas = all.iter().find(|i| i.key == "gas").unwrap();
        assert_eq!(value_text(gas, 59.6), "60");
        assert_eq!(value_text(gas, -3.0), "0");
        let smoke = all.iter().find(|i| i.key == "smoke").unwrap();
        assert_eq!(value_text(smoke, 1.0), "1");
        let hum = all.iter().find(|i| i.key == "hum").unwrap();
        assert_eq!(value_text(hum, 40.0), "40.0");
    }

    #[test]
    fn a_failed_value_is_a_failed_sensor() {
        let text = r#"
name = "x"
description = "x"
start = "T-1m"
end = "T+1m"
evacuation_budget_s = 300
[expect]
never_above = "watch"
[[devices]]
name = "node-b1"
kind = "node"
zone = "z"
[[timeline]]
device = "node-b1"
signal = "rack-temperature"
channel = 2
from = "T-1m"
to = "T0"
end = 30
[[faults]]
device = "node-b1"
kind = "all-ones"
signal = "rack-temperature"
channel = 2
from = "T0"
[[faults]]
device = "node-b1"
kind = "silent"
from = "T+30s"
"#;
        let s = Scenario::parse(text, "x.toml").unwrap();
        let d = SimDevice::from_scenario(&s.devices[0]);
        let t2 = inputs()[2];
        let before = ScenarioTime::parse("T-30s").unwrap();
        assert_eq!(reading(&d, &t2, before), "27.000");
        assert_eq!(
            reading(&d, &t2, ScenarioTime::parse("T+1s").unwrap()),
            "err"
        );
        assert_eq!(reading(&d, &inputs()[1], before), "24.000", "nominal");
        assert_eq!(device_fault(&d, before), None);
        assert_eq!(
            device_fault(&d, ScenarioTime::parse("T+40s").unwrap()),
            Some(Fault::Silent)
        );
    }

    #[test]
    fn the_nodes_lines_are_read() {
        assert_eq!(parse_output("ok"), Output::Ok);
        assert_eq!(
            parse_output("err clock went back"),
            Output::Err("clock went back".into())
        );
        assert_eq!(
            parse_output("alarm at=123400 state=0x0009 faults=0x0000"),
            Output::Alarm {
                at_ms: 123_400,
                state: 9,
                faults: 0
            }
        );
        assert_eq!(
            parse_output("firebreak-node-qemu 0.1.0 unit=1 reset=1 ready"),
            Output::Ready { reset: Some(1) }
        );
        assert_eq!(
            parse_output("firebreak-node-sim 0.1.0 unit=2 gap_us=20000 ready"),
            Output::Ready { reset: None }
        );
        assert_eq!(
            parse_output(
                "status relay=1 alarm=0x0009 faults=0x0000 uptime=12 crc=3 framing=1 answered=40 at=1200 reset=0"
            ),
            Output::Status(StatusCounters {
                crc_errors: 3,
                framing_errors: 1,
                answered: 40
            })
        );
        assert_eq!(parse_output("relay on"), Output::Relay(true));
        assert!(matches!(parse_output("alarm at=x"), Output::Other(_)));
        assert_eq!(causes(0b1_1001), vec!["off-gas", "smoke"]);
    }
}
