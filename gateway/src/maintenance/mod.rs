//! Maintenance mode: a technician takes a device, or one channel (one probe) of it, out of the
//! evidence for a bounded time, from the command line against the running gateway
//! (`firebreak maintenance`, over the control socket: [`crate::control`]).
//!
//! - **What it does**: the policy engine judges as if the device or channel did not exist
//!   ([`crate::policy::Engine::set_maintenance`]): its readings fire nothing and hold nothing,
//!   its silence is no `comm-lost`, and every *other* witness counts exactly as before, so it
//!   can never take evacuation evidence away from another device.
//! - **Bounded**: every entry has an end, at most [`MAX_DURATION`] away, and ends by itself
//!   then (on the earlier of the wall clock and the monotonic clock, so a wall clock stepped
//!   back never lengthens it). At most [`MAX_MAINTENANCE`] entries at once.
//! - **Refused while it is the evidence**: a device (or channel) that is behind a zone's
//!   `prepare` or `evacuate` right now is not put under maintenance unless the request says
//!   `force` — that would lower the zone after its hold.
//! - **Shown and kept**: every change is logged (with the Unix user the kernel names for the
//!   socket's peer, and the name and reason the technician gave), listed in `/status`, on the
//!   page, in `/metrics`, and in the signed gateway status (published again at once). The
//!   entries are kept in `maintenance.json` next to the outbox, so a restart keeps them.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use firebreak_protocols::message::{MAX_MAINTENANCE, MaintenanceNote};
use firebreak_protocols::{DeviceId, Level};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use crate::config::SiteConfig;
use crate::policy::Engine;

pub mod cli;

/// The longest a device can be under maintenance at once (a request may be renewed).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The file the entries are kept in, in the outbox directory.
pub const FILE_NAME: &str = "maintenance.json";
/// How many recent changes `/status` shows.
pub const RECENT: usize = 32;
/// The longest reason or name kept, in characters.
pub const MAX_TEXT: usize = 200;

/// One device, or one channel of it, under maintenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The device.
    pub device: DeviceId,
    /// The channel; absent for the whole device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u8>,
    /// Its zone.
    pub zone: String,
    /// Since when, in milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// Until when, in milliseconds since the Unix epoch.
    pub until_ms: u64,
    /// Why, as the technician said.
    pub reason: String,
    /// Who, as the technician said (`--by`, by default their login name).
    pub by: String,
    /// The Unix user of the process that asked, as the kernel says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The monotonic deadline (milliseconds), in this process only.
    #[serde(skip)]
    deadline_mono_ms: u64,
}

impl Entry {
    fn key(&self) -> (&DeviceId, Option<u8>) {
        (&self.device, self.channel)
    }

    /// The device, and the channel when there is one: `node-1` or `node-1 channel 2`.
    pub fn subject(&self) -> String {
        subject(&self.device, self.channel)
    }
}

/// `node-1` or `node-1 channel 2`: how the log, the command line and `watch` name an entry.
pub fn subject(device: &DeviceId, channel: Option<u8>) -> String {
    match channel {
        Some(c) => format!("{device} channel {c}"),
        None => device.to_string(),
    }
}

/// What happened to an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Put under maintenance.
    Start,
    /// Its end moved (a new request for the same device and channel).
    Renew,
    /// Ended by a technician.
    End,
    /// Ended by itself.
    Expire,
    /// Ended because its device left the configuration (a reload), or the file kept it for a
    /// device the configuration no longer has (a start).
    Drop,
    /// Taken back from the file at a start.
    Restore,
}

/// One change, as `/status` and the log show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What.
    pub action: Action,
    /// The device.
    pub device: DeviceId,
    /// The channel; absent for the whole device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u8>,
    /// The entry's end (for a start, a renewal or a restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// Why (the technician's reason, or the gateway's).
    pub reason: String,
    /// Who, as the technician said; `gateway` for the gateway's own changes.
    pub by: String,
    /// The Unix user of the process that asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Started with `force` though the device was behind a zone's level.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
}

/// A request to start (or renew) maintenance, as the control socket carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The device.
    pub device: String,
    /// One channel of it; absent for the whole device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u8>,
    /// For how long, in seconds (at most [`MAX_DURATION`]).
    pub for_s: f64,
    /// Why (required).
    pub reason: String,
    /// Who (the technician's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Even though the device is behind a zone's `prepare` or `evacuate` now.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// A request to end maintenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndRequest {
    /// The device.
    pub device: String,
    /// The channel; absent for the whole-device entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u8>,
    /// Who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// What the gateway answers a maintenance request with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The change made, if any (a list makes none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    /// The entries now.
    pub entries: Vec<Entry>,
    /// Carried out, but something to know (the file could not be written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// The maintenance entries of a running gateway.
#[derive(Debug, Default)]
pub struct Maintenance {
    entries: Vec<Entry>,
    recent: VecDeque<Change>,
    file: Option<PathBuf>,
    /// Changes since start, for `/metrics`.
    changes_total: u64,
    /// Changed since the file was last written.
    unsaved: bool,
}

/// What `/status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// The entries now, each with the seconds left.
    pub active: Vec<ActiveView>,
    /// The latest changes, newest last.
    pub recent: Vec<Change>,
    /// Changes since start.
    pub changes_total: u64,
}

/// An entry as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveView {
    /// The entry.
    #[serde(flatten)]
    pub entry: Entry,
    /// Seconds until it ends by itself.
    pub remaining_s: u64,
}

impl Maintenance {
    /// The entries kept in `file`, as far as the configuration still has their devices and
    /// they have not ended; a file that cannot be read is logged and left for the next
    /// change to replace (the gateway starts with no maintenance: every reading counts).
    pub fn load(file: PathBuf, config: &SiteConfig, now_ms: u64, mono_ms: u64) -> Maintenance {
        let mut m = Maintenance {
            file: Some(file.clone()),
            ..Maintenance::default()
        };
        let kept: Vec<Entry> = match std::fs::read(&file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                error!(file = %file.display(), error = %e, "maintenance file cannot be read: starting with no device under maintenance");
                Vec::new()
            }
            Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                Ok(saved) => saved.entries,
                Err(e) => {
                    error!(file = %file.display(), error = %e, "maintenance file is not valid: starting with no device under maintenance");
                    Vec::new()
                }
            },
        };
        for mut e in kept {
            if e.until_ms <= now_ms {
                m.record(gateway_change(
                    now_ms,
                    Action::Expire,
                    &e,
                    "ended while the gateway was stopped",
                ));
                continue;
            }
            if zone_of(config, &e.device).is_none() {
                m.record(gateway_change(
                    now_ms,
                    Action::Drop,
                    &e,
                    "its device is not in the configuration",
                ));
                continue;
            }
            if m.entries.len() >= MAX_MAINTENANCE {
                m.record(gateway_change(
                    now_ms,
                    Action::Drop,
                    &e,
                    "more entries than a gateway keeps",
                ));
                continue;
            }
            // A wall clock stepped back while stopped never lengthens it.
            let left = (e.until_ms - now_ms).min(MAX_DURATION.as_millis() as u64);
            e.until_ms = now_ms + left;
            e.deadline_mono_ms = mono_ms + left;
            let mut change = gateway_change(now_ms, Action::Restore, &e, &e.reason);
            change.until_ms = Some(e.until_ms);
            m.entries.push(e);
            m.record(change);
        }
        m
    }

    /// The entries now.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// What the policy engine is given.
    pub fn for_engine(&self) -> Vec<(DeviceId, Option<u8>)> {
        self.entries
            .iter()
            .map(|e| (e.device.clone(), e.channel))
            .collect()
    }

    /// What the signed gateway status lists.
    pub fn notes(&self) -> Vec<MaintenanceNote> {
        self.entries
            .iter()
            .map(|e| MaintenanceNote {
                device: e.device.clone(),
                channel: e.channel,
                since_ms: e.since_ms,
                until_ms: e.until_ms,
            })
            .collect()
    }

    /// What `/status` shows, at wall time `now_ms`.
    pub fn view(&self, now_ms: u64) -> View {
        View {
            active: self
                .entries
                .iter()
                .map(|e| ActiveView {
                    entry: e.clone(),
                    remaining_s: e.until_ms.saturating_sub(now_ms).div_ceil(1000),
                })
                .collect(),
            recent: self.recent.iter().cloned().collect(),
            changes_total: self.changes_total,
        }
    }

    /// The Prometheus text exposition: entries now (by zone) and changes since start.
    pub fn prometheus(&self) -> String {
        let mut out = String::from(
            "# HELP firebreak_maintenance_entries Devices or channels under maintenance now (their readings are not evidence).\n# TYPE firebreak_maintenance_entries gauge\n",
        );
        let mut zones: Vec<&str> = self.entries.iter().map(|e| e.zone.as_str()).collect();
        zones.sort_unstable();
        zones.dedup();
        for z in zones {
            let n = self.entries.iter().filter(|e| e.zone == z).count();
            out.push_str(&format!(
                "firebreak_maintenance_entries{{zone=\"{}\"}} {n}\n",
                crate::http::esc(z)
            ));
        }
        out.push_str(&format!(
            "# HELP firebreak_maintenance_changes_total Maintenance started, renewed, ended or expired since start.\n# TYPE firebreak_maintenance_changes_total counter\nfirebreak_maintenance_changes_total {}\n",
            self.changes_total
        ));
        out
    }

    /// Starts (or renews) maintenance of a device or channel, at `now` (wall and monotonic
    /// milliseconds). `engine` says whether it is behind a zone's level now; `seen` lists the
    /// channels the device has reported, if any.
    pub fn start(
        &mut self,
        request: &StartRequest,
        uid: Option<u32>,
        config: &SiteConfig,
        engine: &Engine,
        seen: &[u8],
        now: (u64, u64),
    ) -> Result<Change, String> {
        let (now_ms, mono_ms) = now;
        let (device, zone) = known_device(config, &request.device)?;
        if let Some(c) = request.channel
            && !seen.is_empty()
            && !seen.contains(&c)
        {
            return Err(format!(
                "device {device} has no channel {c} (it reports channels {})",
                seen.iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let max_s = MAX_DURATION.as_secs_f64();
        if !(request.for_s.is_finite() && request.for_s >= 1.0 && request.for_s <= max_s) {
            return Err(format!(
                "for_s {} must be from 1 s to {} h: maintenance always ends by itself (renew it if the work takes longer)",
                request.for_s,
                MAX_DURATION.as_secs() / 3600
            ));
        }
        let reason = text("reason", &request.reason)?;
        let by = who(request.by.as_deref(), uid)?;
        let renewing = self
            .entries
            .iter()
            .any(|e| e.key() == (&device, request.channel));
        if !renewing && self.entries.len() >= MAX_MAINTENANCE {
            return Err(format!(
                "{MAX_MAINTENANCE} devices or channels are under maintenance already, the most a gateway keeps: end one first (firebreak maintenance list)"
            ));
        }
        let behind = evidence_behind(engine, &zone, &device, request.channel);
        if let Some((level, rules)) = &behind
            && !request.force
        {
            return Err(format!(
                "{} is behind zone {zone}'s {level} now ({}): under maintenance it would no longer count and the zone would come down after its hold. If the alarm is false and you know it, repeat with --force",
                subject(&device, request.channel),
                rules.join(", ")
            ));
        }
        let millis = (request.for_s * 1000.0) as u64;
        let entry = Entry {
            device: device.clone(),
            channel: request.channel,
            zone,
            since_ms: now_ms,
            until_ms: now_ms + millis,
            reason: reason.clone(),
            by: by.clone(),
            uid,
            deadline_mono_ms: mono_ms + millis,
        };
        let change = Change {
            at_ms: now_ms,
            action: if renewing {
                Action::Renew
            } else {
                Action::Start
            },
            device,
            channel: request.channel,
            until_ms: Some(entry.until_ms),
            reason,
            by,
            uid,
            forced: behind.is_some(),
        };
        match self
            .entries
            .iter_mut()
            .find(|e| e.key() == (&entry.device, entry.channel))
        {
            Some(e) => {
                e.until_ms = entry.until_ms;
                e.deadline_mono_ms = entry.deadline_mono_ms;
                e.reason = entry.reason;
                e.by = entry.by;
                e.uid = entry.uid;
            }
            None => self.entries.push(entry),
        }
        self.record(change.clone());
        Ok(change)
    }

    /// Ends maintenance of a device or channel.
    pub fn end(
        &mut self,
        request: &EndRequest,
        uid: Option<u32>,
        now_ms: u64,
    ) -> Result<Change, String> {
        let Some(i) = self
            .entries
            .iter()
            .position(|e| e.device.as_str() == request.device && e.channel == request.channel)
        else {
            let listed = if self.entries.is_empty() {
                "none is".to_string()
            } else {
                format!(
                    "under maintenance: {}",
                    self.entries
                        .iter()
                        .map(Entry::subject)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Err(format!(
                "{} is not under maintenance ({listed})",
                match request.channel {
                    Some(c) => format!("{} channel {c}", request.device),
                    None => request.device.clone(),
                }
            ));
        };
        let by = who(request.by.as_deref(), uid)?;
        let e = self.entries.remove(i);
        let change = Change {
            at_ms: now_ms,
            action: Action::End,
            device: e.device,
            channel: e.channel,
            until_ms: None,
            reason: "ended by a technician".into(),
            by,
            uid,
            forced: false,
        };
        self.record(change.clone());
        Ok(change)
    }

    /// Ends the entries whose time is up, at wall time `now_ms` and monotonic `mono_ms` (every
    /// tick: nothing is allocated when none is due).
    pub fn expire(&mut self, now_ms: u64, mono_ms: u64) -> Vec<Change> {
        self.end_where(
            |e| e.until_ms <= now_ms || e.deadline_mono_ms <= mono_ms,
            Action::Expire,
            "its time is up",
            now_ms,
        )
    }

    /// Ends the entries of devices `config` no longer has (a reload).
    pub fn retain_configured(&mut self, config: &SiteConfig, now_ms: u64) -> Vec<Change> {
        self.end_where(
            |e| zone_of(config, &e.device).is_none(),
            Action::Drop,
            "its device left the configuration",
            now_ms,
        )
    }

    /// The gateway's own ending of the entries `over` picks, recorded as `action` with `why`.
    fn end_where(
        &mut self,
        over: impl Fn(&Entry) -> bool,
        action: Action,
        why: &str,
        now_ms: u64,
    ) -> Vec<Change> {
        if !self.entries.iter().any(&over) {
            return Vec::new();
        }
        let (gone, kept): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(&over);
        self.entries = kept;
        let mut out = Vec::new();
        for e in gone {
            let c = gateway_change(now_ms, action, &e, why);
            self.record(c.clone());
            out.push(c);
        }
        out
    }

    /// Writes the entries to the file when they changed since it was last written; an error
    /// says which file and why (and the next call tries again).
    pub fn save(&mut self) -> Result<(), String> {
        let Some(file) = self.file.as_ref().filter(|_| self.unsaved) else {
            return Ok(());
        };
        let mut bytes = serde_json::to_vec_pretty(&Saved {
            entries: self.entries.clone(),
        })
        .unwrap_or_default();
        bytes.push(b'\n');
        crate::durable::replace(file, &bytes).map_err(|(what, e)| {
            format!("maintenance file {}: cannot {what}: {e}", file.display())
        })?;
        self.unsaved = false;
        Ok(())
    }

    fn record(&mut self, change: Change) {
        log(&change);
        self.unsaved = true;
        self.changes_total += 1;
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(change);
    }
}

/// The file's content.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    entries: Vec<Entry>,
}

/// The file next to the outbox, when there is one.
pub fn file_of(config: &SiteConfig) -> Option<PathBuf> {
    config.outbox.as_ref().map(|o| o.dir.join(FILE_NAME))
}

fn gateway_change(now_ms: u64, action: Action, e: &Entry, why: &str) -> Change {
    Change {
        at_ms: now_ms,
        action,
        device: e.device.clone(),
        channel: e.channel,
        until_ms: None,
        reason: why.into(),
        by: "gateway".into(),
        uid: None,
        forced: false,
    }
}

/// A time in milliseconds since the Unix epoch as RFC 3339 (empty past year 9999).
pub(crate) fn rfc3339(ms: u64) -> String {
    firebreak_protocols::time::format_rfc3339(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn log(c: &Change) {
    let until = c.until_ms.map(rfc3339).unwrap_or_default();
    let what = subject(&c.device, c.channel);
    match c.action {
        Action::Start | Action::Renew | Action::Restore => warn!(
            device = %c.device,
            channel = ?c.channel,
            action = ?c.action,
            until = %until,
            reason = %c.reason,
            by = %c.by,
            uid = ?c.uid,
            forced = c.forced,
            "maintenance: {what} is not evidence until {until}"
        ),
        Action::End | Action::Expire | Action::Drop => info!(
            device = %c.device,
            channel = ?c.channel,
            action = ?c.action,
            reason = %c.reason,
            by = %c.by,
            uid = ?c.uid,
            "maintenance over: {what} counts again"
        ),
    }
}

fn zone_of(config: &SiteConfig, device: &DeviceId) -> Option<String> {
    config
        .all_devices()
        .into_iter()
        .find(|(d, _, _)| *d == device)
        .map(|(_, z, _)| z.to_string())
}

/// The configured device of that name, and its zone.
fn known_device(config: &SiteConfig, name: &str) -> Result<(DeviceId, String), String> {
    let all = config.all_devices();
    match all.iter().find(|(d, _, _)| d.as_str() == name) {
        Some((d, z, _)) => Ok(((*d).clone(), z.to_string())),
        None => Err(format!(
            "device {name:?} is not in this gateway's configuration (devices: {})",
            all.iter()
                .map(|(d, _, _)| d.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Who asked: the name given, else the Unix user the kernel named.
fn who(by: Option<&str>, uid: Option<u32>) -> Result<String, String> {
    match by {
        Some(b) => text("by", b),
        None => Ok(uid.map_or("unknown".into(), |u| format!("uid {u}"))),
    }
}

fn text(what: &str, s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err(format!(
            "{what} is empty: say it, it is logged and published"
        ));
    }
    if s.chars().count() > MAX_TEXT || s.chars().any(char::is_control) {
        return Err(format!(
            "{what} must be one line of at most {MAX_TEXT} characters"
        ));
    }
    Ok(s.to_string())
}

/// The level of `zone`, at `prepare` or above, and its rules, when the device (or channel) is
/// among the reasons for it now.
fn evidence_behind(
    engine: &Engine,
    zone: &str,
    device: &DeviceId,
    channel: Option<u8>,
) -> Option<(Level, Vec<String>)> {
    let level = engine
        .zone_levels()
        .find(|(z, _)| z.as_str() == zone)
        .map(|(_, l)| l)?;
    if level < Level::Prepare {
        return None;
    }
    let mut rules: Vec<String> = engine
        .reasons(zone)
        .into_iter()
        .filter(|r| r.device.as_ref() == Some(device))
        .filter(|r| channel.is_none_or(|c| c == r.channel))
        .map(|r| r.rule.to_string())
        .collect();
    rules.dedup();
    (!rules.is_empty()).then_some((level, rules))
}

/// Parses a duration as a technician types it: `90s`, `45m`, `2h`, `1h30m`, or seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (say 90s, 45m, 2h or 1h30m)");
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
    }
    if !number.is_empty() || s.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Policy, Topology};

    const SITE: &str = r#"
[site]
name = "s"
gateway = "gw"

[[zones]]
name = "room"

[[mqtt_sources]]
name = "probe-a"
zone = "room"
broker = "mqtt://127.0.0.1:1"
topic = "a"
[[mqtt_sources.signals]]
signal = "off-gas"
field = "voc"

[[mqtt_sources]]
name = "probe-b"
zone = "room"
broker = "mqtt://127.0.0.1:1"
topic = "b"
[[mqtt_sources.signals]]
signal = "off-gas"
field = "voc"
"#;

    fn start(device: &str, for_s: f64, reason: &str) -> StartRequest {
        StartRequest {
            device: device.into(),
            channel: None,
            for_s,
            reason: reason.into(),
            by: Some("alice".into()),
            force: false,
        }
    }

    #[test]
    fn durations_as_technicians_type_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("45m"), Ok(Duration::from_secs(2700)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("600"), Ok(Duration::from_secs(600)));
        for bad in ["", "m", "5x", "1h30", "-5m", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_are_checked_and_entries_are_kept_across_a_restart() {
        let config = SiteConfig::parse(SITE, "site.toml").unwrap();
        let engine = Engine::new(
            Policy::default_policy().unwrap(),
            &Topology::from_config(&config),
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        let mut m = Maintenance::load(file.clone(), &config, 1_000_000, 5_000);
        assert!(m.entries().is_empty());
        let now = (1_000_000, 5_000);
        let e = m
            .start(&start("ghost", 60.0, "x"), None, &config, &engine, &[], now)
            .unwrap_err();
        assert!(e.contains("probe-a, probe-b"), "{e}");
        for (for_s, what) in [
            (0.5, "from 1 s"),
            (90_000.0, "24 h"),
            (f64::NAN, "from 1 s"),
        ] {
            let e = m
                .start(
                    &start("probe-a", for_s, "x"),
                    None,
                    &config,
                    &engine,
                    &[],
                    now,
                )
                .unwrap_err();
            assert!(e.contains(what), "{e}");
        }
        let e = m
            .start(
                &start("probe-a", 60.0, "  "),
                None,
                &config,
                &engine,
                &[],
                now,
            )
            .unwrap_err();
        assert!(e.contains("reason is empty"), "{e}");
        let mut on_channel = start("probe-a", 60.0, "swap");
        on_channel.channel = Some(3);
        let e = m
            .start(&on_channel, None, &config, &engine, &[0, 1], now)
            .unwrap_err();
        assert!(e.contains("no channel 3 (it reports channels 0, 1)"), "{e}");

        let c = m
            .start(
                &start("probe-a", 600.0, "calibration gas"),
                Some(1000),
                &config,
                &engine,
                &[],
                now,
            )
            .unwrap();
        assert_eq!((c.action, c.until_ms), (Action::Start, Some(1_600_000)));
        assert_eq!(c.uid, Some(1000));
        let c = m
            .start(
                &start("probe-a", 1200.0, "longer"),
                None,
                &config,
                &engine,
                &[],
                now,
            )
            .unwrap();
        assert_eq!(c.action, Action::Renew);
        assert_eq!(m.entries().len(), 1);
        assert_eq!(m.entries()[0].until_ms, 2_200_000);
        assert_eq!(m.notes()[0].device.as_str(), "probe-a");
        m.save().unwrap();

        // A restart 100 s later (a new monotonic clock): the entry is back with its end.
        let back = Maintenance::load(file.clone(), &config, 1_100_000, 7);
        assert_eq!(back.entries().len(), 1);
        assert_eq!(back.entries()[0].until_ms, 2_200_000);
        assert_eq!(back.view(1_100_000).recent[0].action, Action::Restore);
        // It ends on the monotonic clock even if the wall clock is stepped back.
        let mut back = back;
        assert!(back.expire(1_100_000, 7 + 1_099_999).is_empty());
        let over = back.expire(1_100_000, 7 + 1_100_000);
        assert_eq!(over.len(), 1);
        assert_eq!(over[0].action, Action::Expire);
        // Once its time is up while stopped: expired at the start.
        let late = Maintenance::load(file.clone(), &config, 3_000_000, 0);
        assert!(late.entries().is_empty());
        assert_eq!(late.view(0).recent[0].action, Action::Expire);
        // A device the configuration lost: dropped.
        let other = SiteConfig::parse(&SITE.replace("probe-a", "probe-c"), "site.toml").unwrap();
        let dropped = Maintenance::load(file.clone(), &other, 1_100_000, 0);
        assert!(dropped.entries().is_empty());
        assert_eq!(dropped.view(0).recent[0].action, Action::Drop);
        // A file that is not one: logged, nothing under maintenance.
        std::fs::write(&file, b"{not json").unwrap();
        assert!(Maintenance::load(file, &config, 0, 0).entries().is_empty());

        let e = m
            .end(
                &EndRequest {
                    device: "probe-b".into(),
                    channel: None,
                    by: None,
                },
                None,
                1,
            )
            .unwrap_err();
        assert!(
            e.contains("probe-b is not under maintenance (under maintenance: probe-a)"),
            "{e}"
        );
    }

    #[test]
    fn a_device_behind_a_zones_prepare_needs_force() {
        let config = SiteConfig::parse(SITE, "site.toml").unwrap();
        let mut engine = Engine::new(
            Policy::default_policy().unwrap(),
            &Topology::from_config(&config),
        );
        let sample = firebreak_protocols::Sample {
            device: DeviceId::new("probe-a").unwrap(),
            signal: firebreak_protocols::Signal::OffGas,
            channel: 0,
            value: 500.0,
            unit: firebreak_protocols::Signal::OffGas.unit(),
            timestamp_ms: 0,
            quality: firebreak_protocols::Quality::Good,
        };
        for t in 0..120 {
            engine.step(t * 1000, std::slice::from_ref(&sample));
        }
        assert_eq!(engine.site_level(), Level::Prepare);
        let mut m = Maintenance::default();
        let e = m
            .start(
                &start("probe-a", 60.0, "x"),
                None,
                &config,
                &engine,
                &[],
                (0, 0),
            )
            .unwrap_err();
        assert!(
            e.contains("behind zone room's prepare now (off-gas)"),
            "{e}"
        );
        assert!(e.contains("--force"), "{e}");
        // Another device of the zone is not behind it.
        assert!(
            m.start(
                &start("probe-b", 60.0, "x"),
                None,
                &config,
                &engine,
                &[],
                (0, 0)
            )
            .is_ok()
        );
        let mut forced = start("probe-a", 60.0, "false alarm: probe drifted");
        forced.force = true;
        let c = m
            .start(&forced, None, &config, &engine, &[], (0, 0))
            .unwrap();
        assert!(c.forced);
        assert!(
            m.prometheus()
                .contains("firebreak_maintenance_entries{zone=\"room\"} 2")
        );
    }
}
