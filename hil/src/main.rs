//! `firebreak-hil`: parses the command line and hands it to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = firebreak_hil::cli::Cli::parse();
    // The embedded broker logs a client that goes away (the gateway killed on purpose, a
    // readiness probe) as an error: noise for people watching a replay.
    let level = match cli.verbose {
        0 => "warn,rumqttd=off",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // The embedded broker logs every probe connection as an error: quiet it.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},rumqttd=off")));
    // Logs go to stderr; stdout is for the command's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let mut stdout = std::io::stdout().lock();
    match firebreak_hil::cli::run(cli, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(
            e @ (firebreak_hil::cli::CliError::Invalid { .. }
            | firebreak_hil::cli::CliError::Failed { .. }),
        ) => {
            eprintln!("firebreak-hil: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("firebreak-hil: {e}");
            ExitCode::from(2)
        }
    }
}
