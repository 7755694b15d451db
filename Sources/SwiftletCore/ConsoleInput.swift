/// A device that takes host console input (PL011 RX, 16550 RBR).
public protocol ConsoleInput: AnyObject {
    /// Queues bytes; returns how many fitted. The caller keeps the rest until notified.
    func push(_ bytes: UnsafeRawBufferPointer) -> Int
    var hasSpace: Bool { get }
}
