import CHiredis
import NIOCore

/// Encodes commands with hiredis's `redisFormatCommandArgv`.
public enum RESPEncoder {
    /// Appends the RESP bytes of one command to `buffer`. The argument table hiredis reads is built in
    /// temporary storage (on the stack for small commands), so a command costs hiredis's one allocation.
    public static func encode(_ arguments: [RedisArgument], into buffer: inout ByteBuffer) {
        var capacity = 1
        for argument in arguments { capacity += argument.maxByteCount }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: capacity) { joined in
            withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: arguments.count) { pointers in
                withUnsafeTemporaryAllocation(of: Int.self, capacity: arguments.count) { lengths in
                    var offset = 0
                    for (index, argument) in arguments.enumerated() {
                        let written = argument.write(into: UnsafeMutableBufferPointer(rebasing: joined[offset...]))
                        pointers[index] = UnsafeRawPointer(joined.baseAddress! + offset).assumingMemoryBound(
                            to: CChar.self)
                        lengths[index] = written
                        offset += written
                    }
                    var target: UnsafeMutablePointer<CChar>?
                    let length = redisFormatCommandArgv(
                        &target, Int32(arguments.count), pointers.baseAddress, lengths.baseAddress)
                    guard length > 0, let target else { return }
                    defer { redisFreeCommand(target) }
                    buffer.writeBytes(UnsafeRawBufferPointer(start: target, count: Int(length)))
                }
            }
        }
    }

    /// The RESP bytes of one command.
    public static func encode(_ arguments: [RedisArgument]) -> [UInt8] {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        encode(arguments, into: &buffer)
        return Array(buffer.readableBytesView)
    }
}

/// One argument of a Redis command: text, bytes or a number. Kept as given and written straight into the
/// command when it is encoded (copying each argument into an array of its own was a tenth of the allocations of a
/// cached, rate-limited read).
public struct RedisArgument: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    private enum Value: Sendable {
        case text(String)
        case bytes([UInt8])
        case integer(Int)
    }

    private let value: Value

    /// Raw bytes.
    public init(bytes: [UInt8]) { value = .bytes(bytes) }

    /// The argument as text, when it was given as text (a command's name, say).
    public var text: String? {
        if case .text(let text) = value { return text }
        return nil
    }
    /// UTF-8 text.
    public init(_ text: String) { value = .text(text) }
    /// A decimal integer.
    public init(_ number: Int) { value = .integer(number) }
    /// A decimal number; an integral one is written as an integer (`60000`, not `60000.0`: shorter, and formatting
    /// a `Double` was 1 % of a cached read's CPU when the limiter sent its window this way).
    public init(_ number: Double) {
        value = number == number.rounded() && abs(number) < 1e15 ? .integer(Int(number)) : .text(String(number))
    }
    /// Text from a literal.
    public init(stringLiteral value: String) { self.init(value) }
    /// An integer from a literal.
    public init(integerLiteral value: Int) { self.init(value) }

    /// The argument's bytes on the wire.
    public var bytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: maxByteCount) { buffer, count in count = write(into: buffer) }
    }

    /// At least as many bytes as `write(into:)` writes.
    var maxByteCount: Int {
        switch value {
        case .text(let text): text.utf8.count
        case .bytes(let bytes): bytes.count
        case .integer: 20  // Int.min's digits and sign
        }
    }

    /// Writes the argument's bytes at the start of `buffer` (at least `maxByteCount` long); returns how many.
    func write(into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        switch value {
        case .text(let text):
            var text = text
            return text.withUTF8 { utf8 in buffer.initialize(fromContentsOf: utf8) }
        case .bytes(let bytes):
            return bytes.withUnsafeBufferPointer { buffer.initialize(fromContentsOf: $0) }
        case .integer(let number):
            var count = number < 0 ? 2 : 1
            var rest = number.magnitude / 10
            while rest > 0 {
                count += 1
                rest /= 10
            }
            var magnitude = number.magnitude
            for index in stride(from: count - 1, through: number < 0 ? 1 : 0, by: -1) {
                buffer[index] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            }
            if number < 0 { buffer[0] = UInt8(ascii: "-") }
            return count
        }
    }
}

/// Decodes replies with hiredis's `redisReader`, refusing replies larger than a limit.
public final class RESPReader {
    private let reader: UnsafeMutablePointer<redisReader>
    private let maxReplyBytes: Int

    /// A reader that fails once more than `maxReplyBytes` are buffered for one reply.
    public init(maxReplyBytes: Int) {
        reader = redisReaderCreate()
        self.maxReplyBytes = maxReplyBytes
    }

    deinit { redisReaderFree(reader) }

    /// Adds received bytes.
    public func feed(_ bytes: UnsafeRawBufferPointer) throws(RedisError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        guard redisReaderFeed(reader, base.assumingMemoryBound(to: CChar.self), bytes.count) == REDIS_OK else {
            throw .protocolError(readerError)
        }
        if reader.pointee.len - reader.pointee.pos > maxReplyBytes {
            throw .protocolError("reply larger than \(maxReplyBytes) bytes")
        }
    }

    /// The next complete reply, or nil if more bytes are needed.
    public func next() throws(RedisError) -> RESPValue? {
        var reply: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &reply) == REDIS_OK else { throw .protocolError(readerError) }
        guard let reply else { return nil }
        defer { freeReplyObject(reply) }
        return Self.convert(reply.assumingMemoryBound(to: redisReply.self))
    }

    private var readerError: String {
        withUnsafeBytes(of: reader.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RESPValue {
        let value = reply.pointee
        func text() -> [UInt8] {
            guard let str = value.str else { return [] }
            return str.withMemoryRebound(to: UInt8.self, capacity: value.len) {
                Array(UnsafeBufferPointer(start: $0, count: value.len))
            }
        }
        switch value.type {
        case REDIS_REPLY_STRING: return .bulk(text())
        case REDIS_REPLY_STATUS: return .simple(String(decoding: text(), as: UTF8.self))
        case REDIS_REPLY_ERROR: return .error(String(decoding: text(), as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(Int64(value.integer))
        case REDIS_REPLY_ARRAY:
            return .array((0..<value.elements).map { convert(value.element[$0]!) })
        default: return .bulk(nil)
        }
    }
}
