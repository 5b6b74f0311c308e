//! Logging: timestamped lines (or JSON) on standard error, filtered by `RUST_LOG`.

use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};

/// Installs the global subscriber. `RUST_LOG` filters; the default is `info`,
/// or `warn` when `quiet_default` (a progress bar owns the terminal).
pub(crate) fn init(args: &LogArgs, quiet_default: bool) {
    let default = if quiet_default {
        "warn"
    } else {
        "info,ort=warn,async_nats=warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
