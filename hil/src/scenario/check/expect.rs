//! `[expect]`: what the gateway must do (`evacuate_by` or `never_above`, and `normal_by`).

use std::time::Duration;

use firebreak_protocols::Level;

use super::Validator;
use crate::scenario::{Expectation, RawScenario, ScenarioError};
use crate::time::{ScenarioTime, human};

impl Validator<'_> {
    pub(super) fn expect(
        &self,
        raw: &RawScenario,
        budget: Duration,
    ) -> Result<Expectation, ScenarioError> {
        match (raw.expect.evacuate_by, raw.expect.never_above) {
            (Some(_), Some(_)) => {
                Err(self.err("expect", "give evacuate_by or never_above, not both"))
            }
            (None, None) => Err(self.err(
                "expect",
                "give evacuate_by (a moment) or never_above (a level)",
            )),
            (Some(by), None) => {
                let Some(loss) = raw.power_loss_at else {
                    if raw.expect.normal_by.is_some() {
                        // The power came back before it was lost: evacuate was due while the
                        // estimate was under the budget, and there is no lead time to count.
                        self.within("expect.evacuate_by", by, raw)?;
                        return Ok(Expectation::EvacuateBy(by));
                    }
                    return Err(self.err(
                        "expect.evacuate_by",
                        "needs power_loss_at (lead time is counted back from the power loss), or normal_by when the power comes back before it is lost",
                    ));
                };
                self.early_enough("expect.evacuate_by", by, raw.start, loss, budget)?;
                Ok(Expectation::EvacuateBy(by))
            }
            (None, Some(level)) => {
                if level == Level::Evacuate {
                    return Err(self.err(
                        "expect.never_above",
                        "\"evacuate\" is the highest level: this expects nothing; use normal, watch or prepare",
                    ));
                }
                if raw.power_loss_at.is_some() {
                    return Err(self.err(
                        "expect.never_above",
                        "the scenario loses power (power_loss_at): expect an evacuation with evacuate_by",
                    ));
                }
                Ok(Expectation::NeverAbove(level))
            }
        }
    }

    /// `[expect] normal_by`: inside the replay, after `evacuate_by` and after the power loss.
    pub(super) fn normal_by(
        &self,
        raw: &RawScenario,
        expect: Expectation,
    ) -> Result<Option<ScenarioTime>, ScenarioError> {
        let Some(by) = raw.expect.normal_by else {
            return Ok(None);
        };
        self.within("expect.normal_by", by, raw)?;
        if let Expectation::EvacuateBy(evacuate) = expect
            && by <= evacuate
        {
            return Err(self.err(
                "expect.normal_by",
                format!("{by} is not after evacuate_by ({evacuate}): the site returns to normal after it evacuated"),
            ));
        }
        if let Some(loss) = raw.power_loss_at
            && by <= loss
        {
            return Err(self.err(
                "expect.normal_by",
                format!("{by} is not after power_loss_at ({loss}): a site that is losing power is not back to normal"),
            ));
        }
        Ok(Some(by))
    }

    /// An evacuation expected by `by` must fall between `start` and the power loss, at least
    /// the evacuation budget before it: else it is not early, and expects nothing worth having.
    pub(super) fn early_enough(
        &self,
        key: &str,
        by: ScenarioTime,
        start: ScenarioTime,
        loss: ScenarioTime,
        budget: Duration,
    ) -> Result<(), ScenarioError> {
        if by < start || by > loss {
            return Err(self.err(
                key,
                format!("{by} is not between start ({start}) and power_loss_at ({loss})"),
            ));
        }
        let lead = loss.since(by).unwrap_or_default();
        if lead < budget {
            return Err(self.err(
                key,
                format!(
                    "{by} is {} before power loss at {loss}, less than evacuation_budget_s ({} s): such an evacuation is not early",
                    human(lead),
                    budget.as_secs()
                ),
            ));
        }
        Ok(())
    }
}
