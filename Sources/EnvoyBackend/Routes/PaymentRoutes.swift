import EnvoyFramework
import EnvoyPlugins
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics

extension Backend {
    /// `POST /v1/payments/webhook`: verifies Paddle's signature over the raw body, stores the event durably on the
    /// queue (deduplicated by `event_id`) and answers 200 before any processing. Bad or missing signature → 401,
    /// not JSON / not an event → 400, nothing queued; no secrets configured → 503.
    func addPaymentRoutes(to router: RouterGroup<EnvoyRequestContext>) {
        let verifier = PaddleSignature(
            secrets: configuration.paddleWebhookSecrets, tolerance: configuration.paddleWebhookTolerance)
        let rejections = SampledLogger(logger: logger, perSecond: 10)
        let signatureField = HTTPField.Name("Paddle-Signature")!
        // Made once: the route is a hot path (Paddle storms), and the results are a fixed set.
        let results =
            ["accepted", "duplicate", "malformed"]
            + ["missing", "malformed", "expired", "future", "mismatch"].map { "rejected_\($0)" }
        let counters = Dictionary(
            uniqueKeysWithValues: results.map { result in
                (
                    result,
                    Counter(label: "envoy_paddle_webhooks_total", dimensions: [("result", result)], factory: metrics)
                )
            })
        router.post("/v1/payments/webhook") { request, context -> Response in
            guard !configuration.paddleWebhookSecrets.isEmpty else {
                throw Problem(
                    .serviceUnavailable, detail: "Paddle webhooks are not configured (PADDLE_WEBHOOK_SECRET is unset).")
            }
            let body = try await json.bytes(of: request)
            do {
                try verifier.verify(header: request.headers[signatureField], body: body.readableBytesView)
            } catch {
                counters["rejected_\(error)"]?.increment()
                rejections.warning(
                    "paddle webhook rejected",
                    metadata: [
                        "reason": "\(error)",
                        "client": "\(context.identity.clientAddress.map { "\($0)" } ?? "unknown")",
                    ])
                throw Problem.unauthorized("The Paddle-Signature header is \(error).")
            }
            // The worker parses exactly the text queued here, with the same parser: what it would refuse is refused now.
            guard let text = String(validating: body.readableBytesView, as: UTF8.self) else {
                counters["malformed"]?.increment()
                throw Problem.malformedJSON("The body is not valid UTF-8.")
            }
            guard let event = PaddleEvent(json: text.utf8) else {
                counters["malformed"]?.increment()
                throw Problem.malformedJSON(
                    "The body is not a Paddle event (JSON with event_id, event_type, occurred_at and data).")
            }
            let result = try await taskQueue.enqueue(
                ProcessPaddleWebhook.self, .init(body: text), deduplicationKey: "paddle:\(event.id)")
            let duplicate = result == .duplicate
            counters[duplicate ? "duplicate" : "accepted"]?.increment()
            context.logger.info(
                "paddle webhook accepted",
                metadata: [
                    "paddle.event_id": "\(event.id)", "paddle.event_type": "\(event.type)",
                    "paddle.duplicate": "\(duplicate)",
                ])
            return try JSONResponse.make(WebhookReceipt(received: true, eventID: event.id, duplicate: duplicate))
        }
    }
}

/// The webhook's answer.
struct WebhookReceipt: Encodable {
    var received: Bool
    var eventID: String
    var duplicate: Bool

    enum CodingKeys: String, CodingKey {
        case received, duplicate
        case eventID = "event_id"
    }
}
