/// Sizes for messages: MiB rounded up, so "needs 33 MiB" is never less than what is needed.
public func mebibytesRoundedUp(_ bytes: UInt64) -> UInt64 {
    (bytes >> 20) + (bytes & 0xF_FFFF == 0 ? 0 : 1)
}

/// `a + b`, or UInt64.max where the sum would not fit (sizes from files and guests).
public func saturatingSum(_ a: UInt64, _ b: UInt64) -> UInt64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? .max : sum
}

extension String {
    /// Whether `needle` occurs in this string, byte for byte (Embedded Swift has no
    /// String.contains(String)).
    public func hasSubstring(_ needle: String) -> Bool {
        let haystack = Array(utf8), pattern = Array(needle.utf8)
        guard !pattern.isEmpty else { return true }
        guard pattern.count <= haystack.count else { return false }
        for start in 0...(haystack.count - pattern.count) where haystack[start] == pattern[0] {
            if Array(haystack[start..<(start + pattern.count)]) == pattern { return true }
        }
        return false
    }
}
