import EnvoyFramework
import Foundation
import HTTPTypes
import Logging
import Metrics

/// The application's schema: every table Envoy owns, in order, for SQLite and PostgreSQL.
public enum AppSchema {
    /// Every migration, in order.
    public static var migrations: [SQLMigration] {
        [users, notifications] + BillingStore.migrations + SQLTaskQueue.migrations
    }

    static let users = SQLMigration("users_v1") { sql in
        [
            """
            CREATE TABLE users (
                id TEXT PRIMARY KEY NOT NULL,
                email TEXT NOT NULL\(sql == .sqlite ? " UNIQUE COLLATE NOCASE" : ""),
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
            """
        ]
            // PostgreSQL: emails unique and looked up regardless of case, as SQLite's NOCASE column does.
            + (sql == .postgres ? ["CREATE UNIQUE INDEX users_email ON users (lower(email))"] : [])
    }

    static let notifications = SQLMigration("notifications_v1") { sql in
        [
            """
            CREATE TABLE notifications (
                id TEXT PRIMARY KEY NOT NULL,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                title TEXT NOT NULL,
                message TEXT NOT NULL,
                type TEXT NOT NULL,
                read INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL\(sql == .postgres ? ",\n    seq BIGSERIAL NOT NULL" : "")
            )
            """,
            "CREATE INDEX notifications_by_user ON notifications (user_id, created_at DESC)",
        ]
    }
}

extension SQLDialect {
    /// `column = ?` compared regardless of case (the users.email column).
    func equalsIgnoringCase(_ column: String) -> String {
        self == .sqlite ? "\(column) = ?" : "lower(\(column)) = lower(?)"
    }

    /// The column giving notifications their insertion order.
    var insertionOrder: String { self == .sqlite ? "rowid" : "seq" }
}

/// Timestamps as stored and served: ISO 8601 with fractional seconds, UTC.
enum Timestamp {
    /// A value-type format style: made once, shared by every write (no formatter built per call).
    private static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    static func now() -> String {
        Date().formatted(style)
    }
}
