import Foundation
import XCTest

/// The control API server against hostile local clients, on the real swiftlet binary waiting
/// to be configured (no kernel): the socket is owner-only whatever the umask, and clients
/// that drip a request byte by byte neither starve a good client nor stay forever.
final class APIHardeningTests: XCTestCase {
    var directory: URL!
    var socketPath: String { directory.appendingPathComponent("api.sock").path }

    override func setUpWithError() throws {
        try TestSupport.requireKVM()   // `swiftlet run` opens /dev/kvm even before a VM exists
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-harden-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: directory)
    }

    /// `swiftlet run --api-socket PATH` through `/bin/sh -c 'umask M; exec ...'`.
    func launch(umask mask: String = "022") throws -> (process: Process, errors: URL) {
        let errors = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "umask \(mask); exec \"$0\" run --api-socket \"$1\"", TestSupport.swiftletBinary, socketPath]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: errors)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return (process, errors)
    }

    /// Until the socket accepts a connection: the file appears at bind(), a moment before
    /// listen(), and a connect in between is refused.
    func waitForSocket(seconds: Double = 10) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if let fd = connectClient() { close(fd); return }
            guard Date() < deadline else { throw TestSupport.Failure("the API socket never accepted a connection") }
            usleep(5_000)
        }
    }

    /// SIGTERM with no VM ends swiftlet at once: it exits (no crash) with status 128 + 15 and
    /// one line on stderr.
    func terminateAndCheck(_ process: Process, _ errors: URL) throws {
        XCTAssertTrue(process.isRunning, "swiftlet died early: \((try? String(contentsOf: errors, encoding: .utf8)) ?? "")")
        process.terminate()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        guard !process.isRunning else {
            kill(process.processIdentifier, SIGKILL)
            throw TestSupport.Failure("swiftlet did not exit within 10 s of SIGTERM")
        }
        let stderr = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
        XCTAssertEqual(process.terminationReason, .exit, "ended by a signal, not by exiting: \(stderr)")
        XCTAssertEqual(process.terminationStatus, 128 + SIGTERM, stderr)
        XCTAssertEqual(stderr, "swiftlet: stopped by signal \(SIGTERM)\n")
    }

    // MARK: raw clients

    /// A connected blocking Unix stream socket (nil if the connect failed).
    func connectClient() -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in socketPath.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { close(fd); return nil }
        return fd
    }

    /// `GET /` on a fresh connection: the status (0 for none) and the seconds it took.
    func get(timeout: Double) -> (status: Int, seconds: Double, text: String) {
        let start = Date()
        guard let fd = connectClient() else { return (0, 0, "connect failed: \(errno)") }
        defer { close(fd) }
        let request = Array("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            return (0, Date().timeIntervalSince(start), "send failed: \(errno)")
        }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = start.addingTimeInterval(timeout)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        let status = text.hasPrefix("HTTP/1.1 ") ? Int(text.dropFirst(9).prefix(3)) ?? 0 : 0
        return (status, Date().timeIntervalSince(start), text)
    }

    /// Whether the server has closed `fd` (end of file or a reset), without blocking.
    func isClosedByServer(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        while true {
            let n = recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
            if n == 0 { return true }
            if n < 0 { return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR }
            // An error answer (408/503) before the close: read on.
        }
    }

    // MARK: tests

    func testSocketIsOwnerOnlyFromTheStartUnderUmask000() throws {
        let (process, errors) = try launch(umask: "000")
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        // Watch the path in a tight loop while swiftlet starts: its first mode, and every
        // mode seen for a while after, must be a socket with 0600.
        let deadline = Date().addingTimeInterval(10)
        var info = stat()
        var first: mode_t?
        while first == nil && Date() < deadline {
            if lstat(socketPath, &info) == 0 { first = info.st_mode }
        }
        guard let first else { throw TestSupport.Failure("the API socket never appeared") }
        XCTAssertEqual(first & S_IFMT, S_IFSOCK, "a socket")
        XCTAssertEqual(String(first & 0o7777, radix: 8), "600", "the first mode seen")
        var seen = Set<mode_t>([first])
        let watchUntil = Date().addingTimeInterval(0.3)
        while Date() < watchUntil {
            if lstat(socketPath, &info) == 0 { seen.insert(info.st_mode) }
        }
        XCTAssertEqual(seen.map { String($0, radix: 8) }, [String(S_IFSOCK | 0o600, radix: 8)], "every mode seen")
        XCTAssertEqual(lstat(socketPath, &info), 0)
        XCTAssertEqual(String(info.st_mode & 0o7777, radix: 8), "600")
        XCTAssertEqual(info.st_uid, getuid())
        XCTAssertEqual(get(timeout: 5).status, 200, "the owner can use it")
        try terminateAndCheck(process, errors)
    }

    func testDripClientsDoNotStarveAGoodClientAndAreDropped() throws {
        let requestDeadline = 5.0      // the server's default whole-request deadline, seconds
        let (process, errors) = try launch()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        try waitForSocket()
        XCTAssertEqual(get(timeout: 5).status, 200)

        // 30 clients at once (more than the 16 slots), each dripping a request that never
        // ends: one byte now, then one byte a second.
        let drip = Array("GET / HTTP/1.1\r\nHost: localhost\r\nX-Drip: ".utf8)
        var clients: [(fd: Int32, sent: Int)] = []
        defer { for client in clients { close(client.fd) } }
        for _ in 0..<30 {
            guard let fd = connectClient() else { throw TestSupport.Failure("connect failed: \(errno)") }
            clients.append((fd, 0))
        }
        let start = Date()
        var open = Set(clients.indices)
        func dripOnce() {
            for index in open.sorted() {
                let byte = clients[index].sent < drip.count ? drip[clients[index].sent] : UInt8(ascii: "a")
                var value = byte
                if isClosedByServer(clients[index].fd) || send(clients[index].fd, &value, 1, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) != 1 {
                    open.remove(index)
                } else {
                    clients[index].sent += 1
                }
            }
        }
        var nextDrip = start
        func dripWhile(_ condition: () -> Bool) {
            while condition() {
                if Date() >= nextDrip {
                    dripOnce()
                    nextDrip = nextDrip.addingTimeInterval(1)
                }
                for index in open.sorted() where isClosedByServer(clients[index].fd) { open.remove(index) }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        dripWhile { Date().timeIntervalSince(start) < 1.5 }

        // A good client is answered at once, the drip clients notwithstanding.
        let good = get(timeout: requestDeadline + 1)
        XCTAssertEqual(good.status, 200, "GET / with 30 drip clients connected: \(good.text.prefix(200))")
        XCTAssertLessThan(good.seconds, requestDeadline + 1)

        // The drip clients go (evicted or past their deadline) although they keep dripping.
        dripWhile { !open.isEmpty && Date().timeIntervalSince(start) < requestDeadline + 5 }
        XCTAssertEqual(open.count, 0, "drip clients still connected \(Date().timeIntervalSince(start)) s after they began")
        XCTAssertGreaterThanOrEqual(clients.map(\.sent).max() ?? 0, 4, "drip clients kept sending for seconds")

        XCTAssertEqual(get(timeout: 5).status, 200, "the server still answers")
        try terminateAndCheck(process, errors)
    }
}
