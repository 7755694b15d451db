import CLinux

/// Work that may block (opening and reading images, building a VM) on a thread of its own,
/// so the main loop keeps answering the API and handling signals meanwhile. The result is
/// handed to `completion` on the main thread, by the main loop that polls this source.
public final class BackgroundJob<Value>: PollSource {
    public typealias Outcome = Result<Value, SwiftletError>

    private let done: EventNotifier
    private let lock = Lock()
    private var outcome: Outcome?
    private var completion: ((Outcome) -> Void)?
    private var thread: Thread?

    public init(_ work: @escaping () -> Outcome, completion: @escaping (Outcome) -> Void) throws(SwiftletError) {
        done = try EventNotifier()
        self.completion = completion
        thread = try Thread.spawn { [self] in
            let result = work()
            lock.withLock { outcome = result }
            done.notify()
        }
    }

    /// Waits up to `milliseconds` for the work to end and hands its result to the completion
    /// now, on this (the main) thread, instead of at the main loop's next poll. False if the
    /// work did not end in time (the completion then runs later, as usual).
    public func complete(withinMilliseconds milliseconds: Int) -> Bool {
        if let running = thread {
            guard running.join(withinMilliseconds: milliseconds) else { return false }
            thread = nil
        }
        guard let completion, let result = lock.withLock({ outcome }) else { return true }
        self.completion = nil
        completion(result)
        return true
    }

    /// The process is ending: waits up to `milliseconds` for the work to end and drops its
    /// result unseen, so that what it built (a VM with its vsock socket and disk locks) is
    /// released by its deinit. False if the work did not end in time.
    public func abandon(withinMilliseconds milliseconds: Int) -> Bool {
        completion = nil
        guard let running = thread else { return true }
        guard running.join(withinMilliseconds: milliseconds) else { return false }
        thread = nil
        lock.withLock { outcome = nil }
        return true
    }

    // MARK: PollSource

    public func pollDescriptors() -> [pollfd] {
        completion == nil ? [] : [pollfd(fd: done.fd, events: Int16(POLLIN), revents: 0)]
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
