import CLinux

extension Thread {
    /// Names the calling thread, for log lines (Firecracker's `fc_vcpu 0`, `fc_api`) and,
    /// except on the main thread, for ps -L and top -H (whose names keep 15 bytes).
    public static func setCurrentName(_ name: String) {
        name.withCString { sl_thread_set_name($0) }
    }

    /// The calling thread's name; "-" (as a log line shows it) if it has none.
    public static var currentName: String {
        guard let name = sl_thread_name(), name[0] != 0 else { return "-" }
        return String(cString: name)
    }

    /// Spawns a thread that names itself `name` first.
    public static func spawn(named name: String, _ body: @escaping () -> Void) throws(SwiftletError) -> Thread {
        try spawn {
            setCurrentName(name)
            body()
        }
    }
}
