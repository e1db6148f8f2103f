import Synchronization

/// Fails calls fast while a dependency is down: after `threshold` consecutive failures it opens for
/// `cooldown`, then lets one probe through; the probe's success closes it, its failure re-opens it for twice
/// as long (up to `maxCooldown`), so a long outage is probed ever less often.
public final class CircuitBreaker: Sendable {
    /// The breaker's state, as reported to health checks.
    public enum State: Sendable, Equatable {
        /// Calls go through.
        case closed
        /// Calls fail fast until the cooldown ends.
        case open
        /// One probe is in flight; other calls fail fast.
        case probing
    }

    private struct Inner {
        var failures = 0
        var openUntil: ContinuousClock.Instant?
        var probing = false
        var opened = 0
    }

    private let inner = Mutex(Inner())
    private let troubled = Atomic(false)
    private let threshold: Int
    private let cooldown: Duration
    private let maxCooldown: Duration

    /// A breaker opening after `threshold` consecutive failures, first for `cooldown`, at most for `maxCooldown`.
    public init(threshold: Int = 5, cooldown: Duration = .seconds(1), maxCooldown: Duration = .seconds(5)) {
        self.threshold = threshold
        self.cooldown = cooldown
        self.maxCooldown = max(cooldown, maxCooldown)
    }

    /// Whether a call may go ahead now (claiming the probe when the cooldown has ended).
    public func allowCall() -> Bool {
        guard troubled.load(ordering: .relaxed) else { return true }
        let now = ContinuousClock.now
        return inner.withLock { inner in
            guard let until = inner.openUntil else { return true }
            if now < until || inner.probing { return false }
            inner.probing = true
            return true
        }
    }

    /// Records a call that reached the dependency.
    public func recordSuccess() {
        // The common case — closed and healthy — costs one relaxed load, not a lock.
        guard troubled.load(ordering: .relaxed) else { return }
        inner.withLock { $0 = Inner() }
        troubled.store(false, ordering: .relaxed)
    }

    /// Records a call that could not reach the dependency (connection failure, timeout).
    public func recordFailure() {
        let now = ContinuousClock.now
        troubled.store(true, ordering: .relaxed)
        inner.withLock { inner in
            inner.failures += 1
            if inner.probing || inner.failures >= threshold {
                let wait = min(maxCooldown, cooldown * Double(1 << min(inner.opened, 16)))
                inner.opened += 1
                inner.openUntil = now.advanced(by: wait)
                inner.probing = false
            }
        }
    }

    /// The current state.
    public var state: State {
        inner.withLock { inner in
            if inner.probing { return .probing }
            return inner.openUntil.map { ContinuousClock.now < $0 ? .open : .probing } ?? .closed
        }
    }
}
