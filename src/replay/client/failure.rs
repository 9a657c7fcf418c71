//! The kinds of failure an exchange with the shadow ends in (DESIGN.md transport error
//! kinds), and how an I/O error is told apart.

use std::io;

/// Why an exchange with the shadow failed (DESIGN.md transport error kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    Timeout,
    Connect,
    Reset,
    /// Not sent: the circuit breaker is open after repeated connect errors or timeouts.
    CircuitOpen,
    /// Given up unanswered when the run's drain deadline passed (or a second signal came).
    Shutdown,
    Other,
}

impl Failure {
    pub fn name(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Connect => "connect",
            Failure::Reset => "reset",
            Failure::CircuitOpen => "circuit_open",
            Failure::Shutdown => "shutdown",
            Failure::Other => "other",
        }
    }
}

/// The kind of failure an I/O error on an open connection is.
pub(super) fn classify(e: &io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Failure::Reset,
        _ => Failure::Other,
    }
}
