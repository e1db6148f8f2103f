import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

@testable import EnvoySim

@Suite("LoadClient: the generator's HTTP/1.1 client")
struct LoadClientTests {
    /// Set to let `/stuck` answer.
    static let unstick = Atomic<Bool>(false)

    static func server() async throws -> MockServer {
        let router = Router()
        router.get("/ok") { _, _ in "ok" }
        router.post("/echo") { request, _ in
            String(buffer: try await request.body.collect(upTo: 1 << 20))
        }
        router.get("/slow") { _, _ in
            try await Task.sleep(for: .milliseconds(100))
            return "slow"
        }
        router.get("/stuck") { _, _ in
            let deadline = ContinuousClock.now + .seconds(20)
            while !unstick.load(ordering: .relaxed) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            return "late"
        }
        return try await MockServer.start(router, name: "load")
    }

    @Test("keep-alive: sequential requests share one connection; bodies and headers go and come back")
    func keepAlive() async throws {
        let server = try await Self.server()
        let client = LoadClient()
        for index in 0..<20 {
            let response = try await client.send(.GET, server.baseURL, "/ok")
            #expect(response.status == 200 && String(buffer: response.body) == "ok")
            let echoed = try await client.send(
                .POST, server.baseURL, "/echo", headers: [("Content-Type", "text/plain")],
                body: ByteBuffer(string: "body \(index)"))
            #expect(String(buffer: echoed.body) == "body \(index)")
        }
        #expect(try client.pool(for: server.baseURL).openConnections == 1)
        #expect(try await client.send(.GET, server.baseURL, "/missing").status == 404)
        client.shutdown()
        await server.stop()
    }

    @Test("at most the limit of connections; the other requests wait for one and all are answered")
    func limit() async throws {
        let server = try await Self.server()
        let client = LoadClient(maxConnectionsPerServer: 3)
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<12 { group.addTask { try await client.send(.GET, server.baseURL, "/slow").status } }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses == Array(repeating: 200, count: 12))
        #expect(try client.pool(for: server.baseURL).openConnections == 3)
        client.shutdown()
        await server.stop()
    }

    @Test("an unanswered request fails at its deadline; a server gone fails at once, never hangs")
    func failures() async throws {
        let server = try await Self.server()
        // A deadline a loaded machine (every suite runs at once) still meets for a plain request.
        let client = LoadClient(timeout: .seconds(2))
        let start = ContinuousClock.now
        await #expect(throws: LoadClient.Failure.timedOut) { try await client.send(.GET, server.baseURL, "/stuck") }
        #expect(ContinuousClock.now - start < .seconds(6))
        Self.unstick.store(true, ordering: .relaxed)
        #expect(try await client.send(.GET, server.baseURL, "/ok").status == 200)  // a fresh connection
        await server.stop()
        let gone = ContinuousClock.now
        await #expect(throws: (any Error).self) { try await client.send(.GET, server.baseURL, "/ok") }
        #expect(ContinuousClock.now - gone < .seconds(3))
        #expect(try client.pool(for: server.baseURL).openConnections == 0)
        await #expect(throws: LoadClient.Failure.badURL("ftp://x")) { try await client.send(.GET, "ftp://x", "/") }
        client.shutdown()
    }
}
