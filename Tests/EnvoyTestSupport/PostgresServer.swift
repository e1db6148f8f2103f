import EnvoySim
import Foundation

/// A PostgreSQL server of its own (Debian's binaries, a fresh data directory, a free loopback port) for tests that
/// stop and restart it; stopped and removed on deinit. As root it runs as the `postgres` user (PostgreSQL refuses root).
public final class PostgresServer: Sendable {
    /// The TCP port.
    public let port: Int
    let directory: URL
    let binaries: URL

    /// Creates the data directory and starts the server.
    public init() throws {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard let version = versions.sorted(by: { $0.compare($1, options: .numeric) == .orderedAscending }).last
        else { throw SharedPostgres.Unavailable(reason: "no PostgreSQL under /usr/lib/postgresql") }
        binaries = URL(fileURLWithPath: "/usr/lib/postgresql/\(version)/bin")
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("pg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if getuid() == 0 { try Self.run("/usr/bin/chown", ["postgres", directory.path], asPostgres: false) }
        port = try RedisServer.freePort()
        try Self.run(
            binaries.appendingPathComponent("initdb").path,
            [
                "-D", directory.appendingPathComponent("data").path, "-U", "envoy", "-A", "trust", "-E", "UTF8",
                "--no-sync",
            ])
        try start()
    }

    deinit {
        try? stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// `postgres://envoy@127.0.0.1:PORT/postgres?sslmode=disable`.
    public var url: String { "postgres://envoy@127.0.0.1:\(port)/postgres?sslmode=disable" }

    /// Starts the server and waits until it accepts connections.
    public func start() throws {
        try Self.run(
            binaries.appendingPathComponent("pg_ctl").path,
            [
                "-D", directory.appendingPathComponent("data").path, "-l", directory.appendingPathComponent("log").path,
                "-w", "-o", "-p \(port) -k \(directory.path) -c listen_addresses=127.0.0.1 -c fsync=off", "start",
            ])
    }

    /// Stops the server at once (`immediate`: connections are dropped, open transactions die).
    public func stop() throws {
        try Self.run(
            binaries.appendingPathComponent("pg_ctl").path,
            ["-D", directory.appendingPathComponent("data").path, "-m", "immediate", "-w", "stop"])
    }

    /// Runs a command to its end. posix_spawn and waitpid, not Foundation's `Process`: `pg_ctl start` leaves a
    /// server running that inherits the descriptors `Process` watches for the exit, so its wait never returns.
    private static func run(_ executable: String, _ arguments: [String], asPostgres: Bool = true) throws {
        let command =
            asPostgres && getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", executable] : [executable]
        let argv = (command + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var pid: pid_t = 0
        guard posix_spawn(&pid, command[0], &actions, nil, argv, environ) == 0 else {
            throw SharedPostgres.Unavailable(reason: "could not start \(executable)")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        guard status == 0 else {  // exited normally with 0
            throw SharedPostgres.Unavailable(reason: "\(executable) failed (wait status \(status))")
        }
    }
}
