import Foundation
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A real `redis-server` on a free loopback port (or a Unix socket), for the simulator and the tests; killed on deinit.
public final class RedisServer: Sendable {
    private let process: Mutex<Process>
    /// The TCP port (plain or TLS).
    public let port: Int
    let directory: URL
    let arguments: [String]

    /// Starts `redis-server` with `extra` arguments; `port: nil` picks a free one.
    public init(_ extra: [String] = [], port: Int? = nil, plainPort: Bool = true) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.port = try port ?? Self.freePort()
        arguments =
            [
                "--port", plainPort ? String(self.port) : "0", "--bind", "127.0.0.1", "--save", "", "--appendonly",
                "no",
                "--dir", directory.path,
            ] + extra
        process = Mutex(try Self.launch(arguments))
        try waitUntilListening()
    }

    /// The server's process id.
    public var pid: Int32 { process.withLock { $0.processIdentifier } }

    /// `redis://127.0.0.1:PORT`.
    public var url: String { "redis://127.0.0.1:\(port)" }

    private static func launch(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        ProcessReaper.adopt(process.processIdentifier)
        return process
    }

    /// Waits until the server accepts TCP connections on its port (or its socket file exists).
    func waitUntilListening() throws {
        for _ in 0..<200 {
            if let socket = arguments.firstIndex(of: "--unixsocket").map({ arguments[$0 + 1] }) {
                if FileManager.default.fileExists(atPath: socket) { return }
            } else if Self.canConnect(port: port) {
                return
            }
            usleep(25_000)
        }
        throw RedisServerError(message: "redis-server did not start with \(arguments)")
    }

    /// SIGKILL: the server vanishes mid-whatever.
    public func kill() {
        process.withLock { process in
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            ProcessReaper.release(process.processIdentifier)
        }
    }

    /// Starts the same server again on the same port.
    public func restart() throws {
        let relaunched = try Self.launch(arguments)
        process.withLock { $0 = relaunched }
        try waitUntilListening()
    }

    /// SIGSTOP (`true`) or SIGCONT: the server holds every connection open and answers nothing (a blackhole).
    public func pause(_ paused: Bool) {
        process.withLock { _ = Glibc.kill($0.processIdentifier, paused ? SIGSTOP : SIGCONT) }
    }

    deinit {
        process.withLock { process in
            if process.isRunning {
                Glibc.kill(process.processIdentifier, SIGCONT)
                Glibc.kill(process.processIdentifier, SIGKILL)
            }
            ProcessReaper.release(process.processIdentifier)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// A loopback port nobody listens on.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw RedisServerError(message: "no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// Runs `redis-cli` with `arguments` and returns what it printed; a failure throws with its output.
    @discardableResult
    static func cli(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw RedisServerError(message: "redis-cli \(arguments.prefix(2).joined(separator: " ")) failed: \(text)")
        }
        return text
    }

    /// What `redis-cli` needs besides the port to reach this server: its password, and TLS with its CA.
    public var cliOptions: [String] {
        func value(_ flag: String) -> String? { arguments.firstIndex(of: flag).map { arguments[$0 + 1] } }
        var options: [String] = []
        if let password = value("--requirepass") { options += ["-a", password, "--no-auth-warning"] }
        if value("--tls-port") != nil, let ca = value("--tls-ca-cert-file") { options += ["--tls", "--cacert", ca] }
        return options
    }

    /// Commands this server has run (`INFO commandstats`, every command's `calls`, asked by `redis-cli`).
    public func commandCalls() async -> Int {
        let arguments = ["-p", String(port)] + cliOptions + ["info", "commandstats"]
        guard let text = try? await NIOThreadPool.singleton.runIfActive({ try Self.cli(arguments) })
        else { return 0 }
        return Self.calls(inCommandStats: text)
    }

    /// The sum of `calls=` over the `cmdstat_` lines of an `INFO commandstats` reply.
    public static func calls(inCommandStats text: String) -> Int {
        var calls = 0
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
            if let range = line.range(of: "calls="), let end = line[range.upperBound...].firstIndex(of: ",") {
                calls += Int(line[range.upperBound..<end]) ?? 0
            }
        }
        return calls
    }

    /// A self-signed CA and a server certificate for `localhost`/127.0.0.1, made with the openssl CLI.
    public static func makeCertificates(in directory: URL) throws -> (ca: String, cert: String, key: String) {
        let d = directory.path
        let script = """
            set -e
            cd '\(d)'
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj '/CN=Envoy Test CA' 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=localhost' 2>/dev/null
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext 2>/dev/null
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw RedisServerError(message: "openssl failed") }
        return ("\(d)/ca.crt", "\(d)/server.crt", "\(d)/server.key")
    }
}

struct RedisServerError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
