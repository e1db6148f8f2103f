import CCurl
import CHiredis

/// The C libraries the plugins are built on, as linked into this binary.
public enum SystemLibraries {
    /// hiredis's version (Redis protocol codec), e.g. `0.14.1`.
    public static var hiredisVersion: String {
        "\(envoy_hiredis_major()).\(envoy_hiredis_minor()).\(envoy_hiredis_patch())"
    }

    /// libcurl's version and TLS backend, e.g. `7.88.1 (OpenSSL/3.0.19)`, read from the loaded library.
    public static var curlVersion: String {
        guard let info = envoy_curl_version_info() else { return "unknown" }
        let version = info.pointee.version.map { String(cString: $0) } ?? "unknown"
        let tls = info.pointee.ssl_version.map { String(cString: $0) } ?? "no TLS"
        return "\(version) (\(tls))"
    }

    /// Parses a RESP reply with hiredis's reader; proves the codec links and works (the Redis client builds on it).
    public static func parseRESPInteger(_ bytes: [UInt8]) -> Int64? {
        guard let reader = redisReaderCreate() else { return nil }
        defer { redisReaderFree(reader) }
        let fed = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { redisReaderFeed(reader, $0.baseAddress, buffer.count) }
        }
        guard fed == REDIS_OK else { return nil }
        var reply: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &reply) == REDIS_OK, let reply else { return nil }
        defer { freeReplyObject(reply) }
        let typed = reply.assumingMemoryBound(to: redisReply.self)
        guard typed.pointee.type == REDIS_REPLY_INTEGER else { return nil }
        return Int64(typed.pointee.integer)
    }
}
