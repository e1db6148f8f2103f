/// One policy applied to one key, as a request asks for it.
public struct RateLimitCheck: Sendable, Hashable {
    /// The policy.
    public var policy: RateLimitPolicy
    /// The key within the policy (user id or client address).
    public var key: String

    /// A check of `key` against `policy`.
    public init(policy: RateLimitPolicy, key: String) {
        self.policy = policy
        self.key = key
    }
}

/// The state of one policy after a decision.
public struct RateLimitOutcome: Sendable, Equatable {
    /// The policy.
    public var policy: RateLimitPolicy
    /// Whether this policy had room for the request.
    public var allowed: Bool
    /// Requests still admissible in the current window (after this one, if it was admitted).
    public var remaining: Int
    /// Seconds until the oldest counted request leaves the window and a slot frees (0 when none is counted).
    public var resetAfter: Double

    /// An outcome with the given fields.
    public init(policy: RateLimitPolicy, allowed: Bool, remaining: Int, resetAfter: Double) {
        self.policy = policy
        self.allowed = allowed
        self.remaining = remaining
        self.resetAfter = resetAfter
    }
}

/// The verdict on a request: admitted only if every policy had room.
public struct RateLimitDecision: Sendable, Equatable {
    /// One outcome per check, in the order asked.
    public var outcomes: [RateLimitOutcome]
    /// Unix time (seconds) at which the decision was taken.
    public var now: Double

    /// A decision from its outcomes.
    public init(outcomes: [RateLimitOutcome], now: Double) {
        self.outcomes = outcomes
        self.now = now
    }

    /// True when every policy admitted the request.
    public var admitted: Bool { outcomes.allSatisfy(\.allowed) }
    /// The policies that rejected the request.
    public var violated: [RateLimitOutcome] { outcomes.filter { !$0.allowed } }
}

/// Where rate-limit counts live. One call decides every check atomically: a request is recorded in
/// every policy only if all of them admit it, so a rejected request consumes no quota anywhere.
public protocol RateLimitStore: Sendable {
    /// Decides and, when all admit, records the request in every check's window.
    func acquire(_ checks: [RateLimitCheck]) async throws -> RateLimitDecision
}
