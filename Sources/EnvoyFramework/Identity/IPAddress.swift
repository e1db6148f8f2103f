import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An IPv4 or IPv6 address, parsed strictly (no host names, no ports).
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes for IPv4, 16 for IPv6; IPv4-mapped IPv6 addresses are stored as IPv4.
    public let bytes: [UInt8]

    /// Parses dotted IPv4 or textual IPv6 (an IPv4-mapped IPv6 address becomes IPv4).
    public init?(_ text: some StringProtocol) {
        var text = String(text)
        if text.hasPrefix("[") && text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        if let zone = text.firstIndex(of: "%") { text = String(text[..<zone]) }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.init(bytes: withUnsafeBytes(of: v4.s_addr) { Array($0) })
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        self = withUnsafeBytes(of: v6) { IPAddress(ipv6: $0) }
    }

    /// A socket peer's address, read from its bytes (formatting it as text to parse it again cost a cached read
    /// two allocations); nil for a Unix-domain socket.
    public init?(_ peer: SocketAddress) {
        switch peer {
        // sockaddr_in: family (2 bytes), port (2), then the 4-byte address; sockaddr_in6: family, port, flow
        // information (4), then the 16-byte address (RFC 3493).
        case .v4(let v4):
            self.init(bytes: withUnsafeBytes(of: v4.address) { Array($0[4..<8]) })
        case .v6(let v6):
            self = withUnsafeBytes(of: v6.address) { IPAddress(ipv6: $0[8..<24]) }
        case .unixDomainSocket:
            return nil
        }
    }

    /// An IPv6 address from its 16 bytes; an IPv4-mapped one becomes IPv4.
    private init(ipv6 raw: some Collection<UInt8>) {
        let mapped: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
        self.init(bytes: raw.prefix(12).elementsEqual(mapped) ? Array(raw.suffix(4)) : Array(raw))
    }

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// True for IPv4 (including addresses that arrived IPv4-mapped).
    public var isIPv4: Bool { bytes.count == 4 }

    /// The canonical text form.
    public var description: String {
        if isIPv4 { return bytes.map(String.init).joined(separator: ".") }
        var addr = in6_addr()
        withUnsafeMutableBytes(of: &addr) { $0.copyBytes(from: bytes) }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &addr, &buffer, socklen_t(buffer.count)) != nil else { return "::" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The key one client is limited by: the address itself for IPv4, its /64 network for IPv6
    /// (one subscriber usually holds a whole /64, so per-address keys would be free to rotate).
    public var rateLimitKey: String {
        if isIPv4 { return description }
        return IPAddress(bytes: Array(bytes.prefix(8)) + [UInt8](repeating: 0, count: 8)).description + "/64"
    }
}

/// A network in CIDR notation, e.g. `10.0.0.0/8` or `fd00::/8`.
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    /// The network's first address.
    public let address: IPAddress
    /// The number of leading bits that must match.
    public let prefixLength: Int

    /// Parses `address/prefix`, or a bare address as a single-host network.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(parts[0].trimmingSpaces) else { return nil }
        let maxLength = address.bytes.count * 8
        var length = maxLength
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), (0...maxLength).contains(parsed) else { return nil }
            length = parsed
        }
        self.address = address
        self.prefixLength = length
    }

    /// True when `candidate` lies inside this network (families must match).
    public func contains(_ candidate: IPAddress) -> Bool {
        guard candidate.bytes.count == address.bytes.count else { return false }
        var remaining = prefixLength
        for (lhs, rhs) in zip(address.bytes, candidate.bytes) where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xff << (8 - bits))
            if lhs & mask != rhs & mask { return false }
            remaining -= bits
        }
        return true
    }

    /// The CIDR text form.
    public var description: String { "\(address)/\(prefixLength)" }
}

extension StringProtocol {
    var trimmingSpaces: Substring {
        let scalars = Substring(self)
        let start = scalars.firstIndex { !$0.isWhitespace } ?? scalars.endIndex
        let end = scalars.lastIndex { !$0.isWhitespace }.map { scalars.index(after: $0) } ?? start
        return scalars[start..<end]
    }
}
