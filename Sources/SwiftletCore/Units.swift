/// Sizes for messages: MiB rounded up, so "needs 33 MiB" is never less than what is needed.
public func mebibytesRoundedUp(_ bytes: UInt64) -> UInt64 {
    (bytes >> 20) + (bytes & 0xF_FFFF == 0 ? 0 : 1)
}

/// `a + b`, or UInt64.max where the sum would not fit (sizes from files and guests).
public func saturatingSum(_ a: UInt64, _ b: UInt64) -> UInt64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? .max : sum
}
