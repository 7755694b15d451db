import XCTest

/// The hostile x86_64 guest on this host's /dev/kvm: extreme values at every width to every
/// register of COM1, the i8042 and the CMOS RTC (every index, the clock in BCD and binary,
/// 12- and 24-hour mode), string I/O, then a clean reset. The VMM must neither trap nor hang.
final class HostileGuestTests: XCTestCase {
    override func setUpWithError() throws { try TestSupport.requireKVM() }

    func testHostileGuestDoesNotCrashOrHangTheVMM() throws {
        let image = try TestSupport.guestImage("hostile-x86_64")
        let result = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--kernel", image, "--memory", "32"], timeout: 120)
        XCTAssertEqual(result.status, 0, String(result.stderr.prefix(2000)))
        XCTAssertTrue(result.stdout.hasSuffix("\nhostile guest survived\n"), String(result.stdout.suffix(80)))
        XCTAssertEqual(result.stderr, TestSupport.i8042ResetEnd)
    }
}
