import Foundation
import XCTest
@testable import SwiftletCore

/// Reads a descriptor until end of file, as text.
private func readText(_ fd: Int32) -> String {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += buffer[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

private func makePipe() -> (read: Int32, write: Int32) {
    var fds: [Int32] = [0, 0]
    precondition(pipe(&fds) == 0)
    return (fds[0], fds[1])
}

private func appendLine(_ writer: LineWriter, _ text: String) {
    _ = Array(text.utf8).withUnsafeBytes { writer.append($0) }
}

/// Runs `body` on a Swiftlet thread named `name` and waits for it.
private func onThread(named name: String, _ body: @escaping () -> Void) throws {
    let thread = try SwiftletCore.Thread.spawn(named: name, body)
    thread.join()
}

private let timestampPattern = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{9}"

private func matches(_ line: String, _ pattern: String) -> Bool {
    line.range(of: "^" + pattern + "$", options: .regularExpression) != nil
}

final class LoggerTests: XCTestCase {
    override func setUp() {
        // A test that closes a pipe's read end must see EPIPE, not die of SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
    }

    /// Logs one line per call of `body` through a fresh logger on a pipe; the lines.
    private func lines(level: LogLevel = .info, configure: (Logger) throws -> Void = { _ in },
                       _ body: @escaping (Logger) -> Void) throws -> [String] {
        let (readEnd, writeEnd) = makePipe()
        defer { close(readEnd) }
        let logger = Logger(level: level, fd: writeEnd)
        try configure(logger)
        try onThread(named: "tester") { body(logger) }
        XCTAssertEqual(logger.finish(milliseconds: 5000), 0)
        close(writeEnd)
        return readText(readEnd).split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    // MARK: the line

    func testLineLayoutForEachFlagCombination() throws {
        let origin = "SwiftletCoreTests/LoggerTests.swift"
        for (showLevel, showOrigin) in [(false, false), (true, false), (false, true), (true, true)] {
            var logLine: UInt = 0
            let output = try lines(configure: { try $0.configure(showLevel: showLevel, showOrigin: showOrigin) }) { logger in
                logLine = #line + 1
                logger.warn("disk \"rootfs\" is read-only")
            }
            XCTAssertEqual(output.count, 1)
            let level = showLevel ? ":WARN" : ""
            let where_ = showOrigin ? ":\(origin):\(logLine)" : ""
            let expected = timestampPattern + NSRegularExpression.escapedPattern(
                for: " [anonymous-instance:tester\(level)\(where_)] disk \"rootfs\" is read-only")
            XCTAssertTrue(matches(output[0], expected), "show_level \(showLevel), show_log_origin \(showOrigin): \(output[0])")
        }
    }

    func testEveryLevelIsSpelledAsFirecrackerSpellsIt() throws {
        let output = try lines(level: .trace, configure: { try $0.configure(showLevel: true) }) { logger in
            logger.error("e")
            logger.warn("w")
            logger.info("i")
            logger.debug("d")
            logger.trace("t")
        }
        let levels = output.map { line -> String in
            let inside = line.split(separator: "[")[1].split(separator: "]")[0]
            return String(inside.split(separator: ":").last!)
        }
        XCTAssertEqual(levels, ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"])
    }

    func testInstanceIDAndAnUnnamedThread() throws {
        let (readEnd, writeEnd) = makePipe()
        defer { close(readEnd) }
        let logger = Logger(fd: writeEnd)
        logger.instanceID = "vm-42"
        // A pthread nobody named (not a Swiftlet thread): "-", as Firecracker shows it.
        let thread = Foundation.Thread { logger.info("from a stranger") }
        thread.start()
        while !thread.isFinished { usleep(1000) }
        logger.finish(milliseconds: 5000)
        close(writeEnd)
        let text = readText(readEnd)
        XCTAssertTrue(matches(text, timestampPattern + " \\[vm-42:-\\] from a stranger\n"), text)
    }

    func testAMessagesOwnLineBreaksBecomeSpaces() throws {
        let output = try lines { $0.info("first\nsecond\r\nthird\n") }
        XCTAssertEqual(output.count, 1)
        XCTAssertTrue(output[0].hasSuffix("] first second  third "), output[0])
    }

    func testTimestampsAreUTCAsGmtimeHasThem() {
        var generator = SystemRandomNumberGenerator()
        var seconds: [Int64] = [0, 59, 86_399, 86_400, 951_782_400, 951_868_799, 1_709_164_800, 4_102_444_800, 253_402_300_799]
        for _ in 0..<2000 { seconds.append(Int64.random(in: 0...253_402_300_799, using: &generator)) }
        for second in seconds {
            let nanoseconds = Int.random(in: 0..<1_000_000_000)
            var buffer = [UInt8](repeating: 0, count: 64)
            let text: String = buffer.withUnsafeMutableBytes { storage in
                var builder = LineBuilder(storage, start: 0, room: storage.count)
                Logger.appendTimestamp(into: &builder, seconds: second, nanoseconds: nanoseconds)
                return String(decoding: storage[0..<builder.length], as: UTF8.self)
            }
            var time = time_t(second)
            var parts = tm()
            gmtime_r(&time, &parts)
            let expected = String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%09ld", parts.tm_year + 1900, parts.tm_mon + 1,
                                  parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, nanoseconds)
            XCTAssertEqual(text, expected, "\(second) s")
        }
    }

    // MARK: levels

    func testLevelsFilter() throws {
        let expected: [LogLevel: [String]] = [
            .off: [], .error: ["e"], .warning: ["e", "w"], .info: ["e", "w", "i"],
            .debug: ["e", "w", "i", "d"], .trace: ["e", "w", "i", "d", "t"],
        ]
        for (level, messages) in expected {
            let output = try lines(level: level) { logger in
                XCTAssertEqual(logger.isEnabled(.info), level >= .info)
                logger.error("e")
                logger.warn("w")
                logger.info("i")
                logger.debug("d")
                logger.trace("t")
            }
            XCTAssertEqual(output.map { String($0.split(separator: " ").last!) }, messages, "level \(level)")
        }
        // A message that is not let through is not even built.
        let logger = Logger(level: .warning, fd: -1)
        var built = false
        logger.debug({ built = true; return "expensive" }())
        XCTAssertFalse(built)
        XCTAssertEqual(logger.missedLogCount, 0)
    }

    func testLevelNamesParseAsFirecrackersDo() {
        XCTAssertEqual(LogLevel("Warning"), .warning)
        XCTAssertEqual(LogLevel("WARN"), .warning)
        XCTAssertEqual(LogLevel("off"), .off)
        XCTAssertEqual(LogLevel("TrAcE"), .trace)
        XCTAssertEqual(LogLevel("Info"), .info)
        XCTAssertEqual(LogLevel("error"), .error)
        XCTAssertEqual(LogLevel("Debug"), .debug)
        XCTAssertNil(LogLevel("verbose"))
        XCTAssertNil(LogLevel(""))
    }

    func testLevelChangesAndModuleFilter() throws {
        let output = try lines(configure: { try $0.configure(level: .debug, module: "SwiftletCoreTests/") }) { logger in
            logger.debug("shown")
            logger.level = .error
            logger.warn("hidden by level")
            logger.error("shown too")
            logger.error("from elsewhere", file: "VMM/VM.swift", line: 1)
        }
        XCTAssertEqual(output.map { String($0.split(separator: "]").last!) }, [" shown", " shown too"])
    }

    // MARK: destinations

    func testAStalledNamedPipeNeverBlocksTheCallerAndEveryDroppedLineIsCounted() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-log-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let fifo = directory.appendingPathComponent("log.fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let logger = Logger(capacity: 16 * 1024)
        // No reader yet: opening must neither block nor fail.
        let opened = Date()
        try logger.configure(path: fifo)
        XCTAssertLessThan(Date().timeIntervalSince(opened), 1)

        let total = 20_000
        let start = Date()
        for i in 0..<total { logger.warn("line \(i) " + String(repeating: "x", count: 60)) }
        XCTAssertLessThan(Date().timeIntervalSince(start), 2, "a caller never waits for a stalled destination")
        let missed = logger.missedLogCount
        // 20,000 lines of ~130 bytes cannot fit in a 64 KiB pipe and a 16 KiB ring.
        XCTAssertGreaterThan(missed, 0)

        // A reader comes: everything queued arrives, whole and in order, and nothing more is lost.
        let reader = open(fifo, O_RDONLY)
        XCTAssertGreaterThanOrEqual(reader, 0)
        defer { close(reader) }
        var text = ""
        let reading = Foundation.Thread { text = readText(reader) }
        reading.start()
        XCTAssertEqual(logger.finish(milliseconds: 10_000), missed, "no line lost but those counted")
        while !reading.isFinished { usleep(1000) }   // the logger closed its end: end of file
        let received = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        XCTAssertEqual(UInt64(received.count), UInt64(total) - missed, "received + missed = logged")
        var last = -1
        for line in received {
            XCTAssertTrue(matches(String(line), timestampPattern + " \\[anonymous-instance:-\\] line [0-9]+ x{60}"), String(line))
            let number = Int(line.split(separator: " ")[3])!
            XCTAssertGreaterThan(number, last, "order kept")
            last = number
        }
    }

    func testOrderIsKeptAndNothingIsLostWhileTheReaderKeepsUp() throws {
        let (readEnd, writeEnd) = makePipe()
        defer { close(readEnd) }
        // Room for everything: whatever the scheduling, nothing may be dropped or reordered.
        let logger = Logger(fd: writeEnd, capacity: 4 << 20)
        var text = ""
        let reading = Foundation.Thread { text = readText(readEnd) }
        reading.start()
        let threads = 4, perThread = 5000
        var workers: [SwiftletCore.Thread] = []
        for t in 0..<threads {
            workers.append(try SwiftletCore.Thread.spawn(named: "worker \(t)") {
                for i in 0..<perThread {
                    logger.info("\(i)")
                    if i % 500 == 0 { usleep(200) }
                }
            })
        }
        for worker in workers { worker.join() }
        XCTAssertEqual(logger.finish(milliseconds: 10_000), 0)
        XCTAssertEqual(logger.missedLogCount, 0)
        close(writeEnd)
        while !reading.isFinished { usleep(1000) }
        var next = [String: Int]()
        var count = 0
        for line in text.split(separator: "\n") {
            let inside = line.split(separator: "[")[1].split(separator: "]")[0]
            let thread = String(inside.split(separator: ":")[1])
            let number = Int(line.split(separator: " ").last!)!
            XCTAssertEqual(number, next[thread, default: 0], "\(thread)'s lines in order")
            next[thread] = number + 1
            count += 1
        }
        XCTAssertEqual(count, threads * perThread)
        XCTAssertEqual(Set(next.keys), Set((0..<threads).map { "worker \($0)" }))
    }

    func testAFileIsAppendedTo() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-log-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log").path
        defer { unlink(path) }
        try "earlier\n".write(toFile: path, atomically: false, encoding: .utf8)
        let logger = Logger(fd: -1)
        try logger.configure(path: path)
        logger.info("appended")
        logger.finish(milliseconds: 5000)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertEqual(lines[0], "earlier")
        XCTAssertTrue(lines[1].hasSuffix("] appended"))
        XCTAssertThrowsError(try logger.configure(path: "/nonexistent-directory/x.log"))
    }

    func testAWriteThatFailsForGoodLosesItsLinesAndCountsThem() throws {
        let (readEnd, writeEnd) = makePipe()
        close(readEnd)   // nobody will ever read: every write is EPIPE
        let writer = try LineWriter(fd: writeEnd, closesDescriptor: true, capacity: 4096)
        for i in 0..<10 { appendLine(writer, "lost \(i)") }
        XCTAssertEqual(writer.finish(milliseconds: 5000), 10)
        XCTAssertEqual(writer.missedLines, 10)
        XCTAssertGreaterThan(writer.failedWrites, 0)
    }

    func testRedirectSendsQueuedAndLaterLinesToTheNewDestination() throws {
        let first = makePipe(), second = makePipe()
        defer { close(first.read); close(second.read) }
        let writer = try LineWriter(fd: first.write, closesDescriptor: true)
        appendLine(writer, "one")
        XCTAssertTrue(writer.waitUntilWritten(milliseconds: 5000))
        writer.redirect(to: second.write, closesDescriptor: true)
        appendLine(writer, "two")
        XCTAssertEqual(writer.finish(milliseconds: 5000), 0)
        XCTAssertEqual(readText(first.read), "one\n", "the first destination was closed by the writer")
        XCTAssertEqual(readText(second.read), "two\n")
    }

    func testALineLongerThanTheRingIsDroppedWhole() throws {
        let (readEnd, writeEnd) = makePipe()
        defer { close(readEnd) }
        let logger = Logger(fd: writeEnd, capacity: 256)
        logger.info(String(repeating: "y", count: 300))
        logger.info("short")
        XCTAssertEqual(logger.finish(milliseconds: 5000), 1)
        close(writeEnd)
        let text = readText(readEnd)
        XCTAssertFalse(text.contains("yyyy"))
        XCTAssertTrue(text.hasSuffix("] short\n"), text)
    }

    // MARK: thread names

    func testThreadsNameThemselves() throws {
        var seen = "", kernel = ""
        try onThread(named: "a-rather-long-thread-name") {
            seen = SwiftletCore.Thread.currentName
            kernel = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
        }
        XCTAssertEqual(seen, "a-rather-long-thread-name")
        XCTAssertEqual(kernel, "a-rather-long-t\n", "the kernel keeps 15 bytes")
        var unnamed = ""
        let plain = try SwiftletCore.Thread.spawn { unnamed = SwiftletCore.Thread.currentName }
        plain.join()
        XCTAssertEqual(unnamed, "-")
    }

    // MARK: guest misbehaviour

    /// The first of each kind is logged at Warning, once, however many threads race to it.
    func testEachKindOfGuestMisbehaviourIsLoggedOnce() throws {
        let output = try lines(configure: { $0.showLevel = true }) { logger in
            let warnings = GuestWarnings(logger: logger)
            let racers = (0..<4).map { index in
                try! SwiftletCore.Thread.spawn(named: "vcpu \(index)") {
                    for _ in 0..<1000 {
                        warnings.warnOnce(.unclaimedPIO, "a port nobody claims")
                        warnings.warnOnce(.unclaimedMMIO, "an address nobody claims")
                    }
                }
            }
            for racer in racers { racer.join() }
            XCTAssertTrue(warnings.warnOnce(.malformedExit, "an impossible exit"))
            XCTAssertFalse(warnings.warnOnce(.malformedExit, "another"))
        }
        let messages = output.map { String($0[$0.range(of: ":WARN] ")!.upperBound...]) }
        XCTAssertEqual(messages.count, 3, "\(output)")
        XCTAssertEqual(Set(messages), ["a port nobody claims; later ones are only counted",
                                       "an address nobody claims; later ones are only counted",
                                       "an impossible exit; later ones are only counted"])
    }
}
