//! Command implementations and the CLI's error type.

pub(crate) mod create;
pub(crate) mod demo;
pub(crate) mod dht;
pub(crate) mod download;
pub(crate) mod info;
pub(crate) mod report;
pub(crate) mod tracker;

use std::fmt;

/// A command's failure: one line for the user, and the exit code that classifies it.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The input (a torrent, a magnet link, an argument value) is malformed: exit 1.
    BadInput(String),
    /// Reading or writing a file failed: exit 3.
    Io(String),
    /// The time limit ran out before the work was done: exit 4.
    Timeout(String),
}

impl CliError {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::BadInput(_) => 1,
            CliError::Io(_) => 3,
            CliError::Timeout(_) => 4,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::BadInput(s) | CliError::Io(s) | CliError::Timeout(s) => f.write_str(s),
        }
    }
}

/// An I/O failure message with its class first when it is one a user must act on:
/// `disk full: ...`, `no permission: ...`.
pub(crate) fn classify_io(message: &str) -> String {
    if message.contains("No space left on device") || message.contains("os error 28") {
        format!("disk full: {message}")
    } else if message.contains("Permission denied") || message.contains("os error 13") {
        format!("no permission: {message}")
    } else if message.contains("Read-only file system") || message.contains("os error 30") {
        format!("read-only file system: {message}")
    } else {
        message.to_string()
    }
}

/// Human-readable byte count (binary units).
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::classify_io;

    #[test]
    fn io_errors_name_their_class() {
        assert_eq!(
            classify_io("writing a.bin: No space left on device (os error 28)"),
            "disk full: writing a.bin: No space left on device (os error 28)"
        );
        assert!(
            classify_io("creating d: Permission denied (os error 13)")
                .starts_with("no permission: ")
        );
        assert!(classify_io("x: Read-only file system (os error 30)").starts_with("read-only"));
        assert_eq!(classify_io("something else"), "something else");
    }
}
