import Foundation
import GRDB
import HTTPTypes
import Logging

/// One notification as the API shows it.
public struct UserNotification: Codable, Sendable, Equatable {
    /// The notification's id.
    public var id: String
    /// Short title.
    public var title: String
    /// Body text.
    public var message: String
    /// Kind (`info` by default).
    public var type: String
    /// Whether the user has read it.
    public var read: Bool
    /// Creation time, ISO 8601.
    public var createdAt: String

    enum CodingKeys: String, CodingKey {
        case id, title, message, type, read
        case createdAt = "created_at"
    }
}

/// A page of a user's notifications with the unread total.
public struct NotificationPage: Codable, Sendable, Equatable {
    /// The notifications, newest first.
    public var notifications: [UserNotification]
    /// Unread notifications in all (not just this page).
    public var unreadCount: Int

    enum CodingKeys: String, CodingKey {
        case notifications
        case unreadCount = "unread_count"
    }
}

/// Which notifications to list.
public struct NotificationQuery: Sendable, Hashable {
    /// Page size.
    public var limit: Int
    /// Items to skip.
    public var offset: Int
    /// Only unread ones.
    public var unreadOnly: Bool

    /// The cache variant naming this query.
    var cacheVariant: String { "limit=\(limit)&offset=\(offset)&unread_only=\(unreadOnly)" }
}

/// Where notifications live.
public protocol NotificationStore: Sendable {
    /// A page of `userID`'s notifications.
    func list(userID: String, query: NotificationQuery) async throws -> NotificationPage
    /// Creates one.
    func create(userID: String, title: String, message: String, type: String) async throws -> UserNotification
    /// Marks one read; nil if it is not the user's.
    func markRead(userID: String, id: String) async throws -> UserNotification?
    /// Marks all read; returns how many changed.
    func markAllRead(userID: String) async throws -> Int
    /// Deletes one; false if it is not the user's.
    func delete(userID: String, id: String) async throws -> Bool
}

/// `NotificationStore` on SQLite.
public struct SQLiteNotificationStore: NotificationStore {
    let database: AppDatabase

    /// A store on `database`.
    public init(database: AppDatabase) {
        self.database = database
    }

    /// Newest first, with the unread total, in one read transaction.
    public func list(userID: String, query: NotificationQuery) async throws -> NotificationPage {
        try await database.pool.read { db in
            let filter = query.unreadOnly ? "AND read = 0" : ""
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT id, title, message, type, read, created_at FROM notifications
                    WHERE user_id = ? \(filter) ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?
                    """,
                arguments: [userID, query.limit, query.offset])
            let unread =
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM notifications WHERE user_id = ? AND read = 0", arguments: [userID])
                ?? 0
            return NotificationPage(notifications: rows.map(Self.notification), unreadCount: unread)
        }
    }

    /// Inserts and returns the notification.
    public func create(userID: String, title: String, message: String, type: String) async throws -> UserNotification {
        let notification = UserNotification(
            id: UUID().uuidString.lowercased(), title: title, message: message, type: type, read: false,
            createdAt: Timestamp.now())
        try await database.pool.write { db in
            try db.execute(
                sql:
                    "INSERT INTO notifications (id, user_id, title, message, type, read, created_at) VALUES (?, ?, ?, ?, ?, 0, ?)",
                arguments: [notification.id, userID, title, message, type, notification.createdAt])
        }
        return notification
    }

    /// Sets `read` on the user's notification.
    public func markRead(userID: String, id: String) async throws -> UserNotification? {
        try await database.pool.write { db in
            try db.execute(
                sql: "UPDATE notifications SET read = 1 WHERE id = ? AND user_id = ?", arguments: [id, userID])
            return try Row.fetchOne(
                db,
                sql:
                    "SELECT id, title, message, type, read, created_at FROM notifications WHERE id = ? AND user_id = ?",
                arguments: [id, userID]
            ).map(Self.notification)
        }
    }

    /// Sets `read` on all the user's unread notifications.
    public func markAllRead(userID: String) async throws -> Int {
        try await database.pool.write { db in
            try db.execute(sql: "UPDATE notifications SET read = 1 WHERE user_id = ? AND read = 0", arguments: [userID])
            return db.changesCount
        }
    }

    /// Deletes the user's notification.
    public func delete(userID: String, id: String) async throws -> Bool {
        try await database.pool.write { db in
            try db.execute(sql: "DELETE FROM notifications WHERE id = ? AND user_id = ?", arguments: [id, userID])
            return db.changesCount == 1
        }
    }

    private static func notification(_ row: Row) -> UserNotification {
        UserNotification(
            id: row["id"], title: row["title"], message: row["message"], type: row["type"], read: row["read"],
            createdAt: row["created_at"])
    }
}
