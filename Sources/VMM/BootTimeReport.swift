import CLinux
import Devices
import Synchronization
import SwiftletCore

extension ProcessTimestamp {
    /// The process's start: CLOCK_MONOTONIC as sampled by the C module's .init_array hook,
    /// the first code of the program's own to run (after the loader, before main and any
    /// Swift global), and a CPU time of 0, where the process's CPU clock starts (so the CPU
    /// figure is all the CPU time the process has used, the loader's included).
    /// /proc/self/stat's starttime would place the start earlier (at the fork, before the
    /// exec), but in clock ticks of 10 ms: too coarse for boots of a few tens of ms.
    public static var processStart: ProcessTimestamp {
        ProcessTimestamp(monotonicMicroseconds: sl_process_start_monotonic_ns() / 1000, cpuMicroseconds: 0)
    }
}

/// The boot timer's report: one line on stderr, `swiftlet: Guest-boot-time = N us N ms,
/// N CPU us N CPU ms`, and Firecracker's line in the log at Info. Once per process: after a
/// guest reboot the new VM's boot timer is not armed.
enum BootTimeReport {
    private static let reported = Atomic<Bool>(false)

    static var hasReported: Bool { reported.load(ordering: .acquiring) }

    /// Where the boot time is measured from: the jailer's start when it gave one
    /// (`--start-time-us` is CLOCK_MONOTONIC, `--start-time-cpu-us` the CPU clock at its
    /// exec of this process, `--parent-cpu-time-us` its own CPU time before that, added as
    /// Firecracker adds it for its start-up metrics), else this process's start.
    static func origin(_ jailer: ProcessStartTimes?, processStart: ProcessTimestamp = .processStart) -> BootTimer.Origin {
        BootTimer.Origin(monotonicMicroseconds: jailer?.startTimeUs ?? processStart.monotonicMicroseconds,
                         cpuMicroseconds: jailer?.startCPUTimeUs ?? processStart.cpuMicroseconds,
                         earlierCPUMicroseconds: jailer?.parentCPUTimeUs ?? 0)
    }

    /// Writes the report if `timer` has one to take (on the I/O thread when signalled, and
    /// once more after the VM's threads have stopped; the report is taken only once).
    static func emit(_ timer: BootTimer) {
        guard let time = timer.takeReport() else { return }
        reported.store(true, ordering: .releasing)
        printError("swiftlet: \(time.message)")
        // A logger that writes to stderr too would say it twice on the same stream.
        if !Logger.shared.writesToStandardError { Logger.shared.info(time.firecrackerMessage) }
    }
}

extension MachineDevices {
    /// The boot timer at `record`: its signal wakes the device I/O thread, which reports.
    func attachBootTimer(at record: DeviceRecord, origin: BootTimer.Origin) throws(SwiftletError) {
        let signal = try EventNotifier()
        let timer = BootTimer(origin: origin, armed: !BootTimeReport.hasReported) { signal.notify() }
        try ioThread.watch(signal) { BootTimeReport.emit(timer) }
        try insert(timer, at: record)
        bootTimer = timer
    }
}
