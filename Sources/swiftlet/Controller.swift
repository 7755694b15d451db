import CLinux
import API
import KVM
import SwiftletCore
import VMM
#if arch(arm64)
import ARM64
#elseif arch(x86_64)
import X86_64
#endif

/// Owns the VM's configuration and lifecycle for the CLI and the control API: configure
/// before start, build the host machine on a background thread (InstanceStart, or at once
/// with --kernel) so the main loop never waits on files or KVM, then start it on the main
/// thread; pause, resume, power button. Logs the VM's life and feeds the metrics
/// (attach, detach, console, pause and resume times); with an audit trail, records each
/// request it handles (who, what, the answer, what changed) and the VM's lifecycle.
final class Controller {
    private(set) var config: VMConfig
    private let system: KVMSystem
    private let loop: MainLoop
    private(set) var vm: VM?
    private let id: String
    /// The build under way, if any, and the API request waiting for its outcome.
    private var building: BackgroundJob<VM>?
    private var startTicket: APIServer.Ticket?
    /// The media change under way (PATCH /drives), if any.
    private var mediaChange: BackgroundJob<Bool>?
    /// Where the guest's console goes (made with the first build).
    private var console: ConsoleOutput?
    /// Set once the server exists (it holds a handler that calls back into this object).
    var server: APIServer?
    private let telemetry: Telemetry
    private var log: Logger { telemetry.logger }
    private var audit: AuditLog? { telemetry.audit }
    /// Requests answered later (InstanceStart, a media change), as the audit trail keeps them.
    private var pendingAudits: [APIServer.Ticket: AuditedRequest] = [:]
    /// The configuration the VM is first built from is audited once (not per reboot).
    private var configuredAudited = false
    /// When the build under way began (for the line that says it is running).
    private var buildStartedAt: Int64 = 0

    init(config: VMConfig, system: KVMSystem, loop: MainLoop, id: String, telemetry: Telemetry) {
        self.config = config
        self.system = system
        self.loop = loop
        self.id = id
        self.telemetry = telemetry
    }

    /// Set by the first start: a VM being rebuilt for a guest reboot is still "Running".
    private var hasStarted = false
    /// Between a guest reset and the new VM's start: there is no VM to pause or change.
    private var isRebooting: Bool { hasStarted && vm == nil }

    var state: InstanceState {
        guard hasStarted else { return .notStarted }
        return vm?.isPaused == true ? .paused : .running
    }

    /// Builds the VM in the background and starts it when built. Without a ticket (the
    /// CLI's --kernel) a failure ends the main loop; with one, it is the request's answer.
    func start(answering ticket: APIServer.Ticket? = nil) throws(SwiftletError) {
        let console: ConsoleOutput
        if let existing = self.console { console = existing } else { console = try ConsoleOutput(fd: 1) }
        self.console = console
        telemetry.metrics.console = console
        let config = self.config, system = self.system
        log.info("Building the VM: \(Controller.summary(config))")
        if !configuredAudited {
            configuredAudited = true
            audit?.record(.configured(config))
        }
        buildStartedAt = monotonicMilliseconds()
        let job = try BackgroundJob<VM>({ () -> BackgroundJob<VM>.Outcome in
            do throws(SwiftletError) {
                return .success(try HostMachine.build(config, system: system, console: console))
            } catch {
                return .failure(error)
            }
        }, completion: { [self] outcome in finishStart(outcome) })
        building = job
        startTicket = ticket
        loop.add(job)
    }

    private func finishStart(_ outcome: BackgroundJob<VM>.Outcome) {
        if let job = building { loop.remove(job) }
        building = nil
        let ticket = startTicket
        startTicket = nil
        var failure: SwiftletError?
        switch outcome {
        case .success(let built):
            do {
                vm = built
                let reboot = hasStarted
                hasStarted = true
                try loop.start(built)
                audit?.record(.started(reboot: reboot))
                telemetry.metrics.attach(built)
                log.info("The VM is running (built and started in \(monotonicMilliseconds() - buildStartedAt) ms)")
                // Start-up is over: the code only it ran (parsing, loading, the device tree or
                // ACPI tables) need not stay mapped; the running VM's code faults back in.
                _ = sl_release_program_text()
            } catch {
                failure = error
            }
        case .failure(let error):
            failure = error
        }
        if let failure {
            log.error("Cannot start the VM: \(failure)")
            audit?.record(.startFailed("\(failure)"))
        }
        if let ticket {
            let answer = failure.map { APIError(status: $0.isBadInput ? 400 : 500, message: "cannot start the VM: \($0)").response() }
            self.answer(ticket, answer ?? .noContent())
        } else if let failure {
            // A rebuild for a reboot that fails is the VMM's failure, not the user's input.
            loop.requestStop(hasStarted ? .failure("cannot reboot: \(failure)") : .notStarted(failure))
        }
    }

    /// After the guest reset itself (`loop.run` returned): the same configuration, with the
    /// API's changes, is built afresh and started, as a server's reset would. The old VM is
    /// let go first: its disks' locks, taps, vsock socket and guest RAM go with it.
    /// A media change under way finishes first (bounded): the new VM opens the new image.
    func reboot() throws(SwiftletError) {
        if let job = mediaChange, !job.complete(withinMilliseconds: 5000) {
            throw .guestFailure("a media change (PATCH /drives) did not finish within 5 s")
        }
        loop.detachVM()
        // What the old VM counted since the last metrics line goes into the next one.
        telemetry.metrics.detach()
        vm = nil
        try start()
    }

    /// The VMM is exiting: a build or media change still under way (a signal came first) is
    /// waited for, bounded, and its result dropped, so nothing it made outlives the process.
    func abandonJobs() {
        if let job = building {
            loop.remove(job)
            if !job.abandon(withinMilliseconds: 5000) { printError("swiftlet: the VM being built did not finish within 5 s; exiting without it") }
        }
        building = nil
        if let job = mediaChange {
            loop.remove(job)
            _ = job.abandon(withinMilliseconds: 5000)
        }
        mediaChange = nil
    }

    /// Writes out the guest's last console output; says how much was lost, if any.
    func finishConsole() {
        guard let console else { return }
        let lost = console.finish()
        if lost > 0 { printError("swiftlet: \(lost) bytes of guest console output were dropped: the host's stdout did not keep up") }
    }

    func handle(_ request: HTTPRequest, _ ticket: APIServer.Ticket) -> APIReply {
        // Taken before the request runs: the resource as it was.
        var audited = audit == nil ? nil : AuditedRequest(request, peer: ticket.peer, config: config, state: state)
        let reply: APIReply
        do {
            let action = try APIRouter.route(request, state: state)
            audited?.actionType = action.actionType
            reply = try perform(action, ticket)
        } catch {
            reply = .now(error.response())
        }
        if let audited {
            switch reply {
            case .now(let response): recordAnswer(audited, response)
            case .later: pendingAudits[ticket] = audited
            }
        }
        return reply
    }

    /// Gives a deferred answer, audited as the request's (the request had its effect
    /// whether or not its client is still there to read the answer).
    private func answer(_ ticket: APIServer.Ticket, _ response: HTTPResponse) {
        if let audited = pendingAudits.removeValue(forKey: ticket) { recordAnswer(audited, response) }
        _ = server?.respond(ticket, response)
    }

    private func recordAnswer(_ audited: AuditedRequest, _ response: HTTPResponse) {
        let new = audited.old == nil ? nil : AuditedRequest.resource(audited.path, config: config, state: state)
        audit?.record(.apiRequest(audited, status: response.status, new: new))
    }

    private func perform(_ action: APIAction, _ ticket: APIServer.Ticket) throws(APIError) -> APIReply {
        switch action {
        case .describeInstance:
            return .now(.json(APIRouter.instanceInfo(id: id, state: state)))
        case .describeVersion:
            return .now(.json(APIRouter.version()))
        case .describeMachine:
            return .now(.json(APIRouter.machineConfig(config)))
        case .describeConfig:
            return .now(.json(APIRouter.vmConfig(config)))
        case .configureBootSource, .configureMachine, .updateMachine, .configureDrive, .configureNetworkInterface,
             .configureVsock, .configureEntropy, .configureLogger, .configureMetrics:
            try refuseWhileStarting()
            var updated = config
            _ = try action.configure(&updated)
            do { try updated.validate() } catch { throw .badRequest("\(error)") }
            // The logger and the metrics take their new destination now (Firecracker's
            // answer to a path it cannot open is a 400); the configuration only if they did.
            do throws(SwiftletError) {
                if case .configureLogger(let logger) = action { try telemetry.configure(logger) }
                if case .configureMetrics(let metrics) = action { try telemetry.configure(metrics) }
            } catch {
                throw APIError(status: error.isBadInput ? 400 : 500, message: "\(error)")
            }
            config = updated
            return .now(.noContent())
        case .flushMetrics:
            switch telemetry.metrics.flush() {
            case .queued, .notConfigured:
                // Without a metrics path there is nothing to write, and Firecracker answers 204.
                return .now(.noContent())
            case .dropped:
                throw APIError(status: 500, message: "the metrics destination is not keeping up: this line was dropped "
                    + "(counted in logger.missed_metrics_count; its counts go into the next line)")
            }
        case .updateDrive(let id, let path, let limiter):
            try refuseWhileRebooting()
            guard let vm, let index = config.disks.firstIndex(where: { $0.id == id }) else {
                throw .badRequest("no drive \"\(id)\" in this VM")
            }
            // A media change that is refused at once leaves the limits as they were.
            if let path { try changeMedia(id, path, ticket) }
            if let limiter {
                do { try vm.devices.updateDiskLimits(of: id, limiter) } catch { throw .badRequest("\(error)") }
                config.disks[index].rateLimiter = RateLimiterConfig.patched(config.disks[index].rateLimiter, with: limiter)
            }
            return path == nil ? .now(.noContent()) : .later
        case .updateNetworkInterface(let id, let rx, let tx):
            try refuseWhileRebooting()
            guard let vm, let index = config.networkInterfaces.firstIndex(where: { $0.id == id }) else {
                throw .badRequest("no network interface \"\(id)\" in this VM")
            }
            do { try vm.devices.updateNetworkLimits(of: id, rx: rx, tx: tx) } catch { throw .badRequest("\(error)") }
            if let rx { config.networkInterfaces[index].rxRateLimiter = RateLimiterConfig.patched(config.networkInterfaces[index].rxRateLimiter, with: rx) }
            if let tx { config.networkInterfaces[index].txRateLimiter = RateLimiterConfig.patched(config.networkInterfaces[index].txRateLimiter, with: tx) }
            return .now(.noContent())
        case .start:
            try refuseWhileStarting()
            guard config.kernelPath != nil else { throw .badRequest("no boot source: PUT /boot-source with a kernel_image_path first") }
            do { try start(answering: ticket) } catch { throw APIError(status: 500, message: "cannot start the VM: \(error)") }
            return .later
        case .sendCtrlAltDel:
            try refuseWhileRebooting()
            guard loop.pressPowerButton() else { throw .badRequest("this machine has no power button") }
            return .now(.noContent())
        case .pause:
            try refuseWhileRebooting()
            guard let vm else { return .now(.noContent()) }
            let begin = monotonicNanoseconds()
            do { try vm.pause() } catch { throw APIError(status: 500, message: "\(error)") }
            let microseconds = (monotonicNanoseconds() - begin) / 1000
            telemetry.metrics.recordPause(microseconds: microseconds)
            log.info("The VM is paused (in \(microseconds) us)")
            audit?.record(.paused)
            return .now(.noContent())
        case .resume:
            try refuseWhileRebooting()
            guard let vm else { return .now(.noContent()) }
            let begin = monotonicNanoseconds()
            vm.resume()
            let microseconds = (monotonicNanoseconds() - begin) / 1000
            telemetry.metrics.recordResume(microseconds: microseconds)
            log.info("The VM is resumed (in \(microseconds) us)")
            audit?.record(.resumed)
            return .now(.noContent())
        }
    }

    /// PATCH /drives/{id}: the disk's image is replaced under the running guest, which sees
    /// a configuration change with the new capacity. Opening the file and waiting for the
    /// disk's I/O in flight happen on a thread of their own; the answer comes when done.
    private func changeMedia(_ id: String, _ path: String, _ ticket: APIServer.Ticket) throws(APIError) {
        guard let vm, let index = config.disks.firstIndex(where: { $0.id == id }) else {
            throw .badRequest("no drive \"\(id)\" in this VM")
        }
        guard mediaChange == nil else { throw APIError(status: 400, message: "a media change is under way; try again when it has finished") }
        let devices = vm.devices, readOnly = config.disks[index].readOnly
        let job: BackgroundJob<Bool>
        do {
            job = try BackgroundJob<Bool>({ () -> BackgroundJob<Bool>.Outcome in
                do throws(SwiftletError) {
                    try devices.changeMedia(of: id, toPath: path, readOnly: readOnly)
                    return .success(true)
                } catch {
                    return .failure(error)
                }
            }, completion: { [self] outcome in
                if let job = mediaChange { loop.remove(job) }
                mediaChange = nil
                switch outcome {
                case .success:
                    if let index = config.disks.firstIndex(where: { $0.id == id }) { config.disks[index].path = path }
                    answer(ticket, .noContent())
                case .failure(let error):
                    answer(ticket, APIError(status: error.isBadInput ? 400 : 500, message: "\(error)").response())
                }
            })
        } catch {
            throw APIError(status: 500, message: "\(error)")
        }
        mediaChange = job
        loop.add(job)
    }

    /// The VM a build makes, in a line.
    static func summary(_ config: VMConfig) -> String {
        var parts = ["\(config.cpus) vCPU\(config.cpus == 1 ? "" : "s")", "\(config.memoryMiB) MiB",
                     "kernel \(config.kernelPath ?? "-")"]
        if let initrd = config.initrdPath { parts.append("initrd \(initrd)") }
        if !config.disks.isEmpty { parts.append("disks " + config.disks.map { $0.id }.joined(separator: ", ")) }
        if !config.networkInterfaces.isEmpty { parts.append("interfaces " + config.networkInterfaces.map { $0.id }.joined(separator: ", ")) }
        if let vsock = config.vsock { parts.append("vsock cid \(vsock.guestCID)") }
        if config.entropy { parts.append("rng") }
        return parts.joined(separator: ", ")
    }

    private func refuseWhileStarting() throws(APIError) {
        guard building == nil else {
            throw .badRequest(hasStarted ? "the guest is rebooting; try again in a moment" : "the VM is starting (InstanceStart is under way)")
        }
    }

    private func refuseWhileRebooting() throws(APIError) {
        guard !isRebooting else { throw .badRequest("the guest is rebooting; try again in a moment") }
    }
}
