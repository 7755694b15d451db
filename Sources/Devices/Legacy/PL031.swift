import CLinux
import SwiftletCore

// ARM PrimeCell Real Time Clock (PL031), as its Technical Reference Manual (ARM DDI 0224)
// defines it. Register map (TRM, "Summary of RTC registers"):
private let RTCDR: UInt64 = 0x000     // RO 32  data: the counter's current value (seconds)
private let RTCMR: UInt64 = 0x004     // RW 32  match: RTCINTR is raised when the counter equals it
private let RTCLR: UInt64 = 0x008     // RW 32  load: writing sets the counter; reads back the value written
private let RTCCR: UInt64 = 0x00C     // RW 1   control: bit 0 RTC start (once set, writes have no effect)
private let RTCIMSC: UInt64 = 0x010   // RW 1   interrupt mask set/clear: 1 = RTCINTR enabled
private let RTCRIS: UInt64 = 0x014    // RO 1   raw interrupt status
private let RTCMIS: UInt64 = 0x018    // RO 1   masked interrupt status: RTCRIS & RTCIMSC
private let RTCICR: UInt64 = 0x01C    // WO 1   interrupt clear: writing 1 to bit 0 clears RTCRIS
// 0xFE0-0xFEC RTCPeriphID0-3: 0x31, 0x10, 0x04, 0x00 (part 0x031, designer 0x41 = ARM,
// revision 0, configuration 0: the TRM's reset values; QEMU's model says revision 1, 0x14).
// 0xFF0-0xFFC RTCPCellID0-3: 0x0D, 0xF0, 0x05, 0xB1 (every PrimeCell's).
private let peripheralID: (UInt32, UInt32, UInt32, UInt32) = (0x31, 0x10, 0x04, 0x00)
private let RTC_INT: UInt32 = 1

private let nanosecondsPerSecond: UInt64 = 1_000_000_000
/// The 32-bit counter comes back to the same value every 2^32 seconds.
private let counterPeriod: UInt64 = (1 << 32) * nanosecondsPerSecond

/// PL031 real-time clock. The counter is the host's wall clock in seconds plus an offset
/// the guest sets through RTCLR (wrapping 32-bit arithmetic, as the hardware's counter).
///
/// The match interrupt: the TRM's comparator asserts RTCINTR (latched in RTCRIS until
/// RTCICR clears it) at the second the counter becomes equal to RTCMR. The device keeps the
/// host time of that second (`deadline`) and arms a host timer for it on every write to
/// RTCMR or RTCLR; the timer's expiry (`timerExpired`, on the VM's I/O thread) raises the
/// interrupt. A match equal to the counter at the time of the write raises it at once; a
/// match the counter has already passed is reached again only after the counter wraps
/// (2^32 s), as in the hardware. Reading RTCRIS or RTCMIS also checks the deadline, so a
/// guest never sees RTCDR at the match value and the status not yet raised.
///
/// Every register access takes only the device's lock; a write to RTCMR or RTCLR arms the
/// timer (one timerfd_settime); no other access makes a system call (the clock is vDSO).
public final class PL031: BusDevice {
    public static let size: UInt64 = 0x1000

    private let lock = Lock()
    private let irq: any InterruptLine
    /// Host time in nanoseconds (the wall clock: the counter's time base).
    private let clock: () -> UInt64
    /// Arms the host timer to call `timerExpired` after this many nanoseconds (replacing
    /// any earlier arming).
    private let armTimer: (UInt64) -> Void
    /// Guest counter = host seconds + offset (wrapping 32-bit seconds).
    private var offset: UInt32 = 0
    private var match: UInt32 = 0
    private var load: UInt32 = 0
    private var imsc: UInt32 = 0
    private var ris: UInt32 = 0
    /// Host time (ns) of the next second at which the counter equals `match`; nil until
    /// the guest writes RTCMR or RTCLR (the comparator of a real PL031 also fires at reset
    /// when the counter reaches 0 after a wrap; no guest waits 136 years for that).
    private var deadline: UInt64?

    /// `clock` gives host wall-clock nanoseconds since the epoch; `armTimer(ns)` must make
    /// `timerExpired` run about `ns` nanoseconds later (not earlier).
    public init(irq: any InterruptLine = UnconnectedInterruptLine(), clock: @escaping () -> UInt64,
                armTimer: @escaping (UInt64) -> Void) {
        self.irq = irq
        self.clock = clock
        self.armTimer = armTimer
    }

    /// A PL031 on a clock of whole seconds and without a host timer: the match interrupt is
    /// raised when the guest reads RTCRIS or RTCMIS (for tests and the fuzzer).
    public convenience init(irq: any InterruptLine = UnconnectedInterruptLine(), now: @escaping () -> UInt64) {
        self.init(irq: irq, clock: { now() &* nanosecondsPerSecond }, armTimer: { _ in })
    }

    /// CLOCK_REALTIME in nanoseconds: the time base of the VM's PL031.
    public static func hostClock() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(truncatingIfNeeded: now.tv_sec) &* nanosecondsPerSecond &+ UInt64(truncatingIfNeeded: now.tv_nsec)
    }

    public func read(offset registerOffset: UInt64, data: UnsafeMutableRawBufferPointer) {
        let value = lock.withLock { () -> UInt32 in
            switch registerOffset {
            case RTCDR: return counter(at: clock())
            case RTCMR: return match
            case RTCLR: return load
            case RTCCR: return 1            // started (as firmware leaves it); cannot be stopped
            case RTCIMSC: return imsc
            case RTCRIS:
                checkDeadline(at: clock())
                return ris
            case RTCMIS:
                checkDeadline(at: clock())
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
                // One reading of the clock for the whole write; a match that came due while
                // the timer's expiry waited on the I/O thread is latched before it changes.
                let now = clock()
                checkDeadline(at: now)
                match = value
                rearm(at: now)
            case RTCLR:
                let now = clock()
                checkDeadline(at: now)
                load = value
                offset = value &- UInt32(truncatingIfNeeded: now / nanosecondsPerSecond)
                rearm(at: now)
            case RTCIMSC:
                imsc = value & RTC_INT
                updateIRQ()
            case RTCICR:
                ris &= ~(value & RTC_INT)
                updateIRQ()
            default: break   // RTCCR: started already; RTCDR, RTCRIS, RTCMIS are read-only
            }
        }
    }

    /// The host timer armed by this device expired (the I/O thread calls this): raises the
    /// match interrupt if its second has come, and arms the timer for the next deadline.
    public func timerExpired() {
        lock.withLock {
            let now = clock()
            checkDeadline(at: now)
            if let deadline { armTimer(deadline > now ? deadline - now : 1) }
        }
    }

    private func counter(at now: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: now / nanosecondsPerSecond) &+ offset
    }

    /// After RTCMR or RTCLR changed: the counter equals the match now (interrupt at once,
    /// next equality one counter period later) or at the start of the second `ticks` ahead.
    private func rearm(at now: UInt64) {
        let second = now - now % nanosecondsPerSecond
        let ticks = match &- counter(at: now)
        if ticks == 0 {
            ris |= RTC_INT
            updateIRQ()
            deadline = addingWithoutOverflow(second, counterPeriod)
        } else {
            deadline = addingWithoutOverflow(second, UInt64(ticks) &* nanosecondsPerSecond)
        }
        if let deadline { armTimer(deadline - now) }
    }

    private func checkDeadline(at now: UInt64) {
        guard let due = deadline, now >= due else { return }
        ris |= RTC_INT
        updateIRQ()
        // The counter equals the match again after a full period (if the host clock jumped
        // further than that, the interrupt is raised once, not once per period).
        var next = addingWithoutOverflow(due, counterPeriod)
        while let n = next, n <= now { next = addingWithoutOverflow(n, counterPeriod) }
        deadline = next
    }

    private func addingWithoutOverflow(_ a: UInt64, _ b: UInt64) -> UInt64? {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? nil : sum
    }

    private func updateIRQ() { irq.setLevel(ris & imsc != 0) }
}
