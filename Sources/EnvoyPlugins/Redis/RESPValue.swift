/// A reply from Redis (RESP2).
public enum RESPValue: Sendable, Equatable {
    /// `+OK`.
    case simple(String)
    /// `-ERR …`: Redis refused the command (not a transport failure).
    case error(String)
    /// `:42`.
    case integer(Int64)
    /// `$n` bulk string; nil for the null bulk string.
    case bulk([UInt8]?)
    /// `*n` array; nil for the null array.
    case array([RESPValue]?)

    /// The value as text, for simple and bulk strings.
    public var string: String? {
        switch self {
        case .simple(let text): text
        case .bulk(let bytes?): String(decoding: bytes, as: UTF8.self)
        default: nil
        }
    }

    /// The value as bytes, for bulk strings.
    public var bytes: [UInt8]? {
        if case .bulk(let bytes) = self { return bytes }
        return nil
    }

    /// The value as an integer (integers, and strings holding one).
    public var int: Int64? {
        switch self {
        case .integer(let value): value
        case .simple, .bulk: string.flatMap { Int64($0) }
        default: nil
        }
    }

    /// The elements, for arrays.
    public var array: [RESPValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    /// True for the null bulk string and null array.
    public var isNull: Bool {
        switch self {
        case .bulk(nil), .array(nil): true
        default: false
        }
    }
}
