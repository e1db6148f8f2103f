import Crypto
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

    /// A token with `header` and `claims`, signed with HS256 under `secret` whatever the header says.
    static func handMade(header: String, claims: String, secret: String = secret) -> String {
        func encode(_ bytes: some Sequence<UInt8>) -> String {
            Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        let signingInput = encode(Array(header.utf8)) + "." + encode(Array(claims.utf8))
        let mac = HMAC<SHA256>.authenticationCode(
            for: Array(signingInput.utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return signingInput + "." + encode(mac)
    }

    @Test("only HS256 headers verify: RS256, none and a missing alg carrying a valid HS256 signature are refused")
    func algorithm() async throws {
        let tokens = await AccessTokens(secret: Self.secret, lifetime: .seconds(60), remembering: 0)
        let now = Int(Date().timeIntervalSince1970)
        let claims = #"{"sub":"user-1","exp":\#(now + 60),"iat":\#(now)}"#
        #expect(
            try await tokens.verify(Self.handMade(header: #"{"alg":"HS256","typ":"JWT"}"#, claims: claims)) == "user-1")
        for header in [
            #"{"alg":"RS256","typ":"JWT"}"#, #"{"alg":"none","typ":"JWT"}"#, #"{"typ":"JWT"}"#, #"{"alg":"hs256"}"#,
            #"{"alg":"HS256","crit":["exp"]}"#, "not json",
        ] {
            await #expect(throws: TokenRejection.invalid, "\(header)") {
                try await tokens.verify(Self.handMade(header: header, claims: claims))
            }
        }
    }

    @Test("a token is refused before its nbf and accepted after it")
    func notBefore() async throws {
        let tokens = await AccessTokens(secret: Self.secret, lifetime: .seconds(60), remembering: 0)
        let now = Int(Date().timeIntervalSince1970)
        let header = #"{"alg":"HS256","typ":"JWT"}"#
        let early = Self.handMade(
            header: header, claims: #"{"sub":"u","exp":\#(now + 60),"iat":\#(now),"nbf":\#(now + 30)}"#)
        await #expect(throws: TokenRejection.invalid) { try await tokens.verify(early) }
        let ready = Self.handMade(
            header: header, claims: #"{"sub":"u","exp":\#(now + 60),"iat":\#(now),"nbf":\#(now - 1)}"#)
        #expect(try await tokens.verify(ready) == "u")
    }

    @Test("a signature spelled with stray low bits, padding or the standard alphabet is refused")
    func canonicalSignature() async throws {
        let tokens = await AccessTokens(secret: Self.secret, lifetime: .seconds(60), remembering: 0)
        let token = try await tokens.issue(userID: "user-1")
        #expect(try await tokens.verify(token) == "user-1")
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        let last = token.last!
        let index = alphabet.firstIndex(of: last)!
        #expect(index % 4 == 0, "a 32-byte signature's last character has two zero bits")
        let strayBits = String(token.dropLast()) + String(alphabet[index + 1])  // decodes to the same 32 bytes
        for variant in [
            strayBits, token + "=", token.replacingOccurrences(of: "-", with: "+") + (token.contains("-") ? "" : "+"),
        ] {
            await #expect(throws: TokenRejection.invalid) { try await tokens.verify(variant) }
        }
    }
}
