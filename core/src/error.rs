//! The core's misuse errors. Bad peer input never becomes an `Error`: it is dropped and counted
//! (see [`crate::node::Stats`]); bad configuration is a [`crate::config::ConfigError`].

use core::fmt;

/// Misuse of the [`crate::Node`] API by its shell. The node's state is unchanged when one is
/// returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// `now` was earlier than the `now` of a previous call. The event is ignored.
    TimeWentBackwards,
    /// An event named a PNN that is not in the nodes file, or is this node. Ignored.
    UnknownPeer,
    /// The node has shut down ([`crate::Action::Exit`] was emitted). Ignored.
    Stopped,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::TimeWentBackwards => "time went backwards",
            Error::UnknownPeer => "event names an unknown peer",
            Error::Stopped => "the node has shut down",
        })
    }
}

impl core::error::Error for Error {}
