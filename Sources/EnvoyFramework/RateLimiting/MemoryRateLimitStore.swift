import DequeModule
import Foundation
import Synchronization

/// An in-process `RateLimitStore` (and its administration): an exact sliding log or GCRA per policy, every check decided under one lock.
/// A log is a ring buffer pruned from the front and appended at the back, so a decision costs O(expired + 1).
/// Memory is bounded by the policies' limits times the keys active within their windows; idle keys are swept.
public final class MemoryRateLimitStore: RateLimitStore, RateLimitAdministration, CustomStringConvertible {
    /// `memory`.
    public var description: String { "memory" }

    private struct Log {
        var times: Deque<Double> = []
        var idleAfter: Double = 0
    }

    private struct Bucket {
        var theoreticalArrival: Double
        var idleAfter: Double
    }

    private struct State {
        var logs: [String: Log] = [:]
        var buckets: [String: Bucket] = [:]
        var callsSinceSweep = 0
        var resets: [(policy: String, key: String, at: Double)] = []
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
            if state.callsSinceSweep >= 4096 {
                state.callsSinceSweep = 0
                state.logs = state.logs.filter { $0.value.idleAfter > time }
                state.buckets = state.buckets.filter { $0.value.idleAfter > time }
            }
            let ids = checks.map(Self.id)
            let before = zip(checks, ids).map { check, id -> RateLimitOutcome in
                switch check.policy.algorithm {
                case .slidingLog:
                    let cutoff = time - check.policy.window
                    state.logs[id, default: Log()].times.removeFirst(while: { $0 <= cutoff })
                    let times = state.logs[id]!.times
                    return .slidingLog(check.policy, count: times.count, oldest: times.first, now: time, charged: false)
                case .gcra:
                    let arrival = max(state.buckets[id]?.theoreticalArrival ?? time, time)
                    return .gcra(check.policy, arrival: arrival, now: time, charged: false)
                }
            }
            let admitted = RateLimitDecision(outcomes: before, now: time).admitted
            var outcomes: [RateLimitOutcome] = []
            for (index, check) in checks.enumerated() {
                guard admitted && before[index].allowed else {
                    outcomes.append(before[index])
                    continue
                }
                let id = ids[index]
                switch check.policy.algorithm {
                case .slidingLog:
                    let oldest = state.logs[id]!.times.first
                    outcomes.append(
                        .slidingLog(
                            check.policy, count: state.logs[id]!.times.count, oldest: oldest, now: time, charged: true))
                    state.logs[id]!.times.append(time)
                    state.logs[id]!.idleAfter = time + check.policy.window
                case .gcra:
                    let arrival = max(state.buckets[id]?.theoreticalArrival ?? time, time)
                    outcomes.append(.gcra(check.policy, arrival: arrival, now: time, charged: true))
                    let next = arrival + check.policy.window / Double(check.policy.limit)
                    state.buckets[id] = Bucket(theoreticalArrival: next, idleAfter: next)
                }
            }
            return RateLimitDecision(outcomes: outcomes, now: time)
        }
    }

    /// Each check's window now, uncharged.
    public func peek(_ checks: [RateLimitCheck]) -> RateLimitDecision {
        let time = now()
        return state.withLock { state in
            RateLimitDecision(
                outcomes: checks.map { check in
                    let id = Self.id(check)
                    switch check.policy.algorithm {
                    case .slidingLog:
                        let times = (state.logs[id]?.times ?? []).filter { $0 > time - check.policy.window }
                        return .slidingLog(
                            check.policy, count: times.count, oldest: times.first, now: time, charged: false)
                    case .gcra:
                        let arrival = max(state.buckets[id]?.theoreticalArrival ?? time, time)
                        return .gcra(check.policy, arrival: arrival, now: time, charged: false)
                    }
                }, now: time)
        }
    }

    /// Forgets the checks' counts.
    public func reset(_ checks: [RateLimitCheck]) {
        let time = now()
        state.withLock { state in
            for check in checks {
                state.logs[Self.id(check)] = nil
                state.buckets[Self.id(check)] = nil
                state.resets.append((check.policy.name, check.key, time))
            }
            state.resets.removeAll { $0.at < time - 3600 }
        }
    }

    /// The resets made here since `time` (kept an hour).
    public func resets(since time: Double) -> [(policy: String, key: String)] {
        state.withLock { $0.resets.filter { $0.at >= time }.map { ($0.policy, $0.key) } }
    }

    /// Keys currently holding counts (for tests and metrics).
    public var activeKeys: Int { state.withLock { $0.logs.count + $0.buckets.count } }

    private static func id(_ check: RateLimitCheck) -> String { "\(check.policy.name)\u{0}\(check.key)" }
}

extension Deque {
    /// Removes leading elements while `predicate` holds.
    mutating func removeFirst(while predicate: (Element) -> Bool) {
        while let first, predicate(first) { removeFirst() }
    }
}
