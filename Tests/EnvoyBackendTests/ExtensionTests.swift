import EnvoyBackend
import EnvoyFramework
import EnvoyTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import ServiceLifecycle
import Synchronization
import Testing

/// The README's example of extending the backend, as application code writes it (public API only).
struct Greeting: Encodable, ResponseEncodable {
    var hello: String
}

struct ResizeAvatar: TaskHandler {
    struct Payload: Codable, Sendable { var userID: String }
    static let taskType = "resize_avatar"
    static let queue = "media"
    let done: @Sendable (String) -> Void

    func handle(_ payload: Payload, context: TaskContext) async throws { done(payload.userID) }
}

@Suite("Application code adds its own routes and task types to the backend")
struct ExtensionTests {
    @Test("an added route is served behind the token check and the limiter; an added task type runs in the worker")
    func addedRouteAndTask() async throws {
        let resized = Mutex([String]())
        var backend = try await TestStack().backend()
        backend.register(ResizeAvatar(done: { user in resized.withLock { $0.append(user) } }))
        let queue = backend.taskQueue
        backend.addRoutes { routes in
            routes.get("/v1/hello") { _, context in Greeting(hello: try context.requireUser()) }
            routes.post("/v1/avatar") { _, context in
                try await queue.enqueue(ResizeAvatar.self, .init(userID: try context.requireUser()))
                return Response(status: .accepted)
            }
        }
        try await backend.application(inProcessWorker: true).test(.ahc(.http)) { client in
            let token = try await client.signUp()
            let hello = try await client.send(.get, "/v1/hello", token: token)
            #expect(hello.status == .ok)
            #expect(hello.headers[.init("X-RateLimit-Limit")!] == "100", "the authenticated policy counts it")
            #expect(try await client.send(.get, "/v1/hello").status == .unauthorized)
            #expect(try await client.send(.head, "/v1/hello", token: token).status == .ok)
            #expect(try await client.send(.post, "/v1/avatar", token: token).status == .accepted)
            #expect(await eventually { resized.withLock { $0.count } == 1 })
        }
    }
}
