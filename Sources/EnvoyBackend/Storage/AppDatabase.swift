import EnvoyFramework
import Foundation
import GRDB
import HTTPTypes
import Logging
import Metrics

/// The SQLite database: WAL, a busy timeout so that several processes can share the file, and migrations.
public struct AppDatabase: Sendable {
    /// The pool application reads and writes go through.
    public let pool: DatabasePool

    /// Opens (creating if needed) the database at `path` and migrates it.
    /// Every statement run through this pool is counted in `envoy_db_queries_total{component}`.
    public init(path: String, component: String, metrics: any MetricsFactory) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        var configuration = Configuration()
        // Another process (a second `envoy serve`, `envoy worker`) may hold the write lock: wait, never fail.
        configuration.busyMode = .timeout(10)
        let queries = Counter(label: "envoy_db_queries_total", dimensions: [("component", component)], factory: metrics)
        configuration.prepareDatabase { db in
            db.trace(options: .statement) { _ in queries.increment() }
        }
        self.pool = try DatabasePool(path: path, configuration: configuration)
        // Instances starting together would each see a migration missing and both run it; the second then fails
        // ("table users already exists"). An exclusive lock on a file beside the database lets one migrate while
        // the others wait, then find nothing left to do.
        try Self.whileHoldingLock(path + ".migrations.lock") { try Self.migrator.migrate(pool) }
    }

    private static func whileHoldingLock(_ lockPath: String, _ body: () throws -> Void) throws {
        let descriptor = open(lockPath, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { return try body() }  // a read-only directory: no other writer to race
        defer { close(descriptor) }  // closing releases the lock, also when body throws
        while flock(descriptor, LOCK_EX) != 0 && errno == EINTR {}
        try body()
    }

    /// Every table Envoy owns, in order.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("users_v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE users (
                        id TEXT PRIMARY KEY NOT NULL,
                        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
                        password_hash TEXT NOT NULL,
                        name TEXT NOT NULL,
                        company TEXT,
                        job_title TEXT,
                        timezone TEXT,
                        plan TEXT NOT NULL DEFAULT 'free',
                        email_verified INTEGER NOT NULL DEFAULT 0,
                        created_at TEXT NOT NULL,
                        updated_at TEXT NOT NULL
                    )
                    """)
        }
        migrator.registerMigration("notifications_v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE notifications (
                        id TEXT PRIMARY KEY NOT NULL,
                        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                        title TEXT NOT NULL,
                        message TEXT NOT NULL,
                        type TEXT NOT NULL,
                        read INTEGER NOT NULL DEFAULT 0,
                        created_at TEXT NOT NULL
                    );
                    CREATE INDEX notifications_by_user ON notifications (user_id, created_at DESC);
                    """)
        }
        BillingStore.registerMigrations(&migrator)
        SQLiteTaskQueue.registerMigrations(&migrator)
        return migrator
    }

    /// Answers whether the database can be read right now.
    public func ping() async -> Bool {
        (try? await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }) == 1
    }
}

/// Timestamps as stored and served: ISO 8601 with fractional seconds, UTC.
enum Timestamp {
    /// A value-type format style: made once, shared by every write (no formatter built per call).
    private static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    static func now() -> String {
        Date().formatted(style)
    }
}
