import Crypto
import EnvoyFramework
import Foundation
import Synchronization

/// Who may use the console: the operators' token, the signed session cookie a sign-in grants, and the CSRF token
/// bound to that session. Stateless (an HMAC under a key derived from the token), so every instance sharing
/// `ADMIN_TOKEN` accepts every other's sessions, and changing the token ends them all.
struct AdminAccess: Sendable {
    /// The session cookie's name.
    static let cookie = "envoy_admin"
    /// How long a session lasts.
    static let sessionLifetime: TimeInterval = 12 * 3600

    private let token: [UInt8]
    private let key: SymmetricKey
    /// Wrong tokens per client address: 10 in 15 minutes, then every attempt is refused until they age out.
    let failures = AttemptLimiter(limit: 10, window: 15 * 60)

    init(token: String) {
        self.token = Array(token.utf8)
        self.key = SymmetricKey(data: SHA256.hash(data: Array("envoy-admin-session:".utf8) + Array(token.utf8)))
    }

    /// Whether `candidate` is the token, compared in constant time (its length alone can differ).
    func isToken(_ candidate: String) -> Bool {
        let given = Array(candidate.utf8)
        var difference = UInt8(given.count == token.count ? 0 : 1)
        for index in token.indices { difference |= token[index] ^ (index < given.count ? given[index] : 0) }
        return difference == 0
    }

    /// A new session: `EXPIRY.SIGNATURE`.
    func newSession(now: Date = Date()) -> String {
        let expiry = String(Int(now.timeIntervalSince1970 + Self.sessionLifetime))
        return expiry + "." + sign("session:" + expiry)
    }

    /// Whether `session` was signed here and has not expired.
    func isValid(session: String, now: Date = Date()) -> Bool {
        let parts = session.split(separator: ".", maxSplits: 1)
        guard parts.count == 2, let expiry = Double(parts[0]), expiry > now.timeIntervalSince1970 else { return false }
        return Self.equal(sign("session:" + parts[0]), String(parts[1]))
    }

    /// The CSRF token of `session`.
    func csrf(for session: String) -> String { sign("csrf:" + session) }

    /// Whether `token` is `session`'s CSRF token (constant time).
    func isCSRF(_ token: String, for session: String) -> Bool { Self.equal(csrf(for: session), token) }

    private func sign(_ text: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: key).map { String(format: "%02x", $0) }
            .joined()
    }

    /// Constant-time equality of two strings of the same (public) length.
    static func equal(_ a: String, _ b: String) -> Bool {
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

/// Failed attempts per key (a client address) within a sliding window; at most `capacity` keys are remembered
/// (the oldest forgotten first), so a flood of addresses cannot grow it without bound.
final class AttemptLimiter: Sendable {
    let limit: Int
    let window: TimeInterval
    let capacity: Int
    private let attempts = Mutex<[String: [Date]]>([:])

    init(limit: Int, window: TimeInterval, capacity: Int = 10_000) {
        self.limit = limit
        self.window = window
        self.capacity = capacity
    }

    /// Whether `key` has used up its failures.
    func isBlocked(_ key: String, now: Date = Date()) -> Bool {
        attempts.withLock { ($0[key] ?? []).filter { now.timeIntervalSince($0) < window }.count >= limit }
    }

    /// Counts a failure of `key`.
    func recordFailure(_ key: String, now: Date = Date()) {
        attempts.withLock { attempts in
            attempts[key] = (attempts[key] ?? []).filter { now.timeIntervalSince($0) < window } + [now]
            if attempts.count > capacity,
                let oldest = attempts.min(by: { ($0.value.last ?? now) < ($1.value.last ?? now) })?.key
            {
                attempts.removeValue(forKey: oldest)
            }
        }
    }
}
