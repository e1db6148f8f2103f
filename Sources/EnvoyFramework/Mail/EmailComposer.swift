import Foundation

/// Turns queued email into messages: renders file templates, applies the sender, and checks everything a
/// provider would reject. The same checks run when email is queued (`EmailQueue`) and when it is sent.
public struct EmailComposer: Sendable {
    /// The file templates.
    public let templates: EmailTemplates
    /// Who email comes from.
    public let sender: EmailSender

    /// A composer rendering `templates` as `sender`.
    public init(templates: EmailTemplates, sender: EmailSender) {
        self.templates = templates
        self.sender = sender
    }

    /// The message for one email's recipients.
    public func message(_ payload: SendEmail.Payload) throws(InvalidEmail) -> EmailMessage {
        var message = try compose(payload.content, to: payload.to)
        message.cc = payload.cc ?? []
        message.bcc = payload.bcc ?? []
        try message.validate()
        return message
    }

    /// The message for one batch of bulk email: each recipient gets their own copy, with their own
    /// `%recipient.NAME%` values (HTML-escaped in the HTML part).
    public func message(_ payload: SendBulkEmail.Payload) throws(InvalidEmail) -> EmailMessage {
        var message = try compose(payload.content, to: payload.recipients.map(\.address))
        var variables: [String: [String: String]] = [:]
        for recipient in payload.recipients {
            guard variables[recipient.address] == nil else {
                throw InvalidEmail("\(recipient.address) is listed twice")
            }
            variables[recipient.address] = recipient.variables
        }
        let used = [message.subject, message.text ?? "", message.html ?? ""].map(Self.recipientPlaceholders)
            .reduce(into: Set<String>()) { $0.formUnion($1) }
        for recipient in payload.recipients {
            if let missing = used.subtracting(recipient.variables.keys).sorted().first {
                throw InvalidEmail("recipient \(recipient.address) has no value for %recipient.\(missing)%")
            }
        }
        if let html = message.html {
            let inHTML = Self.recipientPlaceholders(html)
            var escaped = html
            for name in inHTML {
                escaped = escaped.replacingOccurrences(of: "%recipient.\(name)%", with: "%recipient.\(name)__html%")
            }
            message.html = escaped
            variables = variables.mapValues { values in
                var values = values
                for name in inHTML { values[name + "__html"] = HTML.escape(values[name] ?? "") }
                return values
            }
        }
        message.recipientVariables = variables
        try message.validate()
        return message
    }

    private func compose(_ content: EmailContent, to recipients: [String]) throws(InvalidEmail) -> EmailMessage {
        var subject = content.subject
        var text = content.body
        var html = content.html
        if let name = content.template {
            let rendered = try templates.render(name, data: content.templateData)
            subject = subject ?? rendered.subject
            text = rendered.text
            html = rendered.html
        }
        guard let subject else { throw InvalidEmail("an email needs a subject (or a template with one)") }
        var message = EmailMessage(
            to: recipients, from: sender.address, fromName: sender.name, subject: subject, text: text, html: html)
        message.storedTemplate = content.storedTemplate
        message.tags = content.tags ?? []
        message.variables = content.variables ?? [:]
        message.headers = content.headers ?? [:]
        message.testMode = content.testMode ?? false
        return message
    }

    /// The `NAME`s of `%recipient.NAME%` placeholders in `text`.
    static func recipientPlaceholders(_ text: String) -> Set<String> {
        var names: Set<String> = []
        var rest = Substring(text)
        while let start = rest.range(of: "%recipient.") {
            rest = rest[start.upperBound...]
            guard let end = rest.firstIndex(of: "%") else { break }
            let name = rest[..<end]
            if !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) {
                names.insert(String(name))
                rest = rest[rest.index(after: end)...]
            }
        }
        return names
    }
}

/// HTML text escaping, as Mustache's `{{double}}` braces do (emails, and the operators' console).
public enum HTML {
    /// `text` with `&`, `<`, `>`, `"` and `'` escaped: safe in HTML text and quoted attribute values.
    public static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
