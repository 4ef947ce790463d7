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
