import ServiceLifecycle

/// Re-sends invalidations that could not reach the cache provider (Redis down), as soon as it answers again,
/// instead of waiting for the next read of each affected scope.
public struct InvalidationRetrier: Service {
    let retries: [@Sendable () async -> Int]
    let interval: Duration

    /// Retries each of `retries` (usually `ScopedCache.retryPendingInvalidations`) every `interval`.
    public init(interval: Duration = .milliseconds(250), _ retries: [@Sendable () async -> Int]) {
        self.retries = retries
        self.interval = interval
    }

    /// Loops until graceful shutdown.
    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            for retry in retries { _ = await retry() }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
