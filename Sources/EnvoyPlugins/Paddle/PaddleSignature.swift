import Crypto
import EnvoyFramework
import Foundation

/// Paddle Billing's webhook signature, `Paddle-Signature: ts=UNIX;h1=HEX[;h1=HEX…]`, where each `h1` is
/// hex(HMAC-SHA256(secret, "ts:rawbody")). Verified as Paddle's SDKs do, with several secrets (rotation) and any
/// `h1` matching, compared in constant time, and a timestamp further than the tolerance from now, before or after,
/// rejected (replays).
public struct PaddleSignature: Sendable {
    /// Why a signature was not accepted (never carries a secret or the expected digest). A struct of named
    /// values, so that a new reason breaks no caller.
    public struct Rejection: Error, Equatable, CustomStringConvertible, Sendable {
        /// One word for logs and metrics.
        public let description: String

        private init(_ description: String) {
            self.description = description
        }

        /// No `Paddle-Signature` header.
        public static let missing = Rejection("missing")
        /// The header lacks `ts` or `h1`, or `ts` is not a number.
        public static let malformed = Rejection("malformed")
        /// Signed more than the tolerance ago.
        public static let expired = Rejection("expired")
        /// Signed more than the tolerance ahead of this machine's clock.
        public static let future = Rejection("future")
        /// No `h1` matches any configured secret.
        public static let mismatch = Rejection("mismatch")
    }

    /// One HMAC per secret with its key already set up; each verification starts from a copy.
    private let macs: [HMAC<SHA256>]
    /// How old a signature may be.
    public let tolerance: Duration

    /// A verifier for `secrets` (any may match); signatures older than `tolerance` are rejected.
    public init(secrets: [String], tolerance: Duration = .seconds(5)) {
        macs = secrets.map { HMAC<SHA256>(key: SymmetricKey(data: Data($0.utf8))) }
        self.tolerance = tolerance
    }

    /// Checks `header` against `body` at time `now`; throws the rejection.
    public func verify(header: String?, body: some Collection<UInt8>, now: Date = Date()) throws(Rejection) {
        guard let header, !header.isEmpty else { throw .missing }
        // Parsed as bytes: splitting the String by Characters was half of this function's time on the webhook path.
        var timestamp: ArraySlice<UInt8>?
        var digests: [ArraySlice<UInt8>] = []
        for field in Array(header.utf8).split(separator: UInt8(ascii: ";")) {
            // `name=value`, both non-empty; only the name is trimmed of spaces and tabs.
            guard let equals = field.firstIndex(of: UInt8(ascii: "=")), equals != field.startIndex,
                field.index(after: equals) != field.endIndex
            else { continue }
            let value = field[field.index(after: equals)...]
            switch field[..<equals].trimmingSpacesAndTabs() {
            case Self.timestampName: timestamp = value
            case Self.digestName: digests.append(value)
            default: continue  // future schemes (h2…) are ignored, as the SDKs do
            }
        }
        guard let timestamp, let seconds = Int(String(decoding: timestamp, as: UTF8.self)), !digests.isEmpty else {
            throw .malformed
        }
        guard now.timeIntervalSince1970 <= Double(seconds) + tolerance.inSeconds else { throw .expired }
        // A timestamp ahead by more than the tolerance would stay replayable for that much longer.
        guard Double(seconds) <= now.timeIntervalSince1970 + tolerance.inSeconds else { throw .future }
        let prefix = Array("\(seconds):".utf8)
        let bytes = Array(body)
        for prepared in macs {
            var mac = prepared
            mac.update(data: prefix)
            mac.update(data: bytes)
            let expected = Array(mac.finalize())
            for digest in digests where Self.equalsHex(expected, digest) { return }
        }
        throw .mismatch
    }

    private static let timestampName = ArraySlice("ts".utf8)
    private static let digestName = ArraySlice("h1".utf8)

    /// The header Paddle would send for `body` signed with `secret` at `time` (the mock and tests use it).
    public static func header(body: some Collection<UInt8>, secret: String, at time: Date = Date()) -> String {
        let seconds = Int(time.timeIntervalSince1970)
        let code = HMAC<SHA256>.authenticationCode(
            for: Array("\(seconds):".utf8) + Array(body), using: SymmetricKey(data: Data(secret.utf8)))
        return "ts=\(seconds);h1=" + code.map { String(format: "%02x", $0) }.joined()
    }

    /// Compares a MAC with a hex string without stopping at the first difference.
    static func equalsHex(_ mac: [UInt8], _ hex: some Collection<UInt8>) -> Bool {
        let hexBytes = Array(hex)
        var difference = UInt8(hexBytes.count == mac.count * 2 ? 0 : 1)
        for (index, byte) in mac.enumerated() {
            let high = index * 2 < hexBytes.count ? hexValue(hexBytes[index * 2]) : 0xFF
            let low = index * 2 + 1 < hexBytes.count ? hexValue(hexBytes[index * 2 + 1]) : 0xFF
            difference |= (high ^ (byte >> 4)) | (low ^ (byte & 0x0F))
        }
        return difference == 0
    }

    /// A hex digit's value (either case), or 0xFF for a non-digit (which never matches a nibble).
    private static func hexValue(_ character: UInt8) -> UInt8 {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        default: 0xFF
        }
    }
}
