/// What an email says, as application code queues it: a literal body or a template (a file under
/// `templates/email/`, or one stored at the provider), and the provider options. Shared by single and bulk mail.
public struct EmailContent: Codable, Sendable, Equatable {
    /// The subject; a file template's own subject is used when this is nil.
    public var subject: String?
    /// A literal plain-text body (when no template is named).
    public var body: String?
    /// A literal HTML body.
    public var html: String?
    /// The name of a Mustache template under `templates/email/`.
    public var template: String?
    /// Values for the file template's placeholders.
    public var templateData: [String: String]
    /// A template stored at the provider, rendered there (Mailgun's `template` and `t:variables`).
    public var storedTemplate: StoredTemplate?
    /// Provider tags (Mailgun's `o:tag`).
    public var tags: [String]?
    /// Custom data echoed in provider events (Mailgun's `v:`).
    public var variables: [String: String]?
    /// Extra MIME headers (Mailgun's `h:`).
    public var headers: [String: String]?
    /// Accepted but not delivered by the provider (Mailgun's `o:testmode`).
    public var testMode: Bool?

    /// Content with the given parts.
    public init(
        subject: String? = nil, body: String? = nil, html: String? = nil, template: String? = nil,
        templateData: [String: String] = [:], storedTemplate: StoredTemplate? = nil, tags: [String]? = nil,
        variables: [String: String]? = nil, headers: [String: String]? = nil, testMode: Bool? = nil
    ) {
        self.subject = subject
        self.body = body
        self.html = html
        self.template = template
        self.templateData = templateData
        self.storedTemplate = storedTemplate
        self.tags = tags
        self.variables = variables
        self.headers = headers
        self.testMode = testMode
    }

    private enum CodingKeys: String, CodingKey {
        case subject, body, html, template, templateData, storedTemplate, tags, variables, headers, testMode
    }

    /// Decodes, with `templateData` optional.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        subject = try container.decodeIfPresent(String.self, forKey: .subject)
        body = try container.decodeIfPresent(String.self, forKey: .body)
        html = try container.decodeIfPresent(String.self, forKey: .html)
        template = try container.decodeIfPresent(String.self, forKey: .template)
        templateData = try container.decodeIfPresent([String: String].self, forKey: .templateData) ?? [:]
        storedTemplate = try container.decodeIfPresent(StoredTemplate.self, forKey: .storedTemplate)
        tags = try container.decodeIfPresent([String].self, forKey: .tags)
        variables = try container.decodeIfPresent([String: String].self, forKey: .variables)
        headers = try container.decodeIfPresent([String: String].self, forKey: .headers)
        testMode = try container.decodeIfPresent(Bool.self, forKey: .testMode)
    }
}
