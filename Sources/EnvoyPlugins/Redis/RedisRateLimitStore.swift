import EnvoyFramework
import Foundation
import Synchronization

/// `RateLimitStore` on Redis: every check of a request decided by one script in one round trip, on Redis's
/// clock so that instances with skewed clocks agree. Sliding-log policies keep a sorted set per key
/// (`{prefix:rl}:KEY:POLICY:log`), GCRA policies one timestamp (`{prefix:rl}:KEY:POLICY:gcra`). Every limiter key
/// carries the hash tag `{prefix:rl}`: a request checked against a user and an IP is decided atomically by one
/// script, which a Redis Cluster allows only when its keys share a slot (so the limiter lives on one shard).
public struct RedisRateLimitStore: RateLimitStore, CustomStringConvertible {
    /// `redis ENDPOINT` (no credentials).
    public var description: String { "redis \(client.configuration.endpoint)" }

    let client: RedisClient
    let prefix: String

    /// A store on `client`, keys under `{prefix:rl}:`.
    public init(client: RedisClient, prefix: String) {
        self.client = client
        self.prefix = prefix
    }

    // ARGV per check: limit, window ms, "log" or "gcra", enforce (1) or shadow (0); then a unique request id.
    // Returns integers (no number formatting in the script, no parsing here): admitted, now µs, then per check:
    // allowed, charged, count or arrival µs, oldest µs (-1: none). Scores and stored arrivals stay in ms.
    static let script = RedisScript(
        """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
        local n = #KEYS
        local allowed, state, oldest = {}, {}, {}
        local admitted = 1
        for i = 1, n do
            local limit, window = tonumber(ARGV[4 * i - 3]), tonumber(ARGV[4 * i - 2])
            if ARGV[4 * i - 1] == 'log' then
                redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
                state[i] = redis.call('ZCARD', KEYS[i])
                local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
                oldest[i] = first[2] and tonumber(first[2]) or -1
                allowed[i] = state[i] < limit
            else
                state[i] = math.max(tonumber(redis.call('GET', KEYS[i]) or '0'), now)
                oldest[i] = -1
                allowed[i] = now >= state[i] + window / limit - window - 0.000001
            end
            if not allowed[i] and ARGV[4 * i] == '1' then admitted = 0 end
        end
        local result = {admitted, math.floor(now * 1000)}
        for i = 1, n do
            local limit, window = tonumber(ARGV[4 * i - 3]), tonumber(ARGV[4 * i - 2])
            local charged = admitted == 1 and allowed[i]
            if charged and ARGV[4 * i - 1] == 'log' then
                redis.call('ZADD', KEYS[i], now, ARGV[4 * n + 1])
                redis.call('PEXPIRE', KEYS[i], math.ceil(window))
            elseif charged then
                local arrival = state[i] + window / limit
                redis.call('SET', KEYS[i], tostring(arrival), 'PX', math.max(1, math.ceil(arrival - now)))
            end
            result[#result + 1] = allowed[i] and 1 or 0
            result[#result + 1] = charged and 1 or 0
            result[#result + 1] = ARGV[4 * i - 1] == 'log' and state[i] or math.floor(state[i] * 1000)
            result[#result + 1] = oldest[i] < 0 and -1 or math.floor(oldest[i] * 1000)
        end
        return result
        """)

    /// This process's random tag, and requests numbered under it.
    private static let process = String(UInt64.random(in: 0...UInt64.max), radix: 36)
    private static let requests = Atomic<UInt64>(0)

    /// A log entry's member: unique across processes by the random tag, within one by the counter (a UUID's
    /// formatting was 2 % of a cached read's CPU).
    static func requestID() -> String {
        "\(process)-\(requests.wrappingAdd(1, ordering: .relaxed).newValue)"
    }

    /// The Redis key of `check`.
    func key(_ check: RateLimitCheck) -> String {
        String(
            concatenating: "{", prefix[...], ":rl}:", check.key[...], ":", check.policy.name[...],
            check.policy.algorithm == .gcra ? ":gcra" : ":log")
    }

    /// Decides all checks atomically in one `EVALSHA`.
    public nonisolated(nonsending) func acquire(_ checks: [RateLimitCheck]) async throws -> RateLimitDecision {
        guard !checks.isEmpty else { return RateLimitDecision(outcomes: [], now: Date().timeIntervalSince1970) }
        return try decision(for: checks, from: try await client.run(scriptCall(checks)))
    }

    /// Decides and makes `read` in one pipeline — one round trip — when the read's provider has Redis chained
    /// reads on this client (`RedisChainedReads`); otherwise decides, then reads.
    public nonisolated(nonsending) func acquire(_ checks: [RateLimitCheck], along read: ChainedRead) async throws -> (
        RateLimitDecision, PrefetchedRead?
    ) {
        guard !checks.isEmpty, let cache = read.provider as? any RedisChainedReads, cache.redisClient === client,
            let readCall = cache.chainedReadCall(read)
        else {
            return try await acquireThenRead(checks, along: read)
        }
        let replies = try await client.run([scriptCall(checks), readCall])
        guard replies.count == 2 else { throw RedisError.unexpectedReply("pipeline returned \(replies.count) replies") }
        let decision = try decision(for: checks, from: replies[0])
        let result: Result<ChainedRead.Found, any Error>
        do { result = .success(try cache.found(byChainedRead: replies[1], of: read)) } catch {
            result = .failure(error)
        }
        return (decision, PrefetchedRead(read: read, result: result))
    }

    /// The script call deciding `checks`.
    private func scriptCall(_ checks: [RateLimitCheck]) -> RedisScriptCall {
        var keys: [String] = []
        var arguments: [RedisArgument] = []
        keys.reserveCapacity(checks.count)
        arguments.reserveCapacity(4 * checks.count + 1)
        for check in checks {
            keys.append(key(check))
            arguments.append(RedisArgument(check.policy.limit))
            arguments.append(RedisArgument(check.policy.window * 1000))
            arguments.append(check.policy.algorithm == .gcra ? "gcra" : "log")
            arguments.append(RedisArgument(check.policy.shadow ? 0 : 1))
        }
        arguments.append(RedisArgument(Self.requestID()))
        return RedisScriptCall(Self.script, keys: keys, arguments: arguments)
    }

    /// The decision in the script's reply (an error reply is thrown).
    private func decision(for checks: [RateLimitCheck], from reply: RESPValue) throws -> RateLimitDecision {
        if case .error(let message) = reply { throw RedisError.server(message) }
        guard let values = reply.array, values.count == 2 + 4 * checks.count, let nowMicroseconds = values[1].int
        else {
            throw RedisError.unexpectedReply("rate-limit script returned \(reply)")
        }
        let now = Double(nowMicroseconds) / 1e6
        let outcomes = checks.enumerated().map { index, check -> RateLimitOutcome in
            let charged = values[3 + 4 * index].int == 1
            let state = values[4 + 4 * index].int ?? 0
            let oldest = values[5 + 4 * index].int ?? -1
            switch check.policy.algorithm {
            case .slidingLog:
                return .slidingLog(
                    check.policy, count: Int(state), oldest: oldest < 0 ? nil : Double(oldest) / 1e6, now: now,
                    charged: charged)
            case .gcra:
                return .gcra(check.policy, arrival: Double(state) / 1e6, now: now, charged: charged)
            }
        }
        return RateLimitDecision(outcomes: outcomes, now: now)
    }
}
