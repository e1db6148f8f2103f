/// How a provider names itself in the start-up summary: its own description, or its type's name (an injected
/// provider that says nothing of itself).
public func providerDescription(_ provider: Any) -> String {
    (provider as? any CustomStringConvertible)?.description ?? "\(type(of: provider))"
}
