import CLinux
import KVM
import SwiftletCore
import VMM
#if arch(arm64)
import ARM64
typealias HostMachine = ARM64Machine
#elseif arch(x86_64)
import X86_64
typealias HostMachine = X86Machine
#endif

/// `swiftlet run`: parse flags, build the host architecture's machine, run it.
enum RunCommand {
    static func main(_ arguments: [String]) -> Int32 {
        do {
            switch try RunOptions.parse(arguments) {
            case .help:
                print(RunOptions.usage)
                return 0
            case .run(let config):
                return try run(config)
            }
        } catch {
            printError("swiftlet: \(error)")
            return error.isUsage ? 2 : 1
        }
    }

    static func run(_ config: VMConfig) throws(SwiftletError) -> Int32 {
        let system = try KVMSystem()
        let vm = try HostMachine.build(config, system: system, console: ConsoleOutput(fd: 1))
        let exit = try vm.run()
        if exit.status != 0 { printError("swiftlet: \(exit)") }
        return exit.status
    }
}

extension SwiftletError {
    var isUsage: Bool {
        if case .invalidArgument = self { return true }
        return false
    }
}
