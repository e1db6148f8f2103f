import EnvoyFramework
import Foundation
import HTTPTypes
import Hummingbird
import Logging

struct NewNotification: Decodable {
    var title: String
    var message: String
    var type: String?
}

struct MarkedAllRead: Encodable {
    var updated: Int
}

extension Backend {
    /// `/api/notifications/…`: list (cached per user and query), create, read, read-all, delete (each invalidates).
    func addNotificationRoutes(to router: RouterGroup<EnvoyRequestContext>, reads: CachedReads) {
        let notifications = self.notifications
        Self.cachedRoute(
            "/api/notifications", on: router, reads: reads, cache: notificationsCache,
            variant: { request in try Self.notificationQuery(request.uri.queryParameters).cacheVariant }
        ) { userID, request in
            try await notifications.list(userID: userID, query: try Self.notificationQuery(request.uri.queryParameters))
        }

        router.post("/api/notifications") { request, context in
            let userID = try context.requireUser()
            let body = try await json.decode(NewNotification.self, from: request)
            let title = try Validate.text(body.title, field: "title", maxLength: 200)
            let message = try Validate.text(body.message, field: "message", maxLength: 5000)
            let type = try Validate.text(body.type ?? "info", field: "type", maxLength: 50)
            guard
                let created = try await notifications.create(
                    userID: userID, title: title, message: message, type: type)
            else { throw Problem.unauthorized("The account for this token no longer exists.") }
            await notificationsCache.invalidate(scope: userID)
            return try JSONResponse.make(created, status: .created)
        }

        router.put("/api/notifications/read-all") { _, context in
            let userID = try context.requireUser()
            let updated = try await notifications.markAllRead(userID: userID)
            await notificationsCache.invalidate(scope: userID)
            return try JSONResponse.make(MarkedAllRead(updated: updated))
        }

        router.put("/api/notifications/{id}/read") { _, context in
            let userID = try context.requireUser()
            let id = try context.parameters.require("id")
            guard let notification = try await notifications.markRead(userID: userID, id: id) else {
                throw Problem.notFound("No notification \(id) for this user.")
            }
            await notificationsCache.invalidate(scope: userID)
            return try JSONResponse.make(notification)
        }

        router.delete("/api/notifications/{id}") { _, context in
            let userID = try context.requireUser()
            let id = try context.parameters.require("id")
            guard try await notifications.delete(userID: userID, id: id) else {
                throw Problem.notFound("No notification \(id) for this user.")
            }
            await notificationsCache.invalidate(scope: userID)
            return Response(status: .noContent)
        }
    }

    static func notificationQuery(_ parameters: Parameters) throws -> NotificationQuery {
        func integer(_ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
            guard let raw = parameters.get(name) else { return value }
            guard let number = Int(raw), range.contains(number) else {
                throw Problem.invalidField(name, "must be an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            return number
        }
        var unreadOnly = false
        if let raw = parameters.get("unread_only") {
            switch raw.lowercased() {
            case "true", "1": unreadOnly = true
            case "false", "0", "": unreadOnly = false
            default: throw Problem.invalidField("unread_only", "must be true or false")
            }
        }
        return NotificationQuery(
            limit: try integer("limit", default: 20, range: 1...100),
            offset: try integer("offset", default: 0, range: 0...1_000_000),
            unreadOnly: unreadOnly)
    }
}
