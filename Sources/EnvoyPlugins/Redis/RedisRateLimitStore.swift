import EnvoyFramework
import Foundation

/// `RateLimitStore` on Redis: one sorted set per policy and key (an exact sliding log), every check of a
/// request decided by one script in one round trip, on Redis's clock so that instances agree.
public struct RedisRateLimitStore: RateLimitStore {
    let client: RedisClient
    let prefix: String

    /// A store on `client`, keys `prefix:rl:{key}:policy`.
    public init(client: RedisClient, prefix: String) {
        self.client = client
        self.prefix = prefix
    }

    static let script = RedisScript(
        """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local n = #KEYS
        local counts, oldest = {}, {}
        local admitted = 1
        for i = 1, n do
            local limit = tonumber(ARGV[2 * i - 1])
            local window = tonumber(ARGV[2 * i])
            redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
            counts[i] = redis.call('ZCARD', KEYS[i])
            local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
            oldest[i] = first[2] and tonumber(first[2]) or -1
            if counts[i] >= limit then admitted = 0 end
        end
        local result = {admitted, now}
        for i = 1, n do
            if admitted == 1 then
                redis.call('ZADD', KEYS[i], now, ARGV[2 * n + 1])
                redis.call('PEXPIRE', KEYS[i], ARGV[2 * i])
                if oldest[i] < 0 then oldest[i] = now end
            end
            result[#result + 1] = counts[i]
            result[#result + 1] = oldest[i]
        end
        return result
        """)

    /// Decides all checks atomically in one `EVALSHA`.
    public func acquire(_ checks: [RateLimitCheck]) async throws -> RateLimitDecision {
        guard !checks.isEmpty else { return RateLimitDecision(outcomes: [], now: Date().timeIntervalSince1970) }
        let keys = checks.map { "\(prefix):rl:{\($0.key)}:\($0.policy.name)" }
        var arguments: [RedisArgument] = []
        for check in checks {
            arguments.append(RedisArgument(check.policy.limit))
            arguments.append(RedisArgument(Int((check.policy.window * 1000).rounded(.up))))
        }
        arguments.append(RedisArgument(UUID().uuidString))
        let reply = try await client.run(Self.script, keys: keys, arguments: arguments)
        guard let values = reply.array?.compactMap(\.int), values.count == 2 + 2 * checks.count else {
            throw RedisError.unexpectedReply("rate-limit script returned \(reply)")
        }
        let admitted = values[0] == 1
        let now = Double(values[1]) / 1000
        let outcomes = checks.enumerated().map { index, check in
            let before = Int(values[2 + 2 * index])
            let oldest = values[3 + 2 * index]
            let counted = before + (admitted ? 1 : 0)
            return RateLimitOutcome(
                policy: check.policy,
                allowed: before < check.policy.limit,
                remaining: max(0, check.policy.limit - counted),
                resetAfter: oldest < 0 ? 0 : max(0, Double(oldest) / 1000 + check.policy.window - now))
        }
        return RateLimitDecision(outcomes: outcomes, now: now)
    }
}
