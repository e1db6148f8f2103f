import HTTPTypes
import Hummingbird
import Logging
import Metrics

/// Applies every matching policy to each request in one store call, answers 429 when any rejects, and
/// stamps the rate-limit headers on every limited response (errors included).
public struct RateLimitMiddleware<Context: IdentifiedRequestContext>: RouterMiddleware {
    let policies: [RateLimitPolicy]
    let store: any RateLimitStore
    let fallback: MemoryRateLimitStore
    let violationLog: SampledLogger
    let decisions: [String: (admitted: Counter, rejected: Counter)]
    let fallbackDecisions: Counter

    /// A limiter enforcing `policies` on `store`; if the store fails, an in-process limiter takes over.
    public init(policies: [RateLimitPolicy], store: any RateLimitStore, logger: Logger, metrics: any MetricsFactory) {
        self.policies = policies
        self.store = store
        self.fallback = MemoryRateLimitStore()
        self.violationLog = SampledLogger(logger: logger, perSecond: 10)
        var decisions: [String: (Counter, Counter)] = [:]
        for policy in policies {
            decisions[policy.name] = (
                Counter(
                    label: "envoy_ratelimit_decisions_total",
                    dimensions: [("policy", policy.name), ("decision", "admitted")], factory: metrics),
                Counter(
                    label: "envoy_ratelimit_decisions_total",
                    dimensions: [("policy", policy.name), ("decision", "rejected")], factory: metrics)
            )
        }
        self.decisions = decisions
        self.fallbackDecisions = Counter(label: "envoy_ratelimit_fallback_decisions_total", factory: metrics)
    }

    /// The checks that apply to a request: each matching policy with the key it counts by.
    public func checks(method: String, route: String?, identity: RequestIdentity) -> [RateLimitCheck] {
        policies.compactMap { policy in
            guard policy.match.matches(method: method, route: route, authenticated: identity.userID != nil) else {
                return nil
            }
            switch policy.key {
            case .user:
                return identity.userID.map { RateLimitCheck(policy: policy, key: "user:\($0)") }
            case .clientIP:
                return RateLimitCheck(policy: policy, key: "ip:\(identity.clientAddress?.rateLimitKey ?? "unknown")")
            }
        }
    }

    /// Decides, then either rejects with 429 or runs the rest of the chain and adds the headers.
    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let checks = checks(method: request.method.rawValue, route: context.endpointPath, identity: context.identity)
        guard !checks.isEmpty else { return try await next(request, context) }
        let decision = await decide(checks, logger: context.logger)
        for outcome in decision.outcomes {
            decision.admitted
                ? decisions[outcome.policy.name]?.admitted.increment()
                : decisions[outcome.policy.name]?.rejected.increment()
        }
        let fields = RateLimitHeaders.fields(for: decision)
        guard decision.admitted else {
            let names = decision.violated.map(\.policy.name)
            violationLog.warning(
                "rate limit exceeded",
                metadata: [
                    "policy": .string(names.joined(separator: ",")),
                    "client.ip": .string(context.identity.clientAddress?.description ?? "unknown"),
                    "user.id": .string(context.identity.userID ?? "-"),
                ])
            throw Problem(
                .tooManyRequests,
                detail:
                    "Rate limit exceeded for \(names.joined(separator: ", ")); retry after \(fields[.retryAfter] ?? "1") s.",
                extensions: ["violated-policies": .strings(names)],
                headers: fields
            )
        }
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = try ProblemMiddleware<Context>.problem(for: error, logger: context.logger)
                .response(from: request, context: context)
        }
        for field in fields { response.headers.append(field) }
        return response
    }

    private func decide(_ checks: [RateLimitCheck], logger: Logger) async -> RateLimitDecision {
        do {
            return try await store.acquire(checks)
        } catch {
            // A failing store must not fail the request, nor lift the limits: this process keeps counting.
            fallbackDecisions.increment()
            violationLog.warning("rate-limit store failed; deciding in process", metadata: ["error": "\(error)"])
            return fallback.acquire(checks)
        }
    }
}
