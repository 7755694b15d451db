import CLinux

/// A one-shot CLOCK_MONOTONIC timerfd: the I/O thread watches it like an eventfd and
/// learns that a delay (a rate limiter's wait) is over.
public final class TimerFD {
    public let fd: Int32

    public init() throws(SwiftletError) {
        fd = timerfd_create(CLOCK_MONOTONIC, Int32(TFD_NONBLOCK | TFD_CLOEXEC))
        guard fd >= 0 else { throw .lastSystemError("timerfd_create") }
    }

    deinit { close(fd) }

    /// Fires once after `nanoseconds` (at least 1: 0 would disarm it).
    public func arm(afterNanoseconds nanoseconds: UInt64) {
        let delay = max(nanoseconds, 1)
        var spec = itimerspec()
        spec.it_value.tv_sec = Int(clamping: delay / 1_000_000_000)
        spec.it_value.tv_nsec = Int(delay % 1_000_000_000)
        _ = timerfd_settime(fd, 0, &spec, nil)
    }
}
