//! `firebreak`: parses the command line and hands it to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = firebreak_gateway::cli::Cli::parse();
    let demo = matches!(cli.command, firebreak_gateway::cli::Command::Demo(_));
    let level = match cli.verbose {
        // The demo prints what a controller receives; the gateway's own log would drown it.
        // The SNMP client logs every timeout as an error; the source reports a lost device
        // once itself, and /status carries its last error.
        0 if demo => "error,rumqttd=off,async_snmp=off",
        0 => "info,async_snmp=off",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Logs go to stderr; stdout is for the command's output. Colours only on a terminal, not
    // in journald or a file.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cli.log_format {
        firebreak_gateway::cli::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        firebreak_gateway::cli::LogFormat::Json => builder.json().try_init(),
    };
    let mut stdout = std::io::stdout().lock();
    match firebreak_gateway::cli::run(cli, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("firebreak: {e}");
            ExitCode::from(2)
        }
    }
}
