import EnvoyFramework
import Foundation
import Logging
import Testing
import EnvoyTestSupport

@testable import EnvoyPlugins

/// PostgreSQL stopped for real (`pg_ctl stop -m immediate`) under a running `PostgresDatabase`.
@Suite("PostgreSQL outages: statements fail within their deadline, transactions all-or-nothing, recovery")
struct PostgresOutageTests {
    @Test("server stopped: statements fail within the deadline (never hang), ping says down; restarted: recovers")
    func outageAndRecovery() async throws {
        let server = try PostgresServer()
        let database = try PostgresDatabase(url: server.url, statementTimeout: .seconds(2), logger: quiet)
        try await database.waitUntilReachable(timeout: .seconds(10))
        try await database.query("CREATE TABLE t (n INTEGER NOT NULL)")
        try await database.query("INSERT INTO t (n) VALUES (?)", 1)

        try server.stop()
        let started = ContinuousClock.now
        await #expect(throws: PostgresFailure.self) { try await database.query("SELECT n FROM t") }
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(await database.ping(timeout: .seconds(1)) == false)

        try server.start()
        let recovered = await eventually(timeout: .seconds(20)) {
            (try? await database.value(Int.self, "SELECT COUNT(*) FROM t")) == 1
        }
        #expect(recovered)
    }

    @Test("server stopped inside a transaction: it throws, and after a restart none of its writes are there")
    func transactionCutShort() async throws {
        let server = try PostgresServer()
        let database = try PostgresDatabase(url: server.url, statementTimeout: .seconds(2), logger: quiet)
        try await database.waitUntilReachable(timeout: .seconds(10))
        try await database.query("CREATE TABLE t (n INTEGER NOT NULL)")
        await #expect(throws: (any Error).self) {
            try await database.transaction { db in
                try await db.query("INSERT INTO t (n) VALUES (?)", 1)
                try server.stop()
                try await db.query("INSERT INTO t (n) VALUES (?)", 2)
            }
        }
        try server.start()
        let count = await eventually(timeout: .seconds(20)) {
            (try? await database.value(Int.self, "SELECT COUNT(*) FROM t")) == 0
        }
        #expect(count, "a write of the cut-short transaction survived")
    }
}
