import Synchronization
import SwiftletCore

// The sleep control and sleep status registers of a hardware-reduced ACPI machine (ACPI 6.5
// §4.8.3.7, §4.8.3.8): one byte at one I/O port, which the FADT's SLEEP_CONTROL_REG and
// SLEEP_STATUS_REG both name. Linux's acpi_power_off writes the _S5_ object's SLP_TYP with
// SLP_EN set; that write, and only that one, powers the machine off.
private let SLP_TYP_SHIFT: UInt8 = 2
private let SLP_TYP_MASK: UInt8 = 0x1C
private let SLP_EN: UInt8 = 0x20
// The status register's WAK_STS (bit 7) reads clear: this machine never sleeps, so it
// never wakes.

/// What the sleep control register asks of the machine: power off.
public protocol PowerOffLine: AnyObject {
    func powerOff()
}

/// ACPI soft-off for the x86_64 machine: a guest's `poweroff` ends the VM as a power-off,
/// which a test or an operator can tell from a reset (a guest panic with `panic=-1` resets).
public final class ACPISleepControl: ByteWideDevice {
    public static let size: UInt64 = 1
    /// The SLP_TYP value of soft-off (S5), as the DSDT's \_S5_ package gives it.
    public static let softOffType: UInt8 = 5

    private let line: any PowerOffLine
    private let ignored = Atomic<UInt64>(0)

    public init(powerOff line: any PowerOffLine) {
        self.line = line
    }

    /// Writes with SLP_EN that asked for a sleep state other than soft-off (S1–S4, which the
    /// DSDT does not offer): ignored, as a machine without them would.
    public var ignoredSleepRequests: UInt64 { ignored.load(ordering: .relaxed) }

    public func readByte(at offset: UInt64) -> UInt8 { 0 }

    public func writeByte(_ value: UInt8, at offset: UInt64) {
        guard offset == 0, value & SLP_EN != 0 else { return }
        if (value & SLP_TYP_MASK) >> SLP_TYP_SHIFT == ACPISleepControl.softOffType {
            line.powerOff()
        } else {
            ignored.wrappingAdd(1, ordering: .relaxed)
        }
    }
}
