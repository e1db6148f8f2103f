import AsyncHTTPClient
import EnvoySim
import EnvoyTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// Traces, end to end: `envoy serve` and `envoy worker` (real processes) export to a local OTLP receiver, and one
/// request is followed from the API through Redis and the queue to (mock) Mailgun.
@Suite("Tracing: a request's spans, its task's run and its Mailgun call in one trace; trace ids on log lines")
struct TracingTests {
    @Test("traceparent honoured; limiter, cache, database and Redis spans under the request; the worker's run joins")
    func oneTraceFromRequestToMailgun() async throws {
        let receiver = try await OTLPReceiver.start()
        let mailgun = try await MockMailgun.start()
        let redis = try RedisServer()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("envoy-trace-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let environment = [
            "PORT": "0", "DATABASE_URL": try TestStack.databaseURL(in: directory),
            "JWT_SECRET": "a-shared-secret-of-at-least-thirty-two-bytes", "REDIS_URL": redis.url,
            "MAILGUN_API_KEY": mailgun.apiKey, "MAILGUN_DOMAIN": "mg.example.com",
            "MAILGUN_API_BASE_URL": mailgun.baseURL, "WORKER_METRICS_PORT": "0", "LOG_FORMAT": "json",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        ]
        let serve = try EnvoyProcess(["serve", "--no-worker"], directory: directory, environment: environment)
        let worker = try EnvoyProcess(["worker"], directory: directory, environment: environment)
        defer {
            serve.signal(SIGKILL)
            worker.signal(SIGKILL)
        }
        let port = try #require(await serve.listeningPort(), "serve did not start: \(serve.log)")
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { _ = http.shutdown() }

        // The caller's trace: its id and the span the request continues.
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        let callerSpan = "00f067aa0ba902b7"
        func send(_ method: HTTPMethod, _ path: String, body: String? = nil, token: String? = nil, parent: String)
            async throws -> (status: UInt, text: String)
        {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
            request.method = method
            request.headers.add(name: "traceparent", value: parent)
            if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: body))
            }
            let response = try await http.execute(request, timeout: .seconds(30))
            return (response.status.code, String(buffer: try await response.body.collect(upTo: 1 << 20)))
        }
        let registered = try await send(
            .POST, "/v1/auth/register", body: #"{"email":"traced@example.com","password":"correct horse","name":"T"}"#,
            parent: "00-\(trace)-\(callerSpan)-01")
        #expect(registered.status == 201, "\(registered.text)")
        let login = try await send(
            .POST, "/v1/auth/login", body: #"{"email":"traced@example.com","password":"correct horse"}"#,
            parent: "00-\(trace)-\(callerSpan)-01")
        let token = try #require(
            (try JSONSerialization.jsonObject(with: Data(login.text.utf8)) as? [String: Any])?["access_token"]
                as? String)
        let profileTrace = "5bf92f3577b34da6a3ce929d0e0e4737"
        #expect(
            try await send(.GET, "/v1/user/profile", token: token, parent: "00-\(profileTrace)-\(callerSpan)-01")
                .status == 200)
        // A caller that does not sample (flags 00): nothing of its request is recorded.
        let unsampledTrace = "6bf92f3577b34da6a3ce929d0e0e4738"
        #expect(
            try await send(.GET, "/v1/user/profile", token: token, parent: "00-\(unsampledTrace)-\(callerSpan)-00")
                .status == 200)

        // Past the login policy (5 an hour per address; one used above): the violation's line carries the trace.
        let refusedTrace = "7bf92f3577b34da6a3ce929d0e0e4739"
        var refused = 0
        for _ in 0..<5 {
            let attempt = try await send(
                .POST, "/v1/auth/login", body: #"{"email":"traced@example.com","password":"wrong horse"}"#,
                parent: "00-\(refusedTrace)-\(callerSpan)-01")
            if attempt.status == 429 { refused += 1 }
        }
        #expect(refused == 1)

        // The welcome email reaches Mailgun carrying the trace.
        #expect(await eventually(timeout: .seconds(30)) { !mailgun.messages.isEmpty }, "\(worker.log)")
        let delivered = try #require(mailgun.messages.first)
        #expect(
            delivered.traceparent?.contains(trace) == true, "Mailgun got \(String(describing: delivered.traceparent))")

        // Every span of both traces arrives (batched every 100 ms).
        let arrived = await eventually(timeout: .seconds(20)) {
            let names = Set(receiver.spans.filter { $0.traceID == trace }.map(\.name))
            return names.contains("task send_email") && names.contains { $0.hasPrefix("HTTP POST") }
                && receiver.spans.contains { $0.traceID == profileTrace && $0.name.hasPrefix("cache") }
        }
        let spans = receiver.spans
        #expect(arrived, "spans: \(spans.filter { $0.traceID == trace || $0.traceID == profileTrace })")
        let traced = spans.filter { $0.traceID == trace }
        func descendants(of root: OTLPReceiver.Span) -> [OTLPReceiver.Span] {
            let children = spans.filter { $0.parentSpanID == root.spanID && $0.traceID == root.traceID }
            return children + children.flatMap(descendants)
        }

        // The request's server span continues the caller's; under it the limiter (on Redis), the database.
        let request = try #require(
            traced.first { $0.service == "envoy-serve" && $0.name == "/v1/auth/register" }, "\(traced)")
        #expect(request.parentSpanID == callerSpan)
        let underRequest = descendants(of: request)
        let limiter = try #require(underRequest.first { $0.name == "ratelimit" }, "\(underRequest)")
        #expect(descendants(of: limiter).contains { $0.name.hasPrefix("redis ") }, "\(descendants(of: limiter))")
        let system = SharedPostgres.backendTestsUsePostgres ? "postgresql" : "sqlite"
        #expect(underRequest.contains { $0.name == "db INSERT" && $0.attributes["db.system.name"] == system })
        #expect(underRequest.allSatisfy { $0.attributes["db.query.text"]?.contains("correct horse") != true })

        // The worker's run joins the trace; its Mailgun call is its child.
        let run = try #require(traced.first { $0.service == "envoy-worker" && $0.name == "task send_email" })
        #expect(descendants(of: run).contains { $0.name.hasPrefix("HTTP POST 127.0.0.1") }, "\(descendants(of: run))")
        #expect(delivered.traceparent?.contains(trace) == true)

        // A cached read: the cache's span under the request, its Redis read under that or the limiter's pipeline.
        let profile = try #require(spans.first { $0.traceID == profileTrace && $0.name == "/v1/user/profile" })
        let underProfile = descendants(of: profile)
        #expect(underProfile.contains { $0.name == "cache profile" && $0.attributes["envoy.cache.result"] != nil })
        #expect(underProfile.contains { $0.name.hasPrefix("redis ") })

        #expect(!spans.contains { $0.traceID == unsampledTrace }, "an unsampled request records no span")

        // Log lines written for the request carry its trace id.
        let registeredLine = serve.log.split(separator: "\n").first { $0.contains(#""message":"user registered""#) }
        #expect(registeredLine?.contains(#""trace.id":"\#(trace)""#) == true, "\(String(describing: registeredLine))")
        let violation = serve.log.split(separator: "\n").first { $0.contains(#""message":"rate limit exceeded""#) }
        #expect(violation?.contains(#""trace.id":"\#(refusedTrace)""#) == true, "\(String(describing: violation))")
        let workerLine = worker.log.split(separator: "\n").first { $0.contains(trace) }
        #expect(workerLine != nil, "the worker's lines for the task carry the trace: \(worker.log)")
        await mailgun.stop()
        await receiver.stop()
    }
}
