import EnvoyFramework
import Foundation
import Synchronization

/// `RateLimitStore` on Redis: every check of a request decided by one script in one round trip, on Redis's
/// clock so that instances with skewed clocks agree. Sliding-log policies keep a sorted set per key
/// (`prefix:rl:{TAG}:KEY:POLICY:log`), GCRA policies one timestamp (`…:gcra`). The hash tag is the check's tag —
/// a user's id, which the user's cache keys carry too, or an address — so on a Redis Cluster a user's limits and
/// cached entries share a slot and the limits of many users spread over every master.
///
/// On a cluster, a request whose checks fall in several slots (a user and an IP policy, or a global one) is
/// decided by one script per slot, all sent at once; when any slot refuses, the charges the others made are taken
/// back. Never over-admitted: a concurrent request may, for that moment, see the charge of one that is then
/// refused (and be refused itself where it had room — under-admission by at most the requests in flight).
public struct RedisRateLimitStore: RateLimitStore, CustomStringConvertible {
    /// `redis ENDPOINT` (no credentials).
    public var description: String { "redis \(client.configuration.endpoint)" }

    let client: RedisClient
    let prefix: String

    /// A store on `client`, keys under `prefix:rl:`.
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

    // The decision script's reading half: the same reply, nothing removed, nothing charged.
    static let peekScript = RedisScript(
        """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
        local result = {1, math.floor(now * 1000)}
        for i = 1, #KEYS do
            local limit, window = tonumber(ARGV[4 * i - 3]), tonumber(ARGV[4 * i - 2])
            local state, oldest, allowed
            if ARGV[4 * i - 1] == 'log' then
                state = redis.call('ZCOUNT', KEYS[i], '(' .. (now - window), '+inf')
                local first = redis.call('ZRANGEBYSCORE', KEYS[i], '(' .. (now - window), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
                oldest = first[2] and tonumber(first[2]) or -1
                allowed = state < limit
            else
                state = math.max(tonumber(redis.call('GET', KEYS[i]) or '0'), now)
                oldest = -1
                allowed = now >= state + window / limit - window - 0.000001
            end
            result[#result + 1] = allowed and 1 or 0
            result[#result + 1] = 0
            result[#result + 1] = ARGV[4 * i - 1] == 'log' and state or math.floor(state * 1000)
            result[#result + 1] = oldest < 0 and -1 or math.floor(oldest * 1000)
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
            concatenating: prefix[...], ":rl:{", check.tag[...], "}:", check.key[...], ":", check.policy.name[...],
            check.policy.algorithm == .gcra ? ":gcra" : ":log")
    }

    /// Decides all checks atomically in one `EVALSHA` (on a cluster, one per slot; see the type's note).
    public nonisolated(nonsending) func acquire(_ checks: [RateLimitCheck]) async throws -> RateLimitDecision {
        guard !checks.isEmpty else { return RateLimitDecision(outcomes: [], now: Date().timeIntervalSince1970) }
        if checks.count > 1, try await client.isClusterMode(), let groups = slotGroups(checks) {
            return try await acquire(checks, across: groups)
        }
        let requestID = Self.requestID()
        return try result(for: checks, from: try await client.run(scriptCall(checks, requestID: requestID)))
            .decision(checks)
    }

    /// The checks' indices by the hash slot of their keys; nil when they all share one.
    private func slotGroups(_ checks: [RateLimitCheck]) -> [[Int]]? {
        guard checks.count > 1 else { return nil }
        var groups: [Int: [Int]] = [:]
        for (index, check) in checks.enumerated() { groups[RedisKeySlot.of(key(check)), default: []].append(index) }
        return groups.count > 1 ? groups.values.sorted { $0[0] < $1[0] } : nil
    }

    /// Decides checks spread over several slots: one script per slot, sent at once (each charges only when all its
    /// own checks admit); when any refuses, the charges the others made are taken back, so the request is
    /// recorded everywhere or nowhere.
    private nonisolated(nonsending) func acquire(_ checks: [RateLimitCheck], across groups: [[Int]])
        async throws -> RateLimitDecision
    {
        let requestID = Self.requestID()
        let parts = groups.map { $0.map { checks[$0] } }
        let replies = try await client.run(parts.map { scriptCall($0, requestID: requestID) })
        guard replies.count == parts.count else {
            throw RedisError.unexpectedReply("pipeline returned \(replies.count) replies")
        }
        var results = try zip(parts, replies).map { part, reply in try result(for: part, from: reply) }
        if !results.allSatisfy(\.admitted) {
            var releases: [RedisScriptCall] = []
            for (number, part) in parts.enumerated() where results[number].admitted {
                var keys: [String] = []
                var arguments: [RedisArgument] = [RedisArgument(requestID)]
                for (offset, check) in part.enumerated() where results[number].checks[offset].charged {
                    keys.append(key(check))
                    arguments.append(check.policy.algorithm == .gcra ? "gcra" : "log")
                    arguments.append(RedisArgument(check.policy.window * 1000 / Double(check.policy.limit)))
                    results[number].checks[offset].charged = false
                }
                if !keys.isEmpty { releases.append(RedisScriptCall(Self.release, keys: keys, arguments: arguments)) }
            }
            for reply in try await client.run(releases) {
                if case .error(let message) = reply { throw RedisError.server(message) }
            }
        }
        var outcomes = [RateLimitOutcome?](repeating: nil, count: checks.count)
        for (number, group) in groups.enumerated() {
            let decided = results[number].decision(parts[number]).outcomes
            for (offset, index) in group.enumerated() { outcomes[index] = decided[offset] }
        }
        return RateLimitDecision(outcomes: outcomes.compactMap { $0 }, now: results.map(\.now).max() ?? 0)
    }

    /// Takes back charges of request ARGV[1]: per key, its kind and (GCRA) the emission interval in ms it added.
    static let release = RedisScript(
        """
        for i = 1, #KEYS do
            if ARGV[2 * i] == 'log' then
                redis.call('ZREM', KEYS[i], ARGV[1])
            else
                local arrival = tonumber(redis.call('GET', KEYS[i]) or '')
                local ttl = redis.call('PTTL', KEYS[i])
                if arrival and ttl > 0 then
                    local back = arrival - tonumber(ARGV[2 * i + 1])
                    if ttl - tonumber(ARGV[2 * i + 1]) > 0 then
                        redis.call('SET', KEYS[i], tostring(back), 'PX', math.ceil(ttl - tonumber(ARGV[2 * i + 1])))
                    else
                        redis.call('DEL', KEYS[i])
                    end
                end
            end
        end
        return 1
        """)

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
        if checks.count > 1, try await client.isClusterMode(), slotGroups(checks) != nil {
            return try await acquireThenRead(checks, along: read)
        }
        let replies = try await client.run([scriptCall(checks, requestID: Self.requestID()), readCall])
        guard replies.count == 2 else { throw RedisError.unexpectedReply("pipeline returned \(replies.count) replies") }
        let decision = try result(for: checks, from: replies[0]).decision(checks)
        let result: Result<ChainedRead.Found, any Error>
        do { result = .success(try cache.found(byChainedRead: replies[1], of: read)) } catch {
            result = .failure(error)
        }
        return (decision, PrefetchedRead(read: read, result: result))
    }

    /// The script call deciding `checks`, recording the request as `requestID`.
    private func scriptCall(_ checks: [RateLimitCheck], requestID: String, script: RedisScript = script)
        -> RedisScriptCall
    {
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
        arguments.append(RedisArgument(requestID))
        return RedisScriptCall(script, keys: keys, arguments: arguments)
    }

    /// What the script said of each check, and when.
    private struct ScriptResult {
        struct Check {
            var charged: Bool
            var state: Int64
            var oldest: Int64
        }
        var admitted: Bool
        var now: Double
        var checks: [Check]

        /// The decision on `checks` (the checks the script was given, in order).
        func decision(_ checks: [RateLimitCheck]) -> RateLimitDecision {
            let outcomes = zip(checks, self.checks).map { check, result -> RateLimitOutcome in
                switch check.policy.algorithm {
                case .slidingLog:
                    return .slidingLog(
                        check.policy, count: Int(result.state),
                        oldest: result.oldest < 0 ? nil : Double(result.oldest) / 1e6, now: now,
                        charged: result.charged)
                case .gcra:
                    return .gcra(check.policy, arrival: Double(result.state) / 1e6, now: now, charged: result.charged)
                }
            }
            return RateLimitDecision(outcomes: outcomes, now: now)
        }
    }

    /// The script's reply read (an error reply is thrown).
    private func result(for checks: [RateLimitCheck], from reply: RESPValue) throws -> ScriptResult {
        if case .error(let message) = reply { throw RedisError.server(message) }
        guard let values = reply.array, values.count == 2 + 4 * checks.count, let nowMicroseconds = values[1].int
        else {
            throw RedisError.unexpectedReply("rate-limit script returned \(reply)")
        }
        return ScriptResult(
            admitted: values[0].int == 1, now: Double(nowMicroseconds) / 1e6,
            checks: checks.indices.map { index in
                ScriptResult.Check(
                    charged: values[3 + 4 * index].int == 1, state: values[4 + 4 * index].int ?? 0,
                    oldest: values[5 + 4 * index].int ?? -1)
            })
    }
}

extension RedisRateLimitStore: RateLimitAdministration {
    /// Where resets are recorded for every instance: `prefix:rl:resets`, field `POLICY NUL KEY`, value Unix ms.
    private var resetLog: String { "\(prefix):rl:resets" }

    /// The checks' windows now (one script per slot; a subject's checks share one).
    public func peek(_ checks: [RateLimitCheck]) async throws -> RateLimitDecision {
        guard !checks.isEmpty else { return RateLimitDecision(outcomes: [], now: Date().timeIntervalSince1970) }
        let call = scriptCall(checks, requestID: "peek", script: Self.peekScript)
        return try result(for: checks, from: try await client.run(call)).decision(checks)
    }

    /// Deletes the checks' keys, then records the reset (an hour of resets is kept).
    public func reset(_ checks: [RateLimitCheck]) async throws {
        guard !checks.isEmpty else { return }
        // One DEL: a subject's checks share its tag, so one slot on a cluster.
        let deleted = try await client.send(["DEL"] + checks.map { RedisArgument(key($0)) })
        if case .error(let message) = deleted { throw RedisError.server(message) }
        let now = Int(Date().timeIntervalSince1970 * 1000)
        var command: [RedisArgument] = ["HSET", RedisArgument(resetLog)]
        for check in checks {
            command += [RedisArgument("\(check.policy.name)\u{0}\(check.key)"), RedisArgument(now)]
        }
        let reply = try await client.send(command)
        if case .error(let message) = reply { throw RedisError.server(message) }
    }

    /// The resets recorded since `time`; those older than an hour are dropped.
    public func resets(since time: Double) async throws -> [(policy: String, key: String)] {
        let now = Date().timeIntervalSince1970
        func milliseconds(_ value: RESPValue) -> Double { value.string.flatMap(Double.init) ?? 0 }
        return try await client.liveFields(of: resetLog) { _, at in milliseconds(at) / 1000 >= now - 3600 }
            .compactMap { id, at in
                let parts = id.split(separator: "\u{0}", maxSplits: 1).map(String.init)
                return milliseconds(at) / 1000 >= time && parts.count == 2 ? (parts[0], parts[1]) : nil
            }
    }
}
