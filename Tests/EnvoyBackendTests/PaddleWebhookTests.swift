import EnvoyBackend
import EnvoyFramework
import EnvoyPlugins
import EnvoySim
import EnvoyTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Sends Paddle webhooks to a test server.
extension TestClientProtocol {
    @discardableResult
    func webhook(_ body: [UInt8], signature: String?) async throws -> TestResponse {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let signature { headers[HTTPField.Name("Paddle-Signature")!] = signature }
        return try await execute(
            uri: "/v1/payments/webhook", method: .post, headers: headers, body: ByteBuffer(bytes: body))
    }
}

@Suite("Paddle webhooks through HTTP: verified, durable, idempotent, ordered by occurred_at")
struct PaddleWebhookTests {
    static let secret = "pdl_ntfset_test_secret"

    static func stack(_ adjust: @escaping (inout AppConfiguration) -> Void = { _ in }) throws -> TestStack {
        try TestStack {
            $0.paddleWebhookSecrets = ["pdl_ntfset_old", secret]
            $0.paddlePricePlans = ["pri_basic": "basic", "pri_premium": "premium"]
            adjust(&$0)
        }
    }

    /// How a storm delivery is signed.
    enum Signing: Sendable {
        case genuine, late
        case secret(String)
        case body([UInt8])
    }

    static func sign(_ body: [UInt8], at time: Date = Date(), secret: String = secret) -> String {
        PaddleSignature.header(body: body, secret: secret, at: time)
    }

    @Test("forged, missing, expired and tampered signatures are 401 and queue nothing; bad JSON is 400")
    func rejections() async throws {
        let stack = try Self.stack()
        let backend = try await stack.backend()
        try await backend.application(inProcessWorker: false).test(.ahc(.http)) { client in
            let body = MockPaddle.event(
                id: "evt_1", type: "customer.created", occurredAt: Date(),
                data: MockPaddle.customer(id: "ctm_1", email: "a@example.com"))
            for (signature, reason) in [
                (nil, "missing"), ("ts=1;h1=00", "expired"), ("garbage", "malformed"),
                (Self.sign(body, secret: "wrong"), "mismatch"),
                (Self.sign(body, at: Date() - 10), "expired"),
                (Self.sign(body, at: Date() + 10), "future"),
                (Self.sign(body + Array(" ".utf8)), "mismatch"),
            ] as [(String?, String)] {
                let response = try await client.webhook(body, signature: signature)
                #expect(response.status == .unauthorized, "\(reason)")
                #expect(response.headers[.contentType] == "application/problem+json")
                #expect(response.text.contains(reason) && !response.text.contains(Self.secret))
            }
            let notJSON = Array("{not json".utf8)
            #expect(try await client.webhook(notJSON, signature: Self.sign(notJSON)).status == .badRequest)
            let notEvent = Array(#"{"hello":"world"}"#.utf8)
            #expect(try await client.webhook(notEvent, signature: Self.sign(notEvent)).status == .badRequest)
            // An event whose id holds a byte that is not UTF-8: signed, valid JSON framing, but refused.
            let notUTF8 =
                Array(#"{"event_id":"evt_"#.utf8) + [0xFF]
                + Array(#"","event_type":"customer.created","occurred_at":"2024-01-01T00:00:00Z","data":{}}"#.utf8)
            let refused = try await client.webhook(notUTF8, signature: Self.sign(notUTF8))
            #expect(refused.status == .badRequest)
            #expect(refused.text.contains("UTF-8"))
            let old = try await client.webhook(body, signature: Self.sign(body, secret: "pdl_ntfset_old"))
            #expect(old.status == .ok, "a secret being rotated out still verifies")
            // Read while the application runs: its database closes its connections when it stops.
            #expect(try await backend.taskQueue.stats().map(\.ready).reduce(0, +) == 1)
        }
    }

    @Test("a customer, then subscription events in and out of order, then payments: plan, cache, email, once each")
    func lifecycle() async throws {
        let stack = try Self.stack { $0.rateLimitPolicies = [] }  // the test polls the profile
        let backend = try await stack.backend()
        try await backend.application().test(.ahc(.http)) { client in
            let token = try await client.signUp(email: "ann@example.com")
            let first = try await client.send(.get, "/v1/user/profile", token: token)
            #expect(try first.json()["plan"] as? String == "free")
            #expect(try await client.send(.get, "/v1/user/profile", token: token).headers[.init("X-Cache")!] == "HIT")
            let t0 = Date()
            @discardableResult
            func deliver(_ id: String, _ type: String, at offset: Double, _ data: [String: Any]) async throws
                -> TestResponse
            {
                let body = MockPaddle.event(id: id, type: type, occurredAt: t0 + offset, data: data)
                return try await client.webhook(body, signature: Self.sign(body))
            }
            func plan() async -> String? {
                try? await client.send(.get, "/v1/user/profile", token: token).json()["plan"] as? String
            }
            #expect(
                try await deliver(
                    "evt_c1", "customer.created", at: 0, MockPaddle.customer(id: "ctm_1", email: "Ann@Example.com")
                ).status == .ok)
            let premium = MockPaddle.subscription(
                id: "sub_1", customerID: "ctm_1", status: "active", priceID: "pri_premium",
                nextBilledAt: t0 + 30 * 86_400)
            for _ in 0..<3 {  // Paddle redelivers: accepted each time, applied once
                #expect(try await deliver("evt_s1", "subscription.created", at: 10, premium).status == .ok)
            }
            #expect(await eventually { await plan() == "premium" })
            // An older event arriving late changes nothing.
            let staleCancel = MockPaddle.subscription(
                id: "sub_1", customerID: "ctm_1", status: "canceled", priceID: "pri_premium")
            try await deliver("evt_s0", "subscription.updated", at: 5, staleCancel)
            let basic = MockPaddle.subscription(
                id: "sub_1", customerID: "ctm_1", status: "active", priceID: "pri_basic")
            try await deliver("evt_s2", "subscription.updated", at: 20, basic)
            #expect(await eventually { await plan() == "basic" })
            try await deliver(
                "evt_t1", "transaction.completed", at: 21,
                MockPaddle.transaction(
                    id: "txn_1", customerID: "ctm_1", subscriptionID: "sub_1", status: "completed",
                    priceID: "pri_basic", amount: 1900))
            try await deliver(
                "evt_t2", "transaction.payment_failed", at: 22,
                MockPaddle.transaction(
                    id: "txn_2", customerID: "ctm_1", subscriptionID: "sub_1", status: "past_due", priceID: "pri_basic",
                    amount: 1900))
            try await deliver("evt_x", "price.created", at: 23, ["id": "pri_new"])
            try await deliver(
                "evt_s3", "subscription.canceled", at: 30,
                MockPaddle.subscription(id: "sub_1", customerID: "ctm_1", status: "canceled", priceID: "pri_basic"))
            #expect(await eventually { await plan() == "free" })
            #expect(await eventually { (try? await backend.billing.counts().events) == 8 })
            #expect(try await backend.billing.counts().payments == 2)
            #expect(await eventually { stack.outbox().count == 6 })  // welcome, 3 plan changes, receipt, failure
            let mail = stack.outbox().joined()
            #expect(mail.contains("Your Envoyou receipt: 19.00 USD") && mail.contains("txn_1"))
            #expect(mail.contains("did not go through"))
            #expect(mail.contains("Your Envoyou plan is now premium") && mail.contains("from premium to basic"))
            let metrics = try await client.send(.get, "/metrics").text
            #expect(metrics.contains(#"envoy_paddle_events_total{type="subscription.updated",result="stale"} 1"#))
            #expect(metrics.contains(#"envoy_paddle_events_total{type="price.created",result="ignored"} 1"#))
        }
    }

    @Test("a subscription for a customer not seen yet: looked up at the mock Paddle API, linked by email")
    func customerLookup() async throws {
        let paddle = try await MockPaddle.start()
        defer { Task { await paddle.stop() } }
        paddle.store(MockPaddle.customer(id: "ctm_9", email: "bob@example.com"))
        let stack = try Self.stack {
            $0.paddleAPIKey = paddle.apiKey
            $0.paddleAPIBaseURL = paddle.baseURL
        }
        try await stack.backend().application().test(.ahc(.http)) { client in
            let token = try await client.signUp(email: "bob@example.com")
            paddle.faults.fail(next: 1, status: 503)  // the worker's first lookup fails; the client retries
            let body = MockPaddle.event(
                id: "evt_b1", type: "subscription.activated", occurredAt: Date(),
                data: MockPaddle.subscription(
                    id: "sub_9", customerID: "ctm_9", status: "active", priceID: "pri_premium"))
            #expect(try await client.webhook(body, signature: Self.sign(body)).status == .ok)
            #expect(
                await eventually {
                    (try? await client.send(.get, "/v1/user/profile", token: token).json()["plan"] as? String)
                        == "premium"
                })
            #expect(paddle.apiRequests == 2)
        }
    }

    @Test("storm: 5,000 webhooks with duplicates and forgeries — every valid event once, every forgery refused")
    func storm() async throws {
        // A wide replay window: on a loaded CI machine a request signed when sent can reach the verifier more than
        // the default 5 s later. The window's edge is not this test's subject (late deliveries are 60 s old).
        let stack = try Self.stack {
            $0.rateLimitPolicies = RateLimitPolicy.defaults
            $0.paddleWebhookTolerance = .seconds(30)
        }
        let backend = try await stack.backend()
        let unique = 2_000
        // Each delivery is signed when it is sent, as Paddle does: (body, how it is signed, whether it is genuine).
        var deliveries: [(body: [UInt8], signing: Signing, valid: Bool)] = []
        let t0 = Date()
        for n in 0..<unique {
            let body = MockPaddle.event(
                id: "evt_storm_\(n)", type: "transaction.completed", occurredAt: t0 + Double(n) / 1000,
                data: MockPaddle.transaction(
                    id: "txn_\(n)", customerID: "ctm_unknown", subscriptionID: nil, status: "completed",
                    priceID: "pri_basic", amount: 100 + n))
            deliveries.append((body, .genuine, true))
        }
        for n in 0..<2_000 { deliveries.append(deliveries[n * 7 % unique]) }  // redeliveries
        for n in 0..<1_000 {
            let original = deliveries[n % unique].body
            switch n % 4 {
            case 0: deliveries.append((original, .secret("attacker"), false))
            case 1: deliveries.append((original + [32], .body(original), false))  // tampered after signing
            case 2: deliveries.append((original, .late, false))  // a replay from a minute ago
            default:
                let forged = MockPaddle.event(
                    id: "evt_forged_\(n)", type: "subscription.created", occurredAt: t0, data: [:])
                deliveries.append((forged, .body(original), false))  // a real signature on another body
            }
        }
        deliveries.shuffle()
        let all = deliveries
        let results = try await backend.application().test(.ahc(.http)) { client in
            try await withThrowingTaskGroup(of: (Bool, HTTPResponse.Status).self) { group in
                var statuses: [(Bool, HTTPResponse.Status)] = []
                for (index, delivery) in all.enumerated() {
                    if index >= 32, let status = try await group.next() { statuses.append(status) }
                    group.addTask {
                        let signature =
                            switch delivery.signing {
                            case .genuine: Self.sign(delivery.body)
                            case .secret(let secret): Self.sign(delivery.body, secret: secret)
                            case .body(let other): Self.sign(other)
                            case .late: Self.sign(delivery.body, at: Date() - 60)
                            }
                        return (delivery.valid, try await client.webhook(delivery.body, signature: signature).status)
                    }
                }
                for try await status in group { statuses.append(status) }
                let counted = await eventually(timeout: .seconds(60)) {
                    (try? await backend.billing.counts().events) == unique
                }
                #expect(counted)
                let counts = try await backend.billing.counts()
                #expect(counts.events == unique && counts.payments == unique)
                let metrics = try await client.send(.get, "/metrics").text
                #expect(
                    metrics.contains(
                        #"envoy_paddle_events_total{type="transaction.completed",result="applied"} \#(unique)"#))
                return statuses
            }
        }
        #expect(results.count == 5_000)
        #expect(
            results.filter { $0.0 }.allSatisfy { $0.1 == .ok }, "\(results.filter { $0.0 && $0.1 != .ok }.map(\.1))")
        #expect(results.filter { !$0.0 }.allSatisfy { $0.1 == .unauthorized })
    }
}
