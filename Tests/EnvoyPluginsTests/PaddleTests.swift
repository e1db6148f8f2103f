import EnvoyFramework
import EnvoySim
import Foundation
import Testing

@testable import EnvoyPlugins

@Suite("Paddle: webhook signatures (the SDKs' test vectors), events, and the API client against the mock")
struct PaddleTests {
    /// 2023-11-01T00:00:00Z, the clock of paddle-node-sdk's webhook tests.
    static let sdkNow = Date(timeIntervalSince1970: 1_698_796_800)

    @Test(
        "paddle-node-sdk's vectors: valid, several h1, wrong secret, old ts, re-spaced body, garbage digest",
        arguments: [
            (
                #"{"data": ["1", "2"]}"#,
                "ts=1698796800;h1=a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9",
                "VALID_SECRET", nil
            ),
            (
                #"{"data": "value"}"#,
                "ts=1698796800;h1=28981e941fae76e53db32f3d2a83cb69db41476595e84e1970a1b5d98f62b261;h1=28981e941fae76e53db32f3d2a83cb69db41476595e84e1970a1b5d98f62b261;h2=RANDOM_HASH",
                "VALID_SECRET", nil
            ),
            (
                #"{"data": ["1", "2"]}"#,
                "ts=1698796800;h1=a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9",
                "INVALID_VALID_SECRET", PaddleSignature.Rejection.mismatch
            ),
            (
                #"{"data": ["1", "2"]}"#, "ts=9876;h1=a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9",
                "VALID_SECRET", .expired
            ),
            (
                #"{ "data": [ "1", "2" ]}"#,
                "ts=1698796800;h1=a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9",
                "VALID_SECRET", .mismatch
            ),
            (#"{"data": ["1", "2"]}"#, "ts=1234;h1=invalid_signature", "VALID_SECRET", .expired),
        ] as [(String, String, String, PaddleSignature.Rejection?)])
    func nodeVectors(body: String, header: String, secret: String, rejection: PaddleSignature.Rejection?) {
        let verifier = PaddleSignature(secrets: [secret])
        do {
            try verifier.verify(header: header, body: Array(body.utf8), now: Self.sdkNow)
            #expect(rejection == nil)
        } catch {
            #expect(error == rejection)
        }
    }

    @Test("the SDK's tolerance: accepted within 5 s of ts either way, rejected from 6 s; malformed headers are named")
    func tolerance() {
        let verifier = PaddleSignature(secrets: ["VALID_SECRET"])
        let header = "ts=1698796800;h1=a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9"
        let body = Array(#"{"data": ["1", "2"]}"#.utf8)
        for (offset, accepted) in [
            (1.0, true), (5.0, true), (6.0, false), (4 * 86_400.0, false), (-5.0, true), (-6.0, false),
            (-86_400.0, false),
        ] {
            let result = Result { () throws(PaddleSignature.Rejection) in
                try verifier.verify(header: header, body: body, now: Self.sdkNow + offset)
            }
            #expect(((try? result.get()) != nil) == accepted, "\(offset) s")
        }
        // Names may carry spaces and tabs; values may not; empty fields and unknown schemes are skipped.
        let digest = "a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9"
        for spaced in [" ts =1698796800;\th1\t=\(digest)", ";;ts=1698796800;=x;h2=;h1=\(digest);"] {
            #expect(throws: Never.self) { try verifier.verify(header: spaced, body: body, now: Self.sdkNow) }
        }
        for (header, rejection) in [
            ("ts= 1698796800;h1=\(digest)", PaddleSignature.Rejection.malformed), ("ts=1698796800;h1=", .malformed),
            ("ts=1698796800;h1= \(digest)", .mismatch), ("tsx=1698796800;h1=\(digest)", .malformed),
        ] {
            #expect(throws: rejection) { try verifier.verify(header: header, body: body, now: Self.sdkNow) }
        }
        for (header, rejection) in [
            (nil, PaddleSignature.Rejection.missing), ("", .missing), ("invalid_header", .malformed),
            ("h1=invalid_header", .malformed), ("ts=1234;h2=invalid_header", .malformed), ("ts=abc;h1=00", .malformed),
        ] as [(String?, PaddleSignature.Rejection)] {
            #expect(throws: rejection) { try verifier.verify(header: header, body: body, now: Self.sdkNow) }
        }
    }

    @Test("paddle-go-sdk's example: a real notification and secret key verify")
    func goVector() throws {
        let payload =
            #"{"data":{"id":"pri_01hsdn96k2hxjzsq5yerecdj9j","name":null,"status":"active","quantity":{"maximum":999999,"minimum":1},"tax_mode":"account_setting","product_id":"pro_01hsdn8qp7yydry3x1yeg6a9rv","unit_price":{"amount":"1000","currency_code":"USD"},"custom_data":null,"description":"testing","import_meta":null,"trial_period":null,"billing_cycle":{"interval":"month","frequency":1},"unit_price_overrides":[]},"event_id":"evt_01hsdn97563968dy0szkmgjwh3","event_type":"price.created","occurred_at":"2024-03-20T10:07:35.590857Z","notification_id":"ntf_01hsdn977e920kbgzt6r6c9rqc"}"#
        let header = "ts=1710929255;h1=6c05ef8fa83c44d751be6d259ec955ce5638e2c54095bf128e408e2fce1589c8"
        let secret = "pdl_ntfset_01hsdn8d43dt7mezr1ef2jtbaw_hKkRiCGyyRhbFwIUuqiTBgI7gnWoV0Gr"
        // Rotation: the old secret first, the current one second.
        let verifier = PaddleSignature(secrets: ["pdl_ntfset_old", secret])
        try verifier.verify(header: header, body: Array(payload.utf8), now: Date(timeIntervalSince1970: 1_710_929_256))
        let event = try #require(PaddleEvent(json: Array(payload.utf8)))
        #expect(event.id == "evt_01hsdn97563968dy0szkmgjwh3" && event.type == "price.created")
        #expect(abs(event.occurredAt.timeIntervalSince1970 - 1_710_929_255.590857) < 0.001)
        #expect(
            PaddleSignature.header(
                body: Array(payload.utf8), secret: secret, at: Date(timeIntervalSince1970: 1_710_929_255)) == header)
        #expect(PaddleEvent(json: Array(#"{"event_id":"e","data":{}}"#.utf8)) == nil)
    }

    @Test("hex comparison: either case matches, any other length or digit does not")
    func hexComparison() {
        let mac: [UInt8] = [0x0a, 0xff, 0x10]
        #expect(PaddleSignature.equalsHex(mac, "0aff10".utf8) && PaddleSignature.equalsHex(mac, "0AFF10".utf8))
        for wrong in ["0aff11", "0aff1", "0aff100", "0aff1g", "", "zzzzzz"] {
            #expect(!PaddleSignature.equalsHex(mac, wrong.utf8), "\(wrong)")
        }
    }

    @Test("the API client: Bearer key, envelopes, Paddle's errors, 429 Retry-After and 5xx retried")
    func client() async throws {
        let mock = try await MockPaddle.start()
        defer { Task { await mock.stop() } }
        mock.store(MockPaddle.customer(id: "ctm_1", email: "ann@example.com", name: "Ann"))
        mock.store(MockPaddle.subscription(id: "sub_1", customerID: "ctm_1", status: "active", priceID: "pri_1"))
        let client = PaddleClient(configuration: .init(apiKey: mock.apiKey, baseURL: mock.baseURL))
        #expect(
            try await client.customer(id: "ctm_1") == PaddleCustomer(id: "ctm_1", email: "ann@example.com", name: "Ann")
        )
        #expect(try await client.subscription(id: "sub_1").items.first?.price.id == "pri_1")

        await #expect(
            throws: PaddleAPIError.rejected(status: 404, code: "entity_not_found", detail: "Entity ctm_2 not found")
        ) {
            _ = try await client.customer(id: "ctm_2")
        }
        await #expect(throws: PaddleAPIError.invalidID("../admin")) { _ = try await client.customer(id: "../admin") }
        let wrongKey = PaddleClient(configuration: .init(apiKey: "wrong-secret-key", baseURL: mock.baseURL))
        do {
            _ = try await wrongKey.customer(id: "ctm_1")
            Issue.record("a wrong key was accepted")
        } catch let error as PaddleAPIError {
            #expect(!error.isTransient && !"\(error)".contains("wrong-secret-key"))
        }

        let before = mock.apiRequests
        mock.faults.fail(next: 1, status: 429, headers: ["Retry-After": "1"])
        mock.faults.fail(next: 1, status: 503)
        #expect(try await client.customer(id: "ctm_1").email == "ann@example.com")
        #expect(mock.apiRequests - before == 3)
        mock.faults.fail(next: 3, status: 500)
        do {
            _ = try await client.customer(id: "ctm_1")
            Issue.record("three 500s were not an error")
        } catch let error as PaddleAPIError {
            #expect(error.isTransient)
        }
        #expect(PaddleClient.Configuration(apiKey: "k", environment: "production").baseURL == "https://api.paddle.com")
        #expect(PaddleClient.Configuration(apiKey: "k").baseURL == "https://sandbox-api.paddle.com")
    }

    @Test("amounts: minor units to major, zero-decimal currencies as they are")
    func amounts() throws {
        func amount(_ minor: String, _ currency: String) throws -> String {
            let json =
                #"{"id":"txn_1","status":"completed","currency_code":"\#(currency)","details":{"totals":{"grand_total":"\#(minor)"}}}"#
            return try JSONDecoder().decode(PaddleTransaction.self, from: Data(json.utf8)).formattedAmount
        }
        #expect(try amount("1000", "USD") == "10.00")
        #expect(try amount("5", "EUR") == "0.05")
        #expect(try amount("1000", "JPY") == "1000")
    }
}
