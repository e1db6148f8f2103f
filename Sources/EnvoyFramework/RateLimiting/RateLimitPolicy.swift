/// What a policy counts requests by.
public enum RateLimitSubject: String, Codable, Sendable, Hashable {
    /// The authenticated user's id (the policy only applies to authenticated requests).
    case user
    /// The client's address (IPv6 by /64).
    case clientIP = "ip"
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

    /// A policy admitting `limit` requests per rolling `window` seconds.
    public init(name: String, limit: Int, window: Double, key: RateLimitSubject, match: RateLimitMatch) {
        self.name = name
        self.limit = limit
        self.window = window
        self.key = key
        self.match = match
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
