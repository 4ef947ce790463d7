//! The suite of `hil/scenarios/`, compiled in: `firebreak demo` replays them from anywhere,
//! without the repository. A test keeps this list and the directory the same.

use super::{Scenario, ScenarioError};

/// Every scenario of `hil/scenarios/`: (name, file text), sorted by name.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "battery-fire",
        include_str!("../../scenarios/battery-fire.toml"),
    ),
    (
        "battery-fire-ventilated",
        include_str!("../../scenarios/battery-fire-ventilated.toml"),
    ),
    (
        "broker-outage-during-fire",
        include_str!("../../scenarios/broker-outage-during-fire.toml"),
    ),
    (
        "calibration-under-maintenance",
        include_str!("../../scenarios/calibration-under-maintenance.toml"),
    ),
    (
        "fire-while-probes-under-maintenance",
        include_str!("../../scenarios/fire-while-probes-under-maintenance.toml"),
    ),
    (
        "fire-without-off-gas",
        include_str!("../../scenarios/fire-without-off-gas.toml"),
    ),
    (
        "gateway-killed-during-fire",
        include_str!("../../scenarios/gateway-killed-during-fire.toml"),
    ),
    (
        "hvac-failure",
        include_str!("../../scenarios/hvac-failure.toml"),
    ),
    (
        "monitoring-dies-with-fire",
        include_str!("../../scenarios/monitoring-dies-with-fire.toml"),
    ),
    (
        "network-cut",
        include_str!("../../scenarios/network-cut.toml"),
    ),
    (
        "node-reboot",
        include_str!("../../scenarios/node-reboot.toml"),
    ),
    (
        "node-reboots-during-fire",
        include_str!("../../scenarios/node-reboots-during-fire.toml"),
    ),
    (
        "noisy-line",
        include_str!("../../scenarios/noisy-line.toml"),
    ),
    (
        "off-gas-drift",
        include_str!("../../scenarios/off-gas-drift.toml"),
    ),
    (
        "power-budget-clears",
        include_str!("../../scenarios/power-budget-clears.toml"),
    ),
    (
        "probe-disconnected",
        include_str!("../../scenarios/probe-disconnected.toml"),
    ),
    (
        "probe-fails-high",
        include_str!("../../scenarios/probe-fails-high.toml"),
    ),
    (
        "probe-fails-low",
        include_str!("../../scenarios/probe-fails-low.toml"),
    ),
    (
        "probe-flapping",
        include_str!("../../scenarios/probe-flapping.toml"),
    ),
    (
        "probe-stuck",
        include_str!("../../scenarios/probe-stuck.toml"),
    ),
    (
        "room-sensor-stuck",
        include_str!("../../scenarios/room-sensor-stuck.toml"),
    ),
    (
        "shorted-harness",
        include_str!("../../scenarios/shorted-harness.toml"),
    ),
    (
        "two-gateways-bus-a-cut",
        include_str!("../../scenarios/two-gateways-bus-a-cut.toml"),
    ),
    (
        "two-gateways-network-cut",
        include_str!("../../scenarios/two-gateways-network-cut.toml"),
    ),
    (
        "two-gateways-one-killed",
        include_str!("../../scenarios/two-gateways-one-killed.toml"),
    ),
    (
        "two-gateways-sample-differently",
        include_str!("../../scenarios/two-gateways-sample-differently.toml"),
    ),
    (
        "two-nodes-one-line",
        include_str!("../../scenarios/two-nodes-one-line.toml"),
    ),
    (
        "ups-card-dies-in-fire",
        include_str!("../../scenarios/ups-card-dies-in-fire.toml"),
    ),
    (
        "ups-runtime-glitch",
        include_str!("../../scenarios/ups-runtime-glitch.toml"),
    ),
    (
        "ups-self-test",
        include_str!("../../scenarios/ups-self-test.toml"),
    ),
    (
        "utility-dip",
        include_str!("../../scenarios/utility-dip.toml"),
    ),
    (
        "utility-outage-generator-fails",
        include_str!("../../scenarios/utility-outage-generator-fails.toml"),
    ),
    (
        "utility-outage-generator-transfer",
        include_str!("../../scenarios/utility-outage-generator-transfer.toml"),
    ),
    (
        "utility-outage-generator-trips",
        include_str!("../../scenarios/utility-outage-generator-trips.toml"),
    ),
    (
        "utility-outage-nut-ups-snmp-pdus",
        include_str!("../../scenarios/utility-outage-nut-ups-snmp-pdus.toml"),
    ),
];

/// The built-in scenario `name`, checked; `None` when there is none of that name.
pub fn builtin(name: &str) -> Option<Result<Scenario, ScenarioError>> {
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| Scenario::parse(text, &format!("{n}.toml (built in)")))
}

/// The names of the built-in scenarios.
pub fn names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_suite_is_the_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .map(|p| {
                (
                    p.file_stem().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
        files.sort();
        let compiled_in: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        assert_eq!(compiled_in, files, "add the new scenario to BUILTIN");
        for name in names() {
            let s = builtin(name).unwrap().unwrap();
            assert_eq!(s.name, name);
        }
        assert!(super::builtin("nope").is_none());
    }
}
