import CLinux
import SwiftletCore

/// A machine's graceful-shutdown button (arm64: the PL061 power key; x86: Ctrl-Alt-Del).
public protocol PowerButton: AnyObject {
    func setPressed(_ pressed: Bool)
}

/// The main thread's loop while the vCPUs run: host console input to the guest UART,
/// signals (SIGTERM presses the power button, SIGINT/SIGHUP stop), and the stop event.
final class EventLoop {
    static let keyPressMilliseconds: Int64 = 200
    static let gracePeriodSeconds: Int64 = 30

    private let vm: VM
    private let signalFD: Int32
    private var stdinOpen: Bool
    private var escape = EscapeFilter()
    private let filterEscapes: Bool
    // Input read from stdin that the UART had no room for yet.
    private var pending = [UInt8](repeating: 0, count: 256)
    private var pendingStart = 0
    private var pendingCount = 0
    private var releaseKeyAt: Int64?
    private var powerOffDeadline: Int64?

    init(vm: VM) throws(SwiftletError) {
        self.vm = vm
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT] { sigaddset(&mask, signal) }
        signalFD = signalfd(-1, &mask, Int32(SFD_CLOEXEC | SFD_NONBLOCK))
        guard signalFD >= 0 else { throw .lastSystemError("signalfd") }
        stdinOpen = vm.consoleInput != nil
        filterEscapes = Terminal.stdinIsTerminal
    }

    deinit { close(signalFD) }

    /// Blocks the handled signals in the calling thread; call before any vCPU thread
    /// exists so they inherit the mask and the signals reach the signalfd.
    static func blockSignals() {
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT] { sigaddset(&mask, signal) }
        _ = pthread_sigmask(SIG_BLOCK, &mask, nil)
    }

    func run() {
        let control = vm.control
        var fds = [pollfd](repeating: pollfd(), count: 4)
        while !control.isStopping {
            fds[0] = pollfd(fd: control.eventFD, events: Int16(POLLIN), revents: 0)
            fds[1] = pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0)
            // Read stdin only while the UART can take more; otherwise wait for its notice.
            let wantStdin = stdinOpen && pendingCount == 0
            fds[2] = pollfd(fd: wantStdin ? 0 : -1, events: Int16(POLLIN), revents: 0)
            fds[3] = pollfd(fd: vm.consoleSpace?.fd ?? -1, events: Int16(POLLIN), revents: 0)
            let rc = poll(&fds, 4, timeoutMilliseconds())
            if rc < 0 && sl_errno() != EINTR { control.requestStop(.failure("poll: \(SwiftletError.errnoString(sl_errno()))")); return }
            if fds[1].revents != 0 { handleSignals() }
            if fds[3].revents != 0 { vm.consoleSpace?.drain() }
            if pendingCount > 0 { flushPending() }
            if fds[2].revents != 0 { readStdin() }
            handleTimers()
        }
    }

    private func timeoutMilliseconds() -> Int32 {
        let deadlines = [releaseKeyAt, powerOffDeadline].compactMap { $0 }
        guard let next = deadlines.min() else { return -1 }
        return Int32(clamping: max(0, next - monotonicMilliseconds()))
    }

    private func handleTimers() {
        let now = monotonicMilliseconds()
        if let release = releaseKeyAt, now >= release {
            releaseKeyAt = nil
            vm.powerButton?.setPressed(false)
        }
        if let deadline = powerOffDeadline, now >= deadline {
            vm.requestStop(.failure("the guest did not power off within \(EventLoop.gracePeriodSeconds) s of the power button"))
        }
    }

    private func handleSignals() {
        var info = signalfd_siginfo()
        while read(signalFD, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
            let signal = Int32(info.ssi_signo)
            if signal == SIGTERM, let button = vm.powerButton, powerOffDeadline == nil {
                // First SIGTERM: ask the guest to power off, as a power button would.
                button.setPressed(true)
                releaseKeyAt = monotonicMilliseconds() + EventLoop.keyPressMilliseconds
                powerOffDeadline = monotonicMilliseconds() + EventLoop.gracePeriodSeconds * 1000
            } else {
                vm.requestStop(.signal(signal))
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
            if action == .quit { vm.requestStop(.stopped); return }
            count = kept
        }
        pendingStart = 0
        pendingCount = count
        flushPending()
    }

    private func flushPending() {
        guard let input = vm.consoleInput else { pendingCount = 0; return }
        let accepted = pending.withUnsafeBytes {
            input.push(UnsafeRawBufferPointer(rebasing: $0[pendingStart..<(pendingStart + pendingCount)]))
        }
        pendingStart += accepted
        pendingCount -= accepted
    }
}

func monotonicMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}
