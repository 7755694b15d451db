import CLinux

/// A whole file read into memory (kernels, initrds). Errors name the path.
public struct FileContents {
    public let path: String
    public let bytes: [UInt8]

    public init(path: String, bytes: [UInt8]) {
        self.path = path
        self.bytes = bytes
    }

    public static func read(_ path: String, what: String, limit: UInt64 = 1 << 34) throws(SwiftletError) -> FileContents {
        let fd = sl_open(path, O_RDONLY)
        guard fd >= 0 else { throw .invalidArgument("cannot open \(what) \(path): \(SwiftletError.errnoString(sl_errno()))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .lastSystemError("stat \(path)") }
        guard (info.st_mode & mode_t(S_IFMT)) == mode_t(S_IFREG) else { throw .invalidArgument("\(what) \(path) is not a regular file") }
        let size = UInt64(info.st_size)
        guard size <= limit else { throw .invalidArgument("\(what) \(path) is too large (\(size) bytes)") }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { CLinux.read(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if sl_errno() == EINTR { continue }
                throw .invalidArgument("cannot read \(what) \(path): \(SwiftletError.errnoString(sl_errno()))")
            }
            if n == 0 { break }
            done += n
        }
        guard done == bytes.count else { throw .invalidArgument("\(what) \(path) changed size while being read") }
        return FileContents(path: path, bytes: bytes)
    }
}
