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
        let processStart = ProcessTimestamp.now()
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
                return try run(config, startedAt: .processStart(measured: processStart, jailer: config.processStartTimes))
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

    /// Sets up the logger and the metrics, then runs the VMM (`serve`); an error that ends
    /// it is logged too, and the writers are written out on every way out.
    static func run(_ config: VMConfig, startedAt start: ProcessTimestamp) throws(SwiftletError) -> Int32 {
        // Before any thread exists (the log and metrics writers are threads): every thread
        // inherits the blocked signals, which then arrive only through the loop's signalfd.
        let loop = try MainLoop()
        // Compiled before any thread starts: each installs its own as it starts.
        try Seccomp.prepare(config.seccomp, denying: config.seccompDenials)
        let telemetry = Telemetry()
        let id = config.instanceID ?? "swiftlet-\(getpid())"
        telemetry.logger.instanceID = id
        Thread.setCurrentName("main")
        do {
            if let logger = config.logger { try telemetry.configure(logger) }
            if let metrics = config.metrics { try telemetry.configure(metrics) }
            if let path = config.auditLogPath { try telemetry.openAudit(path: path) }
            telemetry.logger.info("Running \(versionText(.swiftlet)), speaking Firecracker v\(APIRouter.firecrackerVersion)'s API")
            return try serve(config, id: id, loop: loop, telemetry: telemetry, startedAt: start)
        } catch {
            telemetry.logger.error("The VMM is exiting with status \(error.isBadInput ? 2 : 1): \(error)")
            telemetry.audit?.record(.stopped(status: error.isBadInput ? 2 : 1, reason: "\(error)"))
            reportLosses(telemetry.finish())
            throw error
        }
    }

    static func serve(_ config: VMConfig, id: String, loop: MainLoop, telemetry: Telemetry,
                      startedAt start: ProcessTimestamp) throws(SwiftletError) -> Int32 {
        // Before the first API client or guest: the VM's threads start under this filter too.
        Seccomp.enter(.main)
        if config.seccomp != .on { telemetry.logger.warn("seccomp filters are \(config.seccomp == .off ? "off" : "only logging violations"): the VMM's threads may make any system call") }
        let system = try KVMSystem()
        if let path = config.dumpDTBPath {
            try writeFile(path, try HostMachine.deviceTreeBlob(config, system: system))
            reportLosses(telemetry.finish())
            return 0
        }
        loop.add(telemetry.metrics)   // its period
        let controller = Controller(config: config, system: system, loop: loop, id: id, telemetry: telemetry)
        // The socket file goes on every way out (the handler keeps the server alive, so its
        // deinit would not run before exit).
        defer { controller.server?.shutDown() }
        if let path = config.apiSocketPath {
            let access = APIAccessPolicy(ownerUID: geteuid(), rules: config.apiAllow)
            let api = try APIServer(path: path, maxBodyBytes: config.apiMaxPayloadBytes, access: access,
                                    logger: telemetry.logger, audit: telemetry.audit) { request, ticket in
                controller.handle(request, ticket)
            }
            loop.add(api)
            controller.server = api   // the socket lives until the VM ends
            telemetry.logger.info("The API server is listening on \(path)")
        }
        // Startup ends once the VMM can be driven (Firecracker: its API server is up) or,
        // without an API, as the VM build begins; the first metrics line reports it.
        telemetry.metrics.recordStartup(since: start)
        if config.kernelPath != nil { try controller.start() }
        var exit = loop.run()
        var boots = 1
        while case .reset = exit, controller.config.rebootOnReset {
            boots += 1
            // A guest that resets in a loop must not flood the log: the first ten reboots,
            // then every hundredth.
            if boots <= 11 || boots % 100 == 0 {
                printError("swiftlet: \(exit); rebooting (boot \(boots)\(boots == 11 ? "; from now on every 100th is reported" : ""))")
                telemetry.logger.info("The guest reset (\(exit)): rebooting, boot \(boots)")
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
        telemetry.logger.log(exit.isFailure ? .error : .info, "The VMM is exiting with status \(exit.status): \(exit)")
        telemetry.audit?.record(.stopped(status: exit.status, reason: "\(exit)"))
        reportLosses(telemetry.finish())
        // Always one line, also for the normal ends: power-off, reset and a reset from a
        // guest panic all exit 0, and the line is how a person or a test tells them apart.
        printError("swiftlet: \(exit)")
        return exit.status
    }

    /// Log and metrics lines a stalled destination cost, said once at exit (as the
    /// console's dropped bytes are): the metrics count them too, but not those of the end.
    static func reportLosses(_ lost: (logLines: UInt64, metricsLines: UInt64, auditLines: UInt64)) {
        if lost.auditLines > 0 { printError("swiftlet: \(lost.auditLines) audit lines were dropped: the audit log destination did not keep up") }
        if lost.logLines > 0 { printError("swiftlet: \(lost.logLines) log lines were dropped: the log destination did not keep up") }
        if lost.metricsLines > 0 {
            printError("swiftlet: \(lost.metricsLines) metrics lines were dropped: the metrics destination did not keep up")
        }
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
