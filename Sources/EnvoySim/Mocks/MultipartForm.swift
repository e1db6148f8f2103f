import Foundation

/// A `multipart/form-data` body's fields, in order (RFC 7578), as the mocks receive them.
public struct MultipartForm: Sendable {
    /// Every field's name and value; a name may repeat.
    public var fields: [(name: String, value: String)]

    /// All values of `name`.
    public func values(_ name: String) -> [String] { fields.filter { $0.name == name }.map(\.value) }

    /// The first value of `name`.
    public func value(_ name: String) -> String? { fields.first { $0.name == name }?.value }

    /// Parses `body` sent with `contentType` (which names the boundary); nil if it is not a well-formed form.
    public init?(body: [UInt8], contentType: String) {
        guard contentType.lowercased().hasPrefix("multipart/form-data"),
            let boundaryParameter = contentType.split(separator: ";").map({ $0.trimmingPrefix(" ") })
                .first(where: { $0.lowercased().hasPrefix("boundary=") })
        else { return nil }
        var boundary = String(boundaryParameter.dropFirst("boundary=".count))
        if boundary.hasPrefix("\""), boundary.hasSuffix("\""), boundary.count >= 2 {
            boundary = String(boundary.dropFirst().dropLast())
        }
        let delimiter = Array("--\(boundary)".utf8)
        var parts: [ArraySlice<UInt8>] = []
        var position = body.startIndex
        guard let first = Self.find(delimiter, in: body, from: position) else { return nil }
        position = first + delimiter.count
        while true {
            if body[position...].starts(with: Array("--".utf8)) { break }  // the closing delimiter
            guard body[position...].starts(with: Array("\r\n".utf8)) else { return nil }
            let start = position + 2
            guard let next = Self.find(Array("\r\n".utf8) + delimiter, in: body, from: start) else { return nil }
            parts.append(body[start..<next])
            position = next + 2 + delimiter.count
        }
        var fields: [(name: String, value: String)] = []
        for part in parts {
            guard let split = Self.find(Array("\r\n\r\n".utf8), in: Array(part), from: 0) else { return nil }
            let bytes = Array(part)
            let headers = String(decoding: bytes[..<split], as: UTF8.self).split(separator: "\r\n")
            guard
                let disposition = headers.first(where: { $0.lowercased().hasPrefix("content-disposition: form-data") }),
                let nameStart = disposition.range(of: "name=\"")
            else { return nil }
            let rest = disposition[nameStart.upperBound...]
            guard let nameEnd = rest.firstIndex(of: "\"") else { return nil }
            fields.append((String(rest[..<nameEnd]), String(decoding: bytes[(split + 4)...], as: UTF8.self)))
        }
        self.fields = fields
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard needle.count <= haystack.count, start <= haystack.count - needle.count else { return nil }
        var index = start
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0] && haystack[index..<(index + needle.count)].elementsEqual(needle) {
                return index
            }
            index += 1
        }
        return nil
    }
}
