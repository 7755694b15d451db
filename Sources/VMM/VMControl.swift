import CLinux
import Synchronization
import SwiftletCore

/// Shared between the vCPU threads and the main thread: the first stop request wins, sets
/// the flag every run loop checks, and wakes the main thread through an eventfd.
public final class VMControl {
    private let stopping = Atomic<Bool>(false)
    private let lock = Lock()
    private var firstExit: VMExit?
    /// Readable once a stop has been requested; the main loop polls it with other fds.
    public let eventFD: Int32

    public init() throws(SwiftletError) {
        eventFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard eventFD >= 0 else { throw .lastSystemError("eventfd") }
    }

    deinit { close(eventFD) }

    @inline(__always)
    public var isStopping: Bool { stopping.load(ordering: .acquiring) }

    public var exit: VMExit? { lock.withLock { firstExit } }

    public func requestStop(_ exit: VMExit) {
        let first = lock.withLock { () -> Bool in
            guard firstExit == nil else { return false }
            firstExit = exit
            return true
        }
        stopping.store(true, ordering: .releasing)
        if first {
            var one: UInt64 = 1
            _ = CLinux.write(eventFD, &one, 8)
        }
    }
}
