//! The `berth` binary: parse the command line, run the verb, print a
//! one-line error and a non-zero status on failure.

// Library errors carry names and digests for the user; they are built once
// per failed command.
#![allow(clippy::result_large_err)]

mod cli;
mod commands;
mod output;
mod process;
mod progress;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    output::init_tracing(cli.debug);
    match commands::dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            if output::is_broken_pipe(&e) {
                std::process::exit(0);
            }
            eprintln!("berth: {}", output::one_line(&e));
            std::process::exit(1);
        }
    }
}
