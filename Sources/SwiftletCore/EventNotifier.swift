import CLinux

/// An eventfd one thread writes to wake the main loop, which polls `fd`: a UART with room
/// in its input FIFO again, a VM that must stop, a background job that is done.
public final class EventNotifier {
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
