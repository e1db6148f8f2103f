import Instrumentation
import ServiceContextModule
import Synchronization
import Tracing

/// Envoy's spans: made only once a tracer is installed (`install`), so that with tracing off a traced call costs one
/// relaxed atomic load. Context crosses processes as a W3C `traceparent` (`current`, `context(traceparent:)`).
public enum Traces {
    private static let installed = Atomic<Bool>(false)

    /// Whether spans are recorded.
    public static var isEnabled: Bool { installed.load(ordering: .relaxed) }

    /// Installs `tracer` as the process's tracer and turns spans on; once per process, before serving.
    public static func install(_ tracer: some Tracer) {
        InstrumentationSystem.bootstrap(tracer)
        installed.store(true, ordering: .releasing)
    }

    /// Runs `body` in a new span `name`, a child of the current one (a request's, a task's), recording a thrown error
    /// on it; outside any span (a worker polling, say), or with tracing off, runs `body` with no span: only work done
    /// for a request or a task is traced.
    @inlinable
    public nonisolated(nonsending) static func span<T, Failure: Error>(
        _ name: @autoclosure () -> String, kind: SpanKind = .internal,
        _ body: (_ span: (any Span)?) async throws(Failure) -> T
    ) async throws(Failure) -> T {
        guard isEnabled, let parent = ServiceContext.current, parent[UnsampledKey.self] == nil else {
            return try await body(nil)
        }
        return try await traced(name(), context: parent, kind: kind, body)
    }

    /// Runs `body` in a new span `name` whose parent is `parent` (a `traceparent`, as `current` gives it), or a new
    /// trace without one; with tracing off, runs `body` with no span.
    public nonisolated(nonsending) static func span<T, Failure: Error>(
        _ name: String, continuing parent: String?, kind: SpanKind,
        _ body: (_ span: (any Span)?) async throws(Failure) -> T
    ) async throws(Failure) -> T {
        guard isEnabled else { return try await body(nil) }
        return try await traced(name, context: context(traceparent: parent), kind: kind, body)
    }

    /// Runs `body` in the span `name` under `context`. A span the sampler left out marks its context, so that
    /// nothing under it makes spans of its own: an unsampled request costs one span, not one per call.
    @usableFromInline
    nonisolated(nonsending) static func traced<T, Failure: Error>(
        _ name: String, context: ServiceContext, kind: SpanKind,
        _ body: (_ span: (any Span)?) async throws(Failure) -> T
    ) async throws(Failure) -> T {
        let span = InstrumentationSystem.tracer.startSpan(name, context: context, ofKind: kind)
        defer { span.end() }
        var inner = span.context
        if !span.isRecording { inner[UnsampledKey.self] = true }
        let result: Result<T, Failure> = await ServiceContext.$current.withValue(inner) {
            do throws(Failure) { return .success(try await body(span)) } catch { return .failure(error) }
        }
        if case .failure(let error) = result { span.recordError(error) }
        return try result.get()
    }

    /// The current span's W3C headers (`traceparent`, and `tracestate` when set), to send on an outgoing request;
    /// empty with tracing off or outside a span.
    public static func headers() -> [(name: String, value: String)] {
        injected().map { ($0.key, $0.value) }
    }

    /// The current span's `traceparent`, to store with work continued elsewhere (an enqueued task); nil with tracing
    /// off or outside a span.
    public static func current() -> String? {
        injected()["traceparent"]
    }

    private static func injected() -> [String: String] {
        guard isEnabled, let context = ServiceContext.current else { return [:] }
        var carrier: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &carrier, using: DictionaryInjector())
        return carrier
    }

    /// The current trace's id and span's id (from `traceparent`), for log lines; nil with tracing off.
    public static func ids() -> (trace: Substring, span: Substring)? {
        guard let parent = current() else { return nil }
        let parts = parent.split(separator: "-")
        guard parts.count == 4 else { return nil }
        return (parts[1], parts[2])
    }

    /// A context continuing `traceparent` (nil or malformed: a new trace).
    public static func context(traceparent: String?) -> ServiceContext {
        var context = ServiceContext.topLevel
        if let traceparent {
            InstrumentationSystem.instrument.extract(
                ["traceparent": traceparent], into: &context, using: DictionaryExtractor())
        }
        return context
    }
}

extension Traces {
    /// Runs one SQL statement in a span `db OPERATION` (its first word) carrying the statement's text — with its
    /// `?` placeholders, never the values bound to them — and the database system (`sqlite`, `postgresql`).
    public nonisolated(nonsending) static func statement<T>(
        _ sql: String, system: String, _ body: () async throws -> T
    ) async throws -> T {
        guard isEnabled else { return try await body() }
        let operation = sql.prefix { !$0.isWhitespace }.uppercased()
        return try await span("db \(operation)", kind: .client) { span in
            span?.attributes["db.system.name"] = system
            span?.attributes["db.operation.name"] = operation
            span?.attributes["db.query.text"] = sql
            return try await body()
        }
    }
}

/// Marks a context whose span the sampler left out.
@usableFromInline
enum UnsampledKey: ServiceContextKey {
    @usableFromInline typealias Value = Bool
}

struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}

struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}
