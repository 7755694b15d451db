import CLinux
import SwiftletCore
import KVM

/// The device I/O thread: an epoll loop over eventfds (queue notifications from KVM's
/// ioeventfds, and its own stop event), timerfds and devices' host descriptors (taps). Device work runs here, never on a vCPU thread, so a
/// vCPU never waits on the host's disks; handlers may block on file I/O.
public final class IOThread {
    private final class Handler {
        let fd: Int32
        /// An eventfd or timerfd: its counter is read (reset) before the action runs.
        let isCounter: Bool
        let action: () -> Void
        init(fd: Int32, isCounter: Bool, _ action: @escaping () -> Void) {
            self.fd = fd
            self.isCounter = isCounter
            self.action = action
        }
    }

    private let epollFD: Int32
    private let stopEvent: EventNotifier
    private var handlers: [Handler] = []
    /// Keeps the notifiers watched alive as long as the thread.
    private var notifiers: [EventNotifier] = []
    private var thread: Thread?

    public init() throws(SwiftletError) {
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw .lastSystemError("epoll_create1") }
        stopEvent = try EventNotifier()
        try add(stopEvent.fd, tag: UInt64.max, edgeTriggered: false)
    }

    deinit {
        stop()
        close(epollFD)
    }

    /// Runs `action` on this thread each time `notifier` is signalled (after draining it).
    /// Register everything before `start`.
    public func watch(_ notifier: EventNotifier, _ action: @escaping () -> Void) throws(SwiftletError) {
        notifiers.append(notifier)
        try watch(fd: notifier.fd, isCounter: true, action)
    }

    /// Runs `action` on this thread when `fd` becomes readable. A counter (eventfd,
    /// timerfd) is read first and watched level-triggered; any other descriptor (a tap) is
    /// watched edge-triggered, so `action` must read it until EAGAIN or until something
    /// else (a guest notification, a timer) is sure to call it again. The caller keeps `fd`
    /// open while the thread runs. Register everything before `start`.
    public func watch(fd: Int32, isCounter: Bool, _ action: @escaping () -> Void) throws(SwiftletError) {
        try add(fd, tag: UInt64(handlers.count), edgeTriggered: !isCounter)
        handlers.append(Handler(fd: fd, isCounter: isCounter, action))
    }

    private func add(_ fd: Int32, tag: UInt64, edgeTriggered: Bool) throws(SwiftletError) {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | (edgeTriggered ? EPOLLET.rawValue : 0)
        event.data.u64 = tag
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) == 0 else { throw .lastSystemError("epoll_ctl") }
    }

    public var isEmpty: Bool { handlers.isEmpty }

    public func start() throws(SwiftletError) {
        guard thread == nil else { return }
        thread = try Thread.spawn(named: "io") { [self] in
            Seccomp.enter(.io)
            loop()
        }
    }

    /// Stops the loop and joins the thread; a handler in progress finishes first, within
    /// `stopTimeoutMs`. A thread stuck longer (a host disk that does not answer) is left
    /// behind, named: the process is about to exit, and it must not keep it alive. False then.
    @discardableResult
    public func stop() -> Bool {
        guard let thread else { return true }
        stopEvent.notify()
        self.thread = nil
        guard thread.join(withinMilliseconds: IOThread.stopTimeoutMs) else {
            printError("swiftlet: the device I/O thread did not stop within \(IOThread.stopTimeoutMs / 1000) s (host I/O stuck?); exiting without it")
            return false
        }
        return true
    }

    static let stopTimeoutMs = 5000

    private func loop() {
        var events = [epoll_event](repeating: epoll_event(), count: 16)
        while true {
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epollFD, $0.baseAddress, Int32($0.count), -1) }
            if n < 0 {
                if sl_errno() == EINTR { continue }
                return
            }
            for i in 0..<Int(n) {
                let tag = events[i].data.u64
                if tag == UInt64.max { return }
                let handler = handlers[Int(tag)]
                if handler.isCounter {
                    var count: UInt64 = 0
                    _ = read(handler.fd, &count, 8)
                }
                handler.action()
            }
        }
    }
}

/// An interrupt raised through a KVM irqfd: one eventfd write, no ioctl, no exit.
final class IrqfdInterrupt: EdgeInterrupt {
    private let event: EventNotifier
    init(vm: KVMVM, gsi: UInt32) throws(SwiftletError) {
        event = try EventNotifier()
        try vm.registerIrqfd(event.fd, gsi: gsi)
    }
    func trigger() { event.notify() }
}

/// Where KVM has no irqfd: an edge made from the level line (raise, lower).
final class PulsedInterrupt: EdgeInterrupt {
    private let line: any InterruptLine
    init(_ line: any InterruptLine) { self.line = line }
    func trigger() {
        line.setLevel(true)
        line.setLevel(false)
    }
}
