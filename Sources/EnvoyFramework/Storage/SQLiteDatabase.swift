import Foundation
import NIOPosix
import GRDB
import Metrics

/// `SQLDatabase` on a SQLite file (GRDB, WAL): reads run concurrently on reader connections; writes and
/// transactions take turns on the one writer connection, and wait (never fail) while another process writes.
public struct SQLiteDatabase: SQLDatabase {
    /// The connection pool.
    let pool: DatabasePool
    /// One transaction at a time on the writer connection, across awaits.
    let writer: AsyncLock
    let queries: Counter?
    /// SQLite.
    public var dialect: SQLDialect { .sqlite }

    /// Opens (creating if needed) the database file at `path` on NIO's thread pool: opening touches the file
    /// system and may wait out another process's lock, which no Swift concurrency thread may do.
    public static func open(path: String) async throws -> SQLiteDatabase {
        try await NIOThreadPool.singleton.runIfActive { try SQLiteDatabase(path: path) }
    }

    /// Opens (creating if needed) the database file at `path`, blocking the calling thread (`open(path:)` does not).
    public init(path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        var configuration = Configuration()
        // Another process (a second `envoy serve`, `envoy worker`) may hold the write lock: wait, never fail.
        configuration.busyMode = .timeout(10)
        // A transaction spans several awaited statements on the writer; `writer` keeps others out meanwhile.
        configuration.allowsUnsafeTransactions = true
        self.pool = try Self.openPool(path: path, configuration: configuration)
        self.writer = AsyncLock()
        self.queries = nil
    }

    /// Opens the pool. Switching a new file to WAL needs the file to itself, and SQLite answers a concurrent
    /// opener (two processes starting at once) "database is locked" without its busy timeout: that is waited out
    /// for as long as the busy timeout.
    private static func openPool(path: String, configuration: Configuration) throws -> DatabasePool {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            do {
                return try DatabasePool(path: path, configuration: configuration)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && ContinuousClock.now < deadline
            {
                Thread.sleep(forTimeInterval: Double.random(in: 0.005...0.05))
            }
        }
    }

    private init(pool: DatabasePool, writer: AsyncLock, queries: Counter?) {
        self.pool = pool
        self.writer = writer
        self.queries = queries
    }

    /// This database with statements counted under `component`.
    public func counted(as component: String, metrics: any MetricsFactory) -> SQLiteDatabase {
        SQLiteDatabase(
            pool: pool, writer: writer,
            queries: Counter(label: "envoy_db_queries_total", dimensions: [("component", component)], factory: metrics))
    }

    /// A SELECT runs on a reader connection; any other statement on the writer, committed at once.
    public func query(_ sql: String, binding binds: [any SQLBindable]) async throws -> [SQLRow] {
        queries?.increment()
        let arguments = Self.arguments(binds)
        return try await Traces.statement(sql, system: "sqlite") {
            if Self.isRead(sql) {
                return try await pool.read { db in try Self.rows(db, sql, arguments) }
            }
            return try await writer.withLock {
                try await pool.write { db in try Self.rows(db, sql, arguments) }
            }
        }
    }

    /// BEGIN IMMEDIATE (taking SQLite's write lock at once), the body's statements, then COMMIT or ROLLBACK.
    public func transaction<T: Sendable>(_ body: (any SQLExecutor) async throws -> T) async throws -> T {
        try await writer.withLock {
            try await finish("BEGIN IMMEDIATE")
            let value: T
            do {
                value = try await body(Transaction(pool: pool, queries: queries))
            } catch {
                try? await finish("ROLLBACK")
                throw error
            }
            do {
                try await finish("COMMIT")
            } catch {
                try? await finish("ROLLBACK")
                throw error
            }
            return value
        }
    }

    /// Runs BEGIN, COMMIT or ROLLBACK in a task of its own, so that a cancelled caller still ends its transaction.
    private func finish(_ statement: String) async throws {
        queries?.increment()
        let pool = pool
        try await Task { try await pool.writeWithoutTransaction { db in try db.execute(sql: statement) } }.value
    }

    /// Runs GRDB's migrator (which records applied names in `grdb_migrations`) under an exclusive lock on a file
    /// beside the database: instances starting together would otherwise both run a missing migration.
    public func migrate(_ migrations: [SQLMigration]) async throws {
        var migrator = DatabaseMigrator()
        for migration in migrations {
            let statements = migration.statements(for: .sqlite)
            migrator.registerMigration(migration.name) { db in
                for statement in statements { try db.execute(sql: statement) }
            }
        }
        let ready = migrator
        let pool = pool
        // On NIO's thread pool: the file lock may wait for another process's migrations, and migrating is blocking
        // I/O.
        try await writer.withLock {
            try await NIOThreadPool.singleton.runIfActive {
                try Self.whileHoldingLock(pool.path + ".migrations.lock") { try ready.migrate(pool) }
            }
        }
    }

    private static func whileHoldingLock(_ lockPath: String, _ body: () throws -> Void) throws {
        #if canImport(Glibc)
            let descriptor = Glibc.open(lockPath, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        #else
            let descriptor = Darwin.open(lockPath, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        #endif
        guard descriptor >= 0 else { return try body() }  // a read-only directory: no other writer to race
        defer { close(descriptor) }  // closing releases the lock, also when body throws
        while flock(descriptor, LOCK_EX) != 0 && errno == EINTR {}
        try body()
    }

    /// The statements of one open transaction, all on the writer connection.
    private struct Transaction: SQLExecutor {
        let pool: DatabasePool
        let queries: Counter?

        func query(_ sql: String, binding binds: [any SQLBindable]) async throws -> [SQLRow] {
            queries?.increment()
            let arguments = SQLiteDatabase.arguments(binds)
            return try await Traces.statement(sql, system: "sqlite") {
                try await pool.writeWithoutTransaction { db in try SQLiteDatabase.rows(db, sql, arguments) }
            }
        }
    }

    static func isRead(_ sql: String) -> Bool {
        let start = sql.drop { $0 == " " || $0 == "\n" }.prefix(6).uppercased()
        return start == "SELECT"
    }

    static func arguments(_ binds: [any SQLBindable]) -> StatementArguments {
        StatementArguments(
            binds.map { bind -> DatabaseValue in
                switch bind.sqlValue {
                case .null: return .null
                case .integer(let int): return Int64(int).databaseValue
                case .real(let double): return double.databaseValue
                case .text(let text): return text.databaseValue
                case .blob(let bytes): return Data(bytes).databaseValue
                }
            })
    }

    static func rows(_ db: Database, _ sql: String, _ arguments: StatementArguments) throws -> [SQLRow] {
        try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
            var columns: [String] = []
            var values: [SQLValue] = []
            columns.reserveCapacity(row.count)
            values.reserveCapacity(row.count)
            for (column, value) in row {
                columns.append(column)
                switch value.storage {
                case .null: values.append(.null)
                case .int64(let int): values.append(.integer(Int(int)))
                case .double(let double): values.append(.real(double))
                case .string(let text): values.append(.text(text))
                case .blob(let data): values.append(.blob(Array(data)))
                }
            }
            return SQLRow(columns: columns, values: values)
        }
    }
}
