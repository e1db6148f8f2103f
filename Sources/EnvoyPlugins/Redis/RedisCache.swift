import EnvoyFramework

/// A cache provider whose chained reads are Redis script calls on one client — the capability that lets a store on
/// the same client (the rate limiter's) send the read in its own round trip.
public protocol RedisChainedReads: CacheProvider {
    /// The client the reads go to.
    var redisClient: RedisClient { get }
    /// The script call of `read`; nil when it has no one-call form.
    func chainedReadCall(_ read: ChainedRead) -> RedisScriptCall?
    /// What the reply to `read`'s call says (an error reply is thrown).
    func found(byChainedRead reply: RESPValue, of read: ChainedRead) throws(RedisError) -> ChainedRead.Found
}

/// `CacheProvider` on Redis: `GET`, `SET … PX`, `DEL` under `prefix:cache:CACHE:{SCOPE}:REST` keys — the scope is
/// the hash tag, so a scope's keys share a slot.
///
/// Every value is stamped with the `run_id` of the Redis server that stored it, and a value from another
/// server lifetime reads as absent. So entries (and invalidation generations) restored from a snapshot after a
/// restart can never be served: an invalidation that could not be delivered while Redis was down is not needed.
public struct RedisCache: RedisChainedReads, CustomStringConvertible {
    /// `redis ENDPOINT` (no credentials).
    public var description: String { "redis \(client.configuration.endpoint)" }

    let client: RedisClient
    let prefix: String

    /// A cache on `client`, keys under `prefix:cache:`.
    public init(client: RedisClient, prefix: String) {
        self.client = client
        self.prefix = prefix
    }

    /// The stored bytes, or nil (also for a value stored in an earlier server lifetime).
    public func get(_ key: CacheKey) async throws -> [UInt8]? {
        let name = name(key)
        let reply = try await client.send("GET", RedisArgument(name))
        return unstamped(reply, key: name)
    }

    /// A stored value without its stamp, or nil when absent or from another server lifetime (of the server
    /// holding `key`: on a cluster, the master of its slot). The stamp is read after the reply: a reconnection
    /// during the call has updated it to the answering server's lifetime.
    private func unstamped(_ reply: RESPValue, key: String) -> [UInt8]? {
        // Compared in place: building the stamp's bytes for each reply was 4 allocations per cached read.
        let runID = client.serverRunID(forKey: key).utf8
        guard let stored = reply.bytes, stored.count > runID.count, stored.starts(with: runID),
            stored[runID.count] == Self.separator
        else { return nil }
        return Array(stored[(runID.count + 1)...])
    }

    /// The generation and the entry under it in one `EVALSHA` (the entry's key is built inside the script from the
    /// generation; both keys carry the scope's hash tag, so they are in one slot). Values from another server
    /// lifetime read as absent, the entry under such a generation too.
    public func get(_ first: CacheKey, thenSuffix suffix: String) async throws -> (first: [UInt8]?, second: [UInt8]?) {
        try found(try await client.run(chainedRead(first, thenSuffix: suffix)), first: first)
    }

    /// The Redis client the reads go to.
    public var redisClient: RedisClient { client }

    /// The script call of `read`.
    public func chainedReadCall(_ read: ChainedRead) -> RedisScriptCall? {
        chainedRead(read.first, thenSuffix: read.suffix)
    }

    /// The script call of a chained read: the chained key's name is the first key's sibling with the value put
    /// between its scope part and `suffix`.
    func chainedRead(_ first: CacheKey, thenSuffix suffix: String) -> RedisScriptCall {
        RedisScriptCall(
            Self.chainedRead, keys: [name(first)],
            arguments: [RedisArgument(name(first.sibling(""))), RedisArgument(suffix)])
    }

    /// What a chained read's reply says (an error reply is thrown).
    public func found(byChainedRead reply: RESPValue, of read: ChainedRead) throws(RedisError) -> ChainedRead.Found {
        try found(reply, first: read.first)
    }

    private func found(_ reply: RESPValue, first: CacheKey) throws(RedisError) -> ChainedRead.Found {
        if case .error(let message) = reply { throw .server(message) }
        guard let values = reply.array, values.count == 2 else {
            throw .unexpectedReply("chained cache read returned \(reply)")
        }
        // Both keys carry the scope's hash tag: one server holds them, so the first names its lifetime.
        let key = name(first)
        guard let generation = unstamped(values[0], key: key) else { return (nil, nil) }
        return (generation, unstamped(values[1], key: key))
    }

    /// GET the generation; GET the entry whose key is ARGV[1] .. generation (stamp removed) .. ARGV[2].
    static let chainedRead = RedisScript(
        """
        local g = redis.call('GET', KEYS[1])
        if not g then return {false, false} end
        local separator = string.find(g, '\\031', 1, true)
        if not separator then return {g, false} end
        return {g, redis.call('GET', ARGV[1] .. string.sub(g, separator + 1) .. ARGV[2])}
        """)

    /// Stores with a millisecond TTL, stamped with the server's lifetime.
    public func set(_ key: CacheKey, value: [UInt8], ttl: Duration) async throws {
        let milliseconds = max(1, Int(ttl.inSeconds * 1000))
        let name = name(key)
        let stored = Self.stamp(try await client.currentServerRunID(forKey: name)) + value
        try await client.send(
            "SET", RedisArgument(name), RedisArgument(bytes: stored), "PX", RedisArgument(milliseconds))
    }

    /// Deletes the key.
    public func delete(_ key: CacheKey) async throws {
        try await client.send("DEL", RedisArgument(name(key)))
    }

    /// `run_id` and a separator; 41 bytes per value.
    private static func stamp(_ runID: String) -> [UInt8] { Array(runID.utf8) + [separator] }

    /// The byte between a value's stamp and the value (ASCII unit separator).
    private static let separator: UInt8 = 0x1F

    /// `PREFIX:cache:CACHE:{SCOPE}:REST`, built at its final size in one allocation.
    private func name(_ key: CacheKey) -> String {
        String(
            concatenating: prefix[...], ":cache:", key.cache[...], ":{", key.scope[...], "}:", key.rest[...])
    }
}
