import EnvoyFramework
import Foundation
import NIOPosix

/// A real Redis Cluster on loopback, for the simulator and the tests: `masters` masters with `replicasPerMaster`
/// replicas each (`redis-server --cluster-enabled yes` nodes joined by `redis-cli --cluster create`); killed on
/// deinit. Each node's cluster bus port is given (`--cluster-port`), so any free port will do. Its waiting (for
/// processes, for the cluster to settle) runs on NIO's thread pool, never on a Swift concurrency thread.
public final class RedisCluster: Sendable {
    /// Every node, masters and replicas alike, in the order they were started.
    public let nodes: [RedisServer]

    /// What every node asks of its clients (and of each other): a password, TLS with these certificates.
    public struct Security: Sendable {
        /// `requirepass` (and `masterauth`) of every node.
        public var password: String?
        /// TLS only — clients, replication and the cluster bus — with a CA and the nodes' certificate and key.
        public var certificates: (ca: String, cert: String, key: String)?

        /// Creates the settings; the defaults are none (plain TCP, no password).
        public init(password: String? = nil, certificates: (ca: String, cert: String, key: String)? = nil) {
            self.password = password
            self.certificates = certificates
        }
    }

    /// The nodes' password and TLS.
    public let security: Security

    /// Starts the nodes and makes the cluster; returns once every node sees all 16,384 slots served. A master
    /// unreachable for `nodeTimeout` is failed over to its replica.
    public convenience init(
        masters: Int = 3, replicasPerMaster: Int = 1, nodeTimeout: Duration = .milliseconds(1000),
        security: Security = .init()
    ) async throws {
        let nodes = try await Self.blocking {
            try Self.startNodes(
                masters: masters, replicasPerMaster: replicasPerMaster, nodeTimeout: nodeTimeout, security: security)
        }
        self.init(nodes: nodes, security: security)
        try await Self.blocking { [self] in
            try waitUntilHealthySync()
            try waitUntilReplicatedSync(replicasPerMaster)
        }
    }

    private init(nodes: [RedisServer], security: Security) {
        self.nodes = nodes
        self.security = security
    }

    /// Runs `redis-cli` against the node on `port`, with the nodes' password and CA.
    func cli(port: Int, _ arguments: [String]) throws -> String {
        try RedisServer.cli(["-p", String(port)] + nodes[0].cliOptions + arguments)
    }

    /// Runs blocking work on NIO's thread pool.
    static func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(work)
    }

    private static func startNodes(
        masters: Int, replicasPerMaster: Int, nodeTimeout: Duration, security: Security
    ) throws -> [RedisServer] {
        var nodes: [RedisServer] = []
        for _ in 0..<(masters * (1 + replicasPerMaster)) {
            let port = try RedisServer.freePort()
            var secured: [String] = []
            if let password = security.password { secured += ["--requirepass", password, "--masterauth", password] }
            if let certificates = security.certificates {
                secured += [
                    "--tls-port", String(port), "--tls-cert-file", certificates.cert, "--tls-key-file",
                    certificates.key, "--tls-ca-cert-file", certificates.ca, "--tls-auth-clients", "no",
                    "--tls-cluster", "yes", "--tls-replication", "yes",
                ]
            }
            nodes.append(
                try RedisServer(
                    [
                        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                        "--cluster-port", String(try RedisServer.freePort()),
                        "--cluster-node-timeout", String(Int(nodeTimeout.inSeconds * 1000)),
                        "--cluster-replica-validity-factor", "0", "--repl-diskless-sync-delay", "0",
                    ] + secured, port: port, plainPort: security.certificates == nil))
        }
        _ = try RedisServer.cli(
            nodes[0].cliOptions + ["--cluster", "create"] + nodes.map { "127.0.0.1:\($0.port)" }
                + ["--cluster-replicas", String(replicasPerMaster), "--cluster-yes"])
        return nodes
    }

    /// Waits until every master has `replicas` replicas online (their first full copy made), so that a failover
    /// from then on loses at most the replication lag.
    func waitUntilReplicatedSync(_ replicas: Int, timeout: Duration = .seconds(30)) throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let synced = try mastersSync().allSatisfy { master in
                let info = (try? cli(port: master.port, ["info", "replication"])) ?? ""
                return info.components(separatedBy: "state=online").count - 1 >= replicas
            }
            if synced { return }
            usleep(100_000)
        }
        throw RedisServerError(message: "the replicas did not sync within \(timeout)")
    }

    /// `redis://127.0.0.1:P1,127.0.0.1:P2,…`: every node as a seed (`rediss://` and the password when secured).
    public var url: String { urlPrefix + nodes.map { "127.0.0.1:\($0.port)" }.joined(separator: ",") }

    /// One node's URL (any node of a cluster is enough for a client).
    public var firstNodeURL: String { urlPrefix + "127.0.0.1:\(nodes[0].port)" }

    private var urlPrefix: String {
        (security.certificates == nil ? "redis://" : "rediss://")
            + (security.password.map { ":\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")@" }
                ?? "")
    }

    /// A node as `CLUSTER NODES` describes it.
    public struct Node: Sendable, Equatable {
        /// The node id.
        public var id: String
        /// Its port.
        public var port: Int
        /// Whether it is a master now.
        public var isMaster: Bool
        /// Whether the cluster marks it failed.
        public var isFailed: Bool
        /// The slot ranges it serves (masters).
        public var slotRanges: [ClosedRange<Int>]
        /// How many slots it serves.
        public var slots: Int { slotRanges.reduce(0) { $0 + $1.count } }
    }

    /// The nodes as a live node sees them.
    public func describe() async throws -> [Node] { try await Self.blocking { [self] in try describeSync() } }

    func describeSync() throws -> [Node] {
        let live = nodes.first { RedisServer.canConnect(port: $0.port) } ?? nodes[0]
        let text = try cli(port: live.port, ["cluster", "nodes"])
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count >= 8, let portText = fields[1].split(separator: "@").first?.split(separator: ":").last,
                let port = Int(portText)
            else { return nil }
            let flags = fields[2]
            let ranges = fields.dropFirst(8).filter { !$0.hasPrefix("[") }.compactMap { range -> ClosedRange<Int>? in
                let bounds = range.split(separator: "-").compactMap { Int($0) }
                return bounds.isEmpty ? nil : bounds[0]...(bounds.last ?? bounds[0])
            }
            return Node(
                id: String(fields[0]), port: port, isMaster: flags.contains("master"),
                isFailed: flags.contains("fail"), slotRanges: ranges)
        }
    }

    /// The live masters, serving slots.
    public func masters() async throws -> [Node] { try await Self.blocking { [self] in try mastersSync() } }

    func mastersSync() throws -> [Node] {
        try describeSync().filter { $0.isMaster && !$0.isFailed && $0.slots > 0 }
    }

    /// The port of the live master serving `key`'s slot, or of the master on the lowest port when `key` is nil.
    public func masterPort(forKey key: String?) async throws -> Int {
        try await Self.blocking { [self] in
            let masters = try mastersSync().sorted { $0.port < $1.port }
            guard let key else {
                guard let first = masters.first else { throw RedisServerError(message: "no live master") }
                return first.port
            }
            let live = masters.first?.port ?? nodes[0].port
            let reply = try cli(port: live, ["cluster", "keyslot", key])
            guard let slot = Int(reply.trimmingCharacters(in: .whitespacesAndNewlines)),
                let master = masters.first(where: { $0.slotRanges.contains { $0.contains(slot) } })
            else { throw RedisServerError(message: "no live master serves the slot of \(key)") }
            return master.port
        }
    }

    /// How many keys the node on `port` holds (`DBSIZE`).
    public func keyCount(port: Int) async throws -> Int {
        try await Self.blocking { [self] in
            Int(try cli(port: port, ["dbsize"]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        }
    }

    /// A field of the `INFO` of the node on `port` (asked by `redis-cli`, whose own call it counts).
    public func info(port: Int, field: String) async throws -> String? {
        let text = try await Self.blocking { [self] in try cli(port: port, ["info", "everything"]) }
        return text.split(whereSeparator: \.isNewline).first { $0.hasPrefix("\(field):") }.map {
            String($0.dropFirst(field.count + 1))
        }
    }

    /// The server process of the node on `port`.
    public func server(port: Int) -> RedisServer? { nodes.first { $0.port == port } }

    /// The live master after `port` in port order (the first after the last): where a reshard from `port` goes.
    public func nextMasterPort(after port: Int) async throws -> Int {
        let masters = try await masters().map(\.port).sorted()
        guard let next = masters.first(where: { $0 > port }) ?? masters.first(where: { $0 != port }) else {
            throw RedisServerError(message: "no other live master than \(port)")
        }
        return next
    }

    /// SIGKILLs the master on `port` and returns once its replica has taken over its slots and every node agrees
    /// (within `timeout`).
    public func killMaster(port: Int, timeout: Duration = .seconds(30)) async throws {
        try await Self.blocking { [self] in
            server(port: port)?.kill()
            try waitUntilHealthySync(timeout: timeout, without: port)
        }
    }

    /// Returns once the master on `port` (killed by other means) has been replaced by its replica.
    public func waitUntilFailedOver(_ port: Int, timeout: Duration = .seconds(30)) async throws {
        try await Self.blocking { [self] in try waitUntilHealthySync(timeout: timeout, without: port) }
    }

    /// Starts the node on `port` again (it comes back empty, rejoins, and is made a replica of the master that
    /// took its slots); returns once it is a replica in sync and the cluster is healthy.
    public func restartNode(port: Int, timeout: Duration = .seconds(30)) async throws {
        try await Self.blocking { [self] in
            guard let server = server(port: port) else { throw RedisServerError(message: "no node on \(port)") }
            try server.restart()
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                let info = (try? cli(port: port, ["info", "replication"])) ?? ""
                if info.contains("role:slave") && info.contains("master_link_status:up") { break }
                usleep(100_000)
            }
            try waitUntilHealthySync(timeout: max(.seconds(1), deadline - ContinuousClock.now))
        }
    }

    /// Moves `slots` slots from the master on `from` to the master on `to` with `redis-cli --cluster reshard`
    /// (keys migrate while clients keep using them).
    public func reshard(slots: Int, from: Int, to: Int) async throws {
        try await Self.blocking { [self] in try reshardSync(slots: slots, from: from, to: to) }
    }

    private func reshardSync(slots: Int, from: Int, to: Int) throws {
        let described = try describeSync()
        guard let source = described.first(where: { $0.port == from }),
            let target = described.first(where: { $0.port == to })
        else { throw RedisServerError(message: "no master on \(from) or \(to)") }
        _ = try RedisServer.cli(
            nodes[0].cliOptions + [
                "--cluster", "reshard", "127.0.0.1:\(to)", "--cluster-from", source.id, "--cluster-to", target.id,
                "--cluster-slots", String(slots), "--cluster-yes", "--cluster-pipeline", "10",
            ])
        try waitUntilHealthySync()
    }

    /// Waits until every live node (but `without`) says `cluster_state:ok` with all slots served.
    func waitUntilHealthySync(timeout: Duration = .seconds(30), without: Int? = nil) throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let live = nodes.filter { $0.port != without && RedisServer.canConnect(port: $0.port) }
            let healthy = live.allSatisfy { node in
                let info = (try? cli(port: node.port, ["cluster", "info"])) ?? ""
                return info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            }
            let served = ((try? mastersSync()) ?? []).allSatisfy { $0.port != without }
            if healthy && served { return }
            usleep(100_000)
        }
        throw RedisServerError(message: "the cluster did not become healthy within \(timeout)")
    }
}
