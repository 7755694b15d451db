import XCTest
@testable import Devices
import SwiftletCore

final class CollectingSink: ConsoleSink {
    var bytes: [UInt8] = []
    func write(_ byte: UInt8) { bytes.append(byte) }
    var text: String { String(decoding: bytes, as: UTF8.self) }
}

final class ResetRecorder: ResetLine {
    var count = 0
    func reset() { count += 1 }
}

func readByte(_ device: BusDevice, _ offset: UInt64) -> UInt8 {
    var value: UInt8 = 0
    withUnsafeMutableBytes(of: &value) { device.read(offset: offset, data: $0) }
    return value
}

func readWord(_ device: BusDevice, _ offset: UInt64) -> UInt32 {
    var value: UInt32 = 0
    withUnsafeMutableBytes(of: &value) { device.read(offset: offset, data: $0) }
    return UInt32(littleEndian: value)
}

func writeByte(_ device: BusDevice, _ offset: UInt64, _ value: UInt8) {
    withUnsafeBytes(of: value) { device.write(offset: offset, data: $0) }
}

func writeWord(_ device: BusDevice, _ offset: UInt64, _ value: UInt32) {
    withUnsafeBytes(of: value.littleEndian) { device.write(offset: offset, data: $0) }
}

final class Serial16550Tests: XCTestCase {
    func testTransmitAndLineStatus() {
        let sink = CollectingSink()
        let uart = Serial16550(output: sink)
        for byte in "ok\n".utf8 { writeByte(uart, 0, byte) }
        XCTAssertEqual(sink.text, "ok\n")
        XCTAssertEqual(readByte(uart, 5) & 0x60, 0x60, "THRE and TEMT: always ready to send")
        XCTAssertEqual(readByte(uart, 5) & 0x01, 0, "no received data")
    }

    func testDivisorLatchDoesNotTransmit() {
        let sink = CollectingSink()
        let uart = Serial16550(output: sink)
        writeByte(uart, 3, 0x83)      // DLAB on
        writeByte(uart, 0, 0x01)      // divisor low
        writeByte(uart, 1, 0x00)
        XCTAssertEqual(readByte(uart, 0), 0x01)
        writeByte(uart, 3, 0x03)      // DLAB off
        XCTAssertTrue(sink.bytes.isEmpty)
        writeByte(uart, 7, 0x5A)
        XCTAssertEqual(readByte(uart, 7), 0x5A, "scratch register keeps its value")
    }

    func testGarbageAccessesAreHarmless() {
        let sink = CollectingSink()
        let uart = Serial16550(output: sink)
        var big = [UInt8](repeating: 0xFF, count: 8)
        for offset in [UInt64(2), 5, 6, 8, 1000, UInt64.max] {
            big.withUnsafeMutableBytes { uart.read(offset: offset, data: $0) }
            big.withUnsafeBytes { uart.write(offset: offset, data: $0) }
            uart.write(offset: offset, data: UnsafeRawBufferPointer(start: nil, count: 0))
        }
        XCTAssertTrue(sink.bytes.isEmpty)
    }
}

final class PL011Tests: XCTestCase {
    func testTransmitAndFlags() {
        let sink = CollectingSink()
        let uart = PL011(output: sink)
        for byte in "hi".utf8 { writeWord(uart, 0x000, UInt32(byte)) }
        XCTAssertEqual(sink.text, "hi")
        let flags = readWord(uart, 0x018)
        XCTAssertEqual(flags & (1 << 5), 0, "TXFF clear: never full")
        XCTAssertNotEqual(flags & (1 << 4), 0, "RXFE: nothing received")
    }

    func testPrimeCellIdentification() {
        let uart = PL011(output: CollectingSink())
        let ids = stride(from: UInt64(0xFE0), through: 0xFFC, by: 4).map { readWord(uart, $0) }
        XCTAssertEqual(ids, [0x11, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1])
    }

    func testControlRegistersKeepTheirValues() {
        let uart = PL011(output: CollectingSink())
        writeWord(uart, 0x024, 0x1A)
        writeWord(uart, 0x02C, 0x70)
        writeWord(uart, 0x030, 0x301)
        XCTAssertEqual(readWord(uart, 0x024), 0x1A)
        XCTAssertEqual(readWord(uart, 0x02C), 0x70)
        XCTAssertEqual(readWord(uart, 0x030), 0x301)
        XCTAssertEqual(readWord(uart, 0xFFE), 0, "unaligned ID offset reads zero")
        XCTAssertEqual(readWord(uart, 0x2000), 0)
    }
}

final class I8042Tests: XCTestCase {
    func testResetCommandPullsTheResetLine() {
        let recorder = ResetRecorder()
        let controller = I8042(resetLine: recorder)
        writeByte(controller, 4, 0xAA)
        XCTAssertEqual(readByte(controller, 4) & 1, 1, "self-test answer waiting")
        XCTAssertEqual(readByte(controller, 0), 0x55)
        XCTAssertEqual(recorder.count, 0)
        writeByte(controller, 4, 0xFE)
        XCTAssertEqual(recorder.count, 1)
    }
}
