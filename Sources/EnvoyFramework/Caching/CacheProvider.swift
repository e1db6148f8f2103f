/// A key-value store with expiry that Envoy's caches sit on (in-memory by default, Redis as a plugin).
/// Values are opaque bytes; the provider never interprets them.
public protocol CacheProvider: Sendable {
    /// The value stored under `key`, or nil if absent or expired.
    func get(_ key: String) async throws -> [UInt8]?
    /// Stores `value` under `key` for `ttl`.
    func set(_ key: String, value: [UInt8], ttl: Duration) async throws
    /// Removes `key`; removing an absent key is not an error.
    func delete(_ key: String) async throws
    /// Reads `first`, then the key `prefix + (value of first) + suffix` — in one round trip where the provider can
    /// (a scope's generation and the entry under it). The default makes two `get`s.
    func get(_ first: String, thenPrefix prefix: String, suffix: String) async throws -> (
        first: [UInt8]?, second: [UInt8]?
    )
}

extension CacheProvider {
    /// The default: `getOneAfterAnother`.
    public func get(_ first: String, thenPrefix prefix: String, suffix: String) async throws
        -> (first: [UInt8]?, second: [UInt8]?)
    {
        try await getOneAfterAnother(first, thenPrefix: prefix, suffix: suffix)
    }

    /// The chained read as two `get`s, one after the other (for providers, or keys, without a one-trip form).
    public func getOneAfterAnother(_ first: String, thenPrefix prefix: String, suffix: String) async throws
        -> (first: [UInt8]?, second: [UInt8]?)
    {
        guard let value = try await get(first) else { return (nil, nil) }
        return (value, try await get(prefix + String(decoding: value, as: UTF8.self) + suffix))
    }
}
