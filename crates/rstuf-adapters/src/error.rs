//! Port errors from the services' own errors. Each error family decides its
//! [`PortErrorKind`] once, here, and the underlying error stays the port error's
//! [`source`](std::error::Error::source).
//!
//! The kinds: [`Transient`](PortErrorKind::Transient) when the service could not be reached or
//! did not answer in time (connections, timeouts, I/O to the service, a server shutting down or
//! loading), [`Conflict`](PortErrorKind::Conflict) for a unique violation, and
//! [`Other`](PortErrorKind::Other) for everything else.

use std::fmt;
use std::io;

use rstuf_engine::ports::{PortError, PortErrorKind};

/// An error of a service client that knows its [`PortErrorKind`].
pub(crate) trait ServiceError: std::error::Error + Send + Sync + Sized + 'static {
    /// Which kind of port failure this is.
    fn port_kind(&self) -> PortErrorKind;

    /// This error as a port error while doing `context` (`"{context}: {self}"`).
    fn port(self, context: impl fmt::Display) -> PortError {
        PortError::caused(self.port_kind(), context, self)
    }
}

impl ServiceError for sqlx::Error {
    fn port_kind(&self) -> PortErrorKind {
        match self {
            sqlx::Error::Database(db) if db.is_unique_violation() => PortErrorKind::Conflict,
            // Connection exceptions (08), operator intervention such as a shutdown (57) and
            // insufficient resources (53): the server is restarting or busy.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("08") || c.starts_with("57") || c.starts_with("53")
                }) =>
            {
                PortErrorKind::Transient
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_) => PortErrorKind::Transient,
            _ => PortErrorKind::Other,
        }
    }
}

impl ServiceError for redis::RedisError {
    fn port_kind(&self) -> PortErrorKind {
        let transient = self.is_io_error()
            || self.is_connection_dropped()
            || self.is_timeout()
            || self.is_connection_refusal()
            || matches!(
                self.kind(),
                redis::ErrorKind::Server(
                    redis::ServerErrorKind::BusyLoading | redis::ServerErrorKind::TryAgain
                )
            );
        if transient {
            PortErrorKind::Transient
        } else {
            PortErrorKind::Other
        }
    }
}

impl ServiceError for io::Error {
    /// Timeouts, interruptions and dropped connections (a network filesystem) are transient;
    /// a missing file, a refused permission or a full disk fail the same way again.
    fn port_kind(&self) -> PortErrorKind {
        use io::ErrorKind as K;
        match self.kind() {
            K::TimedOut
            | K::Interrupted
            | K::WouldBlock
            | K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe => PortErrorKind::Transient,
            _ => PortErrorKind::Other,
        }
    }
}

impl ServiceError for lapin::Error {
    /// What lapin would recover from by reconnecting (I/O, the broker closing a channel or
    /// the connection, missed heartbeats) is transient; a refused login, an unsupported
    /// protocol version or a malformed frame is not.
    fn port_kind(&self) -> PortErrorKind {
        if self.is_io_error() || self.can_be_recovered() {
            PortErrorKind::Transient
        } else {
            PortErrorKind::Other
        }
    }
}

/// What the adapter was doing when a service call failed.
pub(crate) trait Context<T> {
    /// The error as a port error while doing `context`.
    fn ctx(self, context: &str) -> Result<T, PortError>;

    /// [`Context::ctx`] with a context built only on failure.
    fn with_ctx<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T, PortError>;
}

impl<T, E: ServiceError> Context<T> for Result<T, E> {
    fn ctx(self, context: &str) -> Result<T, PortError> {
        self.map_err(|e| e.port(context))
    }

    fn with_ctx<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T, PortError> {
        self.map_err(|e| e.port(context()))
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn an_io_error_stays_the_source() {
        let err = std::fs::read("/nonexistent/rstuf/file")
            .ctx("reading 1.root.json")
            .unwrap_err();
        assert_eq!(err.kind, PortErrorKind::Other);
        assert!(
            err.to_string().starts_with("reading 1.root.json: "),
            "{err}"
        );
        let source = err.source().expect("the io error is the source");
        let io = source.downcast_ref::<io::Error>().expect("an io::Error");
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        assert_eq!(err.to_string(), format!("reading 1.root.json: {io}"));
    }

    #[test]
    fn io_kinds() {
        for (kind, port) in [
            (io::ErrorKind::TimedOut, PortErrorKind::Transient),
            (io::ErrorKind::ConnectionReset, PortErrorKind::Transient),
            (io::ErrorKind::BrokenPipe, PortErrorKind::Transient),
            (io::ErrorKind::NotFound, PortErrorKind::Other),
            (io::ErrorKind::PermissionDenied, PortErrorKind::Other),
            (io::ErrorKind::StorageFull, PortErrorKind::Other),
        ] {
            assert_eq!(io::Error::from(kind).port("x").kind, port, "{kind:?}");
        }
    }

    #[test]
    fn a_redis_error_stays_the_source() {
        let err = redis::Client::open("nonsense://")
            .map(drop)
            .ctx("Redis URL")
            .unwrap_err();
        assert_eq!(err.kind, PortErrorKind::Other);
        assert!(err.to_string().starts_with("Redis URL: "), "{err}");
        assert!(err.source().unwrap().is::<redis::RedisError>());
    }

    #[test]
    fn sqlx_kinds_and_source() {
        let err = Err::<(), _>(sqlx::Error::PoolTimedOut)
            .with_ctx(|| format!("role {}", "bins-0"))
            .unwrap_err();
        assert_eq!(err.kind, PortErrorKind::Transient);
        assert_eq!(
            err.to_string(),
            format!("role bins-0: {}", sqlx::Error::PoolTimedOut)
        );
        assert!(err.source().unwrap().is::<sqlx::Error>());
        assert_eq!(
            sqlx::Error::RowNotFound.port("x").kind,
            PortErrorKind::Other
        );
        let io = sqlx::Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(io.port("x").kind, PortErrorKind::Transient);
    }

    #[test]
    fn lapin_kinds() {
        let io = lapin::Error::from(io::Error::from(io::ErrorKind::ConnectionReset));
        let err = io.port("publishing");
        assert_eq!(err.kind, PortErrorKind::Transient);
        assert!(err.source().unwrap().is::<lapin::Error>());
        let auth = lapin::Error::from(lapin::ErrorKind::AuthProviderError("no".into()));
        assert_eq!(auth.port("connecting").kind, PortErrorKind::Other);
    }
}
