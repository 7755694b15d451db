import CLinux
import SwiftletCore

/// The audit trail's writer (`--audit-log PATH`): one JSON line per event (see
/// AuditEvent), through a LineWriter like the log and the metrics, so the main loop never
/// waits for the destination; lines it cannot take are dropped and counted, and said at
/// exit. The file is created owner-only (0600): it names the users and what they changed.
/// Its descriptor is also given to the SIGSYS handler, which writes its own line there.
public final class AuditLog {
    /// A fresh audit file's mode.
    public static let fileMode: UInt32 = 0o600
    /// A `configured` line carries the whole configuration: room for a few of those.
    public static let capacity = 256 * 1024

    private let writer: LineWriter
    private let seesViolations: Bool

    /// Opens `path` (a file, appended to, or a named pipe: LineWriter.openDestination) and
    /// hands its descriptor to the seccomp report.
    public convenience init(path: String) throws(SwiftletError) {
        let fd = try LineWriter.openDestination(path, mode: AuditLog.fileMode)
        try self.init(fd: fd, closesDescriptor: true, reportsViolations: true)
    }

    /// Writes to `fd` (closed at the end when `closesDescriptor`).
    public init(fd: Int32, closesDescriptor: Bool, reportsViolations: Bool = false) throws(SwiftletError) {
        do {
            writer = try LineWriter(fd: fd, closesDescriptor: closesDescriptor, capacity: AuditLog.capacity, threadName: "audit writer")
        } catch {
            if closesDescriptor { close(fd) }
            throw error
        }
        seesViolations = reportsViolations
        if reportsViolations { sl_seccomp_set_audit_fd(fd) }
    }

    /// Queues `event`'s line, stamped now.
    public func record(_ event: AuditEvent) {
        let line = event.line(time: RFC3339.now())
        writer.append { $0.append(line) }
    }

    /// Lines dropped so far.
    public var missedLines: UInt64 { writer.missedLines }

    /// Waits at most `milliseconds` for the lines so far to be written (tests).
    public func waitUntilWritten(milliseconds: Int) -> Bool { writer.waitUntilWritten(milliseconds: milliseconds) }

    /// At exit: the seccomp report lets go of the descriptor first (the writer closes it),
    /// then what is queued is written out, waiting at most `milliseconds`. Lines lost.
    public func finish(milliseconds: Int) -> UInt64 {
        if seesViolations { sl_seccomp_set_audit_fd(-1) }
        return writer.finish(milliseconds: milliseconds)
    }
}
