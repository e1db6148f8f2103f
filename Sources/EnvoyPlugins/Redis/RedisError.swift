/// Why a Redis call failed. None of the messages carry a password.
public enum RedisError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The URL in `REDIS_URL` cannot be used.
    case invalidURL(String)
    /// The server could not be reached or the connection dropped.
    case connectionFailed(String)
    /// The server refused our credentials.
    case authenticationFailed(String)
    /// The server refused the database index in the URL (`SELECT`).
    case databaseRefused(String)
    /// The reply did not arrive within the call's deadline.
    case timeout(Duration)
    /// The circuit breaker is open: Redis failed repeatedly, calls fail fast until a probe succeeds.
    case circuitOpen
    /// The bytes from the server were not valid RESP (or too large); the connection is dropped.
    case protocolError(String)
    /// The caller's task was cancelled before the reply came.
    case cancelled
    /// Redis answered with an error reply (`-ERR …`).
    case server(String)
    /// The reply had another shape than the command promises.
    case unexpectedReply(String)

    /// One line describing the failure.
    public var description: String {
        switch self {
        case .invalidURL(let why): "REDIS_URL: \(why)"
        case .connectionFailed(let why): "Redis connection failed: \(why)"
        case .authenticationFailed(let why): "Redis authentication failed: \(why)"
        case .databaseRefused(let why): "Redis refused the database index: \(why)"
        case .timeout(let deadline): "Redis did not answer within \(deadline)"
        case .circuitOpen: "Redis is unavailable (circuit open; failing fast)"
        case .protocolError(let why): "Redis protocol error: \(why)"
        case .cancelled: "the Redis call was cancelled"
        case .server(let message): "Redis error: \(message)"
        case .unexpectedReply(let what): "unexpected Redis reply: \(what)"
        }
    }

    /// True for failures of the transport (count against the circuit breaker), false for Redis's own answers.
    var isTransportFailure: Bool {
        switch self {
        case .server, .unexpectedReply, .authenticationFailed, .databaseRefused, .invalidURL, .cancelled: false
        default: true
        }
    }
}
