//! The policy engine: from fused signals to evacuation levels, with no false evacuations.
//!
//! [`Engine::step`] takes samples and the time, and returns [`Transition`]s; it does no I/O and
//! reads no clock, so the same input always gives the same output and a 30-minute incident
//! replays in milliseconds. The time-series primitives (rate of rise, debounce, hysteresis)
//! come from `firebreak_protocols::series`, which the firmware uses too.
//!
//! How it judges, in short (docs/policy.md has the whole of it):
//! - every [`Rule`] is evaluated per zone; per-sensor rules keep one detector per
//!   (device, signal, channel), and `corroborate = k` asks k of them to agree;
//! - only good-quality values are evidence: a stale, comm-lost, faulty or out-of-range value
//!   never fires a rule; a sensor that fired and then lost quality *holds* the level (never
//!   raises it), so an evacuation is not cleared because the fire destroyed the sensor;
//! - a zone's level rises at once to the highest level of its firing rules, and falls only
//!   once every rule holding the higher level has been clear for the hold time; the site's
//!   level is the highest of its zones'.

mod engine;
mod rules;
pub mod view;

pub use engine::{
    DEFAULT_EVACUATION_BUDGET_S, DEFAULT_HOLD_S, DEFAULT_MARGIN_S, Engine, EngineStats, FaultKind,
    Policy, SensorFault, Topology, Transition, Witness, describe,
};
pub use rules::{
    DEFAULT_INPUT_PRESENT_V, DEFAULT_RULES, MAX_RULES, MIN_SINGLE_WITNESS_MS, RATE_POINTS, RawNeed,
    RawRule, RawRules, Rule, RuleKind, Rules,
};

#[cfg(test)]
mod tests;
