//! `firebreak maintenance start|end|list`: the technician's side, over the running gateway's
//! control socket ([`crate::control`]; filesystem permission is the authentication).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::{Action, EndRequest, Entry, Report, StartRequest};
use crate::control::{ControlError, Request};

/// What `firebreak maintenance` was asked.
#[derive(Debug, Clone, clap::Args)]
pub struct MaintenanceArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: MaintenanceAction,
    /// The site configuration the gateway runs (to find its control socket).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// The control socket, instead of the one the configuration names.
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    /// Print the gateway's answer as one JSON object.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `firebreak maintenance`'s actions.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum MaintenanceAction {
    /// Put a device, or one channel (probe) of it, under maintenance for a while: its
    /// readings stop counting as evidence until then. Again on the same device: renews it.
    Start {
        /// The device, as the configuration names it.
        #[arg(long)]
        device: String,
        /// Only this channel of it (one probe of a node).
        #[arg(long)]
        channel: Option<u8>,
        /// For how long: 90s, 45m, 2h, 1h30m (at most 24h; it ends by itself).
        #[arg(long = "for", value_parser = super::parse_duration)]
        duration: Duration,
        /// Why: logged and shown on the page and in /status.
        #[arg(long)]
        reason: String,
        /// Who: your name (by default your login name).
        #[arg(long)]
        by: Option<String>,
        /// Even though the device is behind a zone's prepare or evacuate right now.
        #[arg(long)]
        force: bool,
    },
    /// End maintenance now: the device (or channel) counts again from its next reading.
    End {
        /// The device.
        #[arg(long)]
        device: String,
        /// The channel, when the entry is for one channel.
        #[arg(long)]
        channel: Option<u8>,
        /// Who: your name (by default your login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// List the devices and channels under maintenance.
    List,
}

/// Why `firebreak maintenance` failed.
#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    /// The configuration could not be read.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// No control socket to ask.
    #[error("no control socket: give --config (a configuration with [[brokers]]) or --socket")]
    NoSocket,
    /// The gateway could not be asked.
    #[error("{0}")]
    Control(#[from] ControlError),
    /// The gateway refused.
    #[error("the gateway refused: {0}")]
    Refused(String),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs `firebreak maintenance`.
pub fn run(args: MaintenanceArgs, out: &mut impl Write) -> Result<(), MaintenanceError> {
    let socket = crate::control::socket_for(args.socket.as_deref(), args.config.as_deref())?
        .ok_or(MaintenanceError::NoSocket)?;
    let me = || {
        std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.is_empty())
    };
    let request = match args.action {
        MaintenanceAction::Start {
            device,
            channel,
            duration,
            reason,
            by,
            force,
        } => Request::MaintenanceStart(StartRequest {
            device,
            channel,
            for_s: duration.as_secs_f64(),
            reason,
            by: by.or_else(me),
            force,
        }),
        MaintenanceAction::End {
            device,
            channel,
            by,
        } => Request::MaintenanceEnd(EndRequest {
            device,
            channel,
            by: by.or_else(me),
        }),
        MaintenanceAction::List => Request::MaintenanceList {},
    };
    let answer = crate::control::request(&socket, &request, Duration::from_secs(10))?;
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&answer).unwrap_or_default()
        )?;
    }
    let report = match answer.maintenance.filter(|_| answer.ok) {
        Some(r) => r,
        None => {
            return Err(MaintenanceError::Refused(
                answer.error.unwrap_or_else(|| "no reason given".into()),
            ));
        }
    };
    if !args.json {
        print(&report, out)?;
    }
    out.flush()?;
    Ok(())
}

fn print(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    if let Some(c) = &report.change {
        let what = super::subject(&c.device, c.channel);
        match c.action {
            Action::Start | Action::Renew => writeln!(
                out,
                "MAINTENANCE {what}: not evidence until {}{}",
                c.until_ms.map(super::rfc3339).unwrap_or_default(),
                if c.forced {
                    " (forced: it was behind its zone's level)"
                } else {
                    ""
                }
            )?,
            _ => writeln!(out, "MAINTENANCE OVER {what}: counts again")?,
        }
    }
    if let Some(w) = &report.warning {
        writeln!(out, "WARNING: {w}")?;
    }
    if report.entries.is_empty() {
        return writeln!(out, "nothing under maintenance");
    }
    writeln!(out, "under maintenance:")?;
    let now = crate::acquire::now_ms();
    for e in &report.entries {
        line(e, now, out)?;
    }
    Ok(())
}

fn line(e: &Entry, now_ms: u64, out: &mut impl Write) -> std::io::Result<()> {
    let left = e.until_ms.saturating_sub(now_ms) / 1000;
    writeln!(
        out,
        "  {} (zone {}) until {} ({}h{:02}m{:02}s left), by {}: {}",
        e.subject(),
        e.zone,
        super::rfc3339(e.until_ms),
        left / 3600,
        left % 3600 / 60,
        left % 60,
        e.by,
        e.reason
    )
}
