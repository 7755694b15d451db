import SwiftletCore

// ARM PrimeCell RTC (PL031) register map, from the PL031 TRM (ARM DDI 0224).
private let RTCDR: UInt64 = 0x000     // data: current time in seconds
private let RTCMR: UInt64 = 0x004     // match
private let RTCLR: UInt64 = 0x008     // load
private let RTCCR: UInt64 = 0x00C     // control (bit 0: start)
private let RTCIMSC: UInt64 = 0x010   // interrupt mask
private let RTCRIS: UInt64 = 0x014    // raw interrupt status
private let RTCMIS: UInt64 = 0x018    // masked interrupt status
private let RTCICR: UInt64 = 0x01C    // interrupt clear
private let RTC_INT: UInt32 = 1

private let peripheralID: (UInt32, UInt32, UInt32, UInt32) = (0x31, 0x10, 0x04, 0x00)

/// PL031 real-time clock counting the host's wall-clock seconds. The guest may load its
/// own time; the counter then runs on from there. The match alarm is stored, and raised
/// when a read finds the counter has reached it.
public final class PL031: BusDevice {
    public static let size: UInt64 = 0x1000

    private let lock = Lock()
    private let irq: any InterruptLine
    private let now: () -> UInt64
    /// Guest time = host time + offset (wrapping 32-bit seconds, as the hardware counter).
    private var offset: UInt32 = 0
    private var match: UInt32 = 0
    private var load: UInt32 = 0
    private var imsc: UInt32 = 0
    private var ris: UInt32 = 0

    /// `now` gives host wall-clock seconds since the epoch.
    public init(irq: any InterruptLine = UnconnectedInterruptLine(), now: @escaping () -> UInt64) {
        self.irq = irq
        self.now = now
    }

    public func read(offset registerOffset: UInt64, data: UnsafeMutableRawBufferPointer) {
        let value = lock.withLock { () -> UInt32 in
            switch registerOffset {
            case RTCDR: return counter()
            case RTCMR: return match
            case RTCLR: return load
            case RTCCR: return 1            // always running
            case RTCIMSC: return imsc
            case RTCRIS:
                checkMatch()
                return ris
            case RTCMIS:
                checkMatch()
                return ris & imsc
            default: return primeCellID(offset: registerOffset, peripheral: peripheralID) ?? 0
            }
        }
        store(value, into: data)
    }

    public func write(offset registerOffset: UInt64, data: UnsafeRawBufferPointer) {
        let value = Devices.load(data)
        lock.withLock {
            switch registerOffset {
            case RTCMR:
                match = value
                checkMatch()
            case RTCLR:
                load = value
                offset = value &- UInt32(truncatingIfNeeded: now())
            case RTCIMSC:
                imsc = value & RTC_INT
                updateIRQ()
            case RTCICR:
                ris &= ~(value & RTC_INT)
                updateIRQ()
            default: break   // RTCCR: writing 0 cannot stop this clock; DR, RIS, MIS are read-only
            }
        }
    }

    private func counter() -> UInt32 { UInt32(truncatingIfNeeded: now()) &+ offset }

    private func checkMatch() {
        if match != 0 && counter() >= match { ris |= RTC_INT }
        updateIRQ()
    }

    private func updateIRQ() { irq.setLevel(ris & imsc != 0) }
}
