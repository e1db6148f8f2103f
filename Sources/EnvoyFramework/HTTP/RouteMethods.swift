import HTTPTypes
import Hummingbird
import Synchronization

/// The methods each registered path answers, so that a known path asked with another method is a 405 naming them
/// (`ProblemMiddleware(routes:)`).
public final class RouteMethods: Sendable {
    private struct Route {
        /// Literal segments, nil where the route captures (`{id}`, `*`).
        var segments: [Substring?]
        var methods: [String]
    }

    private let routes = Mutex([Route]())

    /// An empty table, filled by `record` once the routes are registered.
    public init() {}

    /// Records `routes` (path and method of each; a GET answers HEAD too), replacing what was recorded. A
    /// catch-all (`**`) names no path, so it makes no other method a 405.
    public func record<Context>(_ routes: [Router<Context>.RouteDescription]) {
        var byPath: [String: Set<String>] = [:]
        for route in routes where !route.path.description.contains("**") {
            byPath[route.path.description, default: []].insert(route.method.rawValue)
            if route.method == .get { byPath[route.path.description, default: []].insert("HEAD") }
        }
        let table = byPath.map { path, methods in
            Route(
                segments: path.split(separator: "/").map { $0.contains("{") || $0.contains("*") ? nil : $0 },
                methods: methods.sorted())
        }
        self.routes.withLock { $0 = table }
    }

    /// The methods `path` answers, sorted; empty when no route has this path. Where several routes match, the
    /// router takes the one with the most literal segments (`/dead/retry` over `/dead/{id}`), and so does this.
    public func methods(for path: String) -> [String] {
        let segments = path.split(separator: "/")
        return routes.withLock { routes in
            let matching = routes.filter { route in
                route.segments.count == segments.count
                    && zip(route.segments, segments).allSatisfy { pattern, segment in
                        pattern.map { $0 == segment } ?? true
                    }
            }
            func literals(_ route: Route) -> Int { route.segments.count { $0 != nil } }
            return matching.max { literals($0) < literals($1) }?.methods ?? []
        }
    }
}
