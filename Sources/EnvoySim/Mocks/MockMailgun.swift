import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// A local Mailgun: `POST /v3/{domain}/messages` with Basic auth `api:KEY` and a multipart form, checked as
/// Mailgun checks it (sender, recipients, subject, a body or template, at most 1000 recipients, well-formed
/// `recipient-variables`), answering `{id, message}`. It records what it accepted and refused, and can fail or
/// slow down on demand (`faults`). Tests and `envoy sim` use it.
public final class MockMailgun: Sendable {
    /// A message the mock accepted.
    public struct Message: Sendable {
        /// The id it answered with.
        public var id: String
        /// The domain in the path.
        public var domain: String
        /// The form as received.
        public var form: MultipartForm
        /// When it arrived.
        public var receivedAt: Date
        /// Its W3C `traceparent` header, when the sender traced it.
        public var traceparent: String?

        /// `to` addresses (each field may hold several, comma-separated).
        public var to: [String] { form.values("to").flatMap(MockMailgun.addresses) }
        /// Every recipient: to, cc and bcc.
        public var recipientCount: Int {
            ["to", "cc", "bcc"].flatMap { form.values($0).flatMap(MockMailgun.addresses) }.count
        }
    }

    /// Mailgun's recipient limit per request.
    public static let maxRecipients = 1000

    /// The key requests must carry.
    public let apiKey: String
    /// The server.
    public let server: MockServer
    /// Failures and latency to apply.
    public let faults: MockFaults
    private let state: Mutex<(accepted: [Message], refused: [(status: Int, message: String)])>

    /// `http://127.0.0.1:PORT`, for `MAILGUN_API_BASE_URL`.
    public var baseURL: String { server.baseURL }
    /// Messages accepted so far, in arrival order.
    public var messages: [Message] { state.withLock { $0.accepted } }
    /// Requests refused so far (status and Mailgun-style message), faults excluded.
    public var refusals: [(status: Int, message: String)] { state.withLock { $0.refused } }
    /// Recipients of every accepted message, counted with repeats.
    public var deliveredRecipients: Int { state.withLock { $0.accepted.reduce(0) { $0 + $1.recipientCount } } }

    private init(apiKey: String, server: MockServer) {
        self.apiKey = apiKey
        self.server = server
        self.faults = MockFaults()
        self.state = Mutex(([], []))
    }

    /// Starts a mock on a free loopback port.
    public static func start(apiKey: String = "key-mock-0123456789") async throws -> MockMailgun {
        let box = MockMailgunBox()
        let router = Router()
        router.post("/v3/:domain/messages") { request, context -> Response in
            guard let mock = box.mock else { return MockJSON.response(["message": "starting"], status: 503) }
            return try await mock.receive(request, domain: context.parameters.get("domain") ?? "")
        }
        let server = try await MockServer.start(router, name: "mailgun")
        let mock = MockMailgun(apiKey: apiKey, server: server)
        box.mock = mock
        return mock
    }

    /// Stops the server.
    public func stop() async { await server.stop() }

    private func receive(_ request: Request, domain: String) async throws -> Response {
        if let failure = try await faults.apply() { return failure }
        let expected = "Basic " + Data("api:\(apiKey)".utf8).base64EncodedString()
        guard request.headers[.authorization] == expected else { return refuse(401, "Forbidden") }
        let body = try await request.body.collect(upTo: 32 << 20)
        guard let form = MultipartForm(body: Array(buffer: body), contentType: request.headers[.contentType] ?? "")
        else { return refuse(400, "not a multipart/form-data body") }
        if let problem = Self.check(form) { return refuse(400, problem) }
        let id = "<\(Self.stamp()).\(UUID().uuidString.prefix(8).lowercased())@\(domain)>"
        let traceparent = request.headers[HTTPField.Name("traceparent")!]
        state.withLock {
            $0.accepted.append(
                Message(id: id, domain: domain, form: form, receivedAt: Date(), traceparent: traceparent))
        }
        return MockJSON.response(["id": id, "message": "Queued. Thank you."], status: 200)
    }

    private func refuse(_ status: Int, _ message: String) -> Response {
        state.withLock { $0.refused.append((status, message)) }
        return MockJSON.response(["message": message], status: status)
    }

    /// What Mailgun would say is wrong with `form`, or nil.
    static func check(_ form: MultipartForm) -> String? {
        guard form.value("from") != nil else { return "from parameter is missing" }
        let to = form.values("to").flatMap(addresses)
        guard !to.isEmpty else { return "to parameter is missing" }
        let all = to + form.values("cc").flatMap(addresses) + form.values("bcc").flatMap(addresses)
        guard all.count <= maxRecipients else { return "Too many recipients: \(all.count) (limit \(maxRecipients))" }
        guard form.value("subject") != nil else { return "subject parameter is missing" }
        guard form.value("text") != nil || form.value("html") != nil || form.value("template") != nil else {
            return "Need at least one of 'text', 'html' or 'template' parameters specified"
        }
        if let variables = form.value("recipient-variables") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(variables.utf8)) as? [String: Any] else {
                return "recipient-variables parameter is not a valid JSON"
            }
            if let missing = to.first(where: { object[$0] == nil }) { return "no recipient variables for \(missing)" }
        }
        if form.values("o:tag").count > 3 { return "too many tags" }
        return nil
    }

    static func addresses(_ field: String) -> [String] {
        field.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    private static func stamp() -> String { stampFormatter.string(from: Date()) }

    /// `yyyyMMddHHmmss` in UTC, as Mailgun's message ids begin. Made once: a formatter made per message was a
    /// sixth of the CPU of `Benchmarks/emails.sh` (ICU builds one on first use).
    private static let stampFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyyMMddHHmmss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter
    }()
}

/// Lets the route reach the mock it belongs to, which exists only once its server is listening.
private final class MockMailgunBox: Sendable {
    private let value = Mutex<MockMailgun?>(nil)
    var mock: MockMailgun? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
