import Tracing
import Crypto
import EnvoyFramework
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// A Redis client for many concurrent callers: per server a small pool of pipelined connections, a deadline on
/// every call, a circuit breaker that fails fast while the server is down, reconnection on demand, scripts by
/// `EVALSHA`. A server in cluster mode is found out at the first connection (its `INFO`, which the client reads
/// anyway): from then each command goes to the master of its key's slot, `MOVED` and `ASK` are followed,
/// `TRYAGAIN`/`CLUSTERDOWN` retried within the deadline, and a pipeline spanning masters is sent to each at once.
/// A single server costs nothing of this: no extra round trip, one atomic load per call.
/// Calls run on their caller's executor (`nonisolated(nonsending)`): a request's task does not hop executors on
/// its way into the client and back (each hop was a runtime switch and a look-up of the task's executor).
public final class RedisClient: Sendable {
    /// Client settings.
    public struct Configuration: Sendable {
        /// Where Redis is.
        public var endpoint: RedisEndpoint
        /// Multiplexed connections per server; connection `i` lives on NIO's shared event loop `i % loops`.
        public var poolSize: Int
        /// The longest a call waits for its reply (and for a connection to be made), redirects included.
        public var commandTimeout: Duration
        /// Replies larger than this drop the connection instead of exhausting memory.
        public var maxReplyBytes: Int
        /// Consecutive transport failures that open a server's circuit.
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
    /// The server `REDIS_URL` names first: the only one, unless it is a node of a cluster.
    private let seed: RedisNode
    /// The cluster's nodes and slot map, once a server said it runs in cluster mode.
    let cluster: RedisClusterNodes

    /// A client for `configuration`; connections are made on first use. Calls per server, redirects followed and
    /// slot-map loads are counted in `metrics` (`envoy_redis_calls_total{node}`, `envoy_redis_redirects_total`,
    /// `envoy_redis_map_refreshes_total`).
    public init(
        configuration: Configuration, logger: Logger, metrics: any MetricsFactory = NOOPMetricsHandler.instance
    ) throws(RedisError) {
        self.configuration = configuration
        let tls: NIOSSLContext?
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
        let cluster = RedisClusterNodes(configuration: configuration, tls: tls, logger: logger, metrics: metrics)
        self.cluster = cluster
        self.seed = cluster.node(at: configuration.endpoint.address)
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

    /// Sends `commands` back to back in one write per server and returns their replies in order: one round trip
    /// for all (on a cluster, one to each master involved, at once). Error replies are returned in place, not
    /// thrown. Not a transaction (`MULTI`).
    public nonisolated(nonsending) func pipeline(_ commands: [[RedisArgument]]) async throws(RedisError) -> [RESPValue]
    {
        try await pipeline(commands, routedBy: nil)
    }

    /// `pipeline(_:)`, a command with a routing key given going to that key's server (on the connection carrying
    /// the other commands for it there).
    private nonisolated(nonsending) func pipeline(_ commands: [[RedisArgument]], routedBy keys: [String?]?)
        async throws(RedisError) -> [RESPValue]
    {
        try await Traces.span("redis pipeline", kind: .client) { span throws(RedisError) in
            if let span {
                span.attributes["db.system.name"] = "redis"
                span.attributes["db.operation.batch.size"] = commands.count
                span.attributes["db.operation.name"] = commands.map { $0.first?.text ?? "?" }.joined(separator: " ")
            }
            return try await roundTrip(commands, routedBy: keys)
        }
    }

    private nonisolated(nonsending) func roundTrip(_ commands: [[RedisArgument]], routedBy keys: [String?]?)
        async throws(RedisError) -> [RESPValue]
    {
        guard cluster.isClustered else {
            let replies = try await seed.onPooledConnection { connection throws(RedisError) in
                try await connection.pipeline(commands, timeout: configuration.commandTimeout)
            }
            guard replies.contains(where: \.isRedirect) else { return replies }
            cluster.noteRedirected()
            return try await cluster.fixRedirects(commands, replies)
        }
        return try await cluster.pipeline(commands, routedBy: keys)
    }

    /// Runs `script` by `EVALSHA`, loading it with `EVAL` when Redis does not have it (after a restart or
    /// `SCRIPT FLUSH`; on a cluster, per node).
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
        let keys = entries.map(\.routingKey)
        var replies = try await pipeline(entries.map(\.command), routedBy: keys.contains { $0 != nil } ? keys : nil)
        for (index, entry) in entries.enumerated() {
            if case .script(let call) = entry, case .error(let message) = replies[index], message.hasPrefix("NOSCRIPT")
            {
                replies[index] = try await sendAllowingErrorReply(call.eval)
            }
        }
        return replies
    }

    /// Lends a connection of its own for blocking commands (`BLPOP`…), so they never stall other callers: to the
    /// server holding `key` (on a cluster; every key of the command must share its slot).
    public func withDedicatedConnection<T: Sendable>(
        forKey key: String? = nil, _ body: (RedisConnection) async throws(RedisError) -> T
    ) async throws(RedisError) -> T {
        let node = cluster.isClustered ? try await cluster.node(forSlot: key.map(RedisKeySlot.of)) : seed
        return try await node.withDedicatedConnection(body)
    }

    /// `PONG` within the deadline (from any master of a cluster).
    public func ping() async -> Bool {
        (try? await send("PING"))?.string == "PONG"
    }

    /// The masters that answer `PING` within the deadline, of how many there are (1 for a single server).
    public func mastersReachable() async -> (reachable: Int, of: Int) {
        let masters = cluster.isClustered ? ((try? await cluster.masters()) ?? []) : [seed]
        guard !masters.isEmpty else { return (0, 1) }
        let reachable = await withTaskGroup(of: Bool.self) { group in
            for node in masters {
                group.addTask { (try? await node.ping())?.string == "PONG" }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        return (reachable, masters.count)
    }

    /// The server's `redis_version` from `INFO server`.
    public func serverVersion() async throws(RedisError) -> String {
        let info = try await send("INFO", "server").string ?? ""
        return info.split(whereSeparator: \.isNewline)
            .first { $0.hasPrefix("redis_version:") }
            .map { String($0.dropFirst("redis_version:".count)) } ?? "unknown"
    }

    /// The `run_id` of the server holding `key` (on a cluster; the one server otherwise), as its latest connection
    /// found it ("" until connected, or if `INFO` is refused). It changes when Redis restarts or fails over: data
    /// written before then may have been lost or restored.
    public func serverRunID(forKey key: String) -> String {
        let node = cluster.isClustered ? cluster.knownNode(forSlot: RedisKeySlot.of(key)) : seed
        return node?.serverInfo?.runID ?? ""
    }

    /// `serverRunID(forKey:)`, connecting first if no connection was ever made (so the answer is never a guess).
    public func currentServerRunID(forKey key: String) async throws(RedisError) -> String {
        let node = cluster.isClustered ? try await cluster.node(forSlot: RedisKeySlot.of(key)) : seed
        if let known = node.serverInfo { return known.runID }
        _ = try await node.ping()
        return node.serverInfo?.runID ?? ""
    }

    /// How many replicas the server holding `key` has (on a cluster, by the slot map; else as `INFO` said).
    public func replicas(forKey key: String) async -> Int {
        guard cluster.isClustered else { return seed.serverInfo?.replicas ?? 0 }
        return (try? await cluster.replicas(ofSlot: RedisKeySlot.of(key))) ?? 0
    }

    /// The circuit breaker's state (the first server's).
    public var breakerState: CircuitBreaker.State { seed.breaker.state }

    /// Whether the server turned out to be a node of a cluster (false until a connection has been made).
    public var isCluster: Bool { cluster.isClustered }

    /// Whether the server is a node of a cluster, connecting first if no server has said yet.
    public nonisolated(nonsending) func isClusterMode() async throws(RedisError) -> Bool {
        if cluster.isClustered || cluster.isModeKnown { return cluster.isClustered }
        _ = try await seed.ping()
        return cluster.isClustered
    }

    /// Closes every connection to every server; later calls fail instead of connecting again, and a connection
    /// lent out for a blocking command is closed when it comes back.
    public func shutdown() {
        cluster.shutdown()
    }

    /// One command's round trip, in a span `redis COMMAND` (its name only: keys and values may be personal data).
    private nonisolated(nonsending) func sendAllowingErrorReply(_ arguments: [RedisArgument]) async throws(RedisError)
        -> RESPValue
    {
        try await Traces.span("redis \(arguments.first?.text ?? "command")", kind: .client) {
            span throws(RedisError) in
            span?.attributes["db.system.name"] = "redis"
            return try await roundTrip(arguments)
        }
    }

    private nonisolated(nonsending) func roundTrip(_ arguments: [RedisArgument]) async throws(RedisError) -> RESPValue {
        guard cluster.isClustered else {
            let reply = try await seed.onPooledConnection { connection throws(RedisError) in
                try await connection.send(arguments, timeout: configuration.commandTimeout)
            }
            guard reply.isRedirect else { return reply }
            cluster.noteRedirected()
            return try await cluster.send(arguments, after: reply)
        }
        return try await cluster.send(arguments, after: nil)
    }
}

extension RESPValue {
    /// Whether this is a cluster's `MOVED`, `ASK`, `TRYAGAIN` or `CLUSTERDOWN` reply.
    var isRedirect: Bool {
        guard case .error(let message) = self else { return false }
        return RedisRedirect(message) != nil
    }
}

/// One entry of a pipeline: a command, or a script run by `EVALSHA`.
public enum RedisPipelineEntry: Sendable {
    /// A plain command.
    case command([RedisArgument])
    /// A script run (loaded by `EVAL` when Redis does not have it).
    case script(RedisScriptCall)
    /// A command without keys of its own (`WAIT`) sent to the server holding `key`, after the pipeline's other
    /// commands for that server and on their connection.
    case pinned(key: String, [RedisArgument])

    var command: [RedisArgument] {
        switch self {
        case .command(let arguments), .pinned(_, let arguments): arguments
        case .script(let call): call.evalsha
        }
    }

    /// The key a pinned command is routed by.
    var routingKey: String? {
        if case .pinned(let key, _) = self { return key }
        return nil
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

extension RedisClient {
    /// The fields of `hash` that `isLive` keeps (`HGETALL`); the others are deleted (`HDEL`, best-effort): a hash
    /// of entries that expire, such as workers' heartbeats and rate-limit resets.
    func liveFields(of hash: String, _ isLive: (String, RESPValue) -> Bool) async throws -> [(String, RESPValue)] {
        let reply = try await send("HGETALL", RedisArgument(hash))
        if case .error(let message) = reply { throw RedisError.server(message) }
        let fields = reply.array ?? []
        var live: [(String, RESPValue)] = []
        var expired: [RedisArgument] = []
        for pair in stride(from: 0, to: fields.count - 1, by: 2) {
            guard let name = fields[pair].string else { continue }
            if isLive(name, fields[pair + 1]) {
                live.append((name, fields[pair + 1]))
            } else {
                expired.append(RedisArgument(name))
            }
        }
        if !expired.isEmpty { _ = try? await send(["HDEL", RedisArgument(hash)] + expired) }
        return live
    }
}
