//! `firebreak drill`: asks the running gateway, over its control socket ([`crate::control`]),
//! to issue a drill through every broker, and prints each broker's round trip. Exits
//! non-zero when any broker did not send the drill back.
//!
//! A drill is a signed rehearsal of a trigger that no controller takes as a level
//! (`docs/contract.md`, "Drills"): it proves the key, the brokers, their ACLs and the network
//! path, not the policy.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use firebreak_protocols::Level;

use crate::control::{ControlError, Request};
use crate::deliver::DRILL_TIMEOUT;

/// What `firebreak drill` was asked.
#[derive(Debug, Clone, clap::Args)]
pub struct DrillArgs {
    /// The site configuration the gateway runs (to find its control socket).
    #[arg(long, required_unless_present = "socket")]
    pub config: Option<PathBuf>,
    /// The control socket, instead of the one the configuration names.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// The zone the drill rehearses; the site when absent.
    #[arg(long)]
    pub zone: Option<String>,
    /// The level it rehearses: watch, prepare or evacuate.
    #[arg(long, default_value = "evacuate", value_parser = parse_level)]
    pub level: Level,
    /// How long to wait for every broker to send it back, in seconds (at most 60).
    #[arg(long, default_value_t = DRILL_TIMEOUT.as_secs_f64())]
    pub timeout: f64,
    /// Print the gateway's answer as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn parse_level(s: &str) -> Result<Level, String> {
    match s {
        "watch" => Ok(Level::Watch),
        "prepare" => Ok(Level::Prepare),
        "evacuate" => Ok(Level::Evacuate),
        _ => Err("a drill rehearses watch, prepare or evacuate".into()),
    }
}

/// Why `firebreak drill` failed.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// The configuration could not be read.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// The configuration has no control socket (no brokers, so nothing to drill).
    #[error("the configuration has no [[brokers]]: nothing to drill")]
    NoSocket,
    /// The gateway could not be asked.
    #[error("{0}")]
    Control(#[from] ControlError),
    /// The gateway refused.
    #[error("the gateway refused the drill: {0}")]
    Refused(String),
    /// Some brokers did not send the drill back.
    #[error("drill FAILED on {failed} of {total} brokers")]
    Failed {
        /// How many failed.
        failed: usize,
        /// How many there are.
        total: usize,
    },
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs `firebreak drill`.
pub fn run(args: DrillArgs, out: &mut impl Write) -> Result<(), DrillError> {
    let socket = crate::control::socket_for(args.socket.as_deref(), args.config.as_deref())?
        .ok_or(DrillError::NoSocket)?;
    let request = Request::Drill {
        zone: args.zone.clone(),
        level: args.level,
        timeout_s: Some(args.timeout),
    };
    // The gateway answers once every broker did or the drill's timeout passed.
    let wait = Duration::from_secs_f64(args.timeout.clamp(0.0, 60.0)) + Duration::from_secs(10);
    let answer = crate::control::request(&socket, &request, wait)?;
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&answer).unwrap_or_default()
        )?;
    }
    let Some(report) = answer.drill.filter(|_| answer.ok) else {
        return Err(DrillError::Refused(
            answer.error.unwrap_or_else(|| "no reason given".into()),
        ));
    };
    if !args.json {
        let zone = report
            .zone
            .as_ref()
            .map(|z| format!(" zone {z}"))
            .unwrap_or_default();
        writeln!(
            out,
            "DRILL {} {}{zone}: {} on {} (seq {}, no trigger issued)",
            report.drill,
            report.level.name().to_uppercase(),
            firebreak_protocols::time::format_rfc3339(report.issued_at_ms)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            report.topic,
            report.seq
        )?;
        for b in &report.brokers {
            match (b.round_trip_ms, &b.error) {
                (Some(ms), _) if b.delivered => writeln!(
                    out,
                    "  broker {} ({}): ok, round trip {ms:.1} ms ({})",
                    b.broker, b.url, b.id
                )?,
                (_, e) => writeln!(
                    out,
                    "  broker {} ({}): FAILED: {}",
                    b.broker,
                    b.url,
                    e.as_deref().unwrap_or("no reason given")
                )?,
            }
        }
        let ok = report.brokers.len() - report.failures();
        writeln!(
            out,
            "{ok} of {} brokers sent the drill back",
            report.brokers.len()
        )?;
    }
    out.flush()?;
    match report.failures() {
        0 => Ok(()),
        failed => Err(DrillError::Failed {
            failed,
            total: report.brokers.len(),
        }),
    }
}
