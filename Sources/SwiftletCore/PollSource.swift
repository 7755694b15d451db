import CLinux

/// Something the main loop polls besides its own descriptors (the API socket and its
/// connections). Runs on the main thread only.
public protocol PollSource: AnyObject {
    /// Descriptors to poll this round.
    func pollDescriptors() -> [pollfd]
    /// The same descriptors with `revents` filled in, in the same order.
    func handleEvents(_ fds: [pollfd], now: Int64)
    /// Milliseconds (monotonic) of the next deadline this source has, if any.
    var nextDeadline: Int64? { get }
}
