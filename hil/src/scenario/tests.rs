//! Scenario checks: a table of bad inputs with the exact errors they give, and what a good
//! scenario turns into.

use firebreak_protocols::{DeviceId, Signal};

use super::*;

const HEAD: &str = r#"name = "t"
description = "a test"
start = "T-10m"
end = "T+10m"
power_loss_at = "T+8m"
evacuation_budget_s = 300

[expect]
evacuate_by = "T+2m"
"#;

const DEVICES: &str = r#"
[[devices]]
name = "ups-1"
kind = "ups"
zone = "room"

[[devices]]
name = "node-1"
kind = "node"
zone = "room"

[[devices]]
name = "bms"
kind = "room-mqtt"
zone = "hall"
"#;

fn with(head: &str, body: &str) -> String {
    format!("{head}{DEVICES}{body}")
}

fn error(text: &str) -> String {
    match Scenario::parse(text, "t.toml") {
        Ok(s) => panic!("accepted: {s:?}"),
        Err(e) => e.to_string(),
    }
}

/// (what, the scenario, the error).
fn cases() -> Vec<(&'static str, String, &'static str)> {
    let head = |from: &str, to: &str| HEAD.replace(from, to);
    vec![
        (
            "unknown key",
            with(&format!("colour = \"red\"\n{HEAD}"), ""),
            "t.toml:1: colour: unknown field `colour`, expected one of `name`, `description`, `start`, `end`, `time_scale`, `max_time_scale`, `power_loss_at`, `evacuation_budget_s`, `hold_s`, `expect`, `devices`, `timeline`, `faults`, `events`, `node`, `line`, `gateways`",
        ),
        (
            "bad moment",
            with(&head("T-10m", "T-10x"), ""),
            "t.toml:3: start: \"T-10x\": unknown unit \"x\": use h, m, s or ms (write moments as \"T-12m\", \"T+90s\", \"T+1h30m\", \"T0\" or seconds)",
        ),
        (
            "unknown signal",
            with(
                HEAD,
                "[[timeline]]\ndevice = \"ups-1\"\nsignal = \"ups-mood\"\nat = 0\nvalue = 1\n",
            ),
            "t.toml:27: timeline[0].signal: unknown variant `ups-mood`, expected one of `ups-on-battery`, `ups-low-battery`, `ups-replace-battery`, `ups-runtime-remaining`, `ups-battery-charge`, `ups-battery-temperature`, `ups-input-voltage`, `ups-output-voltage`, `ups-load`, `pdu-input-voltage`, `pdu-current`, `pdu-power`, `pdu-outlet-current`, `pdu-outlet-power`, `room-temperature`, `room-humidity`, `rack-temperature`, `off-gas`, `smoke-alarm`, `suppression-released`, `generator-running`, `transfer-switch-source`, `node-alarm`, `device-uptime`, `reset-reason`",
        ),
        (
            "end before start",
            with(&head("end = \"T+10m\"", "end = \"T-20m\""), ""),
            "t.toml: end: T-20m is not after start (T-10m)",
        ),
        (
            "power loss outside",
            with(&head("T+8m", "T+11m"), ""),
            "t.toml: power_loss_at: T+11m is not after start (T-10m) and at or before end (T+10m)",
        ),
        (
            "no budget",
            with(&head("evacuation_budget_s = 300\n", ""), ""),
            "t.toml:1: missing field `evacuation_budget_s`",
        ),
        (
            "zero budget",
            with(&head("= 300", "= 0"), ""),
            "t.toml: evacuation_budget_s: 0 is not 1..=3600 seconds",
        ),
        (
            "bad time scale",
            with(&format!("time_scale = 0\n{HEAD}"), ""),
            "t.toml: time_scale: time scale 0 is not a number above 0 and at most 10000",
        ),
        (
            "max scale below the default scale",
            with(&format!("time_scale = 20\nmax_time_scale = 10\n{HEAD}"), ""),
            "t.toml: max_time_scale: 10 is less than time_scale (20)",
        ),
        (
            "two expectations",
            with(&format!("{HEAD}never_above = \"watch\"\n"), ""),
            "t.toml: expect: give evacuate_by or never_above, not both",
        ),
        (
            "no expectation",
            with(&head("evacuate_by = \"T+2m\"\n", ""), ""),
            "t.toml: expect: give evacuate_by (a moment) or never_above (a level)",
        ),
        (
            "evacuation without power loss",
            with(&head("power_loss_at = \"T+8m\"\n", ""), ""),
            "t.toml: expect.evacuate_by: needs power_loss_at (lead time is counted back from the power loss), or normal_by when the power comes back before it is lost",
        ),
        (
            "return to normal before the evacuation",
            with(
                &head("power_loss_at = \"T+8m\"\n", "").replace(
                    "evacuate_by = \"T+2m\"",
                    "evacuate_by = \"T+2m\"\nnormal_by = \"T+1m\"",
                ),
                "",
            ),
            "t.toml: expect.normal_by: T+1m is not after evacuate_by (T+2m): the site returns to normal after it evacuated",
        ),
        (
            "return to normal before the power loss",
            with(&format!("{HEAD}normal_by = \"T+7m\"\n"), ""),
            "t.toml: expect.normal_by: T+7m is not after power_loss_at (T+8m): a site that is losing power is not back to normal",
        ),
        (
            "return to normal after the end",
            with(
                &head(
                    "evacuate_by = \"T+2m\"",
                    "never_above = \"watch\"\nnormal_by = \"T+11m\"",
                )
                .replace("power_loss_at = \"T+8m\"\n", ""),
                "",
            ),
            "t.toml: expect.normal_by: T+11m is outside the scenario (T-10m..T+10m)",
        ),
        (
            "return to normal alone",
            with(&head("evacuate_by = \"T+2m\"", "normal_by = \"T+5m\""), ""),
            "t.toml: expect: give evacuate_by (a moment) or never_above (a level)",
        ),
        (
            "hold too long",
            with(&format!("hold_s = 90000\n{HEAD}"), ""),
            "t.toml: hold_s: 90000 is more than 86400 seconds (the gateway's limit)",
        ),
        (
            "evacuation too late for the budget",
            with(&head("\"T+2m\"", "\"T+5m\""), ""),
            "t.toml: expect.evacuate_by: T+5m is 3m before power loss at T+8m, less than evacuation_budget_s (300 s): such an evacuation is not early",
        ),
        (
            "never above evacuate",
            with(
                &head("power_loss_at = \"T+8m\"\n", "")
                    .replace("evacuate_by = \"T+2m\"", "never_above = \"evacuate\""),
                "",
            ),
            "t.toml: expect.never_above: \"evacuate\" is the highest level: this expects nothing; use normal, watch or prepare",
        ),
        (
            "nuisance expectation with power loss",
            with(
                &head("evacuate_by = \"T+2m\"", "never_above = \"watch\""),
                "",
            ),
            "t.toml: expect.never_above: the scenario loses power (power_loss_at): expect an evacuation with evacuate_by",
        ),
        (
            "unknown level",
            with(
                &head("power_loss_at = \"T+8m\"\n", "")
                    .replace("evacuate_by = \"T+2m\"", "never_above = \"panic\""),
                "",
            ),
            "t.toml:8: expect.never_above: unknown variant `panic`, expected one of `normal`, `watch`, `prepare`, `evacuate`",
        ),
        (
            "no devices",
            HEAD.to_string(),
            "t.toml: devices: a scenario needs at least one device",
        ),
        (
            "duplicate device",
            with(
                HEAD,
                "[[devices]]\nname = \"bms\"\nkind = \"pdu\"\nzone = \"room\"\n",
            ),
            "t.toml: devices[3].name: \"bms\" is already devices[2]",
        ),
        (
            "bad zone id",
            with(
                HEAD,
                "[[devices]]\nname = \"pdu\"\nkind = \"pdu\"\nzone = \"hall/a\"\n",
            ),
            "t.toml: devices[3].zone: \"hall/a\" contains forbidden character '/' at byte 4",
        ),
        (
            "unit 0",
            with(
                HEAD,
                "[[devices]]\nname = \"pdu\"\nkind = \"pdu\"\nzone = \"room\"\nunit = 0\n",
            ),
            "t.toml: devices[3].unit: 0 is not a Modbus unit id (1..=247)",
        ),
        (
            "unit on an MQTT device",
            with(
                HEAD,
                "[[devices]]\nname = \"s\"\nkind = \"room-mqtt\"\nzone = \"room\"\nunit = 2\n",
            ),
            "t.toml: devices[3].unit: only for Modbus devices (ups, pdu, node)",
        ),
        (
            "publish interval on a UPS",
            with(
                HEAD,
                "[[devices]]\nname = \"u\"\nkind = \"ups\"\nzone = \"room\"\npublish_interval_ms = 500\n",
            ),
            "t.toml: devices[3].publish_interval_ms: only for room-mqtt devices",
        ),
        (
            "unknown kind",
            with(
                HEAD,
                "[[devices]]\nname = \"u\"\nkind = \"ats\"\nzone = \"room\"\n",
            ),
            "t.toml:27: devices[3].kind: unknown variant `ats`, expected one of `ups`, `pdu`, `node`, `room-mqtt`",
        ),
        (
            "timeline: unknown device",
            with(
                HEAD,
                "[[timeline]]\ndevice = \"ups-9\"\nsignal = \"ups-on-battery\"\nat = 0\nvalue = 1\n",
            ),
            "t.toml: timeline[0].device: no device named \"ups-9\" (devices: ups-1, node-1, bms)",
        ),
        (
            "timeline: signal the device does not serve",
            with(
                HEAD,
                "[[timeline]]\ndevice = \"ups-1\"\nsignal = \"pdu-power\"\nat = 0\nvalue = 1\n",
            ),
            "t.toml: timeline[0].signal: a ups (generic-ups) does not serve pdu-power; it serves ups-on-battery, ups-low-battery, ups-replace-battery, ups-runtime-remaining, ups-battery-charge, ups-battery-temperature, ups-input-voltage, ups-output-voltage, ups-load",
        ),
        (
            "timeline: no such channel",
            with(
                HEAD,
                "[[timeline]]\ndevice = \"node-1\"\nsignal = \"rack-temperature\"\nchannel = 8\nat = 0\nvalue = 30\n",
            ),
            "t.toml: timeline[0].channel: node-1 has rack-temperature channels 0..=7, not 8",
        ),
        (
            "timeline: MQTT channel",
            with(
                HEAD,
                "[[timeline]]\ndevice = \"bms\"\nsignal = \"room-temperature\"\nchannel = 1\nat = 0\nvalue = 30\n",
            ),
            "t.toml: timeline[0].channel: a room-mqtt device publishes channel 0 only",
        ),
        (
            "timeline: step and ramp keys mixed",
            with(
                HEAD,
                "[[timeline]]\ndevice = \"ups-1\"\nsignal = \"ups-load\"\nat = 0\nto = \"T+1m\"\nvalue = 50\n",
            ),
            "t.toml: timeline[0]: give at and value (a step), or from, to and end (a ramp; start is optional)",
        ),
        (
            "timeline: a ramp of a state",
            with(
                HEAD,
                "[[timeline]]\ndevice = \"ups-1\"\nsignal = \"ups-on-battery\"\nfrom = 0\nto = 60\nend = 1\n",
            ),
            "t.toml: timeline[0]: ups-on-battery is a state: give it steps (at, value), not a ramp",
        ),
        (
            "timeline: a state set to 2",
            with(
                HEAD,
                "[[timeline]]\ndevice = \"ups-1\"\nsignal = \"ups-on-battery\"\nat = 0\nvalue = 2\n",
            ),
            "t.toml: timeline[0].value: ups-on-battery is a state: 0, 1, true or false, not 2",
        ),
        (
            "timeline: a code that is not whole",
            with(
                HEAD,
                "[[timeline]]\ndevice = \"bms\"\nsignal = \"transfer-switch-source\"\nat = 0\nvalue = 1.5\n",
            ),
            "t.toml: timeline[0].value: transfer-switch-source is a code: a whole number 0 or more, not 1.5",
        ),
        (
            "timeline: a value the register cannot hold",
            with(
                HEAD,
                "[[timeline]]\ndevice = \"node-1\"\nsignal = \"rack-temperature\"\nfrom = \"T-5m\"\nto = \"T0\"\nend = 4000\n",
            ),
            "t.toml: timeline[0].end: rack-temperature: 4000 does not fit data type I16 (input register 0)",
        ),
        (
            "timeline: outside the scenario",
            with(
                HEAD,
                "[[timeline]]\ndevice = \"ups-1\"\nsignal = \"ups-load\"\nat = \"T+11m\"\nvalue = 50\n",
            ),
            "t.toml: timeline[0].at: T+11m is outside the scenario (T-10m..T+10m)",
        ),
        (
            "timeline: an empty ramp",
            with(
                HEAD,
                "[[timeline]]\ndevice = \"ups-1\"\nsignal = \"ups-load\"\nfrom = 60\nto = 60\nend = 50\n",
            ),
            "t.toml: timeline[0].to: T+1m is not after from (T+1m)",
        ),
        (
            "timeline: out of order",
            with(
                HEAD,
                "[[timeline]]\ndevice = \"ups-1\"\nsignal = \"ups-load\"\nat = 60\nvalue = 50\n\
                 [[timeline]]\ndevice = \"ups-1\"\nsignal = \"ups-runtime-remaining\"\nat = 0\nvalue = 50\n\
                 [[timeline]]\ndevice = \"ups-1\"\nsignal = \"ups-load\"\nat = 30\nvalue = 60\n",
            ),
            "t.toml: timeline[2]: starts at T+30s, before timeline[0] at T+1m, an earlier change of the same signal: list a signal's changes in time order",
        ),
        (
            "fault: code on a silent fault",
            with(
                HEAD,
                "[[faults]]\ndevice = \"ups-1\"\nkind = \"silent\"\nfrom = 0\ncode = 4\n",
            ),
            "t.toml: faults[0].code: only for kind \"exception\"",
        ),
        (
            "fault: bad exception code",
            with(
                HEAD,
                "[[faults]]\ndevice = \"ups-1\"\nkind = \"exception\"\nfrom = 0\ncode = 7\n",
            ),
            "t.toml: faults[0].code: 7 is not a Modbus exception code (1, 2, 3, 4, 5, 6, 8, 10, 11)",
        ),
        (
            "fault: exception from an MQTT sensor",
            with(
                HEAD,
                "[[faults]]\ndevice = \"bms\"\nkind = \"exception\"\nfrom = 0\n",
            ),
            "t.toml: faults[0].kind: bms is a room-mqtt device: it publishes over MQTT and has no Modbus exceptions",
        ),
        (
            "fault: slow without a delay",
            with(
                HEAD,
                "[[faults]]\ndevice = \"ups-1\"\nkind = \"slow\"\nfrom = 0\n",
            ),
            "t.toml: faults[0].delay_ms: kind \"slow\" needs delay_ms (real milliseconds)",
        ),
        (
            "fault: slow beyond a minute",
            with(
                HEAD,
                "[[faults]]\ndevice = \"ups-1\"\nkind = \"slow\"\nfrom = 0\ndelay_ms = 60001\n",
            ),
            "t.toml: faults[0].delay_ms: 60001 is not 1..=60000",
        ),
        (
            "fault: a silent value",
            with(
                HEAD,
                "[[faults]]\ndevice = \"ups-1\"\nkind = \"silent\"\nfrom = 0\nsignal = \"ups-load\"\n",
            ),
            "t.toml: faults[0].signal: only for kind garbage, all-ones or stuck",
        ),
        (
            "fault: a channel without a signal",
            with(
                HEAD,
                "[[faults]]\ndevice = \"node-1\"\nkind = \"stuck\"\nfrom = 0\nchannel = 2\n",
            ),
            "t.toml: faults[0].channel: goes with signal",
        ),
        (
            "fault: ends before it starts",
            with(
                HEAD,
                "[[faults]]\ndevice = \"ups-1\"\nkind = \"drop\"\nfrom = 60\nto = 30\n",
            ),
            "t.toml: faults[0].to: T+30s is not after from (T+1m)",
        ),
        (
            "fault: starts at the end",
            with(
                HEAD,
                "[[faults]]\ndevice = \"ups-1\"\nkind = \"drop\"\nfrom = \"T+10m\"\n",
            ),
            "t.toml: faults[0].from: T+10m is at the scenario's end: the fault would never act",
        ),
        (
            "fault: overlapping faults on a device",
            with(
                HEAD,
                "[[faults]]\ndevice = \"ups-1\"\nkind = \"silent\"\nfrom = 0\nto = 120\n\
                 [[faults]]\ndevice = \"node-1\"\nkind = \"silent\"\nfrom = 0\n\
                 [[faults]]\ndevice = \"ups-1\"\nkind = \"garbage\"\nfrom = 60\n",
            ),
            "t.toml: faults[2]: overlaps faults[0] (T0..T+2m) on ups-1 as a whole: one fault at a time on a device, or on a value",
        ),
        (
            "fault: overlapping faults on a value",
            with(
                HEAD,
                "[[faults]]\ndevice = \"node-1\"\nkind = \"stuck\"\nsignal = \"rack-temperature\"\nchannel = 2\nfrom = 0\n\
                 [[faults]]\ndevice = \"node-1\"\nkind = \"all-ones\"\nsignal = \"rack-temperature\"\nchannel = 1\nfrom = 0\n\
                 [[faults]]\ndevice = \"node-1\"\nkind = \"all-ones\"\nsignal = \"rack-temperature\"\nchannel = 2\nfrom = 60\nto = 90\n",
            ),
            "t.toml: faults[2]: overlaps faults[0] (T0..end) on node-1 rack-temperature channel 2: one fault at a time on a device, or on a value",
        ),
        (
            "event: unknown kind",
            with(HEAD, "[[events]]\nat = 0\nkind = \"meteor\"\n"),
            "t.toml:27: events[0].kind: unknown variant `meteor`, expected one of `broker-stop`, `broker-restart`, `gateway-kill`, `gateway-restart`, `network-cut`, `network-restore`, `node-reboot`, `gateway-network-cut`, `gateway-network-restore`, `bus-cut`, `bus-restore`, `maintenance-start`, `maintenance-end`",
        ),
        (
            "event: maintenance without a device",
            with(
                HEAD,
                "[[events]]\nat = 0\nkind = \"maintenance-start\"\nfor = \"10m\"\n",
            ),
            "t.toml: events[0].device: maintenance-start: name the device put under maintenance",
        ),
        (
            "event: maintenance of an unknown device",
            with(
                HEAD,
                "[[events]]\nat = 0\nkind = \"maintenance-start\"\ndevice = \"ghost\"\nfor = \"10m\"\n",
            ),
            "t.toml: events[0].device: no device named \"ghost\" (devices: ups-1, node-1, bms)",
        ),
        (
            "event: maintenance without an end",
            with(
                HEAD,
                "[[events]]\nat = 0\nkind = \"maintenance-start\"\ndevice = \"node-1\"\nchannel = 2\n",
            ),
            "t.toml: events[0].for: maintenance-start: say for how long (\"10m\"): maintenance always ends by itself",
        ),
        (
            "event: maintenance too short",
            with(
                HEAD,
                "[[events]]\nat = 0\nkind = \"maintenance-start\"\ndevice = \"node-1\"\nfor = \"500ms\"\n",
            ),
            "t.toml: events[0].for: T+500ms: at least 1 s (write \"10m\")",
        ),
        (
            "event: a duration on an end",
            with(
                HEAD,
                "[[events]]\nat = 0\nkind = \"maintenance-end\"\ndevice = \"node-1\"\nfor = \"10m\"\n",
            ),
            "t.toml: events[0].for: only for kind \"maintenance-start\"",
        ),
        (
            "event: a device on a broker stop",
            with(
                HEAD,
                "[[events]]\nat = 0\nkind = \"broker-stop\"\ndevice = \"node-1\"\n",
            ),
            "t.toml: events[0].device: only for kind \"maintenance-start\" or \"maintenance-end\"",
        ),
        (
            "event: out of order",
            with(
                HEAD,
                "[[events]]\nat = 60\nkind = \"broker-stop\"\n[[events]]\nat = 30\nkind = \"broker-restart\"\n",
            ),
            "t.toml: events[1].at: T+30s is before events[0] at T+1m: list events in time order",
        ),
        (
            "event: restart without a stop",
            with(HEAD, "[[events]]\nat = 0\nkind = \"gateway-restart\"\n"),
            "t.toml: events[0].kind: the gateway is not down: no stop before this restart",
        ),
        (
            "event: stopped twice",
            with(
                HEAD,
                "[[events]]\nat = 0\nkind = \"broker-stop\"\n[[events]]\nat = 1\nkind = \"broker-stop\"\n",
            ),
            "t.toml: events[1].kind: the broker is already down since events[0]",
        ),
        (
            "event: devices on a broker stop",
            with(
                HEAD,
                "[[events]]\nat = 0\nkind = \"broker-stop\"\ndevices = [\"ups-1\"]\n",
            ),
            "t.toml: events[0].devices: only for kind \"network-cut\" or \"node-reboot\"",
        ),
        (
            "event: restore without a cut",
            with(HEAD, "[[events]]\nat = 0\nkind = \"network-restore\"\n"),
            "t.toml: events[0].kind: the network is not cut: no network-cut before this restore",
        ),
        (
            "event: cut twice",
            with(
                HEAD,
                "[[events]]\nat = 0\nkind = \"network-cut\"\n[[events]]\nat = 1\nkind = \"network-cut\"\n",
            ),
            "t.toml: events[1].kind: the network is already cut since events[0]: restore it first",
        ),
        (
            "node expectation: both",
            with(
                &head(
                    "evacuate_by = \"T+2m\"\n",
                    "evacuate_by = \"T+2m\"\nnode_alarm_by = \"T0\"\nnode_never_alarms = true\n",
                ),
                "",
            ),
            "t.toml: expect: give node_alarm_by or node_never_alarms, not both",
        ),
        (
            "node expectation: never alarms false",
            with(
                &head(
                    "evacuate_by = \"T+2m\"\n",
                    "evacuate_by = \"T+2m\"\nnode_never_alarms = false\n",
                ),
                "",
            ),
            "t.toml: expect.node_never_alarms: false expects nothing: leave it out, or give node_alarm_by",
        ),
        (
            "node expectation: outside",
            with(
                &head(
                    "evacuate_by = \"T+2m\"\n",
                    "evacuate_by = \"T+2m\"\nnode_alarm_by = \"T+11m\"\n",
                ),
                "",
            ),
            "t.toml: expect.node_alarm_by: T+11m is outside the scenario (T-10m..T+10m)",
        ),
        (
            "node expectation: no node",
            format!(
                "{}\n[[devices]]\nname = \"ups-1\"\nkind = \"ups\"\nzone = \"room\"\n",
                head(
                    "evacuate_by = \"T+2m\"\n",
                    "evacuate_by = \"T+2m\"\nnode_alarm_by = \"T0\"\n",
                )
            ),
            "t.toml: expect: node alarm by T0: the scenario has no device of kind \"node\"",
        ),
        (
            "line: no noise",
            with(HEAD, "[line]\nnoise = 0\n"),
            "t.toml: line.noise: 0 is not above 0 and at most 0.05 (the chance that a byte is corrupted)",
        ),
        (
            "line: too much noise",
            with(HEAD, "[line]\nnoise = 0.5\n"),
            "t.toml: line.noise: 0.5 is not above 0 and at most 0.05 (the chance that a byte is corrupted)",
        ),
        (
            "line: ends before it starts",
            with(HEAD, "[line]\nnoise = 0.01\nfrom = \"T0\"\nto = \"T-1m\"\n"),
            "t.toml: line.to: T-1m is not after from (T0)",
        ),
        (
            "two nodes at one unit",
            with(
                HEAD,
                "[[devices]]\nname = \"node-2\"\nkind = \"node\"\nzone = \"room\"\n",
            ),
            "t.toml: devices[3].unit: 1 is already the unit of node node-1: nodes share one RS-485 line, give each its own unit",
        ),
        (
            "event: reboot a UPS",
            with(
                HEAD,
                "[[events]]\nat = 0\nkind = \"node-reboot\"\ndevices = [\"ups-1\"]\n",
            ),
            "t.toml: events[0].devices[0]: \"ups-1\" is a ups, not a node: only nodes reboot",
        ),
        (
            "event: a reason on a broker stop",
            with(
                HEAD,
                "[[events]]\nat = 0\nkind = \"broker-stop\"\nreason = \"watchdog\"\n",
            ),
            "t.toml: events[0].reason: only for kind \"node-reboot\"",
        ),
        (
            "event: an unknown device cut",
            with(
                HEAD,
                "[[events]]\nat = 0\nkind = \"network-cut\"\ndevices = [\"ups-1\", \"pdu-7\"]\n",
            ),
            "t.toml: events[0].devices[1]: no device named \"pdu-7\" (devices: ups-1, node-1, bms)",
        ),
        (
            "gateways: a name too long",
            with(HEAD, "[[gateways]]\nname = \"a-very-long-name\"\n"),
            "t.toml: gateways[0].name: \"a-very-long-name\" must be 1 to 12 bytes long",
        ),
        (
            "gateways: twice the same",
            with(
                HEAD,
                "[[gateways]]\nname = \"a\"\n\n[[gateways]]\nname = \"a\"\n",
            ),
            "t.toml: gateways[1].name: \"a\" is already gateways[0]",
        ),
        (
            "gateways: three with a node",
            with(
                HEAD,
                "[[gateways]]\nname = \"a\"\n\n[[gateways]]\nname = \"b\"\n\n[[gateways]]\nname = \"c\"\n",
            ),
            "t.toml: gateways: 3 gateways with a sensor node: the node has two RS-485 ports (A and B), one per gateway",
        ),
        (
            "gateways: a poll factor out of range",
            with(HEAD, "[[gateways]]\nname = \"a\"\npoll_factor = 10\n"),
            "t.toml: gateways[0].poll_factor: 10 is not 0.25..=4 (a multiple of the rig's poll period)",
        ),
        (
            "event: kill an unknown gateway",
            with(
                HEAD,
                "[[gateways]]\nname = \"a\"\n\n[[gateways]]\nname = \"b\"\n\n[[events]]\nat = 0\nkind = \"gateway-kill\"\ngateway = \"c\"\n",
            ),
            "t.toml: events[0].gateway: no gateway named \"c\" (gateways: a, b)",
        ),
        (
            "event: name a gateway without [[gateways]]",
            with(
                HEAD,
                "[[events]]\nat = 0\nkind = \"gateway-kill\"\ngateway = \"a\"\n",
            ),
            "t.toml: events[0].gateway: \"a\": the scenario has no [[gateways]]; name them there to act on one (without gateway the event acts on the one gateway)",
        ),
        (
            "event: a gateway on a broker stop",
            with(
                HEAD,
                "[[gateways]]\nname = \"a\"\n\n[[gateways]]\nname = \"b\"\n\n[[events]]\nat = 0\nkind = \"broker-stop\"\ngateway = \"a\"\n",
            ),
            "t.toml: events[0].gateway: only for kind \"gateway-kill\", \"gateway-restart\", \"gateway-network-cut\", \"gateway-network-restore\", \"bus-cut\", \"bus-restore\", \"maintenance-start\" or \"maintenance-end\"",
        ),
        (
            "event: kill a gateway twice",
            with(
                HEAD,
                "[[gateways]]\nname = \"a\"\n\n[[gateways]]\nname = \"b\"\n\n[[events]]\nat = 0\nkind = \"gateway-kill\"\ngateway = \"a\"\n\n[[events]]\nat = 10\nkind = \"gateway-kill\"\n",
            ),
            "t.toml: events[1].kind: the gateway \"a\" is already down since events[0]",
        ),
        (
            "event: restore a network never cut",
            with(
                HEAD,
                "[[gateways]]\nname = \"a\"\n\n[[gateways]]\nname = \"b\"\n\n[[events]]\nat = 0\nkind = \"gateway-network-restore\"\ngateway = \"b\"\n",
            ),
            "t.toml: events[0].kind: the gateway \"b\"'s network is not cut: no cut before this restore",
        ),
        (
            "event: cut a bus twice",
            with(
                HEAD,
                "[[gateways]]\nname = \"a\"\n\n[[gateways]]\nname = \"b\"\n\n[[events]]\nat = 0\nkind = \"bus-cut\"\ngateway = \"a\"\n\n[[events]]\nat = 5\nkind = \"bus-cut\"\n",
            ),
            "t.toml: events[1].kind: the gateway \"a\"'s RS-485 bus is already cut since events[0]: restore it first",
        ),
        (
            "expect: a controller without [[gateways]]",
            with(
                &HEAD.replace(
                    "evacuate_by = \"T+2m\"\n",
                    "evacuate_by = \"T+2m\"\ncontroller_never_flaps = true\n",
                ),
                "",
            ),
            "t.toml: expect: controller never flaps: the controller runs only with [[gateways]]; add them (one is enough)",
        ),
        (
            "expect: a verdict without its moment",
            with(
                &HEAD.replace(
                    "evacuate_by = \"T+2m\"\n",
                    "evacuate_by = \"T+2m\"\ncontroller_verdict = \"site-silent-during-alarm\"\n",
                ),
                "",
            ),
            "t.toml: expect.controller_verdict_by: controller_verdict = \"site-silent-during-alarm\" needs the moment it is due by",
        ),
        (
            "expect: a controller evacuation too late",
            with(
                &HEAD.replace(
                    "evacuate_by = \"T+2m\"\n",
                    "evacuate_by = \"T+2m\"\ncontroller_evacuate_by = \"T+6m\"\n",
                ),
                "",
            ),
            "t.toml: expect.controller_evacuate_by: T+6m is 2m before power loss at T+8m, less than evacuation_budget_s (300 s): such an evacuation is not early",
        ),
        (
            "expect: a controller max level with a power loss",
            with(
                &HEAD.replace(
                    "evacuate_by = \"T+2m\"\n",
                    "evacuate_by = \"T+2m\"\ncontroller_max_level = \"watch\"\n",
                ),
                "",
            ),
            "t.toml: expect.controller_max_level: the scenario loses power (power_loss_at): expect an evacuation with controller_evacuate_by",
        ),
        (
            "devices: source on a pdu",
            with(HEAD, &format!("{PDU}source = \"nut\"\n")),
            "t.toml: devices[3].source: only for ups devices",
        ),
        (
            "devices: an unknown ups source",
            with(
                HEAD,
                "[[devices]]\nname = \"u\"\nkind = \"ups\"\nzone = \"room\"\nsource = \"snmp\"\n",
            ),
            "t.toml:29: devices[3].source: unknown variant `snmp`, expected `modbus` or `nut`",
        ),
        (
            "devices: snmp on a ups",
            with(
                HEAD,
                "[[devices]]\nname = \"u\"\nkind = \"ups\"\nzone = \"room\"\nsnmp = \"UPS/apc-8641\"\n",
            ),
            "t.toml: devices[3].snmp: only for pdu devices",
        ),
        (
            "devices: snmp not a recording",
            with(HEAD, &format!("{PDU}snmp = \"../UPS/apc-8641.snmprec\"\n")),
            "t.toml: devices[3].snmp: \"../UPS/apc-8641.snmprec\" is not a recording of snmpsim-data: a relative path without its extension, like \"UPS/apc-8641\"",
        ),
        (
            "devices: a unit on a NUT ups",
            with(
                HEAD,
                "[[devices]]\nname = \"u\"\nkind = \"ups\"\nzone = \"room\"\nsource = \"nut\"\nunit = 2\n",
            ),
            "t.toml: devices[3].unit: not for a device served by NUT or snmpsim: it is not read over Modbus",
        ),
        (
            "timeline: a change of a recording",
            with(
                HEAD,
                &format!(
                    "{PDU}snmp = \"UPS/apc-8641\"\n[[timeline]]\ndevice = \"p\"\nsignal = \"pdu-current\"\nat = \"T0\"\nvalue = 0\n"
                ),
            ),
            "t.toml: timeline[0].device: p is snmpsim's recording UPS/apc-8641: it serves what was recorded, a timeline cannot change it",
        ),
        (
            "faults: on a NUT ups",
            with(
                HEAD,
                "[[devices]]\nname = \"u\"\nkind = \"ups\"\nzone = \"room\"\nsource = \"nut\"\n[[faults]]\ndevice = \"u\"\nkind = \"silent\"\nfrom = \"T0\"\n",
            ),
            "t.toml: faults[0].device: u is served by NUT (dummy-ups and upsd): the rig cannot inject faults into it",
        ),
        (
            "events: a network cut of every device, one of them a recording",
            with(
                HEAD,
                &format!(
                    "{PDU}snmp = \"UPS/apc-8641\"\n[[events]]\nat = \"T0\"\nkind = \"network-cut\"\n"
                ),
            ),
            "t.toml: events[0].devices: p is served by snmpsim: the rig cannot cut its network (name the devices to cut)",
        ),
    ]
}

/// A PDU for the peer cases: devices[3].
const PDU: &str = "[[devices]]\nname = \"p\"\nkind = \"pdu\"\nzone = \"room\"\n";

#[test]
fn bad_scenarios_are_named_by_file_key_and_problem() {
    let mut wrong = Vec::new();
    for (what, text, expected) in cases() {
        let got = error(&text);
        if got != expected {
            wrong.push(format!("{what}:\n  got      {got}\n  expected {expected}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_good_scenario() {
    let text = with(
        HEAD,
        r#"
[[timeline]]
device = "node-1"
signal = "rack-temperature"
channel = 3
at = "T-10m"
value = 25

[[timeline]]
device = "node-1"
signal = "rack-temperature"
channel = 3
from = "T-5m"
to = "T0"
end = 40

[[timeline]]
device = "ups-1"
signal = "ups-on-battery"
at = "T+1m"
value = true

[[faults]]
device = "ups-1"
kind = "exception"
from = "T+8m"

[[events]]
at = "T+2m"
kind = "network-cut"
devices = ["node-1"]

[[events]]
at = "T+3m"
kind = "network-restore"

[[events]]
at = "T+4m"
kind = "broker-stop"
"#,
    );
    let s = Scenario::parse(&text, "t.toml").unwrap();
    assert_eq!(
        s.expect,
        Expectation::EvacuateBy(ScenarioTime::from_secs(120))
    );
    assert_eq!(s.duration(), Duration::from_secs(1200));
    assert_eq!(s.time_scale, 1.0);
    let node = s.device("node-1").unwrap();
    assert_eq!(node.unit, 1);
    // The ramp starts from the last step's value, 25 °C: 3 °C per minute.
    let at = |m: i64| ScenarioTime::from_secs(m * 60);
    assert_eq!(node.value_at(Signal::RackTemperature, 3, at(-7)), 25.0);
    assert_eq!(node.value_at(Signal::RackTemperature, 3, at(-4)), 28.0);
    assert_eq!(node.value_at(Signal::RackTemperature, 3, at(5)), 40.0);
    assert_eq!(
        node.value_at(Signal::RackTemperature, 0, at(5)),
        24.0,
        "nominal"
    );
    assert_eq!(
        node.network_cuts,
        vec![Window {
            from: at(2),
            to: Some(at(3))
        }]
    );
    let ups = s.device("ups-1").unwrap();
    assert_eq!(
        ups.faults,
        vec![FaultWindow {
            window: Window {
                from: at(8),
                to: None
            },
            fault: Fault::Exception(4),
            scope: FaultScope::Device
        }]
    );
    assert_eq!(s.zones().len(), 2);
    let happenings: Vec<String> = s
        .happenings()
        .into_iter()
        .map(|(t, h)| format!("{t} {h}"))
        .collect();
    assert_eq!(
        happenings,
        [
            "T-10m node-1 rack-temperature[3] = 25 degC",
            "T-5m node-1 rack-temperature[3] ramps 25 degC -> 40 degC until T0",
            "T0 node-1 rack-temperature[3] reaches 40 degC",
            "T+1m ups-1 ups-on-battery = on",
            "T+2m network-cut: node-1 stop answering",
            "T+3m network-restore: devices answer again",
            "T+4m broker-stop (carried out by the rig, not the simulators)",
            "T+8m ups-1: fault exception 0x04 starts",
            "T+8m power loss: the first servers lose power",
            "T+10m end of the scenario",
        ]
    );
    assert_eq!(
        s.milestones(),
        [-10, -5, 0, 1, 2, 3, 4, 8, 10].map(at).to_vec()
    );
}

#[test]
fn a_site_that_evacuates_and_recovers() {
    // No power loss: the utility came back. evacuate_by needs no lead time then, and
    // normal_by says when the site must be back to normal.
    let text = with(
        &HEAD
            .replace("power_loss_at = \"T+8m\"\n", "hold_s = 10\n")
            .replace(
                "evacuate_by = \"T+2m\"",
                "evacuate_by = \"T+2m\"\nnormal_by = \"T+4m\"",
            ),
        "",
    );
    let s = Scenario::parse(&text, "t.toml").unwrap();
    assert_eq!(
        s.expect,
        Expectation::EvacuateBy(ScenarioTime::from_secs(120))
    );
    assert_eq!(s.normal_by, Some(ScenarioTime::from_secs(240)));
    assert_eq!(s.hold, Some(Duration::from_secs(10)));
    assert_eq!(s.power_loss_at, None);
    assert_eq!(s.expectation(), "evacuate by T+2m, normal by T+4m");
    let site = crate::site::site_config_for(&s, &crate::sim::SimAddresses::default());
    assert!(
        site.contains("[policy]\nevacuation_budget_s = 300\nhold_s = 10\n"),
        "{site}"
    );
    // Without hold_s the gateway keeps its default.
    let plain = Scenario::parse(&with(HEAD, ""), "t.toml").unwrap();
    assert_eq!((plain.hold, plain.normal_by), (None, None));
    assert_eq!(plain.expectation(), "evacuate by T+2m");
    let site = crate::site::site_config_for(&plain, &crate::sim::SimAddresses::default());
    assert!(!site.contains("hold_s"), "{site}");
}

#[test]
fn the_name_is_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.toml");
    std::fs::write(&path, with(HEAD, "")).unwrap();
    let e = Scenario::load(&path).unwrap_err();
    assert_eq!(e.path, "name");
    assert_eq!(
        e.problem,
        "\"t\" differs from the file's name (\"other\"); a suite finds scenarios by file name"
    );
    let good = dir.path().join("t.toml");
    std::fs::write(&good, with(HEAD, "")).unwrap();
    assert!(Scenario::load(&good).is_ok());
    let all = load_dir(dir.path()).unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[0].1.is_err() && all[1].1.is_ok(), "sorted by file name");
}

#[test]
fn a_node_reboot_names_every_node_and_a_watchdog_by_default() {
    let text = with(
        &format!("node = \"host\"\n{HEAD}"),
        "[line]\nnoise = 0.002\n[[events]]\nat = \"T0\"\nkind = \"node-reboot\"\n",
    );
    let s = Scenario::parse(&text, "t.toml").unwrap();
    assert_eq!(s.node, Some(NodeBackendKind::Host));
    let e = &s.events[0];
    assert_eq!(e.kind, RawEventKind::NodeReboot);
    assert_eq!(e.reason, Some(RebootReason::Watchdog));
    assert_eq!(
        e.devices.iter().map(DeviceId::as_str).collect::<Vec<_>>(),
        ["node-1"]
    );
    let noise = s.line_noise.unwrap();
    assert_eq!(
        (noise.rate, noise.window.from, noise.window.to),
        (0.002, s.start, None)
    );
    assert!(
        s.happenings()
            .iter()
            .any(|(_, h)| h == "node-reboot (watchdog): node-1 reboot")
    );
}

#[test]
fn two_gateways_with_their_cuts_and_the_controllers_expectations() {
    let text = HEAD.replace(
        "evacuate_by = \"T+2m\"\n",
        "evacuate_by = \"T+2m\"\ncontroller_evacuate_by = \"T+2m\"\ncontroller_never_flaps = true\n",
    );
    let s = Scenario::parse(
        &with(
            &text,
            "[[gateways]]\nname = \"a\"\n\n[[gateways]]\nname = \"b\"\npoll_factor = 1.5\n\n\
             [[events]]\nat = \"T-2m\"\nkind = \"bus-cut\"\ngateway = \"a\"\n\n\
             [[events]]\nat = \"T-1m\"\nkind = \"gateway-network-cut\"\n\n\
             [[events]]\nat = \"T0\"\nkind = \"gateway-network-restore\"\ngateway = \"b\"\n\n\
             [[events]]\nat = \"T+1m\"\nkind = \"gateway-kill\"\ngateway = \"b\"\n",
        ),
        "t.toml",
    )
    .unwrap();
    assert!(s.with_controller);
    let ids: Vec<&str> = s.gateways.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["gw-t-a", "gw-t-b"]);
    assert_eq!((s.gateways[0].bus, s.gateways[1].bus), (Bus::A, Bus::B));
    assert_eq!(s.gateways[1].poll_factor, 1.5);
    let t = |m: &str| m.parse::<ScenarioTime>().unwrap();
    assert_eq!(
        s.gateways[0].bus_cuts,
        [Window {
            from: t("T-2m"),
            to: None
        }]
    );
    assert!(s.gateways[1].bus_cuts.is_empty());
    // A's network stays cut to the end; B's is restored at T0.
    assert_eq!(s.gateways[0].network_cuts[0].to, None);
    assert_eq!(s.gateways[1].network_cuts[0].to, Some(t("T0")));
    assert_eq!(s.events[1].gateways, [0, 1], "no gateway: every gateway");
    assert_eq!(s.events[3].gateways, [1]);
    assert_eq!(
        s.expectation(),
        "evacuate by T+2m, controller evacuate by T+2m, controller never flaps"
    );
    let told: Vec<String> = s.happenings().into_iter().map(|(_, t)| t).collect();
    assert!(
        told.contains(&"gateway-kill of gw-t-b (carried out by the rig)".to_string()),
        "{told:?}"
    );

    // Without [[gateways]]: one implicit gateway, no controller.
    let one = Scenario::parse(&with(HEAD, ""), "t.toml").unwrap();
    assert!(!one.with_controller);
    assert_eq!(one.gateways.len(), 1);
    assert_eq!(one.gateways[0].id, "gw-t");
}
