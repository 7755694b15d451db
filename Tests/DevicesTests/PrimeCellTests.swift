import XCTest
@testable import Devices
import SwiftletCore

final class PL011InputTests: XCTestCase {
    func push(_ uart: PL011, _ text: String) -> Int {
        Array(text.utf8).withUnsafeBytes { uart.push($0) }
    }

    func testInputRaisesReceiveInterruptAndDrainsInOrder() {
        let irq = UnconnectedInterruptLine()
        let uart = PL011(output: CollectingSink(), irq: irq)
        writeWord(uart, 0x02C, 0x70)                 // LCR_H: 8 bits, FIFOs on
        writeWord(uart, 0x038, (1 << 4) | (1 << 6))  // IMSC: RX and RT
        XCTAssertFalse(irq.level)
        XCTAssertEqual(push(uart, "ls\n"), 3)
        XCTAssertTrue(irq.level, "receive timeout pending")
        XCTAssertEqual(readWord(uart, 0x018) & (1 << 4), 0, "RXFE clear")
        var received: [UInt8] = []
        while readWord(uart, 0x018) & (1 << 4) == 0 { received.append(UInt8(readWord(uart, 0x000))) }
        XCTAssertEqual(String(decoding: received, as: UTF8.self), "ls\n")
        XCTAssertFalse(irq.level, "drained FIFO drops the interrupt")
        XCTAssertEqual(readWord(uart, 0x000), 0, "empty FIFO reads 0")
    }

    func testFullFIFOAcceptsNoMoreAndTellsWhenThereIsRoom() throws {
        let notifier = try EventNotifier()
        let uart = PL011(output: CollectingSink(), spaceNotifier: notifier)
        writeWord(uart, 0x02C, 0x70)
        let text = String(repeating: "a", count: 20)
        XCTAssertEqual(push(uart, text), PL011.fifoDepth, "16 fit, the rest waits")
        XCTAssertFalse(uart.hasSpace)
        XCTAssertNotEqual(readWord(uart, 0x018) & (1 << 6), 0, "RXFF")
        _ = readWord(uart, 0x000)
        XCTAssertTrue(uart.hasSpace)
        var value: UInt64 = 0
        XCTAssertEqual(read(notifier.fd, &value, 8), 8, "the main loop is woken")
        XCTAssertEqual(value, 1)
    }

    func testCharacterModeHoldsOneByte() {
        let uart = PL011(output: CollectingSink())
        XCTAssertEqual(push(uart, "xy"), 1, "FIFOs off: one holding register")
    }

    func testInterruptClearAndMask() {
        let irq = UnconnectedInterruptLine()
        let uart = PL011(output: CollectingSink(), irq: irq)
        writeWord(uart, 0x038, 1 << 5)              // TX interrupt enabled
        writeWord(uart, 0x000, 0x41)
        XCTAssertTrue(irq.level)
        XCTAssertEqual(readWord(uart, 0x040), 1 << 5, "MIS")
        writeWord(uart, 0x044, 1 << 5)              // ICR
        XCTAssertFalse(irq.level)
        XCTAssertEqual(readWord(uart, 0x03C) & (1 << 5), 0)
    }
}

final class PL031Tests: XCTestCase {
    func testCountsHostSecondsAndKeepsGuestLoad() {
        var now: UInt64 = 1_700_000_000
        let rtc = PL031(now: { now })
        XCTAssertEqual(readWord(rtc, 0x000), 1_700_000_000)
        now += 5
        XCTAssertEqual(readWord(rtc, 0x000), 1_700_000_005)
        writeWord(rtc, 0x008, 1000)                  // guest loads its own time
        now += 7
        XCTAssertEqual(readWord(rtc, 0x000), 1007)
        XCTAssertEqual(readWord(rtc, 0x00C), 1, "running")
        let ids = stride(from: UInt64(0xFE0), through: 0xFFC, by: 4).map { readWord(rtc, $0) }
        XCTAssertEqual(ids, [0x31, 0x10, 0x04, 0x00, 0x0D, 0xF0, 0x05, 0xB1])
    }

    func testMatchAlarm() {
        var now: UInt64 = 100
        let irq = UnconnectedInterruptLine()
        let rtc = PL031(irq: irq, now: { now })
        writeWord(rtc, 0x010, 1)
        writeWord(rtc, 0x004, 110)
        XCTAssertFalse(irq.level)
        now = 110
        XCTAssertEqual(readWord(rtc, 0x014), 1)
        XCTAssertTrue(irq.level)
        writeWord(rtc, 0x01C, 1)
        XCTAssertFalse(irq.level)
    }
}

final class PL061Tests: XCTestCase {
    /// What Linux's pl061 + gpio-keys do: line 3 input, both-edge interrupt, enabled.
    func configurePowerKey(_ gpio: PL061) {
        writeWord(gpio, 0x400, 0)          // all inputs
        writeWord(gpio, 0x404, 0)          // edge
        writeWord(gpio, 0x408, 1 << 3)     // both edges on line 3
        writeWord(gpio, 0x410, 1 << 3)     // unmask line 3
    }

    func testPowerKeyPressAndReleaseInterrupt() {
        let irq = UnconnectedInterruptLine()
        let gpio = PL061(irq: irq)
        configurePowerKey(gpio)
        gpio.setInput(line: 3, high: true)
        XCTAssertTrue(irq.level)
        XCTAssertEqual(readWord(gpio, 0x418), 1 << 3, "MIS")
        XCTAssertEqual(readWord(gpio, 0x3FC), 1 << 3, "GPIODATA (all lines) reads the key down")
        XCTAssertEqual(readWord(gpio, 0x020), 1 << 3, "address-masked read of line 3 alone")
        XCTAssertEqual(readWord(gpio, 0x010), 0, "a mask without line 3 hides it")
        writeWord(gpio, 0x41C, 1 << 3)     // GPIOIC
        XCTAssertFalse(irq.level)
        gpio.setInput(line: 3, high: false)
        XCTAssertTrue(irq.level, "release is an edge too")
    }

    func testLevelInterruptFollowsTheLine() {
        let irq = UnconnectedInterruptLine()
        let gpio = PL061(irq: irq)
        writeWord(gpio, 0x404, 1 << 0)     // level
        writeWord(gpio, 0x40C, 1 << 0)     // high
        writeWord(gpio, 0x410, 1 << 0)
        XCTAssertFalse(irq.level)
        gpio.setInput(line: 0, high: true)
        XCTAssertTrue(irq.level)
        writeWord(gpio, 0x41C, 1)          // clearing a level interrupt does nothing
        XCTAssertTrue(irq.level)
        gpio.setInput(line: 0, high: false)
        XCTAssertFalse(irq.level)
    }

    func testOutputsOnlyChangeMaskedOutputLines() {
        let gpio = PL061()
        writeWord(gpio, 0x400, 0x0F)       // lines 0-3 outputs
        writeWord(gpio, 0x3FC, 0xFF)
        XCTAssertEqual(readWord(gpio, 0x3FC), 0x0F)
        writeWord(gpio, 0x004, 0x00)       // mask = line 0 only
        XCTAssertEqual(readWord(gpio, 0x3FC), 0x0E)
        gpio.setInput(line: 9, high: true) // out of range: ignored
        XCTAssertEqual(readWord(gpio, 0x3FC), 0x0E)
    }
}

final class EscapeFilterTests: XCTestCase {
    func run(_ filter: inout EscapeFilter, _ bytes: [UInt8]) -> ([UInt8], EscapeFilter.Action) {
        var buffer = bytes
        let (count, action) = buffer.withUnsafeMutableBytes { filter.filter($0, count: bytes.count) }
        return (Array(buffer[0..<count]), action)
    }

    func testCtrlAXQuits() {
        var filter = EscapeFilter()
        XCTAssertEqual(run(&filter, [0x61, 0x01, 0x78, 0x62]).1, .quit)
    }

    func testCtrlACtrlASendsOneAndOthersPassThrough() {
        var filter = EscapeFilter()
        let (bytes, action) = run(&filter, [0x03, 0x01, 0x01, 0x0D])
        XCTAssertEqual(bytes, [0x03, 0x01, 0x0D])
        XCTAssertEqual(action, .none)
    }

    func testEscapeSplitAcrossReads() {
        var filter = EscapeFilter()
        XCTAssertEqual(run(&filter, [0x6C, 0x01]).0, [0x6C])
        XCTAssertEqual(run(&filter, [0x78]).1, .quit)
    }
}

final class Serial16550InputTests: XCTestCase {
    func push(_ uart: Serial16550, _ text: String) -> Int { Array(text.utf8).withUnsafeBytes { uart.push($0) } }

    func testReceivedDataInterruptAndFIFOClearWakesTheHost() throws {
        let irq = UnconnectedInterruptLine()
        let notifier = try EventNotifier()
        let uart = Serial16550(output: CollectingSink(), irq: irq, spaceNotifier: notifier)
        writeByte(uart, 2, 0x01)                       // FCR: FIFO on (16 deep)
        writeByte(uart, 1, 0x01)                       // IER: received data available
        XCTAssertEqual(push(uart, String(repeating: "z", count: 20)), 16)
        XCTAssertTrue(irq.level)
        XCTAssertEqual(readByte(uart, 2) & 0x0F, 0x04, "IIR: received data")
        XCTAssertEqual(readByte(uart, 5) & 0x01, 1, "LSR.DR")
        writeByte(uart, 2, 0x03)                       // FCR: clear the receive FIFO
        XCTAssertFalse(irq.level)
        var value: UInt64 = 0
        XCTAssertEqual(read(notifier.fd, &value, 8), 8, "a refused push is retried once there is room")
    }

    func testTHREInterruptRearmsAfterEveryByte() {
        let irq = UnconnectedInterruptLine()
        let sink = CollectingSink()
        let uart = Serial16550(output: sink, irq: irq)
        writeByte(uart, 1, 0x02)                       // IER: THR empty
        XCTAssertTrue(irq.level, "enabling THRI with an empty THR interrupts at once")
        XCTAssertEqual(readByte(uart, 2) & 0x0F, 0x02)
        XCTAssertFalse(irq.level, "reading IIR acknowledges THRE")
        let before = irq.changes
        writeByte(uart, 0, 0x41)
        XCTAssertTrue(irq.level)
        XCTAssertEqual(irq.changes - before, 1, "one new rising edge per byte")
        XCTAssertEqual(sink.text, "A")
    }
}

final class CMOSTests: XCTestCase {
    func cmos(_ device: CMOS, _ register: UInt8) -> UInt8 {
        writeByte(device, 0, register)
        return readByte(device, 1)
    }

    func testReadsHostTimeInBCD() {
        // 2026-11-25 03:04:05 UTC, a Wednesday.
        let rtc = CMOS(now: { 1_795_575_845 })
        XCTAssertEqual(cmos(rtc, 0x00), 0x05)
        XCTAssertEqual(cmos(rtc, 0x02), 0x04)
        XCTAssertEqual(cmos(rtc, 0x04), 0x03)
        XCTAssertEqual(cmos(rtc, 0x07), 0x25)
        XCTAssertEqual(cmos(rtc, 0x08), 0x11)
        XCTAssertEqual(cmos(rtc, 0x09), 0x26)
        XCTAssertEqual(cmos(rtc, 0x32), 0x20)
        XCTAssertEqual(cmos(rtc, 0x06), 4, "Wednesday is day 4")
        XCTAssertEqual(cmos(rtc, 0x0A) & 0x80, 0, "never update-in-progress")
        XCTAssertEqual(cmos(rtc, 0x0D), 0x80, "valid")
    }

    func testBinaryModeAndGuestSetTime() {
        var now: UInt64 = 1_795_575_845
        let rtc = CMOS(now: { now })
        writeByte(rtc, 0, 0x0B); writeByte(rtc, 1, 0x06)   // 24 h, binary
        XCTAssertEqual(cmos(rtc, 0x00), 5)
        writeByte(rtc, 0, 0x04); writeByte(rtc, 1, 10)     // guest sets 10 o'clock
        XCTAssertEqual(cmos(rtc, 0x04), 10)
        now += 3600
        XCTAssertEqual(cmos(rtc, 0x04), 11, "the clock runs on from the guest's setting")
        writeByte(rtc, 0, 0x40); writeByte(rtc, 1, 0xAB)   // CMOS RAM keeps bytes
        XCTAssertEqual(cmos(rtc, 0x40), 0xAB)
    }

    func testEveryValueInEveryRegisterInEveryModeIsSafe() {
        // What the hostile guest does: each status B mode, every index, every value, read back.
        for now: UInt64 in [0, 1_795_575_845, UInt64(Int64.max), .max] {
            let rtc = CMOS(now: { now })
            for mode: UInt8 in [0x00, 0x02, 0x04, 0x06, 0xFF] {
                for index in 0...255 {
                    for value in 0...255 {
                        writeByte(rtc, 0, 0x0B); writeByte(rtc, 1, mode)
                        writeByte(rtc, 0, UInt8(index)); writeByte(rtc, 1, UInt8(value))
                        _ = readByte(rtc, 1)
                    }
                }
                for register: UInt8 in [0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32] { _ = cmos(rtc, register) }
            }
        }
    }

    func testOutOfRangeTimeFieldsAreRefusedAndCounted() {
        let rtc = CMOS(now: { 1_795_575_845 })               // 2026-11-25 03:04:05
        for (register, value): (UInt8, UInt8) in [(0x00, 0x60), (0x00, 0x5A), (0x02, 0x99), (0x04, 0x24),
                                                   (0x07, 0x00), (0x07, 0x32), (0x08, 0x13), (0x09, 0xA0), (0x32, 0x00)] {
            writeByte(rtc, 0, register); writeByte(rtc, 1, value)
        }
        XCTAssertEqual(rtc.rejectedTimeWrites, 9)
        XCTAssertEqual([cmos(rtc, 0x00), cmos(rtc, 0x04), cmos(rtc, 0x07), cmos(rtc, 0x09), cmos(rtc, 0x32)],
                       [0x05, 0x03, 0x25, 0x26, 0x20], "the clock kept its time")
        writeByte(rtc, 0, 0x32); writeByte(rtc, 1, 0x99)     // century 99: year 9926
        XCTAssertEqual([cmos(rtc, 0x32), cmos(rtc, 0x09)], [0x99, 0x26])
        writeByte(rtc, 0, 0x09); writeByte(rtc, 1, 0x99)     // 9999, the clock's last year
        XCTAssertEqual([cmos(rtc, 0x32), cmos(rtc, 0x09)], [0x99, 0x99])
    }

    func testWideAccessesReachConsecutivePortsAsOnTheISABus() {
        let rtc = CMOS(now: { 1_795_575_845 })
        // out dx, ax to 0x70: AL selects CMOS RAM byte 0x40, AH is written to it.
        [UInt8(0x40), 0xAB].withUnsafeBytes { rtc.write(offset: 0, data: $0) }
        XCTAssertEqual(cmos(rtc, 0x40), 0xAB)
        var word: [UInt8] = [0, 0]
        word.withUnsafeMutableBytes { rtc.read(offset: 0, data: $0) }
        XCTAssertEqual(word, [0x40, 0xAB], "index, then the selected register")
    }

    func testTwelveHourMode() {
        let rtc = CMOS(now: { 1_795_575_845 + 12 * 3600 })   // 15:04:05
        writeByte(rtc, 0, 0x0B); writeByte(rtc, 1, 0x00)     // BCD, 12-hour
        XCTAssertEqual(cmos(rtc, 0x04), 0x83, "3 PM")
        writeByte(rtc, 0, 0x04); writeByte(rtc, 1, 0x12)     // 12 AM is midnight
        XCTAssertEqual(cmos(rtc, 0x04), 0x12)
        writeByte(rtc, 0, 0x0B); writeByte(rtc, 1, 0x02)
        XCTAssertEqual(cmos(rtc, 0x04), 0x00)
    }

    func testCivilTimeRoundTrips() {
        for seconds: Int64 in [0, 951_782_400, 1_795_575_845, 4_102_444_799, -86_400] {
            XCTAssertEqual(CivilTime(secondsSinceEpoch: seconds).secondsSinceEpoch, seconds)
        }
        let leapDay = CivilTime(secondsSinceEpoch: 951_782_400)   // 2000-02-29
        XCTAssertEqual([leapDay.year, leapDay.month, leapDay.day], [2000, 2, 29])
    }
}
