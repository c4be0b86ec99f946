//! The rampart binary: parse the command line, install logging, run the library, and map
//! errors to exit codes (1 = cannot start, 0 = clean shutdown).

use clap::Parser;

use rampart::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
        Some(Command::TicketKey(cmd)) => {
            return match rampart::tls::ticket::file::execute(&cmd) {
                Ok(done) => {
                    println!("rampart: {done}");
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("rampart: error: {e}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        // Filled in by the check work (issue 6).
        Some(Command::Check(_)) => {
            eprintln!("rampart: error: not available yet");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Err(e) = rampart::telemetry::init(&args.log_level, args.log_format, args.access_log) {
        eprintln!("rampart: error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let result = rampart::Config::from_cli(&args).and_then(rampart::run);
    match result {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
