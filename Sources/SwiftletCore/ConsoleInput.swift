import CLinux

/// A device that takes host console input (PL011 RX, 16550 RBR).
public protocol ConsoleInput: AnyObject {
    /// Queues bytes; returns how many fitted. The caller keeps the rest until notified.
    func push(_ bytes: UnsafeRawBufferPointer) -> Int
    var hasSpace: Bool { get }
}

/// An eventfd a device writes when its input FIFO has room again, so the main loop
/// resumes reading the host's stdin only then (input is never dropped).
public final class SpaceNotifier {
    public let fd: Int32

    public init() throws(SwiftletError) {
        fd = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard fd >= 0 else { throw .lastSystemError("eventfd") }
    }

    deinit { close(fd) }

    public func notify() {
        var one: UInt64 = 1
        _ = CLinux.write(fd, &one, 8)
    }

    public func drain() {
        var value: UInt64 = 0
        _ = CLinux.read(fd, &value, 8)
    }
}
