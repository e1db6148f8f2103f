import EnvoyFramework
import EnvoyTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("Connections bounded in time and held to HTTP/1.1's framing")
struct ConnectionGuardTests {
    static let timeouts = ConnectionTimeouts(
        header: .milliseconds(600), idle: .milliseconds(3000), body: .milliseconds(1200))

    /// Runs `body` against a live server with the guard, `GET /` and a `POST /echo` that reads its body as JSON does.
    func withServer(_ body: @Sendable (Int) async throws -> Void) async throws {
        let router = Router()
        router.addMiddleware { ProblemMiddleware() }
        router.get("/") { _, _ in "ok" }
        router.post("/echo") { request, _ in
            "\(try await JSONBody(limit: 1000).bytes(of: request).readableBytes) bytes"
        }
        let app = Application(router: router, server: .http1OnEventLoops(timeouts: Self.timeouts))
        try await app.test(.live) { client in try await body(try #require(client.port)) }
    }

    @Test("a client that sends its head a header at a time is closed after the header timeout")
    func slowloris() async throws {
        try await withServer { port in
            let connection = try await RawConnection.open(port: port)
            let start = ContinuousClock.now
            try await connection.send("GET / HTTP/1.1\r\nHost: x\r\n")
            for index in 0..<20 where !connection.isClosed {
                try? await connection.send("X-Drip-\(index): y\r\n")
                try await Task.sleep(for: .milliseconds(150))
            }
            #expect(await connection.waitForClose(timeout: .seconds(3)))
            // Closed while it was still dripping (20 headers take 3 s); the deadline runs from the accept, which a
            // loaded machine may report later than it happened, so no lower bound is asserted.
            let elapsed = ContinuousClock.now - start
            #expect(elapsed < .milliseconds(2500), "closed after \(elapsed)")
            #expect(!connection.text.contains("200"))
        }
    }

    @Test("a connection that never sends a byte is closed after the header timeout")
    func silent() async throws {
        try await withServer { port in
            let connection = try await RawConnection.open(port: port)
            #expect(await connection.waitForClose(timeout: .seconds(3)))
        }
    }

    @Test("an idle keep-alive connection lives past the header timeout and is closed after the idle timeout")
    func idle() async throws {
        try await withServer { port in
            let connection = try await RawConnection.open(port: port)
            try await connection.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await connection.waitFor("ok"))
            try await Task.sleep(for: .milliseconds(1000))
            #expect(!connection.isClosed, "closed before the idle timeout")
            try await connection.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")  // a second request restarts nothing early
            try await Task.sleep(for: .milliseconds(200))
            #expect(connection.text.components(separatedBy: "200 OK").count == 3)
            #expect(await connection.waitForClose(timeout: .seconds(6)))
        }
    }

    @Test("a body that stalls is closed after the body timeout; one that trickles in under it is answered")
    func stalledBody() async throws {
        try await withServer { port in
            let stalled = try await RawConnection.open(port: port)
            try await stalled.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
            #expect(await stalled.waitForClose(timeout: .seconds(3)))
            #expect(!stalled.text.contains("200"))

            let trickling = try await RawConnection.open(port: port)
            try await trickling.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
            for byte in "12345678" {
                try await trickling.send(String(byte))
                try await Task.sleep(for: .milliseconds(250))  // 2 s in all, each pause under the body timeout
            }
            #expect(await trickling.waitFor("8 bytes"), "\(trickling.text)")
            trickling.close()
        }
    }

    @Test("HTTP/1.1 needs exactly one Host (400 problem+json); HTTP/1.0 needs none")
    func host() async throws {
        try await withServer { port in
            for request in ["GET / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"] {
                let connection = try await RawConnection.open(port: port)
                try await connection.send(request)
                #expect(await connection.waitForClose(timeout: .seconds(3)))
                #expect(connection.text.hasPrefix("HTTP/1.1 400"), "\(connection.text)")
                #expect(connection.text.contains("application/problem+json"))
                #expect(connection.text.contains("Host"))
            }
            let old = try await RawConnection.open(port: port)
            try await old.send("GET / HTTP/1.0\r\n\r\n")
            #expect(await old.waitForClose(timeout: .seconds(3)))
            #expect(old.text.hasPrefix("HTTP/1.1 200") && old.text.hasSuffix("ok"), "\(old.text)")
        }
    }

    @Test("HTTP/1.0 without keep-alive closes after its response; with keep-alive it stays open")
    func http10() async throws {
        try await withServer { port in
            let closing = try await RawConnection.open(port: port)
            try await closing.send("GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            #expect(await closing.waitForClose(timeout: .milliseconds(500)), "still open: \(closing.text)")
            #expect(closing.text.lowercased().contains("connection: close"))

            let kept = try await RawConnection.open(port: port)
            try await kept.send("GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            #expect(await kept.waitFor("ok"))
            try await Task.sleep(for: .milliseconds(300))
            #expect(!kept.isClosed)
            kept.close()
        }
    }

    @Test("oversized request headers are 431 with problem+json")
    func oversizedHeaders() async throws {
        try await withServer { port in
            let connection = try await RawConnection.open(port: port)
            let big = String(repeating: "a", count: 100 * 1024)
            try? await connection.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(big)\r\n\r\n")
            #expect(await connection.waitForClose(timeout: .seconds(3)))
            #expect(connection.text.hasPrefix("HTTP/1.1 431"), "\(connection.text.prefix(200))")
            #expect(connection.text.contains(#""status":431"#))
        }
    }

    @Test("a malformed chunk and an unknown Transfer-Encoding are 400, not 413")
    func framing() async throws {
        try await withServer { port in
            let chunk = try await RawConnection.open(port: port)
            try await chunk.send(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
            #expect(await chunk.waitFor("HTTP/1.1 4", timeout: .seconds(3)))
            #expect(chunk.text.hasPrefix("HTTP/1.1 400"), "\(chunk.text)")
            #expect(chunk.text.contains("application/problem+json"))

            let unknown = try await RawConnection.open(port: port)
            try await unknown.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello")
            #expect(await unknown.waitFor("HTTP/1.1 4", timeout: .seconds(3)))
            #expect(unknown.text.hasPrefix("HTTP/1.1 400"), "\(unknown.text)")
        }
    }

    @Test("the connection capacity leaves descriptors for everything else")
    func capacity() {
        #expect(DescriptorLimit.connectionCapacity(limit: 300) == 236)
        #expect(DescriptorLimit.connectionCapacity(limit: 65_536) == 58_983)
        #expect(DescriptorLimit.connectionCapacity(limit: 20) == 16)
        #expect((DescriptorLimit.raiseToHardLimit() ?? 0) > 0)
    }
}
