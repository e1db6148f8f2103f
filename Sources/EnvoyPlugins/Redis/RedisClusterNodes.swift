import EnvoyFramework
import Logging
import Metrics
import NIOSSL
import Synchronization

/// The servers a client talks to, by address — the one server, or the nodes of a cluster — with the cluster's slot
/// map, and how a command reaches its slot's master: following `MOVED` (and updating the map), `ASK` (once, after
/// `ASKING`), retrying `TRYAGAIN`/`CLUSTERDOWN` and a node that stopped answering within the call's deadline.
final class RedisClusterNodes: Sendable {
    private struct State {
        var nodes: [String: RedisNode] = [:]
        var map: RedisClusterMap?
        var refreshedAt: ContinuousClock.Instant?
        var isShutDown = false
    }

    private let configuration: RedisClient.Configuration
    private let tls: NIOSSLContext?
    private let logger: Logger
    private let metrics: any MetricsFactory
    private let clustered = Atomic<Bool>(false)
    /// Set once any server has said whether it runs in cluster mode.
    private let modeKnown = Atomic<Bool>(false)
    private let state = Mutex(State())
    private let refreshing = SingleFlight<Int, RedisClusterMap>()
    /// Counts of the cluster's events, for `/metrics`.
    let counters: RedisClusterCounters

    init(configuration: RedisClient.Configuration, tls: NIOSSLContext?, logger: Logger, metrics: any MetricsFactory) {
        self.configuration = configuration
        self.tls = tls
        self.logger = logger
        self.metrics = metrics
        self.counters = RedisClusterCounters(metrics: metrics)
    }

    /// Whether a server said it runs in cluster mode (or redirected a command).
    var isClustered: Bool { clustered.load(ordering: .relaxed) }

    /// Whether a server has said yet whether it runs in cluster mode.
    var isModeKnown: Bool { modeKnown.load(ordering: .relaxed) }

    /// A server redirected a command: it is a node of a cluster.
    func noteRedirected() {
        clustered.store(true, ordering: .relaxed)
    }

    /// The node at `address`, made on first use (with the client's credentials, TLS and database).
    func node(at address: RedisEndpoint.Address) -> RedisNode {
        let name = address.description
        let (node, isNew, isShutDown) = state.withLock { state -> (RedisNode, Bool, Bool) in
            if let known = state.nodes[name] { return (known, false, state.isShutDown) }
            let endpoint = configuration.endpoint.at(address)
            let made = RedisNode(
                endpoint: endpoint, settings: configuration, tls: tls, logger: logger,
                calls: Counter(
                    label: "envoy_redis_calls_total", dimensions: [("node", name)],
                    factory: metrics)
            ) {
                [weak self] _, info in
                if info.clusterMode { self?.clustered.store(true, ordering: .relaxed) }
                self?.modeKnown.store(true, ordering: .relaxed)
            }
            state.nodes[name] = made
            return (made, true, state.isShutDown)
        }
        if isNew && isShutDown { node.shutdown() }
        return node
    }

    /// Every node known so far, by name.
    var knownNodes: [RedisNode] { state.withLock { Array($0.nodes.values) } }

    /// The slot map, loaded first if there is none yet.
    func currentMap() async throws(RedisError) -> RedisClusterMap {
        if let map = state.withLock({ $0.map }) { return map }
        return try await refresh()
    }

    /// The master of `slot` (any master for nil: a command without keys).
    func node(forSlot slot: Int?) async throws(RedisError) -> RedisNode {
        let map = try await currentMap()
        guard let slot else { return node(at: map.masters[0].address) }
        guard let master = map.master(ofSlot: slot) else { throw .server("CLUSTERDOWN Hash slot \(slot) not served") }
        return node(at: master.address)
    }

    /// The master of `slot` by the map as it is, without loading one.
    func knownNode(forSlot slot: Int) -> RedisNode? {
        guard let master = state.withLock({ $0.map })?.master(ofSlot: slot) else { return nil }
        return node(at: master.address)
    }

    /// The masters of the map.
    func masters() async throws(RedisError) -> [RedisNode] {
        try await currentMap().masters.map { node(at: $0.address) }
    }

    /// How many replicas the master of `slot` has.
    func replicas(ofSlot slot: Int) async throws(RedisError) -> Int {
        try await currentMap().master(ofSlot: slot)?.replicas ?? 0
    }

    /// Loads the slot map from the first node that answers: the map's masters, then the seeds, then any other node
    /// known. Concurrent callers share one load.
    @discardableResult
    func refresh() async throws(RedisError) -> RedisClusterMap {
        do {
            return try await refreshing.run(0) { try await self.loadMap() }
        } catch let error as RedisError {
            throw error
        } catch {
            throw .connectionFailed("\(error)")
        }
    }

    /// Refreshes the map unless it was refreshed less than `interval` ago (a storm of redirects or failures
    /// refreshes it a few times a second, not once per call).
    func refresh(ifOlderThan interval: Duration) async {
        let due = state.withLock { state in state.refreshedAt.map { ContinuousClock.now - $0 >= interval } ?? true }
        if due { _ = try? await refresh() }
    }

    private func loadMap() async throws(RedisError) -> RedisClusterMap {
        let known = state.withLock { $0.map?.masters.map(\.address) ?? [] }
        var candidates: [RedisNode] = []
        for address in known + configuration.endpoint.seeds {
            let candidate = node(at: address)
            if !candidates.contains(where: { $0 === candidate }) { candidates.append(candidate) }
        }
        for other in knownNodes where !candidates.contains(where: { $0 === other }) { candidates.append(other) }
        var lastError = RedisError.connectionFailed("no cluster node answered CLUSTER SLOTS")
        for candidate in candidates {
            do throws(RedisError) {
                let reply = try await candidate.onPooledConnection { connection throws(RedisError) in
                    try await connection.send(["CLUSTER", "SLOTS"], timeout: configuration.commandTimeout)
                }
                if case .error(let message) = reply { throw RedisError.server(message) }
                let map = try RedisClusterMap(slotsReply: reply, queried: candidate.endpoint.address)
                let previous = state.withLock { state -> RedisClusterMap? in
                    defer {
                        state.map = map
                        state.refreshedAt = .now
                    }
                    return state.map
                }
                counters.mapRefreshed()
                if previous?.masters.map(\.address) != map.masters.map(\.address) {
                    logger.info(
                        "redis cluster map loaded",
                        metadata: [
                            "redis.masters":
                                "\(map.masters.map(\.address.description))"
                        ])
                }
                return map
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// Sends `command` to its slot's master and follows redirects until a reply that is not one, or the deadline;
    /// `firstReply` is a redirect already received for it.
    nonisolated(nonsending) func send(_ command: [RedisArgument], after firstReply: RESPValue?)
        async throws(RedisError) -> RESPValue
    {
        let deadline = ContinuousClock.now + configuration.commandTimeout
        let slot = RedisCommandKey.slot(of: command)
        var reply = firstReply
        var target: RedisNode? = nil
        var asking = false
        var triedAfterFailure = false
        for _ in 0..<16 {
            if let received = reply {
                guard case .error(let message) = received, let redirect = RedisRedirect(message) else {
                    return received
                }
                guard ContinuousClock.now < deadline else { return received }
                counters.redirected()
                switch redirect {
                case .moved(let movedSlot, let address):
                    state.withLock { $0.map = $0.map?.moving(slot: movedSlot, to: address) }
                    target = node(at: address)
                    asking = false
                    await refresh(ifOlderThan: .seconds(1))
                case .ask(_, let address):
                    target = node(at: address)
                    asking = true
                case .retry:
                    try? await Task.sleep(for: .milliseconds(20))
                    guard ContinuousClock.now < deadline else { return received }
                    target = nil
                    asking = false
                }
            }
            let node: RedisNode
            if let target { node = target } else { node = try await self.node(forSlot: slot) }
            let remaining = max(.milliseconds(1), deadline - ContinuousClock.now)
            do {
                reply = try await node.onPooledConnection { connection throws(RedisError) in
                    guard asking else { return try await connection.send(command, timeout: remaining) }
                    return try await connection.pipeline([["ASKING"], command], timeout: remaining).last
                        ?? .error("ERR no reply after ASKING")
                }
                asking = false
                target = nil
            } catch  where error.isTransportFailure {
                // The node may be gone (a failover): ask the others who holds the slot now, and try there once.
                guard !triedAfterFailure, ContinuousClock.now < deadline else { throw error }
                triedAfterFailure = true
                await refresh(ifOlderThan: .milliseconds(250))
                guard let slot, let now = knownNode(forSlot: slot), now !== node else { throw error }
                reply = nil
                target = now
                asking = false
            }
        }
        return reply ?? .error("CLUSTERDOWN too many redirects")
    }

    /// Sends `commands` as one pipeline per master involved, all at once, and returns the replies in order; a
    /// reply that is a redirect is followed, command by command.
    nonisolated(nonsending) func pipeline(_ commands: [[RedisArgument]], routedBy keys: [String?]? = nil)
        async throws(RedisError) -> [RESPValue]
    {
        let map = try await currentMap()
        var groups: [(node: RedisNode, indices: [Int])] = []
        var replies = [RESPValue](repeating: .error("CLUSTERDOWN Hash slot not served"), count: commands.count)
        for (index, command) in commands.enumerated() {
            let slot = keys?[index].map(RedisKeySlot.of) ?? RedisCommandKey.slot(of: command)
            let address: RedisEndpoint.Address
            if let slot {
                guard let master = map.master(ofSlot: slot) else { continue }
                address = master.address
            } else {
                address = groups.first?.node.endpoint.address ?? map.masters[0].address
            }
            let target = node(at: address)
            if let group = groups.firstIndex(where: { $0.node === target }) {
                groups[group].indices.append(index)
            } else {
                groups.append((target, [index]))
            }
        }
        let timeout = configuration.commandTimeout
        let results = await withTaskGroup(of: (Int, Result<[RESPValue], RedisError>).self) { tasks in
            for (number, group) in groups.enumerated() {
                let part = group.indices.map { commands[$0] }
                tasks.addTask {
                    do throws(RedisError) {
                        let replies = try await group.node.onPooledConnection { connection throws(RedisError) in
                            try await connection.pipeline(part, timeout: timeout)
                        }
                        return (number, .success(replies))
                    } catch {
                        return (number, .failure(error))
                    }
                }
            }
            var results: [(Int, Result<[RESPValue], RedisError>)] = []
            for await result in tasks { results.append(result) }
            return results
        }
        for (number, result) in results {
            switch result {
            case .success(let part):
                guard part.count == groups[number].indices.count else {
                    throw .unexpectedReply("pipeline returned \(part.count) replies")
                }
                for (offset, index) in groups[number].indices.enumerated() { replies[index] = part[offset] }
            case .failure(let error):
                if error.isTransportFailure { await refresh(ifOlderThan: .milliseconds(250)) }
                throw error
            }
        }
        return try await fixRedirects(commands, replies)
    }

    /// `replies` with each redirect followed by sending its command again, in order.
    nonisolated(nonsending) func fixRedirects(_ commands: [[RedisArgument]], _ replies: [RESPValue])
        async throws(RedisError) -> [RESPValue]
    {
        var replies = replies
        for index in replies.indices where replies[index].isRedirect {
            replies[index] = try await send(commands[index], after: replies[index])
        }
        return replies
    }

    /// Closes every node's connections; nodes made later start closed.
    func shutdown() {
        let nodes = state.withLock { state -> [RedisNode] in
            state.isShutDown = true
            return Array(state.nodes.values)
        }
        for node in nodes { node.shutdown() }
    }
}

/// How often a client was redirected and reloaded the slot map (also in the metrics).
final class RedisClusterCounters: Sendable {
    private let redirects = Atomic<Int>(0)
    private let refreshes = Atomic<Int>(0)
    private let redirectsCounter: Counter
    private let refreshesCounter: Counter

    init(metrics: any MetricsFactory) {
        redirectsCounter = Counter(label: "envoy_redis_redirects_total", factory: metrics)
        refreshesCounter = Counter(label: "envoy_redis_map_refreshes_total", factory: metrics)
    }

    /// A `MOVED`, `ASK`, `TRYAGAIN` or `CLUSTERDOWN` was followed.
    func redirected() {
        redirects.wrappingAdd(1, ordering: .relaxed)
        redirectsCounter.increment()
    }
    /// The slot map was loaded.
    func mapRefreshed() {
        refreshes.wrappingAdd(1, ordering: .relaxed)
        refreshesCounter.increment()
    }
    /// Redirects followed so far.
    var redirectCount: Int { redirects.load(ordering: .relaxed) }
    /// Map loads so far.
    var refreshCount: Int { refreshes.load(ordering: .relaxed) }
}
