import EnvoyFramework
import HTTPTypes
import NIOCore
import Testing

@Suite("Client identity: addresses, networks, trusted proxies")
struct ClientIdentityTests {
    @Test("IPv4-mapped IPv6 is the IPv4 address; IPv6 is limited per /64")
    func normalisation() throws {
        #expect(IPAddress("::ffff:192.0.2.7")?.description == "192.0.2.7")
        #expect(IPAddress("192.0.2.7")?.rateLimitKey == "192.0.2.7")
        let a = try #require(IPAddress("2001:db8:1:2:aaaa::1"))
        let b = try #require(IPAddress("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        let c = try #require(IPAddress("2001:db8:1:3::1"))
        #expect(a.rateLimitKey == b.rateLimitKey)
        #expect(a.rateLimitKey != c.rateLimitKey)
        #expect(a.rateLimitKey == "2001:db8:1:2::/64")
        #expect(IPAddress("[::1]")?.description == "::1")
        for bad in ["", "1.2.3", "300.1.1.1", "example.com", "1.2.3.4:80", "::g"] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
    }

    @Test("a socket peer's address reads as its text does; a Unix-domain peer has none")
    func socketPeers() throws {
        for text in ["192.0.2.7", "2001:db8:1:2:aaaa::1", "::1", "::ffff:192.0.2.7", "0.0.0.0"] {
            #expect(IPAddress(try SocketAddress(ipAddress: text, port: 443)) == IPAddress(text), "\(text)")
        }
        #expect(IPAddress(try SocketAddress(ipAddress: "::ffff:192.0.2.7", port: 1))?.isIPv4 == true)
        #expect(IPAddress(try SocketAddress(unixDomainSocketPath: "/tmp/envoy-test.sock")) == nil)
    }

    @Test("CIDR membership")
    func networks() throws {
        let ten = try #require(IPNetwork("10.0.0.0/8"))
        #expect(ten.contains(IPAddress("10.200.3.4")!))
        #expect(!ten.contains(IPAddress("11.0.0.1")!))
        #expect(!ten.contains(IPAddress("::1")!))
        let odd = try #require(IPNetwork("192.168.1.128/25"))
        #expect(odd.contains(IPAddress("192.168.1.200")!))
        #expect(!odd.contains(IPAddress("192.168.1.127")!))
        #expect(IPNetwork("fd00::/8")!.contains(IPAddress("fd12::1")!))
        #expect(IPNetwork("10.0.0.0/33") == nil)
        #expect(IPNetwork("nonsense/8") == nil)
    }

    @Test("untrusted peers' forwarding headers are ignored; trusted hops are walked right to left")
    func forwarding() {
        let untrusted = ClientAddressResolver()
        var headers = HTTPFields()
        headers[.xForwardedFor] = "1.1.1.1"
        #expect(untrusted.clientAddress(peer: IPAddress("203.0.113.9"), headers: headers)?.description == "203.0.113.9")

        let resolver = ClientAddressResolver(trustedProxies: [IPNetwork("10.0.0.0/8")!])
        headers[.xForwardedFor] = "6.6.6.6, 198.51.100.4, 10.0.0.2"
        // The client spoofed 6.6.6.6; the first untrusted hop from the right is the real client.
        #expect(resolver.clientAddress(peer: IPAddress("10.0.0.1"), headers: headers)?.description == "198.51.100.4")
        headers[.xForwardedFor] = "garbage, 10.0.0.3"
        #expect(resolver.clientAddress(peer: IPAddress("10.0.0.1"), headers: headers)?.description == "10.0.0.3")

        var forwarded = HTTPFields()
        forwarded[.forwarded] = #"for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711""#
        let v6 = ClientAddressResolver(trustedProxies: [IPNetwork("10.0.0.0/8")!], header: .forwarded)
        #expect(v6.clientAddress(peer: IPAddress("10.1.1.1"), headers: forwarded)?.description == "2001:db8:cafe::17")
        #expect(resolver.clientAddress(peer: nil, headers: headers) == nil)
    }

    @Test("only the configured forwarding header is read; the other is the client's and ignored")
    func oneHeader() {
        var headers = HTTPFields()
        headers[.forwarded] = "for=6.6.6.6"
        headers[.xForwardedFor] = "198.51.100.4"
        let proxies = [IPNetwork("10.0.0.0/8")!]
        let peer = IPAddress("10.0.0.1")
        #expect(
            ClientAddressResolver(trustedProxies: proxies).clientAddress(peer: peer, headers: headers)?.description
                == "198.51.100.4")
        #expect(
            ClientAddressResolver(trustedProxies: proxies, header: .forwarded).clientAddress(
                peer: peer, headers: headers)?
                .description == "6.6.6.6")
    }

    @Test(
        "entries with ports, quotes and spaces parse; unknown, obfuscated and garbage stop at the nearest trusted hop")
    func entryForms() {
        let xff = ClientAddressResolver(trustedProxies: [IPNetwork("10.0.0.0/8")!])
        let forwarded = ClientAddressResolver(trustedProxies: [IPNetwork("10.0.0.0/8")!], header: .forwarded)
        let peer = IPAddress("10.0.0.1")
        func viaXFF(_ value: String) -> String? {
            var headers = HTTPFields()
            headers[.xForwardedFor] = value
            return xff.clientAddress(peer: peer, headers: headers)?.description
        }
        func viaForwarded(_ value: String) -> String? {
            var headers = HTTPFields()
            headers[.forwarded] = value
            return forwarded.clientAddress(peer: peer, headers: headers)?.description
        }
        #expect(viaXFF("1.2.3.4:5678") == "1.2.3.4")
        #expect(viaXFF("[2001:db8::1]:443") == "2001:db8::1")
        #expect(viaXFF("  2001:db8::2 ,10.0.0.5") == "2001:db8::2")
        #expect(viaXFF("1.2.3.4:http") == "10.0.0.1")
        #expect(viaXFF("junk, 10.0.0.9") == "10.0.0.9")
        #expect(viaForwarded(#"for="1.2.3.4:5678""#) == "1.2.3.4")
        #expect(viaForwarded(#"For = "[2001:db8::1]:443" ; proto=https"#) == "2001:db8::1")
        #expect(viaForwarded(#"proto=https;for=192.0.2.1 , for=10.0.0.7"#) == "192.0.2.1")
        #expect(viaForwarded(#"for="_hidden", for=10.0.0.8"#) == "10.0.0.8")
        #expect(viaForwarded("for=unknown") == "10.0.0.1")
        #expect(viaForwarded("proto=https") == "10.0.0.1")
        #expect(viaForwarded(#"for="[2001:db8::1""#) == "10.0.0.1")
    }
}
