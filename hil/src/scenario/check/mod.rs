//! The checks a scenario passes before anything runs: what the types alone cannot say. One
//! module per section of the file; [`Validator::scenario`] runs them in order (devices
//! first: the timeline, faults, events and node expectations name them).

use std::time::Duration;

use firebreak_protocols::{IdError, SiteId};

use super::{MAX_DURATION, MAX_HOLD_S, RawScenario, Scenario, ScenarioError};
use crate::time::{ScenarioTime, human};

mod devices;
mod events;
mod expect;
mod faults;
mod gateways;
mod node;
mod timeline;

/// Checks one scenario; `origin` names it in errors.
pub(super) struct Validator<'a> {
    pub(super) origin: &'a str,
}

impl Validator<'_> {
    fn err(&self, path: impl Into<String>, problem: impl Into<String>) -> ScenarioError {
        ScenarioError {
            origin: self.origin.to_string(),
            line: None,
            path: path.into(),
            problem: problem.into(),
        }
    }

    fn id<T: std::str::FromStr<Err = IdError>>(
        &self,
        path: &str,
        s: &str,
    ) -> Result<T, ScenarioError> {
        s.parse()
            .map_err(|e: IdError| self.err(path, format!("{s:?} {e}")))
    }

    pub(super) fn scenario(&self, raw: RawScenario) -> Result<Scenario, ScenarioError> {
        // The name becomes part of the generated site id ("hil-<name>").
        let _: SiteId = self.id("name", &format!("hil-{}", raw.name))?;
        if raw.name.is_empty() || raw.name.len() > 48 {
            return Err(self.err("name", "must be 1 to 48 bytes long"));
        }
        if raw.description.trim().is_empty() {
            return Err(self.err("description", "say in one line what the scenario models"));
        }
        let (start, end) = (raw.start, raw.end);
        let duration = end
            .since(start)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| self.err("end", format!("{end} is not after start ({start})")))?;
        if duration > MAX_DURATION {
            return Err(self.err(
                "end",
                format!("the replay lasts {}, more than a day", human(duration)),
            ));
        }
        let time_scale = match raw.time_scale {
            Some(s) => {
                crate::clock::check_scale(s).map_err(|e| self.err("time_scale", e.to_string()))?
            }
            None => 1.0,
        };
        let max_time_scale = match raw.max_time_scale {
            Some(m) => {
                let m = crate::clock::check_scale(m)
                    .map_err(|e| self.err("max_time_scale", e.to_string()))?;
                if m < time_scale {
                    return Err(self.err(
                        "max_time_scale",
                        format!("{m} is less than time_scale ({time_scale})"),
                    ));
                }
                Some(m)
            }
            None => None,
        };
        if let Some(p) = raw.power_loss_at
            && (p <= start || p > end)
        {
            return Err(self.err(
                "power_loss_at",
                format!("{p} is not after start ({start}) and at or before end ({end})"),
            ));
        }
        if !(1..=3600).contains(&raw.evacuation_budget_s) {
            return Err(self.err(
                "evacuation_budget_s",
                format!("{} is not 1..=3600 seconds", raw.evacuation_budget_s),
            ));
        }
        let evacuation_budget = Duration::from_secs(raw.evacuation_budget_s);
        let hold = match raw.hold_s {
            Some(h) if h > MAX_HOLD_S => {
                return Err(self.err(
                    "hold_s",
                    format!("{h} is more than {MAX_HOLD_S} seconds (the gateway's limit)"),
                ));
            }
            Some(h) => Some(Duration::from_secs(h)),
            None => None,
        };
        let expect = self.expect(&raw, evacuation_budget)?;
        let normal_by = self.normal_by(&raw, expect)?;

        let mut devices = self.devices(&raw.devices)?;
        self.timeline(&raw, &mut devices)?;
        self.faults(&raw, &mut devices)?;
        let mut gateways = self.gateways(&raw, &devices)?;
        let controller_expect = self.controller_expect(&raw, evacuation_budget)?;
        let events = self.events(&raw, &mut devices, &mut gateways)?;
        let node_expect = self.node_expect(&raw, &devices)?;
        let line_noise = self.line(&raw, &devices)?;
        Ok(Scenario {
            name: raw.name,
            description: raw.description.trim().to_string(),
            origin: self.origin.to_string(),
            start,
            end,
            time_scale,
            max_time_scale,
            power_loss_at: raw.power_loss_at,
            evacuation_budget,
            expect,
            normal_by,
            hold,
            devices,
            events,
            node: raw.node,
            node_expect,
            line_noise,
            with_controller: !raw.gateways.is_empty(),
            gateways,
            controller_expect,
        })
    }

    fn within(&self, path: &str, t: ScenarioTime, raw: &RawScenario) -> Result<(), ScenarioError> {
        if t < raw.start || t > raw.end {
            return Err(self.err(
                path,
                format!("{t} is outside the scenario ({}..{})", raw.start, raw.end),
            ));
        }
        Ok(())
    }
}
