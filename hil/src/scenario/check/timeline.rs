//! `[[timeline]]`: steps and ramps, gathered per signal into [`Timeline`]s.

use firebreak_protocols::{Signal, SignalKind};

use super::Validator;
use crate::scenario::{Device, RawScenario, ScenarioError, ScriptedSignal, nominal};
use crate::time::ScenarioTime;
use crate::timeline::{Segment, Timeline};

/// One entry of a signal's timeline, as read, before the timeline is built.
struct Pending {
    device: usize,
    signal: Signal,
    channel: u8,
    segments: Vec<Segment>,
    /// The raw index and start of the last entry, for ordering errors.
    last: (usize, ScenarioTime),
}

impl Validator<'_> {
    pub(super) fn timeline(
        &self,
        raw: &RawScenario,
        devices: &mut [Device],
    ) -> Result<(), ScenarioError> {
        let origin = raw.start;
        let mut pending: Vec<Pending> = Vec::new();
        for (i, c) in raw.timeline.iter().enumerate() {
            let at = format!("timeline[{i}]");
            let index = self.device_index(&format!("{at}.device"), &c.device, devices)?;
            let device = devices
                .get(index)
                .ok_or_else(|| self.err(&at, "no device"))?;
            if let Some(crate::scenario::Peer::Snmp { recording }) = &device.peer {
                return Err(self.err(
                    format!("{at}.device"),
                    format!(
                        "{} is snmpsim's recording {recording}: it serves what was recorded, a timeline cannot change it",
                        c.device
                    ),
                ));
            }
            let channel = c.channel.unwrap_or(0);
            let descriptor = self.served(&at, device, c.signal, channel)?;
            let key = pending
                .iter()
                .position(|p| p.device == index && p.signal == c.signal && p.channel == channel);
            let begins;
            let segment = match (c.at, c.value, c.from, c.to, c.start, c.end) {
                (Some(t), Some(v), None, None, None, None) => {
                    self.within(&format!("{at}.at"), t, raw)?;
                    begins = t;
                    Segment::Step {
                        at: t.since(origin).unwrap_or_default(),
                        value: self.value(&format!("{at}.value"), c.signal, descriptor, v.0)?,
                    }
                }
                (None, None, Some(from), Some(to), start, Some(end)) => {
                    self.within(&format!("{at}.from"), from, raw)?;
                    self.within(&format!("{at}.to"), to, raw)?;
                    if to <= from {
                        return Err(self.err(
                            format!("{at}.to"),
                            format!("{to} is not after from ({from})"),
                        ));
                    }
                    if c.signal.kind() == SignalKind::State {
                        return Err(self.err(
                            &at,
                            format!(
                                "{} is a state: give it steps (at, value), not a ramp",
                                c.signal
                            ),
                        ));
                    }
                    let start = match start {
                        Some(v) => v.0,
                        // The value the signal has at `from`: its last change, or nominal.
                        None => key
                            .and_then(|k| pending.get(k))
                            .and_then(|p| Timeline::new(p.segments.clone()).ok())
                            .and_then(|t| t.value_at(from.since(origin).unwrap_or_default()))
                            .unwrap_or_else(|| nominal(c.signal)),
                    };
                    begins = from;
                    Segment::Ramp {
                        from: from.since(origin).unwrap_or_default(),
                        to: to.since(origin).unwrap_or_default(),
                        start: self.value(&format!("{at}.start"), c.signal, descriptor, start)?,
                        end: self.value(&format!("{at}.end"), c.signal, descriptor, end.0)?,
                    }
                }
                _ => {
                    return Err(self.err(
                        &at,
                        "give at and value (a step), or from, to and end (a ramp; start is optional)",
                    ));
                }
            };
            match key.and_then(|k| pending.get_mut(k)) {
                Some(p) => {
                    let (j, previous) = p.last;
                    if begins < previous {
                        return Err(self.err(
                            &at,
                            format!(
                                "starts at {begins}, before timeline[{j}] at {previous}, an earlier change of the same signal: list a signal's changes in time order"
                            ),
                        ));
                    }
                    p.segments.push(segment);
                    p.last = (i, begins);
                }
                None => pending.push(Pending {
                    device: index,
                    signal: c.signal,
                    channel,
                    segments: vec![segment],
                    last: (i, begins),
                }),
            }
        }
        for p in pending {
            let (i, _) = p.last;
            let timeline = Timeline::new(p.segments)
                .map_err(|e| self.err(format!("timeline[{i}]"), e.to_string()))?;
            if let Some(d) = devices.get_mut(p.device) {
                d.signals.push(ScriptedSignal {
                    signal: p.signal,
                    channel: p.channel,
                    origin,
                    timeline,
                });
            }
        }
        Ok(())
    }
}
