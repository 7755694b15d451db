import CLinux

/// RFC 3339 UTC times to the nanosecond ("2026-11-24T09:15:02.123456789Z"), as the audit
/// log writes them: the log's own time layout (Logger.appendTimestamp) plus the "Z" that
/// makes it unambiguous to a parser.
public enum RFC3339 {
    public static func format(seconds: Int64, nanoseconds: Int) -> String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = UInt64(seconds - days * 86_400)
        let date = Logger.civilDate(daysSinceEpoch: days)
        var text = padded(UInt64(clamping: date.year), 4)
        text += "-" + padded(UInt64(date.month), 2) + "-" + padded(UInt64(date.day), 2)
        text += "T" + padded(secondOfDay / 3600, 2) + ":" + padded(secondOfDay / 60 % 60, 2) + ":" + padded(secondOfDay % 60, 2)
        text += "." + padded(UInt64(clamping: nanoseconds), 9) + "Z"
        return text
    }

    /// The wall clock now.
    public static func now() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return format(seconds: Int64(now.tv_sec), nanoseconds: Int(now.tv_nsec))
    }

    private static func padded(_ value: UInt64, _ digits: Int) -> String {
        let text = String(value)
        return text.utf8.count >= digits ? text : String(repeating: "0", count: digits - text.utf8.count) + text
    }
}
