//! A reader that stops early (`payrun status | head -1`) is not a failure: payrun exits 0
//! quietly, as xsv does, instead of panicking in `println!` or reporting an I/O error.

use std::any::Any;
use std::io::ErrorKind;

/// Turns std's "failed printing to stdout: Broken pipe" panic into a quiet exit 0; every other
/// panic still goes to the default hook.
pub(super) fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_broken_stdout(info.payload()) {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn is_broken_stdout(payload: &dyn Any) -> bool {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied());
    message.is_some_and(|m| m.starts_with("failed printing to stdout") && m.contains("Broken pipe"))
}

/// Whether `err` is a write to a reader that went away (a report written to stdout).
pub(super) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}
