import CLinux

print("swiftlet: argc \(sl_argc())")
