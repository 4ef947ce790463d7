//! `[[gateways]]` (the gateway processes of the site) and the `[expect] controller_*` keys
//! judged on the controller that merges them.

use std::time::Duration;

use firebreak_protocols::{GatewayId, Level};

use super::Validator;
use crate::scenario::{
    Bus, ControllerExpectation, Device, DeviceKind, GatewaySpec, MAX_GATEWAY_NAME, MAX_GATEWAYS,
    POLL_FACTORS, RawScenario, ScenarioError,
};

impl Validator<'_> {
    /// The gateways: one implicit gateway (`gw-<scenario>`) without `[[gateways]]`, else one
    /// per entry (`gw-<scenario>-<name>`), the first on the node's bus A, the second on B.
    pub(super) fn gateways(
        &self,
        raw: &RawScenario,
        devices: &[Device],
    ) -> Result<Vec<GatewaySpec>, ScenarioError> {
        if raw.gateways.is_empty() {
            return Ok(vec![GatewaySpec {
                name: String::new(),
                id: format!("gw-{}", raw.name),
                poll_factor: 1.0,
                bus: Bus::A,
                bus_cuts: Vec::new(),
                network_cuts: Vec::new(),
            }]);
        }
        if raw.gateways.len() > MAX_GATEWAYS {
            return Err(self.err(
                "gateways",
                format!("{} gateways: at most {MAX_GATEWAYS}", raw.gateways.len()),
            ));
        }
        let nodes = devices.iter().any(|d| d.kind == DeviceKind::Node);
        if nodes && raw.gateways.len() > 2 {
            return Err(self.err(
                "gateways",
                format!(
                    "{} gateways with a sensor node: the node has two RS-485 ports (A and B), one per gateway",
                    raw.gateways.len()
                ),
            ));
        }
        let mut out: Vec<GatewaySpec> = Vec::new();
        for (i, g) in raw.gateways.iter().enumerate() {
            let at = format!("gateways[{i}]");
            if g.name.is_empty() || g.name.len() > MAX_GATEWAY_NAME {
                return Err(self.err(
                    format!("{at}.name"),
                    format!("{:?} must be 1 to {MAX_GATEWAY_NAME} bytes long", g.name),
                ));
            }
            let id = format!("gw-{}-{}", raw.name, g.name);
            let _: GatewayId = self.id(&format!("{at}.name"), &id)?;
            if let Some(j) = out.iter().position(|o| o.name == g.name) {
                return Err(self.err(
                    format!("{at}.name"),
                    format!("{:?} is already gateways[{j}]", g.name),
                ));
            }
            let poll_factor = g.poll_factor.unwrap_or(1.0);
            if !POLL_FACTORS.contains(&poll_factor) {
                return Err(self.err(
                    format!("{at}.poll_factor"),
                    format!(
                        "{poll_factor} is not {}..={} (a multiple of the rig's poll period)",
                        POLL_FACTORS.start(),
                        POLL_FACTORS.end()
                    ),
                ));
            }
            out.push(GatewaySpec {
                name: g.name.clone(),
                id,
                poll_factor,
                bus: if i == 0 { Bus::A } else { Bus::B },
                bus_cuts: Vec::new(),
                network_cuts: Vec::new(),
            });
        }
        Ok(out)
    }

    /// `[expect] controller_evacuate_by`, `controller_verdict` with `controller_verdict_by`,
    /// `controller_never_flaps`, `controller_max_level`: only with `[[gateways]]` (the
    /// controller runs then).
    pub(super) fn controller_expect(
        &self,
        raw: &RawScenario,
        budget: Duration,
    ) -> Result<ControllerExpectation, ScenarioError> {
        let e = &raw.expect;
        let mut out = ControllerExpectation::default();
        if let Some(by) = e.controller_evacuate_by {
            let Some(loss) = raw.power_loss_at else {
                return Err(self.err(
                    "expect.controller_evacuate_by",
                    "needs power_loss_at (lead time is counted back from the power loss)",
                ));
            };
            self.early_enough("expect.controller_evacuate_by", by, raw.start, loss, budget)?;
            out.evacuate_by = Some(by);
        }
        out.verdict = match (e.controller_verdict, e.controller_verdict_by) {
            (None, None) => None,
            (Some(v), None) => {
                return Err(self.err(
                    "expect.controller_verdict_by",
                    format!("controller_verdict = \"{v}\" needs the moment it is due by"),
                ));
            }
            (None, Some(_)) => {
                return Err(self.err(
                    "expect.controller_verdict_by",
                    "goes with controller_verdict",
                ));
            }
            (Some(v), Some(by)) => {
                self.within("expect.controller_verdict_by", by, raw)?;
                Some((v, by))
            }
        };
        out.never_flaps = match e.controller_never_flaps {
            None => false,
            Some(true) => true,
            Some(false) => {
                return Err(self.err(
                    "expect.controller_never_flaps",
                    "false expects nothing: leave it out",
                ));
            }
        };
        if let Some(level) = e.controller_max_level {
            if level == Level::Evacuate {
                return Err(self.err(
                    "expect.controller_max_level",
                    "\"evacuate\" is the highest level: this expects nothing; use normal, watch or prepare",
                ));
            }
            if raw.power_loss_at.is_some() {
                return Err(self.err(
                    "expect.controller_max_level",
                    "the scenario loses power (power_loss_at): expect an evacuation with controller_evacuate_by",
                ));
            }
            out.max_level = Some(level);
        }
        if !out.is_empty() && raw.gateways.is_empty() {
            return Err(self.err(
                "expect",
                format!(
                    "{out}: the controller runs only with [[gateways]]; add them (one is enough)"
                ),
            ));
        }
        if raw.gateways.len() > 1 && raw.expect.normal_by.is_some() {
            return Err(self.err(
                "expect.normal_by",
                "with several gateways the triggers of all of them share the topic, so their last site level says nothing of the site: expect the controller's merged level instead",
            ));
        }
        Ok(out)
    }
}
