import CLinux

/// Lines of text (log lines, metrics records) written to a host descriptor by a thread of
/// its own, so that whoever produces a line never waits for the destination. A line is
/// built straight into a bounded ring under a short lock (no system call, no allocation);
/// the writer thread writes out what has gathered, in order. When the destination stalls
/// (a full pipe nobody reads, a slow disk, a terminal on hold) the ring fills and further
/// lines are dropped whole and counted, as ConsoleOutput does for the guest's console
/// bytes. A write that fails for good (EIO, ENOSPC, EPIPE) loses what was buffered; those
/// lines are counted too.
public final class LineWriter {
    private let state = Condition()
    private let storage: UnsafeMutableRawBufferPointer
    private var head = 0
    private var count = 0
    private var fd: Int32
    private var closesFD: Bool
    /// A destination to switch to once the chunk being written is out.
    private var nextDestination: (fd: Int32, closes: Bool)?
    private var writerIdle = false
    private var closing = false
    /// Set by `finish` when its wait ran out: a writer waiting on a stalled non-blocking
    /// destination gives up and ends (one blocked inside write(2) cannot).
    private var abandoned = false
    private var writerDone = false
    private var missed: UInt64 = 0
    private var failures: UInt64 = 0
    private var thread: Thread?

    /// Writes to `fd`, closing it at the end when `closesDescriptor`. `threadName` names the
    /// writer thread (see `Thread.setCurrentName`).
    public init(fd: Int32, closesDescriptor: Bool = false, capacity: Int = 64 * 1024,
                threadName: String = "line writer") throws(SwiftletError) {
        self.fd = fd
        self.closesFD = closesDescriptor
        storage = .allocate(byteCount: max(capacity, 2), alignment: 16)
        thread = try Thread.spawn { [self] in
            Thread.setCurrentName(threadName)
            Seccomp.enter(.writer)
            writerLoop()
        }
    }

    deinit { storage.deallocate() }

    /// Opens `path` as a destination for lines, never blocking and never waiting for a
    /// reader. A named pipe is opened read-write, as Firecracker opens its log and metrics
    /// FIFOs: a write-only open of a FIFO with no reader yet fails (ENXIO) with O_NONBLOCK
    /// and blocks without it, and holding a read end also means a reader that comes and
    /// goes never turns writes into EPIPE; what nobody reads waits in the pipe, and past
    /// its 64 KiB in the writer's ring, where it is dropped and counted. Anything else is
    /// opened write-only for appending, created (`mode`, by default 0644) if missing.
    public static func openDestination(_ path: String, mode: UInt32 = 0o644) throws(SwiftletError) -> Int32 {
        var status = stat()
        let isFIFO = stat(path, &status) == 0 && status.st_mode & mode_t(S_IFMT) == mode_t(S_IFIFO)
        let flags = isFIFO ? O_RDWR | O_APPEND | O_NONBLOCK : O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK
        let fd = sl_open_mode(path, flags, mode)   // sl_open_mode adds O_CLOEXEC
        guard fd >= 0 else { throw .invalidArgument("cannot open \(path): \(SwiftletError.errnoString(sl_errno()))") }
        return fd
    }

    /// Lines dropped so far: the ring was full (or the writer finished), or a failed write
    /// lost them.
    public var missedLines: UInt64 {
        state.lock()
        defer { state.unlock() }
        return missed
    }

    /// Writes that failed for good (not a full pipe, which is waited out).
    public var failedWrites: UInt64 {
        state.lock()
        defer { state.unlock() }
        return failures
    }

    /// Bytes waiting in the ring.
    public var pendingBytes: Int {
        state.lock()
        defer { state.unlock() }
        return count
    }

    /// Queues one line: `build` appends its text (the newline is added here). A line that
    /// does not fit whole in the ring's free space is dropped and counted; false then.
    @discardableResult
    public func append(_ build: (inout LineBuilder) -> Void) -> Bool {
        state.lock()
        defer { state.unlock() }
        guard !closing else {
            missed &+= 1
            return false
        }
        var line = LineBuilder(storage, start: (head + count) % storage.count, room: storage.count - count)
        build(&line)
        line.append(0x0A)
        guard !line.overflowed else {
            missed &+= 1
            return false
        }
        count += line.length
        if writerIdle {
            writerIdle = false
            state.broadcast()
        }
        return true
    }

    /// Queues `bytes` as one line (a newline is added).
    @discardableResult
    public func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        append { $0.append(bytes) }
    }

    /// From now on lines go to `fd` (closed at the end when `closesDescriptor`); lines
    /// still queued go there too. The writer makes the switch between two writes and
    /// closes the descriptor it leaves if it owned it.
    public func redirect(to fd: Int32, closesDescriptor: Bool) {
        state.lock()
        guard !closing else {
            // The writer is finishing or gone: it would never switch.
            if closesDescriptor { close(fd) }
            state.unlock()
            return
        }
        if let pending = nextDestination, pending.closes { close(pending.fd) }
        nextDestination = (fd, closesDescriptor)
        if writerIdle { writerIdle = false }
        state.broadcast()
        state.unlock()
    }

    /// Waits at most `milliseconds` until every line queued so far is written; false if
    /// some are still waiting (a stalled destination).
    public func waitUntilWritten(milliseconds: Int) -> Bool {
        state.lock()
        defer { state.unlock() }
        let deadline = monotonicMilliseconds() + Int64(milliseconds)
        while (count > 0 || nextDestination != nil) && !writerDone {
            let left = deadline - monotonicMilliseconds()
            if left <= 0 { break }
            _ = state.wait(milliseconds: Int(left))
        }
        return count == 0
    }

    /// Writes out what is queued, waiting at most `milliseconds` for a stalled destination,
    /// and stops the writer; later lines are dropped. Returns every line lost: dropped so
    /// far, plus those still queued when the wait ran out.
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
        if !writerDone { abandoned = true }
        let lost = missed &+ UInt64(newlines(from: head, count: count))
        let done = writerDone
        state.unlock()
        // A writer stuck in a blocking write(2) is left behind, as ConsoleOutput's is: the
        // process is about to exit, and nothing may wait on a stalled destination forever.
        if done { thread?.join() }
        thread = nil
        return lost
    }

    // MARK: the writer thread

    private func writerLoop() {
        state.lock()
        while true {
            if let next = nextDestination {
                if closesFD { close(fd) }
                fd = next.fd
                closesFD = next.closes
                nextDestination = nil
                state.broadcast()
            }
            if count == 0 {
                if closing { break }
                writerIdle = true
                state.wait()
                writerIdle = false
                continue
            }
            if abandoned {
                missed &+= UInt64(newlines(from: head, count: count))
                head = 0
                count = 0
                break
            }
            let start = head
            let length = min(count, storage.count - head)
            let target = fd
            state.unlock()
            let written = writeSome(target, storage.baseAddress! + start, length)
            state.lock()
            if written < 0 {
                // Lost for good: everything buffered, counted by its line ends (a line
                // partly written before counts once, by the newline still in the ring).
                missed &+= UInt64(newlines(from: head, count: count))
                failures &+= 1
                head = 0
                count = 0
            } else {
                head = (head + written) % storage.count
                count -= written
            }
            state.broadcast()
        }
        if closesFD { close(fd) }
        if let next = nextDestination, next.closes { close(next.fd) }
        nextDestination = nil
        writerDone = true
        state.broadcast()
        state.unlock()
    }

    /// Writes some of `length` bytes: the number written (0 after a wait on a full
    /// non-blocking destination, so the loop can look at its state again), or -1 if the
    /// write failed for good.
    private func writeSome(_ fd: Int32, _ base: UnsafeMutableRawPointer, _ length: Int) -> Int {
        while true {
            let n = write(fd, base, length)
            if n >= 0 { return n }
            switch sl_errno() {
            case EINTR: continue
            case EAGAIN:
                var ready = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&ready, 1, 100)
                return 0
            default: return -1
            }
        }
    }

    /// The line ends among `count` ring bytes from `start` (lock held).
    private func newlines(from start: Int, count: Int) -> Int {
        var lines = 0
        var index = start
        for _ in 0..<count {
            if storage[index] == 0x0A { lines += 1 }
            index += 1
            if index == storage.count { index = 0 }
        }
        return lines
    }
}

/// Appends one line's bytes straight into a LineWriter's ring, wrapping at its end. Past
/// the room there is, it only remembers that the line did not fit.
public struct LineBuilder {
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    private let start: Int
    private let room: Int
    /// Bytes appended so far (also when they did not all fit).
    public private(set) var length = 0

    init(_ storage: UnsafeMutableRawBufferPointer, start: Int, room: Int) {
        base = storage.baseAddress!
        capacity = storage.count
        self.start = start
        self.room = room
    }

    public var overflowed: Bool { length > room }

    public mutating func append(_ byte: UInt8) {
        if length < room {
            var index = start + length
            if index >= capacity { index -= capacity }
            base.storeBytes(of: byte, toByteOffset: index, as: UInt8.self)
        }
        length += 1
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        if length + bytes.count <= room {
            var index = start + length
            if index >= capacity { index -= capacity }
            let first = min(bytes.count, capacity - index)
            (base + index).copyMemory(from: bytes.baseAddress!, byteCount: first)
            if first < bytes.count { base.copyMemory(from: bytes.baseAddress! + first, byteCount: bytes.count - first) }
        }
        length += bytes.count
    }

    public mutating func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    public mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// A NUL-terminated C string.
    public mutating func append(cString: UnsafePointer<CChar>) {
        append(UnsafeRawBufferPointer(start: cString, count: strlen(cString)))
    }

    /// `value` in decimal, zero-padded to at least `digits` digits.
    public mutating func appendDecimal(_ value: UInt64, digits: Int = 1) {
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes: a UInt64 has at most 20 digits
        withUnsafeMutableBytes(of: &scratch) { buffer in
            var end = buffer.count
            var rest = value
            repeat {
                end -= 1
                buffer[end] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0 || buffer.count - end < min(digits, buffer.count)
            append(UnsafeRawBufferPointer(rebasing: buffer[end...]))
        }
    }
}
