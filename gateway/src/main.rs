//! `firebreak`: parses the command line and hands it to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = firebreak_gateway::cli::Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match firebreak_gateway::cli::run(cli, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("firebreak: {e}");
            ExitCode::from(2)
        }
    }
}
