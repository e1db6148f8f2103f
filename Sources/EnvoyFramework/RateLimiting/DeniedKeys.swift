import Foundation
import Synchronization

/// A bounded memory of (policy, key) pairs that were just refused, and until when: a repeat offender is
/// answered without asking the store until quota frees up. Correct because a refusal consumes nothing, so
/// no one else's traffic can free that key's quota sooner — except an operator's reset, which `forget` applies.
/// It also counts refusals per key by minute, for the keys refused most in the last hour.
public final class DeniedKeys: Sendable {
    private struct State {
        var until: [String: ContinuousClock.Instant] = [:]
        /// Refusals per key in each of the last 60 minutes (index: minute % 60), with the minute last written.
        var refusals: [String: (minute: Int, counts: [Int])] = [:]
    }

    private let state = Mutex(State())
    private let capacity: Int

    /// A memory of at most `capacity` keys (refusals and counts alike).
    public init(capacity: Int) {
        self.capacity = capacity
    }

    /// The refused checks among `checks` with the seconds left on each refusal.
    func denied(_ checks: [RateLimitCheck]) -> [(RateLimitCheck, Double)] {
        let now = ContinuousClock.now
        return state.withLock { state in
            checks.compactMap { check in
                guard !check.policy.shadow, let until = state.until[Self.id(check)] else { return nil }
                guard until > now else {
                    state.until[Self.id(check)] = nil
                    return nil
                }
                return (check, (until - now).inSeconds)
            }
        }
    }

    /// Remembers the refusals in `decision` until each policy's quota frees.
    func remember(_ decision: RateLimitDecision, checks: [RateLimitCheck]) {
        let now = ContinuousClock.now
        state.withLock { state in
            for (check, outcome) in zip(checks, decision.outcomes) where !outcome.allowed && !check.policy.shadow {
                if state.until.count >= capacity {
                    state.until = state.until.filter { $0.value > now }
                    if state.until.count >= capacity { return }
                }
                state.until[Self.id(check)] = now.advanced(by: .milliseconds(Int64(outcome.resetAfter * 1000)))
            }
        }
    }

    /// Counts a refusal of each violated check (whether the store or this memory refused it).
    func count(_ decision: RateLimitDecision, checks: [RateLimitCheck], at date: Date = Date()) {
        let minute = Int(date.timeIntervalSince1970 / 60)
        state.withLock { state in
            for (check, outcome) in zip(checks, decision.outcomes) where !outcome.allowed && !check.policy.shadow {
                let id = Self.id(check)
                if state.refusals[id] == nil, state.refusals.count >= capacity {
                    state.refusals = state.refusals.filter { minute - $0.value.minute < 60 }
                    if state.refusals.count >= capacity { continue }
                }
                var entry = state.refusals[id] ?? (minute, Array(repeating: 0, count: 60))
                for stale in stride(from: entry.minute + 1, through: min(minute, entry.minute + 60), by: 1) {
                    entry.counts[stale % 60] = 0
                }
                entry.minute = minute
                entry.counts[minute % 60] += 1
                state.refusals[id] = entry
            }
        }
    }

    /// The keys refused most in the last hour here, as policy, key and count, most first.
    public func mostRefused(limit: Int, at date: Date = Date()) -> [(policy: String, key: String, count: Int)] {
        let minute = Int(date.timeIntervalSince1970 / 60)
        return state.withLock { state in
            state.refusals.compactMap { id, entry -> (String, String, Int)? in
                let age = minute - entry.minute
                guard age < 60 else { return nil }
                // Minutes older than an hour, counted from now, no longer count.
                let total = (0..<60).filter { index in
                    let written = entry.minute - ((entry.minute - index) % 60 + 60) % 60
                    return minute - written < 60
                }.reduce(0) { $0 + entry.counts[$1] }
                let parts = id.split(separator: "\u{0}", maxSplits: 1).map(String.init)
                return total > 0 && parts.count == 2 ? (parts[0], parts[1], total) : nil
            }.sorted { $0.2 > $1.2 || ($0.2 == $1.2 && $0.1 < $1.1) }.prefix(limit).map { ($0.0, $0.1, $0.2) }
        }
    }

    /// Whether any refusal is remembered now (none: a reset elsewhere has nothing to make this instance forget).
    public var remembersAny: Bool {
        let now = ContinuousClock.now
        return state.withLock { $0.until.values.contains { $0 > now } }
    }

    /// Forgets the refusal of `key` under `policy` (after an operator reset it).
    public func forget(policy: String, key: String) {
        _ = state.withLock { $0.until.removeValue(forKey: "\(policy)\u{0}\(key)") }
    }

    private static func id(_ check: RateLimitCheck) -> String { "\(check.policy.name)\u{0}\(check.key)" }
}
