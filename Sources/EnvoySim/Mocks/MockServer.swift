import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle
import NIOCore
import Synchronization

/// A loopback HTTP server on a free port, for a mock provider; it runs until `stop()`.
public final class MockServer: Sendable {
    /// The port it listens on.
    public let port: Int
    private let services: ServiceGroup
    private let task: Task<Void, any Error>

    /// `http://127.0.0.1:PORT`.
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    private init(port: Int, services: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.services = services
        self.task = task
    }

    /// Starts `router` on 127.0.0.1 and returns once it accepts connections.
    public static func start(_ router: Router<BasicRequestContext>, name: String) async throws -> MockServer {
        var logger = Logger(label: "envoy.mock.\(name)")
        logger.logLevel = .error
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let application = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: name),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            }, logger: logger)
        let services = ServiceGroup(
            configuration: .init(services: [application], gracefulShutdownSignals: [], logger: logger))
        let task = Task { try await services.run() }
        guard let port = await ports.first(where: { _ in true }), port > 0 else {
            task.cancel()
            throw MockServerError.didNotStart(name)
        }
        return MockServer(port: port, services: services, task: task)
    }

    /// Stops accepting and closes the server.
    public func stop() async {
        await services.triggerGracefulShutdown()
        _ = try? await task.value
    }
}

/// A mock that could not start (a struct, so that a new reason breaks no caller).
public struct MockServerError: Error, CustomStringConvertible {
    /// One line.
    public let description: String

    /// The server named `name` did not bind.
    public static func didNotStart(_ name: String) -> MockServerError {
        MockServerError(description: "mock \(name) did not start")
    }
}

/// Misbehaviour a mock applies to the requests it receives: a delay on every request, and failures queued for
/// the next ones (a status with headers and a JSON message), as the real provider does when overloaded.
public final class MockFaults: Sendable {
    private struct State {
        var latency: Duration = .zero
        var failures: [(status: Int, headers: [String: String], message: String)] = []
    }
    private let state = Mutex(State())

    /// No faults.
    public init() {}

    /// Answers the next `count` requests with `status` (e.g. 429 with `X-RateLimit-Reset`, 500, 503).
    public func fail(next count: Int, status: Int, headers: [String: String] = [:], message: String = "mock failure") {
        state.withLock { $0.failures += Array(repeating: (status, headers, message), count: count) }
    }

    /// Delays every request by `latency` before answering (zero: none).
    public func setLatency(_ latency: Duration) {
        state.withLock { $0.latency = latency }
    }

    /// Clears every fault.
    public func reset() {
        state.withLock { $0 = State() }
    }

    /// Waits the latency; returns the failure response this request gets, if one is queued.
    func apply() async throws -> Response? {
        let (latency, failure) = state.withLock { state in
            (state.latency, state.failures.isEmpty ? nil : state.failures.removeFirst())
        }
        if latency > .zero { try await Task.sleep(for: latency) }
        guard let failure else { return nil }
        var response = MockJSON.response(["message": failure.message], status: failure.status)
        for (name, value) in failure.headers {
            if let field = HTTPField.Name(name) { response.headers[field] = value }
        }
        return response
    }
}

/// JSON bodies for mock responses.
enum MockJSON {
    static func response(_ object: Any, status: Int) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(
            status: .init(code: status), headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
