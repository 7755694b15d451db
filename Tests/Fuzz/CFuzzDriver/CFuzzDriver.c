// SwiftPM needs one source file per C target; the module is only the header.
#include "CFuzzDriver.h"
