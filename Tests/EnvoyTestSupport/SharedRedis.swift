import EnvoySim
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One redis-server shared by a test process: the one `scripts/test` started (`ENVOY_TEST_REDIS_URL`), or our own.
public enum SharedRedis {
    private static let configured = ProcessInfo.processInfo.environment["ENVOY_TEST_REDIS_URL"]
    private static let own: RedisServer? = {
        guard configured == nil else { return nil }
        let server = try! RedisServer()
        // A static is never deinitialised: stop the server when the test process exits.
        ownPID.store(server.pid, ordering: .relaxed)
        atexit { kill(ownPID.load(ordering: .relaxed), SIGKILL) }
        return server
    }()
    private static let ownPID = Atomic<Int32>(0)
    /// The shared server's URL.
    public static let url: String = configured ?? own!.url

    /// A key prefix no other test uses.
    public static func prefix() -> String { "t\(UUID().uuidString.prefix(8))" }
}
