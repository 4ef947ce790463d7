//! One simulated device: what it serves at a scenario moment, with its faults applied.
//!
//! A device does nothing on its own and owns no task: it computes its registers (or its MQTT
//! payload) when asked, from the scenario clock's time. That keeps a device to a few hundred
//! bytes, so one process can serve thousands of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use firebreak_protocols::{
    DeviceId, EncodeError, RegisterDescriptor, Signal, SignalKind, Table, encode_bit, encode_raw,
    encode_words,
};
use tokio_modbus::{ExceptionCode, Request, Response};

use crate::scenario::{
    Device, DeviceKind, Fault, FaultScope, FaultWindow, ScriptedSignal, Window, nominal,
};
use crate::time::ScenarioTime;

/// The most registers one read may ask for (Modbus application protocol 1.1b3, 6.3).
pub const MAX_READ_REGISTERS: u16 = 125;
/// The most bits one read may ask for (6.1).
pub const MAX_READ_BITS: u16 = 2000;

/// Counters of what a device was asked and how it answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Requests (Modbus) or publication ticks (MQTT).
    pub requests: u64,
    /// Normal answers (MQTT: payloads published).
    pub answered: u64,
    /// Exception answers.
    pub exceptions: u64,
    /// Requests left unanswered (silent, network cut).
    pub unanswered: u64,
    /// Connections dropped.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    answered: AtomicU64,
    exceptions: AtomicU64,
    unanswered: AtomicU64,
    dropped: AtomicU64,
}

/// What the rig changed by hand, on top of the script.
#[derive(Debug)]
struct Live {
    /// Values set by hand: (signal, channel, value).
    overrides: Vec<(Signal, u8, f32)>,
    /// A fault injected by hand.
    injected: Option<FaultWindow>,
    /// The network to the device is cut by hand.
    cut: bool,
    /// Random register contents for `garbage`.
    rng: fastrand::Rng,
    /// When the device last booted and why (the reset-reason code): its `device-uptime`
    /// counts from then, in scenario time.
    booted: Option<(ScenarioTime, u16)>,
}

/// The faults acting at one moment, sorted by what they do.
#[derive(Debug, Default, Clone)]
pub struct ActiveFaults {
    /// What happens to the request as a whole: silent, drop or exception (drop wins over
    /// silent, silent over exception).
    pub link: Option<Fault>,
    /// Added real-time delay.
    pub delay: Duration,
    /// Garbage, all-ones or stuck on the whole device, and when it started.
    pub device: Option<(Fault, ScenarioTime)>,
    /// Garbage, all-ones or stuck on single values.
    pub values: Vec<(Signal, u8, Fault, ScenarioTime)>,
}

impl ActiveFaults {
    fn add(&mut self, f: &FaultWindow) {
        match (f.fault, f.scope) {
            (Fault::Slow(d), _) => self.delay = self.delay.max(d),
            (link @ (Fault::Silent | Fault::Drop | Fault::Exception(_)), _) => {
                let rank = |f: Option<Fault>| match f {
                    Some(Fault::Drop) => 3,
                    Some(Fault::Silent) => 2,
                    Some(Fault::Exception(_)) => 1,
                    _ => 0,
                };
                if rank(Some(link)) > rank(self.link) {
                    self.link = Some(link);
                }
            }
            (fault, FaultScope::Device) => self.device = Some((fault, f.window.from)),
            (fault, FaultScope::Value { signal, channel }) => {
                self.values.push((signal, channel, fault, f.window.from));
            }
        }
    }

    /// Whether nothing acts.
    pub fn is_empty(&self) -> bool {
        self.link.is_none()
            && self.delay.is_zero()
            && self.device.is_none()
            && self.values.is_empty()
    }
}

/// How a Modbus request is answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A normal response.
    Respond(Response),
    /// An exception response.
    Exception(ExceptionCode),
    /// No response: the request times out.
    Silent,
    /// The connection is closed.
    Drop,
}

/// What an MQTT sensor does at a publication tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Publication {
    /// Publish this payload, after this real-time delay.
    Publish(Vec<u8>, Duration),
    /// Publish nothing; stay connected.
    Silent,
    /// Be disconnected from the broker.
    Disconnected,
}

/// The registers of one table a device serves: from its lowest to its highest mapped
/// address. Unmapped addresses inside the span read 0; reads outside it are refused with
/// exception 02, as most devices do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    table: Table,
    start: u16,
    end: u32,
}

/// A simulated device.
#[derive(Debug)]
pub struct SimDevice {
    name: DeviceId,
    kind: Option<DeviceKind>,
    registers: Arc<[RegisterDescriptor]>,
    spans: Vec<Span>,
    signals: Vec<ScriptedSignal>,
    faults: Vec<FaultWindow>,
    network_cuts: Vec<Window>,
    live: Mutex<Live>,
    counters: Counters,
}

fn seed(name: &str) -> u64 {
    // FNV-1a: a fixed seed per device name, so garbage is the same from run to run.
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl SimDevice {
    /// The device of a scenario, with its script, faults and network cuts.
    pub fn from_scenario(device: &Device) -> SimDevice {
        let registers: Arc<[RegisterDescriptor]> = device
            .kind
            .profile()
            .map(|p| Arc::from(p.registers))
            .unwrap_or_else(|| Arc::from(Vec::new()));
        let mut d = SimDevice::new(device.name.clone(), Some(device.kind), registers);
        d.signals = device.signals.clone();
        d.faults = device.faults.clone();
        d.network_cuts = device.network_cuts.clone();
        d
    }

    /// A Modbus device serving `registers` at their [`nominal`] values, without a script: for
    /// load runs, where many devices share one register map. Set values with
    /// [`set_value`](Self::set_value).
    pub fn modbus(name: DeviceId, registers: Arc<[RegisterDescriptor]>) -> SimDevice {
        SimDevice::new(name, None, registers)
    }

    fn new(
        name: DeviceId,
        kind: Option<DeviceKind>,
        registers: Arc<[RegisterDescriptor]>,
    ) -> SimDevice {
        let mut spans: Vec<Span> = Vec::new();
        for d in registers.iter() {
            match spans.iter_mut().find(|s| s.table == d.table) {
                Some(s) => {
                    s.start = s.start.min(d.address);
                    s.end = s.end.max(d.end());
                }
                None => spans.push(Span {
                    table: d.table,
                    start: d.address,
                    end: d.end(),
                }),
            }
        }
        let rng = fastrand::Rng::with_seed(seed(name.as_str()));
        SimDevice {
            name,
            kind,
            registers,
            spans,
            signals: Vec::new(),
            faults: Vec::new(),
            network_cuts: Vec::new(),
            live: Mutex::new(Live {
                overrides: Vec::new(),
                injected: None,
                cut: false,
                rng,
                booted: None,
            }),
            counters: Counters::default(),
        }
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        // Held for a few statements that leave the state consistent; never across an await.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Its id.
    pub fn name(&self) -> &DeviceId {
        &self.name
    }

    /// What it is; `None` for a device made from a register map ([`modbus`](Self::modbus)).
    pub fn kind(&self) -> Option<DeviceKind> {
        self.kind
    }

    /// Its register map (empty for MQTT devices).
    pub fn registers(&self) -> &[RegisterDescriptor] {
        &self.registers
    }

    /// Sets a value by hand, over the script, until [`clear_value`](Self::clear_value).
    /// Refused when the device does not serve the signal or the value does not fit.
    pub fn set_value(&self, signal: Signal, channel: u8, value: f32) -> Result<(), EncodeError> {
        if let Some(d) = self.descriptor(signal, channel) {
            encode_raw(d, value)?;
        } else if !value.is_finite() {
            return Err(EncodeError::NotFinite { value });
        }
        let mut live = self.live();
        live.overrides
            .retain(|(s, c, _)| !(*s == signal && *c == channel));
        live.overrides.push((signal, channel, value));
        Ok(())
    }

    /// Returns a value set by hand to the script.
    pub fn clear_value(&self, signal: Signal, channel: u8) {
        self.live()
            .overrides
            .retain(|(s, c, _)| !(*s == signal && *c == channel));
    }

    /// Injects a fault by hand from `now` on, over the scripted ones, until
    /// [`clear_fault`](Self::clear_fault).
    pub fn inject(&self, fault: Fault, scope: FaultScope, now: ScenarioTime) {
        self.live().injected = Some(FaultWindow {
            window: Window {
                from: now,
                to: None,
            },
            fault,
            scope,
        });
    }

    /// The device boots at `at` (scenario time) for reason `reset_reason` (the
    /// `reset-reason` code: 0 power-on, 1 watchdog, …): from then on it serves its
    /// `device-uptime` as the scenario seconds since, unless the script sets it.
    pub fn boot(&self, at: ScenarioTime, reset_reason: u16) {
        self.live().booted = Some((at, reset_reason));
    }

    /// Injects a fault by hand for a window of scenario time, over the scripted ones.
    pub fn inject_window(&self, fault: Fault, scope: FaultScope, window: Window) {
        self.live().injected = Some(FaultWindow {
            window,
            fault,
            scope,
        });
    }

    /// Ends a fault injected by hand.
    pub fn clear_fault(&self) {
        self.live().injected = None;
    }

    /// Cuts (or restores) the network to the device by hand: it answers nothing.
    pub fn set_cut(&self, cut: bool) {
        self.live().cut = cut;
    }

    /// What it was asked and how it answered.
    pub fn stats(&self) -> DeviceStats {
        let c = &self.counters;
        DeviceStats {
            requests: c.requests.load(Ordering::Relaxed),
            answered: c.answered.load(Ordering::Relaxed),
            exceptions: c.exceptions.load(Ordering::Relaxed),
            unanswered: c.unanswered.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    fn descriptor(&self, signal: Signal, channel: u8) -> Option<&RegisterDescriptor> {
        self.registers
            .iter()
            .find(|d| d.signal == signal && d.channel == channel)
    }

    /// The faults acting at `t`: scripted, network cuts, and injected by hand.
    pub fn faults_at(&self, t: ScenarioTime) -> ActiveFaults {
        let mut active = ActiveFaults::default();
        for f in self.faults.iter().filter(|f| f.window.contains(t)) {
            active.add(f);
        }
        let live = self.live();
        if let Some(f) = live.injected.as_ref().filter(|f| f.window.contains(t)) {
            active.add(f);
        }
        if live.cut || self.network_cuts.iter().any(|w| w.contains(t)) {
            active.add(&FaultWindow {
                window: Window { from: t, to: None },
                fault: Fault::Silent,
                scope: FaultScope::Device,
            });
        }
        active
    }

    /// The value of a signal at `t`, before register-level faults: set by hand, else
    /// scripted, else nominal; frozen at the fault's start when stuck.
    pub fn value_at(&self, signal: Signal, channel: u8, t: ScenarioTime) -> f32 {
        let faults = self.faults_at(t);
        self.value_with(signal, channel, t, &faults)
    }

    fn value_with(
        &self,
        signal: Signal,
        channel: u8,
        t: ScenarioTime,
        faults: &ActiveFaults,
    ) -> f32 {
        let stuck_since = faults
            .values
            .iter()
            .find(|(s, c, f, _)| *s == signal && *c == channel && *f == Fault::Stuck)
            .map(|(_, _, _, from)| *from)
            .or(match faults.device {
                Some((Fault::Stuck, from)) => Some(from),
                _ => None,
            });
        if let Some(&(_, _, v)) = self
            .live()
            .overrides
            .iter()
            .find(|(s, c, _)| *s == signal && *c == channel)
        {
            return v;
        }
        let at = stuck_since.unwrap_or(t);
        self.signals
            .iter()
            .find(|s| s.signal == signal && s.channel == channel)
            .and_then(|s| s.value_at(at))
            .or_else(|| {
                let (booted, reason) = self.live().booted?;
                match signal {
                    Signal::DeviceUptime => {
                        Some(at.since(booted).map_or(0.0, |d| d.as_secs() as f32))
                    }
                    Signal::ResetReason => Some(f32::from(reason)),
                    _ => None,
                }
            })
            .unwrap_or_else(|| nominal(signal))
    }

    /// Answers a Modbus request at scenario time `t`, and the real time to wait before
    /// answering.
    pub fn answer(&self, t: ScenarioTime, request: &Request<'_>) -> (Answer, Duration) {
        let c = &self.counters;
        c.requests.fetch_add(1, Ordering::Relaxed);
        let faults = self.faults_at(t);
        let answer = match faults.link {
            Some(Fault::Drop) => Answer::Drop,
            Some(Fault::Silent) => Answer::Silent,
            Some(Fault::Exception(code)) => Answer::Exception(ExceptionCode::new(code)),
            _ => match self.read(t, request, &faults) {
                Ok(r) => Answer::Respond(r),
                Err(code) => Answer::Exception(code),
            },
        };
        let counter = match answer {
            Answer::Respond(_) => &c.answered,
            Answer::Exception(_) => &c.exceptions,
            Answer::Silent => &c.unanswered,
            Answer::Drop => &c.dropped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        (answer, faults.delay)
    }

    fn read(
        &self,
        t: ScenarioTime,
        request: &Request<'_>,
        faults: &ActiveFaults,
    ) -> Result<Response, ExceptionCode> {
        let (table, start, count) = match *request {
            Request::ReadCoils(a, n) => (Table::Coil, a, n),
            Request::ReadDiscreteInputs(a, n) => (Table::DiscreteInput, a, n),
            Request::ReadHoldingRegisters(a, n) => (Table::Holding, a, n),
            Request::ReadInputRegisters(a, n) => (Table::Input, a, n),
            // The simulated devices are read-only, as a UPS card's status block is.
            _ => return Err(ExceptionCode::IllegalFunction),
        };
        let max = if table.is_bits() {
            MAX_READ_BITS
        } else {
            MAX_READ_REGISTERS
        };
        if count == 0 || count > max {
            return Err(ExceptionCode::IllegalDataValue);
        }
        let span = self
            .spans
            .iter()
            .find(|s| s.table == table)
            .filter(|s| start >= s.start && u32::from(start) + u32::from(count) <= s.end)
            .ok_or(ExceptionCode::IllegalDataAddress)?;
        let offset = usize::from(start - span.start);
        let range = offset..offset + usize::from(count);
        let len = usize::try_from(span.end - u32::from(span.start)).unwrap_or(0);
        let in_table = || self.registers.iter().filter(move |d| d.table == table);
        if table.is_bits() {
            let mut bits = vec![false; len];
            for d in in_table() {
                let value = self.value_with(d.signal, d.channel, t, faults);
                if let (Some(bit), Ok(on)) = (
                    bits.get_mut(usize::from(d.address - span.start)),
                    encode_bit(d, value),
                ) {
                    *bit = on;
                }
            }
            let bits = bits.get(range).map(<[bool]>::to_vec).unwrap_or_default();
            return Ok(match table {
                Table::Coil => Response::ReadCoils(bits),
                _ => Response::ReadDiscreteInputs(bits),
            });
        }
        let mut words = vec![0u16; len];
        for d in in_table() {
            let value = self.value_with(d.signal, d.channel, t, faults);
            if let Some(slot) = words.get_mut(usize::from(d.address - span.start)..) {
                // Values were checked when set or scripted; one that does not fit leaves 0.
                encode_words(d, value, slot).ok();
            }
        }
        {
            let mut live = self.live();
            for (signal, channel, fault, _) in &faults.values {
                let Some(d) = self.descriptor(*signal, *channel) else {
                    continue;
                };
                let at = usize::from(d.address - span.start);
                let width = usize::from(d.data_type.width());
                if d.table != table {
                    continue;
                }
                for w in words.iter_mut().skip(at).take(width) {
                    match fault {
                        Fault::AllOnes => *w = 0xFFFF,
                        Fault::Garbage => *w = live.rng.u16(..),
                        _ => {}
                    }
                }
            }
            match faults.device {
                Some((Fault::AllOnes, _)) => words.fill(0xFFFF),
                Some((Fault::Garbage, _)) => words.iter_mut().for_each(|w| *w = live.rng.u16(..)),
                _ => {}
            }
        }
        let words = words.get(range).map(<[u16]>::to_vec).unwrap_or_default();
        Ok(match table {
            Table::Holding => Response::ReadHoldingRegisters(words),
            _ => Response::ReadInputRegisters(words),
        })
    }

    /// The signals an MQTT device publishes (see [`published_signals`]).
    pub fn published_signals(&self) -> Vec<Signal> {
        published_signals(&self.signals)
    }

    /// What an MQTT device publishes at scenario time `t`.
    pub fn publication(&self, t: ScenarioTime) -> Publication {
        let c = &self.counters;
        c.requests.fetch_add(1, Ordering::Relaxed);
        let faults = self.faults_at(t);
        match faults.link {
            Some(Fault::Drop) => {
                c.dropped.fetch_add(1, Ordering::Relaxed);
                return Publication::Disconnected;
            }
            Some(Fault::Silent) => {
                c.unanswered.fetch_add(1, Ordering::Relaxed);
                return Publication::Silent;
            }
            _ => {}
        }
        let value_fault = |signal: Signal| {
            faults
                .values
                .iter()
                .find(|(s, c, _, _)| *s == signal && *c == 0)
                .map(|(_, _, f, _)| *f)
                .or(faults.device.map(|(f, _)| f))
        };
        if faults.device.map(|(f, _)| f) == Some(Fault::Garbage) {
            c.answered.fetch_add(1, Ordering::Relaxed);
            return Publication::Publish(b"\x01\xfe{not json".to_vec(), faults.delay);
        }
        let mut json = serde_json::Map::new();
        for signal in self.published_signals() {
            let value = self.value_with(signal, 0, t, &faults);
            let field = match value_fault(signal) {
                Some(Fault::AllOnes) => serde_json::Value::from(65535),
                Some(Fault::Garbage) => serde_json::Value::from("\u{1}garbage"),
                _ if signal.kind() == SignalKind::State => serde_json::Value::Bool(value != 0.0),
                _ => serde_json::Number::from_f64(f64::from(value))
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::Null),
            };
            json.insert(mqtt_field(signal).to_string(), field);
        }
        c.answered.fetch_add(1, Ordering::Relaxed);
        let payload = serde_json::Value::Object(json).to_string().into_bytes();
        Publication::Publish(payload, faults.delay)
    }
}

/// The signals an MQTT device with this script publishes: room temperature and humidity,
/// and every signal its script changes.
pub fn published_signals(script: &[ScriptedSignal]) -> Vec<Signal> {
    let mut signals = vec![Signal::RoomTemperature, Signal::RoomHumidity];
    for s in script {
        if !signals.contains(&s.signal) {
            signals.push(s.signal);
        }
    }
    signals
}

/// The JSON field an MQTT device publishes a signal under: `temperature` and `humidity` for
/// the room's air, as building sensors name them, else the signal's name.
pub fn mqtt_field(signal: Signal) -> &'static str {
    match signal {
        Signal::RoomTemperature => "temperature",
        Signal::RoomHumidity => "humidity",
        other => other.name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    const SCENARIO: &str = r#"
name = "t"
description = "unit test"
start = "T-10m"
end = "T+10m"
evacuation_budget_s = 300
[expect]
never_above = "watch"
[[devices]]
name = "ups"
kind = "ups"
zone = "room"
[[devices]]
name = "node"
kind = "node"
zone = "room"
[[devices]]
name = "bms"
kind = "room-mqtt"
zone = "room"
[[timeline]]
device = "ups"
signal = "ups-on-battery"
at = "T0"
value = true
[[timeline]]
device = "ups"
signal = "ups-runtime-remaining"
from = "T0"
to = "T+10m"
end = 0
[[timeline]]
device = "node"
signal = "rack-temperature"
channel = 3
from = "T-5m"
to = "T0"
end = 39.0
[[timeline]]
device = "bms"
signal = "generator-running"
at = "T+1m"
value = true
[[faults]]
device = "ups"
kind = "exception"
code = 6
from = "T+1m"
to = "T+2m"
[[faults]]
device = "ups"
kind = "slow"
delay_ms = 700
from = "T+3m"
to = "T+4m"
[[faults]]
device = "node"
kind = "all-ones"
signal = "off-gas"
from = "T+1m"
to = "T+2m"
[[faults]]
device = "node"
kind = "stuck"
signal = "rack-temperature"
channel = 3
from = "T-2m"
to = "T+2m"
[[faults]]
device = "bms"
kind = "garbage"
from = "T+5m"
[[events]]
at = "T+8m"
kind = "network-cut"
devices = ["node"]
"#;

    fn devices() -> (SimDevice, SimDevice, SimDevice) {
        let s = Scenario::parse(SCENARIO, "t.toml").unwrap();
        let d = |n: &str| SimDevice::from_scenario(s.device(n).unwrap());
        (d("ups"), d("node"), d("bms"))
    }

    fn min(m: i64) -> ScenarioTime {
        ScenarioTime::from_secs(m * 60)
    }

    fn holding(d: &SimDevice, t: ScenarioTime, start: u16, n: u16) -> (Answer, Duration) {
        d.answer(t, &Request::ReadHoldingRegisters(start, n))
    }

    #[test]
    fn ups_registers_follow_the_script() {
        let (ups, _, _) = devices();
        let (a, delay) = holding(&ups, min(-5), 0, 7);
        assert_eq!(
            a,
            Answer::Respond(Response::ReadHoldingRegisters(vec![
                0, 600, 100, 250, 2300, 2300, 45
            ]))
        );
        assert_eq!(delay, Duration::ZERO);
        let (a, _) = holding(&ups, min(5), 0, 2);
        assert_eq!(
            a,
            Answer::Respond(Response::ReadHoldingRegisters(vec![1, 300]))
        );
    }

    #[test]
    fn faults_act_in_their_windows() {
        let (ups, node, _) = devices();
        let t = ScenarioTime::from_secs(90);
        assert_eq!(
            holding(&ups, t, 0, 7).0,
            Answer::Exception(ExceptionCode::ServerDeviceBusy)
        );
        let (a, delay) = holding(&ups, ScenarioTime::from_secs(200), 1, 1);
        assert_eq!(
            a,
            Answer::Respond(Response::ReadHoldingRegisters(vec![400]))
        );
        assert_eq!(delay, Duration::from_millis(700));
        // Off-gas (input 8) reads 0xFFFF; rack probe 3 stuck at its T-2m value (24 + 15 * 3/5).
        let (a, _) = node.answer(t, &Request::ReadInputRegisters(0, 12));
        let Answer::Respond(Response::ReadInputRegisters(words)) = a else {
            panic!("{a:?}")
        };
        assert_eq!(words[8], 0xFFFF);
        assert_eq!(words[3], 330);
        assert_eq!(words[2], 240);
        // The network cut from T+8m: nothing answers.
        assert_eq!(
            node.answer(min(9), &Request::ReadInputRegisters(0, 1)).0,
            Answer::Silent
        );
        let stats = ups.stats();
        assert_eq!(
            (stats.requests, stats.exceptions, stats.answered),
            (2, 1, 1)
        );
    }

    #[test]
    fn refusals_like_a_device() {
        let (ups, node, _) = devices();
        let t = ScenarioTime::T0;
        let exception = |d: &SimDevice, r: Request<'_>| match d.answer(t, &r).0 {
            Answer::Exception(c) => u8::from(c),
            other => panic!("{other:?}"),
        };
        assert_eq!(exception(&ups, Request::ReadHoldingRegisters(5, 3)), 0x02);
        assert_eq!(exception(&ups, Request::ReadInputRegisters(0, 1)), 0x02);
        assert_eq!(exception(&ups, Request::ReadHoldingRegisters(0, 0)), 0x03);
        assert_eq!(exception(&ups, Request::WriteSingleRegister(0, 1)), 0x01);
        // The node serves input 0..=108: the gap between its readings and status block reads 0.
        let (a, _) = node.answer(t, &Request::ReadInputRegisters(100, 8));
        assert_eq!(a, Answer::Respond(Response::ReadInputRegisters(vec![0; 8])));
        assert_eq!(exception(&node, Request::ReadInputRegisters(100, 10)), 0x02);
    }

    #[test]
    fn values_and_faults_by_hand() {
        let (ups, _, _) = devices();
        let t = min(-5);
        ups.set_value(Signal::UpsLoad, 0, 80.0).unwrap();
        assert_eq!(ups.value_at(Signal::UpsLoad, 0, t), 80.0);
        assert!(ups.set_value(Signal::UpsLoad, 0, -3.0).is_err());
        ups.clear_value(Signal::UpsLoad, 0);
        assert_eq!(ups.value_at(Signal::UpsLoad, 0, t), 45.0);
        ups.inject(Fault::AllOnes, FaultScope::Device, t);
        assert_eq!(
            holding(&ups, t, 0, 2).0,
            Answer::Respond(Response::ReadHoldingRegisters(vec![0xFFFF, 0xFFFF]))
        );
        ups.inject(Fault::Drop, FaultScope::Device, t);
        assert_eq!(holding(&ups, t, 0, 2).0, Answer::Drop);
        ups.clear_fault();
        ups.set_cut(true);
        assert_eq!(holding(&ups, t, 0, 2).0, Answer::Silent);
        ups.set_cut(false);
        assert!(matches!(holding(&ups, t, 0, 2).0, Answer::Respond(_)));
    }

    #[test]
    fn mqtt_payloads() {
        let (_, _, bms) = devices();
        let Publication::Publish(p, _) = bms.publication(ScenarioTime::T0) else {
            panic!()
        };
        // Field order depends on serde_json's features in the build; compare as JSON.
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&p).unwrap(),
            serde_json::json!({"temperature": 23.0, "humidity": 40.0, "generator-running": false})
        );
        let Publication::Publish(p, _) = bms.publication(min(2)) else {
            panic!()
        };
        assert!(
            String::from_utf8(p)
                .unwrap()
                .contains(r#""generator-running":true"#)
        );
        let Publication::Publish(p, _) = bms.publication(min(6)) else {
            panic!()
        };
        assert!(serde_json::from_slice::<serde_json::Value>(&p).is_err());
    }
}
