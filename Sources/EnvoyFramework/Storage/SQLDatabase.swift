import ServiceLifecycle
import Metrics

/// A relational database the stores and the embedded task queue run on: SQLite (embedded) or PostgreSQL (plugin).
/// Statements use `?` placeholders; an implementation rewrites them for its server.
public protocol SQLDatabase: SQLExecutor {
    /// Which SQL the server speaks, for the few statements that differ.
    var dialect: SQLDialect { get }
    /// Runs `body` in one transaction: every statement it runs commits, or (when it throws) none does.
    func transaction<T: Sendable>(_ body: (any SQLExecutor) async throws -> T) async throws -> T
    /// Applies the migrations not applied yet, in order, once even when several processes start together.
    func migrate(_ migrations: [SQLMigration]) async throws
    /// The same database, its statements counted in `envoy_db_queries_total{component}`.
    func counted(as component: String, metrics: any MetricsFactory) -> Self
    /// What keeps the database's connections (a client pool), run in the application's service group so that
    /// they close on shutdown.
    var services: [any Service] { get }
}

extension SQLDatabase {
    /// None: the database holds nothing that outlives its statements.
    public var services: [any Service] { [] }
}

/// Runs statements: the database itself (each statement commits on its own) or one transaction.
public protocol SQLExecutor: Sendable {
    /// Runs one statement with `binds` for its `?` placeholders and returns the rows it produced.
    func query(_ sql: String, binding binds: [any SQLBindable]) async throws -> [SQLRow]
}

extension SQLExecutor {
    /// Runs one statement and returns its rows.
    @discardableResult
    public func query(_ sql: String, _ binds: any SQLBindable...) async throws -> [SQLRow] {
        try await query(sql, binding: binds)
    }

    /// Runs one statement and returns its first row, if any.
    public func row(_ sql: String, _ binds: any SQLBindable...) async throws -> SQLRow? {
        try await query(sql, binding: binds).first
    }

    /// Runs one statement and returns the first column of its first row, nil without a row or for NULL.
    public func value<T: SQLColumnDecodable>(_ type: T.Type, _ sql: String, _ binds: any SQLBindable...)
        async throws -> T?
    {
        guard let first = try await query(sql, binding: binds).first?.values.first else { return nil }
        return try Optional<T>.decode(first, column: "1")
    }
}

/// The SQL an implementation speaks.
public enum SQLDialect: Sendable {
    /// SQLite 3.35 or later (RETURNING, upserts).
    case sqlite
    /// PostgreSQL 13 or later.
    case postgres
}

/// One schema change: its statements, written once with the few words that differ per dialect filled in.
public struct SQLMigration: Sendable {
    /// The migration's unique name, recorded once applied.
    public var name: String
    /// Writes the statements for a dialect.
    private let write: @Sendable (SQLDialect) -> [String]

    /// A migration named `name` whose statements (run in order, in one transaction) `write` writes.
    public init(_ name: String, _ write: @escaping @Sendable (SQLDialect) -> [String]) {
        self.name = name
        self.write = write
    }

    /// The statements for `dialect`.
    public func statements(for dialect: SQLDialect) -> [String] { write(dialect) }
}

extension SQLDialect {
    /// The floating-point column type: `REAL` (SQLite), `DOUBLE PRECISION` (PostgreSQL).
    public var real: String { self == .sqlite ? "REAL" : "DOUBLE PRECISION" }
    /// The bytes column type: `BLOB` (SQLite), `BYTEA` (PostgreSQL).
    public var blob: String { self == .sqlite ? "BLOB" : "BYTEA" }
}

/// A value bound to a statement or read from a column.
public enum SQLValue: Sendable, Hashable {
    /// SQL NULL.
    case null
    /// An integer.
    case integer(Int)
    /// A floating-point number.
    case real(Double)
    /// Text.
    case text(String)
    /// Bytes.
    case blob([UInt8])
}

/// A result row: its columns by name.
public struct SQLRow: Sendable {
    /// Column names and values, in the statement's order.
    public var values: [SQLValue]
    /// The column names, matching `values`.
    public var columns: [String]

    /// A row of `columns` holding `values`.
    public init(columns: [String], values: [SQLValue]) {
        self.columns = columns
        self.values = values
    }

    /// The value of `column` as `T`; throws when the column is missing or holds another type.
    public subscript<T: SQLColumnDecodable>(_ column: String) -> T {
        get throws {
            guard let index = columns.firstIndex(of: column) else { throw SQLDecodingError(column: column) }
            return try T.decode(values[index], column: column)
        }
    }
}

/// A column value that does not convert to the type asked for.
public struct SQLDecodingError: Error, CustomStringConvertible {
    /// The column.
    public var column: String
    /// Names the column.
    public var description: String { "column \(column) is missing or does not hold the expected type" }
}

/// A Swift type a statement's `?` can bind.
public protocol SQLBindable: Sendable {
    /// The value bound.
    var sqlValue: SQLValue { get }
}

/// A Swift type a column can be read as.
public protocol SQLColumnDecodable {
    /// Converts `value` read from `column`.
    static func decode(_ value: SQLValue, column: String) throws -> Self
}

extension Int: SQLBindable, SQLColumnDecodable {
    /// An integer.
    public var sqlValue: SQLValue { .integer(self) }
    /// From an integer column (or a whole real, as SQL aggregates may return).
    public static func decode(_ value: SQLValue, column: String) throws -> Int {
        switch value {
        case .integer(let int): return int
        case .real(let double) where double.rounded() == double: return Int(double)
        default: throw SQLDecodingError(column: column)
        }
    }
}

extension Double: SQLBindable, SQLColumnDecodable {
    /// A real.
    public var sqlValue: SQLValue { .real(self) }
    /// From a real or integer column.
    public static func decode(_ value: SQLValue, column: String) throws -> Double {
        switch value {
        case .real(let double): return double
        case .integer(let int): return Double(int)
        default: throw SQLDecodingError(column: column)
        }
    }
}

extension String: SQLBindable, SQLColumnDecodable {
    /// Text.
    public var sqlValue: SQLValue { .text(self) }
    /// From a text column.
    public static func decode(_ value: SQLValue, column: String) throws -> String {
        guard case .text(let text) = value else { throw SQLDecodingError(column: column) }
        return text
    }
}

extension Bool: SQLBindable, SQLColumnDecodable {
    /// Stored as the integer 0 or 1 in both dialects.
    public var sqlValue: SQLValue { .integer(self ? 1 : 0) }
    /// From an integer column: non-zero is true.
    public static func decode(_ value: SQLValue, column: String) throws -> Bool {
        try Int.decode(value, column: column) != 0
    }
}

extension [UInt8]: SQLBindable, SQLColumnDecodable {
    /// Bytes.
    public var sqlValue: SQLValue { .blob(self) }
    /// From a blob (or text) column.
    public static func decode(_ value: SQLValue, column: String) throws -> [UInt8] {
        switch value {
        case .blob(let bytes): return bytes
        case .text(let text): return Array(text.utf8)
        default: throw SQLDecodingError(column: column)
        }
    }
}

extension Optional: SQLBindable where Wrapped: SQLBindable {
    /// NULL or the wrapped value.
    public var sqlValue: SQLValue { self?.sqlValue ?? .null }
}

extension Optional: SQLColumnDecodable where Wrapped: SQLColumnDecodable {
    /// nil for NULL, else the wrapped type's conversion.
    public static func decode(_ value: SQLValue, column: String) throws -> Wrapped? {
        if case .null = value { return nil }
        return try Wrapped.decode(value, column: column)
    }
}

extension SQLValue: SQLBindable {
    /// Itself.
    public var sqlValue: SQLValue { self }
}

/// `?, ?, ?`: `count` placeholders, for an `IN (…)` list.
public func sqlPlaceholders(_ count: Int) -> String {
    Array(repeating: "?", count: count).joined(separator: ", ")
}

extension SQLDatabase {
    /// Answers whether `SELECT 1` comes back within `timeout`.
    public func ping(timeout: Duration = .seconds(2)) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await self.value(Int.self, "SELECT 1")) == 1 }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }
}
