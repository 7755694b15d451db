import CLinux

/// Receives bytes a guest writes to a console device.
public protocol ConsoleSink: AnyObject {
    func write(_ byte: UInt8)
}

/// Where guest console bytes go: a host file descriptor (stdout by default), written by a
/// thread of its own. A UART's byte goes into a bounded buffer under a short lock, with no
/// system call; the writer thread wakes once per batch (a line, half a buffer, or a short
/// linger) and writes it out, in order. When the host side stalls (a terminal on hold, a
/// pipe nobody reads) the buffer fills and further bytes are dropped and counted: the
/// vCPU never waits for the host's stdout (Firecracker's serial has the same concern).
public final class ConsoleOutput: ConsoleSink {
    public let fd: Int32
    private let state = Condition()
    private var storage: UnsafeMutableRawBufferPointer
    private var head = 0
    private var count = 0
    private var lineEnded = false
    private var writerIdle = false
    private var writerLingering = false
    private var closing = false
    private var writerDone = false
    private var dropped: UInt64 = 0
    private var received: UInt64 = 0
    private var thread: Thread?

    /// How long the writer waits for more bytes before writing a partial line.
    static let lingerMilliseconds = 2

    public init(fd: Int32 = 1, capacity: Int = 64 * 1024) throws(SwiftletError) {
        self.fd = fd
        storage = .allocate(byteCount: max(capacity, 1), alignment: 16)
        thread = try Thread.spawn(named: "console") { [self] in
            Seccomp.enter(.console)
            writerLoop()
        }
    }

    deinit { storage.deallocate() }

    /// Bytes dropped so far because the host side did not keep up.
    public var droppedBytes: UInt64 {
        state.lock()
        defer { state.unlock() }
        return dropped
    }

    /// Bytes the guest wrote so far, dropped ones included (the metrics' uart write_count).
    public var receivedBytes: UInt64 {
        state.lock()
        defer { state.unlock() }
        return received
    }

    // MARK: ConsoleSink (vCPU threads)

    public func write(_ byte: UInt8) {
        state.lock()
        received &+= 1
        if count == storage.count || closing {
            dropped &+= 1
        } else {
            storage[(head + count) % storage.count] = byte
            count += 1
            if byte == 0x0A { lineEnded = true }
            // Wake the writer when it sleeps with nothing to do, or when it lingers and a
            // line has ended or half the buffer is full: one wake-up per batch.
            if writerIdle || (writerLingering && (byte == 0x0A || count == storage.count / 2)) {
                writerIdle = false
                writerLingering = false
                state.broadcast()
            }
        }
        state.unlock()
    }

    /// Writes out what is buffered, waiting at most `milliseconds` for a stalled host side,
    /// and stops the writer. Returns the bytes that were dropped or could not be written.
    @discardableResult
    public func finish(milliseconds: Int = 1000) -> UInt64 {
        state.lock()
        closing = true
        state.broadcast()
        let deadline = monotonicMilliseconds() + Int64(milliseconds)
        while !writerDone {
            let left = deadline - monotonicMilliseconds()
            if left <= 0 { break }
            _ = state.wait(milliseconds: Int(left))
        }
        let lost = dropped &+ UInt64(count)
        state.unlock()
        if writerDone { thread?.join() }
        // A writer stuck in write(2) on a stalled descriptor is left behind: the process is
        // about to exit, and nothing may wait on the host's stdout forever.
        thread = nil
        return lost
    }

    // MARK: the writer thread

    private func writerLoop() {
        state.lock()
        while true {
            while count == 0 && !closing {
                writerIdle = true
                state.wait()
            }
            writerIdle = false
            if count == 0 && closing { break }
            // A partial line: give the guest a moment to add to it, so a byte-at-a-time
            // UART becomes one write per line or burst.
            if !lineEnded && !closing && count < storage.count / 2 {
                writerLingering = true
                _ = state.wait(milliseconds: ConsoleOutput.lingerMilliseconds)
                writerLingering = false
            }
            lineEnded = false
            let start = head
            let length = min(count, storage.count - head)
            state.unlock()
            let written = writeOut(storage.baseAddress! + start, length)
            state.lock()
            if written < 0 {
                // The reader went away for good: nothing more can be delivered.
                dropped &+= UInt64(count)
                head = 0
                count = 0
                continue
            }
            head = (head + written) % storage.count
            count -= written
        }
        writerDone = true
        state.broadcast()
        state.unlock()
    }

    /// Writes some of `length` bytes; the number written, or -1 if the descriptor is gone.
    private func writeOut(_ base: UnsafeMutableRawPointer, _ length: Int) -> Int {
        while true {
            let n = CLinux.write(fd, base, length)
            if n >= 0 { return n }
            switch sl_errno() {
            case EINTR: continue
            case EAGAIN:
                // A non-blocking stdout (shared with another process): wait until it drains.
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&pfd, 1, 100)
            default: return -1
            }
        }
    }
}
