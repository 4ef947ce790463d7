//! The controller in the rig: the real `firebreak watch --json` as a process, trusting each
//! gateway's key for its own gateway id through a trust file, on the rig's broker. It merges
//! the gateways (the highest level any of them reports; silence never lowers), marks a
//! silent gateway stale and reports `site-silent-during-alarm`; the rig records each JSON
//! line it prints with the scenario time it arrived, and [`judge_controller`] measures the
//! merged level's timeline: first merged `evacuate` and its lead time, flaps, the highest
//! merged level, verdicts.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firebreak_protocols::Level;
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::RigError;
use super::outcome::Moment;
use crate::clock::ScenarioClock;
use crate::scenario::{ControllerExpectation, Scenario};
use crate::time::ScenarioTime;

/// One line `firebreak watch --json` printed, with when it arrived.
#[derive(Debug, Clone)]
pub struct Heard {
    /// Scenario time of arrival.
    pub at: ScenarioTime,
    /// The JSON object.
    pub event: Value,
}

/// The trust file for `gateways`: each (gateway id, public key file) granted its own id on
/// `site`.
pub fn trust_file(site: &str, gateways: &[(String, PathBuf)]) -> String {
    let mut out = String::from("schema = \"firebreak.trust/1\"\n");
    for (id, key) in gateways {
        let v = |s: &str| toml::Value::String(s.to_string()).to_string();
        out.push_str(&format!(
            "\n[[keys]]\nkey_file = {}\ngateways = [{}]\nsites = [{}]\n",
            v(&key.display().to_string()),
            v(id),
            v(site)
        ));
    }
    out
}

/// A running `firebreak watch`; killed when dropped.
#[derive(Debug)]
pub struct Controller {
    child: Option<Child>,
    heard: Arc<Mutex<Vec<Heard>>>,
}

impl Controller {
    /// Starts `BIN watch --json --site SITE --trust TRUST --broker URL --client-id ID`, its
    /// stdout recorded, its stderr in `log`.
    pub fn start(
        bin: &Path,
        broker_url: &str,
        site: &str,
        trust: &Path,
        client_id: &str,
        clock: ScenarioClock,
        log: &Path,
    ) -> Result<Controller, RigError> {
        let stderr = std::fs::File::create(log)
            .map(Stdio::from)
            .map_err(|e| RigError::Setup(format!("{}: {e}", log.display())))?;
        let mut child = Command::new(bin)
            .args(["watch", "--json", "--site", site, "--broker", broker_url])
            .arg("--trust")
            .arg(trust)
            .args(["--client-id", client_id])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RigError::Setup(format!("cannot start {} watch: {e}", bin.display())))?;
        let heard = Arc::new(Mutex::new(Vec::new()));
        if let Some(stdout) = child.stdout.take() {
            let store = heard.clone();
            let copy = log.with_extension("jsonl");
            tokio::spawn(async move {
                let mut file = tokio::fs::File::create(&copy).await.ok();
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let at = clock.now();
                    if let Some(f) = file.as_mut() {
                        let _ = f.write_all(format!("{at} {line}\n").as_bytes()).await;
                    }
                    if let Ok(event) = serde_json::from_str::<Value>(&line)
                        && let Ok(mut v) = store.lock()
                    {
                        v.push(Heard { at, event });
                    }
                }
            });
        }
        Ok(Controller {
            child: Some(child),
            heard,
        })
    }

    /// Everything heard so far.
    pub fn heard(&self) -> Vec<Heard> {
        self.heard.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Waits (at most `within`) until the controller has taken a status of each gateway in
    /// `ids`: it is subscribed and the gateways are known to it.
    pub async fn wait_for_statuses(&self, ids: &[String], within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            let heard = self.heard();
            let seen = |id: &String| {
                heard.iter().any(|h| {
                    h.event.get("event").and_then(Value::as_str) == Some("status")
                        && h.event.pointer("/status/gateway").and_then(Value::as_str)
                            == Some(id.as_str())
                })
            };
            if ids.iter().all(seen) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops it (it keeps nothing worth a clean stop).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }
}

/// A change of the merged site level.
#[derive(Debug, Clone, Serialize)]
pub struct MergedLevel {
    /// When the controller printed it.
    pub at: Moment,
    /// The new merged level.
    pub level: Level,
    /// The one before.
    pub previous: Level,
    /// The gateway whose trigger changed it.
    pub by: String,
}

/// Something the controller said about the gateways or the site: `stale`, `live`,
/// `site-silent-during-alarm`, `site-heard-again`, `disagree`, `agree`, `rejected`.
#[derive(Debug, Clone, Serialize)]
pub struct ControllerNote {
    /// When.
    pub at: Moment,
    /// The event's name.
    pub event: String,
    /// What it said (gateway, detail, level…), as one line.
    pub detail: String,
}

/// What the controller's merged view did during a run.
#[derive(Debug, Clone, Serialize)]
pub struct ControllerResult {
    /// The gateways it merged.
    pub gateways: Vec<String>,
    /// Each change of the merged site level.
    pub levels: Vec<MergedLevel>,
    /// The first merged site `evacuate`.
    pub first_evacuate: Option<Moment>,
    /// The gateway that brought it.
    pub evacuate_by_gateway: Option<String>,
    /// Power loss minus the first merged `evacuate`, scenario seconds.
    pub lead_time_s: Option<f64>,
    /// The highest merged level, site or zone.
    pub highest: Level,
    /// Times the merged site level went down and later up again.
    pub flaps: usize,
    /// The first `site-silent-during-alarm`.
    pub site_silent: Option<Moment>,
    /// Stale, live, site-silent, heard-again, disagree, agree and rejected events.
    pub notes: Vec<ControllerNote>,
    /// Triggers it accepted (each gateway's, de-duplicated).
    pub accepted: usize,
}

/// A field of a JSON object, `Null` when absent.
fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&Value::Null)
}

fn level_of(v: &Value) -> Option<Level> {
    serde_json::from_value(v.clone()).ok()
}

/// Measures the controller's run and judges it against the scenario's `controller_*`
/// expectations; returns the result and the failures.
pub fn judge_controller(
    scenario: &Scenario,
    gateways: Vec<String>,
    heard: &[Heard],
) -> (ControllerResult, Vec<String>) {
    let mut r = ControllerResult {
        gateways,
        levels: Vec::new(),
        first_evacuate: None,
        evacuate_by_gateway: None,
        lead_time_s: None,
        highest: Level::Normal,
        flaps: 0,
        site_silent: None,
        notes: Vec::new(),
        accepted: 0,
    };
    let mut lowered = false;
    for h in heard {
        let e = &h.event;
        let kind = field(e, "event").as_str().unwrap_or("");
        match kind {
            "accepted" => r.accepted += 1,
            "level" => {
                let (Some(level), Some(previous)) =
                    (level_of(field(e, "level")), level_of(field(e, "previous")))
                else {
                    continue;
                };
                r.highest = r.highest.max(level);
                if !field(e, "zone").is_null() {
                    continue;
                }
                if level < previous {
                    lowered = true;
                } else if level > previous && lowered {
                    r.flaps += 1;
                    lowered = false;
                }
                let by = field(e, "by").as_str().unwrap_or("").to_string();
                if level == Level::Evacuate && r.first_evacuate.is_none() {
                    r.first_evacuate = Some(Moment::of(h.at));
                    r.evacuate_by_gateway = Some(by.clone());
                }
                r.levels.push(MergedLevel {
                    at: Moment::of(h.at),
                    level,
                    previous,
                    by,
                });
            }
            "stale"
            | "live"
            | "site-silent-during-alarm"
            | "site-heard-again"
            | "disagree"
            | "agree"
            | "rejected" => {
                if kind == "site-silent-during-alarm" && r.site_silent.is_none() {
                    r.site_silent = Some(Moment::of(h.at));
                }
                let mut detail = Vec::new();
                for key in ["gateway", "zone", "level", "detail", "reason", "gateways"] {
                    let v = field(e, key);
                    if !v.is_null() {
                        detail.push(format!("{key} {}", compact(v)));
                    }
                }
                r.notes.push(ControllerNote {
                    at: Moment::of(h.at),
                    event: kind.to_string(),
                    detail: detail.join(", "),
                });
            }
            _ => {}
        }
    }
    r.lead_time_s = scenario
        .power_loss_at
        .zip(r.first_evacuate)
        .map(|(p, e)| p.secs_f64() - e.s);
    let failures = failures(&scenario.controller_expect, &r);
    (r, failures)
}

/// A JSON value as short text: strings bare, gateway lists as `gw-a evacuate, gw-b prepare`.
fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Object(o) => o.values().map(compact).collect::<Vec<_>>().join(" "),
                other => compact(other),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn failures(expect: &ControllerExpectation, r: &ControllerResult) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(by) = expect.evacuate_by {
        match r.first_evacuate {
            None => out.push(format!(
                "expected the controller's merged evacuate by {by}: none (highest merged level {})",
                r.highest
            )),
            Some(e) if e.at.0 > by => out.push(format!(
                "expected the controller's merged evacuate by {by}: at {} ({:.0} s late)",
                e.at.0,
                e.s - by.secs_f64()
            )),
            Some(_) => {}
        }
    }
    if let Some((verdict, by)) = expect.verdict {
        match r.site_silent {
            None => out.push(format!(
                "expected the controller's {verdict} by {by}: the controller never said it"
            )),
            Some(t) if t.at.0 > by => out.push(format!(
                "expected the controller's {verdict} by {by}: at {} ({:.0} s late)",
                t.at.0,
                t.s - by.secs_f64()
            )),
            Some(_) => {}
        }
    }
    if expect.never_flaps && r.flaps > 0 {
        let path: Vec<String> = r
            .levels
            .iter()
            .map(|l| format!("{} {} (by {})", l.at.at.0, l.level, l.by))
            .collect();
        out.push(format!(
            "expected the controller's merged level never to flap: it went down and up again {} time(s): {}",
            r.flaps,
            path.join(", ")
        ));
    }
    if let Some(max) = expect.max_level
        && r.highest > max
    {
        out.push(format!(
            "expected the controller's merged level never above {max}: it reached {}",
            r.highest
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heard(at: i64, json: &str) -> Heard {
        Heard {
            at: ScenarioTime::from_secs(at),
            event: serde_json::from_str(json).unwrap(),
        }
    }

    fn scenario(expect: &str) -> Scenario {
        let text = format!(
            r#"name = "t"
description = "two gateways"
start = "T-10m"
end = "T+10m"
power_loss_at = "T+8m"
evacuation_budget_s = 300

[expect]
evacuate_by = "T+3m"
{expect}

[[gateways]]
name = "a"

[[gateways]]
name = "b"

[[devices]]
name = "ups-1"
kind = "ups"
zone = "hall"
"#
        );
        Scenario::parse(&text, "t.toml").unwrap()
    }

    fn level(at: i64, previous: &str, level: &str, by: &str) -> Heard {
        heard(
            at,
            &format!(
                r#"{{"event":"level","site":"hil-t","zone":null,"level":"{level}","previous":"{previous}","by":"{by}","gateways":[]}}"#
            ),
        )
    }

    #[test]
    fn the_merged_timeline_is_measured_and_judged() {
        let s = scenario("controller_evacuate_by = \"T+3m\"\ncontroller_never_flaps = true");
        let run = vec![
            level(-300, "normal", "prepare", "gw-t-a"),
            heard(
                -120,
                r#"{"event":"stale","gateway":"gw-t-a","detail":"offline"}"#,
            ),
            level(12, "prepare", "evacuate", "gw-t-b"),
        ];
        let (r, failures) = judge_controller(&s, vec!["gw-t-a".into(), "gw-t-b".into()], &run);
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(r.first_evacuate.map(|m| m.s), Some(12.0));
        assert_eq!(r.evacuate_by_gateway.as_deref(), Some("gw-t-b"));
        assert_eq!(r.lead_time_s, Some(468.0));
        assert_eq!(r.notes.len(), 1);
        assert_eq!(r.notes[0].detail, "gateway gw-t-a, detail offline");

        let mut flapping = run.clone();
        flapping.insert(2, level(-60, "prepare", "watch", "gw-t-b"));
        let (r, failures) = judge_controller(&s, Vec::new(), &flapping);
        assert_eq!(r.flaps, 1);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].starts_with("expected the controller's merged level never to flap"));

        let late = vec![level(200, "normal", "evacuate", "gw-t-b")];
        let (_, failures) = judge_controller(&s, Vec::new(), &late);
        assert_eq!(
            failures,
            ["expected the controller's merged evacuate by T+3m: at T+3m20s (20 s late)"]
        );
    }

    #[test]
    fn the_silent_site_verdict_is_due_by_its_moment() {
        let s = scenario(
            "controller_verdict = \"site-silent-during-alarm\"\ncontroller_verdict_by = \"T-1m\"",
        );
        let (_, failures) = judge_controller(&s, Vec::new(), &[]);
        assert_eq!(
            failures,
            [
                "expected the controller's site-silent-during-alarm by T-1m: the controller never said it"
            ]
        );
        let run = vec![heard(
            -150,
            r#"{"event":"site-silent-during-alarm","site":"hil-t","level":"prepare","gateways":["gw-t-a","gw-t-b"]}"#,
        )];
        let (r, failures) = judge_controller(&s, Vec::new(), &run);
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(r.site_silent.map(|m| m.s), Some(-150.0));
        assert_eq!(r.notes[0].detail, "level prepare, gateways gw-t-a, gw-t-b");
    }

    #[test]
    fn the_trust_file_grants_each_key_its_own_gateway() {
        let t = trust_file(
            "hil-t",
            &[
                ("gw-t-a".into(), PathBuf::from("/k/a.pub")),
                ("gw-t-b".into(), PathBuf::from("/k/b.pub")),
            ],
        );
        let doc: toml::Table = t.parse().unwrap();
        assert_eq!(doc["schema"].as_str(), Some("firebreak.trust/1"));
        let keys = doc["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1]["key_file"].as_str(), Some("/k/b.pub"));
        assert_eq!(keys[1]["gateways"][0].as_str(), Some("gw-t-b"));
        assert_eq!(keys[1]["sites"][0].as_str(), Some("hil-t"));
    }
}
