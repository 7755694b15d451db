import CLinux

/// Writes a line to stderr (Embedded Swift's `print` only reaches stdout). Waits at most a
/// second for a stalled stderr (a terminal on hold): the VMM's last words must not keep
/// it from exiting.
public func printError(_ message: String) {
    var line = message
    line.append("\n")
    var utf8 = Array(line.utf8)
    var offset = 0
    while offset < utf8.count {
        var ready = pollfd(fd: 2, events: Int16(POLLOUT), revents: 0)
        let polled = poll(&ready, 1, 1000)
        if polled < 0 && sl_errno() == EINTR { continue }
        guard polled > 0 else { return }
        let n = utf8.withUnsafeMutableBytes { CLinux.write(2, $0.baseAddress! + offset, $0.count - offset) }
        if n <= 0 { if n < 0 && (sl_errno() == EINTR || sl_errno() == EAGAIN) { continue }; return }
        offset += n
    }
}

/// The process arguments without argv[0]; works where `CommandLine` does not exist.
public func processArguments() -> [String] {
    guard let argv = sl_argv() else { return [] }
    var arguments: [String] = []
    var index = 1
    while index < Int(sl_argc()), let argument = argv[index] {
        arguments.append(String(cString: argument))
        index += 1
    }
    return arguments
}

/// argv[0]'s last path component: the name the program was run under (`firecracker` asks
/// for Firecracker's command line).
public func processName() -> String {
    guard let argv = sl_argv(), sl_argc() > 0, let first = argv[0] else { return "" }
    let name = String(cString: first)
    guard let slash = name.lastIndex(of: "/") else { return name }
    return String(name[name.index(after: slash)...])
}
