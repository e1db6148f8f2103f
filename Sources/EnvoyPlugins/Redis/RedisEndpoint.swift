import Foundation

/// Where and how to reach Redis, parsed from `REDIS_URL`.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// TCP host and port, or a Unix socket path.
    public enum Address: Sendable, Equatable {
        /// A TCP address.
        case tcp(host: String, port: Int)
        /// A Unix domain socket.
        case unix(path: String)
    }

    /// Where the server listens.
    public var address: Address
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

    /// Parses `redis://[user:pass@]host:port[/db]`, `rediss://…` or `unix:///path[?db=N]`.
    /// Errors describe the problem without repeating the URL.
    public init(url: String, caFile: String? = nil) throws(RedisError) {
        self.caFile = caFile
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
                password = query.first(where: { $0.name == "password" })?.value
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
        let user = components.user?.removingPercentEncoding
        username = (user?.isEmpty ?? true) ? nil : user
        password = components.password?.removingPercentEncoding
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if path.isEmpty {
            database = 0
        } else {
            guard let index = Int(path), index >= 0 else { throw .invalidURL("the path must be a database number") }
            database = index
        }
    }

    /// Host, port, TLS and database — never the credentials.
    public var description: String {
        let place: String
        switch address {
        case .tcp(let host, let port): place = "\(host):\(port)"
        case .unix(let path): place = "unix:\(path)"
        }
        return "\(place) db=\(database) tls=\(tls ? "yes" : "no")\(password == nil ? "" : " auth=yes")"
    }
}
