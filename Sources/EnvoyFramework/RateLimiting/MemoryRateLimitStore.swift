import Foundation
import Synchronization

/// An exact sliding-log limiter in process memory: never more than `limit` in any rolling window.
/// Memory is bounded by the policies' limits times the number of keys active within their windows.
public final class MemoryRateLimitStore: RateLimitStore {
    private struct Log {
        var times: [Double] = []
        var window: Double
    }

    private struct State {
        var logs: [String: Log] = [:]
        var callsSinceSweep = 0
    }

    private let state = Mutex(State())
    private let now: @Sendable () -> Double

    /// A store reading Unix time from `now` (injectable for tests).
    public init(now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.now = now
    }

    /// Decides all checks under one lock, so concurrent callers see each other exactly.
    public func acquire(_ checks: [RateLimitCheck]) -> RateLimitDecision {
        let time = now()
        return state.withLock { state in
            state.callsSinceSweep += 1
            if state.callsSinceSweep >= 4096 { Self.sweep(&state, at: time) }
            var counts: [Int] = []
            var oldest: [Double?] = []
            for check in checks {
                let id = Self.id(check)
                var log = state.logs[id] ?? Log(window: check.policy.window)
                let cutoff = time - check.policy.window
                if let firstLive = log.times.firstIndex(where: { $0 > cutoff }) {
                    log.times.removeFirst(firstLive)
                } else {
                    log.times.removeAll(keepingCapacity: true)
                }
                state.logs[id] = log
                counts.append(log.times.count)
                oldest.append(log.times.first)
            }
            let admitted = zip(checks, counts).allSatisfy { $0.policy.limit > $1 }
            var outcomes: [RateLimitOutcome] = []
            for (index, check) in checks.enumerated() {
                let id = Self.id(check)
                var count = counts[index]
                var first = oldest[index]
                if admitted {
                    state.logs[id]!.times.append(time)
                    count += 1
                    first = first ?? time
                }
                outcomes.append(
                    RateLimitOutcome(
                        policy: check.policy,
                        allowed: check.policy.limit > counts[index],
                        remaining: max(0, check.policy.limit - count),
                        resetAfter: first.map { max(0, $0 + check.policy.window - time) } ?? 0
                    ))
            }
            return RateLimitDecision(outcomes: outcomes, now: time)
        }
    }

    /// Keys currently holding counts (for tests and metrics).
    public var activeKeys: Int { state.withLock { $0.logs.count } }

    private static func id(_ check: RateLimitCheck) -> String { "\(check.policy.name)\u{0}\(check.key)" }

    private static func sweep(_ state: inout State, at time: Double) {
        state.callsSinceSweep = 0
        state.logs = state.logs.filter { _, log in (log.times.last ?? -.infinity) > time - log.window }
    }
}
