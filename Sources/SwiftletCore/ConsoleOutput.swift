import CLinux

/// Where guest console bytes go: a file descriptor (stdout by default). Writes are
/// unbuffered and retried on EINTR/short writes, so no guest output is lost or reordered,
/// and nothing is allocated on the exit path.
public final class ConsoleOutput {
    public let fd: Int32
    private let lock = Lock()

    public init(fd: Int32 = 1) { self.fd = fd }

    public func write(_ byte: UInt8) {
        var value = byte
        withUnsafeBytes(of: &value) { write($0) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard var base = bytes.baseAddress else { return }
        var remaining = bytes.count
        lock.lock()
        defer { lock.unlock() }
        while remaining > 0 {
            let n = CLinux.write(fd, base, remaining)
            if n < 0 {
                let code = sl_errno()
                if code == EINTR { continue }
                if code == EAGAIN { waitWritable(); continue }
                return  // the reader went away; the guest must not stall on it
            }
            remaining -= n
            base += n
        }
    }

    private func waitWritable() {
        var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        _ = poll(&pfd, 1, 100)
    }
}

/// Receives bytes a guest writes to a console device.
public protocol ConsoleSink: AnyObject {
    func write(_ byte: UInt8)
}

extension ConsoleOutput: ConsoleSink {}
