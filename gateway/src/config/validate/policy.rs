//! The `[policy]` section: the rules file, hold time and the rest.

use super::*;

impl Validator<'_> {
    pub(super) fn policy(&self, raw: RawPolicy) -> Result<crate::policy::Policy, ConfigError> {
        use crate::policy::{DEFAULT_EVACUATION_BUDGET_S, DEFAULT_HOLD_S, DEFAULT_MARGIN_S};
        let budget = raw
            .evacuation_budget_s
            .unwrap_or(DEFAULT_EVACUATION_BUDGET_S);
        if !(10..=86_400).contains(&budget) {
            return Err(self.err(
                "policy.evacuation_budget_s",
                format!("{budget} is not between 10 and 86400 seconds"),
            ));
        }
        let margin = raw.margin_s.unwrap_or(DEFAULT_MARGIN_S);
        if margin > 3600 {
            return Err(self.err(
                "policy.margin_s",
                format!("{margin} is more than 3600 seconds"),
            ));
        }
        let hold = raw.hold_s.unwrap_or(DEFAULT_HOLD_S);
        if hold > 86_400 {
            return Err(self.err(
                "policy.hold_s",
                format!("{hold} is more than 86400 seconds"),
            ));
        }
        let rules = match raw.rules_file {
            None => crate::policy::Rules::default_rules()?,
            Some(file) => {
                let path = Path::new(self.origin)
                    .parent()
                    .unwrap_or(Path::new(""))
                    .join(&file);
                if !path.is_file() {
                    return Err(self.err(
                        "policy.rules_file",
                        format!("{} is not a readable file", path.display()),
                    ));
                }
                crate::policy::Rules::load(&path)?
            }
        };
        Ok(crate::policy::Policy {
            rules,
            evacuation_budget_s: budget,
            margin_s: margin,
            hold_ms: u64::from(hold) * 1000,
        })
    }
}
