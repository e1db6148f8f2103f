#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The process's open-file limit, and how many client connections fit under it.
public enum DescriptorLimit {
    /// Raises the soft open-file limit to the hard one (as Go's runtime does at start) and returns the limit now in
    /// force, or nil when it cannot be read.
    @discardableResult
    public static func raiseToHardLimit() -> Int? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
    }

    /// Client connections to hold open at once under `limit` descriptors: the rest stays free for the database,
    /// Redis, outbound HTTP and files, so that the server never reaches the limit itself. A server at the limit
    /// gets `EMFILE` from `accept`, which (with a connection waiting) wakes its event loop again at once.
    public static func connectionCapacity(limit: Int) -> Int {
        let reserve = max(64, limit / 10)
        return max(16, limit - reserve)
    }
}
