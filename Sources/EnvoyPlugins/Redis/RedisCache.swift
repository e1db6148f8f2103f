import EnvoyFramework

/// A cache provider whose chained reads are Redis script calls on one client — the capability that lets a store on
/// the same client (the rate limiter's) send the read in its own round trip.
public protocol RedisChainedReads: CacheProvider {
    /// The client the reads go to.
    var redisClient: RedisClient { get }
    /// The script call of `read`; nil when it has no one-call form.
    func chainedReadCall(_ read: ChainedRead) -> RedisScriptCall?
    /// What the call's reply says (an error reply is thrown).
    func found(byChainedRead reply: RESPValue) throws(RedisError) -> ChainedRead.Found
}

/// `CacheProvider` on Redis: `GET`, `SET … PX`, `DEL` under `prefix:cache:` keys.
///
/// Every value is stamped with the `run_id` of the Redis server that stored it, and a value from another
/// server lifetime reads as absent. So entries (and invalidation generations) restored from a snapshot after a
/// restart can never be served: an invalidation that could not be delivered while Redis was down is not needed.
public struct RedisCache: RedisChainedReads {
    let client: RedisClient
    let prefix: String

    /// A cache on `client`, keys under `prefix:cache:`.
    public init(client: RedisClient, prefix: String) {
        self.client = client
        self.prefix = prefix
    }

    /// The stored bytes, or nil (also for a value stored in an earlier server lifetime).
    public func get(_ key: String) async throws -> [UInt8]? {
        let reply = try await client.send("GET", RedisArgument(name(key)))
        return unstamped(reply)
    }

    /// A stored value without its stamp, or nil when absent or from another server lifetime. The stamp is read
    /// after the reply: a reconnection during the call has updated it to the answering server's lifetime.
    private func unstamped(_ reply: RESPValue) -> [UInt8]? {
        // Compared in place: building the stamp's bytes for each reply was 4 allocations per cached read.
        let runID = client.serverRunID.utf8
        guard let stored = reply.bytes, stored.count > runID.count, stored.starts(with: runID),
            stored[runID.count] == Self.separator
        else { return nil }
        return Array(stored[(runID.count + 1)...])
    }

    /// The generation and the entry under it in one `EVALSHA` (the entry's key is built inside the script from the
    /// generation; it carries the same `{scope}` hash tag, so both keys are in one slot). Values from another
    /// server lifetime read as absent, the entry under such a generation too.
    public func get(_ first: String, thenPrefix prefix: String, suffix: String) async throws
        -> (first: [UInt8]?, second: [UInt8]?)
    {
        guard let call = chainedRead(first, thenPrefix: prefix, suffix: suffix) else {
            return try await getOneAfterAnother(first, thenPrefix: prefix, suffix: suffix)
        }
        return try found(byChainedRead: try await client.run(call))
    }

    /// The Redis client the reads go to.
    public var redisClient: RedisClient { client }

    /// The script call of `read`; nil when its keys cannot be split around the value read first.
    public func chainedReadCall(_ read: ChainedRead) -> RedisScriptCall? {
        chainedRead(read.first, thenPrefix: read.prefix, suffix: read.suffix)
    }

    /// The script call of a chained read; nil when its keys cannot be split around the value read first.
    func chainedRead(_ first: String, thenPrefix prefix: String, suffix: String) -> RedisScriptCall? {
        let before: String
        let after: String
        if let tagged = tagged(prefix, endingAtSecondColon: true) {
            // The usual `cache:scope:` prefix: the tag closes inside it, and the suffix stays as it is.
            (before, after) = (tagged, suffix)
        } else {
            // The Redis name of `prefix + GENERATION + suffix`, split around the generation.
            let sample = name(prefix + "\u{0}" + suffix)
            guard let cut = sample.utf8.firstIndex(of: 0), !sample[sample.utf8.index(after: cut)...].utf8.contains(0)
            else { return nil }
            (before, after) = (String(sample[..<cut]), String(sample[sample.utf8.index(after: cut)...]))
        }
        return RedisScriptCall(
            Self.chainedRead, keys: [name(first)], arguments: [RedisArgument(before), RedisArgument(after)])
    }

    /// What a chained read's reply says (an error reply is thrown).
    public func found(byChainedRead reply: RESPValue) throws(RedisError) -> ChainedRead.Found {
        if case .error(let message) = reply { throw .server(message) }
        guard let values = reply.array, values.count == 2 else {
            throw .unexpectedReply("chained cache read returned \(reply)")
        }
        guard let generation = unstamped(values[0]) else { return (nil, nil) }
        return (generation, unstamped(values[1]))
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
    private static func stamp(_ runID: String) -> [UInt8] { Array(runID.utf8) + [separator] }

    /// The byte between a value's stamp and the value (ASCII unit separator).
    private static let separator: UInt8 = 0x1F

    // A scoped cache key is `cache:scope:…`; the scope becomes the hash tag so one user's entries share a slot.
    // (Found by scanning bytes: this runs on every request, and `split` was 3 % of a cached read's CPU.)
    private func name(_ key: String) -> String {
        tagged(key, endingAtSecondColon: false) ?? "\(prefix):cache:\(key)"
    }

    /// `PREFIX:cache:kind:{scope}:rest` for a key `kind:scope:rest`, or nil when the key has no such shape. With
    /// `endingAtSecondColon`, the key must end at the colon after the scope (a chained read's prefix); without, the
    /// rest must not be empty.
    private func tagged(_ key: String, endingAtSecondColon: Bool) -> String? {
        let colon = UInt8(ascii: ":")
        let bytes = key.utf8
        guard let first = bytes.firstIndex(of: colon), first != bytes.startIndex,
            case let scopeStart = bytes.index(after: first),
            let second = bytes[scopeStart...].firstIndex(of: colon), second != scopeStart,
            (bytes.index(after: second) == bytes.endIndex) == endingAtSecondColon
        else { return nil }
        return String(
            concatenating: prefix[...], ":cache:", key[..<scopeStart], "{", key[scopeStart..<second], "}",
            key[second...])
    }
}
