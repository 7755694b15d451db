import Foundation
import XCTest
@testable import API
import SwiftletCore

/// APIServer in this process on a real Unix socket, driven by hand (pollDescriptors, poll,
/// handleEvents), with short deadlines: deferred answers, deadlines, eviction, counters.
final class APIServerTests: XCTestCase {
    var directory: URL!
    var path: String { directory.appendingPathComponent("api.sock").path }
    var clients: [Int32] = []

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-server-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        for fd in clients { close(fd) }
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: helpers

    /// Runs the server's share of a main loop for `ms` milliseconds.
    func pump(_ server: APIServer, ms: Int64) {
        let end = monotonicMilliseconds() + ms
        while true {
            let now = monotonicMilliseconds()
            guard now < end else { break }
            var fds = server.pollDescriptors()
            var timeout = end - now
            if let deadline = server.nextDeadline { timeout = max(0, min(timeout, deadline - now)) }
            _ = poll(&fds, nfds_t(fds.count), Int32(timeout))
            server.handleEvents(fds, now: monotonicMilliseconds())
        }
    }

    func connectClient() throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw NSError(domain: "connect", code: Int(errno)) }
        clients.append(fd)
        return fd
    }

    func write(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }, bytes.count)
    }

    /// What the client can read now, and whether the server has closed its end.
    func read(_ fd: Int32) -> (text: String, closed: Bool) {
        var bytes = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { bytes += buffer[0..<n]; continue }
            let closed = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)
            return (String(decoding: bytes, as: UTF8.self), closed)
        }
    }

    /// Answers every request with 200 and its path as the body; `.later` for paths in `slow`.
    final class Recorder {
        var tickets: [String: APIServer.Ticket] = [:]
        var seen: [String] = []
        var peers: [PeerCredentials] = []
    }

    func makeServer(policy: SlotPolicy = SlotPolicy(), slow: Set<String> = [], recorder: Recorder = Recorder(),
                    access: APIAccessPolicy = APIAccessPolicy(ownerUID: geteuid()), audit: AuditLog? = nil,
                    logger: Logger = Logger(level: .off)) throws -> APIServer {
        try APIServer(path: path, policy: policy, access: access, logger: logger, audit: audit) { request, ticket in
            recorder.seen.append(request.path)
            recorder.peers.append(ticket.peer)
            if slow.contains(request.path) {
                recorder.tickets[request.path] = ticket
                return .later
            }
            return .now(APIServerTests.answer(request.path))
        }
    }

    static func answer(_ text: String) -> HTTPResponse { HTTPResponse(status: 200, body: Array(text.utf8)) }

    func bodies(_ text: String) -> [String] {
        text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.components(separatedBy: "\r\n\r\n").last ?? "" }
    }

    // MARK: the socket

    func testSocketIsOwnerOnlyWhateverTheUmaskAndTheUmaskIsRestored() throws {
        for mask: mode_t in [0o000, 0o022, 0o077] {
            let saved = umask(mask)
            defer { umask(saved) }
            let server = try makeServer()
            XCTAssertEqual(umask(mask), mask, "umask \(String(mask, radix: 8)) restored")
            var info = stat()
            XCTAssertEqual(lstat(path, &info), 0)
            XCTAssertEqual(info.st_mode & S_IFMT, S_IFSOCK)
            XCTAssertEqual(String(info.st_mode & 0o7777, radix: 8), "600", "under umask \(String(mask, radix: 8))")
            _ = server
        }
    }

    // MARK: deferred answers

    func testDeferredAnswerHoldsPipelinedRequestsAndKeepsOrder() throws {
        let recorder = Recorder()
        let server = try makeServer(slow: ["/slow"], recorder: recorder)
        let client = try connectClient()
        write(client, "GET /slow HTTP/1.1\r\n\r\nGET /fast HTTP/1.1\r\n\r\nGET /last HTTP/1.1\r\nConnection: close\r\n\r\n")
        pump(server, ms: 100)
        XCTAssertEqual(recorder.seen, ["/slow"], "pipelined requests wait for the deferred answer")
        XCTAssertEqual(read(client).text, "", "nothing answered yet")
        let ticket = try XCTUnwrap(recorder.tickets["/slow"])
        XCTAssertTrue(server.isAwaiting(ticket))

        XCTAssertTrue(server.respond(ticket, APIServerTests.answer("slow")))
        XCTAssertFalse(server.isAwaiting(ticket))
        XCTAssertEqual(recorder.seen, ["/slow"], "respond does not call the handler")
        XCTAssertEqual(server.nextDeadline.map { $0 <= monotonicMilliseconds() }, true, "the next round comes at once")
        pump(server, ms: 50)
        XCTAssertEqual(recorder.seen, ["/slow", "/fast", "/last"])
        let reply = read(client)
        XCTAssertEqual(bodies(reply.text), ["slow", "/fast", "/last"], reply.text)
        XCTAssertTrue(reply.closed, "Connection: close honoured after the deferred answer")
        XCTAssertFalse(server.respond(ticket, APIServerTests.answer("again")), "a ticket is answered once")
        XCTAssertEqual(server.lateRepliesDiscarded, 1)
    }

    func testLateAnswerToAClientThatWentAwayIsDiscarded() throws {
        let recorder = Recorder()
        let server = try makeServer(slow: ["/slow"], recorder: recorder)
        let client = try connectClient()
        write(client, "GET /slow HTTP/1.1\r\n\r\n")
        pump(server, ms: 50)
        let ticket = try XCTUnwrap(recorder.tickets["/slow"])
        close(client)
        clients.removeAll { $0 == client }
        pump(server, ms: 50)
        XCTAssertFalse(server.isAwaiting(ticket))
        XCTAssertEqual(server.openConnections, 0)
        XCTAssertFalse(server.respond(ticket, APIServerTests.answer("late")))
        XCTAssertEqual(server.lateRepliesDiscarded, 1)
    }

    func testHalfClosedClientStillGetsItsDeferredAnswer() throws {
        let recorder = Recorder()
        let server = try makeServer(slow: ["/slow"], recorder: recorder)
        let client = try connectClient()
        write(client, "GET /slow HTTP/1.1\r\nConnection: close\r\n\r\n")
        shutdown(client, Int32(SHUT_WR))
        pump(server, ms: 50)
        XCTAssertTrue(server.respond(try XCTUnwrap(recorder.tickets["/slow"]), APIServerTests.answer("slow")))
        pump(server, ms: 50)
        let reply = read(client)
        XCTAssertEqual(bodies(reply.text), ["slow"])
        XCTAssertTrue(reply.closed)
    }

    func testRespondBeforeTheHandlerReturns() throws {
        final class Box { weak var server: APIServer? }
        let box = Box()
        let server = try APIServer(path: path) { _, ticket in
            XCTAssertEqual(box.server?.respond(ticket, APIServerTests.answer("early")), true)
            XCTAssertEqual(box.server?.isAwaiting(ticket), false, "answered")
            return .later
        }
        box.server = server
        let client = try connectClient()
        write(client, "GET / HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
        pump(server, ms: 50)
        XCTAssertEqual(bodies(read(client).text), ["early", "early"])
        XCTAssertEqual(server.lateRepliesDiscarded, 0)
    }

    func testWaitingForOurOwnAnswerHasNoDeadlineAndIsNotEvicted() throws {
        let recorder = Recorder()
        let server = try makeServer(policy: SlotPolicy(maxConnections: 1, requestDeadlineMs: 200), slow: ["/slow"], recorder: recorder)
        let client = try connectClient()
        write(client, "PUT /slow HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        pump(server, ms: 500)
        XCTAssertEqual(server.timedOut, 0)
        let newcomer = try connectClient()
        pump(server, ms: 50)
        XCTAssertEqual(server.refused, 1, "the only slot is being answered: the newcomer is refused")
        XCTAssertEqual(server.evicted, 0)
        let refusal = read(newcomer)
        XCTAssertTrue(refusal.text.hasPrefix("HTTP/1.1 503 "), refusal.text)
        XCTAssertTrue(refusal.closed)
        XCTAssertTrue(server.respond(try XCTUnwrap(recorder.tickets["/slow"]), APIServerTests.answer("done")))
        pump(server, ms: 50)
        XCTAssertEqual(bodies(read(client).text), ["done"])
    }

    // MARK: deadlines, eviction, counters

    func testWholeRequestDeadlineDropsADripClientAndAuditsIt() throws {
        let audit = try AuditPipe()
        let server = try makeServer(policy: SlotPolicy(requestDeadlineMs: 400, idleTimeoutMs: 5_000), audit: audit.log)
        let idle = try connectClient()
        let dripper = try connectClient()
        let request = Array("GET / HTTP/1.1\r\nX-Drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".utf8)
        let start = monotonicMilliseconds()
        var sent = 0
        var closed = false
        while !closed && monotonicMilliseconds() - start < 2_000 {
            var byte = request[sent % request.count]
            if send(dripper, &byte, 1, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) == 1 { sent += 1 }
            pump(server, ms: 50)
            let state = read(dripper)
            if state.closed {
                closed = true
                XCTAssertTrue(state.text.hasPrefix("HTTP/1.1 408 Request Timeout"), state.text)
            }
        }
        let elapsed = monotonicMilliseconds() - start
        XCTAssertTrue(closed, "a client dripping a byte every 50 ms is dropped")
        XCTAssertGreaterThanOrEqual(elapsed, 400)
        XCTAssertLessThan(elapsed, 1_000)
        XCTAssertGreaterThan(sent, 5)
        XCTAssertEqual(server.timedOut, 1)
        XCTAssertFalse(read(idle).closed, "an idle connection keeps its longer timeout")
        write(idle, "GET /still HTTP/1.1\r\n\r\n")
        pump(server, ms: 50)
        XCTAssertEqual(bodies(read(idle).text), ["/still"])
        XCTAssertEqual(audit.lines().map { $0.contains(auditPrefix("api_rejected", status: "408")) }, [true])
    }

    func testIdleTimeoutAndDeadlineRestartsPerRequest() throws {
        let server = try makeServer(policy: SlotPolicy(requestDeadlineMs: 300, idleTimeoutMs: 600))
        let client = try connectClient()
        // Requests in halves 200 ms apart: each within its own deadline, though the
        // connection lives longer than one deadline.
        for index in 0..<3 {
            write(client, "GET /\(index) HTTP/1.1\r\n")
            pump(server, ms: 200)
            write(client, "\r\n")
            pump(server, ms: 20)
        }
        XCTAssertEqual(bodies(read(client).text), ["/0", "/1", "/2"])
        XCTAssertEqual(server.timedOut, 0)
        pump(server, ms: 700)
        XCTAssertTrue(read(client).closed, "closed after 600 ms idle")
        XCTAssertEqual(server.idleClosed, 1)
        XCTAssertEqual(server.timedOut, 0)
    }

    func testNewcomerEvictsTheConnectionStalledLongest() throws {
        let server = try makeServer(policy: SlotPolicy(maxConnections: 3))
        let first = try connectClient()
        write(first, "GET / HT")
        pump(server, ms: 30)
        let second = try connectClient()
        write(second, "GET / HT")
        pump(server, ms: 30)
        let third = try connectClient()
        write(third, "GET /k HTTP/1.1\r\n\r\n")
        pump(server, ms: 30)
        XCTAssertEqual(server.openConnections, 3)
        let newcomer = try connectClient()
        write(newcomer, "GET /new HTTP/1.1\r\n\r\n")
        pump(server, ms: 50)
        XCTAssertEqual(bodies(read(newcomer).text), ["/new"], "the newcomer is served")
        let evicted = read(first)
        XCTAssertTrue(evicted.closed, "the oldest partial request made room")
        XCTAssertTrue(evicted.text.hasPrefix("HTTP/1.1 503 "), evicted.text)
        XCTAssertFalse(read(second).closed)
        XCTAssertEqual(bodies(read(third).text), ["/k"])
        XCTAssertFalse(read(third).closed)
        XCTAssertEqual(server.evicted, 1)
        XCTAssertEqual(server.openConnections, 3)

        // The next newcomer: `second` began its request before `third` was answered (and
        // became idle), so `second` goes.
        _ = try connectClient()
        pump(server, ms: 30)
        XCTAssertTrue(read(second).closed)
        XCTAssertFalse(read(third).closed)
        XCTAssertEqual(server.evicted, 2)
        XCTAssertEqual(server.refused, 0)
    }

    /// An audit trail written into a pipe, and a way to read its lines back.
    final class AuditPipe {
        let log: AuditLog
        private var fds: [Int32] = [0, 0]

        init() throws {
            XCTAssertEqual(pipe(&fds), 0)
            log = try AuditLog(fd: fds[1], closesDescriptor: false)
        }
        deinit { close(fds[0]); close(fds[1]) }

        /// Every line written so far (the writer is finished first).
        func lines() -> [String] {
            XCTAssertTrue(log.waitUntilWritten(milliseconds: 2000))
            _ = log.finish(milliseconds: 1000)
            var bytes = [UInt8](repeating: 0, count: 8192)
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fds[0], $0.baseAddress, $0.count) }
            return String(decoding: bytes[0..<max(n, 0)], as: UTF8.self).split(separator: "\n").map(String.init)
        }
    }

    /// The start of a line for an `event` from this process, up to its status.
    func auditPrefix(_ event: String, status: String) -> String {
        #""event":"\#(event)","peer":{"pid":\#(getpid()),"uid":\#(geteuid()),"gid":\#(getegid())},"status":\#(status),"#
    }

    func testMalformedRequestsAreCountedAndAudited() throws {
        let audit = try AuditPipe()
        let server = try makeServer(audit: audit.log)
        var statuses: [String] = []
        for junk in ["GET\r\n\r\n", "\u{1}\u{2}\r\n\r\n", "PUT / HTTP/1.1\r\n\r\n"] {
            let client = try connectClient()
            write(client, junk)
            pump(server, ms: 30)
            let reply = read(client)
            XCTAssertTrue(reply.text.hasPrefix("HTTP/1.1 4"), reply.text)
            XCTAssertTrue(reply.closed)
            statuses.append(String(reply.text.dropFirst("HTTP/1.1 ".count).prefix(3)))
        }
        XCTAssertEqual(server.malformed, 3)
        XCTAssertEqual(server.evicted + server.timedOut + server.refused + server.idleClosed, 0)
        // Each in the audit trail: who sent it, the status it got, and why.
        let lines = audit.lines()
        XCTAssertEqual(lines.count, 3, "\(lines)")
        for (line, status) in zip(lines, statuses) {
            XCTAssertTrue(line.contains(auditPrefix("api_rejected", status: status) + #""reason":""#), line)
        }
    }

    /// Each request is logged as it arrives and again with its answer, a deferred one too;
    /// a request that cannot be parsed is logged with the error it got.
    func testRequestsAndAnswersAreLogged() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]) }
        let logger = Logger(level: .debug, fd: fds[1])
        let recorder = Recorder()
        let server = try makeServer(slow: ["/slow"], recorder: recorder, logger: logger)
        let client = try connectClient()
        write(client, "GET /fast HTTP/1.1\r\n\r\nPUT /slow HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        pump(server, ms: 30)
        server.respond(try XCTUnwrap(recorder.tickets["/slow"]), APIError(status: 500, message: "no luck").response())
        let junk = try connectClient()
        write(junk, "GET\r\n\r\n")
        pump(server, ms: 30)
        XCTAssertTrue(logger.waitUntilWritten(milliseconds: 5000))
        logger.finish(milliseconds: 1000)
        close(fds[1])
        var bytes = [UInt8](repeating: 0, count: 65536)
        let n = bytes.withUnsafeMutableBytes { Glibc.read(fds[0], $0.baseAddress, $0.count) }
        let messages = String(decoding: bytes[0..<max(n, 0)], as: UTF8.self).split(separator: "\n").map {
            String($0[$0.range(of: "] ")!.upperBound...])
        }
        XCTAssertEqual(messages.count, 5, "\(messages)")
        XCTAssertEqual(messages[0], #"The API server received a Get request on "/fast"."#)
        XCTAssertTrue(messages[1].hasPrefix(#"The API server answered the Get request on "/fast" with 200 OK in "#), messages[1])
        XCTAssertEqual(messages[2], #"The API server received a Put request on "/slow" with body "{}"."#)
        XCTAssertEqual(messages[3], "Received Error. Status code: 500 Internal Server Error. Message: no luck")
        XCTAssertTrue(messages[4].hasPrefix("Received Error. Status code: 400 Bad Request. Message: "), messages[4])
    }

    // MARK: access control

    /// This process as a peer sees it.
    var me: PeerCredentials { PeerCredentials(pid: getpid(), uid: geteuid(), gid: getegid()) }

    /// A policy whose owner is someone else: this process is a stranger to it.
    func strangerPolicy(_ rules: [APIPeerRule] = []) -> APIAccessPolicy {
        APIAccessPolicy(ownerUID: geteuid() == 4242 ? 4243 : 4242, rules: rules)
    }

    func testAPeerThePolicyDoesNotAdmitGets403IsClosedAndAudited() throws {
        let audit = try AuditPipe()
        let recorder = Recorder()
        let server = try makeServer(recorder: recorder, access: strangerPolicy([.uid(geteuid() &+ 1), .gid(getegid() &+ 1)]), audit: audit.log)
        let client = try connectClient()
        write(client, "GET / HTTP/1.1\r\n\r\n")   // sent before the server looks: it is read and dropped
        pump(server, ms: 50)
        let reply = read(client)
        XCTAssertTrue(reply.text.hasPrefix("HTTP/1.1 403 Forbidden\r\n"), reply.text)
        XCTAssertTrue(reply.text.hasSuffix(#"{"fault_message":"access denied: uid \#(geteuid()) (gid \#(getegid())) may not use this API (the VMM's own user and --api-allow's may)"}"#), reply.text)
        XCTAssertTrue(reply.closed, "the server's end is closed after the 403")
        XCTAssertEqual(recorder.seen, [], "the handler never saw it")
        XCTAssertEqual(server.forbidden, 1)
        XCTAssertEqual(server.openConnections, 0)
        let lines = audit.lines()
        XCTAssertEqual(lines.count, 1, "\(lines)")
        XCTAssertTrue(lines.first?.contains(auditPrefix("api_refused", status: "403")) == true, "\(lines)")
        // The refused client is closed at its end (or after the linger time) either way.
        close(client)
        clients.removeAll { $0 == client }
        pump(server, ms: 30)
        XCTAssertNil(server.nextDeadline, "nothing lingers once the client has gone")
    }

    func testListedUsersAndGroupsAreServedAndTicketsNameThePeer() throws {
        for rule in [APIPeerRule.uid(geteuid()), .gid(getegid())] {
            let recorder = Recorder()
            let saved = umask(0o022)
            let server = try makeServer(recorder: recorder, access: strangerPolicy([rule]))
            umask(saved)
            var info = stat()
            XCTAssertEqual(lstat(path, &info), 0)
            XCTAssertEqual(String(info.st_mode & 0o7777, radix: 8), "666", "others can connect; the server checks them")
            let client = try connectClient()
            write(client, "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n")
            pump(server, ms: 50)
            XCTAssertEqual(bodies(read(client).text), ["/x"], "\(rule)")
            XCTAssertEqual(recorder.peers, [me], "\(rule)")
            XCTAssertEqual(server.forbidden, 0)
            server.shutDown()
        }
        // The default: the VMM's own user, with an owner-only socket.
        let recorder = Recorder()
        let server = try makeServer(recorder: recorder)
        let client = try connectClient()
        write(client, "GET /own HTTP/1.1\r\n\r\n")
        pump(server, ms: 50)
        XCTAssertEqual(bodies(read(client).text), ["/own"])
        XCTAssertEqual(recorder.peers, [me])
    }
}
