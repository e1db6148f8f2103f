import EnvoyBackend
import Foundation
import Testing

@Suite("Access tokens: verification, and the memory of verified tokens")
struct AccessTokenTests {
    static let secret = "a-test-secret-of-at-least-thirty-two-bytes"

    @Test("a remembered token still expires at its exp; forged and tampered tokens are never answered from memory")
    func rememberedTokens() async throws {
        let tokens = await AccessTokens(secret: Self.secret, lifetime: .seconds(60))
        let token = try await tokens.issue(userID: "user-1")
        #expect(try await tokens.verify(token) == "user-1")
        #expect(try await tokens.verify(token) == "user-1")  // from memory now
        await #expect(throws: TokenRejection.expired) { try await tokens.verify(token, now: Date() + 61) }
        // Once seen expired it is forgotten; a clock back in range verifies it afresh by signature.
        #expect(try await tokens.verify(token) == "user-1")

        let forger = await AccessTokens(secret: "another-secret-that-is-also-32-bytes-long", lifetime: .seconds(60))
        let forged = try await forger.issue(userID: "user-1")
        await #expect(throws: TokenRejection.invalid) { try await tokens.verify(forged) }
        let parts = token.split(separator: ".")
        let otherPayload = try await tokens.issue(userID: "user-2").split(separator: ".")[1]
        await #expect(throws: TokenRejection.invalid) {
            try await tokens.verify("\(parts[0]).\(otherPayload).\(parts[2])")
        }
    }

    @Test("an expired token is refused as expired, first time and every time")
    func expiredTokens() async throws {
        let expired = await AccessTokens(secret: Self.secret, lifetime: .seconds(-60))
        let tokens = await AccessTokens(secret: Self.secret, lifetime: .seconds(60))
        let stale = try await expired.issue(userID: "user-1")
        for _ in 0..<2 {
            await #expect(throws: TokenRejection.expired) { try await tokens.verify(stale) }
        }
    }
}
