import HTTPTypes
import Hummingbird
import Instrumentation
import Logging
import ServiceContextModule
import Tracing

/// A server span per request while tracing is on, continuing the caller's W3C `traceparent`: named by the route
/// template once routed, with the method and the status (an error status for 5xx) — never the path's values, the
/// query or the client's address. The request's log lines get its `trace.id` and `span.id`.
public struct RequestSpanMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The middleware; it does nothing while `Traces.isEnabled` is false.
    public init() {}

    /// Runs the rest of the chain inside the request's span.
    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard Traces.isEnabled else { return try await next(request, context) }
        var parent = ServiceContext.current ?? .topLevel
        InstrumentationSystem.instrument.extract(request.headers, into: &parent, using: HTTPFieldsExtractor())
        return try await Traces.traced("HTTP \(request.method.rawValue)", context: parent, kind: .server) { span in
            var context = context
            if let ids = Traces.ids() {
                context.logger[metadataKey: "trace.id"] = "\(ids.trace)"
                context.logger[metadataKey: "span.id"] = "\(ids.span)"
            }
            let status: Int
            let response: Response
            do {
                response = try await next(request, context)
                status = response.status.code
            } catch {
                status = (error as? any HTTPResponseError)?.status.code ?? 500
                Self.finish(span, request: request, route: context.endpointPath, status: status)
                throw error
            }
            Self.finish(span, request: request, route: context.endpointPath, status: status)
            return response
        }
    }

    static func finish(_ span: (any Span)?, request: Request, route: String?, status: Int) {
        guard let span, span.isRecording else { return }
        if let route { span.operationName = route }
        span.attributes["http.request.method"] = request.method.rawValue
        span.attributes["http.route"] = route
        span.attributes["http.response.status_code"] = status
        if status >= 500 { span.setStatus(.init(code: .error)) }
    }
}

struct HTTPFieldsExtractor: Extractor {
    func extract(key: String, from fields: HTTPFields) -> String? {
        HTTPField.Name(key).flatMap { fields[$0] }
    }
}
