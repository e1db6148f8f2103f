import DequeModule
import EnvoyFramework
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The generator's HTTP/1.1 client: keep-alive connections to each server, one request at a time on each (as
/// wrk2's), every answer read whole. It does only what the load needs, so the generator's CPU goes to sending
/// requests rather than to a general-purpose client (AsyncHTTPClient cost 3–4 times as much per request).
final class LoadClient: Sendable {
    /// An answer.
    struct Response: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    /// Why a request got no answer.
    enum Failure: Error, Equatable {
        case timedOut
        case connectionClosed
        case badURL(String)
    }

    private let pools: Mutex<[String: ConnectionPool]> = Mutex([:])
    private let maxConnectionsPerServer: Int
    private let timeout: TimeAmount

    /// A client keeping up to `maxConnectionsPerServer` connections to each server (more requests wait for one);
    /// a request unanswered after `timeout` fails and its connection is closed.
    init(maxConnectionsPerServer: Int = 256, timeout: Duration = .seconds(30)) {
        self.maxConnectionsPerServer = maxConnectionsPerServer
        self.timeout = .nanoseconds(Int64(timeout.inSeconds * 1e9))
    }

    /// Sends `method path` to `baseURL` (`http://host:port`) and returns the answer.
    func send(
        _ method: HTTPMethod, _ baseURL: String, _ path: String, headers: [(String, String)] = [],
        body: ByteBuffer? = nil
    ) async throws -> Response {
        let pool = try pool(for: baseURL)
        let connection = try await pool.acquire()
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: pool.hostHeader)
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        if let body { head.headers.add(name: "Content-Length", value: "\(body.readableBytes)") }
        let promise = connection.channel.eventLoop.makePromise(of: Response.self)
        connection.channel.eventLoop.execute { [timeout] in
            let channel = connection.channel
            // Closed while idle (the server went away): fail now rather than at the deadline.
            guard channel.isActive else { return promise.fail(Failure.connectionClosed) }
            connection.collector.value.start(promise)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
            let written = channel.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenFailure { promise.fail($0) }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: written)
            let deadline = channel.eventLoop.scheduleTask(in: timeout) {
                promise.fail(Failure.timedOut)
                channel.close(promise: nil)
            }
            promise.futureResult.whenComplete { _ in deadline.cancel() }
        }
        do {
            let response = try await promise.futureResult.get()
            let reusable = !response.headers[canonicalForm: "connection"].contains { $0.lowercased() == "close" }
            pool.release(connection, reusable: reusable)
            return response
        } catch {
            pool.release(connection, reusable: false)
            throw error
        }
    }

    /// Closes every connection.
    func shutdown() {
        let all = pools.withLock { pools in
            defer { pools.removeAll() }
            return Array(pools.values)
        }
        for pool in all { pool.closeAll() }
    }

    /// The pool of `baseURL`'s connections (made on first use).
    func pool(for baseURL: String) throws -> ConnectionPool {
        if let known = pools.withLock({ $0[baseURL] }) { return known }
        guard baseURL.hasPrefix("http://"), case let authority = baseURL.dropFirst(7),
            let colon = authority.lastIndex(of: ":"), let port = Int(authority[authority.index(after: colon)...])
        else { throw Failure.badURL(baseURL) }
        let created = ConnectionPool(host: String(authority[..<colon]), port: port, limit: maxConnectionsPerServer)
        return pools.withLock { pools in
            if let raced = pools[baseURL] { return raced }
            pools[baseURL] = created
            return created
        }
    }
}

/// One open connection and the handler that reads its answers.
struct LoadConnection: Sendable {
    let channel: any Channel
    let collector: NIOLoopBound<ResponseCollector>
}

/// Keep-alive connections to one server: idle ones are reused, at most `limit` are open, later callers wait.
final class ConnectionPool: Sendable {
    private struct State {
        var idle: [LoadConnection] = []
        var open = 0
        var waiting: Deque<CheckedContinuation<LoadConnection?, Never>> = []
        var closed = false
    }

    let host: String
    let port: Int
    let hostHeader: String
    private let limit: Int
    private let state = Mutex(State())

    init(host: String, port: Int, limit: Int) {
        self.host = host
        self.port = port
        self.hostHeader = "\(host):\(port)"
        self.limit = max(1, limit)
    }

    /// Connections open or being opened.
    var openConnections: Int { state.withLock { $0.open } }

    /// An idle connection, a new one, or — when `limit` are busy — the next one released.
    func acquire() async throws -> LoadConnection {
        enum Next {
            case use(LoadConnection)
            case connect
            case wait
        }
        let next: Next = state.withLock { state in
            while let idle = state.idle.popLast() {
                if idle.channel.isActive { return .use(idle) }
                state.open -= 1  // closed while idle (by the server): its slot is free again
            }
            if state.open < limit {
                state.open += 1
                return .connect
            }
            return .wait
        }
        switch next {
        case .use(let connection):
            return connection
        case .connect:
            return try await connect()
        case .wait:
            // Handed a connection, or nil with a slot reserved for a new one.
            let handed = await withCheckedContinuation { continuation in
                state.withLock { $0.waiting.append(continuation) }
            }
            if let handed { return handed }
            return try await connect()
        }
    }

    /// Gives a connection back after its request: to the next waiter, to the idle list, or closed.
    func release(_ connection: LoadConnection, reusable: Bool) {
        let (waiter, reuse) = state.withLock { state -> (CheckedContinuation<LoadConnection?, Never>?, Bool) in
            let reuse = reusable && connection.channel.isActive && !state.closed
            if let waiter = state.waiting.popFirst() { return (waiter, reuse) }  // the slot passes to the waiter
            if reuse { state.idle.append(connection) } else { state.open -= 1 }
            return (nil, reuse)
        }
        if !reuse { connection.channel.close(promise: nil) }
        waiter?.resume(returning: reuse ? connection : nil)
    }

    /// Closes the idle connections; busy ones close when released.
    func closeAll() {
        let idle = state.withLock { state in
            state.closed = true
            defer { state.idle.removeAll() }
            return state.idle
        }
        for connection in idle { connection.channel.close(promise: nil) }
    }

    private func connect() async throws -> LoadConnection {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(ResponseCollector())
                    }
                }
                .connect(host: host, port: port).get()
            let collector = try await channel.eventLoop.submit {
                NIOLoopBound(
                    try channel.pipeline.syncOperations.handler(type: ResponseCollector.self),
                    eventLoop: channel.eventLoop)
            }.get()
            return LoadConnection(channel: channel, collector: collector)
        } catch {
            // The slot this connection would have taken goes to a waiter, who tries to connect in turn.
            let waiter = state.withLock { state -> CheckedContinuation<LoadConnection?, Never>? in
                if let waiter = state.waiting.popFirst() { return waiter }
                state.open -= 1
                return nil
            }
            waiter?.resume(returning: nil)
            throw error
        }
    }
}

/// Reads one answer at a time into the promise of the request that asked for it; fails it if the connection ends.
final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private var promise: EventLoopPromise<LoadClient.Response>?
    private var head: HTTPResponseHead?
    private var body: ByteBuffer?

    /// The next answer completes `promise`.
    func start(_ promise: EventLoopPromise<LoadClient.Response>) {
        self.promise = promise
        head = nil
        body = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body(var part):
            if body == nil { body = part } else { body!.writeBuffer(&part) }
        case .end:
            guard let promise, let head else { return }
            self.promise = nil
            promise.succeed(
                .init(
                    status: Int(head.status.code), headers: head.headers,
                    body: body ?? context.channel.allocator.buffer(capacity: 0)))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise?.fail(error)
        promise = nil
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise?.fail(LoadClient.Failure.connectionClosed)
        promise = nil
        context.fireChannelInactive()
    }
}
