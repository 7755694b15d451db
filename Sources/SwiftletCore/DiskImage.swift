import CLinux

/// A disk image the user attached (a raw image file or a host block device), opened and
/// locked for one VM's life. Guest data moves between guest RAM and the file with
/// preadv/pwritev over `IOVectors` that point straight into guest memory: no copy.
///
/// I/O failures are thrown as `SwiftletError.system` for the device to answer with an
/// error status (VIRTIO_BLK_S_IOERR); nothing here traps on a failing disk.
public final class DiskImage {
    public let path: String
    /// Bytes: st_size of a file, BLKGETSIZE64 of a block device.
    public let size: UInt64
    public let isReadOnly: Bool
    public let isBlockDevice: Bool
    private let fd: Int32
    /// Set once fallocate has said it cannot do a mode, so later requests skip the syscall
    /// (internal so tests can force the fallbacks).
    var zeroRangeUnsupported = false
    var punchHoleUnsupported = false
    /// Zeros for writeZeroes when fallocate cannot help; allocated on first need.
    private var zeros: UnsafeMutableRawPointer?

    /// The zero-writing fallback moves at most this much per pwrite.
    static let zeroChunk = 1 << 20

    private init(path: String, size: UInt64, isReadOnly: Bool, isBlockDevice: Bool, fd: Int32) {
        self.path = path
        self.size = size
        self.isReadOnly = isReadOnly
        self.isBlockDevice = isBlockDevice
        self.fd = fd
    }

    /// Closing the descriptor also drops the OFD lock.
    deinit {
        close(fd)
        zeros?.deallocate()
    }

    /// Opens `path` for a VM disk. Refuses, each with one line naming the path: a missing
    /// path, anything but a regular file or block device, a file that cannot be opened
    /// for writing when `readOnly` is false, and an image another VM holds (locked).
    public static func open(_ path: String, readOnly: Bool) throws(SwiftletError) -> DiskImage {
        // O_NONBLOCK only so that opening a FIFO cannot hang the VMM before fstat refuses
        // it; O_NOCTTY so a terminal path cannot become our controlling terminal.
        // (sl_open adds O_CLOEXEC.)
        let access = readOnly ? O_RDONLY : O_RDWR
        let fd = sl_open(path, access | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else {
            let code = sl_errno()
            let message = "cannot open disk image \(path)\(readOnly ? "" : " for writing"): \(SwiftletError.errnoString(code))"
            // The path's fault (missing, forbidden, read-only, not a file) is the user's;
            // running out of descriptors or memory, or an I/O error, is the host's.
            switch code {
            case ENOENT, EACCES, EPERM, EROFS, EISDIR, ENOTDIR, ELOOP, ENAMETOOLONG, ENXIO, ETXTBSY, ENODEV:
                throw .invalidArgument(message)
            default:
                throw .system("cannot open disk image \(path)", errno: code)
            }
        }
        do throws(SwiftletError) {
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw .lastSystemError("stat disk image \(path)") }
            let type = info.st_mode & mode_t(S_IFMT)
            let isBlockDevice = type == mode_t(S_IFBLK)
            guard type == mode_t(S_IFREG) || isBlockDevice else {
                throw .invalidArgument("disk image \(path) is \(describe(type)), not a regular file or block device")
            }
            // Regular files and block devices ignore O_NONBLOCK today; clear it anyway so
            // no I/O can ever return EAGAIN.
            let flags = sl_fcntl(fd, F_GETFL, 0)
            guard flags >= 0, sl_fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0 else {
                throw .lastSystemError("fcntl disk image \(path)")
            }
            let size = try currentSize(fd, path: path, isBlockDevice: isBlockDevice)
            try lock(fd, path: path, readOnly: readOnly)
            return DiskImage(path: path, size: size, isReadOnly: readOnly, isBlockDevice: isBlockDevice, fd: fd)
        } catch {
            close(fd)
            throw error
        }
    }

    private static func currentSize(_ fd: Int32, path: String, isBlockDevice: Bool) throws(SwiftletError) -> UInt64 {
        if isBlockDevice {
            var size: UInt64 = 0
            guard sl_ioctl(fd, SL_BLKGETSIZE64, &size) == 0 else { throw .lastSystemError("BLKGETSIZE64 of disk image \(path)") }
            return size
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .lastSystemError("stat disk image \(path)") }
        return UInt64(max(0, info.st_size))
    }

    /// Whether `path` names the file this image has open (same device and inode).
    public func isSameFile(as path: String) -> Bool {
        var named = stat(), open = stat()
        guard stat(path, &named) == 0, fstat(fd, &open) == 0 else { return false }
        return named.st_dev == open.st_dev && named.st_ino == open.st_ino
    }

    /// The same open file again, with its size read anew (media change to the same path
    /// after the file grew, as Firecracker clients do). It shares this image's open file
    /// description, and with it the lock: a fresh open would conflict with our own lock.
    public func reopened() throws(SwiftletError) -> DiskImage {
        let copy = sl_fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw .lastSystemError("dup of disk image \(path)") }
        do throws(SwiftletError) {
            let size = try DiskImage.currentSize(copy, path: path, isBlockDevice: isBlockDevice)
            return DiskImage(path: path, size: size, isReadOnly: isReadOnly, isBlockDevice: isBlockDevice, fd: copy)
        } catch {
            close(copy)
            throw error
        }
    }

    /// One OFD lock over the whole file, as QEMU takes: a writer excludes everyone, readers
    /// share. Held by the open file description, so it is dropped by close (deinit) and
    /// also excludes a second open of the same image inside this process.
    private static func lock(_ fd: Int32, path: String, readOnly: Bool) throws(SwiftletError) {
        var lock = flock()
        lock.l_type = Int16(readOnly ? F_RDLCK : F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = 0
        lock.l_len = 0        // to the end, however the file grows
        lock.l_pid = 0        // required for OFD locks
        guard sl_fcntl_lock(fd, SL_F_OFD_SETLK, &lock) == 0 else {
            let code = sl_errno()
            if code == EAGAIN || code == EACCES {
                throw .invalidArgument("disk image \(path) is in use by another VM (locked)")
            }
            throw .system("cannot lock disk image \(path)", errno: code)
        }
    }

    private static func describe(_ type: mode_t) -> String {
        switch type {
        case mode_t(S_IFDIR): return "a directory"
        case mode_t(S_IFIFO): return "a FIFO"
        case mode_t(S_IFCHR): return "a character device"
        case mode_t(S_IFSOCK): return "a socket"
        default: return "a special file"
        }
    }

    // MARK: I/O

    /// Reads `vectors.byteCount` bytes at `offset` into the vectors' buffers (consuming the
    /// vectors: call `removeAll()` before reuse). Retries EINTR and short reads; the range
    /// must lie inside the image.
    public func preadv(_ vectors: IOVectors, at offset: UInt64) throws(SwiftletError) {
        try transfer(vectors, at: offset, write: false)
    }

    /// Writes the vectors' buffers at `offset`, as `preadv` reads.
    public func pwritev(_ vectors: IOVectors, at offset: UInt64) throws(SwiftletError) {
        guard !isReadOnly else { throw readOnlyError("write") }
        try transfer(vectors, at: offset, write: true)
    }

    private func transfer(_ vectors: IOVectors, at offset: UInt64, write: Bool) throws(SwiftletError) {
        try checkRange(offset, vectors.byteCount, write ? "write" : "read")
        var position = offset
        while !vectors.isConsumed {
            let n = write
                ? sl_pwritev(fd, vectors.current, vectors.currentCount, off_t(position))
                : sl_preadv(fd, vectors.current, vectors.currentCount, off_t(position))
            if n < 0 {
                let code = sl_errno()
                if code == EINTR { continue }
                throw .system("\(write ? "write" : "read") of disk image \(path) at byte \(position)", errno: code)
            }
            // Inside the image a read cannot meet end of file unless the file shrank under
            // us, and a write of a non-empty buffer cannot move nothing: both would loop.
            guard n > 0 else {
                throw .system("\(write ? "write" : "read") of disk image \(path) at byte \(position) moved nothing (file shrank?)", errno: EIO)
            }
            vectors.consume(n)
            position += UInt64(n)
        }
    }

    /// pread of a host buffer (tests, and small reads that are not guest data).
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(SwiftletError) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        let vectors = IOVectors(capacity: 1)
        vectors.append(base, length: buffer.count)
        try preadv(vectors, at: offset)
    }

    /// pwrite of a host buffer.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(SwiftletError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let vectors = IOVectors(capacity: 1)
        vectors.append(UnsafeMutableRawPointer(mutating: base), length: bytes.count)
        try pwritev(vectors, at: offset)
    }

    /// fdatasync: everything written so far reaches stable storage (VIRTIO_BLK_T_FLUSH).
    public func flush() throws(SwiftletError) {
        while fdatasync(fd) != 0 {
            let code = sl_errno()
            if code == EINTR { continue }
            throw .system("flush of disk image \(path)", errno: code)
        }
    }

    /// Gives the range back to the host (VIRTIO_BLK_T_DISCARD): punches a hole, keeping
    /// the size. Discard is a hint, so a file system or device that cannot punch holes
    /// makes this a no-op rather than an error.
    public func discard(offset: UInt64, length: UInt64) throws(SwiftletError) {
        guard !isReadOnly else { throw readOnlyError("discard") }
        try checkRange(offset, length, "discard")
        guard length > 0, !punchHoleUnsupported else { return }
        let result = fallocateRange(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)
        if result == 0 { return }
        if DiskImage.isUnsupported(result) { punchHoleUnsupported = true; return }
        throw .system("discard of disk image \(path) at byte \(offset)", errno: result)
    }

    /// Makes the range read as zeros (VIRTIO_BLK_T_WRITE_ZEROES): a punched hole when
    /// `unmap` allows freeing the blocks, else fallocate's ZERO_RANGE, and where the file
    /// system or device supports neither, zeros written in bounded chunks.
    public func writeZeroes(offset: UInt64, length: UInt64, unmap: Bool) throws(SwiftletError) {
        guard !isReadOnly else { throw readOnlyError("write zeroes") }
        try checkRange(offset, length, "write zeroes")
        guard length > 0 else { return }
        if unmap && !punchHoleUnsupported {
            let result = fallocateRange(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)
            if result == 0 { return }
            guard DiskImage.isUnsupported(result) else {
                throw .system("write zeroes of disk image \(path) at byte \(offset)", errno: result)
            }
            punchHoleUnsupported = true
        }
        if !zeroRangeUnsupported {
            let result = fallocateRange(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length)
            if result == 0 { return }
            guard DiskImage.isUnsupported(result) else {
                throw .system("write zeroes of disk image \(path) at byte \(offset)", errno: result)
            }
            zeroRangeUnsupported = true
        }
        try writeZeroBuffers(offset: offset, length: length)
    }

    private func writeZeroBuffers(offset: UInt64, length: UInt64) throws(SwiftletError) {
        let zeros: UnsafeMutableRawPointer
        if let existing = self.zeros {
            zeros = existing
        } else {
            zeros = UnsafeMutableRawPointer.allocate(byteCount: DiskImage.zeroChunk, alignment: 4096)
            zeros.initializeMemory(as: UInt8.self, repeating: 0, count: DiskImage.zeroChunk)
            self.zeros = zeros
        }
        let vectors = IOVectors(capacity: 1)
        var done: UInt64 = 0
        while done < length {
            let n = Int(min(length - done, UInt64(DiskImage.zeroChunk)))
            vectors.removeAll()
            vectors.append(zeros, length: n)
            try transfer(vectors, at: offset + done, write: true)
            done += UInt64(n)
        }
    }

    /// fallocate's errno, or 0. Retries EINTR.
    private func fallocateRange(_ mode: Int32, _ offset: UInt64, _ length: UInt64) -> Int32 {
        while sl_fallocate(fd, mode, off_t(offset), off_t(length)) != 0 {
            let code = sl_errno()
            if code != EINTR { return code }
        }
        return 0
    }

    /// The errors by which fallocate says "not this mode here" (file system, device, or an
    /// old kernel), after which the caller falls back.
    private static func isUnsupported(_ code: Int32) -> Bool {
        code == EOPNOTSUPP || code == ENOSYS || code == EINVAL || code == ENODEV
    }

    /// The device checks every request against the capacity; this second check keeps a
    /// bug there from growing a file or reading past a device's end.
    private func checkRange(_ offset: UInt64, _ length: UInt64, _ what: String) throws(SwiftletError) {
        guard offset <= size, length <= size - offset else {
            throw .system("\(what) of disk image \(path): bytes \(offset)+\(length) lie past its end (\(size) bytes)", errno: EINVAL)
        }
    }

    private func readOnlyError(_ what: String) -> SwiftletError {
        .system("\(what) of disk image \(path), opened read-only", errno: EROFS)
    }
}

/// A reusable array of iovecs for one preadv/pwritev: at most `capacity` entries (at most
/// IOV_MAX, which the kernel enforces per call). The transfer consumes it from the front
/// as bytes move, which is how short transfers resume where they stopped.
public final class IOVectors {
    /// IOV_MAX (UIO_MAXIOV) on Linux: the most iovecs one preadv/pwritev accepts.
    public static let limit = 1024

    public let capacity: Int
    private let vectors: UnsafeMutablePointer<iovec>
    /// Entries appended, and the first not yet wholly transferred.
    public private(set) var count = 0
    private var first = 0
    /// Bytes appended (not reduced by transfers).
    public private(set) var byteCount: UInt64 = 0

    public init(capacity: Int = IOVectors.limit) {
        self.capacity = max(1, min(capacity, IOVectors.limit))
        vectors = .allocate(capacity: self.capacity)
    }

    deinit { vectors.deallocate() }

    public var isFull: Bool { count == capacity }
    public var isEmpty: Bool { count == 0 }

    public func removeAll() {
        count = 0
        first = 0
        byteCount = 0
    }

    /// Adds a buffer; false (and nothing added) when full. Empty buffers are skipped.
    @discardableResult
    public func append(_ base: UnsafeMutableRawPointer, length: Int) -> Bool {
        guard length > 0 else { return true }
        guard count < capacity else { return false }
        vectors[count] = iovec(iov_base: base, iov_len: length)
        count += 1
        byteCount += UInt64(length)
        return true
    }

    var isConsumed: Bool { first >= count }
    /// The entries not yet transferred, for a readv/writev of them.
    public var current: UnsafeMutablePointer<iovec> { vectors + first }
    public var currentCount: Int32 { Int32(count - first) }

    /// Drops `n` transferred bytes from the front.
    func consume(_ n: Int) {
        var left = n
        while left > 0 && first < count {
            let length = vectors[first].iov_len
            if left >= length {
                left -= length
                first += 1
            } else {
                vectors[first].iov_base = vectors[first].iov_base.map { $0 + left }
                vectors[first].iov_len -= left
                left = 0
            }
        }
    }
}
