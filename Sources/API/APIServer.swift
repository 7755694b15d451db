import CLinux
import SwiftletCore

/// A handler's answer to one request.
public enum APIReply {
    /// Answer with this response now.
    case now(HTTPResponse)
    /// Answer later with `APIServer.respond(ticket, response)` (the ticket the handler was given).
    case later
}

/// The control API's HTTP/1.1 server on a Unix socket, polled by the main loop (no threads).
///
/// Who may connect: the socket is owner-only (0600) from the moment it exists, unless the
/// access policy admits other users or groups (`--api-allow`), when it is 0666; either
/// way each accepted connection's SO_PEERCRED is checked against the policy (the VMM's
/// own user, and those listed), and a peer it does not admit is answered 403 at once, and
/// what it sends is discarded unparsed until it closes (or for a second; see `linger`):
/// counted in `forbidden`, logged, and audited when there is an audit trail. A ticket
/// carries its request's peer.
///
/// Against hostile local clients:
/// requests must stay within the parser's limits and arrive whole within the policy's
/// request deadline (default 5 s from the first byte, head and body together, so a client
/// dripping a byte at a time is dropped with 408); idle keep-alive connections may stay longer
/// (default 300 s); at most `policy.maxConnections` (default 16) are open, and when all are
/// taken a newcomer evicts the connection stalled longest on its client (see `SlotPolicy`).
/// What it drops is counted (`evicted`, `timedOut`, `idleClosed`, `refused`, `malformed`).
/// Every request and every answer is logged (see APIRequestLog for the lines and levels).
///
/// Deferred answers. The handler runs on the main thread for each complete request, in
/// order per connection, and is given a `Ticket` naming that request. It returns
/// `.now(response)` to answer at once (as the server always did), or `.later` to keep the
/// ticket and answer afterwards with `server.respond(ticket, response)`, e.g.:
///
///     // handler: InstanceStart builds the VM on a worker thread
///     case .start:
///         pendingStart = ticket                     // kept by the controller
///         startBuildThread()                        // signals an eventfd when done
///         return .later
///     // later, on the main thread (the PollSource that polls that eventfd):
///     server.respond(pendingStart!, built ? .noContent() : error.response())
///
/// - `respond` is for the main thread only (like the handler); call it once per ticket,
///   whenever the answer is ready, even before the handler has returned `.later`. A
///   handler that calls `respond` and then returns `.now` is answered with the `.now` one.
/// - While a request awaits its answer, its connection reads nothing more: pipelined
///   requests wait (in the parser's buffer or the socket) and answers stay in order. It has no deadline and cannot be
///   evicted (the time is ours, not the client's); the whole-request clock of a pipelined
///   partial request starts again when the answer is given.
/// - `respond` queues the answer, sends what the socket takes and returns: it never calls
///   the handler. The connection's pipelined requests are handled in the server's next
///   `handleEvents`, which `nextDeadline` makes immediate.
/// - If the client went away meanwhile (or the ticket was answered already, or is unknown),
///   `respond` discards the answer, counts it in `lateRepliesDiscarded` and returns false.
///   `isAwaiting(ticket)` tells whether an answer is still wanted (e.g. to skip the work).
///   A client that only half-closes (shutdown(SHUT_WR) after its request) still gets it.
public final class APIServer: PollSource {
    public typealias Handler = (HTTPRequest, Ticket) -> APIReply

    /// Names one request handed to the handler; unique for the server's life.
    public struct Ticket: Hashable, Sendable, CustomStringConvertible {
        let connection: UInt64
        let request: UInt64
        /// Who sent the request (the connection's peer, as the kernel saw it at connect).
        public let peer: PeerCredentials
        public var description: String { "request \(request) on connection \(connection)" }
    }

    public let path: String
    public let access: APIAccessPolicy
    private var isShutDown = false
    public let policy: SlotPolicy
    /// The largest request body (413 beyond).
    public let maxBodyBytes: Int

    // MARK: counters (for metrics)

    /// Connections closed to make room for a newcomer.
    public private(set) var evicted = 0
    /// Connections closed because a request did not arrive whole, or an answer was not read,
    /// within `policy.requestDeadlineMs`.
    public private(set) var timedOut = 0
    /// Idle connections closed after `policy.idleTimeoutMs`.
    public private(set) var idleClosed = 0
    /// Newcomers closed because every slot was taken by a connection being answered.
    public private(set) var refused = 0
    /// Requests the parser rejected (a 4xx, then the connection is closed).
    public private(set) var malformed = 0
    /// Connections closed at once because the access policy did not admit their peer (or
    /// its credentials could not be read).
    public private(set) var forbidden = 0
    /// Late answers for a connection that had gone away (or an unknown or answered ticket).
    public private(set) var lateRepliesDiscarded = 0
    /// Connections open now.
    public var openConnections: Int { connections.reduce(0) { $0 + ($1.closed ? 0 : 1) } }

    private let listenFD: Int32
    private let handler: Handler
    private let logger: Logger
    private let audit: AuditLog?
    private var connections: [Connection] = []
    /// `connections` as `pollDescriptors` listed them: `fds[1...]` of `handleEvents`.
    private var polled: [Connection] = []
    private var lastConnection: UInt64 = 0
    private var lastRequest: UInt64 = 0
    /// When a deferred answer left pipelined requests to resume (the next deadline, at once).
    private var resumeAt: Int64?
    /// Refused clients being drained before they are closed (see `linger`), and when each
    /// is closed regardless.
    private var lingering: [(fd: Int32, until: Int64)] = []

    private struct Awaiting {
        let ticket: Ticket
        let keepAlive: Bool
        /// For the line that logs the answer.
        let method: String
        let path: String
        let receivedAt: UInt64
    }

    private final class Connection {
        let fd: Int32
        let serial: UInt64
        let peer: PeerCredentials
        var parser: HTTPRequestParser
        var outgoing: [UInt8] = []
        var closeWhenFlushed = false
        var closed = false
        /// Since when the connection has been idle (accept, or its last answer).
        var idleSince: Int64
        /// The first byte of the partial request being received, if any.
        var requestStart: Int64?
        /// When `outgoing` last became non-empty.
        var sendingSince: Int64 = 0
        /// The request the handler has and we owe an answer to.
        var awaiting: Awaiting?
        var inHandler = false
        /// An answer given through `respond` while the handler still ran.
        var earlyResponse: HTTPResponse?
        /// Its deferred answer came: parse what it pipelined meanwhile.
        var resume = false
        init(fd: Int32, serial: UInt64, peer: PeerCredentials, now: Int64, maxBodyBytes: Int) {
            self.fd = fd
            self.serial = serial
            self.peer = peer
            parser = HTTPRequestParser(maxBodyBytes: maxBodyBytes)
            idleSince = now
        }
    }

    /// Listens on `path` (see `UnixSocket.listen`). Create it on the main thread before
    /// other threads start: the socket is created under a temporarily strict umask.
    /// Requests and answers are logged to `logger`; refused peers, requests the parser
    /// rejects and requests that never arrive whole also to `audit` (the answers the
    /// handler gives are audited by its owner, which knows what they changed).
    /// `access` defaults to the VMM's own effective user only.
    public init(path: String, policy: SlotPolicy = SlotPolicy(), maxBodyBytes: Int = HTTPRequestParser.defaultMaxBodyBytes,
                access: APIAccessPolicy = APIAccessPolicy(ownerUID: geteuid()), logger: Logger = .shared,
                audit: AuditLog? = nil, handler: @escaping Handler) throws(SwiftletError) {
        self.path = path
        self.policy = policy
        self.maxBodyBytes = maxBodyBytes
        self.access = access
        self.logger = logger
        self.audit = audit
        self.handler = handler
        listenFD = try UnixSocket.listen(path: path, worldConnectable: access.socketIsWorldConnectable)
    }

    deinit { shutDown() }

    /// Closes every connection and the listening socket and removes the socket file. The
    /// owner calls this when the VMM ends (the handler's references keep the server alive
    /// until the process exits, so deinit alone would leave the file behind).
    public func shutDown() {
        guard !isShutDown else { return }
        isShutDown = true
        for connection in connections where !connection.closed {
            connection.closed = true
            close(connection.fd)
        }
        connections.removeAll()
        for entry in lingering { close(entry.fd) }
        lingering.removeAll()
        close(listenFD)
        unlink(path)
    }

    // MARK: deferred answers

    /// Answers the request `ticket` names (the handler returned `.later` for it, or is about
    /// to). Main thread only. False, and the answer discarded, if the client went away, the
    /// ticket was answered already, or is unknown.
    @discardableResult
    public func respond(_ ticket: Ticket, _ response: HTTPResponse) -> Bool {
        guard let connection = awaitingConnection(ticket) else {
            lateRepliesDiscarded += 1
            return false
        }
        if connection.inHandler {
            connection.earlyResponse = response
            return true
        }
        let now = monotonicMilliseconds()
        complete(connection, response, now: now)
        flush(connection, now: now)
        if !connection.closed && !connection.closeWhenFlushed {
            connection.resume = true
            resumeAt = now
        }
        return true
    }

    /// Whether the request `ticket` names still waits for its answer (its client is there).
    public func isAwaiting(_ ticket: Ticket) -> Bool { awaitingConnection(ticket) != nil }

    private func awaitingConnection(_ ticket: Ticket) -> Connection? {
        for connection in connections where connection.serial == ticket.connection && !connection.closed {
            guard let awaiting = connection.awaiting, awaiting.ticket == ticket,
                  connection.earlyResponse == nil else { return nil }
            return connection
        }
        return nil
    }

    // MARK: PollSource

    public func pollDescriptors() -> [pollfd] {
        connections.removeAll { $0.closed }
        polled = connections
        var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)]
        for connection in connections {
            // Read only when nothing is owed either way: unread answers and deferred ones
            // hold the client's further requests in its socket (POLLHUP still reports a
            // client that goes away).
            let events = !connection.outgoing.isEmpty ? Int32(POLLOUT) : (connection.awaiting != nil ? 0 : Int32(POLLIN))
            fds.append(pollfd(fd: connection.fd, events: Int16(events), revents: 0))
        }
        for entry in lingering { fds.append(pollfd(fd: entry.fd, events: Int16(POLLIN), revents: 0)) }
        return fds
    }

    public func handleEvents(_ fds: [pollfd], now: Int64) {
        for (index, connection) in polled.enumerated() where index + 1 < fds.count && !connection.closed {
            let revents = Int32(fds[index + 1].revents)
            if revents & Int32(POLLOUT) != 0 { flush(connection, now: now) }
            if revents & Int32(POLLIN) != 0 { receive(connection, now: now) }
            else if revents & Int32(POLLHUP | POLLERR | POLLNVAL) != 0 { drop(connection) }
        }
        // The lingering refused clients follow the connections in `fds`.
        let lingeringBase = 1 + polled.count
        polled = []
        var stillLingering: [(fd: Int32, until: Int64)] = []
        for (index, entry) in lingering.enumerated() {
            let slot = lingeringBase + index
            let revents = slot < fds.count && fds[slot].fd == entry.fd ? Int32(fds[slot].revents) : 0
            if revents != 0 && !drain(entry.fd) { continue }
            if now >= entry.until {
                close(entry.fd)
                continue
            }
            stillLingering.append(entry)
        }
        lingering = stillLingering
        if !fds.isEmpty, Int32(fds[0].revents) & Int32(POLLIN) != 0 { acceptClients(now: now) }
        if resumeAt != nil {
            resumeAt = nil
            for connection in connections where connection.resume {
                connection.resume = false
                guard !connection.closed else { continue }
                process(connection, now: now)
                flush(connection, now: now)
            }
        }
        for connection in connections where !connection.closed {
            let phase = phase(of: connection)
            guard policy.isExpired(phase, now: now) else { continue }
            switch phase {
            case .idle: idleClosed += 1
            case .receiving:
                timedOut += 1
                let reason = "the request did not arrive whole within \(policy.requestDeadlineMs) ms"
                tell(connection.fd, 408, reason)
                audit?.record(.apiRejected(connection.peer, status: 408, reason: reason))
            case .sending: timedOut += 1
            case .answering: continue
            }
            drop(connection)
        }
        connections.removeAll { $0.closed }
    }

    public var nextDeadline: Int64? {
        var next = resumeAt
        for entry in lingering where next.map({ entry.until < $0 }) ?? true { next = entry.until }
        for connection in connections where !connection.closed {
            guard let deadline = policy.deadline(phase(of: connection)) else { continue }
            if let earlier = next, earlier <= deadline { continue }
            next = deadline
        }
        return next
    }

    // MARK: connections

    private func phase(of connection: Connection) -> ConnectionPhase {
        if connection.awaiting != nil { return .answering }
        if !connection.outgoing.isEmpty { return .sending(since: connection.sendingSince) }
        if let start = connection.requestStart { return .receiving(since: start) }
        return .idle(since: connection.idleSince)
    }

    private func acceptClients(now: Int64) {
        while true {
            let fd = sl_accept_nonblocking(listenFD)
            if fd < 0 { return }
            // Before the slot policy: a peer that may not talk to us must not evict one that may.
            guard let peer = admittedPeer(fd) else { continue }
            let open = connections.filter { !$0.closed }
            switch policy.admit(open.map { phase(of: $0) }) {
            case .accept:
                break
            case .evict(let index):
                evicted += 1
                if case .receiving = phase(of: open[index]) {
                    tell(open[index].fd, 503, "too many connections: this stalled request made room for another client")
                }
                drop(open[index])
            case .refuse:
                refused += 1
                tell(fd, 503, "too many connections")
                close(fd)
                continue
            }
            lastConnection += 1
            connections.append(Connection(fd: fd, serial: lastConnection, peer: peer, now: now, maxBodyBytes: maxBodyBytes))
        }
    }

    /// The peer of a new connection if the access policy admits it; otherwise it is told
    /// 403, closed, counted, logged and audited, and nil.
    private func admittedPeer(_ fd: Int32) -> PeerCredentials? {
        var pid: Int32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
        let rc = sl_peer_credentials(fd, &pid, &uid, &gid)
        let peer = PeerCredentials(pid: pid, uid: uid, gid: gid)
        if rc == 0 && access.admits(peer) { return peer }
        forbidden += 1
        let reason = rc == 0
            ? "access denied: uid \(uid) (gid \(gid)) may not use this API (the VMM's own user and --api-allow's may)"
            : "access denied: the client's credentials could not be read (\(SwiftletError.errnoString(-rc)))"
        logger.warn("The API server refused a client (\(peer)): \(reason)")
        audit?.record(.apiRefused(peer, status: APIServer.forbiddenStatus, reason: reason))
        tell(fd, APIServer.forbiddenStatus, reason)
        linger(fd)
        return nil
    }

    /// A refused client that already sent its request (or sends it as we answer) would see
    /// its write fail or its read reset if we closed at once with its bytes unread: the
    /// answer is followed by our end of the stream (shutdown), and what it sends is read and
    /// discarded until it closes, for at most `refusedLingerMs`. At most
    /// `maxLingering` such connections wait; beyond that they are closed at once.
    private func linger(_ fd: Int32) {
        guard lingering.count < APIServer.maxLingering else {
            close(fd)
            return
        }
        _ = shutdown(fd, Int32(SHUT_WR))
        lingering.append((fd, monotonicMilliseconds() + APIServer.refusedLingerMs))
    }

    public static let refusedLingerMs: Int64 = 1000
    public static let maxLingering = 16

    /// Reads and discards what a lingering refused client sent; closes it at its end (or an
    /// error). False when closed.
    private func drain(_ fd: Int32) -> Bool {
        var scratch = [UInt8](repeating: 0, count: 4096)
        let n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n > 0 || (n < 0 && (sl_errno() == EAGAIN || sl_errno() == EINTR)) { return true }
        close(fd)
        return false
    }

    /// The answer to a peer the access policy refuses.
    public static let forbiddenStatus = 403

    private func receive(_ connection: Connection, now: Int64) {
        guard !connection.closed, !connection.closeWhenFlushed, connection.awaiting == nil else { return }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, 0) }
        if n == 0 || (n < 0 && sl_errno() != EAGAIN && sl_errno() != EINTR) {
            drop(connection)
            return
        }
        guard n > 0 else { return }
        buffer.withUnsafeBytes { connection.parser.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        process(connection, now: now)
        flush(connection, now: now)
    }

    /// Answers the buffered requests in order until one is deferred, the input runs out or
    /// is malformed, or the connection is to close.
    private func process(_ connection: Connection, now: Int64) {
        parse: while connection.awaiting == nil && !connection.closeWhenFlushed && !connection.closed {
            switch connection.parser.next() {
            case .needMore:
                break parse
            case .sendContinue:
                queue(connection, HTTPResponse.continueBytes, now: now)
            case .request(let request):
                connection.requestStart = nil
                lastRequest += 1
                let ticket = Ticket(connection: connection.serial, request: lastRequest, peer: connection.peer)
                logger.info(APIRequestLog.received(request))
                connection.awaiting = Awaiting(ticket: ticket, keepAlive: request.keepAlive, method: request.method,
                                               path: request.path, receivedAt: monotonicNanoseconds())
                connection.inHandler = true
                let reply = handler(request, ticket)
                connection.inHandler = false
                switch reply {
                case .now(let response):
                    complete(connection, response, now: now)
                case .later:
                    if let early = connection.earlyResponse { complete(connection, early, now: now) }
                }
            case .error(let error):
                malformed += 1
                let response = error.response()
                logger.log(APIRequestLog.level(forStatus: response.status), APIRequestLog.refused(response))
                audit?.record(.apiRejected(connection.peer, status: error.status, reason: error.message))
                queue(connection, response.serialize(keepAlive: false), now: now)
                connection.closeWhenFlushed = true
            }
        }
        // The whole-request clock runs from a partial request's first byte; time spent
        // waiting for our own answer does not count (it restarts when the answer is given).
        if connection.awaiting == nil {
            if connection.parser.isIdle { connection.requestStart = nil }
            else if connection.requestStart == nil { connection.requestStart = now }
        }
    }

    /// Queues the answer to the awaited request.
    private func complete(_ connection: Connection, _ response: HTTPResponse, now: Int64) {
        guard let awaiting = connection.awaiting else { return }
        connection.awaiting = nil
        connection.earlyResponse = nil
        logger.log(APIRequestLog.level(forStatus: response.status),
                   APIRequestLog.answered(method: awaiting.method, path: awaiting.path, response,
                                          microseconds: (monotonicNanoseconds() &- awaiting.receivedAt) / 1000))
        queue(connection, response.serialize(keepAlive: awaiting.keepAlive), now: now)
        if !awaiting.keepAlive { connection.closeWhenFlushed = true }
        connection.idleSince = now
    }

    private func queue(_ connection: Connection, _ bytes: [UInt8], now: Int64) {
        if connection.outgoing.isEmpty { connection.sendingSince = now }
        connection.outgoing += bytes
    }

    private func flush(_ connection: Connection, now: Int64) {
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

    /// A best-effort error answer to a client about to be closed (never blocks).
    private func tell(_ fd: Int32, _ status: Int, _ message: String) {
        let response = APIError(status: status, message: message).response()
        logger.log(APIRequestLog.level(forStatus: status), APIRequestLog.refused(response))
        let bytes = response.serialize(keepAlive: false)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
    }

    private func drop(_ connection: Connection) {
        guard !connection.closed else { return }
        connection.closed = true
        connection.resume = false
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

    /// The umask for bind(): owner-only (0600), or with `worldConnectable` 0666 (connecting
    /// to a Unix socket needs write permission on its file; the server checks each peer).
    static func bindMask(worldConnectable: Bool) -> mode_t { worldConnectable ? 0o111 : 0o177 }

    /// Listens on `path`, owner-only (mode 0600) from the start, or connectable by all
    /// (0666) with `worldConnectable`. A leftover socket nobody listens on is replaced;
    /// anything else at the path is an error.
    static func listen(path: String, worldConnectable: Bool = false) throws(SwiftletError) -> Int32 {
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
        // Owner-only (0600) from the first moment the path exists, whatever the caller's
        // umask: bind() creates the socket file with mode 0777 & ~umask in the same call that
        // creates the path, so it runs under umask 0177 and the caller's umask is restored
        // at once. Chosen over binding a temporary name, chmod, then rename: that temporary
        // name would accept connections with the wide mode in between (unless hidden in a
        // private directory, which lengthens sun_path past its 108-byte limit sooner and can
        // be left behind by a crash). The cost is that umask is process-wide: a file another
        // thread created during this bind() would get the stricter mask (never a wider one);
        // swiftlet creates its server before any other thread starts.
        let callerMask = umask(bindMask(worldConnectable: worldConnectable))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(callerMask)
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
