import Foundation

/// The embedded, durable `TaskQueue`: one table in the application's database (SQLite in WAL mode, shared safely by
/// every process on the machine, or PostgreSQL, shared by every machine). A task is committed before `enqueue`
/// returns; a claim is a lease, so a killed worker's task becomes runnable again when the lease expires.
public final class SQLTaskQueue: AdministeredTaskQueue, CustomStringConvertible {
    /// `sqlite` or `postgres`.
    public var description: String { database.dialect == .postgres ? "postgres" : "sqlite" }

    private let database: any SQLDatabase
    private let wake = WakeSignal()
    private let now: @Sendable () -> Double
    /// How long a deduplication key is remembered after its task was enqueued.
    public let deduplicationWindow: Duration

    /// A queue stored in `database`, which `migrations` must have been applied to.
    public init(
        database: any SQLDatabase, deduplicationWindow: Duration = .seconds(7 * 86_400),
        now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) {
        self.database = database
        self.deduplicationWindow = deduplicationWindow
        self.now = now
    }

    /// The queue's tables.
    public static let migrations = [
        SQLMigration("envoy_tasks_v1") { sql in
            [
                """
                CREATE TABLE envoy_tasks (
                    id TEXT PRIMARY KEY NOT NULL,
                    queue TEXT NOT NULL,
                    type TEXT NOT NULL,
                    payload \(sql.blob) NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('ready', 'running', 'dead')),
                    attempts INTEGER NOT NULL DEFAULT 0,
                    max_attempts INTEGER NOT NULL,
                    run_at \(sql.real) NOT NULL,
                    lease_token TEXT,
                    lease_until \(sql.real),
                    history TEXT NOT NULL DEFAULT '[]',
                    created_at \(sql.real) NOT NULL,
                    died_at \(sql.real)
                )
                """,
                "CREATE INDEX envoy_tasks_runnable ON envoy_tasks (queue, state, run_at)",
                """
                CREATE TABLE envoy_task_dedup (
                    key TEXT PRIMARY KEY NOT NULL, task_id TEXT NOT NULL, expires_at \(sql.real) NOT NULL
                )
                """,
            ]
        },
        // Kept on the task too, so a relayed task (outbox → Redis) keeps its deduplication.
        SQLMigration("envoy_tasks_v2_dedup_key") { _ in ["ALTER TABLE envoy_tasks ADD COLUMN dedup_key TEXT"] },
        // The enqueueing span's `traceparent`, so that a task's run joins the request's trace.
        SQLMigration("envoy_tasks_v3_trace_context") { _ in ["ALTER TABLE envoy_tasks ADD COLUMN trace_context TEXT"] },
        // Workers' heartbeats: one row per running worker, as JSON, until it expires.
        SQLMigration("envoy_workers_v1") { sql in
            [
                "CREATE TABLE envoy_workers (id TEXT PRIMARY KEY NOT NULL, heartbeat TEXT NOT NULL, expires_at \(sql.real) NOT NULL)"
            ]
        },
    ]

    /// Commits the task (or notices its deduplication key) and wakes local workers.
    public func enqueue(_ task: NewTask) async throws -> EnqueueResult {
        let result = try await database.transaction { db in try await enqueue(task, in: db) }
        if case .enqueued = result { wake.signal() }
        return result
    }

    /// Stores the task inside the caller's transaction on this queue's database (a transactional outbox: the task
    /// commits with the caller's rows, or neither does). Call `committed()` once the transaction has.
    public func enqueue(_ task: NewTask, in db: any SQLExecutor) async throws -> EnqueueResult {
        let time = now()
        let id = UUID.random().uuidString.lowercased()
        if let key = task.deduplicationKey {
            try await db.query("DELETE FROM envoy_task_dedup WHERE key = ? AND expires_at <= ?", key, time)
            // A concurrent enqueue of the same key waits on the row, then inserts nothing: one task per key.
            let inserted = try await db.query(
                """
                INSERT INTO envoy_task_dedup (key, task_id, expires_at) VALUES (?, ?, ?)
                ON CONFLICT DO NOTHING RETURNING key
                """, key, id, time + deduplicationWindow.inSeconds)
            if inserted.isEmpty { return .duplicate }
        }
        try await db.query(
            """
            INSERT INTO envoy_tasks
                (id, queue, type, payload, state, max_attempts, run_at, created_at, dedup_key, trace_context)
            VALUES (?, ?, ?, ?, 'ready', ?, ?, ?, ?, ?)
            """,
            id, task.queue, task.type, task.payload, task.maxAttempts, task.runAt ?? time, time,
            task.deduplicationKey, task.traceContext)
        return .enqueued(id)
    }

    /// Wakes local workers (and an outbox relay) after a transaction holding `enqueue(_:in:)` has committed.
    public func committed() {
        wake.signal()
    }

    /// Claims the oldest runnable task: ready and due, or running under an expired lease (its worker died).
    /// A task whose lease expired on its last allowed run is dead-lettered instead of run again.
    public func claim(queues: [String], lease: Duration) async throws -> ClaimedTask? {
        let time = now()
        let token = UUID.random().uuidString.lowercased()
        let queueList = queues.isEmpty ? "" : "queue IN (\(sqlPlaceholders(queues.count))) AND "
        // SQLite runs one write transaction at a time; PostgreSQL's workers skip the rows another claim holds.
        let lock = database.dialect == .postgres ? " FOR UPDATE SKIP LOCKED" : ""
        let sql = """
            SELECT id, type, queue, payload, attempts, max_attempts, state, dedup_key, trace_context FROM envoy_tasks
            WHERE \(queueList)((state = 'ready' AND run_at <= ?) OR (state = 'running' AND lease_until <= ?))
            ORDER BY run_at LIMIT 1\(lock)
            """
        let binds: [any SQLBindable] = queues + [time, time]
        return try await database.transaction { db -> ClaimedTask? in
            while true {
                guard let row = try await db.query(sql, binding: binds).first else { return nil }
                let id: String = try row["id"]
                let attempts: Int = try row["attempts"]
                let maxAttempts: Int = try row["max_attempts"]
                let state: String = try row["state"]
                if state == "running" {
                    try await appendHistory(
                        db, id: id, entry: "attempt \(attempts): lease expired (worker stopped or hung)")
                }
                if state == "running" && attempts >= maxAttempts {
                    try await db.query(
                        "UPDATE envoy_tasks SET state = 'dead', died_at = ?, lease_token = NULL WHERE id = ?", time, id)
                    continue
                }
                try await db.query(
                    """
                    UPDATE envoy_tasks SET state = 'running', attempts = attempts + 1, lease_token = ?, lease_until = ?
                    WHERE id = ?
                    """,
                    token, time + lease.inSeconds, id)
                return ClaimedTask(
                    id: id, type: try row["type"], queue: try row["queue"], payload: try row["payload"],
                    attempt: attempts + 1, maxAttempts: maxAttempts, leaseToken: token,
                    deduplicationKey: try row["dedup_key"], traceContext: try row["trace_context"])
            }
        }
    }

    /// Sleeps until a local enqueue, the next due task, or `timeout` (other processes' enqueues are seen by then).
    public func waitForTasks(queues: [String], timeout: Duration) async {
        await wake.wait(timeout: timeout)
    }

    /// Extends the lease if this claim still holds it.
    public func renew(_ task: ClaimedTask, lease: Duration) async throws -> Bool {
        let until = now() + lease.inSeconds
        return try await !database.query(
            """
            UPDATE envoy_tasks SET lease_until = ? WHERE id = ? AND lease_token = ? AND state = 'running' RETURNING id
            """, until, task.id, task.leaseToken
        ).isEmpty
    }

    /// Deletes the finished task (only if this claim still holds it).
    public func complete(_ task: ClaimedTask) async throws {
        try await settle(task, sql: "DELETE FROM envoy_tasks WHERE id = ? AND lease_token = ?", binds: [])
    }

    /// Makes the task ready again after `delay`, keeping `error` in its history.
    public func retry(_ task: ClaimedTask, after delay: Duration, error: String) async throws {
        try await settle(
            task,
            sql: """
                UPDATE envoy_tasks SET state = 'ready', run_at = ?, lease_token = NULL, lease_until = NULL
                WHERE id = ? AND lease_token = ?
                """,
            binds: [now() + delay.inSeconds], history: "attempt \(task.attempt): \(error)")
    }

    /// Returns the task to ready at once; the interrupted run does not count as an attempt.
    public func release(_ task: ClaimedTask) async throws {
        try await settle(
            task,
            sql: """
                UPDATE envoy_tasks SET state = 'ready', attempts = attempts - 1, lease_token = NULL, lease_until = NULL
                WHERE id = ? AND lease_token = ?
                """,
            binds: [])
        wake.signal()
    }

    /// Moves the task to the dead-letter queue.
    public func bury(_ task: ClaimedTask, error: String) async throws {
        try await settle(
            task,
            sql: """
                UPDATE envoy_tasks SET state = 'dead', died_at = ?, lease_token = NULL, lease_until = NULL
                WHERE id = ? AND lease_token = ?
                """,
            binds: [now()], history: "attempt \(task.attempt): \(error)")
    }

    /// Counts per queue and state.
    public func stats() async throws -> [QueueStats] {
        let time = now()
        let rows = try await database.query(
            """
            SELECT queue,
                SUM(CASE WHEN state = 'ready' AND run_at <= ? THEN 1 ELSE 0 END) AS ready,
                SUM(CASE WHEN state = 'ready' AND run_at > ? THEN 1 ELSE 0 END) AS delayed,
                SUM(CASE WHEN state = 'running' THEN 1 ELSE 0 END) AS in_flight,
                SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END) AS dead,
                MIN(CASE WHEN state = 'ready' AND run_at <= ? THEN run_at END) AS oldest
            FROM envoy_tasks GROUP BY queue ORDER BY queue
            """,
            time, time, time)
        return try rows.map { row in
            let oldest: Double? = try row["oldest"]
            return QueueStats(
                queue: try row["queue"], ready: try row["ready"], delayed: try row["delayed"],
                inFlight: try row["in_flight"], dead: try row["dead"],
                oldestReadyAge: oldest.map { max(0, time - $0) } ?? 0)
        }
    }

    /// The dead-letter queue, newest first.
    public func deadTasks(limit: Int) async throws -> [DeadTask] {
        try await database.query(
            "SELECT id, type, queue, attempts, history, died_at FROM envoy_tasks WHERE state = 'dead' ORDER BY died_at DESC LIMIT ?",
            limit
        ).map { row in
            let history =
                (try? JSONDecoder().decode([String].self, from: Data((try row["history"] as String).utf8))) ?? []
            return DeadTask(
                id: try row["id"], type: try row["type"], queue: try row["queue"], attempts: try row["attempts"],
                reason: history.last ?? "unknown", history: history, diedAt: try row["died_at"] ?? 0)
        }
    }

    /// Requeues dead tasks (all, or those named) with their attempts reset.
    public func retryDead(ids: [String]?) async throws -> Int {
        var sql =
            "UPDATE envoy_tasks SET state = 'ready', attempts = 0, run_at = ?, died_at = NULL WHERE state = 'dead'"
        var binds: [any SQLBindable] = [now()]
        if let ids {
            sql += " AND id IN (\(sqlPlaceholders(ids.count)))"
            binds += ids as [any SQLBindable]
        }
        let count = try await database.query(sql + " RETURNING id", binding: binds).count
        if count > 0 { wake.signal() }
        return count
    }

    /// Deletes dead tasks (all, or those named) for good.
    public func deleteDead(ids: [String]?) async throws -> Int {
        var sql = "DELETE FROM envoy_tasks WHERE state = 'dead'"
        var binds: [any SQLBindable] = []
        if let ids {
            sql += " AND id IN (\(sqlPlaceholders(ids.count)))"
            binds += ids as [any SQLBindable]
        }
        return try await database.query(sql + " RETURNING id", binding: binds).count
    }

    /// The task's row.
    public func task(id: String) async throws -> TaskRecord? {
        let time = now()
        return try await database.query("SELECT \(Self.recordColumns) FROM envoy_tasks WHERE id = ?", id).first.map {
            try Self.record($0, now: time)
        }
    }

    /// The queue's tasks in `state`, by run time (ready, delayed) or lease end (in flight).
    public func tasks(queue: String, state: TaskState, limit: Int) async throws -> [TaskRecord] {
        let time = now()
        let (condition, order): (String, String) =
            switch state {
            case .ready: ("state = 'ready' AND run_at <= ?", "run_at")
            case .delayed: ("state = 'ready' AND run_at > ?", "run_at")
            case .inFlight: ("state = 'running' AND ? IS NOT NULL", "lease_until")
            case .dead: ("state = 'dead' AND ? IS NOT NULL", "died_at DESC")
            }
        return try await database.query(
            "SELECT \(Self.recordColumns) FROM envoy_tasks WHERE queue = ? AND \(condition) ORDER BY \(order) LIMIT ?",
            queue, time, limit
        ).map { try Self.record($0, now: time) }
    }

    static let recordColumns =
        "id, type, queue, payload, state, attempts, max_attempts, run_at, lease_until, history, created_at, died_at"

    /// A row of `recordColumns` as a record.
    static func record(_ row: SQLRow, now time: Double) throws -> TaskRecord {
        let stored: String = try row["state"]
        let runAt: Double = try row["run_at"]
        let leaseUntil: Double? = try row["lease_until"]
        let state =
            switch stored {
            case "running": "in_flight"
            case "ready" where runAt > time: "delayed"
            default: stored
            }
        return TaskRecord(
            id: try row["id"], type: try row["type"], queue: try row["queue"], state: state,
            attempts: try row["attempts"], maxAttempts: try row["max_attempts"], payload: try row["payload"],
            history: (try? JSONDecoder().decode([String].self, from: Data((try row["history"] as String).utf8))) ?? [],
            createdAt: try row["created_at"], leaseUntil: stored == "running" ? leaseUntil : nil,
            diedAt: try row["died_at"])
    }

    /// Upserts the worker's row.
    public func recordHeartbeat(_ heartbeat: WorkerHeartbeat) async throws {
        try await database.query(
            """
            INSERT INTO envoy_workers (id, heartbeat, expires_at) VALUES (?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET heartbeat = excluded.heartbeat, expires_at = excluded.expires_at
            """,
            heartbeat.id, String(decoding: try WorkerHeartbeat.encoder.encode(heartbeat), as: UTF8.self),
            heartbeat.expiresAt.timeIntervalSince1970)
    }

    /// Drops expired rows, then reads the rest.
    public func liveWorkers() async throws -> [WorkerHeartbeat] {
        let time = now()
        try await database.query("DELETE FROM envoy_workers WHERE expires_at <= ?", time)
        return try await database.query("SELECT heartbeat FROM envoy_workers").compactMap { row in
            try? WorkerHeartbeat.decoder.decode(WorkerHeartbeat.self, from: Data((try row["heartbeat"] as String).utf8))
        }.sorted { $0.startedAt < $1.startedAt }
    }

    /// The embedded queue is served by a worker inside `envoy serve` unless told otherwise.
    public var runsWorkerInProcess: Bool { true }

    /// Runs `sql` (its last two placeholders: the task's id and lease token) and records `history`, in one
    /// transaction; throws `LeaseLost` when the claim no longer holds the task.
    private func settle(_ task: ClaimedTask, sql: String, binds: [any SQLBindable], history: String? = nil)
        async throws
    {
        try await database.transaction { db in
            let changed = try await db.query(sql + " RETURNING id", binding: binds + [task.id, task.leaseToken])
            guard changed.count == 1 else { throw LeaseLost(taskID: task.id) }
            if let history { try await appendHistory(db, id: task.id, entry: history) }
        }
    }

    /// Appends `entry` to the task's JSON array of failures.
    private func appendHistory(_ db: any SQLExecutor, id: String, entry: String) async throws {
        let append =
            database.dialect == .postgres
            ? "(history::jsonb || to_jsonb(?::text))::text" : "json_insert(history, '$[#]', ?)"
        try await db.query("UPDATE envoy_tasks SET history = \(append) WHERE id = ?", String(entry.prefix(2000)), id)
    }
}

/// The worker's lease on a task ran out and another claim took it; this holder's result is discarded.
public struct LeaseLost: Error, CustomStringConvertible, Sendable {
    /// The task whose lease was lost.
    public var taskID: String

    /// The lease on `taskID` was lost.
    public init(taskID: String) {
        self.taskID = taskID
    }
    /// One line naming the task.
    public var description: String { "lease on task \(taskID) was lost to another worker" }
}
