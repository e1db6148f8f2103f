/// A key-value store with expiry that Envoy's caches sit on (in-memory by default, Redis as a plugin).
/// Values are opaque bytes; the provider never interprets them.
public protocol CacheProvider: Sendable {
    /// The value stored under `key`, or nil if absent or expired.
    func get(_ key: String) async throws -> [UInt8]?
    /// Stores `value` under `key` for `ttl`.
    func set(_ key: String, value: [UInt8], ttl: Duration) async throws
    /// Removes `key`; removing an absent key is not an error.
    func delete(_ key: String) async throws
}
