import CLinux

/// Writes to stderr (Embedded Swift's `print` only reaches stdout).
public func printError(_ message: String) {
    var line = message
    line.append("\n")
    var utf8 = Array(line.utf8)
    var offset = 0
    while offset < utf8.count {
        let n = utf8.withUnsafeMutableBytes { CLinux.write(2, $0.baseAddress! + offset, $0.count - offset) }
        if n <= 0 { if n < 0 && sl_errno() == EINTR { continue }; return }
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
