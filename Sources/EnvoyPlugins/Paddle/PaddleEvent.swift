import Foundation

/// A Paddle Billing notification: the envelope every webhook has; its `data` is decoded on demand.
public struct PaddleEvent: Sendable, Equatable {
    /// `evt_…`, unique per event (deliveries of one event repeat it).
    public var id: String
    /// `subscription.updated`, `transaction.completed`, …
    public var type: String
    /// When it happened at Paddle (events may arrive out of this order).
    public var occurredAt: Date
    /// The notification as received; `data` is read from it by `decode`.
    private var body: [UInt8]

    /// Decodes a webhook body (one JSON parse, nothing re-encoded); nil when it is not a Paddle event envelope.
    public init?(json body: some Collection<UInt8>) {
        let bytes = Array(body)
        guard let envelope = try? JSONDecoder().decode(Envelope.self, from: Data(bytes)),
            !envelope.eventID.isEmpty, !envelope.eventType.isEmpty,
            let occurred = PaddleTime.parse(envelope.occurredAt)
        else { return nil }
        self.id = envelope.eventID
        self.type = envelope.eventType
        self.occurredAt = occurred
        self.body = bytes
    }

    /// Decodes `data` as `T`.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(DataField<T>.self, from: Data(body)).data
    }

    /// The envelope's fields; `data` must be an object, whatever it holds.
    private struct Envelope: Decodable {
        var eventID: String
        var eventType: String
        var occurredAt: String
        var data: AnyObject

        enum CodingKeys: String, CodingKey {
            case eventID = "event_id"
            case eventType = "event_type"
            case occurredAt = "occurred_at"
            case data
        }
    }

    /// Any JSON object, skipped over without building anything.
    private struct AnyObject: Decodable {
        init(from decoder: any Decoder) throws {
            _ = try decoder.container(keyedBy: AnyKey.self)
        }
    }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    private struct DataField<T: Decodable>: Decodable {
        var data: T
    }
}

/// Paddle's RFC 3339 timestamps, with or without fractional seconds (microseconds included).
public enum PaddleTime {
    /// The instant `text` names, or nil.
    public static func parse(_ text: String) -> Date? {
        if let date = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) {
            return date
        }
        return try? Date(text, strategy: Date.ISO8601FormatStyle())
    }

    /// `text` as stored: ISO 8601 with milliseconds, UTC.
    public static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}

/// The parts of a Paddle subscription Envoy uses.
public struct PaddleSubscription: Codable, Sendable, Equatable {
    /// `sub_…`.
    public var id: String
    /// `active`, `trialing`, `past_due`, `paused`, `canceled`.
    public var status: String
    /// `ctm_…`.
    public var customerID: String
    /// The items; the first one's price decides the plan.
    public var items: [Item]
    /// When Paddle bills next (nil once canceled or paused).
    public var nextBilledAt: String?
    /// Data the checkout attached, e.g. `{"user_id": "…"}`.
    public var customData: [String: JSONScalar]?

    /// One line of a subscription.
    public struct Item: Codable, Sendable, Equatable {
        /// The price subscribed to.
        public var price: Price
    }

    /// A price reference.
    public struct Price: Codable, Sendable, Equatable {
        /// `pri_…`.
        public var id: String
    }

    enum CodingKeys: String, CodingKey {
        case id, status, items
        case customerID = "customer_id"
        case nextBilledAt = "next_billed_at"
        case customData = "custom_data"
    }
}

/// The parts of a Paddle transaction Envoy uses.
public struct PaddleTransaction: Codable, Sendable, Equatable {
    /// `txn_…`.
    public var id: String
    /// `completed`, `past_due`, …
    public var status: String
    /// `ctm_…`, when known.
    public var customerID: String?
    /// `sub_…`, for subscription payments.
    public var subscriptionID: String?
    /// ISO 4217.
    public var currencyCode: String
    /// Totals in the currency's lowest unit.
    public var details: Details?
    /// The items bought.
    public var items: [PaddleSubscription.Item]?
    /// Data the checkout attached.
    public var customData: [String: JSONScalar]?

    /// Transaction details.
    public struct Details: Codable, Sendable, Equatable {
        /// The totals.
        public var totals: Totals?
    }

    /// Amounts as strings of the lowest currency unit (`"1000"` is 10.00 USD).
    public struct Totals: Codable, Sendable, Equatable {
        /// What the customer pays.
        public var grandTotal: String?
        /// Total before credits.
        public var total: String?

        enum CodingKeys: String, CodingKey {
            case grandTotal = "grand_total"
            case total
        }
    }

    enum CodingKeys: String, CodingKey {
        case id, status, details, items
        case customerID = "customer_id"
        case subscriptionID = "subscription_id"
        case currencyCode = "currency_code"
        case customData = "custom_data"
    }

    /// The amount paid, formatted in major units (`10.00`; `1000` for zero-decimal currencies).
    public var formattedAmount: String {
        let minor = Int(details?.totals?.grandTotal ?? details?.totals?.total ?? "0") ?? 0
        if ["JPY", "KRW"].contains(currencyCode.uppercased()) { return "\(minor)" }
        let sign = minor < 0 ? "-" : ""
        let absolute = abs(minor)
        return "\(sign)\(absolute / 100).\(String(format: "%02d", absolute % 100))"
    }
}

/// The parts of a Paddle customer Envoy uses.
public struct PaddleCustomer: Codable, Sendable, Equatable {
    /// `ctm_…`.
    public var id: String
    /// The customer's email, which links them to a user.
    public var email: String
    /// Their name, if given.
    public var name: String?
}

/// A JSON scalar in `custom_data` (Envoy reads strings; other values are kept as text).
public struct JSONScalar: Codable, Sendable, Equatable {
    /// The value as text.
    public var text: String

    /// Reads a string, number or boolean.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let string = try? container.decode(String.self) {
            text = string
        } else if let number = try? container.decode(Double.self) {
            text = number == number.rounded() && abs(number) < 1e15 ? String(Int(number)) : String(number)
        } else if let flag = try? container.decode(Bool.self) {
            text = String(flag)
        } else {
            text = ""
        }
    }

    /// Writes the text.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}
