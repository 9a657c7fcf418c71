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
    /// Every kind, each at its [`Failure::index`], in the order the report lists them.
    pub const ALL: [Failure; 6] = [
        Failure::Timeout,
        Failure::Connect,
        Failure::Reset,
        Failure::CircuitOpen,
        Failure::Shutdown,
        Failure::Other,
    ];

    /// A dense index, for tables of counts by kind.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Looks a kind up by the name the report writes.
    pub fn from_name(name: &str) -> Option<Failure> {
        Failure::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Caused by this run, not by the shadow: kept in `shadow.errors` to be seen, left out of
    /// `error_rate`, of the `shadow.errors` total `--fail-if` compares, and of exit 1.
    pub fn is_ours(self) -> bool {
        self == Failure::Shutdown
    }

    /// What the kind means, for a failure whose own words were not kept.
    pub fn words(self) -> &'static str {
        match self {
            Failure::Timeout => "no whole answer within the timeout",
            Failure::Connect => "could not connect",
            Failure::Reset => "the connection was closed or reset before a whole answer",
            Failure::CircuitOpen => {
                "not sent: the circuit breaker was open after repeated connect errors or timeouts"
            }
            Failure::Shutdown => "still unanswered when the run's drain deadline passed",
            Failure::Other => "an answer that is not HTTP/1.x, or another I/O error",
        }
    }

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
