//! How a command fails: a message that says what to do, and an exit code
//! that says what kind of failure it was (documented in `rota --help`).

use std::process::ExitCode;

use rota_core::BrokerError;
use rota_core::schedules::ScheduleError;

/// The exit codes, for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// Anything else that went wrong.
    Failure = 1,
    /// The command line is wrong (clap says so with 2 as well).
    Usage = 2,
    /// What was named does not exist (a schedule id, a job, a file).
    NotFound = 3,
    /// The input is wrong: a cron expression, a time zone, a line of a file.
    Invalid = 4,
    /// It exists already, or it changed meanwhile.
    Conflict = 5,
    /// The configuration is wrong (a config file, a store that is not rota's).
    Config = 78,
    /// The store cannot be reached (Redis down, a file locked).
    Unavailable = 69,
}

/// A failed command.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Failure {
    pub(crate) code: Code,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::Invalid, message)
    }

    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code as u8)
    }
}

impl From<BrokerError> for Failure {
    fn from(e: BrokerError) -> Self {
        let code = match &e {
            BrokerError::Unavailable(_) | BrokerError::Closed => Code::Unavailable,
            BrokerError::Config(_) => Code::Config,
            BrokerError::Invalid(_) | BrokerError::InvalidName(_) => Code::Invalid,
            _ => Code::Failure,
        };
        Self::new(code, e.to_string())
    }
}

impl From<ScheduleError> for Failure {
    fn from(e: ScheduleError) -> Self {
        match e {
            ScheduleError::Store(e) => e.into(),
            ScheduleError::NotFound(id) => Self::new(
                Code::NotFound,
                format!(
                    "no schedule has id {id:?}; `rota schedules list --tenant <tenant>` lists them"
                ),
            ),
            ScheduleError::Exists(id) => Self::new(
                Code::Conflict,
                format!(
                    "a schedule with id {id:?} exists already; `rota schedules update {id} …` changes it"
                ),
            ),
            e @ ScheduleError::Conflict(_) => Self::new(Code::Conflict, e.to_string()),
            e => Self::invalid(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        let code = match e.kind() {
            std::io::ErrorKind::NotFound => Code::NotFound,
            _ => Code::Failure,
        };
        Self::new(code, e.to_string())
    }
}

pub(crate) type Result<T, E = Failure> = std::result::Result<T, E>;
