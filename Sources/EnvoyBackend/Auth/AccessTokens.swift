import EnvoyFramework
import Foundation
import HTTPTypes
import JWTKit
import Logging
import Synchronization

/// The claims of an Envoy access token.
struct AccessTokenClaims: JWTPayload {
    var sub: SubjectClaim
    var exp: ExpirationClaim
    var iat: IssuedAtClaim
    var nbf: NotBeforeClaim?

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }
}

/// Issues and verifies HS256 access tokens (`sub` = user id, `exp`).
public struct AccessTokens: Sendable {
    private let keys: JWTKeyCollection
    private let verified: VerifiedTokens
    /// How long a token is valid.
    public let lifetime: Duration

    /// Tokens signed with `secret`, remembering up to `remembering` verified tokens (0: verify every time).
    public init(secret: String, lifetime: Duration, remembering: Int = 10_000) async {
        self.verified = VerifiedTokens(capacity: remembering)
        self.keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        self.lifetime = lifetime
    }

    /// A signed token for `userID`.
    public func issue(userID: String) async throws -> String {
        let now = Date()
        return try await keys.sign(
            AccessTokenClaims(
                sub: .init(value: userID), exp: .init(value: now.addingTimeInterval(lifetime.inSeconds)),
                iat: .init(value: now)))
    }

    /// The user id of a valid token; throws `TokenRejection` saying why one is not. A token verified before is
    /// answered from memory until its `exp` (a client sends the same token with every request).
    public func verify(_ token: String, now: Date = Date()) async throws(TokenRejection) -> String {
        if let userID = try verified.userID(for: token, at: now) { return userID }
        guard Self.isCanonicalHS256(token) else { throw .invalid }
        let claims: AccessTokenClaims
        do {
            claims = try await keys.verify(token, as: AccessTokenClaims.self)
        } catch let error as JWTError where error.errorType == .claimVerificationFailure {
            throw .expired
        } catch {
            throw .invalid
        }
        // Not valid yet: refused (as invalid, not expired) and not remembered.
        if let notBefore = claims.nbf?.value, now < notBefore { throw .invalid }
        verified.insert(token, userID: claims.sub.value, expires: claims.exp.value)
        return claims.sub.value
    }

    /// Whether `token` is shaped as this issuer makes them: three parts, a header naming `alg` HS256 (never another
    /// algorithm, nor `none`), and a signature in canonical base64url — 43 characters whose last carries no stray
    /// bits, so that no second spelling of a signature verifies.
    static func isCanonicalHS256(_ token: String) -> Bool {
        let parts = token.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3, let header = base64URLDecoded(parts[0]),
            let fields = try? JSONSerialization.jsonObject(with: header) as? [String: Any],
            fields["alg"] as? String == "HS256", fields["crit"] == nil
        else { return false }
        let signature = parts[2]
        guard signature.count == 43, signature.allSatisfy({ base64URLAlphabet.contains($0) }),
            let last = signature.last, lastSignatureCharacters.contains(last)
        else { return false }
        return true
    }

    private static let base64URLAlphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    /// The characters whose low two bits are zero: a 32-byte value's last base64 character is one of these.
    private static let lastSignatureCharacters = Set("AEIMQUYcgkosw048".utf8)

    private static func base64URLDecoded(_ text: Substring.UTF8View.SubSequence) -> Data? {
        var base64 = String(decoding: text, as: UTF8.self).replacingOccurrences(of: "-", with: "+")
            .replacingOccurrences(of: "_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }

    /// Reads `JWT_SECRET`, or the secret kept at `path`, generating and persisting one (0600) on first use.
    public static func secret(configured: String?, persistedAt path: String) throws -> (secret: String, generated: Bool)
    {
        if let configured { return (configured, false) }
        if let existing = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines),
            existing.utf8.count >= 32
        {
            return (existing, false)
        }
        var bytes = [UInt8](repeating: 0, count: 48)
        var generator = SystemRandomNumberGenerator()
        for index in bytes.indices { bytes[index] = generator.next() }
        let secret = Data(bytes).base64EncodedString()
        _ = FileManager.default.createFile(
            atPath: path, contents: Data((secret + "\n").utf8), attributes: [.posixPermissions: 0o600])
        guard FileManager.default.fileExists(atPath: path) else {
            throw AccessTokenSecretError(path: path)
        }
        return (secret, true)
    }
}

/// Why a token was not accepted. A struct of named values, so that a new reason breaks no caller.
public struct TokenRejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// One word: `expired` or `invalid`.
    public let description: String

    private init(_ description: String) {
        self.description = description
    }

    /// Well-formed and correctly signed, but past `exp`.
    public static let expired = TokenRejection("expired")
    /// Malformed, wrongly signed, not yet valid (`nbf`), or using another algorithm.
    public static let invalid = TokenRejection("invalid")
}

/// The generated secret could not be persisted.
struct AccessTokenSecretError: Error, CustomStringConvertible {
    var path: String
    var description: String { "JWT_SECRET: unset, and a generated secret could not be saved to \(path)" }
}

/// Tokens whose signature and claims were verified, with their user and expiry. Only verified tokens get in, so
/// a lookup can only ever answer for a token this process signed; bounded, emptied when full.
final class VerifiedTokens: Sendable {
    private let entries = Mutex([String: (userID: String, expires: Date)]())
    private let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// The user of a verified token still valid at `now`; nil if unknown; `.expired` once past its `exp`.
    func userID(for token: String, at now: Date) throws(TokenRejection) -> String? {
        guard let entry = entries.withLock({ $0[token] }) else { return nil }
        // jwt-kit's ExpirationClaim accepts a token while `now < exp`; the same rule here.
        guard now < entry.expires else {
            entries.withLock { _ = $0.removeValue(forKey: token) }
            throw .expired
        }
        return entry.userID
    }

    /// Remembers a verified token.
    func insert(_ token: String, userID: String, expires: Date) {
        guard capacity > 0 else { return }
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[token] = (userID, expires)
        }
    }
}
