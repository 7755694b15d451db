import XCTest
@testable import Devices
import SwiftletCore
import CLinux

/// PL031 as the TRM (ARM DDI 0224) defines it, on an injected clock and an injected host
/// timer: the tests move the clock and fire the timer themselves.
final class PL031AlarmTests: XCTestCase {
    static let second: UInt64 = 1_000_000_000

    /// A fake host clock (ns) and timer: `armed` is the delay of the last arming.
    final class Host {
        var now: UInt64 = 1_700_000_000 * PL031AlarmTests.second + 250_000_000   // a quarter into a second
        var armed: [UInt64] = []
        var seconds: UInt32 { UInt32(truncatingIfNeeded: now / PL031AlarmTests.second) }
    }

    func make() -> (PL031, Host, UnconnectedInterruptLine) {
        let host = Host()
        let irq = UnconnectedInterruptLine()
        let rtc = PL031(irq: irq, clock: { host.now }, armTimer: { host.armed.append($0) })
        return (rtc, host, irq)
    }

    /// The timer fires when it was armed for: the clock moves by the last delay.
    func fire(_ rtc: PL031, _ host: Host) {
        guard let delay = host.armed.last else { return XCTFail("no timer armed") }
        host.now += delay
        rtc.timerExpired()
    }

    func testIdentificationRegistersAreTheTRMs() {
        let (rtc, _, _) = make()
        let periph = (0..<4).map { readWord(rtc, 0xFE0 + 4 * UInt64($0)) }
        let cell = (0..<4).map { readWord(rtc, 0xFF0 + 4 * UInt64($0)) }
        XCTAssertEqual(periph, [0x31, 0x10, 0x04, 0x00], "RTCPeriphID0-3: part 0x031, designer 0x41, revision 0")
        XCTAssertEqual(cell, [0x0D, 0xF0, 0x05, 0xB1], "RTCPCellID0-3")
        let conceptual = periph.enumerated().reduce(UInt32(0)) { $0 | $1.element << (8 * UInt32($1.offset)) }
        XCTAssertEqual(conceptual & 0x000F_FFFF, 0x0004_1031, "what Linux's amba bus matches for arm,pl031")
    }

    func testResetValues() {
        let (rtc, host, irq) = make()
        XCTAssertEqual(readWord(rtc, 0x000), host.seconds, "RTCDR counts host seconds")
        for register: UInt64 in [0x004, 0x008, 0x010, 0x014, 0x018] { XCTAssertEqual(readWord(rtc, register), 0) }
        XCTAssertEqual(readWord(rtc, 0x00C), 1, "RTCCR: started")
        XCTAssertEqual(readWord(rtc, 0x01C), 0, "RTCICR is write-only")
        XCTAssertTrue(host.armed.isEmpty, "no timer before the guest programs a match")
        XCTAssertFalse(irq.level)
    }

    func testFutureMatchRaisesNothingUntilTheTimerFires() {
        let (rtc, host, irq) = make()
        writeWord(rtc, 0x010, 1)                             // RTCIMSC: enabled
        writeWord(rtc, 0x004, host.seconds &+ 2)             // RTCMR: 2 s ahead
        XCTAssertEqual(host.armed, [2 * Self.second - 250_000_000], "armed for the second the counter reaches the match")
        XCTAssertEqual(readWord(rtc, 0x014), 0, "RIS")
        XCTAssertEqual(readWord(rtc, 0x018), 0, "MIS")
        XCTAssertFalse(irq.level)
        host.now += Self.second                              // one second on: still nothing
        XCTAssertEqual(readWord(rtc, 0x014), 0)
        XCTAssertFalse(irq.level)
        host.now -= Self.second
        fire(rtc, host)
        XCTAssertEqual(readWord(rtc, 0x000), readWord(rtc, 0x004), "the counter is at the match")
        XCTAssertEqual(readWord(rtc, 0x014), 1, "RIS")
        XCTAssertEqual(readWord(rtc, 0x018), 1, "MIS = RIS & IMSC")
        XCTAssertTrue(irq.level, "the line is high while unmasked and pending")
        writeWord(rtc, 0x01C, 1)                             // RTCICR
        XCTAssertEqual(readWord(rtc, 0x014), 0)
        XCTAssertEqual(readWord(rtc, 0x018), 0)
        XCTAssertFalse(irq.level)
        XCTAssertEqual(host.armed.last, (1 << 32) * Self.second, "next equality: one counter period on")
    }

    func testMaskGatesTheLineNotTheRawStatus() {
        let (rtc, host, irq) = make()
        writeWord(rtc, 0x004, host.seconds &+ 1)             // masked (RTCIMSC = 0)
        fire(rtc, host)
        XCTAssertEqual(readWord(rtc, 0x014), 1, "RIS set while masked")
        XCTAssertEqual(readWord(rtc, 0x018), 0, "MIS = RIS & IMSC = 0")
        XCTAssertFalse(irq.level, "masked: line low")
        writeWord(rtc, 0x010, 1)
        XCTAssertEqual(readWord(rtc, 0x018), 1)
        XCTAssertTrue(irq.level, "unmasking a pending interrupt raises the line")
        writeWord(rtc, 0x010, 0)
        XCTAssertFalse(irq.level, "masking lowers it")
        XCTAssertEqual(readWord(rtc, 0x014), 1, "RIS stays until cleared")
        writeWord(rtc, 0x01C, 0)
        XCTAssertEqual(readWord(rtc, 0x014), 1, "writing 0 to RTCICR clears nothing")
        writeWord(rtc, 0x01C, 1)
        XCTAssertEqual(readWord(rtc, 0x014), 0)
        writeWord(rtc, 0x010, 0xFFFF_FFFF)
        XCTAssertEqual(readWord(rtc, 0x010), 1, "RTCIMSC has one bit")
        XCTAssertFalse(irq.level)
    }

    func testAnEarlyTimerRearmsForTheRest() {
        let (rtc, host, irq) = make()
        writeWord(rtc, 0x010, 1)
        writeWord(rtc, 0x004, host.seconds &+ 3)
        host.now += Self.second                              // the timer comes early (or RTCMR moved)
        rtc.timerExpired()
        XCTAssertFalse(irq.level)
        XCTAssertEqual(host.armed.last, 2 * Self.second - 250_000_000, "armed again for the rest")
        fire(rtc, host)
        XCTAssertTrue(irq.level)
    }

    func testLoadChangesTheCounterAndRearms() {
        let (rtc, host, irq) = make()
        writeWord(rtc, 0x010, 1)
        writeWord(rtc, 0x004, 1000)                          // far in the past of the host counter
        XCTAssertFalse(irq.level)
        writeWord(rtc, 0x008, 990)                           // RTCLR: the counter is now 990
        XCTAssertEqual(readWord(rtc, 0x008), 990, "RTCLR reads back")
        XCTAssertEqual(readWord(rtc, 0x000), 990, "RTCDR from the loaded value")
        XCTAssertEqual(host.armed.last, 10 * Self.second - 250_000_000, "re-armed: 10 s to the match")
        host.now += 5 * Self.second
        XCTAssertEqual(readWord(rtc, 0x000), 995, "runs on from the load")
        XCTAssertFalse(irq.level)
        host.now -= 5 * Self.second
        fire(rtc, host)
        XCTAssertEqual(readWord(rtc, 0x000), 1000)
        XCTAssertTrue(irq.level)
    }

    func testMatchEqualToTheCounterFiresAtOnce() {
        let (rtc, host, irq) = make()
        writeWord(rtc, 0x010, 1)
        writeWord(rtc, 0x004, host.seconds)                  // RTCMR = RTCDR
        XCTAssertEqual(readWord(rtc, 0x014), 1)
        XCTAssertTrue(irq.level, "no timer needed")
        writeWord(rtc, 0x01C, 1)
        XCTAssertFalse(irq.level)
        writeWord(rtc, 0x004, 5000)
        writeWord(rtc, 0x008, 5000)                          // loading the match value fires too
        XCTAssertTrue(irq.level)
    }

    func testMatchTheCounterHasPassedWaitsForTheWrap() {
        // The TRM's comparator fires on equality: a match behind the counter is reached
        // again only when the 32-bit counter wraps (QEMU's PL031 behaves the same).
        let (rtc, host, irq) = make()
        writeWord(rtc, 0x010, 1)
        writeWord(rtc, 0x004, host.seconds &- 1)
        XCTAssertFalse(irq.level)
        XCTAssertEqual(readWord(rtc, 0x014), 0)
        XCTAssertEqual(host.armed.last, ((1 << 32) - 1) * Self.second - 250_000_000)
        fire(rtc, host)
        XCTAssertEqual(readWord(rtc, 0x000), readWord(rtc, 0x004), "the counter wrapped round to the match")
        XCTAssertTrue(irq.level, "after 2^32 - 1 s")
    }

    /// The real thing: the host's wall clock and a timerfd (as the arm64 machine wires it).
    func testHostTimerfdRaisesTheMatchWithoutAnyRegisterRead() throws {
        let timer = try TimerFD()
        let irq = UnconnectedInterruptLine()
        let rtc = PL031(irq: irq, clock: PL031.hostClock) { timer.arm(afterNanoseconds: $0) }
        writeWord(rtc, 0x010, 1)
        let start = monotonicNanoseconds()
        writeWord(rtc, 0x004, readWord(rtc, 0x000) &+ 1)
        var fd = pollfd(fd: timer.fd, events: Int16(POLLIN), revents: 0)
        while !irq.level && monotonicNanoseconds() - start < 3 * Self.second {
            let ready = poll(&fd, 1, 3000)
            if ready < 0 && errno == EINTR { continue }
            guard ready == 1 else { break }
            var count: UInt64 = 0
            _ = read(timer.fd, &count, 8)
            rtc.timerExpired()
        }
        let took = Double(monotonicNanoseconds() - start) / 1e9
        XCTAssertTrue(irq.level, "the timerfd raised the match interrupt")
        XCTAssertLessThanOrEqual(took, 3, "within the second (and a loaded host's delay)")
        XCTAssertEqual(readWord(rtc, 0x000), readWord(rtc, 0x004))
    }

    func testExtremeValuesWrapWithoutTrapping() {
        let (rtc, host, _) = make()
        for value: UInt32 in [0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF] {
            writeWord(rtc, 0x008, value)
            writeWord(rtc, 0x004, value &- 1)
            writeWord(rtc, 0x004, value &+ 1)
            _ = readWord(rtc, 0x000)
            _ = readWord(rtc, 0x018)
        }
        host.now = UInt64.max - 5
        rtc.timerExpired()
        writeWord(rtc, 0x004, 7)
        writeWord(rtc, 0x008, 0xFFFF_FFFF)
        _ = readWord(rtc, 0x014)
        host.now = 0
        rtc.timerExpired()
        _ = readWord(rtc, 0x014)
    }
}
