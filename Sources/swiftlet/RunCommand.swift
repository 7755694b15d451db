import API
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

/// `swiftlet run` (and the binary run as `firecracker`): parse flags and the config file,
/// build the host architecture's machine, run it; with an API socket, serve the control
/// API too (and with no kernel yet, wait to be configured).
enum RunCommand {
    static func main(_ arguments: [String], dialect: CommandLineDialect = .swiftlet) -> Int32 {
        do {
            switch try RunOptions.parse(arguments, dialect: dialect) {
            case .help:
                print(dialect == .firecracker ? RunOptions.firecrackerUsage : RunOptions.usage)
                return 0
            case .version:
                print(versionText(dialect))
                return 0
            case .run(var config):
                if let path = config.configFilePath { try loadConfigFile(path, into: &config) }
                return try run(config)
            }
        } catch {
            printError("swiftlet: \(error)")
            return error.isBadInput ? 2 : 1
        }
    }

    /// `firecracker --version` answers as Firecracker does on its first line, which is
    /// what tools parse (Kata Containers takes the second word, less its "v", as the
    /// version: at least 0.21.1), then says which Swiftlet this is.
    static func versionText(_ dialect: CommandLineDialect) -> String {
        let swiftlet = "swiftlet \(swiftletVersion) (\(HostMachine.name))"
        guard dialect == .firecracker else { return swiftlet }
        return "Firecracker v\(APIRouter.firecrackerVersion)\n\(swiftlet), speaking Firecracker v\(APIRouter.firecrackerVersion)'s command line and API"
    }

    /// --config-file: the file's configuration on top of the command line's. Every problem
    /// is one line naming the file (opening and reading errors name it already).
    static func loadConfigFile(_ path: String, into config: inout VMConfig) throws(SwiftletError) {
        let bytes = try ImageFile.open(path, what: "config file").contents(maxBytes: ConfigFile.maxBytes)
        do {
            try ConfigFile.apply(bytes, to: &config)
        } catch {
            throw .invalidArgument("config file \(path): \(error)")
        }
    }

    static func run(_ config: VMConfig) throws(SwiftletError) -> Int32 {
        let system = try KVMSystem()
        if let path = config.dumpDTBPath {
            try writeFile(path, try HostMachine.deviceTreeBlob(config, system: system))
            return 0
        }
        let loop = try MainLoop()
        let controller = Controller(config: config, system: system, loop: loop, id: config.instanceID ?? "swiftlet-\(getpid())")
        // The socket file goes on every way out (the handler keeps the server alive, so its
        // deinit would not run before exit).
        defer { controller.server?.shutDown() }
        if let path = config.apiSocketPath {
            let api = try APIServer(path: path, maxBodyBytes: config.apiMaxPayloadBytes) { request, ticket in controller.handle(request, ticket) }
            loop.add(api)
            controller.server = api   // the socket lives until the VM ends
        }
        if config.kernelPath != nil { try controller.start() }
        var exit = loop.run()
        var boots = 1
        while case .reset = exit, controller.config.rebootOnReset {
            boots += 1
            // A guest that resets in a loop must not flood the log: the first ten reboots,
            // then every hundredth.
            if boots <= 11 || boots % 100 == 0 {
                printError("swiftlet: \(exit); rebooting (boot \(boots)\(boots == 11 ? "; from now on every 100th is reported" : ""))")
            }
            do {
                try controller.reboot()
            } catch {
                exit = .failure("cannot reboot: \(error)")
                break
            }
            exit = loop.run()
        }
        controller.server?.shutDown()
        controller.abandonJobs()
        controller.finishConsole()
        if controller.config.printStats, let vm = controller.vm {
            for line in vm.exitCounters.report(buses: [vm.mmioBus, vm.pioBus]) { printError("swiftlet: stats: \(line)") }
            // The VMM's own share of an end: from the stop request (the guest's power-off
            // exit, a signal) to here, with the threads joined and the console written out.
            if let since = vm.control.stopRequestedAt {
                let micros = (monotonicNanoseconds() &- since) / 1000
                printError("swiftlet: stats: stopping took \(micros / 1000).\(String(micros % 1000 + 1000).dropFirst()) ms from the stop request to this line")
            }
        }
        // Always one line, also for the normal ends: power-off, reset and a reset from a
        // guest panic all exit 0, and the line is how a person or a test tells them apart.
        printError("swiftlet: \(exit)")
        return exit.status
    }
}

/// Writes `bytes` to `path` (created or truncated, mode 0644).
func writeFile(_ path: String, _ bytes: [UInt8]) throws(SwiftletError) {
    let fd = sl_open_mode(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw .invalidArgument("cannot write \(path): \(SwiftletError.errnoString(sl_errno()))") }
    defer { close(fd) }
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 {
            if sl_errno() == EINTR { continue }
            throw .invalidArgument("cannot write \(path): \(SwiftletError.errnoString(sl_errno()))")
        }
        offset += n
    }
}
