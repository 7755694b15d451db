import CLinux

/// The first bytes of a kernel, initrd or other image file and the file's size: all the
/// header parsers see, so their checks (sizes against guest RAM, offsets against the file)
/// run before a byte of the body is read.
public struct ImageHeader {
    public let path: String
    public let bytes: [UInt8]
    public let fileSize: UInt64

    public init(path: String, bytes: [UInt8], fileSize: UInt64) {
        self.path = path
        self.bytes = bytes
        self.fileSize = fileSize
    }

    /// A whole file held in memory (tests, fuzzing).
    public init(path: String, bytes: [UInt8]) {
        self.init(path: path, bytes: bytes, fileSize: UInt64(bytes.count))
    }
}

/// An image file the user named (kernel, initrd), opened so that opening cannot block or
/// take a terminal (O_NONBLOCK, O_NOCTTY, O_CLOEXEC: a FIFO or device path cannot hang the
/// VMM), refused unless it is a regular file, and read in place into guest memory: nothing
/// but its header is ever copied into the heap, whatever its size.
public final class ImageFile {
    public let path: String
    public let what: String
    public let size: UInt64
    private let fd: Int32

    /// Headers the parsers need lie in the first 64 KiB (arm64 Image + PE section table,
    /// the bzImage setup header).
    public static let headerLimit = 64 * 1024

    private init(path: String, what: String, size: UInt64, fd: Int32) {
        self.path = path
        self.what = what
        self.size = size
        self.fd = fd
    }

    deinit { close(fd) }

    public static func open(_ path: String, what: String) throws(SwiftletError) -> ImageFile {
        let fd = sl_open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { throw .invalidArgument("cannot open \(what) \(path): \(SwiftletError.errnoString(sl_errno()))") }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let error = SwiftletError.lastSystemError("stat \(what) \(path)")
            close(fd)
            throw error
        }
        guard (info.st_mode & mode_t(S_IFMT)) == mode_t(S_IFREG), info.st_size >= 0 else {
            close(fd)
            throw .invalidArgument("\(what) \(path) is not a regular file")
        }
        return ImageFile(path: path, what: what, size: UInt64(info.st_size), fd: fd)
    }

    /// The file's first bytes (up to `headerLimit`) and its size.
    public func header() throws(SwiftletError) -> ImageHeader {
        let count = Int(min(size, UInt64(ImageFile.headerLimit)))
        guard count > 0 else { return ImageHeader(path: path, bytes: [], fileSize: size) }
        var bytes = [UInt8](repeating: 0, count: count)
        let done = bytes.withUnsafeMutableBytes { readFully(into: $0.baseAddress!, count: count, at: 0) }
        guard done == count else { throw readError(done) }
        return ImageHeader(path: path, bytes: bytes, fileSize: size)
    }

    /// The whole file, which must be at most `maxBytes` (a small file such as a
    /// configuration; images are never read whole).
    public func contents(maxBytes: Int) throws(SwiftletError) -> [UInt8] {
        guard size <= UInt64(maxBytes) else {
            throw .invalidArgument("\(what) \(path) is \(size) bytes, more than the limit of \(maxBytes)")
        }
        let count = Int(size)
        guard count > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: count)
        let done = bytes.withUnsafeMutableBytes { readFully(into: $0.baseAddress!, count: count, at: 0) }
        guard done == count else { throw readError(done) }
        return bytes
    }

    /// Reads `length` bytes from `fileOffset` straight into guest memory at `address`; the
    /// range must lie inside guest RAM and inside the file.
    public func copy(into memory: GuestMemory, at address: UInt64, fileOffset: UInt64 = 0, length: UInt64) throws(SwiftletError) {
        guard fileOffset <= size, length <= size - fileOffset else {
            throw .invalidImage("\(what) \(path): bytes \(fileOffset)+\(length) lie past its end (\(size) bytes)")
        }
        guard length > 0 else { return }
        let destination = try memory.pointer(at: address, length: length)
        var done: UInt64 = 0
        while done < length {
            // pread moves at most ~2 GiB per call.
            let chunk = Int(min(length - done, 1 << 30))
            let n = readFully(into: destination + Int(done), count: chunk, at: fileOffset + done)
            guard n == chunk else { throw readError(n) }
            done += UInt64(chunk)
        }
    }

    /// pread until `count` bytes or end of file; -1 on error (errno kept).
    private func readFully(into buffer: UnsafeMutableRawPointer, count: Int, at offset: UInt64) -> Int {
        var done = 0
        while done < count {
            let n = pread(fd, buffer + done, count - done, off_t(offset + UInt64(done)))
            if n < 0 {
                if sl_errno() == EINTR { continue }
                return -1
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    private func readError(_ result: Int) -> SwiftletError {
        // A read error is the host's (EIO and the like), not the user's.
        if result < 0 { return .lastSystemError("cannot read \(what) \(path)") }
        return .invalidImage("\(what) \(path) shrank while being read (\(size) bytes when opened)")
    }
}
