import SwiftletCore
import Synchronization

/// The rate limiter of one device queue (Firecracker's token buckets) and the timer that
/// resumes the queue when the limiter allows again. Every limitable queue has one, even
/// unlimited, so that limits can be set at runtime (PATCH) on any device: the timer is one
/// of the device's host events, registered before the I/O thread starts.
///
/// `admit` runs on the I/O thread, `update` on the API's. An unlimited queue (the default)
/// costs one atomic load per request; a limited one takes the lock, which only a runtime
/// change contends.
public final class QueueLimiter {
    public let queue: Int
    private let timer: TimerFD
    private let lock = Lock()
    private var limiter: RateLimiter
    /// Whether `limiter` has a bucket: written under the lock, read without it.
    private let isLimited: Atomic<Bool>
    private let throttledCounter = Atomic<UInt64>(0)

    public init(_ config: RateLimiterConfig?, queue: Int) throws(SwiftletError) {
        self.queue = queue
        timer = try TimerFD()
        let limiter = RateLimiter(config ?? RateLimiterConfig(), now: monotonicNanoseconds())
        self.limiter = limiter
        isLimited = Atomic(!limiter.isUnlimited)
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
        guard isLimited.load(ordering: .acquiring) else { return true }
        let allowed: Bool = lock.withLock {
            guard case .blocked(let wait) = limiter.consume(bytes: bytes, now: monotonicNanoseconds()) else { return true }
            // Armed under the lock: an update's wake-up cannot be overwritten by this wait.
            timer.arm(afterNanoseconds: wait)
            return false
        }
        if !allowed { throttledCounter.wrappingAdd(1, ordering: .relaxed) }
        return allowed
    }

    /// New limits (Firecracker's PATCH semantics: buckets the patch names are replaced, the
    /// others kept). A queue waiting on the old limits is woken to try the new ones.
    public func update(_ patch: RateLimiterConfig) {
        lock.withLock {
            limiter.update(limiter.config.patched(with: patch), now: monotonicNanoseconds())
            isLimited.store(!limiter.isUnlimited, ordering: .releasing)
            timer.arm(afterNanoseconds: 1)
        }
    }
}
