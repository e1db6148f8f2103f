import Synchronization

/// A bounded memory of (policy, key) pairs that were just refused, and until when: a repeat offender is
/// answered without asking the store until quota frees up. Correct because a refusal consumes nothing, so
/// no one else's traffic can free that key's quota sooner.
final class DeniedKeys: Sendable {
    private let entries = Mutex([String: ContinuousClock.Instant]())
    private let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// The refused checks among `checks` with the seconds left on each refusal.
    func denied(_ checks: [RateLimitCheck]) -> [(RateLimitCheck, Double)] {
        let now = ContinuousClock.now
        return entries.withLock { entries in
            checks.compactMap { check in
                guard !check.policy.shadow, let until = entries[Self.id(check)] else { return nil }
                guard until > now else {
                    entries[Self.id(check)] = nil
                    return nil
                }
                return (check, (until - now).inSeconds)
            }
        }
    }

    /// Remembers the refusals in `decision` until each policy's quota frees.
    func remember(_ decision: RateLimitDecision, checks: [RateLimitCheck]) {
        let now = ContinuousClock.now
        entries.withLock { entries in
            for (check, outcome) in zip(checks, decision.outcomes) where !outcome.allowed && !check.policy.shadow {
                if entries.count >= capacity {
                    entries = entries.filter { $0.value > now }
                    if entries.count >= capacity { return }
                }
                entries[Self.id(check)] = now.advanced(by: .milliseconds(Int64(outcome.resetAfter * 1000)))
            }
        }
    }

    private static func id(_ check: RateLimitCheck) -> String { "\(check.policy.name)\u{0}\(check.key)" }
}
