import Crypto
import EnvoyFramework
import Foundation
import ServiceLifecycle
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// A Redis client for many concurrent callers: a small pool of pipelined connections, a deadline on every
/// call, a circuit breaker that fails fast while Redis is down, reconnection on demand, scripts by `EVALSHA`.
/// Calls run on their caller's executor (`nonisolated(nonsending)`): a request's task does not hop executors on
/// its way into the client and back (each hop was a runtime switch and a look-up of the task's executor).
public final class RedisClient: Sendable {
    /// Client settings.
    public struct Configuration: Sendable {
        /// Where Redis is.
        public var endpoint: RedisEndpoint
        /// Multiplexed connections per process; connection `i` lives on NIO's shared event loop `i % loops`.
        public var poolSize: Int
        /// The longest a call waits for its reply (and for a connection to be made).
        public var commandTimeout: Duration
        /// Replies larger than this drop the connection instead of exhausting memory.
        public var maxReplyBytes: Int
        /// Consecutive transport failures that open the circuit.
        public var breakerThreshold: Int
        /// How long the circuit stays open before a probe.
        public var breakerCooldown: Duration

        /// Settings with sensible defaults: one connection per event loop (per core), 500 ms deadline, 64 MiB
        /// replies, breaker 5 / 1 s.
        public init(
            endpoint: RedisEndpoint, poolSize: Int = System.coreCount, commandTimeout: Duration = .milliseconds(500),
            maxReplyBytes: Int = 64 << 20, breakerThreshold: Int = 5, breakerCooldown: Duration = .seconds(1)
        ) {
            self.endpoint = endpoint
            self.poolSize = poolSize
            self.commandTimeout = commandTimeout
            self.maxReplyBytes = maxReplyBytes
            self.breakerThreshold = breakerThreshold
            self.breakerCooldown = breakerCooldown
        }
    }

    /// The settings in use.
    public let configuration: Configuration
    private let tls: NIOSSLContext?
    private let slots: Mutex<[RedisConnection?]>
    private let poolCount: Int
    private let next = Atomic<Int>(0)
    private let connecting = SingleFlight<String, RedisConnection>()
    private let idleBlocking = Mutex([RedisConnection]())
    /// Set by `shutdown`: no connection is made or kept after it.
    private let isShutDown = Atomic<Bool>(false)
    private let breaker: CircuitBreaker
    private let logger: Logger
    private let runIDs = Mutex<String?>(nil)

    /// A client for `configuration`; connections are made on first use.
    public init(configuration: Configuration, logger: Logger) throws(RedisError) {
        self.configuration = configuration
        self.logger = logger
        self.poolCount = max(1, configuration.poolSize)
        self.slots = Mutex([RedisConnection?](repeating: nil, count: max(1, configuration.poolSize)))
        self.breaker = CircuitBreaker(
            threshold: configuration.breakerThreshold, cooldown: configuration.breakerCooldown)
        if configuration.endpoint.tls {
            var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
            if let caFile = configuration.endpoint.caFile {
                guard FileManager.default.isReadableFile(atPath: caFile) else {
                    throw .invalidURL("REDIS_TLS_CA_FILE \(caFile) cannot be read")
                }
                tlsConfiguration.additionalTrustRoots = [.file(caFile)]
            }
            do {
                tls = try NIOSSLContext(configuration: tlsConfiguration)
            } catch {
                throw .invalidURL("TLS could not be set up: \(error)")
            }
        } else {
            tls = nil
        }
    }

    /// Sends a command; an error reply is thrown as `RedisError.server`.
    @discardableResult
    public nonisolated(nonsending) func send(_ arguments: RedisArgument...) async throws(RedisError) -> RESPValue {
        try await send(arguments)
    }

    /// Sends a command; an error reply is thrown as `RedisError.server`.
    @discardableResult
    public nonisolated(nonsending) func send(_ arguments: [RedisArgument]) async throws(RedisError) -> RESPValue {
        let reply = try await sendAllowingErrorReply(arguments)
        if case .error(let message) = reply { throw .server(message) }
        return reply
    }

    /// Sends `commands` back to back on one connection in one write and returns their replies in order: one
    /// round trip for all. Error replies are returned in place, not thrown. Not a transaction (`MULTI`).
    public nonisolated(nonsending) func pipeline(_ commands: [[RedisArgument]]) async throws(RedisError) -> [RESPValue]
    {
        try await onPooledConnection { connection throws(RedisError) in
            try await connection.pipeline(commands, timeout: configuration.commandTimeout)
        }
    }

    /// Runs `script` by `EVALSHA`, loading it with `EVAL` when Redis does not have it (after a restart or
    /// `SCRIPT FLUSH`).
    @discardableResult
    public nonisolated(nonsending) func run(
        _ script: RedisScript, keys: [String], arguments: [RedisArgument]
    ) async throws(RedisError) -> RESPValue {
        try await run(RedisScriptCall(script, keys: keys, arguments: arguments))
    }

    /// Runs one script call, as `run(_:keys:arguments:)` does.
    @discardableResult
    public nonisolated(nonsending) func run(_ call: RedisScriptCall) async throws(RedisError) -> RESPValue {
        let reply = try await sendAllowingErrorReply(call.evalsha)
        switch reply {
        case .error(let message) where message.hasPrefix("NOSCRIPT"):
            return try await send(call.eval)
        case .error(let message):
            throw .server(message)
        default:
            return reply
        }
    }

    /// Runs several scripts in one pipeline (one round trip) and returns their replies in order, as
    /// `pipeline(entries:)` of script entries does.
    public nonisolated(nonsending) func run(_ calls: [RedisScriptCall]) async throws(RedisError) -> [RESPValue] {
        try await pipeline(entries: calls.map { .script($0) })
    }

    /// Sends commands and script runs in one pipeline (one round trip) and returns their replies in order; error
    /// replies are returned in place. A script Redis does not have is loaded by `EVAL` and run again (after the
    /// entries that followed it in the pipeline).
    public nonisolated(nonsending) func pipeline(entries: [RedisPipelineEntry]) async throws(RedisError) -> [RESPValue]
    {
        var replies = try await pipeline(entries.map(\.command))
        for (index, entry) in entries.enumerated() {
            if case .script(let call) = entry, case .error(let message) = replies[index], message.hasPrefix("NOSCRIPT")
            {
                replies[index] = try await sendAllowingErrorReply(call.eval)
            }
        }
        return replies
    }

    /// Borrows a connection of its own for blocking commands (`BLPOP`…), so they never stall other callers.
    public func withDedicatedConnection<T: Sendable>(
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

    /// `PONG` within the deadline.
    public func ping() async -> Bool {
        (try? await send("PING"))?.string == "PONG"
    }

    /// The server's `redis_version` from `INFO server`.
    public func serverVersion() async throws(RedisError) -> String {
        let info = try await send("INFO", "server").string ?? ""
        return info.split(whereSeparator: \.isNewline)
            .first { $0.hasPrefix("redis_version:") }
            .map { String($0.dropFirst("redis_version:".count)) } ?? "unknown"
    }

    /// The `run_id` of the server the latest connection reached ("" until connected, or if `INFO` is refused).
    /// It changes when Redis restarts or fails over: data written before then may have been lost or restored.
    public var serverRunID: String { runIDs.withLock { $0 ?? "" } }

    /// `serverRunID`, connecting first if no connection was ever made (so the answer is never a guess).
    public func currentServerRunID() async throws(RedisError) -> String {
        if let known = runIDs.withLock({ $0 }) { return known }
        try await send("PING")
        return serverRunID
    }

    /// The circuit breaker's state.
    public var breakerState: CircuitBreaker.State { breaker.state }

    /// Closes every connection; later calls fail instead of connecting again, and a connection lent out for a
    /// blocking command is closed when it comes back.
    public func shutdown() {
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

    private nonisolated(nonsending) func sendAllowingErrorReply(_ arguments: [RedisArgument]) async throws(RedisError)
        -> RESPValue
    {
        try await onPooledConnection { connection throws(RedisError) in
            try await connection.send(arguments, timeout: configuration.commandTimeout)
        }
    }

    /// Runs `call` on the next pooled connection (one on the caller's event loop when it runs on one), through the
    /// circuit breaker.
    private nonisolated(nonsending) func onPooledConnection<T>(
        _ call: nonisolated(nonsending) (RedisConnection) async throws(RedisError) -> T
    ) async throws(RedisError) -> T {
        guard breaker.allowCall() else { throw .circuitOpen }
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
                to: configuration.endpoint, on: eventLoop, tls: tls, timeout: configuration.commandTimeout,
                maxReplyBytes: configuration.maxReplyBytes)
            // The server's run id tells a restart (or failover) apart from a dropped connection.
            let info =
                (try? await connection.send(["INFO", "server"], timeout: configuration.commandTimeout))?.string ?? ""
            let runID =
                info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("run_id:") }.map {
                    String($0.dropFirst(7))
                } ?? ""
            let previous = runIDs.withLock { current in
                defer { current = runID }
                return current
            }
            if let previous, previous != runID {
                logger.warning(
                    "redis server restarted or failed over", metadata: ["redis": "\(configuration.endpoint)"])
            }
            logger.debug("redis connected", metadata: ["redis": "\(configuration.endpoint)"])
            return connection
        } catch {
            logger.warning("redis connection failed", metadata: ["error": "\(error)"])
            throw error
        }
    }
}

/// One entry of a pipeline: a command, or a script run by `EVALSHA`.
public enum RedisPipelineEntry: Sendable {
    /// A plain command.
    case command([RedisArgument])
    /// A script run (loaded by `EVAL` when Redis does not have it).
    case script(RedisScriptCall)

    var command: [RedisArgument] {
        switch self {
        case .command(let arguments): arguments
        case .script(let call): call.evalsha
        }
    }
}

/// One run of a script: the script, its keys and its arguments.
public struct RedisScriptCall: Sendable {
    let script: RedisScript
    /// The command that runs it by SHA-1: `EVALSHA`, the SHA-1, the key count, the keys, the arguments.
    let evalsha: [RedisArgument]

    /// A run of `script` with `keys` and `arguments`.
    public init(_ script: RedisScript, keys: [String], arguments: [RedisArgument]) {
        self.script = script
        var command: [RedisArgument] = []
        command.reserveCapacity(3 + keys.count + arguments.count)
        command.append("EVALSHA")
        command.append(RedisArgument(script.sha1))
        command.append(RedisArgument(keys.count))
        for key in keys { command.append(RedisArgument(key)) }
        command += arguments
        self.evalsha = command
    }

    /// The command that loads and runs it.
    var eval: [RedisArgument] {
        var command = evalsha
        command[0] = "EVAL"
        command[1] = RedisArgument(script.source)
        return command
    }
}

/// A Lua script, run by its SHA-1 with a fallback to loading it.
public struct RedisScript: Sendable {
    /// The Lua source.
    public let source: String
    /// The SHA-1 Redis knows it by.
    public let sha1: String

    /// A script from its source.
    public init(_ source: String) {
        self.source = source
        self.sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

extension RedisClient: Service {
    /// Keeps the client's connections until graceful shutdown (or cancellation), then closes them; in a service
    /// group, list it before the services that use it, so that it stops after them.
    public func run() async throws {
        try? await gracefulShutdown()
        shutdown()
    }
}
