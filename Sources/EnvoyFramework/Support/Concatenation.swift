extension String {
    /// `parts` one after another, built at their final size in one allocation (none when short enough for a small
    /// string); interpolation and `+` grow the string as they go — for keys built on every request, that was one or
    /// two allocations more each.
    @inlinable public init(concatenating parts: Substring...) {
        var count = 0
        for part in parts { count += part.utf8.count }
        self.init(unsafeUninitializedCapacity: count) { buffer in
            var end = 0
            for part in parts {
                end =
                    part.utf8.withContiguousStorageIfAvailable { buffer[end...].initialize(fromContentsOf: $0) }
                    ?? buffer[end...].initialize(fromContentsOf: part.utf8)
            }
            return end
        }
    }
}
