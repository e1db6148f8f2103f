import Synchronization

/// Runs one load per key at a time: concurrent callers for the same key wait for the first caller's result.
public final class SingleFlight<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let waiters = Mutex([Key: [CheckedContinuation<Value, any Error>]]())

    /// An empty group.
    public init() {}

    /// The result of `load` for `key`, shared with every caller that asks while it runs.
    public func run(_ key: Key, _ load: () async throws -> Value) async throws -> Value {
        while true {
            let isLeader = waiters.withLock { waiters -> Bool in
                guard waiters[key] == nil else { return false }
                waiters[key] = []
                return true
            }
            if isLeader { return try await lead(key, load) }
            do {
                return try await follow(key)
            } catch is LeaderFinished {
                continue
            }
        }
    }

    private func lead(_ key: Key, _ load: () async throws -> Value) async throws -> Value {
        let result: Result<Value, any Error>
        do {
            result = .success(try await load())
        } catch {
            result = .failure(error)
        }
        let followers = waiters.withLock { $0.removeValue(forKey: key) ?? [] }
        for follower in followers { follower.resume(with: result) }
        return try result.get()
    }

    private func follow(_ key: Key) async throws -> Value {
        try await withCheckedThrowingContinuation { continuation in
            let joined = waiters.withLock { waiters -> Bool in
                guard waiters[key] != nil else { return false }
                waiters[key]!.append(continuation)
                return true
            }
            if !joined { continuation.resume(throwing: LeaderFinished()) }
        }
    }
}

/// The leader finished between a follower's two looks; the follower tries again.
private struct LeaderFinished: Error {}
