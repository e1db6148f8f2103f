/// Where a cached value lives: the cache it belongs to (`profile`), the scope it is kept for (a user), and the
/// rest of its name. A provider keeps a scope's keys together — Redis in one hash slot — from the parts, never by
/// reading a layout into one string.
public struct CacheKey: Sendable, Hashable {
    /// The cache's name.
    public var cache: String
    /// What the value belongs to: one user's entries share it.
    public var scope: String
    /// The rest of the key within the scope.
    public var rest: String

    /// A key of `cache` for `scope`.
    public init(cache: String, scope: String, rest: String) {
        self.cache = cache
        self.scope = scope
        self.rest = rest
    }

    /// The key in the same cache and scope whose rest is `rest`.
    public func sibling(_ rest: String) -> CacheKey {
        CacheKey(cache: cache, scope: scope, rest: rest)
    }
}

/// A key-value store with expiry that Envoy's caches sit on (in-memory by default, Redis as a plugin).
/// Values are opaque bytes; the provider never interprets them.
public protocol CacheProvider: Sendable {
    /// The value stored under `key`, or nil if absent or expired.
    func get(_ key: CacheKey) async throws -> [UInt8]?
    /// Stores `value` under `key` for `ttl`.
    func set(_ key: CacheKey, value: [UInt8], ttl: Duration) async throws
    /// Removes `key`; removing an absent key is not an error.
    func delete(_ key: CacheKey) async throws
    /// Reads `first`, then its sibling whose rest is (the value of `first`) + `suffix` — in one round trip where
    /// the provider can (a scope's generation and the entry under it). The default makes two `get`s.
    func get(_ first: CacheKey, thenSuffix suffix: String) async throws -> (first: [UInt8]?, second: [UInt8]?)
}

extension CacheProvider {
    /// The default: `getOneAfterAnother`.
    public func get(_ first: CacheKey, thenSuffix suffix: String) async throws -> (first: [UInt8]?, second: [UInt8]?) {
        try await getOneAfterAnother(first, thenSuffix: suffix)
    }

    /// The chained read as two `get`s, one after the other (for providers without a one-trip form).
    public func getOneAfterAnother(_ first: CacheKey, thenSuffix suffix: String) async throws
        -> (first: [UInt8]?, second: [UInt8]?)
    {
        guard let value = try await get(first) else { return (nil, nil) }
        return (value, try await get(first.sibling(String(decoding: value, as: UTF8.self) + suffix)))
    }
}

/// A chained read on a provider — `first`, then its sibling named by (the value of `first`) + `suffix` —
/// described, so that it can be sent ahead of its use together with another provider call (the rate limiter's)
/// in one round trip.
public struct ChainedRead: Sendable {
    /// What the two reads found: the first key's value and the chained key's value.
    public typealias Found = (first: [UInt8]?, second: [UInt8]?)

    /// The provider read from.
    public let provider: any CacheProvider
    /// The key read first.
    public let first: CacheKey
    /// What follows the first key's value in the chained key's rest.
    public let suffix: String

    /// A chained read on `provider`.
    public init(provider: any CacheProvider, first: CacheKey, suffix: String) {
        self.provider = provider
        self.first = first
        self.suffix = suffix
    }

    /// Performs the read on its own.
    public func run() async throws -> Found {
        try await provider.get(first, thenSuffix: suffix)
    }

    /// Whether `other` reads the same keys.
    public func reads(sameKeysAs other: ChainedRead) -> Bool {
        first == other.first && suffix == other.suffix
    }
}

/// A `ChainedRead` performed ahead of its use in the same request, and what it found (or why it failed).
public struct PrefetchedRead: Sendable {
    /// The read.
    public let read: ChainedRead
    /// Its result.
    public let result: Result<ChainedRead.Found, any Error>

    /// A read and its result.
    public init(read: ChainedRead, result: Result<ChainedRead.Found, any Error>) {
        self.read = read
        self.result = result
    }
}
