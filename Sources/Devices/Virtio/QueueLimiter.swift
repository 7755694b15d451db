import SwiftletCore
import Synchronization

/// The rate limiter of one device queue (Firecracker's token buckets) and the timer that
/// resumes the queue when the limiter allows again. Every limitable queue has one, even
/// unlimited, so that limits can be set at runtime (PATCH) on any device: the timer is one
/// of the device's host events, registered before the I/O thread starts.
///
/// `admit` runs on the I/O thread, `update` on the API's; the lock is only ever contended
/// by a runtime change.
public final class QueueLimiter {
    public let queue: Int
    private let timer: TimerFD
    private let lock = Lock()
    private var limiter: RateLimiter
    private let throttledCounter = Atomic<UInt64>(0)

    public init(_ config: RateLimiterConfig?, queue: Int) throws(SwiftletError) {
        self.queue = queue
        timer = try TimerFD()
        limiter = RateLimiter(config ?? RateLimiterConfig(), now: monotonicNanoseconds())
    }

    /// The timer, which brings the queue back once a wait is over.
    public var hostEvent: VirtioHostEvent { VirtioHostEvent(fd: timer.fd, queue: queue, isCounter: true) }

    /// Times a request had to wait.
    public var throttled: UInt64 { throttledCounter.load(ordering: .relaxed) }

    /// The limits in force.
    public var config: RateLimiterConfig { lock.withLock { limiter.config } }

    /// Takes one request of `bytes` from the buckets. False (nothing taken) means wait: the
    /// timer is armed for when the buckets will allow it, and the queue must stop until then.
    public func admit(bytes: UInt64) -> Bool {
        let decision: RateLimiterDecision = lock.withLock {
            limiter.isUnlimited ? .allowed : limiter.consume(bytes: bytes, now: monotonicNanoseconds())
        }
        guard case .blocked(let wait) = decision else { return true }
        throttledCounter.wrappingAdd(1, ordering: .relaxed)
        timer.arm(afterNanoseconds: wait)
        return false
    }

    /// New limits (Firecracker's PATCH semantics: buckets the patch names are replaced, the
    /// others kept). A queue waiting on the old limits is woken to try the new ones.
    public func update(_ patch: RateLimiterConfig) {
        lock.withLock { limiter.update(limiter.config.patched(with: patch), now: monotonicNanoseconds()) }
        timer.arm(afterNanoseconds: 1)
    }
}
