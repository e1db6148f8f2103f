import EnvoyPlugins
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// A local Paddle Billing: serves `GET /customers/{id}` and `GET /subscriptions/{id}` behind a Bearer key in
/// Paddle's envelopes (`{data, meta}`, errors as `{error: {type, code, detail}}`), can fail or slow down on demand
/// (`faults`), and makes webhook bodies and `Paddle-Signature` headers as Paddle does. Tests and `envoy sim` use it.
public final class MockPaddle: Sendable {
    /// The key API requests must carry.
    public let apiKey: String
    /// The secret webhooks are signed with.
    public let webhookSecret: String
    /// The server.
    public let server: MockServer
    /// Failures and latency to apply to API requests.
    public let faults: MockFaults
    private let entities = Mutex<[String: Data]>([:])
    private let requests = Mutex(0)

    /// `http://127.0.0.1:PORT`, for `PADDLE_API_BASE_URL`.
    public var baseURL: String { server.baseURL }
    /// API requests answered so far (faults included).
    public var apiRequests: Int { requests.withLock { $0 } }

    private init(apiKey: String, webhookSecret: String, server: MockServer, faults: MockFaults) {
        self.apiKey = apiKey
        self.webhookSecret = webhookSecret
        self.server = server
        self.faults = faults
    }

    /// Starts a mock on a free loopback port.
    public static func start(
        apiKey: String = "pdl_sdbx_apikey_mock", webhookSecret: String = "pdl_ntfset_mock_secret"
    ) async throws -> MockPaddle {
        let box = Mutex<MockPaddle?>(nil)
        let faults = MockFaults()
        let router = Router()
        for kind in ["customers", "subscriptions"] {
            router.get("/\(kind)/:id") { request, context -> Response in
                guard let mock = box.withLock({ $0 }) else { return MockJSON.response([:], status: 503) }
                return try await mock.serve(request, id: context.parameters.get("id") ?? "")
            }
        }
        let server = try await MockServer.start(router, name: "paddle")
        let mock = MockPaddle(apiKey: apiKey, webhookSecret: webhookSecret, server: server, faults: faults)
        box.withLock { $0 = mock }
        return mock
    }

    /// Stops the server.
    public func stop() async { await server.stop() }

    /// Makes `data` (a customer or subscription object with an `id`) answerable by the API.
    public func store(_ data: [String: Any]) {
        guard let id = data["id"] as? String, let json = try? JSONSerialization.data(withJSONObject: data) else {
            return
        }
        entities.withLock { $0[id] = json }
    }

    private func serve(_ request: Request, id: String) async throws -> Response {
        requests.withLock { $0 += 1 }
        if let failure = try await faults.apply() { return failure }
        guard request.headers[.authorization] == "Bearer \(apiKey)" else {
            return Self.error(403, code: "forbidden", detail: "You aren't permitted to perform this request.")
        }
        guard let entity = entities.withLock({ $0[id] }) else {
            return Self.error(404, code: "entity_not_found", detail: "Entity \(id) not found")
        }
        let envelope = Data(#"{"data":"#.utf8) + entity + Data(#","meta":{"request_id":"\#(UUID())"}}"#.utf8)
        return Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: envelope)))
    }

    private static func error(_ status: Int, code: String, detail: String) -> Response {
        MockJSON.response(
            [
                "error": [
                    "type": "request_error", "code": code, "detail": detail,
                    "documentation_url": "https://developer.paddle.com/v1/errors/shared/\(code)",
                ],
                "meta": ["request_id": UUID().uuidString.lowercased()],
            ], status: status)
    }

    // MARK: Webhooks

    /// A webhook body as Paddle sends it.
    public static func event(id: String, type: String, occurredAt: Date, data: [String: Any]) -> [UInt8] {
        let object: [String: Any] = [
            "event_id": id, "event_type": type, "occurred_at": PaddleTime.format(occurredAt),
            "notification_id": "ntf_" + id.dropFirst(4), "data": data,
        ]
        return Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
    }

    /// The `Paddle-Signature` header for `body`, signed now (or at `time`) with this mock's secret.
    public func signature(for body: [UInt8], at time: Date = Date()) -> String {
        PaddleSignature.header(body: body, secret: webhookSecret, at: time)
    }

    /// A subscription object.
    public static func subscription(
        id: String, customerID: String, status: String, priceID: String, nextBilledAt: Date? = nil,
        customData: [String: String]? = nil
    ) -> [String: Any] {
        [
            "id": id, "status": status, "customer_id": customerID,
            "items": [["price": ["id": priceID], "quantity": 1, "status": "active"]],
            "next_billed_at": nextBilledAt.map(PaddleTime.format) ?? NSNull(), "currency_code": "USD",
            "custom_data": customData ?? NSNull(),
        ]
    }

    /// A transaction object; `amount` in the currency's lowest unit.
    public static func transaction(
        id: String, customerID: String, subscriptionID: String?, status: String, priceID: String, amount: Int,
        currency: String = "USD", customData: [String: String]? = nil
    ) -> [String: Any] {
        [
            "id": id, "status": status, "customer_id": customerID, "subscription_id": subscriptionID ?? NSNull(),
            "currency_code": currency, "items": [["price": ["id": priceID], "quantity": 1]],
            "details": ["totals": ["grand_total": "\(amount)", "total": "\(amount)"]],
            "custom_data": customData ?? NSNull(),
        ]
    }

    /// A customer object.
    public static func customer(id: String, email: String, name: String? = nil) -> [String: Any] {
        ["id": id, "email": email, "name": name ?? NSNull(), "status": "active"]
    }
}
