/// The two counting rules, shared by every store so that in-memory and Redis decisions agree to the digit.
extension RateLimitOutcome {
    /// A sliding log holding `count` requests within the window, the oldest at `oldest` (Unix seconds).
    public static func slidingLog(_ policy: RateLimitPolicy, count: Int, oldest: Double?, now: Double, charged: Bool)
        -> RateLimitOutcome
    {
        let allowed = count < policy.limit
        let counted = count + (charged ? 1 : 0)
        let first = oldest ?? (charged ? now : nil)
        return RateLimitOutcome(
            policy: policy, allowed: allowed, remaining: max(0, policy.limit - counted),
            resetAfter: first.map { max(0, $0 + policy.window - now) } ?? 0)
    }

    /// GCRA: each request takes `window / limit` seconds of a `window`-long budget, so `limit` fit at once and
    /// the budget refills smoothly. `arrival` is the theoretical arrival time, `max(stored, now)`.
    public static func gcra(_ policy: RateLimitPolicy, arrival: Double, now: Double, charged: Bool) -> RateLimitOutcome
    {
        let emission = policy.window / Double(policy.limit)
        let allowAt = arrival + emission - policy.window
        let allowed = now >= allowAt - 1e-9
        if charged {
            let next = arrival + emission
            return RateLimitOutcome(
                policy: policy, allowed: true,
                remaining: max(
                    0, Int(((now - (next + emission - policy.window)) / emission + 1 + 1e-9).rounded(.down))),
                resetAfter: next - now)
        }
        return RateLimitOutcome(
            policy: policy, allowed: allowed,
            remaining: max(0, Int(((now - arrival + policy.window) / emission + 1e-9).rounded(.down))),
            resetAfter: allowed ? max(0, arrival - now) : allowAt - now)
    }
}
