import CLinux

/// Work that may block (opening and reading images, building a VM) on a thread of its own,
/// so the main loop keeps answering the API and handling signals meanwhile. The result is
/// handed to `completion` on the main thread, by the main loop that polls this source.
public final class BackgroundJob<Value>: PollSource {
    public typealias Outcome = Result<Value, SwiftletError>

    private let doneFD: Int32
    private let lock = Lock()
    private var outcome: Outcome?
    private var completion: ((Outcome) -> Void)?
    private var thread: Thread?

    public init(_ work: @escaping () -> Outcome, completion: @escaping (Outcome) -> Void) throws(SwiftletError) {
        doneFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard doneFD >= 0 else { throw .lastSystemError("eventfd") }
        self.completion = completion
        // If the thread cannot start, the throw releases this object and deinit closes doneFD.
        thread = try Thread.spawn { [self] in
            let result = work()
            lock.withLock { outcome = result }
            var one: UInt64 = 1
            _ = CLinux.write(doneFD, &one, 8)
        }
    }

    deinit { close(doneFD) }

    // MARK: PollSource

    public func pollDescriptors() -> [pollfd] {
        completion == nil ? [] : [pollfd(fd: doneFD, events: Int16(POLLIN), revents: 0)]
    }

    public func handleEvents(_ fds: [pollfd], now: Int64) {
        guard let first = fds.first, first.revents != 0, let completion else { return }
        guard let result = lock.withLock({ outcome }) else { return }
        thread?.join()
        thread = nil
        self.completion = nil
        completion(result)
    }

    public var nextDeadline: Int64? { nil }
}
