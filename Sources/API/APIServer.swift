import CLinux
import SwiftletCore

/// The control API's HTTP/1.1 server on a Unix socket, polled by the main loop (no threads).
/// Bounded: at most `maxConnections` clients, requests within the parser's limits, and a
/// client that leaves a request half-sent for `requestTimeoutMs` is disconnected.
public final class APIServer: PollSource {
    public typealias Handler = (HTTPRequest) -> HTTPResponse

    public static let maxConnections = 16
    public static let requestTimeoutMs: Int64 = 10_000
    public static let idleTimeoutMs: Int64 = 300_000

    public let path: String
    private let listenFD: Int32
    private let handler: Handler
    private var connections: [Connection] = []

    private final class Connection {
        let fd: Int32
        var parser = HTTPRequestParser()
        var outgoing: [UInt8] = []
        var closeWhenFlushed = false
        var lastActivity: Int64
        var closed = false
        init(fd: Int32, now: Int64) { self.fd = fd; lastActivity = now }
    }

    public init(path: String, handler: @escaping Handler) throws(SwiftletError) {
        self.path = path
        self.handler = handler
        listenFD = try UnixSocket.listen(path: path)
    }

    deinit {
        for connection in connections { close(connection.fd) }
        close(listenFD)
        unlink(path)
    }

    // MARK: PollSource

    public func pollDescriptors() -> [pollfd] {
        var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)]
        for connection in connections {
            let events = connection.outgoing.isEmpty ? POLLIN : POLLOUT
            fds.append(pollfd(fd: connection.fd, events: Int16(events), revents: 0))
        }
        return fds
    }

    public func handleEvents(_ fds: [pollfd], now: Int64) {
        // Connections as they were when polled: fds[1...] matches them one to one.
        let polled = connections
        for (index, connection) in polled.enumerated() where index + 1 < fds.count {
            let revents = Int32(fds[index + 1].revents)
            if revents & Int32(POLLOUT) != 0 { flush(connection) }
            if revents & Int32(POLLIN) != 0 { receive(connection, now: now) }
            else if revents & Int32(POLLHUP | POLLERR | POLLNVAL) != 0 { drop(connection) }
        }
        if Int32(fds[0].revents) & Int32(POLLIN) != 0 { acceptClients(now: now) }
        for connection in connections where !connection.closed {
            let limit = connection.parser.isIdle ? APIServer.idleTimeoutMs : APIServer.requestTimeoutMs
            if now - connection.lastActivity >= limit { drop(connection) }
        }
        connections.removeAll { $0.closed }
    }

    public var nextDeadline: Int64? {
        connections.map { $0.lastActivity + ($0.parser.isIdle ? APIServer.idleTimeoutMs : APIServer.requestTimeoutMs) }.min()
    }

    // MARK: connections

    private func acceptClients(now: Int64) {
        while true {
            let fd = sl_accept_nonblocking(listenFD)
            if fd < 0 { return }
            if connections.count >= APIServer.maxConnections {
                close(fd)   // over the limit: refuse by closing at once
                continue
            }
            connections.append(Connection(fd: fd, now: now))
        }
    }

    private func receive(_ connection: Connection, now: Int64) {
        guard !connection.closed, !connection.closeWhenFlushed else { return }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, 0) }
        if n == 0 || (n < 0 && sl_errno() != EAGAIN && sl_errno() != EINTR) {
            drop(connection)
            return
        }
        guard n > 0 else { return }
        connection.lastActivity = now
        buffer.withUnsafeBytes { connection.parser.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        parse: while true {
            switch connection.parser.next() {
            case .needMore:
                break parse
            case .sendContinue:
                connection.outgoing += HTTPResponse.continueBytes
            case .request(let request):
                let response = handler(request)
                connection.outgoing += response.serialize(keepAlive: request.keepAlive)
                if !request.keepAlive {
                    connection.closeWhenFlushed = true
                    break parse
                }
            case .error(let error):
                connection.outgoing += error.response().serialize(keepAlive: false)
                connection.closeWhenFlushed = true
                break parse
            }
        }
        flush(connection)
    }

    private func flush(_ connection: Connection) {
        guard !connection.closed else { return }
        while !connection.outgoing.isEmpty {
            let n = connection.outgoing.withUnsafeBytes { send(connection.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if sl_errno() == EAGAIN || sl_errno() == EINTR { return }
                drop(connection)
                return
            }
            connection.outgoing.removeFirst(n)
        }
        if connection.closeWhenFlushed { drop(connection) }
    }

    private func drop(_ connection: Connection) {
        guard !connection.closed else { return }
        connection.closed = true
        close(connection.fd)
    }
}

/// Unix stream sockets for the API server and client.
public enum UnixSocket {
    static func address(_ path: String) throws(SwiftletError) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else {
            throw .invalidArgument("socket path \(path) must be 1 to \(capacity - 1) bytes long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
        return address
    }

    /// Listens on `path`. A leftover socket nobody listens on is replaced; anything else
    /// at the path is an error.
    static func listen(path: String) throws(SwiftletError) -> Int32 {
        var address = try address(path)
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & mode_t(S_IFMT)) == mode_t(S_IFSOCK) else {
                throw .invalidArgument("--api-socket \(path) exists and is not a socket")
            }
            if let probe = try? connect(path: path) {
                close(probe)
                throw .invalidArgument("--api-socket \(path) is in use by another process")
            }
            unlink(path)
        }
        let fd = sl_unix_socket(1)
        guard fd >= 0 else { throw .lastSystemError("socket") }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, CLinux.listen(fd, 16) == 0 else {
            let error = SwiftletError.invalidArgument("cannot listen on --api-socket \(path): \(SwiftletError.errnoString(sl_errno()))")
            close(fd)
            throw error
        }
        return fd
    }

    /// A blocking connection to `path`.
    public static func connect(path: String) throws(SwiftletError) -> Int32 {
        var address = try address(path)
        let fd = sl_unix_socket(0)
        guard fd >= 0 else { throw .lastSystemError("socket") }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { CLinux.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let error = SwiftletError.invalidArgument("cannot connect to \(path): \(SwiftletError.errnoString(sl_errno()))")
            close(fd)
            throw error
        }
        return fd
    }
}
