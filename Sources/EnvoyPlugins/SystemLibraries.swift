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

    /// Parses one RESP integer reply with the client's hiredis reader (a check that the codec links and works).
    public static func parseRESPInteger(_ bytes: [UInt8]) -> Int64? {
        let reader = RESPReader(maxReplyBytes: 1 << 20)
        guard (try? bytes.withUnsafeBytes { try reader.feed($0) }) != nil,
            case .integer(let value)? = try? reader.next()
        else { return nil }
        return value
    }
}
