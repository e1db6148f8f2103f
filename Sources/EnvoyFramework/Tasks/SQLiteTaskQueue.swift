import Foundation
import GRDB

/// The embedded, durable `TaskQueue`: one SQLite table (WAL), shared safely by every process on the machine.
/// A task is committed to disk before `enqueue` returns; a claim is a lease, so a killed worker's task
/// becomes runnable again when the lease expires.
public final class SQLiteTaskQueue: TaskQueue {
    private let database: any DatabaseWriter
    private let wake = WakeSignal()
    private let now: @Sendable () -> Double
    /// How long a deduplication key is remembered after its task was enqueued.
    public let deduplicationWindow: Duration

    /// A queue stored in `database`, whose schema `registerMigrations` must have created.
    public init(
        database: any DatabaseWriter, deduplicationWindow: Duration = .seconds(7 * 86_400),
        now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) {
        self.database = database
        self.deduplicationWindow = deduplicationWindow
        self.now = now
    }

    /// Adds the queue's tables to an application's migrator.
    public static func registerMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("envoy_tasks_v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE envoy_tasks (
                        id TEXT PRIMARY KEY NOT NULL,
                        queue TEXT NOT NULL,
                        type TEXT NOT NULL,
                        payload BLOB NOT NULL,
                        state TEXT NOT NULL CHECK (state IN ('ready', 'running', 'dead')),
                        attempts INTEGER NOT NULL DEFAULT 0,
                        max_attempts INTEGER NOT NULL,
                        run_at REAL NOT NULL,
                        lease_token TEXT,
                        lease_until REAL,
                        history TEXT NOT NULL DEFAULT '[]',
                        created_at REAL NOT NULL,
                        died_at REAL
                    );
                    CREATE INDEX envoy_tasks_runnable ON envoy_tasks (queue, state, run_at);
                    CREATE TABLE envoy_task_dedup (
                        key TEXT PRIMARY KEY NOT NULL,
                        task_id TEXT NOT NULL,
                        expires_at REAL NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("envoy_tasks_v2_dedup_key") { db in
            // Kept on the task too, so a relayed task (outbox → Redis) keeps its deduplication.
            try db.execute(sql: "ALTER TABLE envoy_tasks ADD COLUMN dedup_key TEXT")
        }
    }

    /// Commits the task (or notices its deduplication key) and wakes local workers.
    public func enqueue(_ task: NewTask) async throws -> EnqueueResult {
        let time = now()
        let id = UUID().uuidString.lowercased()
        let dedupExpiry = time + deduplicationWindow.inSeconds
        let result = try await database.write { db -> EnqueueResult in
            if let key = task.deduplicationKey {
                try db.execute(
                    sql: "DELETE FROM envoy_task_dedup WHERE key = ? AND expires_at <= ?", arguments: [key, time])
                try db.execute(
                    sql: "INSERT OR IGNORE INTO envoy_task_dedup (key, task_id, expires_at) VALUES (?, ?, ?)",
                    arguments: [key, id, dedupExpiry])
                if db.changesCount == 0 { return .duplicate }
            }
            try db.execute(
                sql: """
                    INSERT INTO envoy_tasks (id, queue, type, payload, state, max_attempts, run_at, created_at, dedup_key)
                    VALUES (?, ?, ?, ?, 'ready', ?, ?, ?, ?)
                    """,
                arguments: [
                    id, task.queue, task.type, Data(task.payload), task.maxAttempts, task.runAt ?? time, time,
                    task.deduplicationKey,
                ])
            return .enqueued(id)
        }
        if case .enqueued = result { wake.signal() }
        return result
    }

    /// Claims the oldest runnable task: ready and due, or running under an expired lease (its worker died).
    /// A task whose lease expired on its last allowed run is dead-lettered instead of run again.
    public func claim(queues: [String], lease: Duration) async throws -> ClaimedTask? {
        let time = now()
        let token = UUID().uuidString.lowercased()
        let queueList = queues.isEmpty ? "" : "queue IN (\(databaseQuestionMarks(count: queues.count))) AND "
        return try await database.write { db -> ClaimedTask? in
            while true {
                let sql = """
                    SELECT id, type, queue, payload, attempts, max_attempts, state, dedup_key FROM envoy_tasks
                    WHERE \(queueList)((state = 'ready' AND run_at <= ?) OR (state = 'running' AND lease_until <= ?))
                    ORDER BY run_at LIMIT 1
                    """
                guard let row = try Row.fetchOne(db, sql: sql, arguments: StatementArguments(queues + [time, time]))
                else { return nil }
                let id: String = row["id"]
                let attempts: Int = row["attempts"]
                let maxAttempts: Int = row["max_attempts"]
                if row["state"] as String == "running" && attempts >= maxAttempts {
                    try Self.appendHistory(
                        db, id: id, entry: "attempt \(attempts): lease expired (worker stopped or hung)")
                    try db.execute(
                        sql: "UPDATE envoy_tasks SET state = 'dead', died_at = ?, lease_token = NULL WHERE id = ?",
                        arguments: [time, id])
                    continue
                }
                if row["state"] as String == "running" {
                    try Self.appendHistory(
                        db, id: id, entry: "attempt \(attempts): lease expired (worker stopped or hung)")
                }
                try db.execute(
                    sql: """
                        UPDATE envoy_tasks SET state = 'running', attempts = attempts + 1, lease_token = ?, lease_until = ?
                        WHERE id = ?
                        """,
                    arguments: [token, time + lease.inSeconds, id])
                return ClaimedTask(
                    id: id, type: row["type"], queue: row["queue"], payload: Array(row["payload"] as Data),
                    attempt: attempts + 1, maxAttempts: maxAttempts, leaseToken: token,
                    deduplicationKey: row["dedup_key"])
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
        return try await database.write { db in
            try db.execute(
                sql: "UPDATE envoy_tasks SET lease_until = ? WHERE id = ? AND lease_token = ? AND state = 'running'",
                arguments: [until, task.id, task.leaseToken])
            return db.changesCount == 1
        }
    }

    /// Deletes the finished task (only if this claim still holds it).
    public func complete(_ task: ClaimedTask) async throws {
        try await settle(task, sql: "DELETE FROM envoy_tasks WHERE id = ? AND lease_token = ?", arguments: [])
    }

    /// Makes the task ready again after `delay`, keeping `error` in its history.
    public func retry(_ task: ClaimedTask, after delay: Duration, error: String) async throws {
        let runAt = now() + delay.inSeconds
        try await settle(
            task,
            sql:
                "UPDATE envoy_tasks SET state = 'ready', run_at = ?, lease_token = NULL, lease_until = NULL WHERE id = ? AND lease_token = ?",
            arguments: [runAt], history: "attempt \(task.attempt): \(error)")
    }

    /// Returns the task to ready at once; the interrupted run does not count as an attempt.
    public func release(_ task: ClaimedTask) async throws {
        try await settle(
            task,
            sql: """
                UPDATE envoy_tasks SET state = 'ready', attempts = attempts - 1, lease_token = NULL, lease_until = NULL
                WHERE id = ? AND lease_token = ?
                """,
            arguments: [])
        wake.signal()
    }

    /// Moves the task to the dead-letter queue.
    public func bury(_ task: ClaimedTask, error: String) async throws {
        try await settle(
            task,
            sql:
                "UPDATE envoy_tasks SET state = 'dead', died_at = ?, lease_token = NULL, lease_until = NULL WHERE id = ? AND lease_token = ?",
            arguments: [now()], history: "attempt \(task.attempt): \(error)")
    }

    /// Counts per queue and state.
    public func stats() async throws -> [QueueStats] {
        let time = now()
        return try await database.read { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT queue,
                        SUM(state = 'ready' AND run_at <= ?) AS ready,
                        SUM(state = 'ready' AND run_at > ?) AS delayed,
                        SUM(state = 'running') AS in_flight,
                        SUM(state = 'dead') AS dead,
                        MIN(CASE WHEN state = 'ready' AND run_at <= ? THEN run_at END) AS oldest
                    FROM envoy_tasks GROUP BY queue ORDER BY queue
                    """,
                arguments: [time, time, time])
            return rows.map { row in
                let oldest: Double? = row["oldest"]
                return QueueStats(
                    queue: row["queue"], ready: row["ready"], delayed: row["delayed"], inFlight: row["in_flight"],
                    dead: row["dead"], oldestReadyAge: oldest.map { max(0, time - $0) } ?? 0)
            }
        }
    }

    /// The dead-letter queue, newest first.
    public func deadTasks(limit: Int) async throws -> [DeadTask] {
        try await database.read { db in
            try Row.fetchAll(
                db,
                sql:
                    "SELECT id, type, queue, attempts, history, died_at FROM envoy_tasks WHERE state = 'dead' ORDER BY died_at DESC LIMIT ?",
                arguments: [limit]
            ).map { row in
                let history =
                    (try? JSONDecoder().decode([String].self, from: Data((row["history"] as String).utf8))) ?? []
                return DeadTask(
                    id: row["id"], type: row["type"], queue: row["queue"], attempts: row["attempts"],
                    reason: history.last ?? "unknown", history: history, diedAt: row["died_at"] ?? 0)
            }
        }
    }

    /// Requeues dead tasks (all, or those named) with their attempts reset.
    public func retryDead(ids: [String]?) async throws -> Int {
        let time = now()
        let count = try await database.write { db -> Int in
            var sql =
                "UPDATE envoy_tasks SET state = 'ready', attempts = 0, run_at = ?, died_at = NULL WHERE state = 'dead'"
            var arguments: [any DatabaseValueConvertible] = [time]
            if let ids {
                sql += " AND id IN (\(databaseQuestionMarks(count: ids.count)))"
                arguments += ids as [any DatabaseValueConvertible]
            }
            try db.execute(sql: sql, arguments: StatementArguments(arguments))
            return db.changesCount
        }
        if count > 0 { wake.signal() }
        return count
    }

    private func settle(
        _ task: ClaimedTask, sql: String, arguments: [Double], history: String? = nil
    ) async throws {
        try await database.write { db in
            var values = StatementArguments(arguments)
            values += [task.id, task.leaseToken]
            try db.execute(sql: sql, arguments: values)
            guard db.changesCount == 1 else { throw LeaseLost(taskID: task.id) }
            if let history { try Self.appendHistory(db, id: task.id, entry: history) }
        }
    }

    private static func appendHistory(_ db: Database, id: String, entry: String) throws {
        try db.execute(
            sql: "UPDATE envoy_tasks SET history = json_insert(history, '$[#]', ?) WHERE id = ?",
            arguments: [String(entry.prefix(2000)), id])
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
