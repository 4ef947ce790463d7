//! Drills (`firebreak drill`): a signed rehearsal of a trigger sent through every broker's
//! connection, timed from the gateway's hand-off to the broker sending it back.
//!
//! A drill is a [`firebreak_protocols::Drill`]: schema `firebreak.drill/1`, `drill: true`,
//! signed by the gateway's key with its boot `epoch`, on `firebreak/v1/{site}/drill/{gateway}`
//! (QoS 1, never retained). It never enters the outbox and never takes a `seq`: it carries the
//! last trigger `seq` issued, so controllers see no gap and no replay. Each broker gets its own
//! signed copy (`incident` `drill-{issued_at_ms}-{n}`, n the broker's position from 1), so an
//! echo is matched to the path it took even where brokers are bridged to each other. Each broker's task
//! queues it behind whatever waits there (a drill never delays a trigger) and subscribes to
//! the drill topic on its connection; the round trip is the time from the task taking the
//! drill to the broker delivering it back. A broker that is down, refuses the subscription
//! (ACL) or does not send it back within the timeout is a failed drill for that broker.

use std::sync::Arc;
use std::time::Duration;

use firebreak_protocols::message::encode_vec;
use firebreak_protocols::signed::signed_vec;
use firebreak_protocols::{Drill, IncidentId, Level, Trigger, ZoneId};
use serde::Serialize;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::broker::DrillJob;
use super::{DeliverError, Delivery};

/// How long a drill waits for every broker by default.
pub const DRILL_TIMEOUT: Duration = Duration::from_secs(10);

/// How one broker did in a drill.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct BrokerDrill {
    /// The broker's name (`[[brokers]] name`).
    pub broker: String,
    /// Its URL.
    pub url: String,
    /// Whether the broker took the drill and sent it back.
    pub delivered: bool,
    /// Publish to echo, in milliseconds, when delivered.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub round_trip_ms: Option<f64>,
    /// Why not, when not delivered.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// The `incident` of the copy sent to this broker: `{drill}-{n}`, n its position in the
    /// configuration from 1. Each broker gets its own signed copy, so that an echo is matched
    /// to the broker it went through even where brokers are bridged.
    pub id: String,
}

/// A drill and how every broker did: the control socket's answer, and `/status`'s last drill.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DrillReport {
    /// The drill's id: `drill-{issued_at_ms}`; each broker's copy has `-{n}` added
    /// ([`BrokerDrill::id`]).
    pub drill: String,
    /// The level it rehearsed.
    pub level: Level,
    /// Its zone; absent for the site.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub zone: Option<String>,
    /// The trigger `seq` it carried (the last one issued: a drill takes none).
    pub seq: u64,
    /// When it was issued, in milliseconds since the Unix epoch.
    pub issued_at_ms: u64,
    /// The topic it went to.
    pub topic: String,
    /// Per broker, in configuration order.
    pub brokers: Vec<BrokerDrill>,
}

impl DrillReport {
    /// How many brokers did not send the drill back.
    pub fn failures(&self) -> usize {
        self.brokers.iter().filter(|b| !b.delivered).count()
    }
}

/// What delivery keeps of drills: the last one and per broker counts, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct DrillBook {
    pub(crate) last: Option<DrillReport>,
    /// Per broker: drills, and drills that failed.
    pub(crate) totals: Vec<(u64, u64)>,
}

impl Delivery {
    /// Issues a drill rehearsing `level` for `zone` (or the site) through every broker and
    /// waits up to `timeout` for each to send it back. One drill at a time: another one under
    /// way is an error. `level` must be above `normal` (a drill's `previous` is `normal`).
    pub async fn drill(
        &self,
        zone: Option<ZoneId>,
        level: Level,
        timeout: Duration,
    ) -> Result<DrillReport, DeliverError> {
        let inner = &self.inner;
        let Ok(_one) = inner.drill_lock.try_lock() else {
            return Err(DeliverError::InvalidDraft(
                "a drill is already under way".into(),
            ));
        };
        if level == Level::Normal {
            return Err(DeliverError::InvalidDraft(
                "a drill rehearses watch, prepare or evacuate, not normal".into(),
            ));
        }
        let issued_at_ms = crate::acquire::now_ms();
        let seq = inner.book.next_seq().saturating_sub(1);
        let id = format!("drill-{issued_at_ms}");
        let topic = firebreak_protocols::topic::drill(&inner.site, &inner.gateway).to_string();
        info!(drill = %id, %level, zone = ?zone.as_ref().map(ZoneId::as_str), seq, "drill issued");
        let mut waiting = Vec::new();
        let mut ids = Vec::new();
        for (n, tx) in inner.drills.iter().enumerate() {
            let copy = format!("{id}-{}", n + 1);
            let payload = self.drill_payload(&copy, zone.clone(), level, seq, issued_at_ms)?;
            ids.push(copy);
            let (reply, rx) = oneshot::channel();
            let sent = tx.try_send(DrillJob { payload, reply });
            waiting.push(
                sent.map(|()| rx)
                    .map_err(|_| "the broker's task is busy or stopped"),
            );
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut brokers = Vec::new();
        for ((b, w), copy) in inner.brokers.iter().zip(waiting).zip(ids) {
            let outcome = match w {
                Err(e) => Err(e.to_string()),
                Ok(rx) => match tokio::time::timeout_at(deadline, rx).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(_)) => Err("the broker's connection was lost during the drill".into()),
                    Err(_) => Err(format!(
                        "not sent back within {} s (a broker or link that holds messages, or an ACL that refuses {topic})",
                        timeout.as_secs_f64()
                    )),
                },
            };
            brokers.push(match outcome {
                Ok(rt) => BrokerDrill {
                    broker: b.name.clone(),
                    url: b.url.clone(),
                    delivered: true,
                    round_trip_ms: Some(rt.as_secs_f64() * 1000.0),
                    error: None,
                    id: copy,
                },
                Err(e) => {
                    warn!(broker = %b.name, drill = %id, error = %e, "drill FAILED on this broker");
                    BrokerDrill {
                        broker: b.name.clone(),
                        url: b.url.clone(),
                        delivered: false,
                        round_trip_ms: None,
                        error: Some(e),
                        id: copy,
                    }
                }
            });
        }
        let report = DrillReport {
            drill: id,
            level,
            zone: zone.map(|z| z.to_string()),
            seq,
            issued_at_ms,
            topic,
            brokers,
        };
        info!(drill = %report.drill, failed = report.failures(), brokers = report.brokers.len(), "drill done");
        if let Ok(mut book) = inner.drill_book.lock() {
            book.totals.resize(report.brokers.len(), (0, 0));
            for (t, b) in book.totals.iter_mut().zip(&report.brokers) {
                t.0 += 1;
                t.1 += u64::from(!b.delivered);
            }
            book.last = Some(report.clone());
        }
        Ok(report)
    }

    /// One broker's signed copy of a drill, its `incident` being `copy`.
    fn drill_payload(
        &self,
        copy: &str,
        zone: Option<ZoneId>,
        level: Level,
        seq: u64,
        issued_at_ms: u64,
    ) -> Result<Arc<[u8]>, DeliverError> {
        let inner = &self.inner;
        let bad = |e: &dyn std::fmt::Display| DeliverError::InvalidDraft(e.to_string());
        let incident = IncidentId::new(copy).map_err(|e| bad(&e))?;
        let mut body = Trigger::new(
            inner.gateway.clone(),
            seq,
            incident,
            inner.site.clone(),
            zone,
            level,
            Level::Normal,
            issued_at_ms,
        )
        .map_err(|e| bad(&e))?;
        body.epoch = Some(inner.epoch);
        let drill = Drill::new(body).map_err(|e| bad(&e))?;
        let canonical = encode_vec(&drill).map_err(|e| bad(&e))?;
        let payload = signed_vec(&canonical, &inner.key.sign(&canonical)).map_err(|e| bad(&e))?;
        Ok(payload.into())
    }

    /// The last drill since start, for `/status`.
    pub fn last_drill(&self) -> Option<DrillReport> {
        self.inner
            .drill_book
            .lock()
            .ok()
            .and_then(|b| b.last.clone())
    }

    /// Prometheus text lines about drills (`firebreak_drill_…`), to append to `/metrics`.
    pub fn drill_prometheus(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let Ok(book) = self.inner.drill_book.lock() else {
            return out;
        };
        let last = book.last.as_ref();
        let _ = writeln!(
            out,
            "# HELP firebreak_drill_last_timestamp_seconds When the last drill was issued (Unix seconds; 0: none since start).\n# TYPE firebreak_drill_last_timestamp_seconds gauge\nfirebreak_drill_last_timestamp_seconds {}",
            last.map_or(0.0, |d| d.issued_at_ms as f64 / 1000.0)
        );
        let _ = writeln!(
            out,
            "# HELP firebreak_drill_round_trip_seconds The last drill's round trip per broker (publish to echo); absent where it failed.\n# TYPE firebreak_drill_round_trip_seconds gauge"
        );
        for b in last.iter().flat_map(|d| &d.brokers) {
            if let Some(ms) = b.round_trip_ms {
                let _ = writeln!(
                    out,
                    "firebreak_drill_round_trip_seconds{{broker=\"{}\"}} {}",
                    b.broker,
                    ms / 1000.0
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP firebreak_drill_last_ok 1 when the last drill came back from the broker, 0 when it failed there.\n# TYPE firebreak_drill_last_ok gauge"
        );
        for b in last.iter().flat_map(|d| &d.brokers) {
            let _ = writeln!(
                out,
                "firebreak_drill_last_ok{{broker=\"{}\"}} {}",
                b.broker,
                u8::from(b.delivered)
            );
        }
        type Series = (&'static str, &'static str, fn(&(u64, u64)) -> u64);
        let series: [Series; 2] = [
            (
                "firebreak_drills_total",
                "Drills sent through the broker.",
                |t| t.0,
            ),
            (
                "firebreak_drill_failures_total",
                "Drills that did not come back from the broker.",
                |t| t.1,
            ),
        ];
        for (name, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (i, b) in self.inner.brokers.iter().enumerate() {
                let t = book.totals.get(i).copied().unwrap_or_default();
                let _ = writeln!(out, "{name}{{broker=\"{}\"}} {}", b.name, value(&t));
            }
        }
        out
    }
}
