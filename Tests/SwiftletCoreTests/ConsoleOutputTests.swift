import Foundation
import XCTest
@testable import SwiftletCore

final class ConsoleOutputTests: XCTestCase {
    func makePipe() -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        return (fds[0], fds[1])
    }

    func readAll(_ fd: Int32) -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return bytes }
            bytes += buffer[0..<n]
        }
    }

    func testBytesArriveInOrderAndNothingIsLostWhileTheReaderKeepsUp() throws {
        let (readEnd, writeEnd) = makePipe()
        defer { close(readEnd) }
        // Room for everything: whatever the scheduling, nothing may be dropped or reordered.
        let console = try ConsoleOutput(fd: writeEnd, capacity: 256 * 1024)
        var expected: [UInt8] = []
        var received: [UInt8] = []
        let reader = Thread { received = self.readAll(readEnd) }
        reader.start()
        for i in 0..<200_000 {
            let byte = UInt8(truncatingIfNeeded: i % 251)
            expected.append(byte)
            console.write(byte)
            if i % 1000 == 0 { usleep(100) }   // bursts, as a guest's lines come
        }
        XCTAssertEqual(console.finish(milliseconds: 5000), 0)
        close(writeEnd)
        while reader.isExecuting || !reader.isFinished { usleep(1000) }
        XCTAssertEqual(received.count, expected.count)
        XCTAssertTrue(received == expected, "bytes arrive in order")
        XCTAssertEqual(console.droppedBytes, 0)
    }

    func testAStalledReaderNeverBlocksTheWriterAndDropsAreCounted() throws {
        let (readEnd, writeEnd) = makePipe()
        defer { close(readEnd); close(writeEnd) }
        let console = try ConsoleOutput(fd: writeEnd, capacity: 4096)
        let total = 1 << 20
        let start = Date()
        for i in 0..<total { console.write(UInt8(truncatingIfNeeded: i)) }   // nobody reads the pipe
        XCTAssertLessThan(Date().timeIntervalSince(start), 2, "a vCPU writing to a stalled console must not wait")
        let lost = console.finish(milliseconds: 100)
        XCTAssertGreaterThan(console.droppedBytes, 0)
        XCTAssertGreaterThanOrEqual(Int(lost), total - 4096 - (1 << 18), "what the pipe and buffer cannot hold is lost and counted")
        // The writer is left behind blocked in write(2); draining the pipe lets it finish.
        let flags = fcntl(readEnd, F_GETFL)
        _ = fcntl(readEnd, F_SETFL, flags | O_NONBLOCK)
        _ = readAll(readEnd)
    }

    /// A byte-at-a-time UART must not cost a write(2) per byte: on a SOCK_SEQPACKET socket
    /// every write(2) arrives as one message, so the messages count the writer's syscalls.
    func testBytesWrittenOneAtATimeLeaveInBatchesOfWholeLines() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &fds), 0)
        defer { close(fds[0]) }
        let console = try ConsoleOutput(fd: fds[1], capacity: 64 * 1024)
        let line = Array("[    0.123456] a kernel line of about sixty bytes, say\r\n".utf8)
        let lines = 200
        for _ in 0..<lines {
            for byte in line { console.write(byte) }
            usleep(200)   // a guest's lines come apart in time, not as one burst
        }
        XCTAssertEqual(console.finish(milliseconds: 5000), 0)
        close(fds[1])
        var messages = 0
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fds[0], $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            messages += 1
            received += buffer[0..<n]
        }
        XCTAssertEqual(received, Array((0..<lines).map { _ in line }.joined()), "every byte, in order")
        // One write per line when the writer thread is scheduled on time; a busy host may split
        // a line at the linger, but a byte-at-a-time writer would make 11,200 messages here.
        XCTAssertLessThanOrEqual(messages, line.count * lines / 8, "lines leave in batches, not a write(2) per byte")
        XCTAssertEqual(console.droppedBytes, 0)
    }

    func testAClosedReaderDoesNotHangOrCrash() throws {
        signal(SIGPIPE, SIG_IGN)
        let (readEnd, writeEnd) = makePipe()
        close(readEnd)
        defer { close(writeEnd) }
        let console = try ConsoleOutput(fd: writeEnd, capacity: 1024)
        for _ in 0..<10_000 { console.write(0x41) }
        XCTAssertEqual(console.finish(milliseconds: 2000), 10_000, "every byte is counted as lost")
    }
}
