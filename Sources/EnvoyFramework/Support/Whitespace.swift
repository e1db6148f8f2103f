extension BidirectionalCollection<UInt8> {
    /// The bytes without leading and trailing spaces and tabs (HTTP's optional whitespace).
    @inlinable public func trimmingSpacesAndTabs() -> SubSequence {
        let isBlank: (UInt8) -> Bool = { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        guard let first = firstIndex(where: { !isBlank($0) }) else { return self[endIndex...] }
        return self[first...lastIndex(where: { !isBlank($0) })!]
    }
}

extension Substring {
    /// The text without leading and trailing spaces and tabs, found in its UTF-8 bytes (neither a trip through
    /// Foundation's `NSString` nor a walk by `Character`, both of which showed in profiles).
    public func trimmingSpacesAndTabs() -> Substring { Substring(utf8.trimmingSpacesAndTabs()) }
}

extension String {
    /// The text without leading and trailing spaces and tabs, as `Substring`'s.
    public func trimmingSpacesAndTabs() -> Substring { self[...].trimmingSpacesAndTabs() }
}
