import EnvoyFramework
import Foundation
import Logging
import Metrics
import NIOCore
import NIOSSL
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// `SQLDatabase` on PostgreSQL (postgres-nio's pooled client): what several machines running Envoy share.
public struct PostgresDatabase: SQLDatabase {
    /// The pool, and the task running it: started with the database, because migrations run before the
    /// application's service group does; as a service of that group it closes its connections on shutdown.
    final class Pool: Service {
        let client: PostgresClient
        let runner: Task<Void, Never>

        init(client: PostgresClient) {
            self.client = client
            self.runner = Task { await client.run() }
        }

        /// Keeps the pool until graceful shutdown (or cancellation), then closes its connections and returns once
        /// they are closed.
        func run() async {
            try? await gracefulShutdown()
            runner.cancel()
            await runner.value
        }

        deinit { runner.cancel() }
    }

    let pool: Pool
    let logger: Logger
    let queries: Counter?
    /// How long a statement outside a transaction may take, waiting for a connection included.
    let statementTimeout: Duration
    /// Where the server is (no password), for errors.
    let endpoint: String
    /// PostgreSQL.
    public var dialect: SQLDialect { .postgres }
    /// The connection pool.
    public var services: [any Service] { [pool] }

    /// Connects (lazily, as statements need connections) to `url`:
    /// `postgres://user:password@host:port/database?sslmode=disable|prefer|require` (default `prefer`). The
    /// connections show in `pg_stat_activity` under `applicationName`.
    public init(
        url: String, maximumConnections: Int = 20, statementTimeout: Duration = .seconds(10),
        applicationName: String = "envoy", logger: Logger
    ) throws {
        self.init(
            endpoint: try PostgresEndpoint(url: url), maximumConnections: maximumConnections,
            statementTimeout: statementTimeout, applicationName: applicationName, logger: logger)
    }

    /// Connects (lazily, as statements need connections) to `endpoint`; the connections show in
    /// `pg_stat_activity` under `applicationName`.
    public init(
        endpoint: PostgresEndpoint, maximumConnections: Int = 20, statementTimeout: Duration = .seconds(10),
        applicationName: String = "envoy", logger: Logger
    ) {
        var configuration = PostgresClient.Configuration(
            host: endpoint.host, port: endpoint.port, username: endpoint.username, password: endpoint.password,
            database: endpoint.database, tls: endpoint.tls)
        configuration.options.maximumConnections = maximumConnections
        configuration.options.additionalStartupParameters = [("application_name", applicationName)]
        self.pool = Pool(client: PostgresClient(configuration: configuration, backgroundLogger: logger))
        self.logger = logger
        self.queries = nil
        self.statementTimeout = statementTimeout
        self.endpoint = endpoint.description
    }

    private init(copying other: PostgresDatabase, queries: Counter?) {
        self.pool = other.pool
        self.logger = other.logger
        self.queries = queries
        self.statementTimeout = other.statementTimeout
        self.endpoint = other.endpoint
    }

    /// This database with statements counted under `component`.
    public func counted(as component: String, metrics: any MetricsFactory) -> PostgresDatabase {
        PostgresDatabase(
            copying: self,
            queries: Counter(label: "envoy_db_queries_total", dimensions: [("component", component)], factory: metrics))
    }

    /// Waits until the server answers, up to `timeout` (postgres-nio otherwise retries connecting for ever).
    public func waitUntilReachable(timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await ping(timeout: .seconds(2)) { return }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw PostgresFailure(message: "no answer from \(endpoint) within \(timeout)")
    }

    /// Runs one statement on a pooled connection; it commits on its own. Throws `PostgresFailure` when no
    /// connection and answer came within the statement timeout (the server down or unreachable).
    public func query(_ sql: String, binding binds: [any SQLBindable]) async throws -> [SQLRow] {
        try await run(sql, binds, on: nil)
    }

    /// Runs one statement under the statement timeout: on `connection` (inside a transaction) or on a pooled one.
    private func run(_ sql: String, _ binds: [any SQLBindable], on connection: PostgresConnection?) async throws
        -> [SQLRow]
    {
        queries?.increment()
        let (client, query, logger) = (pool.client, Self.query(sql, binds), logger)
        return try await Traces.statement(sql, system: "postgresql") {
            try await Self.withDeadline(statementTimeout, endpoint) {
                if let connection { return try await Self.rows(connection.query(query, logger: logger)) }
                return try await Self.rows(client.query(query, logger: logger))
            }
        }
    }

    /// BEGIN, the body's statements on one connection, then COMMIT (or ROLLBACK when it throws). Each statement
    /// has the statement timeout; a connection that fails to answer is closed, so the pool never hands it out
    /// again mid-transaction. (Waiting for a connection has no deadline: a transaction waits out an outage.)
    public func transaction<T: Sendable>(_ body: (any SQLExecutor) async throws -> T) async throws -> T {
        try await pool.client.withConnection { connection in
            let executor = Transaction(database: self, connection: connection)
            /// A transaction-control statement; a connection that fails one is closed.
            func control(_ sql: String) async throws {
                do { try await executor.query(sql) } catch {
                    Self.discard(connection)
                    throw error
                }
            }
            try await control("BEGIN")
            let value: T
            do {
                value = try await body(executor)
            } catch {
                try? await control("ROLLBACK")
                throw error
            }
            try await control("COMMIT")
            return value
        }
    }

    /// Applies missing migrations in one transaction under an advisory lock, recording each in `envoy_migrations`.
    public func migrate(_ migrations: [SQLMigration]) async throws {
        try await transaction { db in
            // Every instance starting together queues here; the first migrates, the others then find nothing to do.
            try await db.query("SELECT pg_advisory_xact_lock(7001843021)")
            try await db.query(
                "CREATE TABLE IF NOT EXISTS envoy_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
            let applied = Set(
                try await db.query("SELECT name FROM envoy_migrations").map { row -> String in try row["name"] })
            for migration in migrations where !applied.contains(migration.name) {
                for statement in migration.statements(for: .postgres) { try await db.query(statement) }
                try await db.query(
                    "INSERT INTO envoy_migrations (name, applied_at) VALUES (?, ?)", migration.name,
                    Date().formatted(.iso8601))
            }
        }
    }

    /// Closes a connection that did not answer (without waiting), so the pool replaces it.
    static func discard(_ connection: PostgresConnection) {
        let closing: EventLoopFuture<Void> = connection.close()
        closing.whenComplete { _ in }
    }

    private struct Transaction: SQLExecutor {
        let database: PostgresDatabase
        let connection: PostgresConnection

        func query(_ sql: String, binding binds: [any SQLBindable]) async throws -> [SQLRow] {
            try await database.run(sql, binds, on: connection)
        }
    }

    /// Runs `operation`, throwing `PostgresFailure` for its `PSQLError`s and when it has not finished by `timeout`.
    /// On the deadline the operation is cancelled and abandoned: a query on a connection whose server died may
    /// ignore cancellation, and the caller must not wait for it. Whichever ends first cancels the other, so no
    /// timer outlives its statement.
    static func withDeadline<T: Sendable>(
        _ timeout: Duration, _ endpoint: String, _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let deadline = Deadline<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                guard deadline.wait(continuation) else { return }
                let timer = Task {
                    try? await Task.sleep(for: timeout)
                    guard !Task.isCancelled else { return }
                    deadline.finish(.failure(PostgresFailure(message: "no answer from \(endpoint) within \(timeout)")))
                }
                let work = Task {
                    do {
                        deadline.finish(.success(try await operation()))
                    } catch let error as PSQLError {
                        deadline.finish(.failure(PostgresFailure(error)))
                    } catch {
                        deadline.finish(.failure(error))
                    }
                }
                deadline.track([timer, work])
            }
        } onCancel: {
            deadline.finish(.failure(CancellationError()))
        }
    }

    /// The caller of `withDeadline`, resumed once — by the result, the deadline or cancellation — after which the
    /// statement's other tasks are cancelled.
    final class Deadline<T: Sendable>: Sendable {
        private struct State {
            var continuation: CheckedContinuation<T, any Error>?
            var tasks: [Task<Void, Never>] = []
            var finished = false
        }
        private let state = Mutex(State())

        /// Keeps the caller's continuation; false (and the caller resumed) when cancellation came first.
        func wait(_ continuation: CheckedContinuation<T, any Error>) -> Bool {
            let finished = state.withLock { state in
                if !state.finished { state.continuation = continuation }
                return state.finished
            }
            if finished { continuation.resume(throwing: CancellationError()) }
            return !finished
        }

        /// The tasks to cancel once finished (at once, if that has happened already).
        func track(_ tasks: [Task<Void, Never>]) {
            let finished = state.withLock { state in
                if !state.finished { state.tasks = tasks }
                return state.finished
            }
            if finished { for task in tasks { task.cancel() } }
        }

        /// Resumes the caller with `result` unless it was resumed already, and cancels the tracked tasks.
        func finish(_ result: Result<T, any Error>) {
            let (continuation, tasks) = state.withLock { state in
                guard !state.finished else { return (nil as CheckedContinuation<T, any Error>?, [Task<Void, Never>]()) }
                state.finished = true
                defer { state.continuation = nil }
                return (state.continuation, state.tasks)
            }
            continuation?.resume(with: result)
            for task in tasks { task.cancel() }
        }
    }

    /// `?` placeholders (outside quoted literals) become `$1`, `$2`, …; each value is bound in order.
    static func query(_ sql: String, _ binds: [any SQLBindable]) -> PostgresQuery {
        var text = ""
        text.reserveCapacity(sql.utf8.count + 8)
        var number = 0
        var quoted = false
        for character in sql {
            if character == "'" { quoted.toggle() }
            if character == "?" && !quoted {
                number += 1
                text += "$\(number)"
            } else {
                text.append(character)
            }
        }
        var bindings = PostgresBindings(capacity: binds.count)
        for bind in binds {
            switch bind.sqlValue {
            case .null: bindings.appendNull()
            case .integer(let int): bindings.append(int)
            case .real(let double): bindings.append(double)
            case .text(let string): bindings.append(string)
            case .blob(let bytes): bindings.append(ByteBuffer(bytes: bytes))
            }
        }
        return PostgresQuery(unsafeSQL: text, binds: bindings)
    }

    /// Reads every row; integers, floating point, booleans and bytea by type, any other type as its text.
    static func rows(_ sequence: PostgresRowSequence) async throws -> [SQLRow] {
        var rows: [SQLRow] = []
        for try await row in sequence {
            var columns: [String] = []
            var values: [SQLValue] = []
            for cell in row {
                columns.append(cell.columnName)
                values.append(try value(cell))
            }
            rows.append(SQLRow(columns: columns, values: values))
        }
        return rows
    }

    private static func value(_ cell: PostgresCell) throws -> SQLValue {
        guard var bytes = cell.bytes else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8: return .integer(try cell.decode(Int.self))
        case .float4, .float8: return .real(try cell.decode(Double.self))
        case .bool: return .integer(try cell.decode(Bool.self) ? 1 : 0)
        case .bytea: return .blob(bytes.readBytes(length: bytes.readableBytes) ?? [])
        case .numeric:
            let text = try cell.decode(String.self)
            return Double(text).map(SQLValue.real) ?? .text(text)
        default: return .text(bytes.readString(length: bytes.readableBytes) ?? "")
        }
    }
}

/// A PostgreSQL error as Envoy reports it: the server's message and SQLSTATE, never the statement's values.
public struct PostgresFailure: Error, CustomStringConvertible {
    /// The SQLSTATE code (`23505` unique violation, …), when the server sent one.
    public var sqlState: String?
    /// What went wrong.
    public var message: String

    init(message: String) {
        self.sqlState = nil
        self.message = message
    }

    init(_ error: any Error) {
        if let error = error as? PSQLError {
            sqlState = error.serverInfo?[.sqlState]
            message = error.serverInfo?[.message] ?? "\(error.code)"
        } else {
            sqlState = nil
            message = "\(error)"
        }
    }

    /// `postgres: MESSAGE (SQLSTATE)`.
    public var description: String { "postgres: \(message)" + (sqlState.map { " (\($0))" } ?? "") }
}

/// A `postgres://` URL, parsed; the password is never printed.
public struct PostgresEndpoint: Sendable, CustomStringConvertible {
    var host: String
    var port: Int
    var username: String
    var password: String?
    var database: String?
    var tls: PostgresClient.Configuration.TLS
    var sslMode: String

    /// Parses `url`; throws `PostgresURLError` (never echoing the URL) when it is not one.
    public init(url: String) throws {
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme),
            let host = components.host, !host.isEmpty
        else {
            throw PostgresURLError(problem: "must be postgres://user:password@host:port/database")
        }
        self.host = host
        self.port = components.port ?? 5432
        self.username = components.user?.removingPercentEncoding ?? "postgres"
        self.password = components.password?.removingPercentEncoding
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.database = path.isEmpty ? nil : path
        self.sslMode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        switch sslMode {
        case "disable": tls = .disable
        case "prefer": tls = .prefer(.makeClientConfiguration())
        case "require": tls = .require(.makeClientConfiguration())
        default: throw PostgresURLError(problem: "sslmode must be disable, prefer or require")
        }
    }

    /// `postgres://user@host:port/database`, without the password.
    public var description: String { "postgres://\(username)@\(host):\(port)/\(database ?? "")?sslmode=\(sslMode)" }
}

/// A `DATABASE_URL` that is not a usable PostgreSQL URL.
public struct PostgresURLError: Error, CustomStringConvertible {
    /// What is wrong (never the URL itself, which may hold a password).
    public var problem: String
    /// The problem.
    public var description: String { problem }
}
