import EnvoyFramework

/// `CacheProvider` on Redis: `GET`, `SET … PX`, `DEL` under `{prefix}:cache:` keys.
public struct RedisCache: CacheProvider {
    let client: RedisClient
    let prefix: String

    /// A cache on `client`, keys under `prefix:cache:`.
    public init(client: RedisClient, prefix: String) {
        self.client = client
        self.prefix = prefix
    }

    /// The stored bytes, or nil.
    public func get(_ key: String) async throws -> [UInt8]? {
        try await client.send("GET", RedisArgument(name(key))).bytes
    }

    /// Stores with a millisecond TTL.
    public func set(_ key: String, value: [UInt8], ttl: Duration) async throws {
        let milliseconds = max(1, Int(ttl.inSeconds * 1000))
        try await client.send(
            "SET", RedisArgument(name(key)), RedisArgument(bytes: value), "PX", RedisArgument(milliseconds))
    }

    /// Deletes the key.
    public func delete(_ key: String) async throws {
        try await client.send("DEL", RedisArgument(name(key)))
    }

    // A scoped cache key is `cache:scope:…`; the scope becomes the hash tag so one user's entries share a slot.
    private func name(_ key: String) -> String {
        let parts = key.split(separator: ":", maxSplits: 2)
        guard parts.count == 3 else { return "\(prefix):cache:\(key)" }
        return "\(prefix):cache:\(parts[0]):{\(parts[1])}:\(parts[2])"
    }
}
