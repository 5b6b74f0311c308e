//! `pagefleet`: one binary for every stage of the pipeline.
//!
//! Parses the command line, sets up logging, and hands over to the command.

mod batch;
mod cli;
mod client;
mod doctor;
mod ocr;
mod run;
mod serve;
mod stages;
mod telemetry;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    // `run` on a terminal shows a progress bar; stage logs would tear it.
    let bar = matches!(cli.command, cli::Command::Run(_))
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let telemetry = telemetry::init(&cli.log, bar, cli.command.name());
    let home = pagefleet::home::Home::resolve(cli.home.path.as_deref());
    let code = match cli.command {
        cli::Command::Ocr(args) => ocr::run(&cli.home, args),
        cli::Command::Run(args) => run::run(&cli.home, args),
        cli::Command::Rasterizer(args) => serve(stages::rasterizer(&home, args)),
        cli::Command::OcrWorker(args) => serve(stages::ocr_worker(&home, args)),
        cli::Command::Aggregator(args) => serve(stages::aggregator(&home, args)),
        cli::Command::Ingest(args) => serve(stages::ingest(&home, args)),
        cli::Command::Serve(args) => serve::run(&cli.home, args),
        cli::Command::Submit(args) => serve(client::submit(&home, args)),
        cli::Command::Status(args) => serve(client::status(&home, args)),
        cli::Command::Result(args) => serve(client::result(&home, args)),
        cli::Command::Delete(args) => serve(client::delete(&home, args)),
        cli::Command::Watch(args) => serve(client::watch(&home, args)),
        cli::Command::Doctor(args) => doctor::run(&home, args),
        cli::Command::Nats {
            command: cli::NatsCommand::Setup { nats, queue },
        } => serve(stages::nats_setup(&nats, &queue)),
    };
    telemetry.shutdown();
    code
}

/// Runs an async command on a multi-threaded runtime.
fn serve(command: impl std::future::Future<Output = anyhow::Result<()>>) -> std::process::ExitCode {
    block_on(command)
}

/// Runs an async command on a multi-threaded runtime; its error is logged.
pub(crate) fn block_on(
    command: impl std::future::Future<Output = anyhow::Result<()>>,
) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
