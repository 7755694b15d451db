import CLinux
import SwiftletCore

/// A machine's graceful-shutdown button (arm64: the PL061 power key; x86: Ctrl-Alt-Del).
public protocol PowerButton: AnyObject {
    func setPressed(_ pressed: Bool)
}

/// The main thread's loop: host console input to the guest UART, signals (SIGTERM presses
/// the power button, SIGINT/SIGHUP/SIGQUIT stop), other sources (the API socket), and the
/// VM's stop event. Runs before the VM exists too, when the API is to configure it.
public final class MainLoop {
    public static let keyPressMilliseconds: Int64 = 200
    public static let gracePeriodSeconds: Int64 = 30
    static let handledSignals = [SIGTERM, SIGINT, SIGHUP, SIGQUIT]

    public private(set) var vm: VM?
    public private(set) var sources: [any PollSource] = []
    private let signalFD: Int32
    private var stdinOpen = false
    private let readsStdin: Bool
    private var escape = EscapeFilter()
    private let filterEscapes = Terminal.stdinIsTerminal
    /// Set when the loop must end without a VM (a signal before boot).
    private var exitWithoutVM: VMExit?
    /// The first stop asked for on this side while a VM ran (it may lose the race to the guest's own end).
    private var hostStop: VMExit?
    // Input read from stdin that the UART had no room for yet.
    private var pending = [UInt8](repeating: 0, count: 256)
    private var pendingStart = 0
    private var pendingCount = 0
    private var releaseKeyAt: Int64?
    private var powerOffDeadline: Int64?

    /// Blocks the handled signals; call before any thread exists so that all inherit the
    /// mask and the signals arrive only through the signalfd.
    /// `readsStdin`: whether host stdin feeds the guest console (false in embedded uses).
    public init(readsStdin: Bool = true) throws(SwiftletError) {
        self.readsStdin = readsStdin
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in MainLoop.handledSignals { sigaddset(&mask, signal) }
        _ = pthread_sigmask(SIG_BLOCK, &mask, nil)
        signalFD = signalfd(-1, &mask, Int32(SFD_CLOEXEC | SFD_NONBLOCK))
        guard signalFD >= 0 else { throw .lastSystemError("signalfd") }
    }

    deinit { close(signalFD) }

    /// Starts `vm`'s vCPUs and attaches the console. Refused once the loop is ending (a
    /// signal came while the VM was being built). If the vCPUs cannot all start, the VM is
    /// stopped and the loop ends with the error once the threads that did start are joined.
    public func start(_ vm: VM) throws(SwiftletError) {
        if let exit = exitWithoutVM { throw .guestFailure("not started: the VMM is stopping (\(exit))") }
        self.vm = vm
        stdinOpen = readsStdin && vm.consoleInput != nil
        if stdinOpen { Terminal.enterRawMode() }
        do {
            try vm.start()
        } catch {
            vm.requestStop(.notStarted(error))
            throw error
        }
    }

    /// Presses the power button now (API's SendCtrlAltDel); false if the machine has none.
    public func pressPowerButton() -> Bool {
        guard let button = vm?.powerButton else { return false }
        button.setPressed(true)
        releaseKeyAt = monotonicMilliseconds() + MainLoop.keyPressMilliseconds
        return true
    }

    /// Runs until the VM stops (or a signal ends a VM-less wait); joins the vCPU threads and
    /// restores the terminal before returning why.
    public func run() -> VMExit {
        defer { Terminal.restore() }
        var fds: [pollfd] = []
        while true {
            if let vm, vm.control.isStopping { break }
            if vm == nil, exitWithoutVM != nil { break }
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: vm?.control.eventFD ?? -1, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0))
            // Read stdin only while the UART can take more; otherwise wait for its notice.
            fds.append(pollfd(fd: stdinOpen && pendingCount == 0 ? 0 : -1, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: vm?.consoleSpace?.fd ?? -1, events: Int16(POLLIN), revents: 0))
            var sourceRanges: [(start: Int, count: Int)] = []
            for source in sources {
                let descriptors = source.pollDescriptors()
                sourceRanges.append((fds.count, descriptors.count))
                fds.append(contentsOf: descriptors)
            }
            let rc = poll(&fds, nfds_t(fds.count), timeoutMilliseconds())
            if rc < 0 && sl_errno() != EINTR {
                requestStop(.failure("poll: \(SwiftletError.errnoString(sl_errno()))"))
                break
            }
            if fds[1].revents != 0 { handleSignals() }
            if fds[3].revents != 0 { vm?.consoleSpace?.drain() }
            if pendingCount > 0 { flushPending() }
            if fds[2].revents != 0 { readStdin() }
            let now = monotonicMilliseconds()
            for (source, range) in zip(sources, sourceRanges) {
                source.handleEvents(Array(fds[range.start..<(range.start + range.count)]), now: now)
            }
            handleTimers(now)
        }
        guard let vm else { return exitWithoutVM ?? .stopped }
        let stopped = vm.joinThreads()
        let exit = vm.control.exit ?? .stopped
        // A stop the host asked for (a signal, the console's quit) wins over a guest reset
        // that got in first: after SIGINT the VMM must end, not boot the guest again.
        if case .reset = exit, let hostStop { return hostStop }
        // A thread left running holds the old VM (its RAM, disk locks, sockets): no reboot.
        if case .reset(let how) = exit, !stopped {
            return .failure("guest reset (\(how)), but the old VM's threads did not stop: not rebooting")
        }
        return exit
    }

    /// Lets go of the VM `run` has just returned from (its threads are joined), so that a
    /// new one can be started in this loop: a guest reboot. A power-button press in
    /// progress is forgotten; the grace period after SIGTERM still runs.
    public func detachVM() {
        vm = nil
        stdinOpen = false
        releaseKeyAt = nil
        hostStop = nil
    }

    /// Ends the loop: stops the VM, or (before there is one) ends the wait for it.
    public func requestStop(_ exit: VMExit) {
        if let vm {
            vm.requestStop(exit)
            if hostStop == nil { hostStop = exit }
        } else if exitWithoutVM == nil {
            exitWithoutVM = exit
        }
    }

    public func add(_ source: any PollSource) { sources.append(source) }

    public func remove(_ source: any PollSource) { sources.removeAll { $0 === source } }

    private func timeoutMilliseconds() -> Int32 {
        var deadlines = [releaseKeyAt, powerOffDeadline].compactMap { $0 }
        for source in sources { if let deadline = source.nextDeadline { deadlines.append(deadline) } }
        guard let next = deadlines.min() else { return -1 }
        return Int32(clamping: max(0, next - monotonicMilliseconds()))
    }

    private func handleTimers(_ now: Int64) {
        if let release = releaseKeyAt, now >= release {
            releaseKeyAt = nil
            vm?.powerButton?.setPressed(false)
        }
        if let deadline = powerOffDeadline, now >= deadline {
            powerOffDeadline = nil
            requestStop(.failure("the guest did not power off within \(MainLoop.gracePeriodSeconds) s of the power button"))
        }
    }

    private func handleSignals() {
        var info = signalfd_siginfo()
        while read(signalFD, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
            let signal = Int32(info.ssi_signo)
            if signal == SIGTERM, powerOffDeadline == nil, vm?.isPaused == false, pressPowerButton() {
                // First SIGTERM: ask the guest to power off, as a power button would.
                powerOffDeadline = monotonicMilliseconds() + MainLoop.gracePeriodSeconds * 1000
            } else {
                requestStop(.signal(signal))
            }
        }
    }

    private func readStdin() {
        let n = pending.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
        if n < 0 {
            if sl_errno() == EINTR || sl_errno() == EAGAIN { return }
            stdinOpen = false
            return
        }
        if n == 0 {
            // End of input (e.g. stdin is /dev/null): the guest keeps running.
            stdinOpen = false
            return
        }
        var count = n
        if filterEscapes {
            let (kept, action) = pending.withUnsafeMutableBytes { escape.filter($0, count: n) }
            if action == .quit { requestStop(.stopped); return }
            count = kept
        }
        pendingStart = 0
        pendingCount = count
        flushPending()
    }

    private func flushPending() {
        guard let input = vm?.consoleInput else { pendingCount = 0; return }
        let accepted = pending.withUnsafeBytes {
            input.push(UnsafeRawBufferPointer(rebasing: $0[pendingStart..<(pendingStart + pendingCount)]))
        }
        pendingStart += accepted
        pendingCount -= accepted
    }
}
