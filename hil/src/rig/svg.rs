//! An SVG timeline of one replay: the scripted signals, the levels as the subscriber received
//! them (site and zones), faults and events, the expected evacuation and the power loss.
//! Plain SVG text, readable in any browser.

use std::fmt::Write;

use firebreak_protocols::Level;

use super::outcome::ScenarioResult;
use crate::scenario::{Expectation, FaultScope, Scenario};
use crate::time::ScenarioTime;

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 250.0;
const RIGHT: f64 = 20.0;
const ROW: f64 = 34.0;
const LANE: f64 = 26.0;
const SAMPLES: usize = 400;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn colour(level: Level) -> &'static str {
    match level {
        Level::Normal => "#d9ead3",
        Level::Watch => "#ffe599",
        Level::Prepare => "#f6b26b",
        _ => "#e06666",
    }
}

/// The SVG text for a scenario and its result.
pub fn timeline(scenario: &Scenario, result: &ScenarioResult) -> String {
    let (t0, t1) = (scenario.start.millis() as f64, scenario.end.millis() as f64);
    let span = (t1 - t0).max(1.0);
    let x = |t: ScenarioTime| LEFT + (t.millis() as f64 - t0) / span * (WIDTH - LEFT - RIGHT);
    let signals: Vec<_> = scenario
        .devices
        .iter()
        .flat_map(|d| d.signals.iter().map(move |s| (d, s)))
        .collect();
    let mut scopes: Vec<Option<String>> = vec![None];
    for z in scenario.zones() {
        scopes.push(Some(z.to_string()));
    }
    let top = 58.0;
    let lanes_top = top + ROW * signals.len() as f64 + 16.0;
    let nodes = result.node.as_ref().map_or(&[][..], |n| &n.nodes[..]);
    let nodes_top = lanes_top + LANE * scopes.len() as f64 + 8.0;
    let faults_top = nodes_top + LANE * nodes.len() as f64 + 16.0;
    let fault_rows: Vec<_> = scenario
        .devices
        .iter()
        .filter(|d| !d.faults.is_empty() || !d.network_cuts.is_empty())
        .collect();
    let axis = faults_top + LANE * fault_rows.len() as f64 + 8.0;
    let height = axis + 40.0;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let verdict = if result.passed { "PASS" } else { "FAIL" };
    let lead = result
        .lead_time_s
        .map_or_else(String::new, |l| format!(", lead time {l:.0} s"));
    let _ = writeln!(
        out,
        r#"<text x="10" y="20" font-size="15" font-weight="bold">{} — {verdict}{lead} (x{})</text>"#,
        esc(&scenario.name),
        result.time_scale
    );
    let _ = writeln!(
        out,
        r##"<text x="10" y="38" fill="#444">{}; expect {}</text>"##,
        esc(&scenario.description),
        esc(&scenario.expectation())
    );

    // Signals, each scaled to its own range.
    for (i, (device, signal)) in signals.iter().enumerate() {
        let y0 = top + ROW * i as f64;
        let points: Vec<(f64, f32)> = (0..=SAMPLES)
            .map(|k| {
                let t = ScenarioTime::from_millis(
                    (t0 + span * k as f64 / SAMPLES as f64).round() as i64
                );
                (x(t), device.value_at(signal.signal, signal.channel, t))
            })
            .collect();
        let lo = points.iter().map(|p| p.1).fold(f32::INFINITY, f32::min);
        let hi = points.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max);
        let range = f64::from((hi - lo).max(f32::EPSILON));
        let path: Vec<String> = points
            .iter()
            .map(|(px, v)| {
                let py = y0 + ROW - 6.0 - f64::from(v - lo) / range * (ROW - 12.0);
                format!("{px:.1},{py:.1}")
            })
            .collect();
        let name = if signal.channel == 0 {
            format!("{} {}", device.name, signal.signal)
        } else {
            format!("{} {}[{}]", device.name, signal.signal, signal.channel)
        };
        let unit = signal.signal.unit().symbol();
        let _ = writeln!(
            out,
            r##"<text x="10" y="{:.1}">{}</text><text x="10" y="{:.1}" fill="#777" font-size="9">{lo}..{hi} {}</text>"##,
            y0 + 14.0,
            esc(&name),
            y0 + 26.0,
            esc(unit)
        );
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#eee"/><polyline fill="none" stroke="#3d85c6" stroke-width="1.5" points="{}"/>"##,
            y0 + ROW - 6.0,
            WIDTH - RIGHT,
            y0 + ROW - 6.0,
            path.join(" ")
        );
    }

    // Levels as received: one lane for the site, one per zone.
    for (i, scope) in scopes.iter().enumerate() {
        let y0 = lanes_top + LANE * i as f64;
        let label = scope.as_ref().map_or_else(
            || "site level (received)".to_string(),
            |z| format!("zone {z}"),
        );
        let _ = writeln!(
            out,
            r#"<text x="10" y="{:.1}" font-weight="{}">{}</text>"#,
            y0 + 16.0,
            if scope.is_none() { "bold" } else { "normal" },
            esc(&label)
        );
        let mut level = Level::Normal;
        let mut from = scenario.start;
        let changes: Vec<(ScenarioTime, Level)> = result
            .received
            .iter()
            .filter(|r| !r.duplicate && r.zone == *scope)
            .map(|r| (r.arrived.at.0, r.level))
            .chain([(scenario.end, Level::Normal)])
            .collect();
        for (at, next) in changes {
            let at = at.min(scenario.end).max(scenario.start);
            let (xa, xb) = (x(from), x(at));
            if xb > xa {
                let _ = writeln!(
                    out,
                    r#"<rect x="{xa:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{level}</title></rect>"#,
                    y0 + 3.0,
                    xb - xa,
                    LANE - 6.0,
                    colour(level)
                );
                if xb - xa > 40.0 {
                    let _ = writeln!(
                        out,
                        r#"<text x="{:.1}" y="{:.1}" font-size="9">{level}</text>"#,
                        xa + 3.0,
                        y0 + 16.0
                    );
                }
            }
            level = next;
            from = at;
        }
    }

    // The firmware nodes' own alarm state: latched (red), a cause present while not latched
    // (yellow), their boots.
    for (i, node) in nodes.iter().enumerate() {
        let y0 = nodes_top + LANE * i as f64;
        let _ = writeln!(
            out,
            r#"<text x="10" y="{:.1}">{} alarm (firmware)</text>"#,
            y0 + 16.0,
            esc(&node.device)
        );
        let changes: Vec<(ScenarioTime, u16, String)> = node
            .alarms
            .iter()
            .map(|a| (a.at.at.0, a.state, a.causes.join(", ")))
            .chain([(scenario.end, 0, String::new())])
            .collect();
        let (mut from, mut state, mut why) = (scenario.start, 0u16, String::new());
        for (at, next, next_why) in changes {
            let at = at.min(scenario.end).max(scenario.start);
            let (xa, xb) = (x(from), x(at));
            if xb > xa && state != 0 {
                let (fill, what) = if state & 1 != 0 {
                    ("#e06666", format!("latched: {why}"))
                } else {
                    ("#ffe599", why.clone())
                };
                let _ = writeln!(
                    out,
                    r#"<rect x="{xa:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{fill}"><title>{}</title></rect>"#,
                    y0 + 3.0,
                    xb - xa,
                    LANE - 6.0,
                    esc(&what)
                );
                if xb - xa > 60.0 {
                    let _ = writeln!(
                        out,
                        r#"<text x="{:.1}" y="{:.1}" font-size="9">{}</text>"#,
                        xa + 3.0,
                        y0 + 16.0,
                        esc(&what)
                    );
                }
            }
            (from, state, why) = (at, next, next_why);
        }
        for b in node.boots.iter().skip(1) {
            let px = x(b.at.at.0);
            let _ = writeln!(
                out,
                r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#674ea7" stroke-width="2"><title>reboot, reset reason {}</title></line>"##,
                y0 + 1.0,
                y0 + LANE - 1.0,
                b.reset_reason
                    .map_or_else(|| "not said".to_string(), |r| r.to_string())
            );
        }
    }

    // Faults and network cuts.
    for (i, d) in fault_rows.iter().enumerate() {
        let y0 = faults_top + LANE * i as f64;
        let _ = writeln!(
            out,
            r#"<text x="10" y="{:.1}">{} faults</text>"#,
            y0 + 16.0,
            esc(d.name.as_str())
        );
        let windows = d
            .faults
            .iter()
            .map(|f| {
                let what = match f.scope {
                    FaultScope::Device => f.fault.to_string(),
                    FaultScope::Value { signal, channel } => {
                        format!("{} on {signal}[{channel}]", f.fault)
                    }
                };
                (f.window, what)
            })
            .chain(
                d.network_cuts
                    .iter()
                    .map(|w| (*w, "network cut".to_string())),
            );
        for (w, what) in windows {
            let (xa, xb) = (x(w.from), x(w.to.unwrap_or(scenario.end)));
            let _ = writeln!(
                out,
                r##"<rect x="{xa:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#cccccc"><title>{}</title></rect><text x="{:.1}" y="{:.1}" font-size="9">{}</text>"##,
                y0 + 3.0,
                (xb - xa).max(1.0),
                LANE - 6.0,
                esc(&what),
                xa + 3.0,
                y0 + 16.0,
                esc(&what)
            );
        }
    }

    // Time axis.
    let step_s = [60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0]
        .into_iter()
        .find(|s| span / 1000.0 / s <= 16.0)
        .unwrap_or(7200.0);
    let mut tick = (t0 / 1000.0 / step_s).ceil() * step_s;
    while tick * 1000.0 <= t1 {
        let t = ScenarioTime::from_millis((tick * 1000.0) as i64);
        let px = x(t);
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{axis:.1}" stroke="#f0f0f0"/><text x="{px:.1}" y="{:.1}" text-anchor="middle" font-size="9">{t}</text>"##,
            axis + 14.0
        );
        tick += step_s;
    }

    // Events, the expectation, power loss, first evacuate.
    let marker = |out: &mut String,
                  t: ScenarioTime,
                  colour: &str,
                  dash: &str,
                  text: &str,
                  row: f64| {
        let px = x(t);
        let _ = writeln!(
            out,
            r#"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{axis:.1}" stroke="{colour}" stroke-width="1.5" stroke-dasharray="{dash}"/><text x="{:.1}" y="{:.1}" fill="{colour}" font-size="10">{}</text>"#,
            top - 8.0,
            px + 3.0,
            top - 10.0 + row,
            esc(text)
        );
    };
    for e in &scenario.events {
        marker(&mut out, e.at, "#674ea7", "2,3", &e.kind.to_string(), 0.0);
    }
    if let Expectation::EvacuateBy(by) = scenario.expect {
        marker(&mut out, by, "#cc0000", "6,4", "evacuate by", 0.0);
    }
    if let Some(by) = scenario.normal_by {
        marker(&mut out, by, "#38761d", "6,4", "normal by", 0.0);
    }
    if let Some(crate::scenario::NodeExpectation::AlarmBy(by)) = scenario.node_expect {
        marker(&mut out, by, "#b45f06", "6,4", "node alarm by", 20.0);
    }
    if let Some(p) = scenario.power_loss_at {
        marker(&mut out, p, "#990000", "", "power loss", 0.0);
    }
    if let Some(e) = result.first_evacuate {
        marker(&mut out, e.at.0, "#cc0000", "", "evacuate received", 10.0);
    }
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="{:.1}" fill="#777" font-size="9">scenario time; levels as the subscriber received them</text>"##,
        height - 6.0
    );
    out.push_str("</svg>\n");
    out
}
