//! Shared by the benchmarks: peak memory of this process.

#![allow(dead_code)]

/// Peak resident set size of this process so far, in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Resets the peak so that a later reading covers only what follows (Linux 4.0+).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU time (user + system) this process has used, in seconds: a figure that other work on
/// the machine disturbs far less than wall-clock time.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|f| f.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
        + fields
            .get(12)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
    // Linux reports these in USER_HZ, which is 100 on every architecture payrun runs on.
    ticks / 100.0
}

/// How big a run is: `var` from the environment when set; the full size under `cargo bench`
/// (which passes `--bench`); else a small smoke run, so that `cargo test --all-targets` checks
/// that the benchmark still works without paying for it.
pub fn size(var: &str, full: u64, smoke: u64) -> u64 {
    if let Some(n) = std::env::var(var).ok().and_then(|n| n.parse().ok()) {
        return n;
    }
    if std::env::args().any(|arg| arg == "--bench") {
        return full;
    }
    eprintln!(
        "{var}: a smoke run of {smoke} under `cargo test`; its figures mean nothing: run `cargo bench` for them"
    );
    smoke
}
