import Foundation
import EnvoyFramework
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
    func create(userID: String, title: String, message: String, type: String) async throws -> UserNotification?
    /// Marks one read; nil if it is not the user's.
    func markRead(userID: String, id: String) async throws -> UserNotification?
    /// Marks all read; returns how many changed.
    func markAllRead(userID: String) async throws -> Int
    /// Deletes one; false if it is not the user's.
    func delete(userID: String, id: String) async throws -> Bool
}

/// `NotificationStore` on the application's SQL database.
public struct SQLNotificationStore: NotificationStore {
    let database: any SQLDatabase

    /// A store on `database`.
    public init(database: any SQLDatabase) {
        self.database = database
    }

    /// Newest first, with the unread total.
    public func list(userID: String, query: NotificationQuery) async throws -> NotificationPage {
        let filter = query.unreadOnly ? "AND read = 0" : ""
        let rows = try await database.query(
            """
            SELECT \(Self.columns) FROM notifications WHERE user_id = ? \(filter)
            ORDER BY created_at DESC, \(database.dialect.insertionOrder) DESC LIMIT ? OFFSET ?
            """,
            userID, query.limit, query.offset)
        let unread = try await database.value(
            Int.self, "SELECT COUNT(*) FROM notifications WHERE user_id = ? AND read = 0", userID)
        return NotificationPage(notifications: try rows.map(Self.notification), unreadCount: unread ?? 0)
    }

    /// Inserts and returns the notification; nil when no user `userID` exists (a token outliving its account).
    public func create(userID: String, title: String, message: String, type: String) async throws -> UserNotification? {
        let notification = UserNotification(
            id: UUID.random().uuidString.lowercased(), title: title, message: message, type: type, read: false,
            createdAt: Timestamp.now())
        let inserted = try await database.query(
            """
            INSERT INTO notifications (id, user_id, title, message, type, read, created_at)
            SELECT ?, id, ?, ?, ?, 0, ? FROM users WHERE id = ? RETURNING id
            """,
            notification.id, title, message, type, notification.createdAt, userID)
        return inserted.isEmpty ? nil : notification
    }

    /// Sets `read` on the user's notification.
    public func markRead(userID: String, id: String) async throws -> UserNotification? {
        try await database.row(
            "UPDATE notifications SET read = 1 WHERE id = ? AND user_id = ? RETURNING \(Self.columns)", id, userID
        ).map(Self.notification)
    }

    /// Sets `read` on all the user's unread notifications.
    public func markAllRead(userID: String) async throws -> Int {
        try await database.query(
            "UPDATE notifications SET read = 1 WHERE user_id = ? AND read = 0 RETURNING id", userID
        ).count
    }

    /// Deletes the user's notification.
    public func delete(userID: String, id: String) async throws -> Bool {
        try await !database.query("DELETE FROM notifications WHERE id = ? AND user_id = ? RETURNING id", id, userID)
            .isEmpty
    }

    private static let columns = "id, title, message, type, read, created_at"

    private static func notification(_ row: SQLRow) throws -> UserNotification {
        UserNotification(
            id: try row["id"], title: try row["title"], message: try row["message"], type: try row["type"],
            read: try row["read"], createdAt: try row["created_at"])
    }
}
