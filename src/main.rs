//! `pagefleet`: one binary for every stage of the pipeline.
//!
//! Parses the command line, sets up logging, and hands over to the command.

mod cli;
mod home;
mod ocr;
mod telemetry;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    telemetry::init(&cli.log);
    match cli.command {
        cli::Command::Ocr(args) => ocr::run(&cli.home, args),
    }
}
