/// Why a Redis call failed. None of the messages carry a password. A struct with a `code`, so that a new kind of
/// failure breaks no caller's `switch`.
public struct RedisError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The kind of failure, compared with the named values.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The kind's name.
        public let description: String

        private init(_ description: String) {
            self.description = description
        }

        /// The URL in `REDIS_URL` cannot be used.
        public static let invalidURL = Code("invalid URL")
        /// The server could not be reached or the connection dropped.
        public static let connectionFailed = Code("connection failed")
        /// The server refused our credentials.
        public static let authenticationFailed = Code("authentication failed")
        /// The server refused the database index in the URL (`SELECT`).
        public static let databaseRefused = Code("database refused")
        /// The reply did not arrive within the call's deadline.
        public static let timeout = Code("timeout")
        /// The circuit breaker is open: Redis failed repeatedly, calls fail fast until a probe succeeds.
        public static let circuitOpen = Code("circuit open")
        /// The bytes from the server were not valid RESP (or too large); the connection is dropped.
        public static let protocolError = Code("protocol error")
        /// The caller's task was cancelled before the reply came.
        public static let cancelled = Code("cancelled")
        /// Redis answered with an error reply (`-ERR …`).
        public static let server = Code("server error")
        /// The reply had another shape than the command promises.
        public static let unexpectedReply = Code("unexpected reply")
        /// The write was made, but no replica confirmed it in time: a failover now could lose it.
        public static let notReplicated = Code("not replicated")
    }

    /// What kind of failure this is.
    public let code: Code
    /// What happened (never a password).
    public let detail: String

    private init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    /// `REDIS_URL` cannot be used, and why.
    public static func invalidURL(_ why: String) -> RedisError { RedisError(.invalidURL, why) }
    /// The server could not be reached, or the connection dropped.
    public static func connectionFailed(_ why: String) -> RedisError { RedisError(.connectionFailed, why) }
    /// The server refused the credentials.
    public static func authenticationFailed(_ why: String) -> RedisError { RedisError(.authenticationFailed, why) }
    /// The server refused the database index.
    public static func databaseRefused(_ why: String) -> RedisError { RedisError(.databaseRefused, why) }
    /// No reply within `deadline`.
    public static func timeout(_ deadline: Duration) -> RedisError { RedisError(.timeout, "\(deadline)") }
    /// The circuit breaker is open.
    public static let circuitOpen = RedisError(.circuitOpen, "")
    /// Bytes that are not RESP, or a reply over the limit.
    public static func protocolError(_ why: String) -> RedisError { RedisError(.protocolError, why) }
    /// The caller was cancelled.
    public static let cancelled = RedisError(.cancelled, "")
    /// An error reply from Redis.
    public static func server(_ message: String) -> RedisError { RedisError(.server, message) }
    /// A reply of another shape than the command promises.
    public static func unexpectedReply(_ what: String) -> RedisError { RedisError(.unexpectedReply, what) }
    /// No replica confirmed a write within `deadline`.
    public static func notReplicated(_ deadline: Duration) -> RedisError { RedisError(.notReplicated, "\(deadline)") }

    /// One line describing the failure.
    public var description: String {
        switch code {
        case .invalidURL: "REDIS_URL: \(detail)"
        case .connectionFailed: "Redis connection failed: \(detail)"
        case .authenticationFailed: "Redis authentication failed: \(detail)"
        case .databaseRefused: "Redis refused the database index: \(detail)"
        case .timeout: "Redis did not answer within \(detail)"
        case .circuitOpen: "Redis is unavailable (circuit open; failing fast)"
        case .protocolError: "Redis protocol error: \(detail)"
        case .cancelled: "the Redis call was cancelled"
        case .server: "Redis error: \(detail)"
        case .unexpectedReply: "unexpected Redis reply: \(detail)"
        case .notReplicated: "no Redis replica confirmed the write within \(detail)"
        default: "Redis \(code): \(detail)"
        }
    }

    /// True for failures of the transport (count against the circuit breaker), false for Redis's own answers.
    var isTransportFailure: Bool {
        ![
            Code.server, .unexpectedReply, .authenticationFailed, .databaseRefused, .invalidURL, .cancelled,
            .notReplicated,
        ]
        .contains(
            code)
    }
}
