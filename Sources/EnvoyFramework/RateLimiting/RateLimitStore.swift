import Crypto
import Foundation
/// One policy applied to one key, as a request asks for it.
public struct RateLimitCheck: Sendable, Hashable {
    /// The policy.
    public var policy: RateLimitPolicy
    /// The key within the policy (user id or client address).
    public var key: String
    /// What the check's counts are kept with: for a user's checks the user id — the scope of that user's cached
    /// entries, so that a store sharding by it (a Redis Cluster's hash tag) keeps a user's limits and cache on one
    /// server — else the key itself.
    public var tag: String

    /// A check of `key` against `policy`, its counts kept with `tag` (default: the key).
    public init(policy: RateLimitPolicy, key: String, tag: String? = nil) {
        self.policy = policy
        self.key = key
        self.tag = tag ?? key
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
    /// Seconds until the policy frees quota: when rejected, until a request would be admitted; when admitted,
    /// until the oldest counted request leaves the window (sliding log) or the bucket is full again (GCRA).
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

    /// True when every enforced policy admitted the request (shadow policies never reject).
    public var admitted: Bool { outcomes.allSatisfy { $0.allowed || $0.policy.shadow } }
    /// The enforced policies that rejected the request.
    public var violated: [RateLimitOutcome] { outcomes.filter { !$0.allowed && !$0.policy.shadow } }
    /// The shadow policies that would have rejected it.
    public var shadowViolated: [RateLimitOutcome] { outcomes.filter { !$0.allowed && $0.policy.shadow } }
}

/// Where rate-limit counts live. One call decides every check atomically: a request is recorded only if every
/// enforced policy admits it, so a rejected request consumes no quota anywhere. (A shadow policy that would
/// have rejected is not charged either; the others are.) Its calls run on the caller's executor, as the limiter
/// calls them on every request (`nonisolated(nonsending)`; a conforming type whose methods say so too saves a hop).
public protocol RateLimitStore: Sendable {
    /// Decides and, when all admit, records the request in every check's window.
    nonisolated(nonsending) func acquire(_ checks: [RateLimitCheck]) async throws -> RateLimitDecision
    /// Decides like `acquire`, and performs `read` in the same round trip where the store can (the Redis plugin,
    /// when the read is on the same Redis); the read's failure is returned, not thrown. Nil for the read when it
    /// was not made: the default decides, then reads only for an admitted request.
    nonisolated(nonsending) func acquire(_ checks: [RateLimitCheck], along read: ChainedRead) async throws -> (
        RateLimitDecision, PrefetchedRead?
    )
}

extension RateLimitStore {
    /// The default: `acquireThenRead`.
    public nonisolated(nonsending) func acquire(_ checks: [RateLimitCheck], along read: ChainedRead) async throws -> (
        RateLimitDecision, PrefetchedRead?
    ) {
        try await acquireThenRead(checks, along: read)
    }

    /// `acquire`, then, if admitted, the read on its own (two round trips where each is one).
    public nonisolated(nonsending) func acquireThenRead(
        _ checks: [RateLimitCheck], along read: ChainedRead
    ) async throws -> (RateLimitDecision, PrefetchedRead?) {
        let decision = try await acquire(checks)
        guard decision.admitted else { return (decision, nil) }
        let result: Result<ChainedRead.Found, any Error>
        do { result = .success(try await read.run()) } catch { result = .failure(error) }
        return (decision, PrefetchedRead(read: read, result: result))
    }
}

/// What operators do with a store's counts: look at a subject's windows without charging them, and empty them.
public protocol RateLimitAdministration: Sendable {
    /// Each check's state now, as a decision would see it before charging (nothing is recorded).
    func peek(_ checks: [RateLimitCheck]) async throws -> RateLimitDecision
    /// Empties each check's window (the subject starts afresh) and records the reset for `resets(since:)`.
    func reset(_ checks: [RateLimitCheck]) async throws
    /// The checks reset since `time` (Unix seconds) by any instance, as `policy` and `key`: every instance
    /// forgets its remembered refusals of them.
    func resets(since time: Double) async throws -> [(policy: String, key: String)]
}

extension RateLimitCheck {
    /// `policy` for the user `id` (counted with the user's cache tag).
    public static func user(_ id: String, _ policy: RateLimitPolicy) -> RateLimitCheck {
        RateLimitCheck(policy: policy, key: "user:\(id)", tag: id)
    }
    /// `policy` for a client address (IPv6 by its /64).
    public static func ip(_ address: IPAddress?, _ policy: RateLimitPolicy) -> RateLimitCheck {
        RateLimitCheck(policy: policy, key: "ip:\(address?.rateLimitKey ?? "unknown")")
    }
    /// `policy` for a header's value: often a credential (an API key), so only a digest is ever stored or shown.
    public static func header(_ value: String, _ policy: RateLimitPolicy) -> RateLimitCheck {
        let digest = SHA256.hash(data: Array(value.utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
        return RateLimitCheck(policy: policy, key: "header:\(digest)")
    }
    /// `policy` counted once for everybody.
    public static func global(_ policy: RateLimitPolicy) -> RateLimitCheck {
        RateLimitCheck(policy: policy, key: "global")
    }

    /// The checks of `subject` — `user:ID`, `ip:ADDRESS`, `header:VALUE` or `global` — against every policy
    /// counting by that kind of key, keyed as the limiter keys them; nil when the subject is none of these.
    public static func checks(subject: String, policies: [RateLimitPolicy]) -> [RateLimitCheck]? {
        let parts = subject.trimmingCharacters(in: .whitespaces).split(separator: ":", maxSplits: 1).map(String.init)
        let value = parts.count == 2 ? parts[1] : ""
        switch parts.first ?? "" {
        case "user" where !value.isEmpty:
            return policies.filter { $0.key == .user }.map { .user(value, $0) }
        case "ip":
            guard let address = IPAddress(value) else { return nil }
            return policies.filter { $0.key == .clientIP }.map { .ip(address, $0) }
        case "header" where !value.isEmpty:
            return policies.filter { if case .header = $0.key { true } else { false } }.map { .header(value, $0) }
        case "global":
            return policies.filter { $0.key == .global }.map { .global($0) }
        default:
            return nil
        }
    }
}
