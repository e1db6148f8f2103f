import EnvoyFramework

/// `CacheProvider` on Redis: `GET`, `SET … PX`, `DEL` under `prefix:cache:` keys.
///
/// Every value is stamped with the `run_id` of the Redis server that stored it, and a value from another
/// server lifetime reads as absent. So entries (and invalidation generations) restored from a snapshot after a
/// restart can never be served: an invalidation that could not be delivered while Redis was down is not needed.
public struct RedisCache: CacheProvider {
    let client: RedisClient
    let prefix: String

    /// A cache on `client`, keys under `prefix:cache:`.
    public init(client: RedisClient, prefix: String) {
        self.client = client
        self.prefix = prefix
    }

    /// The stored bytes, or nil (also for a value stored in an earlier server lifetime).
    public func get(_ key: String) async throws -> [UInt8]? {
        guard let stored = try await client.send("GET", RedisArgument(name(key))).bytes else { return nil }
        // Read after the reply: a reconnection during the GET has updated it to the answering server's lifetime.
        let stamp = Self.stamp(client.serverRunID)
        guard stored.count >= stamp.count, stored.starts(with: stamp) else { return nil }
        return Array(stored.dropFirst(stamp.count))
    }

    /// Stores with a millisecond TTL, stamped with the server's lifetime.
    public func set(_ key: String, value: [UInt8], ttl: Duration) async throws {
        let milliseconds = max(1, Int(ttl.inSeconds * 1000))
        let stored = Self.stamp(try await client.currentServerRunID()) + value
        try await client.send(
            "SET", RedisArgument(name(key)), RedisArgument(bytes: stored), "PX", RedisArgument(milliseconds))
    }

    /// Deletes the key.
    public func delete(_ key: String) async throws {
        try await client.send("DEL", RedisArgument(name(key)))
    }

    /// `run_id` and a separator; 41 bytes per value.
    private static func stamp(_ runID: String) -> [UInt8] { Array(runID.utf8) + [0x1F] }

    // A scoped cache key is `cache:scope:…`; the scope becomes the hash tag so one user's entries share a slot.
    private func name(_ key: String) -> String {
        let parts = key.split(separator: ":", maxSplits: 2)
        guard parts.count == 3 else { return "\(prefix):cache:\(key)" }
        return "\(prefix):cache:\(parts[0]):{\(parts[1])}:\(parts[2])"
    }
}
