import CLinux

/// The host's wall clock (CLOCK_REALTIME) in whole seconds since the epoch: the time base
/// of the guests' RTCs.
public func wallClockSeconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return UInt64(now.tv_sec)
}

/// CLOCK_MONOTONIC in milliseconds, the time base of main-loop deadlines.
public func monotonicMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}

/// CLOCK_MONOTONIC in nanoseconds, the time base of rate limiters (RateLimiter takes the
/// time as an argument; devices read it here).
public func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}
