import CLinux
import Synchronization
import SwiftletCore

/// Shared between the vCPU threads and the main thread: the first stop request wins, sets
/// the flag every run loop checks, and wakes the main thread through an eventfd. Pausing
/// parks every vCPU thread on a condition variable outside KVM_RUN.
public final class VMControl {
    private let stopping = Atomic<Bool>(false)
    private let paused = Atomic<Bool>(false)
    private let lock = Lock()
    private var firstExit: VMExit?
    private var firstExitAt: UInt64?
    private let parking = Condition()
    private var parkedCount = 0
    private let stopRequested: EventNotifier
    /// Readable once a stop has been requested; the main loop polls it with other fds.
    public var eventFD: Int32 { stopRequested.fd }

    public init() throws(SwiftletError) {
        stopRequested = try EventNotifier()
    }

    @inline(__always)
    public var isStopping: Bool { stopping.load(ordering: .acquiring) }

    @inline(__always)
    public var isPaused: Bool { paused.load(ordering: .acquiring) }

    public var exit: VMExit? { lock.withLock { firstExit } }

    /// When the first stop was requested (CLOCK_MONOTONIC, ns): what `--stats` measures the
    /// VMM's own stopping time from.
    public var stopRequestedAt: UInt64? { lock.withLock { firstExitAt } }

    public func requestStop(_ exit: VMExit) {
        let first = lock.withLock { () -> Bool in
            guard firstExit == nil else { return false }
            firstExit = exit
            firstExitAt = monotonicNanoseconds()
            return true
        }
        stopping.store(true, ordering: .releasing)
        parking.lock()
        parking.broadcast()
        parking.unlock()
        if first { stopRequested.notify() }
    }

    /// Called by a vCPU thread that found `isPaused`: waits until resumed or stopped.
    func park() {
        parking.lock()
        parkedCount += 1
        parking.broadcast()
        while isPaused && !isStopping { parking.wait() }
        parkedCount -= 1
        parking.unlock()
    }

    func setPaused(_ value: Bool) {
        parking.lock()
        paused.store(value, ordering: .releasing)
        parking.broadcast()
        parking.unlock()
    }

    /// Waits until `count` vCPU threads are parked (or the VM stops); false on timeout.
    func waitUntilParked(_ count: Int, milliseconds: Int) -> Bool {
        let deadline = monotonicMilliseconds() + Int64(milliseconds)
        parking.lock()
        defer { parking.unlock() }
        while parkedCount < count && !isStopping {
            let left = deadline - monotonicMilliseconds()
            if left <= 0 { return false }
            _ = parking.wait(milliseconds: Int(left))
        }
        return true
    }
}
