//! Log set-up: tracing to stderr, as text or JSON lines, filtered by `RUST_LOG` or -v/-q.
//! Results go to stdout; logs never do.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. `verbosity` is the count of `-v` minus the count of `-q`;
/// `RUST_LOG`, when set, wins over it.
pub fn init(format: LogFormat, verbosity: i8) {
    let default_level = match verbosity {
        i8::MIN..=-2 => "off",
        -1 => "error",
        0 => "info",
        1 => "debug",
        2..=i8::MAX => "trace",
    };
    let default_directive = if verbosity <= 1 {
        // Our own crate at the chosen level, dependencies only when they warn.
        format!("warn,payrun={default_level}")
    } else {
        default_level.to_string()
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_directive));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A subscriber already installed (tests calling twice) is fine.
    let _ = result;
}
