import CLinux

/// A joinable pthread running a Swift closure. Threads are few and long-lived (one per
/// vCPU, plus the main loop), so each is a real OS thread, not a task.
public final class Thread {
    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    public let handle: pthread_t
    private var joined = false

    private init(handle: pthread_t) { self.handle = handle }

    /// Every thread's stack. Smaller than a 2 MiB huge page on purpose: where the host's
    /// transparent huge pages are "always", a default 8 MiB stack that happens to span an
    /// aligned 2 MiB block is backed by a whole huge page on first touch (seen: 2 MiB more
    /// RSS, by chance of the mapping's address). Swiftlet's threads run loops, not deep
    /// recursion; the main thread keeps the process stack.
    public static let stackSize = 1 << 20

    public static func spawn(_ body: @escaping () -> Void) throws(SwiftletError) -> Thread {
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        var handle = pthread_t()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, Thread.stackSize)
        let rc = pthread_create(&handle, &attributes, { context in
            let body = Unmanaged<Body>.fromOpaque(context!).takeRetainedValue()
            body.run()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<Body>.fromOpaque(context).release()
            throw .system("pthread_create", errno: rc)
        }
        return Thread(handle: handle)
    }

    /// Sends `signal` to this thread (used to kick a vCPU out of KVM_RUN).
    public func signal(_ signal: Int32) {
        if !joined { _ = pthread_kill(handle, signal) }
    }

    public func join() {
        guard !joined else { return }
        joined = true
        _ = pthread_join(handle, nil)
    }

    /// Joins if the thread ends within `milliseconds`; false if it is still running.
    public func join(withinMilliseconds milliseconds: Int) -> Bool {
        guard !joined else { return true }
        guard sl_join_within(handle, milliseconds) == 0 else { return false }
        joined = true
        return true
    }
}
