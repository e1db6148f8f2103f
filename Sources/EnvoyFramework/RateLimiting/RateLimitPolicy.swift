import HTTPTypes

/// What a policy counts requests by.
public enum RateLimitSubject: Codable, Sendable, Hashable {
    /// The authenticated user's id (the policy only applies to authenticated requests). JSON: `"user"`.
    case user
    /// The client's address (IPv6 by /64). JSON: `"ip"`.
    case clientIP
    /// The value of a request header, e.g. an API key. JSON: `"header:X-Api-Key"`.
    case header(String)
    /// One shared count for every matching request. JSON: `"global"`.
    case global

    /// Parses the JSON spelling.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        switch text {
        case "user": self = .user
        case "ip": self = .clientIP
        case "global": self = .global
        case _ where text.hasPrefix("header:") && text.count > "header:".count:
            self = .header(String(text.dropFirst("header:".count)))
        default:
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "key must be user, ip, global or header:NAME"))
        }
    }

    /// Writes the JSON spelling.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .user: try container.encode("user")
        case .clientIP: try container.encode("ip")
        case .global: try container.encode("global")
        case .header(let name): try container.encode("header:\(name)")
        }
    }
}

/// How a policy counts.
public enum RateLimitAlgorithm: String, Codable, Sendable, Hashable {
    /// Exact: never more than `limit` in any rolling `window` (memory grows with `limit` per key).
    case slidingLog = "sliding_log"
    /// Generic cell rate algorithm: one timestamp per key, smooth, bursts up to `limit` (for high-volume limits).
    case gcra
}

/// What a policy does when its store (Redis) cannot be reached.
public enum RateLimitFailureMode: String, Codable, Sendable, Hashable {
    /// Keep limiting with an in-process limiter of the same policy (per instance).
    case local
    /// Admit without limiting.
    case open
    /// Refuse with 503.
    case closed
}

/// Which requests a policy applies to; every given condition must hold.
public struct RateLimitMatch: Codable, Sendable, Hashable {
    /// The HTTP method, e.g. `POST`; nil matches any.
    public var method: String?
    /// The route template, e.g. `/api/notifications/{id}/read`; nil matches any route.
    public var route: String?
    /// true: only requests with a valid token; false: only requests without one; nil: both.
    public var authenticated: Bool?

    /// A match on the given conditions.
    public init(method: String? = nil, route: String? = nil, authenticated: Bool? = nil) {
        self.method = method
        self.route = route
        self.authenticated = authenticated
    }

    /// True when a request with this method, route template and authentication state matches.
    public func matches(method: String, route: String?, authenticated: Bool) -> Bool {
        if let expected = self.method, expected.uppercased() != method.uppercased() { return false }
        if let expected = self.route, expected != route { return false }
        if let expected = self.authenticated, expected != authenticated { return false }
        return true
    }
}

/// "At most `limit` requests in any rolling window of `window` seconds", for the requests it matches.
public struct RateLimitPolicy: Codable, Sendable, Hashable {
    /// The policy's name, shown in headers, logs, metrics and 429 bodies.
    public var name: String
    /// Requests admitted per window.
    public var limit: Int
    /// The rolling window, in seconds.
    public var window: Double
    /// What requests are counted by.
    public var key: RateLimitSubject
    /// Which requests the policy applies to.
    public var match: RateLimitMatch
    /// How requests are counted.
    public var algorithm: RateLimitAlgorithm
    /// What happens when the store is unreachable.
    public var failureMode: RateLimitFailureMode
    /// Decide and count, but never reject (to try a policy on real traffic).
    public var shadow: Bool

    /// A policy admitting `limit` requests per rolling `window` seconds.
    public init(
        name: String, limit: Int, window: Double, key: RateLimitSubject, match: RateLimitMatch,
        algorithm: RateLimitAlgorithm = .slidingLog, failureMode: RateLimitFailureMode = .local, shadow: Bool = false
    ) {
        self.name = name
        self.limit = limit
        self.window = window
        self.key = key
        self.match = match
        self.algorithm = algorithm
        self.failureMode = failureMode
        self.shadow = shadow
    }

    enum CodingKeys: String, CodingKey {
        case name, limit, window, key, match, algorithm, shadow
        case failureMode = "failure_mode"
    }

    /// Reads a policy; `match`, `algorithm`, `failure_mode` and `shadow` may be left out.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        limit = try container.decode(Int.self, forKey: .limit)
        window = try container.decode(Double.self, forKey: .window)
        key = try container.decode(RateLimitSubject.self, forKey: .key)
        match = try container.decodeIfPresent(RateLimitMatch.self, forKey: .match) ?? RateLimitMatch()
        algorithm = try container.decodeIfPresent(RateLimitAlgorithm.self, forKey: .algorithm) ?? .slidingLog
        failureMode = try container.decodeIfPresent(RateLimitFailureMode.self, forKey: .failureMode) ?? .local
        shadow = try container.decodeIfPresent(Bool.self, forKey: .shadow) ?? false
    }

    /// SPEC's default policies: authenticated, anonymous, login and register.
    public static let defaults: [RateLimitPolicy] = [
        .init(name: "authenticated", limit: 100, window: 60, key: .user, match: .init(authenticated: true)),
        .init(name: "anonymous", limit: 20, window: 60, key: .clientIP, match: .init(authenticated: false)),
        .init(
            name: "login", limit: 5, window: 3600, key: .clientIP, match: .init(method: "POST", route: "/v1/auth/login")
        ),
        .init(
            name: "register", limit: 3, window: 3600, key: .clientIP,
            match: .init(method: "POST", route: "/v1/auth/register")),
    ]

    /// Checks that a loaded policy makes sense; the error names the policy and the field.
    public func validate() throws(RateLimitPolicyError) {
        if name.isEmpty || name.contains(where: { $0 == "\"" || $0 == "\\" || $0.isWhitespace }) {
            throw RateLimitPolicyError(
                policy: name, field: "name", reason: "must be non-empty, without spaces or quotes")
        }
        if limit < 1 { throw RateLimitPolicyError(policy: name, field: "limit", reason: "must be at least 1") }
        if !(window > 0) || !window.isFinite {
            throw RateLimitPolicyError(policy: name, field: "window", reason: "must be a positive number of seconds")
        }
        if key == .user && match.authenticated == false {
            throw RateLimitPolicyError(policy: name, field: "key", reason: "`user` needs authenticated requests")
        }
        if case .header(let header) = key, HTTPField.Name(header) == nil {
            throw RateLimitPolicyError(policy: name, field: "key", reason: "\"\(header)\" is not a header name")
        }
        if algorithm == .slidingLog && limit > 100_000 {
            throw RateLimitPolicyError(
                policy: name, field: "limit",
                reason: "over 100000 needs algorithm gcra (a log keeps one entry per request)")
        }
    }
}

/// A policy that cannot be used, with the field at fault.
public struct RateLimitPolicyError: Error, CustomStringConvertible, Sendable {
    /// The policy's name.
    public var policy: String
    /// The offending field.
    public var field: String
    /// Why the value is rejected.
    public var reason: String

    /// One line naming policy, field and reason.
    public var description: String { "rate-limit policy \"\(policy)\": \(field) \(reason)" }
}
