import Foundation

/// Address checks shared by validation and routes.
public enum EmailAddress {
    /// A pragmatic check: one `@`, a local part of 1-64 bytes, a dotted domain, no spaces or control characters.
    public static func isValid(_ address: String) -> Bool {
        // On bytes and scalars: by `Character` (grapheme breaking) this was 3 % of `Benchmarks/emails.sh`.
        let bytes = address.utf8
        guard bytes.count <= 254,
            !address.unicodeScalars.contains(where: { $0.value < 32 || $0.properties.isWhitespace }),
            let at = bytes.firstIndex(of: UInt8(ascii: "@"))
        else { return false }
        let local = bytes[..<at]
        let domain = bytes[bytes.index(after: at)...]
        guard !local.isEmpty, local.count <= 64, !domain.contains(where: Self.forbiddenInDomain.contains) else {
            return false
        }
        let labels = domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        return labels.count >= 2
            && labels.allSatisfy { !$0.isEmpty && $0.first != UInt8(ascii: "-") && $0.last != UInt8(ascii: "-") }
    }

    /// The one form an account's address is stored and looked up in, so that look-alikes are one account:
    /// trimmed, Unicode NFC, case-folded (full folding: `ß` is `ss`), the domain in its ASCII (IDNA "xn--") form. Nil when the address holds
    /// control, format (zero-width, bidi), private-use or unassigned characters, or is not valid once normalised.
    public static func normalized(_ address: String) -> String? {
        let trimmed = address.trimmingCharacters(in: .whitespaces)
        guard
            !trimmed.unicodeScalars.contains(where: {
                switch $0.properties.generalCategory {
                case .control, .format, .privateUse, .surrogate, .unassigned, .lineSeparator, .paragraphSeparator:
                    true
                default: false
                }
            })
        else { return nil }
        let folded = trimmed.precomposedStringWithCanonicalMapping.folding(options: .caseInsensitive, locale: nil)
            .precomposedStringWithCanonicalMapping
        guard let at = folded.lastIndex(of: "@") else { return nil }
        let local = folded[..<at]
        var labels: [String] = []
        for label in folded[folded.index(after: at)...].split(separator: ".", omittingEmptySubsequences: false) {
            if label.unicodeScalars.allSatisfy(\.isASCII) {
                labels.append(String(label))
            } else {
                guard let encoded = Punycode.encode(label.unicodeScalars), encoded.utf8.count <= 59 else { return nil }
                labels.append("xn--" + encoded)
            }
        }
        let normalized = String(local) + "@" + labels.joined(separator: ".")
        return isValid(normalized) ? normalized : nil
    }

    /// Bytes a domain may not hold (a second `@` included).
    private static let forbiddenInDomain = Set("@<>()[],;:\\\"".utf8)
}

/// RFC 3492 Punycode, the encoding inside an internationalised domain label's `xn--` form.
enum Punycode {
    private static let base = 36
    private static let tMin = 1
    private static let tMax = 26
    private static let skew = 38
    private static let damp = 700

    /// The Punycode of `scalars` (without the `xn--` prefix), or nil on overflow.
    static func encode(_ scalars: Substring.UnicodeScalarView) -> String? {
        let input = scalars.map(\.value)
        var output = input.filter { $0 < 0x80 }.map { Character(Unicode.Scalar($0)!) }
        let basicCount = output.count
        var handled = basicCount
        if basicCount > 0 { output.append("-") }
        var n: UInt32 = 0x80
        var delta = 0
        var bias = 72
        while handled < input.count {
            guard let next = input.filter({ $0 >= n }).min() else { return nil }
            let (product, overflow) = Int(next - n).multipliedReportingOverflow(by: handled + 1)
            guard !overflow else { return nil }
            delta += product
            n = next
            for value in input {
                if value < n { delta += 1 }
                if value == n {
                    var q = delta
                    var k = base
                    while true {
                        let t = k <= bias ? tMin : (k >= bias + tMax ? tMax : k - bias)
                        if q < t { break }
                        output.append(digit(t + (q - t) % (base - t)))
                        q = (q - t) / (base - t)
                        k += base
                    }
                    output.append(digit(q))
                    bias = adapt(delta, points: handled + 1, first: handled == basicCount)
                    delta = 0
                    handled += 1
                }
            }
            delta += 1
            n += 1
        }
        return String(output)
    }

    private static func digit(_ value: Int) -> Character {
        Character(Unicode.Scalar(UInt8(value < 26 ? 97 + value : 22 + value)))
    }

    private static func adapt(_ delta: Int, points: Int, first: Bool) -> Int {
        var delta = first ? delta / damp : delta / 2
        delta += delta / points
        var k = 0
        while delta > ((base - tMin) * tMax) / 2 {
            delta /= base - tMin
            k += base
        }
        return k + (base - tMin + 1) * delta / (delta + skew)
    }
}
