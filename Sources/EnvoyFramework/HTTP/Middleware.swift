import Hummingbird

/// Envoy's HTTP extension point: a Hummingbird router middleware (`handle(_:context:next:)`).
/// Envoy's own middlewares — client address, rate limiting, problems, metrics — are all of this kind.
public typealias Middleware = RouterMiddleware
