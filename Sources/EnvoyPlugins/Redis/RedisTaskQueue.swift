import EnvoyFramework
import Foundation

/// `TaskQueue` on Redis. Each queue's keys share the hash tag `{prefix:q:NAME}`:
/// `:ready` (list of ids, oldest at the right), `:delayed` (zset id → run-at ms), `:leases` (zset id → lease end ms),
/// `:dead` (zset id → death ms), `:task:ID` (hash: type, payload, attempts, max, token, history, created),
/// `:dedup:KEY` (id, expiring), `:wake` (a one-element list that blocked workers `BLPOP`).
/// The set `prefix:queues` names every queue; `prefix:wake` wakes workers that take from every queue. Times come from Redis (`TIME`), so workers' clocks do not matter.
public struct RedisTaskQueue: TaskQueue {
    let client: RedisClient
    let prefix: String
    /// How long a deduplication key is remembered.
    public let deduplicationWindow: Duration

    /// A queue on `client` with keys under `prefix`.
    public init(client: RedisClient, prefix: String, deduplicationWindow: Duration = .seconds(7 * 86_400)) {
        self.client = client
        self.prefix = prefix
        self.deduplicationWindow = deduplicationWindow
    }

    struct Keys {
        let tag: String
        init(prefix: String, queue: String) { tag = "{\(prefix):q:\(queue)}" }
        var ready: String { "\(tag):ready" }
        var delayed: String { "\(tag):delayed" }
        var leases: String { "\(tag):leases" }
        var dead: String { "\(tag):dead" }
        var wake: String { "\(tag):wake" }
        var taskPrefix: String { "\(tag):task:" }
        func task(_ id: String) -> String { taskPrefix + id }
        func dedup(_ key: String) -> String { "\(tag):dedup:\(key)" }
    }

    private static let clock =
        "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    private static let appendHistory = """
        local function remember(key, entry)
            local history = cjson.decode(redis.call('HGET', key, 'history') or '[]')
            history[#history + 1] = entry
            redis.call('HSET', key, 'history', cjson.encode(history))
        end

        """
    private static let checkToken =
        "if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] or ARGV[2] == '' then return 0 end\n"

    // KEYS: task, ready, delayed, wake, [dedup]; ARGV: id, type, payload, max, delay ms, dedup ttl ms
    static let enqueueScript = RedisScript(
        clock + """
            if #KEYS >= 5 and not redis.call('SET', KEYS[5], ARGV[1], 'NX', 'PX', ARGV[6]) then return 0 end
            redis.call('HSET', KEYS[1], 'type', ARGV[2], 'payload', ARGV[3], 'attempts', 0, 'max', ARGV[4],
                'history', '[]', 'created', now, 'token', '')
            if tonumber(ARGV[5]) > 0 then
                redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), ARGV[1])
            else
                redis.call('LPUSH', KEYS[2], ARGV[1])
                redis.call('LPUSH', KEYS[4], 1)
                redis.call('LTRIM', KEYS[4], 0, 0)
            end
            return 1
            """)

    // KEYS: ready, delayed, leases, dead; ARGV: task prefix, lease ms, token
    static let claimScript = RedisScript(
        clock + appendHistory + """
            for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)) do
                redis.call('ZREM', KEYS[2], id)
                redis.call('LPUSH', KEYS[1], id)
            end
            for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)) do
                redis.call('ZREM', KEYS[3], id)
                local key = ARGV[1] .. id
                local attempts = tonumber(redis.call('HGET', key, 'attempts') or '0')
                remember(key, 'attempt ' .. attempts .. ': lease expired (worker stopped or hung)')
                redis.call('HSET', key, 'token', '')
                if attempts >= tonumber(redis.call('HGET', key, 'max') or '1') then
                    redis.call('ZADD', KEYS[4], now, id)
                    redis.call('HSET', key, 'died', now)
                else
                    redis.call('RPUSH', KEYS[1], id)
                end
            end
            while true do
                local id = redis.call('RPOP', KEYS[1])
                if not id then return false end
                local key = ARGV[1] .. id
                if redis.call('EXISTS', key) == 1 then
                    local attempts = redis.call('HINCRBY', key, 'attempts', 1)
                    redis.call('HSET', key, 'token', ARGV[3])
                    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), id)
                    local fields = redis.call('HMGET', key, 'type', 'payload', 'max')
                    return {id, fields[1], fields[2], attempts, tonumber(fields[3])}
                end
            end
            """)

    // KEYS: task, leases; ARGV: id, token, lease ms
    static let renewScript = RedisScript(
        clock + checkToken + "redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[3]), ARGV[1])\nreturn 1")

    // KEYS: task, leases; ARGV: id, token
    static let completeScript = RedisScript(
        checkToken + "redis.call('ZREM', KEYS[2], ARGV[1])\nredis.call('DEL', KEYS[1])\nreturn 1")

    // KEYS: task, leases, delayed; ARGV: id, token, delay ms, entry
    static let retryScript = RedisScript(
        clock + appendHistory + checkToken + """
            redis.call('ZREM', KEYS[2], ARGV[1])
            redis.call('HSET', KEYS[1], 'token', '')
            remember(KEYS[1], ARGV[4])
            redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
            return 1
            """)

    // KEYS: task, leases, ready, wake; ARGV: id, token
    static let releaseScript = RedisScript(
        checkToken + """
            redis.call('ZREM', KEYS[2], ARGV[1])
            redis.call('HINCRBY', KEYS[1], 'attempts', -1)
            redis.call('HSET', KEYS[1], 'token', '')
            redis.call('RPUSH', KEYS[3], ARGV[1])
            redis.call('LPUSH', KEYS[4], 1)
            redis.call('LTRIM', KEYS[4], 0, 0)
            return 1
            """)

    // KEYS: task, leases, dead; ARGV: id, token, entry
    static let buryScript = RedisScript(
        clock + appendHistory + checkToken + """
            redis.call('ZREM', KEYS[2], ARGV[1])
            redis.call('HSET', KEYS[1], 'token', '', 'died', now)
            remember(KEYS[1], ARGV[3])
            redis.call('ZADD', KEYS[3], now, ARGV[1])
            return 1
            """)

    // KEYS: task, dead, ready, wake; ARGV: id
    static let reviveScript = RedisScript(
        """
        if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
        redis.call('HSET', KEYS[1], 'attempts', 0, 'token', '')
        redis.call('HDEL', KEYS[1], 'died')
        redis.call('LPUSH', KEYS[3], ARGV[1])
        redis.call('LPUSH', KEYS[4], 1)
        redis.call('LTRIM', KEYS[4], 0, 0)
        return 1
        """)

    /// Stores the task (and its deduplication key) in one script.
    public func enqueue(_ task: NewTask) async throws -> EnqueueResult {
        let keys = Keys(prefix: prefix, queue: task.queue)
        let id = UUID().uuidString.lowercased()
        var scriptKeys = [keys.task(id), keys.ready, keys.delayed, keys.wake]
        if let dedup = task.deduplicationKey { scriptKeys.append(keys.dedup(dedup)) }
        let delay = max(0, Int(((task.runAt ?? 0) - Date().timeIntervalSince1970) * 1000))
        try await client.send("SADD", RedisArgument("\(prefix):queues"), RedisArgument(task.queue))
        let stored = try await client.run(
            Self.enqueueScript, keys: scriptKeys,
            arguments: [
                RedisArgument(id), RedisArgument(task.type), RedisArgument(bytes: task.payload),
                RedisArgument(task.maxAttempts), RedisArgument(delay),
                RedisArgument(Int(deduplicationWindow.inSeconds * 1000)),
            ])
        guard stored.int == 1 else { return .duplicate }
        // The task is stored; a lost wake-up only delays it to the next poll, so it must not fail the enqueue.
        _ = try? await client.send("LPUSH", RedisArgument(globalWake), "1")
        _ = try? await client.send("LTRIM", RedisArgument(globalWake), 0, 0)
        return .enqueued(id)
    }

    private var globalWake: String { "\(prefix):wake" }

    /// Claims from the first of `queues` (all known queues when empty) that has a runnable task.
    public func claim(queues: [String], lease: Duration) async throws -> ClaimedTask? {
        for queue in try await resolve(queues) {
            let keys = Keys(prefix: prefix, queue: queue)
            let token = UUID().uuidString.lowercased()
            let reply = try await client.run(
                Self.claimScript, keys: [keys.ready, keys.delayed, keys.leases, keys.dead],
                arguments: [
                    RedisArgument(keys.taskPrefix), RedisArgument(Int(lease.inSeconds * 1000)), RedisArgument(token),
                ])
            guard let fields = reply.array, fields.count == 5 else { continue }
            return ClaimedTask(
                id: fields[0].string ?? "", type: fields[1].string ?? "", queue: queue, payload: fields[2].bytes ?? [],
                attempt: Int(fields[3].int ?? 1), maxAttempts: Int(fields[4].int ?? 1), leaseToken: token)
        }
        return nil
    }

    /// Blocks on the queues' wake lists (on a dedicated connection) until an enqueue or `timeout`.
    public func waitForTasks(queues: [String], timeout: Duration) async {
        let seconds = String(format: "%.3f", max(0.01, timeout.inSeconds))
        let wakeKeys =
            queues.isEmpty
            ? [RedisArgument(globalWake)] : queues.map { RedisArgument(Keys(prefix: prefix, queue: $0).wake) }
        let deadline = timeout + client.configuration.commandTimeout
        do {
            _ = try await client.withDedicatedConnection { connection throws(RedisError) in
                // Shutdown cancels the wait at once; the dedicated connection is then dropped, not reused.
                try await connection.send(["BLPOP"] + wakeKeys + [RedisArgument(seconds)], timeout: deadline)
            }
        } catch {
            try? await Task.sleep(for: timeout)
        }
    }

    /// Extends the lease if the token still holds it.
    public func renew(_ task: ClaimedTask, lease: Duration) async throws -> Bool {
        let keys = Keys(prefix: prefix, queue: task.queue)
        return try await client.run(
            Self.renewScript, keys: [keys.task(task.id), keys.leases],
            arguments: [
                RedisArgument(task.id), RedisArgument(task.leaseToken), RedisArgument(Int(lease.inSeconds * 1000)),
            ]
        ).int == 1
    }

    /// Deletes the task if the token still holds it.
    public func complete(_ task: ClaimedTask) async throws {
        let keys = Keys(prefix: prefix, queue: task.queue)
        try await settle(task, Self.completeScript, [keys.task(task.id), keys.leases], [])
    }

    /// Schedules another run.
    public func retry(_ task: ClaimedTask, after delay: Duration, error: String) async throws {
        let keys = Keys(prefix: prefix, queue: task.queue)
        try await settle(
            task, Self.retryScript, [keys.task(task.id), keys.leases, keys.delayed],
            [
                RedisArgument(Int(delay.inSeconds * 1000)),
                RedisArgument("attempt \(task.attempt): \(error.prefix(2000))"),
            ])
    }

    /// Hands the task back without counting the attempt.
    public func release(_ task: ClaimedTask) async throws {
        let keys = Keys(prefix: prefix, queue: task.queue)
        try await settle(task, Self.releaseScript, [keys.task(task.id), keys.leases, keys.ready, keys.wake], [])
    }

    /// Moves the task to the dead-letter set.
    public func bury(_ task: ClaimedTask, error: String) async throws {
        let keys = Keys(prefix: prefix, queue: task.queue)
        try await settle(
            task, Self.buryScript, [keys.task(task.id), keys.leases, keys.dead],
            [RedisArgument("attempt \(task.attempt): \(error.prefix(2000))")])
    }

    /// Counts per known queue.
    public func stats() async throws -> [QueueStats] {
        var result: [QueueStats] = []
        for queue in try await resolve([]) {
            let keys = Keys(prefix: prefix, queue: queue)
            let ready = try await client.send("LLEN", RedisArgument(keys.ready)).int ?? 0
            let delayed = try await client.send("ZCARD", RedisArgument(keys.delayed)).int ?? 0
            let leased = try await client.send("ZCARD", RedisArgument(keys.leases)).int ?? 0
            let dead = try await client.send("ZCARD", RedisArgument(keys.dead)).int ?? 0
            var age = 0.0
            if let oldest = try await client.send("LINDEX", RedisArgument(keys.ready), "-1").string,
                let created = try await client.send("HGET", RedisArgument(keys.task(oldest)), "created").int
            {
                age = max(0, Date().timeIntervalSince1970 - Double(created) / 1000)
            }
            result.append(
                QueueStats(
                    queue: queue, ready: Int(ready), delayed: Int(delayed), inFlight: Int(leased), dead: Int(dead),
                    oldestReadyAge: age))
        }
        return result
    }

    /// Dead tasks across queues, newest first.
    public func deadTasks(limit: Int) async throws -> [DeadTask] {
        var dead: [DeadTask] = []
        for queue in try await resolve([]) {
            let keys = Keys(prefix: prefix, queue: queue)
            let ids =
                try await client.send("ZREVRANGE", RedisArgument(keys.dead), 0, RedisArgument(limit - 1)).array ?? []
            for id in ids.compactMap(\.string) {
                let fields =
                    try await client.send("HMGET", RedisArgument(keys.task(id)), "type", "attempts", "history", "died")
                    .array ?? []
                guard fields.count == 4 else { continue }
                let history =
                    (try? JSONDecoder().decode([String].self, from: Data((fields[2].string ?? "[]").utf8))) ?? []
                dead.append(
                    DeadTask(
                        id: id, type: fields[0].string ?? "", queue: queue, attempts: Int(fields[1].int ?? 0),
                        reason: history.last ?? "unknown", history: history, diedAt: Double(fields[3].int ?? 0) / 1000))
            }
        }
        return Array(dead.sorted { $0.diedAt > $1.diedAt }.prefix(limit))
    }

    /// Requeues dead tasks with fresh attempts.
    public func retryDead(ids: [String]?) async throws -> Int {
        var count = 0
        for queue in try await resolve([]) {
            let keys = Keys(prefix: prefix, queue: queue)
            let dead =
                try await client.send("ZRANGE", RedisArgument(keys.dead), 0, -1).array?.compactMap(\.string) ?? []
            for id in dead where ids?.contains(id) ?? true {
                let revived = try await client.run(
                    Self.reviveScript, keys: [keys.task(id), keys.dead, keys.ready, keys.wake],
                    arguments: [RedisArgument(id)])
                count += Int(revived.int ?? 0)
            }
        }
        return count
    }

    private func settle(_ task: ClaimedTask, _ script: RedisScript, _ keys: [String], _ extra: [RedisArgument])
        async throws
    {
        let reply = try await client.run(
            script, keys: keys, arguments: [RedisArgument(task.id), RedisArgument(task.leaseToken)] + extra)
        guard reply.int == 1 else { throw LeaseLost(taskID: task.id) }
    }

    private func resolve(_ queues: [String]) async throws -> [String] {
        if !queues.isEmpty { return queues }
        return (try await client.send("SMEMBERS", RedisArgument("\(prefix):queues")).array?.compactMap(\.string) ?? [])
            .sorted()
    }
}
