//! Why a fetch from a shim failed: one typed reason per way it can go
//! wrong, used for control flow (retry, 502 vs 504) and, through
//! [`FetchError::as_label`], as the `reason` label of the self metrics and
//! the log.

use crate::wire::http::client;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FetchError {
    /// No socket at the sandbox's path.
    NoSocket,
    /// The socket exists but nobody accepts (ECONNREFUSED).
    Refused,
    /// The socket path does not fit a `sockaddr_un`.
    SocketPathTooLong,
    /// Out of file descriptors (EMFILE/ENFILE) until the round's deadline.
    FdExhausted,
    /// Any other connect or registration failure.
    ConnectFailed,
    /// Writing the request failed.
    SendFailed,
    /// Reading failed (ECONNRESET and friends).
    Reset,
    /// Closed before a byte of response.
    ClosedWithoutResponse,
    /// Closed inside the response head.
    TruncatedHead,
    /// Not an HTTP response we can use.
    Malformed,
    HeadTooLarge,
    /// Declared or received body over `--max-shim-body`.
    BodyTooLarge,
    BadChunk,
    /// Closed inside the body.
    Truncated,
    /// A status other than 200 for `/metrics`.
    HttpStatus,
    /// No complete answer before the deadline.
    Timeout,
    /// A body that is mostly not exposition text.
    InvalidBody,
}

impl FetchError {
    pub const ALL: [FetchError; 17] = [
        FetchError::NoSocket,
        FetchError::Refused,
        FetchError::SocketPathTooLong,
        FetchError::FdExhausted,
        FetchError::ConnectFailed,
        FetchError::SendFailed,
        FetchError::Reset,
        FetchError::ClosedWithoutResponse,
        FetchError::TruncatedHead,
        FetchError::Malformed,
        FetchError::HeadTooLarge,
        FetchError::BodyTooLarge,
        FetchError::BadChunk,
        FetchError::Truncated,
        FetchError::HttpStatus,
        FetchError::Timeout,
        FetchError::InvalidBody,
    ];

    /// The `reason` label value (stable: dashboards and alerts use it).
    pub fn as_label(self) -> &'static str {
        match self {
            FetchError::NoSocket => "no_socket",
            FetchError::Refused => "refused",
            FetchError::SocketPathTooLong => "socket_path_too_long",
            FetchError::FdExhausted => "fd_exhausted",
            FetchError::ConnectFailed => "connect_failed",
            FetchError::SendFailed => "send_failed",
            FetchError::Reset => "reset",
            FetchError::ClosedWithoutResponse => "closed_without_response",
            FetchError::TruncatedHead => "truncated_head",
            FetchError::Malformed => "malformed_response",
            FetchError::HeadTooLarge => "head_too_large",
            FetchError::BodyTooLarge => "body_too_large",
            FetchError::BadChunk => "bad_chunk",
            FetchError::Truncated => "truncated",
            FetchError::HttpStatus => "http_status",
            FetchError::Timeout => "timeout",
            FetchError::InvalidBody => "invalid_body",
        }
    }

    /// The shim could not be reached at all (as opposed to a bad answer).
    pub fn unreachable(self) -> bool {
        matches!(
            self,
            FetchError::NoSocket
                | FetchError::Refused
                | FetchError::SocketPathTooLong
                | FetchError::FdExhausted
                | FetchError::ConnectFailed
        )
    }

    /// Classify a failed `connect(2)` on a shim socket.
    pub fn from_connect(e: &std::io::Error) -> FetchError {
        use std::io::ErrorKind;
        match e.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                return FetchError::FdExhausted;
            }
            Some(libc::ENAMETOOLONG) => return FetchError::SocketPathTooLong,
            _ => {}
        }
        match e.kind() {
            ErrorKind::NotFound => FetchError::NoSocket,
            ErrorKind::ConnectionRefused => FetchError::Refused,
            ErrorKind::InvalidInput => FetchError::SocketPathTooLong,
            _ => FetchError::ConnectFailed,
        }
    }
}

impl From<client::Error> for FetchError {
    fn from(e: client::Error) -> FetchError {
        match e {
            client::Error::Malformed => FetchError::Malformed,
            client::Error::HeadTooLarge => FetchError::HeadTooLarge,
            client::Error::TooLarge => FetchError::BodyTooLarge,
            client::Error::BadChunk => FetchError::BadChunk,
            client::Error::Truncated => FetchError::Truncated,
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for e in FetchError::ALL {
            let l = e.as_label();
            assert!(
                l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{l}"
            );
            assert!(seen.insert(l), "{l} twice");
        }
    }

    #[test]
    fn connect_errors() {
        let os = |n| std::io::Error::from_raw_os_error(n);
        assert_eq!(
            FetchError::from_connect(&os(libc::EMFILE)),
            FetchError::FdExhausted
        );
        assert_eq!(
            FetchError::from_connect(&os(libc::ENFILE)),
            FetchError::FdExhausted
        );
        assert_eq!(
            FetchError::from_connect(&os(libc::ENOENT)),
            FetchError::NoSocket
        );
        assert_eq!(
            FetchError::from_connect(&os(libc::ECONNREFUSED)),
            FetchError::Refused
        );
        assert_eq!(
            FetchError::from_connect(&os(libc::ENAMETOOLONG)),
            FetchError::SocketPathTooLong
        );
        assert_eq!(
            FetchError::from_connect(&os(libc::EACCES)),
            FetchError::ConnectFailed
        );
        assert!(FetchError::FdExhausted.unreachable() && !FetchError::Timeout.unreachable());
    }
}
