import Foundation
import Hummingbird
import Logging
import Metrics
import Synchronization

/// Counts requests and times them by route template, method and status (bounded labels: never raw paths); with
/// `accessLog`, also writes one line per request (method, route template, status, milliseconds — never the raw
/// path or query, which may carry ids or tokens) on the request's logger, so its request id is on it.
public struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    private struct Series: Sendable {
        let count: Counter
        let duration: Timer
    }

    /// What a series is looked up by (a struct, not a formatted string: no allocation per request).
    private struct SeriesKey: Hashable {
        let method: String
        let route: String
        let status: Int
    }

    private final class SeriesCache: Sendable {
        let series = Mutex([SeriesKey: Series]())
    }

    private let metrics: any MetricsFactory
    private let cache = SeriesCache()
    private let accessLog: Bool

    /// A middleware recording into `metrics` (and logging each request when `accessLog`).
    public init(metrics: any MetricsFactory, accessLog: Bool = false) {
        self.metrics = metrics
        self.accessLog = accessLog
    }

    /// Times the rest of the chain and records it under the matched route's template.
    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            record(request, context, status: response.status.code, since: start)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            record(request, context, status: status, since: start)
            throw error
        }
    }

    private func record(_ request: Request, _ context: Context, status: Int, since start: ContinuousClock.Instant) {
        let route = context.endpointPath ?? "unmatched"
        let method = request.method.rawValue
        let id = SeriesKey(method: method, route: route, status: status)
        let series = cache.series.withLock { series in
            if let existing = series[id] { return existing }
            let dimensions = [("route", route), ("method", method), ("status", String(status))]
            let created = Series(
                count: Counter(label: "envoy_http_requests_total", dimensions: dimensions, factory: metrics),
                duration: Timer(label: "envoy_http_request_duration_seconds", dimensions: dimensions, factory: metrics)
            )
            series[id] = created
            return created
        }
        let elapsed = ContinuousClock.now - start
        series.count.increment()
        series.duration.record(duration: elapsed)
        if accessLog {
            context.logger.info(
                "request",
                metadata: [
                    "http.method": .string(method), "http.route": .string(route),
                    "http.status": .stringConvertible(status),
                    "duration_ms": .stringConvertible((elapsed.inSeconds * 1000 * 1000).rounded() / 1000),
                ])
        }
    }
}
