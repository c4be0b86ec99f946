//! The rampart binary: parse the command line (and `--config` file), install logging, run the
//! library, and map errors to exit codes (1 = cannot start or a check failed, 0 = clean
//! shutdown or every check passed).

use std::process::ExitCode;

// jemalloc with `--features jemalloc` (see Cargo.toml for the measurements).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use rampart::app::basic_auth;
use rampart::cli::{CheckArgs, Command, TicketKeyCommand};
use rampart::config::file::ArgsError;
use rampart::tls::ticket::file;

fn main() -> ExitCode {
    let cli = match rampart::config::parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(ArgsError::Clap(e)) => {
            // --help and --version are "errors" printed to stdout.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
        Err(e @ ArgsError::File(_)) => return fail(&e),
    };
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
        Some(Command::Check(args)) => return check(&args),
        Some(Command::Completions { shell }) => {
            let mut cmd = <rampart::cli::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "rampart", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(Command::Man) => {
            let cmd = <rampart::cli::Cli as clap::CommandFactory>::command();
            return match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            };
        }
        Some(Command::HashPassword { cost }) => {
            let hashed = basic_auth::read_password(std::io::stdin().lock())
                .and_then(|password| basic_auth::hash_password(&password, cost));
            return match hashed {
                Ok(hash) => {
                    println!("{hash}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            };
        }
        Some(Command::TicketKey(cmd)) => {
            let done = match cmd {
                TicketKeyCommand::New { path, staged } => file::new_key(&path, staged),
                TicketKeyCommand::Promote { path } => file::promote(&path),
            };
            return match done {
                Ok(done) => {
                    println!("rampart: {done}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            };
        }
    };
    if let Err(e) = rampart::telemetry::init(&args.log_level, args.log_format, args.access_log) {
        return fail(&e);
    }
    match rampart::Config::from_cli(&args).and_then(rampart::run) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// `rampart check`: the report on stdout, then each `--route` explained; exit 0 only if
/// serving would succeed.
fn check(args: &CheckArgs) -> ExitCode {
    let config = match rampart::Config::from_cli_unvalidated(&args.serve) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    let report = rampart::check::report(&config);
    print!("{report}");
    let mut explained = true;
    for route in &args.route {
        match rampart::check::route::explain(&config.site_options(), route) {
            Ok(text) => print!("\n{text}"),
            Err(e) => {
                eprintln!("rampart: --route {route}: {e}");
                explained = false;
            }
        }
    }
    if report.passed() && explained {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("rampart: error: {e}");
    ExitCode::FAILURE
}
