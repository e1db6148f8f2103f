import EnvoyFramework
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOPosix
import Testing

@Suite("Requests handled on their connection's event loop")
struct EventLoopAffinityTests {
    @Test("a task preferring a loop's executor runs there, also after it suspends")
    func executor() async throws {
        let loops = Array(MultiThreadedEventLoopGroup.singleton.makeIterator())
        for loop in loops {
            let stayed = await withTaskExecutorPreference(EventLoopTaskExecutor.on(loop)) {
                var stayed = loop.inEventLoop
                for _ in 0..<20 {
                    try? await Task.sleep(for: .microseconds(100))
                    await Task.yield()
                    stayed = stayed && loop.inEventLoop
                }
                let child = await withTaskGroup(of: Bool.self) { group in  // child tasks inherit the preference
                    group.addTask { loop.inEventLoop }
                    return await group.next() ?? false
                }
                return stayed && child
            }
            #expect(stayed)
        }
        #expect(EventLoopTaskExecutor.on(loops[0]) === EventLoopTaskExecutor.on(loops[0]))
    }

    /// Where the handler of `GET /` ran, over 20 keep-alive requests, with `http1OnEventLoops` or plain `http1`.
    func handled(onEventLoops: Bool) async throws -> [String] {
        let router = Router()
        router.get("/") { _, _ in
            try? await Task.sleep(for: .microseconds(200))  // resumes on the connection's loop, or the pool
            return MultiThreadedEventLoopGroup.currentEventLoop == nil ? "pool" : "loop"
        }
        let app = Application(router: router, server: onEventLoops ? .http1OnEventLoops() : .http1())
        return try await app.test(.live) { client in
            var answers: [String] = []
            for _ in 0..<20 {
                answers.append(try await client.execute(uri: "/", method: .get) { String(buffer: $0.body) })
            }
            return answers
        }
    }

    @Test("with http1OnEventLoops every request runs on an event loop; with plain http1 on the concurrency pool")
    func server() async throws {
        #expect(try await handled(onEventLoops: true) == Array(repeating: "loop", count: 20))
        #expect(try await handled(onEventLoops: false) == Array(repeating: "pool", count: 20))
    }
}
