import Foundation

/// Where and how to reach Redis, parsed from `REDIS_URL`.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// TCP host and port, or a Unix socket path.
    public enum Address: Sendable, Equatable, CustomStringConvertible {
        /// A TCP address.
        case tcp(host: String, port: Int)
        /// A Unix domain socket.
        case unix(path: String)

        /// `host:port`, or `unix:PATH`: a node's name in a cluster's slot map and in the metrics.
        public var description: String {
            switch self {
            case .tcp(let host, let port): "\(host):\(port)"
            case .unix(let path): "unix:\(path)"
            }
        }
    }

    /// Where the server listens (the first seed of a cluster).
    public var address: Address
    /// Every address `REDIS_URL` names (`redis://h1:p1,h2:p2`): the nodes a cluster client asks for the slot map
    /// first. One address for a single server.
    public var seeds: [Address]
    /// Whether to speak TLS (`rediss://`).
    public var tls: Bool
    /// The ACL user name, if any.
    public var username: String?
    /// The password (never printed).
    public var password: String?
    /// The database index to `SELECT`.
    public var database: Int
    /// An extra CA bundle to trust for TLS (`REDIS_TLS_CA_FILE`).
    public var caFile: String?

    /// Parses `redis://[user:pass@]host:port[,host:port…][/db]`, `rediss://…` or `unix:///path[?db=N]`.
    /// Errors describe the problem without repeating the URL.
    public init(url: String, caFile: String? = nil) throws(RedisError) {
        let (firstURL, otherHosts) = Self.splitSeeds(url)
        try self.init(singleURL: firstURL, caFile: caFile)
        seeds = [address]
        for host in otherHosts {
            guard let components = URLComponents(string: "redis://\(host)"), let name = components.host, !name.isEmpty,
                components.user == nil, components.path.isEmpty
            else {
                throw .invalidURL("a seed after the first is not host:port (value not shown)")
            }
            seeds.append(.tcp(host: name, port: components.port ?? 6379))
        }
    }

    /// The URL with only its first host, and the hosts after it (`redis://a:1,b:2/0` → `redis://a:1/0`, `b:2`).
    private static func splitSeeds(_ url: String) -> (String, [Substring]) {
        guard let scheme = url.range(of: "://") else { return (url, []) }
        let rest = url[scheme.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        let hostsStart = authority.lastIndex(of: "@").map { authority.index(after: $0) } ?? authority.startIndex
        let hosts = authority[hostsStart...].split(separator: ",", omittingEmptySubsequences: false)
        guard hosts.count > 1 else { return (url, []) }
        return (String(url[..<hostsStart]) + hosts[0] + url[authorityEnd...], Array(hosts.dropFirst()))
    }

    private init(singleURL url: String, caFile: String?) throws(RedisError) {
        self.caFile = caFile
        self.seeds = []
        // Foundation reads a stray `%` as a literal one; a password with `%zz` in it is a mistake to report.
        guard Self.percentEscapesAreWellFormed(url) else {
            throw .invalidURL("has a malformed percent-escape: % must be followed by two hex digits (value not shown)")
        }
        if url.hasPrefix("unix://") {
            let rest = url.dropFirst("unix://".count)
            let parts = rest.split(separator: "?", maxSplits: 1)
            guard let path = parts.first, path.hasPrefix("/") else {
                throw .invalidURL("unix:// needs an absolute socket path")
            }
            address = .unix(path: String(path))
            tls = false
            database = 0
            if parts.count == 2, let query = URLComponents(string: "x:?\(parts[1])")?.queryItems {
                if let db = query.first(where: { $0.name == "db" })?.value {
                    guard let index = Int(db), index >= 0 else { throw .invalidURL("db must be a number") }
                    database = index
                }
                password = try Self.decoded(
                    URLComponents(string: "x:?\(parts[1])")?.percentEncodedQueryItems?.first(where: {
                        $0.name == "password"
                    })?.value, part: "password")
            }
            return
        }
        guard let components = URLComponents(string: url), let scheme = components.scheme,
            ["redis", "rediss"].contains(scheme)
        else {
            throw .invalidURL("must start with redis://, rediss:// or unix:// (value not shown)")
        }
        guard let host = components.host, !host.isEmpty else { throw .invalidURL("has no host (value not shown)") }
        address = .tcp(host: host, port: components.port ?? 6379)
        tls = scheme == "rediss"
        let user = try Self.decoded(components.percentEncodedUser, part: "user name")
        username = (user?.isEmpty ?? true) ? nil : user
        password = try Self.decoded(components.percentEncodedPassword, part: "password")
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if path.isEmpty {
            database = 0
        } else {
            guard let index = Int(path), index >= 0 else { throw .invalidURL("the path must be a database number") }
            database = index
        }
    }

    /// Whether every `%` in `text` starts a two-hex-digit escape.
    static func percentEscapesAreWellFormed(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var index = 0
        while index < bytes.count {
            guard bytes[index] == UInt8(ascii: "%") else {
                index += 1
                continue
            }
            guard index + 2 < bytes.count, isHexDigit(bytes[index + 1]), isHexDigit(bytes[index + 2]) else {
                return false
            }
            index += 3
        }
        return true
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
    }

    /// A percent-encoded URL part, decoded; a malformed escape (`%zz`, a lone `%`) is an error, never a part
    /// silently dropped.
    private static func decoded(_ encoded: String?, part: String) throws(RedisError) -> String? {
        guard let encoded else { return nil }
        guard let decoded = encoded.removingPercentEncoding else {
            throw .invalidURL("the \(part) has a malformed percent-escape (value not shown)")
        }
        return decoded
    }

    /// This endpoint's credentials, TLS and database at another address (a node of the same cluster).
    public func at(_ address: Address) -> RedisEndpoint {
        var copy = self
        copy.address = address
        copy.seeds = [address]
        return copy
    }

    /// Host, port (every seed's), TLS and database — never the credentials.
    public var description: String {
        let places =
            seeds.count > 1 ? seeds.map(\.description).joined(separator: ",") : address.description
        return "\(places) db=\(database) tls=\(tls ? "yes" : "no")\(password == nil ? "" : " auth=yes")"
    }
}
