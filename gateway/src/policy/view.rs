//! What the status endpoint shows of the policy: levels, the open incident, recent changes.

use std::collections::VecDeque;

use firebreak_protocols::{Level, Reason};
use serde::Serialize;

use super::{Engine, Transition};

/// How many recent transitions `/status` keeps.
pub const RECENT: usize = 32;

/// One zone's level and the rules firing in it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ZoneView {
    /// The zone.
    pub zone: String,
    /// Its level.
    pub level: Level,
    /// The rules firing there now.
    pub firing: Vec<String>,
    /// Why it is at its level now: each reason with the value seen and the threshold it was
    /// compared with, strongest first; empty at `normal`.
    pub reasons: Vec<Reason>,
}

/// A transition as `/status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TransitionView {
    /// The zone, absent for the site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// From.
    pub previous: Level,
    /// To.
    pub level: Level,
    /// When, in milliseconds on the policy clock.
    pub at_ms: u64,
    /// Why.
    pub reasons: Vec<Reason>,
    /// The estimate carried, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_to_power_loss: Option<u32>,
}

/// The policy's state for the status endpoint and the metrics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LevelsView {
    /// The site's level.
    pub site: Level,
    /// The open incident.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// The site's estimated seconds to power loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_to_power_loss: Option<u32>,
    /// Each zone.
    pub zones: Vec<ZoneView>,
    /// The latest transitions, newest last.
    pub recent: VecDeque<TransitionView>,
    /// Transitions since start.
    pub transitions_total: u64,
    /// Readings judged not to be evidence now (docs/policy.md, "Plausibility").
    pub sensor_faults: Vec<FaultView>,
}

/// A reading the engine judged faulty, as `/status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FaultView {
    /// The device.
    pub device: String,
    /// Its zone.
    pub zone: String,
    /// The signal.
    pub signal: firebreak_protocols::Signal,
    /// The channel.
    pub channel: u8,
    /// `jump`, `rail`, `flap` or `reported`.
    pub kind: &'static str,
    /// The value judged; absent when not a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f32>,
    /// What it was judged against (the reading before a jump, the rail crossed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<f32>,
    /// Since when, on the policy clock, in milliseconds.
    pub since_ms: u64,
}

impl Default for LevelsView {
    fn default() -> Self {
        Self {
            site: Level::Normal,
            incident: None,
            seconds_to_power_loss: None,
            zones: Vec::new(),
            recent: VecDeque::new(),
            transitions_total: 0,
            sensor_faults: Vec::new(),
        }
    }
}

impl LevelsView {
    /// Refreshes from the engine after a step, recording its transitions.
    pub fn update(&mut self, engine: &Engine, transitions: &[Transition]) {
        self.site = engine.site_level();
        self.incident = engine.incident().map(|i| i.to_string());
        self.seconds_to_power_loss = engine.seconds_to_power_loss();
        self.zones = engine
            .zone_levels()
            .map(|(z, level)| ZoneView {
                zone: z.to_string(),
                level,
                firing: engine
                    .firing(z.as_str())
                    .into_iter()
                    .map(String::from)
                    .collect(),
                reasons: engine.reasons(z.as_str()),
            })
            .collect();
        self.sensor_faults = engine
            .sensor_faults()
            .into_iter()
            .map(|f| FaultView {
                device: f.device.to_string(),
                zone: f.zone.to_string(),
                signal: f.signal,
                channel: f.channel,
                kind: f.kind.name(),
                value: f.value.is_finite().then_some(f.value),
                reference: f.reference.is_finite().then_some(f.reference),
                since_ms: f.since_ms,
            })
            .collect();
        for t in transitions {
            self.transitions_total += 1;
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(TransitionView {
                zone: t.zone.as_ref().map(|z| z.to_string()),
                previous: t.previous,
                level: t.level,
                at_ms: t.at_ms,
                reasons: t.reasons.clone(),
                seconds_to_power_loss: t.seconds_to_power_loss,
            });
        }
    }
}
