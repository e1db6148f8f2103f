extension StringProtocol {
    /// The text without leading and trailing spaces and tabs (HTTP's optional whitespace), without a trip
    /// through Foundation's `NSString` (which `trimmingCharacters(in:)` takes, and which showed in profiles).
    public func trimmingSpacesAndTabs() -> Substring {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        let text = self[...]
        guard let first = text.firstIndex(where: { !isBlank($0) }) else { return Substring() }
        let last = text.lastIndex(where: { !isBlank($0) })!
        return Substring(text[first...last])
    }
}
