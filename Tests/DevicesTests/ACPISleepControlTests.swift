import XCTest
@testable import Devices

private final class CountingPowerOff: PowerOffLine {
    var count = 0
    func powerOff() { count += 1 }
}

final class ACPISleepControlTests: XCTestCase {
    func testOnlySoftOffWithSleepEnablePowersOff() {
        let line = CountingPowerOff()
        let register = ACPISleepControl(powerOff: line)
        // SLP_TYP 5 without SLP_EN (bit 5), and WAK_STS (bit 7), which Linux writes to the
        // shared status register first: neither powers off.
        register.writeByte(0x80, at: 0)
        register.writeByte(5 << 2, at: 0)
        XCTAssertEqual(line.count, 0)
        // Other sleep states with SLP_EN, as a wild guest's 0xA5 (SLP_TYP 1) or 0xFF (7).
        for value: UInt8 in [0xA5, 0xFF, 0x20, 4 << 2 | 0x20] { register.writeByte(value, at: 0) }
        XCTAssertEqual(line.count, 0)
        XCTAssertEqual(register.ignoredSleepRequests, 4)
        // What Linux's acpi_hw_extended_sleep writes for S5.
        register.writeByte(5 << 2 | 0x20, at: 0)
        XCTAssertEqual(line.count, 1)
        XCTAssertEqual(register.readByte(at: 0), 0, "WAK_STS clear")
    }

    func testAWiderAccessReachesOnlyTheRegistersByte() {
        let line = CountingPowerOff()
        let register = ACPISleepControl(powerOff: line)
        // A 16-bit write at the port: its high byte lands past the one-byte register.
        let bytes: [UInt8] = [0x00, 5 << 2 | 0x20]
        bytes.withUnsafeBytes { register.write(offset: 0, data: $0) }
        XCTAssertEqual(line.count, 0)
    }
}
