import CLinux
import Synchronization
import SwiftletCore

// Firecracker's boot timer (`--boot-timer`): a pseudo-device a guest writes to once it has
// booted, so the host learns how long the boot took. Register map (one 4 KiB window,
// Firecracker's MMIO_LEN; not described to the guest, which must know the address):
//   0x000  W 8  the byte 123 (0x7B): "booted". The first such write is timed; its report
//               is one line on stderr and one log line at Info, written off the vCPU thread.
// Anything else (another value, offset or width, and a second 123) is ignored and counted;
// reads return 0. Firecracker 1.12 logs every 123 write; here only the first one is
// reported, so a guest cannot fill the host's log with them.
private let signalOffset: UInt64 = 0

/// How long the guest took to boot: from the process's start (or the jailer's) to its
/// first write of 123 to the boot timer, on the monotonic clock and in the process's CPU time.
public struct BootTime: Equatable {
    public let microseconds: UInt64
    public let cpuMicroseconds: UInt64

    public init(microseconds: UInt64, cpuMicroseconds: UInt64) {
        self.microseconds = microseconds
        self.cpuMicroseconds = cpuMicroseconds
    }

    /// Swiftlet's stderr line, less its `swiftlet: ` prefix, one space between the fields
    /// for scripts: `Guest-boot-time = 123456 us 123 ms, 4567 CPU us 4 CPU ms`.
    public var message: String {
        "Guest-boot-time = \(microseconds) us \(microseconds / 1000) ms, \(cpuMicroseconds) CPU us \(cpuMicroseconds / 1000) CPU ms"
    }

    /// Firecracker's log message, as its boot timer formats it (the microseconds
    /// right-aligned in six columns), for tools that parse Firecracker's logs.
    public var firecrackerMessage: String {
        "Guest-boot-time = \(BootTime.padded(microseconds)) us \(microseconds / 1000) ms, \(BootTime.padded(cpuMicroseconds)) CPU us \(cpuMicroseconds / 1000) CPU ms"
    }

    static func padded(_ value: UInt64, width: Int = 6) -> String {
        let digits = "\(value)"
        let count = digits.utf8.count
        return count >= width ? digits : String(repeating: " ", count: width - count) + digits
    }
}

/// The boot-timer device. A vCPU's write of 123 takes the two clocks into atomics and
/// signals (one eventfd write); the report (`takeReport`) is made on another thread.
/// The exit path takes no lock and allocates nothing.
public final class BootTimer: BusDevice {
    public static let size: UInt64 = 0x1000
    /// The byte that says "booted" (Firecracker's MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE).
    public static let bootComplete: UInt8 = 123

    /// What the times are measured from, in the units Firecracker's jailer passes them:
    /// CLOCK_MONOTONIC microseconds, and CPU microseconds of this process's clock, plus
    /// CPU time spent before it (the jailer's `--parent-cpu-time-us`).
    public struct Origin: Equatable {
        public var monotonicMicroseconds: UInt64
        public var cpuMicroseconds: UInt64
        public var earlierCPUMicroseconds: UInt64

        public init(monotonicMicroseconds: UInt64, cpuMicroseconds: UInt64, earlierCPUMicroseconds: UInt64 = 0) {
            self.monotonicMicroseconds = monotonicMicroseconds
            self.cpuMicroseconds = cpuMicroseconds
            self.earlierCPUMicroseconds = earlierCPUMicroseconds
        }
    }

    /// A reading of both clocks, in nanoseconds.
    public struct Reading {
        public var monotonicNanoseconds: UInt64
        public var cpuNanoseconds: UInt64

        public init(monotonicNanoseconds: UInt64, cpuNanoseconds: UInt64) {
            self.monotonicNanoseconds = monotonicNanoseconds
            self.cpuNanoseconds = cpuNanoseconds
        }
    }

    // The state: waiting for the first 123, taking the clocks, timed (a report to take),
    // reported; or disarmed (`armed` false: never to report).
    private static let waiting: UInt8 = 0
    private static let stamping: UInt8 = 1
    private static let timed: UInt8 = 2
    private static let reported: UInt8 = 3
    private static let disarmed: UInt8 = 4

    private let origin: Origin
    private let clock: () -> Reading
    private let signal: () -> Void
    private let state: Atomic<UInt8>
    private let stampMonotonic = Atomic<UInt64>(0)
    private let stampCPU = Atomic<UInt64>(0)
    private let ignored = Atomic<UInt64>(0)
    private let repeated = Atomic<UInt64>(0)

    /// `signal` runs on the vCPU thread of the first 123 write, once the time is taken: it
    /// must only wake the thread that calls `takeReport` (an eventfd write). `armed` false:
    /// a device that reports nothing (the boot time was reported already, by a VM before a
    /// guest reboot) and counts every 123 as a repeat.
    public init(origin: Origin, armed: Bool = true, clock: @escaping () -> Reading = BootTimer.hostClock,
                signal: @escaping () -> Void) {
        self.origin = origin
        self.clock = clock
        self.signal = signal
        state = Atomic(armed ? BootTimer.waiting : BootTimer.disarmed)
    }

    /// CLOCK_MONOTONIC (vDSO) and CLOCK_PROCESS_CPUTIME_ID (a system call: once per VM).
    public static func hostClock() -> Reading {
        var monotonic = timespec(), cpu = timespec()
        clock_gettime(CLOCK_MONOTONIC, &monotonic)
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu)
        return Reading(monotonicNanoseconds: nanoseconds(monotonic), cpuNanoseconds: nanoseconds(cpu))
    }

    private static func nanoseconds(_ time: timespec) -> UInt64 {
        UInt64(truncatingIfNeeded: time.tv_sec) &* 1_000_000_000 &+ UInt64(truncatingIfNeeded: time.tv_nsec)
    }

    /// Writes that were not a byte 123 at offset 0.
    public var ignoredWrites: UInt64 { ignored.load(ordering: .relaxed) }
    /// Writes of 123 after the first (and every one of a device that was not armed).
    public var repeatedSignals: UInt64 { repeated.load(ordering: .relaxed) }
    /// Whether the guest's first 123 was timed (its report may still be to take).
    public var hasFired: Bool {
        let now = state.load(ordering: .acquiring)
        return now == BootTimer.timed || now == BootTimer.reported
    }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        for i in 0..<data.count { data[i] = 0 }
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        guard offset == signalOffset, data.count == 1, data[0] == BootTimer.bootComplete else {
            ignored.wrappingAdd(1, ordering: .relaxed)
            return
        }
        // Two vCPUs may write at once: one takes the time, the other is a repeat.
        guard state.compareExchange(expected: BootTimer.waiting, desired: BootTimer.stamping, ordering: .relaxed).exchanged else {
            repeated.wrappingAdd(1, ordering: .relaxed)
            return
        }
        let now = clock()
        stampMonotonic.store(now.monotonicNanoseconds, ordering: .relaxed)
        stampCPU.store(now.cpuNanoseconds, ordering: .relaxed)
        state.store(BootTimer.timed, ordering: .releasing)
        signal()
    }

    /// The boot time, once: nil before the guest's 123 and after the first call that
    /// returned it. Any thread; call it when signalled, and once more after the vCPU
    /// threads have stopped (a signal the reporting thread had no time for).
    public func takeReport() -> BootTime? {
        guard state.compareExchange(expected: BootTimer.timed, desired: BootTimer.reported, ordering: .acquiring).exchanged else {
            return nil
        }
        let microseconds = BootTimer.since(stampMonotonic.load(ordering: .relaxed) / 1000, origin.monotonicMicroseconds)
        let cpu = BootTimer.since(stampCPU.load(ordering: .relaxed) / 1000, origin.cpuMicroseconds)
        return BootTime(microseconds: microseconds, cpuMicroseconds: cpu &+ origin.earlierCPUMicroseconds)
    }

    /// `now - start`, 0 for a start in the future (a jailer's bogus --start-time-us).
    private static func since(_ now: UInt64, _ start: UInt64) -> UInt64 { now >= start ? now - start : 0 }
}
