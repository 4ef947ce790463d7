//! The status endpoint: `/healthz`, `/metrics` (Prometheus text), `/status` (JSON) and the
//! technician's page at `/` ([`crate::page`]). Every route is a `GET`: nothing here changes
//! the gateway.
//!
//! `/status?device=NAME` and `/status?zone=NAME` narrow the answer to one device or zone, for
//! scripts; an unknown name is a `404` saying so.
//!
//! `/healthz` answers `200 ok` only when the gateway is healthy ([`crate::health`]); otherwise
//! `503` with `unhealthy` and one reason a line, for a watchdog.
//!
//! Metrics are rendered from the signal table's own counters when scraped, so there is no
//! second copy of the state to drift.

use std::fmt::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::acquire::mono_ms;
use crate::acquire::table::{DeviceHealth, SignalTable, SignalView};
use crate::deliver::{BrokerStats, Fault, OutboxStats};
use crate::health::{Health, HealthReport};
use crate::policy::view::LevelsView;

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The site.
    pub site: String,
    /// The gateway.
    pub gateway: String,
    /// The live table.
    pub table: Arc<Mutex<SignalTable>>,
    /// The policy's levels.
    pub levels: Arc<Mutex<LevelsView>>,
    /// Trigger delivery, when brokers are configured.
    pub delivery: Option<crate::deliver::Delivery>,
    /// What the run loop and the acquisition tasks report.
    pub health: Arc<Health>,
    /// Telemetry's counters, when it is published.
    pub telemetry: Option<Arc<crate::telemetry::TelemetryStats>>,
    /// The configuration file running and its reloads, when run from a file.
    pub config: Option<Arc<Mutex<crate::reload::ConfigStatus>>>,
    /// The devices and channels under maintenance.
    pub maintenance: Arc<Mutex<crate::maintenance::Maintenance>>,
}

/// The routes.
pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .merge(crate::page::routes())
        .layer(axum::middleware::map_response(security_headers))
        .with_state(shared)
}

/// Headers on every answer: the page's content policy, no type sniffing, no referrer.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::page::CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

async fn healthz(State(s): State<Shared>) -> Response {
    let report = s.health.check(s.delivery.as_ref(), mono_ms());
    if report.healthy {
        return "ok\n".into_response();
    }
    let mut body = String::from("unhealthy\n");
    for r in &report.reasons {
        let _ = writeln!(body, "{r}");
    }
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}

#[derive(Serialize)]
struct Status<'a> {
    site: &'a str,
    gateway: &'a str,
    now_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<crate::reload::ConfigStatus>,
    health: HealthReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<DeliveryStatus>,
    policy: LevelsView,
    /// The last drill since start (`firebreak drill`).
    #[serde(skip_serializing_if = "Option::is_none")]
    drill: Option<crate::deliver::DrillReport>,
    /// Devices and channels under maintenance, and the latest changes.
    maintenance: crate::maintenance::View,
    devices: Vec<DeviceStatus<'a>>,
    signals: Vec<SignalView>,
}

#[derive(Serialize)]
struct DeliveryStatus {
    issued: u64,
    refused: u64,
    last_seq: Option<u64>,
    outbox: OutboxStats,
    brokers: Vec<BrokerStats>,
    faults: Vec<Fault>,
}

#[derive(Serialize)]
struct DeviceStatus<'a> {
    device: &'a str,
    #[serde(flatten)]
    health: &'a DeviceHealth,
    /// Its maintenance entries (the whole device, or channels), when it has any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    maintenance: Vec<DeviceMaintenance>,
}

#[derive(Serialize)]
struct DeviceMaintenance {
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<u8>,
    until_ms: u64,
    remaining_s: u64,
}

/// `/status`'s filters.
#[derive(Debug, Default, Deserialize)]
struct StatusQuery {
    /// One device: its entry, its signals and its sensor faults.
    device: Option<String>,
    /// One zone: its devices, their signals, its level and its transitions.
    zone: Option<String>,
}

async fn status(State(s): State<Shared>, Query(q): Query<StatusQuery>) -> Response {
    let Ok(table) = s.table.lock() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "signal table unavailable\n",
        )
            .into_response();
    };
    let now = mono_ms();
    let mut policy = s.levels.lock().map(|l| l.clone()).unwrap_or_default();
    // The filters: an unknown name is an error, never an empty answer a script would take
    // for "nothing wrong".
    if let Some(d) = &q.device {
        let Some(h) = table
            .devices()
            .iter()
            .find(|(id, _)| id.as_str() == d.as_str())
        else {
            return not_found(format!("no device named {d:?} (GET /status lists them)"));
        };
        if let Some(z) = &q.zone
            && h.1.zone.as_str() != z.as_str()
        {
            return not_found(format!("device {d:?} is not in zone {z:?}"));
        }
    }
    if let Some(z) = &q.zone {
        let known = policy.zones.iter().any(|v| &v.zone == z)
            || table
                .devices()
                .values()
                .any(|h| h.zone.as_str() == z.as_str());
        if !known {
            return not_found(format!("no zone named {z:?} (GET /status lists them)"));
        }
        policy.zones.retain(|v| &v.zone == z);
        policy.recent.retain(|t| t.zone.as_ref() == Some(z));
    }
    let wanted = |device: &str, zone: &str| {
        q.device.as_deref().is_none_or(|d| d == device)
            && q.zone.as_deref().is_none_or(|z| z == zone)
    };
    policy.sensor_faults.retain(|f| wanted(&f.device, &f.zone));
    // The devices whose signals are shown, when filtered (a hall has tens of thousands of
    // signals: one look-up each, not a scan of the devices).
    let keep: Option<std::collections::HashSet<&str>> = (q.device.is_some() || q.zone.is_some())
        .then(|| {
            table
                .devices()
                .iter()
                .filter(|(d, h)| wanted(d.as_str(), h.zone.as_str()))
                .map(|(d, _)| d.as_str())
                .collect()
        });
    let delivery = s.delivery.as_ref().map(|d| {
        let st = d.stats();
        DeliveryStatus {
            issued: st.issued,
            refused: st.refused,
            last_seq: st.last_seq,
            outbox: st.outbox,
            brokers: st.brokers,
            faults: st.faults,
        }
    });
    let mut maintenance = s
        .maintenance
        .lock()
        .map(|m| m.view(crate::acquire::now_ms()))
        .unwrap_or_else(|_| crate::maintenance::Maintenance::default().view(0));
    maintenance
        .active
        .retain(|a| wanted(a.entry.device.as_str(), &a.entry.zone));
    let maintenance_of = |device: &str| -> Vec<DeviceMaintenance> {
        maintenance
            .active
            .iter()
            .filter(|a| a.entry.device.as_str() == device)
            .map(|a| DeviceMaintenance {
                channel: a.entry.channel,
                until_ms: a.entry.until_ms,
                remaining_s: a.remaining_s,
            })
            .collect()
    };
    let devices = table
        .devices()
        .iter()
        .filter(|(d, h)| wanted(d.as_str(), h.zone.as_str()))
        .map(|(d, health)| DeviceStatus {
            device: d.as_str(),
            health,
            maintenance: maintenance_of(d.as_str()),
        })
        .collect();
    let body = Status {
        site: &s.site,
        gateway: &s.gateway,
        now_ms: now,
        config: s
            .config
            .as_ref()
            .and_then(|c| c.lock().ok().map(|c| c.clone())),
        health: s.health.check(s.delivery.as_ref(), now),
        delivery,
        policy,
        drill: s.delivery.as_ref().and_then(|d| d.last_drill()),
        maintenance,
        devices,
        signals: table
            .snapshot(now)
            .into_iter()
            .filter(|v| keep.as_ref().is_none_or(|k| k.contains(v.device.as_str())))
            .collect(),
    };
    // Live data: never from a cache.
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

fn not_found(message: String) -> Response {
    (StatusCode::NOT_FOUND, format!("{message}\n")).into_response()
}

async fn metrics(State(s): State<Shared>) -> Response {
    let Ok(table) = s.table.lock() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "signal table unavailable\n",
        )
            .into_response();
    };
    let mut text = render_metrics(&table, mono_ms());
    drop(table);
    if let Ok(levels) = s.levels.lock() {
        text.push_str(&render_level_metrics(&levels));
    }
    if let Some(d) = &s.delivery {
        text.push_str(&d.stats().prometheus());
        text.push_str(&d.drill_prometheus());
    }
    if let Some(t) = &s.telemetry {
        let _ = writeln!(
            text,
            "# HELP firebreak_telemetry_published_total Telemetry messages handed to a broker's connection.\n# TYPE firebreak_telemetry_published_total counter\nfirebreak_telemetry_published_total {}\n# HELP firebreak_telemetry_dropped_total Telemetry messages dropped (a full queue or a broker not connected): never in the way of a trigger.\n# TYPE firebreak_telemetry_dropped_total counter\nfirebreak_telemetry_dropped_total {}",
            t.published.load(std::sync::atomic::Ordering::Relaxed),
            t.dropped.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    if let Some(c) = &s.config
        && let Ok(c) = c.lock()
    {
        text.push_str(&c.prometheus());
    }
    if let Ok(m) = s.maintenance.lock() {
        text.push_str(&m.prometheus());
    }
    let healthy = s.health.check(s.delivery.as_ref(), mono_ms()).healthy;
    let _ = writeln!(
        text,
        "# HELP firebreak_healthy 1 when /healthz answers ok.\n# TYPE firebreak_healthy gauge\nfirebreak_healthy {}\n# HELP firebreak_wall_clock_steps_total Steps of the wall clock seen (judging runs on a monotonic clock).\n# TYPE firebreak_wall_clock_steps_total counter\nfirebreak_wall_clock_steps_total {}",
        u8::from(healthy),
        s.health.wall_clock_steps()
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The Prometheus text exposition of the table's counters.
pub fn render_metrics(table: &SignalTable, now_ms: u64) -> String {
    let mut out = String::new();
    let devices = table.devices();
    let _ = writeln!(
        out,
        "# HELP firebreak_device_up 1 when the device answers, 0 when comm-lost.\n# TYPE firebreak_device_up gauge"
    );
    for (d, h) in devices {
        let _ = writeln!(
            out,
            "firebreak_device_up{{device=\"{}\",zone=\"{}\"}} {}",
            esc(d.as_str()),
            esc(h.zone.as_str()),
            u8::from(!h.comm_lost)
        );
    }
    let _ = writeln!(
        out,
        "# HELP firebreak_polls_total Polls (Modbus) or messages (MQTT) per device.\n# TYPE firebreak_polls_total counter"
    );
    for (d, h) in devices {
        let _ = writeln!(
            out,
            "firebreak_polls_total{{device=\"{}\"}} {}",
            esc(d.as_str()),
            h.polls
        );
    }
    let _ = writeln!(
        out,
        "# HELP firebreak_errors_total Errors per device and kind (timeout, exception, transport, connect, decode, malformed, link).\n# TYPE firebreak_errors_total counter"
    );
    for (d, h) in devices {
        for (kind, n) in &h.errors {
            let _ = writeln!(
                out,
                "firebreak_errors_total{{device=\"{}\",kind=\"{kind}\"}} {n}",
                esc(d.as_str())
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP firebreak_poll_seconds Time spent polling each device.\n# TYPE firebreak_poll_seconds summary"
    );
    for (d, h) in devices.iter().filter(|(_, h)| h.source == "modbus") {
        let _ = writeln!(
            out,
            "firebreak_poll_seconds_sum{{device=\"{}\"}} {}",
            esc(d.as_str()),
            h.latency_sum_s
        );
        let _ = writeln!(
            out,
            "firebreak_poll_seconds_count{{device=\"{}\"}} {}",
            esc(d.as_str()),
            h.polls
        );
    }
    let late = table.lateness();
    let _ = writeln!(
        out,
        "# HELP firebreak_poll_lateness_seconds How much later than scheduled Modbus polls started.\n# TYPE firebreak_poll_lateness_seconds histogram"
    );
    let mut cumulative = 0;
    for (i, n) in late.buckets.iter().enumerate() {
        cumulative += n;
        let le = crate::acquire::table::LATENESS_BUCKETS_S
            .get(i)
            .map_or("+Inf".to_string(), |b| b.to_string());
        let _ = writeln!(
            out,
            "firebreak_poll_lateness_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "firebreak_poll_lateness_seconds_sum {}\nfirebreak_poll_lateness_seconds_count {}",
        late.sum_s, late.count
    );
    let _ = writeln!(
        out,
        "# HELP firebreak_device_reboots_total Reboots of each device seen since the gateway started (its device-uptime went back), by reset reason.\n# TYPE firebreak_device_reboots_total counter"
    );
    for (d, h) in devices.iter().filter(|(_, h)| h.uptime_s.is_some()) {
        // Every known reason from 0, so that the first reboot is an increase too.
        let known = firebreak_protocols::ResetReason::ALL.map(|r| r.name());
        for reason in known {
            let n = h.reboots.get(reason).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "firebreak_device_reboots_total{{device=\"{}\",reason=\"{reason}\"}} {n}",
                esc(d.as_str())
            );
        }
        for (reason, n) in h
            .reboots
            .iter()
            .filter(|(r, _)| !known.contains(&r.as_str()))
        {
            let _ = writeln!(
                out,
                "firebreak_device_reboots_total{{device=\"{}\",reason=\"{}\"}} {n}",
                esc(d.as_str()),
                esc(reason)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP firebreak_device_uptime_seconds Each device's own uptime at its last reading (device-uptime).\n# TYPE firebreak_device_uptime_seconds gauge"
    );
    for (d, h) in devices {
        if let Some(u) = h.uptime_s {
            let _ = writeln!(
                out,
                "firebreak_device_uptime_seconds{{device=\"{}\"}} {u}",
                esc(d.as_str())
            );
        }
    }
    // Per device, not per signal: a hall of 2,000 devices has 64,000 signals, too many
    // series for a scrape (and, rendered, tens of MiB). /status lists every signal.
    let summary = table.quality_summary(now_ms);
    let _ = writeln!(
        out,
        "# HELP firebreak_signals Signals per device and quality.\n# TYPE firebreak_signals gauge"
    );
    for (d, counts, _) in &summary {
        for (q, n) in crate::acquire::table::QUALITIES.iter().zip(counts) {
            let _ = writeln!(
                out,
                "firebreak_signals{{device=\"{}\",quality=\"{q}\"}} {n}",
                esc(d.as_str())
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP firebreak_signal_age_max_seconds Age of each device's oldest value.\n# TYPE firebreak_signal_age_max_seconds gauge"
    );
    for (d, _, oldest) in &summary {
        let _ = writeln!(
            out,
            "firebreak_signal_age_max_seconds{{device=\"{}\"}} {}",
            esc(d.as_str()),
            *oldest as f64 / 1000.0
        );
    }
    out
}

/// The Prometheus text of the policy's levels.
pub fn render_level_metrics(levels: &LevelsView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP firebreak_level Evacuation level: 0 normal, 1 watch, 2 prepare, 3 evacuate.\n# TYPE firebreak_level gauge"
    );
    let _ = writeln!(
        out,
        "firebreak_level{{scope=\"site\"}} {}",
        levels.site as u8
    );
    for z in &levels.zones {
        let _ = writeln!(
            out,
            "firebreak_level{{scope=\"zone\",zone=\"{}\"}} {}",
            esc(&z.zone),
            z.level as u8
        );
    }
    let _ = writeln!(
        out,
        "# HELP firebreak_transitions_total Level changes since start.\n# TYPE firebreak_transitions_total counter\nfirebreak_transitions_total {}",
        levels.transitions_total
    );
    out
}

/// Escapes a label value (backslash, quote, newline).
pub(crate) fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use firebreak_protocols::{DeviceId, Quality, Sample, Signal};

    use super::*;
    use crate::acquire::{Event, PollReport};
    use crate::config::SiteConfig;

    const CONFIG: &str = r#"
[site]
name = "s"
gateway = "g"
[[zones]]
name = "z"
[[devices]]
name = "node"
zone = "z"
transport = "tcp"
address = "127.0.0.1:1"
unit = 1
profile = "firebreak-sensor-node"
[[devices]]
name = "ups"
zone = "z"
transport = "tcp"
address = "127.0.0.1:2"
unit = 1
profile = "generic-ups"
"#;

    fn poll(at_s: u64, uptime: f32, reason: f32) -> Event {
        let device = DeviceId::new("node").unwrap();
        let sample = |signal: Signal, value| Sample {
            device: device.clone(),
            signal,
            channel: 0,
            value,
            unit: signal.unit(),
            timestamp_ms: at_s * 1000,
            quality: Quality::Good,
        };
        Event::Poll(PollReport {
            device: device.clone(),
            at_ms: at_s * 1000,
            latency: Duration::from_millis(5),
            lateness: Duration::ZERO,
            samples: vec![
                sample(Signal::DeviceUptime, uptime),
                sample(Signal::ResetReason, reason),
            ],
            errors: vec![],
            answered: true,
        })
    }

    #[test]
    fn reboots_and_uptime_are_metrics() {
        let mut t = SignalTable::new(&SiteConfig::parse(CONFIG, "t").unwrap());
        for s in 10..=12 {
            t.apply_at(&poll(s, 5000.0 + s as f32, 0.0), s * 1000, s * 1000);
        }
        let before = render_metrics(&t, 12_000);
        assert!(
            before.contains(
                "firebreak_device_reboots_total{device=\"node\",reason=\"watchdog\"} 0\n"
            ),
            "{before}"
        );
        assert!(before.contains("firebreak_device_uptime_seconds{device=\"node\"} 5012\n"));
        assert!(
            !before.contains("device=\"ups\",reason"),
            "no uptime, no reboot series"
        );
        t.apply_at(&poll(13, 0.0, 1.0), 13_000, 13_000);
        let after = render_metrics(&t, 13_000);
        for line in [
            "# TYPE firebreak_device_reboots_total counter\n",
            "firebreak_device_reboots_total{device=\"node\",reason=\"watchdog\"} 1\n",
            "firebreak_device_reboots_total{device=\"node\",reason=\"brown-out\"} 0\n",
            "firebreak_device_uptime_seconds{device=\"node\"} 0\n",
        ] {
            assert!(after.contains(line), "{line}: {after}");
        }
        // A code no reason has gets its own series.
        for s in 14..=16 {
            t.apply_at(&poll(s, (s - 13) as f32, 7.0), s * 1000, s * 1000);
        }
        t.apply_at(&poll(17, 0.0, 7.0), 17_000, 17_000);
        assert!(
            render_metrics(&t, 17_000)
                .contains("firebreak_device_reboots_total{device=\"node\",reason=\"7\"} 1\n")
        );
    }
}
