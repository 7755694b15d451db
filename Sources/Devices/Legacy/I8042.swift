import SwiftletCore

// i8042 keyboard controller: port 0x60 data, 0x64 status (read) / command (write), with an
// AT keyboard behind it. Enough for Linux's i8042 and atkbd drivers to find a keyboard,
// for Ctrl-Alt-Del from the host, and for `reboot=k` (the pulse-reset command).
private let DATA_PORT_OFFSET: UInt64 = 0        // port 0x60
private let COMMAND_PORT_OFFSET: UInt64 = 4     // port 0x64

// Controller commands (written to 0x64).
private let CMD_READ_CTR: UInt8 = 0x20
private let CMD_WRITE_CTR: UInt8 = 0x60
private let CMD_AUX_DISABLE: UInt8 = 0xA7
private let CMD_AUX_ENABLE: UInt8 = 0xA8
private let CMD_AUX_TEST: UInt8 = 0xA9
private let CMD_SELF_TEST: UInt8 = 0xAA
private let CMD_KBD_TEST: UInt8 = 0xAB
private let CMD_KBD_DISABLE: UInt8 = 0xAD
private let CMD_KBD_ENABLE: UInt8 = 0xAE
private let CMD_WRITE_OUTPUT_PORT: UInt8 = 0xD1
private let CMD_WRITE_KBD_OUTPUT: UInt8 = 0xD2
/// 0xF0-0xFF pulse the output-port lines whose bits are clear in the low nibble; bit 0 is
/// the CPU reset line, so every even command there resets (0xFE is the one Linux sends).
private let CMD_PULSE_OUTPUT_FIRST: UInt8 = 0xF0
private let OUTPUT_PORT_RESET: UInt8 = 0x01

// Status register bits.
private let STATUS_OUTPUT_FULL: UInt8 = 0x01
private let STATUS_SYSTEM_FLAG: UInt8 = 0x04
private let STATUS_COMMAND: UInt8 = 0x08        // last write was to the command port
private let STATUS_NOT_INHIBITED: UInt8 = 0x10  // keyboard not locked

// Controller configuration byte (CTR) bits.
private let CTR_KBD_INTERRUPT: UInt8 = 0x01
private let CTR_SYSTEM_FLAG: UInt8 = 0x04
private let CTR_TRANSLATE: UInt8 = 0x40

// Keyboard commands (written to 0x60) and answers.
private let KBD_SET_LEDS: UInt8 = 0xED
private let KBD_ECHO: UInt8 = 0xEE
private let KBD_SCANCODE_SET: UInt8 = 0xF0
private let KBD_GET_ID: UInt8 = 0xF2
private let KBD_SET_TYPEMATIC: UInt8 = 0xF3
private let KBD_RESET: UInt8 = 0xFF
private let KBD_ACK: UInt8 = 0xFA
private let KBD_SELF_TEST_PASSED: UInt8 = 0xAA

/// Ctrl, Alt, Delete in scancode set 1 (what the guest reads with translation on).
private let ctrlAltDelPress: [UInt8] = [0x1D, 0x38, 0xE0, 0x53]
private let ctrlAltDelRelease: [UInt8] = [0xE0, 0xD3, 0xB8, 0x9D]

/// What the i8042 asks of the machine: a CPU reset.
public protocol ResetLine: AnyObject {
    func reset()
}

/// The i8042 at ports 0x60-0x64 (size 5), keyboard interrupt on IRQ 1.
public final class I8042: ByteWideDevice {
    public static let base: UInt64 = 0x60
    public static let size: UInt64 = 5
    public static let commandPortOffset = COMMAND_PORT_OFFSET

    private let resetLine: any ResetLine
    private let irq: any InterruptLine
    private let lock = Lock()
    private var output = RingBuffer(capacity: 16)
    private var ctr: UInt8 = CTR_KBD_INTERRUPT | CTR_SYSTEM_FLAG | CTR_TRANSLATE
    private var lastWriteWasCommand = false
    /// A controller command waiting for its data byte on port 0x60.
    private var pendingControllerCommand: UInt8?
    /// A keyboard command waiting for its parameter byte.
    private var pendingKeyboardCommand: UInt8?
    private var irqLevel = false

    public init(resetLine: any ResetLine, irq: any InterruptLine = UnconnectedInterruptLine()) {
        self.resetLine = resetLine
        self.irq = irq
    }

    /// Presses (make codes) or releases (break codes) Ctrl-Alt-Del.
    public func sendCtrlAltDel(pressed: Bool) {
        lock.withLock {
            for byte in pressed ? ctrlAltDelPress : ctrlAltDelRelease { output.push(byte) }
            updateIRQ()
        }
    }

    public func readByte(at offset: UInt64) -> UInt8 {
        lock.withLock { () -> UInt8 in
            switch offset {
            case DATA_PORT_OFFSET:
                let byte = output.pop() ?? 0
                // Edge-triggered IRQ 1: drop the line so the next byte raises it again.
                setIRQ(false)
                updateIRQ()
                return byte
            case COMMAND_PORT_OFFSET:
                var status = STATUS_SYSTEM_FLAG | STATUS_NOT_INHIBITED
                if output.count > 0 { status |= STATUS_OUTPUT_FULL }
                if lastWriteWasCommand { status |= STATUS_COMMAND }
                return status
            default:
                return 0
            }
        }
    }

    public func writeByte(_ value: UInt8, at offset: UInt64) {
        let reset = lock.withLock { () -> Bool in
            defer { updateIRQ() }
            switch offset {
            case COMMAND_PORT_OFFSET:
                lastWriteWasCommand = true
                return controllerCommand(value)
            case DATA_PORT_OFFSET:
                lastWriteWasCommand = false
                if let command = pendingControllerCommand {
                    pendingControllerCommand = nil
                    switch command {
                    case CMD_WRITE_CTR: ctr = value
                    case CMD_WRITE_KBD_OUTPUT: output.push(value)
                    case CMD_WRITE_OUTPUT_PORT: return value & OUTPUT_PORT_RESET == 0   // bit 0 low: reset
                    default: break
                    }
                    return false
                }
                keyboardCommand(value)
                return false
            default:
                return false
            }
        }
        if reset { resetLine.reset() }
    }

    /// Returns true when the command resets the CPU.
    private func controllerCommand(_ command: UInt8) -> Bool {
        switch command {
        case CMD_READ_CTR: output.push(ctr)
        case CMD_WRITE_CTR, CMD_WRITE_OUTPUT_PORT, CMD_WRITE_KBD_OUTPUT: pendingControllerCommand = command
        case CMD_SELF_TEST: output.push(0x55)
        case CMD_KBD_TEST: output.push(0x00)
        case CMD_AUX_TEST: output.push(0xFF)    // no mouse port
        case CMD_KBD_DISABLE, CMD_KBD_ENABLE, CMD_AUX_DISABLE, CMD_AUX_ENABLE: break
        case CMD_PULSE_OUTPUT_FIRST...0xFF: return command & OUTPUT_PORT_RESET == 0
        default: break
        }
        return false
    }

    private func keyboardCommand(_ byte: UInt8) {
        if let command = pendingKeyboardCommand {
            pendingKeyboardCommand = nil
            output.push(KBD_ACK)
            if command == KBD_SCANCODE_SET && byte == 0 { output.push(2) }   // "which set?": 2
            return
        }
        switch byte {
        case KBD_RESET:
            output.push(KBD_ACK)
            output.push(KBD_SELF_TEST_PASSED)
        case KBD_GET_ID:
            output.push(KBD_ACK)
            output.push(0xAB)
            output.push(ctr & CTR_TRANSLATE != 0 ? 0x41 : 0x83)
        case KBD_ECHO:
            output.push(KBD_ECHO)
        case KBD_SET_LEDS, KBD_SCANCODE_SET, KBD_SET_TYPEMATIC:
            output.push(KBD_ACK)
            pendingKeyboardCommand = byte
        default:
            output.push(KBD_ACK)
        }
    }

    private func updateIRQ() {
        setIRQ(output.count > 0 && ctr & CTR_KBD_INTERRUPT != 0)
    }

    private func setIRQ(_ level: Bool) {
        if level != irqLevel {
            irqLevel = level
            irq.setLevel(level)
        }
    }
}
