import EnvoyFramework
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// The connections to one Redis server: a small pool of pipelined connections, idle connections for blocking
/// commands, a circuit breaker, and what the server said of itself when the latest connection was made.
final class RedisNode: Sendable {
    /// Where the server is, with the client's credentials, TLS and database.
    let endpoint: RedisEndpoint
    /// `host:port` (or the socket path): the node's name in a cluster's slot map.
    let name: String
    private let settings: RedisClient.Configuration
    private let tls: NIOSSLContext?
    private let slots: Mutex<[RedisConnection?]>
    private let poolCount: Int
    private let next = Atomic<Int>(0)
    private let connecting = SingleFlight<String, RedisConnection>()
    private let idleBlocking = Mutex([RedisConnection]())
    /// Set by `shutdown`: no connection is made or kept after it.
    private let isShutDown = Atomic<Bool>(false)
    let breaker: CircuitBreaker
    private let logger: Logger
    /// Calls sent to this server.
    private let calls: Counter
    private let server = Mutex<ServerInfo?>(nil)
    /// Called with what the server said of itself each time a connection is made.
    private let onConnect: @Sendable (RedisNode, ServerInfo) -> Void

    /// What a server says of itself in `INFO` (its default sections, which every version answers).
    struct ServerInfo: Sendable, Equatable {
        /// Its `run_id`: a new one after a restart, and on a replica promoted to master.
        var runID: String
        /// Whether it runs in cluster mode (`redis_mode:cluster`).
        var clusterMode: Bool
        /// Replicas connected to it (`connected_slaves`).
        var replicas: Int

        /// Parses an `INFO` reply; fields it lacks read as empty, false and 0.
        init(info: String) {
            var fields: [Substring: Substring] = [:]
            for line in info.split(whereSeparator: \.isNewline) {
                guard let colon = line.firstIndex(of: ":") else { continue }
                fields[line[..<colon]] = line[line.index(after: colon)...]
            }
            runID = fields["run_id"].map(String.init) ?? ""
            clusterMode = fields["redis_mode"] == "cluster"
            replicas = fields["connected_slaves"].flatMap { Int($0) } ?? 0
        }
    }

    init(
        endpoint: RedisEndpoint, settings: RedisClient.Configuration, tls: NIOSSLContext?, logger: Logger,
        calls: Counter, onConnect: @escaping @Sendable (RedisNode, ServerInfo) -> Void
    ) {
        self.calls = calls
        self.endpoint = endpoint
        self.name = endpoint.address.description
        self.settings = settings
        self.tls = tls
        self.logger = logger
        self.onConnect = onConnect
        self.poolCount = max(1, settings.poolSize)
        self.slots = Mutex([RedisConnection?](repeating: nil, count: max(1, settings.poolSize)))
        self.breaker = CircuitBreaker(threshold: settings.breakerThreshold, cooldown: settings.breakerCooldown)
    }

    /// What the server said of itself at the latest connection; nil before the first.
    var serverInfo: ServerInfo? { server.withLock { $0 } }

    /// Runs `call` on the next pooled connection (one on the caller's event loop when it runs on one), through the
    /// circuit breaker.
    nonisolated(nonsending) func onPooledConnection<T>(
        _ call: nonisolated(nonsending) (RedisConnection) async throws(RedisError) -> T
    ) async throws(RedisError) -> T {
        guard breaker.allowCall() else { throw .circuitOpen }
        calls.increment()
        let turn = next.wrappingAdd(1, ordering: .relaxed).oldValue
        let index: Int
        if let loop = Self.loopIndex(), loop < poolCount {
            // A caller on an event loop takes a connection living on that loop: its reply resumes it there.
            let loops = Self.loops.count
            index = loop + loops * (turn % ((poolCount - loop + loops - 1) / loops))
        } else {
            index = turn % poolCount
        }
        do throws(RedisError) {
            let result = try await call(try await connection(at: index))
            breaker.recordSuccess()
            return result
        } catch {
            if error.isTransportFailure { breaker.recordFailure() }
            throw error
        }
    }

    /// `PING` on a pooled connection (which makes one if none is open, and so learns what the server is).
    func ping() async throws(RedisError) -> RESPValue {
        try await onPooledConnection { connection throws(RedisError) in
            try await connection.send(["PING"], timeout: settings.commandTimeout)
        }
    }

    /// Lends a connection of its own for blocking commands (`BLPOP`…), so they never stall other callers.
    func withDedicatedConnection<T: Sendable>(
        _ body: (RedisConnection) async throws(RedisError) -> T
    ) async throws(RedisError) -> T {
        guard breaker.allowCall() else { throw .circuitOpen }
        var connection = idleBlocking.withLock { $0.popLast() }
        if connection?.isActive != true {
            connection = try await connect(on: MultiThreadedEventLoopGroup.singleton.next())
        }
        let borrowed = connection!
        do throws(RedisError) {
            let result = try await body(borrowed)
            breaker.recordSuccess()
            if borrowed.isActive && !isShutDown.load(ordering: .sequentiallyConsistent) {
                idleBlocking.withLock { $0.append(borrowed) }
            } else {
                borrowed.close()
            }
            return result
        } catch {
            borrowed.close()
            if error.isTransportFailure { breaker.recordFailure() }
            throw error
        }
    }

    /// Closes every connection; later calls fail instead of connecting again, and a connection lent out for a
    /// blocking command is closed when it comes back.
    func shutdown() {
        isShutDown.store(true, ordering: .sequentiallyConsistent)
        slots.withLock { slots in
            for index in slots.indices {
                slots[index]?.close()
                slots[index] = nil
            }
        }
        idleBlocking.withLock { connections in
            for connection in connections { connection.close() }
            connections.removeAll()
        }
    }

    private nonisolated(nonsending) func connection(at index: Int) async throws(RedisError) -> RedisConnection {
        if let live = slots.withLock({ $0[index]?.isActive == true ? $0[index] : nil }) { return live }
        do {
            return try await connecting.run("slot-\(index)") {
                let connection = try await connect(on: Self.loops[index % Self.loops.count])
                slots.withLock { $0[index] = connection }
                return connection
            }
        } catch let error as RedisError {
            throw error
        } catch {
            throw .connectionFailed(RedisConnection.describe(error))
        }
    }

    /// NIO's shared event loops; pooled connection `i` lives on loop `i % count`.
    static let loops = Array(MultiThreadedEventLoopGroup.singleton.makeIterator())

    /// The index of the event loop running the caller, if it runs on one.
    static func loopIndex() -> Int? {
        guard let current = MultiThreadedEventLoopGroup.currentEventLoop else { return nil }
        return loops.firstIndex { $0 === current }
    }

    private func connect(on eventLoop: any EventLoop) async throws(RedisError) -> RedisConnection {
        guard !isShutDown.load(ordering: .sequentiallyConsistent) else {
            throw .connectionFailed("the client was shut down")
        }
        do {
            let connection = try await RedisConnection.connect(
                to: endpoint, on: eventLoop, tls: tls, timeout: settings.commandTimeout,
                maxReplyBytes: settings.maxReplyBytes)
            // The run id tells a restart (or failover) apart from a dropped connection; the mode and replicas
            // say whether the server is one of a cluster and whether a write can wait for a replica.
            let reply = try? await connection.send(["INFO"], timeout: settings.commandTimeout)
            let info = ServerInfo(info: reply?.string ?? "")
            let previous = server.withLock { current in
                defer { current = info }
                return current
            }
            if let previous, previous.runID != info.runID {
                logger.warning("redis server restarted or failed over", metadata: ["redis": "\(endpoint)"])
            }
            logger.debug("redis connected", metadata: ["redis": "\(endpoint)"])
            onConnect(self, info)
            return connection
        } catch {
            logger.warning("redis connection failed", metadata: ["redis": "\(name)", "error": "\(error)"])
            throw error
        }
    }
}
