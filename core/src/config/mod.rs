//! Configuration parsers: pure functions over `&str`, with the line number in every error.
//!
//! `pharos.toml` is parsed by the shells; the CTDB-format files are parsed here so that every
//! shell (and the fuzzers) read them the same way.

mod nodes;
pub mod public_addresses;
mod tunables;

pub use nodes::{NodeEntry, NodesFile};
pub use public_addresses::{PublicAddress, PublicAddresses};
pub use tunables::{parse_duration, TunableKind, TunableValue, Tunables, TUNABLES};

use alloc::string::String;
use core::fmt;

/// A configuration error, with the 1-based line it is on (0 when it is about the whole file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line number, 0 if the error is not about one line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    /// An error about line `line`.
    pub fn at(line: usize, reason: impl Into<String>) -> Self {
        ConfigError {
            line,
            reason: reason.into(),
        }
    }

    /// Formats the error as `FILE:LINE: reason` (or `FILE: reason` without a line).
    pub fn in_file<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        InFile { file, error: self }
    }
}

struct InFile<'a> {
    file: &'a str,
    error: &'a ConfigError,
}

impl fmt::Display for InFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.error.line == 0 {
            write!(f, "{}: {}", self.file, self.error.reason)
        } else {
            write!(
                f,
                "{}:{}: {}",
                self.file, self.error.line, self.error.reason
            )
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

impl core::error::Error for ConfigError {}
