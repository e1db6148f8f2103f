import HTTPTypes

extension HTTPField.Name {
    /// `X-RateLimit-Limit`.
    public static let xRateLimitLimit = Self("X-RateLimit-Limit")!
    /// `X-RateLimit-Remaining`.
    public static let xRateLimitRemaining = Self("X-RateLimit-Remaining")!
    /// `X-RateLimit-Reset` (Unix seconds).
    public static let xRateLimitReset = Self("X-RateLimit-Reset")!
    /// The IETF draft's `RateLimit-Policy`.
    public static let rateLimitPolicy = Self("RateLimit-Policy")!
    /// The IETF draft's `RateLimit`.
    public static let rateLimit = Self("RateLimit")!
}

/// Writes a decision as response headers: `X-RateLimit-*` for the policy closest to exhaustion, and
/// draft-ietf-httpapi-ratelimit-headers-10 `RateLimit-Policy` / `RateLimit` lists for every policy.
public enum RateLimitHeaders {
    /// The outcome the `X-RateLimit-*` fields describe: fewest remaining, then latest reset.
    public static func closestToExhaustion(_ decision: RateLimitDecision) -> RateLimitOutcome? {
        decision.outcomes.min { lhs, rhs in
            if lhs.allowed != rhs.allowed { return !lhs.allowed }
            if lhs.remaining != rhs.remaining { return lhs.remaining < rhs.remaining }
            return lhs.resetAfter > rhs.resetAfter
        }
    }

    /// The fields for a decision; on rejection they include `Retry-After`.
    public static func fields(for decision: RateLimitDecision) -> HTTPFields {
        var fields = HTTPFields()
        guard let closest = closestToExhaustion(decision) else { return fields }
        fields.reserveCapacity(6)
        // A fresh list: appending is cheaper than the subscript's replace-or-append.
        fields.append(HTTPField(name: .xRateLimitLimit, value: String(closest.policy.limit)))
        fields.append(HTTPField(name: .xRateLimitRemaining, value: String(closest.remaining)))
        fields.append(
            HTTPField(name: .xRateLimitReset, value: String(Int((decision.now + closest.resetAfter).rounded(.up)))))
        fields.append(
            HTTPField(
                name: .rateLimitPolicy,
                value: list(decision) { value, outcome in
                    value += ";q="
                    value += String(outcome.policy.limit)
                    value += ";w="
                    value += String(Int(outcome.policy.window.rounded(.up)))
                }))
        fields.append(
            HTTPField(
                name: .rateLimit,
                value: list(decision) { value, outcome in
                    value += ";r="
                    value += String(outcome.remaining)
                    value += ";t="
                    value += String(Int(outcome.resetAfter.rounded(.up)))
                }))
        if let retryAfter = retryAfter(decision) {
            fields.append(HTTPField(name: .retryAfter, value: String(retryAfter)))
        }
        return fields
    }

    /// A draft-10 list: each outcome as `"name"` and the parameters `append` adds, comma-separated; built in one
    /// string (mapping and joining cost one string per outcome more, on every limited response).
    private static func list(_ decision: RateLimitDecision, _ append: (inout String, RateLimitOutcome) -> Void)
        -> String
    {
        var value = ""
        value.reserveCapacity(40 * decision.outcomes.count)
        for (index, outcome) in decision.outcomes.enumerated() {
            if index > 0 { value += ", " }
            value += "\""
            value += outcome.policy.name
            value += "\""
            append(&value, outcome)
        }
        return value
    }

    /// Whole seconds until every violated policy has a free slot; never earlier (rounded up), at least 1.
    public static func retryAfter(_ decision: RateLimitDecision) -> Int? {
        let waits = decision.violated.map(\.resetAfter)
        guard let longest = waits.max() else { return nil }
        return max(1, Int(longest.rounded(.up)))
    }
}
