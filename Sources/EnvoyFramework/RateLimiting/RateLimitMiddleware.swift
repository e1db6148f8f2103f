import Tracing
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics

/// Applies every matching policy to each request in one store call, answers 429 when an enforced policy
/// rejects, and stamps the rate-limit headers on every limited response (errors included).
/// Repeat offenders are answered from a local memory of refusals; a failing store is handled per policy's
/// failure mode (`local`: an in-process limiter keeps counting; `open`: admit; `closed`: 503).
/// With a read-ahead (contexts that can carry one), the cache read a route's handler starts with goes to the store
/// with the decision — one round trip for both on Redis — and the handler finds its result in the context.
public struct RateLimitMiddleware<Context: IdentifiedRequestContext>: RouterMiddleware {
    private struct PolicyMetrics: Sendable {
        let admitted: Counter
        let rejected: Counter
        let shadowRejected: Counter
        let fallback: Counter
    }

    let policies: [RateLimitPolicy]
    let store: any RateLimitStore
    let fallback: MemoryRateLimitStore
    let denied: DeniedKeys
    let violationLog: SampledLogger
    private let metrics: [String: PolicyMetrics]
    private let storeLatency: Timer
    /// The cache read a request's handler will start with, if any.
    private let readAhead: (@Sendable (Request, Context) -> ChainedRead?)?
    /// Puts a read made ahead into the context.
    private let keep: (@Sendable (inout Context, PrefetchedRead) -> Void)?

    /// A limiter enforcing `policies` on `store`, remembering refused keys in `denied`.
    public init(
        policies: [RateLimitPolicy], store: any RateLimitStore, logger: Logger, metrics factory: any MetricsFactory,
        denied: DeniedKeys = DeniedKeys(capacity: 10_000)
    ) {
        self.init(
            policies: policies, store: store, logger: logger, metrics: factory, denied: denied, readAhead: nil,
            keep: nil)
    }

    private init(
        policies: [RateLimitPolicy], store: any RateLimitStore, logger: Logger, metrics factory: any MetricsFactory,
        denied: DeniedKeys, readAhead: (@Sendable (Request, Context) -> ChainedRead?)?,
        keep: (@Sendable (inout Context, PrefetchedRead) -> Void)?
    ) {
        self.readAhead = readAhead
        self.keep = keep
        self.policies = policies
        self.store = store
        self.fallback = MemoryRateLimitStore()
        self.denied = denied
        self.violationLog = SampledLogger(logger: logger, perSecond: 10)
        func counter(_ policy: String, _ decision: String) -> Counter {
            Counter(
                label: "envoy_ratelimit_decisions_total", dimensions: [("policy", policy), ("decision", decision)],
                factory: factory)
        }
        var metrics: [String: PolicyMetrics] = [:]
        for policy in policies {
            metrics[policy.name] = PolicyMetrics(
                admitted: counter(policy.name, "admitted"), rejected: counter(policy.name, "rejected"),
                shadowRejected: counter(policy.name, "shadow_rejected"),
                fallback: Counter(
                    label: "envoy_ratelimit_fallback_decisions_total", dimensions: [("policy", policy.name)],
                    factory: factory))
        }
        self.metrics = metrics
        self.storeLatency = Timer(label: "envoy_ratelimit_store_duration_seconds", factory: factory)
    }

    /// The checks that apply to a request: each matching policy with the key it counts by.
    public func checks(method: String, route: String?, identity: RequestIdentity, headers: HTTPFields = [:])
        -> [RateLimitCheck]
    {
        policies.compactMap { policy in
            guard policy.match.matches(method: method, route: route, authenticated: identity.userID != nil) else {
                return nil
            }
            switch policy.key {
            case .user:
                return identity.userID.map { .user($0, policy) }
            case .clientIP:
                return .ip(identity.clientAddress, policy)
            case .global:
                return .global(policy)
            case .header(let name):
                guard let field = HTTPField.Name(name), let value = headers[field], !value.isEmpty else { return nil }
                return .header(value, policy)
            }
        }
    }

    /// Decides, then either rejects with 429 or runs the rest of the chain and adds the headers.
    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let checks = checks(
            method: request.method.rawValue, route: context.endpointPath, identity: context.identity,
            headers: request.headers)
        guard !checks.isEmpty else { return try await next(request, context) }
        let decision: RateLimitDecision
        var prefetched: PrefetchedRead?
        let refused = denied.denied(checks)
        if !refused.isEmpty {
            decision = RateLimitDecision(
                outcomes: refused.map {
                    RateLimitOutcome(policy: $0.0.policy, allowed: false, remaining: 0, resetAfter: $0.1)
                },
                now: Date().timeIntervalSince1970)
        } else {
            (decision, prefetched) = try await decide(checks, along: readAhead?(request, context))
            denied.remember(decision, checks: checks)
        }
        record(decision)
        let fields = RateLimitHeaders.fields(for: decision)
        guard decision.admitted else {
            denied.count(decision, checks: refused.isEmpty ? checks : refused.map(\.0))
            let names = decision.violated.map(\.policy.name)
            log("rate limit exceeded", names, context)
            throw Problem(
                .tooManyRequests,
                detail:
                    "Rate limit exceeded for \(names.joined(separator: ", ")); retry after \(fields[.retryAfter] ?? "1") s.",
                extensions: ["violated-policies": .strings(names)],
                headers: fields
            )
        }
        if !decision.shadowViolated.isEmpty {
            log("rate limit exceeded (shadow policy: admitted)", decision.shadowViolated.map(\.policy.name), context)
        }
        var context = context
        if let prefetched, let keep { keep(&context, prefetched) }
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = try ProblemMiddleware<Context>.problem(for: error, logger: context.logger)
                .response(from: request, context: context)
        }
        // Room for all of them at once (appending one by one grew the list twice on most responses).
        response.headers.reserveCapacity(response.headers.count + fields.count)
        response.headers.append(contentsOf: fields)
        return response
    }

    /// The store's decision (and `read`, made along with it); on a store failure, what the failure modes say.
    private nonisolated(nonsending) func decide(_ checks: [RateLimitCheck], along read: ChainedRead?) async throws -> (
        RateLimitDecision, PrefetchedRead?
    ) {
        let start = ContinuousClock.now
        do {
            let decided: (RateLimitDecision, PrefetchedRead?) = try await Traces.span("ratelimit") { span in
                span?.attributes["envoy.ratelimit.policies"] = checks.map(\.policy.name).joined(separator: ",")
                let decided: (RateLimitDecision, PrefetchedRead?) =
                    if let read { try await store.acquire(checks, along: read) } else {
                        (try await store.acquire(checks), nil)
                    }
                span?.attributes["envoy.ratelimit.admitted"] = decided.0.admitted
                return decided
            }
            storeLatency.record(duration: ContinuousClock.now - start)
            return decided
        } catch {
            // The store is down or slow: each policy does what its failure mode says, and nothing waits longer.
            violationLog.warning("rate-limit store failed; applying failure modes", metadata: ["error": "\(error)"])
            let enforced = checks.filter { !$0.policy.shadow }
            if let closed = enforced.first(where: { $0.policy.failureMode == .closed }) {
                throw Problem(
                    .serviceUnavailable,
                    detail: "Rate limiting (\(closed.policy.name)) is unavailable; try again shortly.")
            }
            let local = checks.filter { $0.policy.failureMode == .local }
            for check in local { metrics[check.policy.name]?.fallback.increment() }
            return (fallback.acquire(local), nil)
        }
    }

    private func record(_ decision: RateLimitDecision) {
        for outcome in decision.outcomes {
            guard let counters = metrics[outcome.policy.name] else { continue }
            if !outcome.allowed && outcome.policy.shadow {
                counters.shadowRejected.increment()
            } else if decision.admitted {
                counters.admitted.increment()
            } else {
                counters.rejected.increment()
            }
        }
    }

    private func log(_ message: String, _ policies: [String], _ context: Context) {
        var metadata: Logger.Metadata = [
            "policy": .string(policies.joined(separator: ",")),
            "client.ip": .string(context.identity.clientAddress?.description ?? "unknown"),
            "user.id": .string(context.identity.userID ?? "-"),
            "request.id": context.logger[metadataKey: "request.id"] ?? "-",
        ]
        // The request's trace, when tracing is on.
        for key in ["trace.id", "span.id"] { metadata[key] = context.logger[metadataKey: key] }
        violationLog.warning("\(message)", metadata: metadata)
    }
}

/// A request context that can carry a cache read the rate limiter made ahead of the handler.
public protocol ReadAheadRequestContext: RequestContext {
    /// The read made ahead for this request, if any.
    var prefetched: PrefetchedRead? { get set }
}

extension RateLimitMiddleware where Context: ReadAheadRequestContext {
    /// A limiter that also sends the cache read `readAhead` names for a request (nil: none) with its decision, and
    /// keeps the result in the context's `prefetched` for the handler.
    public init(
        policies: [RateLimitPolicy], store: any RateLimitStore, logger: Logger, metrics factory: any MetricsFactory,
        denied: DeniedKeys = DeniedKeys(capacity: 10_000),
        readAhead: @escaping @Sendable (Request, Context) -> ChainedRead?
    ) {
        self.init(
            policies: policies, store: store, logger: logger, metrics: factory, denied: denied, readAhead: readAhead,
            keep: { context, read in context.prefetched = read })
    }
}
