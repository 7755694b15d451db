import SwiftletCore

// i8042 keyboard controller ports: 0x60 data, 0x64 status (read) / command (write).
// Only as much as Linux's `reboot=k` needs: the reset-CPU command pulses the reset line.
private let DATA_PORT_OFFSET: UInt64 = 0        // port 0x60
private let COMMAND_PORT_OFFSET: UInt64 = 4     // port 0x64
private let CMD_READ_CONFIG: UInt8 = 0x20
private let CMD_WRITE_CONFIG: UInt8 = 0x60
private let CMD_SELF_TEST: UInt8 = 0xAA
private let CMD_RESET_CPU: UInt8 = 0xFE
private let STATUS_OUTPUT_FULL: UInt8 = 0x01
private let STATUS_SYSTEM_FLAG: UInt8 = 0x04
private let SELF_TEST_OK: UInt8 = 0x55

/// What the i8042 asks of the machine: a CPU reset.
public protocol ResetLine: AnyObject {
    func reset()
}

/// The i8042 at ports 0x60-0x64 (size 5).
public final class I8042: BusDevice {
    public static let base: UInt64 = 0x60
    public static let size: UInt64 = 5

    private let resetLine: any ResetLine
    private let lock = Lock()
    private var output: UInt8?
    private var config: UInt8 = 0
    private var pendingCommand: UInt8?

    public init(resetLine: any ResetLine) { self.resetLine = resetLine }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        guard data.count > 0 else { return }
        for i in 0..<data.count { data[i] = 0 }
        data[0] = lock.withLock { () -> UInt8 in
            switch offset {
            case DATA_PORT_OFFSET:
                let value = output ?? 0
                output = nil
                return value
            case COMMAND_PORT_OFFSET:
                return STATUS_SYSTEM_FLAG | (output != nil ? STATUS_OUTPUT_FULL : 0)
            default:
                return 0
            }
        }
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        guard data.count > 0 else { return }
        let value = data[0]
        let reset = lock.withLock { () -> Bool in
            switch offset {
            case COMMAND_PORT_OFFSET:
                switch value {
                case CMD_RESET_CPU: return true
                case CMD_READ_CONFIG: output = config
                case CMD_WRITE_CONFIG: pendingCommand = value
                case CMD_SELF_TEST: output = SELF_TEST_OK
                default: break
                }
            case DATA_PORT_OFFSET:
                if pendingCommand == CMD_WRITE_CONFIG { config = value }
                pendingCommand = nil
            default:
                break
            }
            return false
        }
        if reset { resetLine.reset() }
    }
}
