import CLinux
import SwiftletCore

let swiftletVersion = "0.1.0"

let usage = """
Usage: swiftlet COMMAND [OPTIONS]

Swiftlet is a small KVM virtual machine monitor for arm64 and x86_64 Linux hosts.

Commands:
  run        boot a kernel in a new VM (swiftlet run --help); also takes
             Firecracker's flags (--api-sock, --config-file, ...)
  ctl        send a request to a running VM's control API (swiftlet ctl --help)
  jail       run `swiftlet run` confined, as Firecracker's jailer does: its own root
             directory, mount and PID namespaces, cgroup v2 limits, rlimits, an
             unprivileged uid/gid (swiftlet jail --help)
  version    print the version

Options:
  -h, --help     show this help
  -V, --version  print the version

Run under the name firecracker (a link or copy named firecracker, or firecracker-*),
the whole command line is Firecracker's: firecracker --help.
"""

// A client that goes away must not kill the VMM: writes report EPIPE instead.
sl_ignore_signal(SIGPIPE)
let arguments = processArguments()
// Embedded Swift has no main actor: the top-level variable is this thread's alone.
nonisolated(unsafe) var status: Int32 = 0
if CommandLineDialect.forProgramName(processName()) == .firecracker {
    exit(RunCommand.main(arguments, dialect: .firecracker))
}
switch arguments.first {
case nil:
    printError(usage)
    status = 2
case "-h", "--help", "help":
    print(usage)
case "-V", "--version", "version":
    print("swiftlet \(swiftletVersion) (\(HostMachine.name))")
case "run":
    status = RunCommand.main(Array(arguments.dropFirst()))
case "ctl":
    status = CtlCommand.main(Array(arguments.dropFirst()))
case "jail":
    status = JailCommand.main(Array(arguments.dropFirst()))
default:
    printError("swiftlet: unknown command '\(arguments[0])' (see swiftlet --help)")
    status = 2
}
exit(status)
