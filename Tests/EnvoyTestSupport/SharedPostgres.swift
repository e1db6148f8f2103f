import EnvoyFramework
import EnvoyPlugins
import Foundation
import Logging

/// The PostgreSQL server `scripts/test` starts (`ENVOY_TEST_POSTGRES_URL`); each test takes a fresh database on it.
public enum SharedPostgres {
    /// The server's URL (its maintenance database), when set.
    public static let url = ProcessInfo.processInfo.environment["ENVOY_TEST_POSTGRES_URL"]

    /// Whether the backend tests run on PostgreSQL instead of SQLite (`ENVOY_TEST_DATABASE=postgres`).
    public static let backendTestsUsePostgres = ProcessInfo.processInfo.environment["ENVOY_TEST_DATABASE"] == "postgres"

    /// Creates an empty database and returns its URL (the server's URL with the database's name as its path).
    public static func freshDatabase() throws -> String {
        guard let url, var components = URLComponents(string: url) else { throw Unavailable() }
        let name = "envoy_test_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        let psql = Process()
        psql.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        psql.arguments = ["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", "CREATE DATABASE \(name)"]
        psql.standardOutput = FileHandle.nullDevice
        try psql.run()
        psql.waitUntilExit()
        guard psql.terminationStatus == 0 else { throw Unavailable(reason: "psql exited \(psql.terminationStatus)") }
        components.path = "/\(name)"
        return components.string ?? url
    }

    /// No server to test against.
    public struct Unavailable: Error, CustomStringConvertible {
        /// Why.
        public var reason = "ENVOY_TEST_POSTGRES_URL is unset: run scripts/test, which starts PostgreSQL"
        /// The reason.
        public var description: String { reason }
    }
}

/// The databases the store and queue tests run on.
public enum TestDatabase: String, CaseIterable, Sendable {
    /// A fresh SQLite file.
    case sqlite
    /// A fresh database on the shared PostgreSQL server.
    case postgres

    /// Where a fresh database of this kind is: a file path or a PostgreSQL URL.
    public func freshLocation() throws -> String {
        switch self {
        case .sqlite:
            FileManager.default.temporaryDirectory.appendingPathComponent("envoy-\(UUID().uuidString).db").path
        case .postgres: try SharedPostgres.freshDatabase()
        }
    }

    /// A connection to the database at `location`, with `migrations` applied.
    public func open(_ location: String, migrations: [SQLMigration]) async throws -> any SQLDatabase {
        var logger = Logger(label: "test.database")
        logger.logLevel = .critical
        let database: any SQLDatabase =
            self == .sqlite
            ? try SQLiteDatabase(path: location)
            : try PostgresDatabase(url: location, maximumConnections: 8, logger: logger)
        try await database.migrate(migrations)
        return database
    }
}
