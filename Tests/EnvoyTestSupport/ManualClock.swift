import Synchronization

/// A Unix-time clock that moves only when a test says so.
public final class ManualClock: Sendable {
    private let time: Mutex<Double>

    /// A clock at `start` (Unix seconds).
    public init(_ start: Double = 1_000_000) { time = Mutex(start) }

    /// Moves the clock forward.
    public func advance(_ seconds: Double) { time.withLock { $0 += seconds } }

    /// The clock as a `now` function for the stores.
    public var now: @Sendable () -> Double { { self.time.withLock { $0 } } }
}
