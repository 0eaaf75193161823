//! [`Failure`]: a failed command, its exit code (1: the operation failed;
//! 2: bad usage, invalid name, or no such queue) and its message, and how
//! the core's errors map onto those codes. Every command module returns it;
//! `main` prints it.

/// A failed command: its exit code and the message for stderr.
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// Exit 1: the operation failed.
    pub(crate) fn op(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }

    /// The process exit code: 1 or 2.
    pub(crate) fn code(&self) -> u8 {
        self.code
    }

    /// What went wrong, for stderr.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// Exit 2: bad usage or no such queue.
    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<procq::Error> for Failure {
    fn from(e: procq::Error) -> Failure {
        match e {
            // A queue another user owns (or a symlink in its place) is
            // refused like a bad name: exit 2, nothing was touched.
            procq::Error::NotFound(_)
            | procq::Error::InvalidName { .. }
            | procq::Error::AlreadyExists(_)
            | procq::Error::PermissionDenied { .. } => Failure::usage(e.to_string()),
            _ => Failure::op(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::op(e.to_string())
    }
}
