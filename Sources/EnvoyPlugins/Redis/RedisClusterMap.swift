/// Which master serves each hash slot of a Redis Cluster, and how many replicas each master has, as `CLUSTER SLOTS`
/// tells.
struct RedisClusterMap: Sendable, Equatable {
    /// A master: where it is and how many replicas copy it.
    struct Master: Sendable, Equatable {
        /// Its address.
        var address: RedisEndpoint.Address
        /// Replicas of its slots.
        var replicas: Int
    }

    /// The masters, each once.
    private(set) var masters: [Master] = []
    /// The master of each slot, as an index into `masters`; -1 where no master serves the slot.
    private var owners = [Int16](repeating: -1, count: RedisKeySlot.count)

    /// Reads a `CLUSTER SLOTS` reply from the node at `queried` (a node announcing an empty host means itself).
    init(slotsReply reply: RESPValue, queried: RedisEndpoint.Address) throws(RedisError) {
        guard let ranges = reply.array else { throw .unexpectedReply("CLUSTER SLOTS returned \(reply)") }
        for range in ranges {
            guard let fields = range.array, fields.count >= 3, let first = fields[0].int, let last = fields[1].int,
                (0..<Int64(RedisKeySlot.count)).contains(first), (first..<Int64(RedisKeySlot.count)).contains(last),
                let address = Self.address(fields[2], queried: queried)
            else {
                throw .unexpectedReply("CLUSTER SLOTS returned a malformed range")
            }
            let master = Master(address: address, replicas: fields.count - 3)
            let index: Int
            if let known = masters.firstIndex(where: { $0.address == address }) {
                index = known
                masters[index].replicas = max(masters[index].replicas, master.replicas)
            } else {
                index = masters.count
                masters.append(master)
            }
            for slot in Int(first)...Int(last) { owners[slot] = Int16(index) }
        }
        guard !masters.isEmpty else { throw .unexpectedReply("CLUSTER SLOTS named no master") }
    }

    /// The master serving `slot`, if one does.
    func master(ofSlot slot: Int) -> Master? {
        let index = owners[slot]
        return index < 0 ? nil : masters[Int(index)]
    }

    /// This map with `slot` served by `address` (what a `MOVED` reply says, before the next full refresh).
    func moving(slot: Int, to address: RedisEndpoint.Address) -> RedisClusterMap {
        var copy = self
        if let known = copy.masters.firstIndex(where: { $0.address == address }) {
            copy.owners[slot] = Int16(known)
        } else {
            copy.masters.append(Master(address: address, replicas: 0))
            copy.owners[slot] = Int16(copy.masters.count - 1)
        }
        return copy
    }

    /// How many slots each master serves, by its position in `masters`.
    var slotCounts: [Int] {
        var counts = [Int](repeating: 0, count: masters.count)
        for owner in owners where owner >= 0 { counts[Int(owner)] += 1 }
        return counts
    }

    /// A node entry of a range: `[host, port, id, …]`.
    private static func address(_ node: RESPValue, queried: RedisEndpoint.Address) -> RedisEndpoint.Address? {
        guard let fields = node.array, fields.count >= 2, let host = fields[0].string, let port = fields[1].int else {
            return nil
        }
        if host.isEmpty || host == "?" {
            guard case .tcp(let queriedHost, _) = queried else { return nil }
            return .tcp(host: queriedHost, port: Int(port))
        }
        return .tcp(host: host, port: Int(port))
    }
}

/// Where a cluster node sent a command instead of running it.
enum RedisRedirect: Equatable {
    /// `MOVED slot host:port`: the slot lives elsewhere now; update the map.
    case moved(slot: Int, to: RedisEndpoint.Address)
    /// `ASK slot host:port`: the slot is migrating; ask there once, after `ASKING`.
    case ask(slot: Int, to: RedisEndpoint.Address)
    /// `TRYAGAIN` (keys split by a migration) or `CLUSTERDOWN` (slots without a master for now): retry shortly.
    case retry

    /// The redirect an error reply asks for; nil for any other error.
    init?(_ message: String) {
        if message.hasPrefix("TRYAGAIN") || message.hasPrefix("CLUSTERDOWN") {
            self = .retry
            return
        }
        let parts = message.split(separator: " ")
        guard parts.count == 3, parts[0] == "MOVED" || parts[0] == "ASK", let slot = Int(parts[1]),
            let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...])
        else { return nil }
        var host = String(parts[2][..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self =
            parts[0] == "MOVED"
            ? .moved(slot: slot, to: .tcp(host: host, port: port)) : .ask(slot: slot, to: .tcp(host: host, port: port))
    }
}

/// The key a command is routed by in a cluster.
enum RedisCommandKey {
    /// Commands without keys: any node answers them.
    private static let keyless: Set<String> = [
        "PING", "INFO", "CLUSTER", "SCRIPT", "CLIENT", "CONFIG", "COMMAND", "DBSIZE", "FLUSHALL", "FLUSHDB", "ECHO",
        "TIME", "WAIT", "ASKING", "READONLY", "READWRITE", "HELLO", "AUTH", "SELECT", "KEYS", "SCAN", "RANDOMKEY",
        "ROLE", "SLOWLOG", "LATENCY", "DEBUG", "LASTSAVE", "SAVE", "BGSAVE", "MULTI", "EXEC", "DISCARD",
    ]

    /// The hash slot of the command's (first) key; nil for a command without keys.
    static func slot(of command: [RedisArgument]) -> Int? {
        guard let name = command.first.map({ String(decoding: $0.bytes, as: UTF8.self).uppercased() }) else {
            return nil
        }
        switch name {
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            guard command.count > 3, let count = Int(String(decoding: command[2].bytes, as: UTF8.self)), count > 0
            else { return nil }
            return RedisKeySlot.of(bytes: command[3].bytes)
        default:
            guard !keyless.contains(name), command.count > 1 else { return nil }
            return RedisKeySlot.of(bytes: command[1].bytes)
        }
    }
}
