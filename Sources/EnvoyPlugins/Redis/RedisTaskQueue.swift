import EnvoyFramework
import Foundation

/// `TaskQueue` on Redis. Each queue's keys share the hash tag `{prefix:q:NAME}`, and every script is given
/// every key it touches in `KEYS`, so a Redis Cluster can hold a queue in one slot:
/// `:ready` (list of ids, oldest at the right), `:delayed` (zset id → run-at ms), `:leases` (zset id → lease end
/// ms), `:dead` (zset id → death ms); per-task fields in hashes keyed by id — `:task` (type with the enqueueing
/// span's `traceparent` after 0x1E when traced, max attempts, created ms and payload), `:attempts`, `:token` (the fencing token of the current claim), `:history` (JSON
/// array of failures), `:died`; `:dedup:KEY` (expiring) and `:wake` (a one-element list that idle workers `BLPOP`).
/// The set `prefix:queues` names every queue; `prefix:wake` wakes workers that take from every queue.
/// Times come from Redis (`TIME`), so workers' clocks do not matter.
public struct RedisTaskQueue: AdministeredTaskQueue, CustomStringConvertible {
    /// `redis ENDPOINT` (no credentials).
    public var description: String { "redis \(client.configuration.endpoint)" }

    let client: RedisClient
    let prefix: String
    /// How long a deduplication key is remembered.
    public let deduplicationWindow: Duration
    /// How long an enqueue waits for a replica to hold the task, where the queue's master has replicas.
    public let replicationTimeout: Duration

    /// A queue on `client` with keys under `prefix`.
    public init(
        client: RedisClient, prefix: String, deduplicationWindow: Duration = .seconds(7 * 86_400),
        replicationTimeout: Duration = .milliseconds(200)
    ) {
        self.client = client
        self.prefix = prefix
        self.deduplicationWindow = deduplicationWindow
        self.replicationTimeout = replicationTimeout
    }

    struct Keys {
        let tag: String
        init(prefix: String, queue: String) { tag = "{\(prefix):q:\(queue)}" }
        var ready: String { "\(tag):ready" }
        var delayed: String { "\(tag):delayed" }
        var leases: String { "\(tag):leases" }
        var dead: String { "\(tag):dead" }
        var wake: String { "\(tag):wake" }
        var task: String { "\(tag):task" }
        var attempts: String { "\(tag):attempts" }
        var token: String { "\(tag):token" }
        var history: String { "\(tag):history" }
        var died: String { "\(tag):died" }
        func dedup(_ key: String) -> String { "\(tag):dedup:\(key)" }
    }

    /// Reads a `:task` record: type (then 0x1E and a `traceparent`, when traced), max attempts and created time (ms),
    /// separated by 0x1F, then the payload.
    static func parse(_ record: [UInt8]) -> (
        type: String, trace: String?, maxAttempts: Int, created: Double, payload: [UInt8]
    )? {
        var fields: [String] = []
        var start = 0
        for (index, byte) in record.enumerated() where byte == 0x1F {
            fields.append(String(decoding: record[start..<index], as: UTF8.self))
            start = index + 1
            if fields.count == 3 { break }
        }
        guard fields.count == 3, let maxAttempts = Int(fields[1]), let created = Double(fields[2]) else { return nil }
        let typeAndTrace = fields[0].split(separator: "\u{1E}", maxSplits: 1)
        return (
            String(typeAndTrace.first ?? ""), typeAndTrace.count == 2 ? String(typeAndTrace[1]) : nil, maxAttempts,
            created, Array(record[start...])
        )
    }

    private static let clock =
        "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    // remember(historyKey, id, entry) appends to a task's failure history.
    private static let remember = """
        local function remember(key, id, entry)
            local history = cjson.decode(redis.call('HGET', key, id) or '[]')
            history[#history + 1] = entry
            redis.call('HSET', key, id, cjson.encode(history))
        end

        """
    // KEYS[1] is always `:token`; ARGV[1] the id, ARGV[2] the claim's token.
    private static let checkToken =
        "if ARGV[2] == '' or redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end\n"

    // KEYS: task, ready, delayed, wake, [dedup]; ARGV: id, delay ms, dedup ttl ms, type, max, payload.
    // A new task has no `:attempts` or `:history` field: absent reads as 0 and [] wherever they are read.
    static let enqueueScript = RedisScript(
        clock + """
            if #KEYS >= 5 and not redis.call('SET', KEYS[5], ARGV[1], 'NX', 'PX', ARGV[3]) then return 0 end
            redis.call('HSET', KEYS[1], ARGV[1], ARGV[4] .. '\\031' .. ARGV[5] .. '\\031' .. now .. '\\031' .. ARGV[6])
            if tonumber(ARGV[2]) > 0 then
                redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])
            else
                redis.call('LPUSH', KEYS[2], ARGV[1])
                if redis.call('LLEN', KEYS[4]) == 0 then redis.call('LPUSH', KEYS[4], 1) end
            end
            return 1
            """)

    // KEYS: ready, delayed, leases, dead, task, attempts, token, history, died; ARGV: lease ms, token
    static let claimScript = RedisScript(
        clock + remember + """
            for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)) do
                redis.call('ZREM', KEYS[2], id)
                redis.call('LPUSH', KEYS[1], id)
            end
            for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)) do
                redis.call('ZREM', KEYS[3], id)
                local attempts = tonumber(redis.call('HGET', KEYS[6], id) or '0')
                remember(KEYS[8], id, 'attempt ' .. attempts .. ': lease expired (worker stopped or hung)')
                redis.call('HDEL', KEYS[7], id)
                local record = redis.call('HGET', KEYS[5], id) or ''
                local maxAttempts = tonumber(string.match(record, '^[^\\031]*\\031(%d+)') or '1')
                if attempts >= maxAttempts then
                    redis.call('ZADD', KEYS[4], now, id)
                    redis.call('HSET', KEYS[9], id, now)
                else
                    redis.call('RPUSH', KEYS[1], id)
                end
            end
            while true do
                local id = redis.call('RPOP', KEYS[1])
                if not id then return false end
                local record = redis.call('HGET', KEYS[5], id)
                if record then
                    local attempts = redis.call('HINCRBY', KEYS[6], id, 1)
                    redis.call('HSET', KEYS[7], id, ARGV[2])
                    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[1]), id)
                    return {id, record, attempts}
                end
            end
            """)

    // KEYS: token, leases; ARGV: id, token, lease ms
    static let renewScript = RedisScript(
        clock + checkToken + "redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[3]), ARGV[1])\nreturn 1")

    // KEYS: token, leases, task, attempts, history, died; ARGV: id, token
    static let completeScript = RedisScript(
        checkToken + """
            redis.call('ZREM', KEYS[2], ARGV[1])
            for i = 1, 6 do if i ~= 2 then redis.call('HDEL', KEYS[i], ARGV[1]) end end
            return 1
            """)

    // KEYS: token, leases, delayed, history; ARGV: id, token, delay ms, entry
    static let retryScript = RedisScript(
        clock + remember + checkToken + """
            redis.call('ZREM', KEYS[2], ARGV[1])
            redis.call('HDEL', KEYS[1], ARGV[1])
            remember(KEYS[4], ARGV[1], ARGV[4])
            redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
            return 1
            """)

    // KEYS: token, leases, ready, wake, attempts; ARGV: id, token
    static let releaseScript = RedisScript(
        checkToken + """
            redis.call('ZREM', KEYS[2], ARGV[1])
            redis.call('HINCRBY', KEYS[5], ARGV[1], -1)
            redis.call('HDEL', KEYS[1], ARGV[1])
            redis.call('RPUSH', KEYS[3], ARGV[1])
            redis.call('LPUSH', KEYS[4], 1)
            redis.call('LTRIM', KEYS[4], 0, 0)
            return 1
            """)

    // KEYS: token, leases, dead, history, died; ARGV: id, token, entry
    static let buryScript = RedisScript(
        clock + remember + checkToken + """
            redis.call('ZREM', KEYS[2], ARGV[1])
            redis.call('HDEL', KEYS[1], ARGV[1])
            redis.call('HSET', KEYS[5], ARGV[1], now)
            remember(KEYS[4], ARGV[1], ARGV[3])
            redis.call('ZADD', KEYS[3], now, ARGV[1])
            return 1
            """)

    // KEYS: dead, attempts, died, ready, wake; ARGV: id
    static let reviveScript = RedisScript(
        """
        if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
        redis.call('HSET', KEYS[2], ARGV[1], 0)
        redis.call('HDEL', KEYS[3], ARGV[1])
        redis.call('LPUSH', KEYS[4], ARGV[1])
        redis.call('LPUSH', KEYS[5], 1)
        redis.call('LTRIM', KEYS[5], 0, 0)
        return 1
        """)

    /// Stores the task (and its deduplication key) in one script.
    public func enqueue(_ task: NewTask) async throws -> EnqueueResult {
        let keys = Keys(prefix: prefix, queue: task.queue)
        let id = UUID.random().uuidString.lowercased()
        var scriptKeys = [keys.task, keys.ready, keys.delayed, keys.wake]
        if let dedup = task.deduplicationKey { scriptKeys.append(keys.dedup(dedup)) }
        let delay = max(0, Int(((task.runAt ?? 0) - Date().timeIntervalSince1970) * 1000))
        let store = RedisScriptCall(
            Self.enqueueScript, keys: scriptKeys,
            arguments: [
                RedisArgument(id), RedisArgument(delay), RedisArgument(Int(deduplicationWindow.inSeconds * 1000)),
                RedisArgument(task.type + (task.traceContext.map { "\u{1E}" + $0 } ?? "")),
                RedisArgument(task.maxAttempts), RedisArgument(bytes: task.payload),
            ])
        // One round trip: the queue registered, the task stored, workers of every queue woken (the commands run in
        // this order; a wake-up that fails or comes for a duplicate only costs a worker one poll). Where the
        // queue's master has replicas, WAIT on the task's connection holds the answer until one has the task.
        let replicas = await client.replicas(forKey: keys.task)
        let register = RedisPipelineEntry.command([
            "SADD", RedisArgument("\(prefix):queues"), RedisArgument(task.queue),
        ])
        var stored: [RedisPipelineEntry] = [.script(store)]
        let timeout = Int(replicationTimeout.inSeconds * 1000)
        if replicas > 0 { stored.append(.pinned(key: keys.task, ["WAIT", "1", RedisArgument(max(1, timeout))])) }
        let wake: [RedisPipelineEntry] = [
            .command(["LPUSH", RedisArgument(globalWake), "1"]), .command(["LTRIM", RedisArgument(globalWake), 0, 0]),
        ]
        let replies: [RESPValue]
        if client.isCluster {
            // The registry, the task and the global wake list live on different masters, and a pipeline across
            // masters fails as a whole when one master fails, even where the others ran. So: the queue registered
            // first (if that fails nothing is stored and the caller keeps the task), then the task on its own
            // master, then the wake-up, best-effort: a master that does not hold the task can never make a stored
            // task look unstored (which would send it twice, once from the caller's outbox).
            let registered = try await client.pipeline(entries: [register])
            if case .error(let message)? = registered.first { throw RedisError.server(message) }
            replies = registered + (try await client.pipeline(entries: stored))
            _ = try? await client.pipeline(entries: wake)
        } else {
            replies = try await client.pipeline(entries: [register] + stored + wake)
        }
        guard replies.count >= 1 + stored.count else {
            throw RedisError.unexpectedReply("pipeline returned \(replies.count) replies")
        }
        for reply in replies.prefix(2) {
            if case .error(let message) = reply { throw RedisError.server(message) }
        }
        guard replies[1].int == 1 else { return .duplicate }
        // Stored on the master only: a failover now would lose it. The caller keeps it too (the outbox), and the
        // task's deduplication key, if it has one, drops the copy that then arrives.
        if replicas > 0, (replies[2].int ?? 0) < 1 { throw RedisError.notReplicated(replicationTimeout) }
        return .enqueued(id)
    }

    /// The task in whichever known queue holds it.
    public func task(id: String) async throws -> TaskRecord? {
        for queue in try await resolve([]) {
            if let found = try await records([id], in: queue).first { return found }
        }
        return nil
    }

    /// The queue's tasks in `state`: ready oldest first, delayed and in flight by time, dead newest first.
    public func tasks(queue: String, state: TaskState, limit: Int) async throws -> [TaskRecord] {
        let keys = Keys(prefix: prefix, queue: queue)
        let last = RedisArgument(max(0, limit - 1))
        let ids: [RESPValue] =
            switch state {
            case .ready:
                (try await client.send("LRANGE", RedisArgument(keys.ready), RedisArgument(-limit), "-1").array ?? [])
                    .reversed()
            case .delayed: try await client.send("ZRANGE", RedisArgument(keys.delayed), 0, last).array ?? []
            case .inFlight: try await client.send("ZRANGE", RedisArgument(keys.leases), 0, last).array ?? []
            case .dead: try await client.send("ZREVRANGE", RedisArgument(keys.dead), 0, last).array ?? []
            }
        return try await records(ids.compactMap(\.string), in: queue)
    }

    /// The records of `ids` in `queue` (those it holds), with where each is: seven reads each, 100 tasks to a
    /// pipeline.
    func records(_ ids: [String], in queue: String) async throws -> [TaskRecord] {
        var records: [TaskRecord] = []
        for start in stride(from: 0, to: ids.count, by: 100) {
            records += try await batch(Array(ids[start..<min(start + 100, ids.count)]), in: queue)
        }
        return records
    }

    private func batch(_ ids: [String], in queue: String) async throws -> [TaskRecord] {
        let keys = Keys(prefix: prefix, queue: queue)
        var commands: [[RedisArgument]] = []
        commands.reserveCapacity(ids.count * 7)
        for id in ids {
            let field = RedisArgument(id)
            commands += [
                ["HGET", RedisArgument(keys.task), field], ["HGET", RedisArgument(keys.attempts), field],
                ["HGET", RedisArgument(keys.history), field], ["ZSCORE", RedisArgument(keys.leases), field],
                ["ZSCORE", RedisArgument(keys.delayed), field], ["ZSCORE", RedisArgument(keys.dead), field],
                ["HGET", RedisArgument(keys.died), field],
            ]
        }
        let replies = try await client.pipeline(commands)
        guard replies.count == commands.count else {
            throw RedisError.unexpectedReply("pipeline returned \(replies.count) replies")
        }
        func number(_ reply: RESPValue) -> Double? { reply.string.flatMap(Double.init) }
        return ids.enumerated().compactMap { offset, id -> TaskRecord? in
            let reply = Array(replies[(7 * offset)..<(7 * offset + 7)])
            guard let record = reply[0].bytes.flatMap(Self.parse) else { return nil }
            let state: TaskState =
                number(reply[5]) != nil
                ? .dead : number(reply[3]) != nil ? .inFlight : number(reply[4]) != nil ? .delayed : .ready
            let historyText = Data((reply[2].string ?? "[]").utf8)
            return TaskRecord(
                id: id, type: record.type, queue: queue, state: state.rawValue, attempts: Int(reply[1].int ?? 0),
                maxAttempts: record.maxAttempts, payload: record.payload,
                history: (try? JSONDecoder().decode([String].self, from: historyText)) ?? [],
                createdAt: record.created / 1000, leaseUntil: number(reply[3]).map { $0 / 1000 },
                diedAt: number(reply[6]).map { $0 / 1000 })
        }
    }

    /// `HSET envoy:workers ID HEARTBEAT` (one hash: every worker in one slot).
    public func recordHeartbeat(_ heartbeat: WorkerHeartbeat) async throws {
        let reply = try await client.send(
            "HSET", RedisArgument("\(prefix):workers"), RedisArgument(heartbeat.id),
            RedisArgument(bytes: Array(try WorkerHeartbeat.encoder.encode(heartbeat))))
        if case .error(let message) = reply { throw RedisError.server(message) }
    }

    /// `HGETALL envoy:workers`, dropping (`HDEL`) the expired.
    public func liveWorkers() async throws -> [WorkerHeartbeat] {
        let now = Date()
        func heartbeat(_ value: RESPValue) -> WorkerHeartbeat? {
            guard case .bulk(let bytes?) = value else { return nil }
            return try? WorkerHeartbeat.decoder.decode(WorkerHeartbeat.self, from: Data(bytes))
        }
        return try await client.liveFields(of: "\(prefix):workers") { _, value in
            (heartbeat(value)?.expiresAt ?? now) > now
        }.compactMap { heartbeat($0.1) }.sorted { $0.startedAt < $1.startedAt }
    }

    private var globalWake: String { "\(prefix):wake" }

    /// Claims from the first of `queues` (all known queues when empty) that has a runnable task.
    public func claim(queues: [String], lease: Duration) async throws -> ClaimedTask? {
        for queue in try await resolve(queues) {
            let keys = Keys(prefix: prefix, queue: queue)
            let token = UUID.random().uuidString.lowercased()
            let reply = try await client.run(
                Self.claimScript,
                keys: [
                    keys.ready, keys.delayed, keys.leases, keys.dead, keys.task, keys.attempts, keys.token,
                    keys.history,
                    keys.died,
                ],
                arguments: [RedisArgument(Int(lease.inSeconds * 1000)), RedisArgument(token)])
            guard let fields = reply.array, fields.count == 3, let record = fields[1].bytes.flatMap(Self.parse) else {
                continue
            }
            return ClaimedTask(
                id: fields[0].string ?? "", type: record.type, queue: queue, payload: record.payload,
                attempt: Int(fields[2].int ?? 1), maxAttempts: record.maxAttempts, leaseToken: token,
                traceContext: record.trace)
        }
        return nil
    }

    /// Blocks on the queues' wake lists (on a dedicated connection) until an enqueue or `timeout`.
    public func waitForTasks(queues: [String], timeout: Duration) async {
        let seconds = String(format: "%.3f", max(0.01, timeout.inSeconds))
        // One queue: its own wake list. Several: the one every enqueue pushes too, as a cluster holds each queue's
        // wake list in that queue's slot and one BLPOP may not span slots.
        let wakeKey = queues.count == 1 ? Keys(prefix: prefix, queue: queues[0]).wake : globalWake
        let wakeKeys = [RedisArgument(wakeKey)]
        let deadline = timeout + client.configuration.commandTimeout
        do {
            _ = try await client.withDedicatedConnection(forKey: wakeKey) { connection throws(RedisError) in
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
            Self.renewScript, keys: [keys.token, keys.leases],
            arguments: [
                RedisArgument(task.id), RedisArgument(task.leaseToken), RedisArgument(Int(lease.inSeconds * 1000)),
            ]
        ).int == 1
    }

    /// Deletes the task if the token still holds it.
    public func complete(_ task: ClaimedTask) async throws {
        let keys = Keys(prefix: prefix, queue: task.queue)
        try await settle(
            task, Self.completeScript, [keys.token, keys.leases, keys.task, keys.attempts, keys.history, keys.died], [])
    }

    /// Schedules another run.
    public func retry(_ task: ClaimedTask, after delay: Duration, error: String) async throws {
        let keys = Keys(prefix: prefix, queue: task.queue)
        try await settle(
            task, Self.retryScript, [keys.token, keys.leases, keys.delayed, keys.history],
            [
                RedisArgument(Int(delay.inSeconds * 1000)),
                RedisArgument("attempt \(task.attempt): \(error.prefix(2000))"),
            ])
    }

    /// Hands the task back without counting the attempt.
    public func release(_ task: ClaimedTask) async throws {
        let keys = Keys(prefix: prefix, queue: task.queue)
        try await settle(task, Self.releaseScript, [keys.token, keys.leases, keys.ready, keys.wake, keys.attempts], [])
    }

    /// Moves the task to the dead-letter set.
    public func bury(_ task: ClaimedTask, error: String) async throws {
        let keys = Keys(prefix: prefix, queue: task.queue)
        try await settle(
            task, Self.buryScript, [keys.token, keys.leases, keys.dead, keys.history, keys.died],
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
                let record = try await client.send("HGET", RedisArgument(keys.task), RedisArgument(oldest)).bytes
                    .flatMap(Self.parse)
            {
                age = max(0, Date().timeIntervalSince1970 - record.created / 1000)
            }
            result.append(
                QueueStats(
                    queue: queue, ready: Int(ready), delayed: Int(delayed), inFlight: Int(leased), dead: Int(dead),
                    oldestReadyAge: age))
        }
        return result
    }

    /// Dead tasks across queues, newest first: each queue's newest `limit` ids, then their records.
    public func deadTasks(limit: Int) async throws -> [DeadTask] {
        var dead: [DeadTask] = []
        for queue in try await resolve([]) {
            for record in try await tasks(queue: queue, state: .dead, limit: limit) {
                dead.append(
                    DeadTask(
                        id: record.id, type: record.type, queue: queue, attempts: record.attempts,
                        reason: record.history.last ?? "unknown", history: record.history, diedAt: record.diedAt ?? 0))
            }
        }
        return Array(dead.sorted { $0.diedAt > $1.diedAt }.prefix(limit))
    }

    /// Requeues dead tasks with fresh attempts.
    public func retryDead(ids: [String]?) async throws -> Int {
        try await eachDead(ids) { keys, id in
            try await client.run(
                Self.reviveScript, keys: [keys.dead, keys.attempts, keys.died, keys.ready, keys.wake],
                arguments: [RedisArgument(id)])
        }
    }

    /// Deletes dead tasks (all, or those named) with every record of them.
    public func deleteDead(ids: [String]?) async throws -> Int {
        try await eachDead(ids) { keys, id in
            try await client.run(
                Self.deleteScript, keys: [keys.dead, keys.task, keys.attempts, keys.token, keys.history, keys.died],
                arguments: [RedisArgument(id)])
        }
    }

    /// Runs `script` on each dead task of every queue (all, or those in `ids`); returns how many it acted on
    /// (each call answers 1 or 0).
    private func eachDead(
        _ ids: [String]?, _ script: (Keys, String) async throws -> RESPValue
    ) async throws -> Int {
        var count = 0
        for queue in try await resolve([]) {
            let keys = Keys(prefix: prefix, queue: queue)
            let dead =
                try await client.send("ZRANGE", RedisArgument(keys.dead), 0, -1).array?.compactMap(\.string) ?? []
            for id in dead where ids?.contains(id) ?? true {
                count += Int(try await script(keys, id).int ?? 0)
            }
        }
        return count
    }

    /// Removes a dead task and its records; 0 when it is no longer dead.
    static let deleteScript = RedisScript(
        """
        if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
        for i = 2, #KEYS do redis.call('HDEL', KEYS[i], ARGV[1]) end
        return 1
        """)

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
