/// A level-triggered interrupt input of the guest's interrupt controller, as a device sees
/// it. Implementations call KVM (KVM_IRQ_LINE) and must not allocate.
public protocol InterruptLine: AnyObject {
    func setLevel(_ high: Bool)
}

/// For devices built without a wired interrupt (unit tests, polled use).
public final class UnconnectedInterruptLine: InterruptLine {
    public private(set) var level = false
    public private(set) var changes = 0
    public init() {}
    public func setLevel(_ high: Bool) {
        if high != level { changes += 1 }
        level = high
    }
}
