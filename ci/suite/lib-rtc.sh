# The PL031 RTC's match interrupt (ARM DDI 0224) in the nested arm64 suite, sourced by
# arm64.sh after lib.sh (vm, pass, fail, show, ended_as).

# rtc_tiny_checks LIMIT END: the tiny guest rtc-alarm-arm64 (Tests/Guests/rtc-alarm-arm64.S)
# reads the eight ID registers (they must be the TRM's), programs RTCMR = RTCDR + 1 at a
# second boundary, takes SPI 2 (INTID 34) through the vGICv3 and times it with the generic
# timer: the interrupt must come 0.5-3 s after programming (about 1 s; nested timing varies), with RTCDR = RTCMR, RTCMIS 1
# and RTCRIS 0 after RTCICR (the guest checks those three and says passed).
rtc_tiny_checks() {
    limit=$1 end=$2
    vm rtc-alarm "$limit" --kernel /extra/rtc-alarm-arm64.bin --memory 64
    ids=$(tr -d '\r' < "$out" | sed -n 's/^PL031 IDs: //p')
    if [ "$rc" = 0 ] && grep -q "^PL031 IDs match the TRM" "$out" && ended_as "$err" "$end"; then
        pass "PL031 ID registers are the TRM's: $ids"
    else
        fail "PL031 ID registers: read '$ids', wanted '31 10 04 00 0d f0 05 b1' (exit $rc)"; show
    fi
    after=$(tr -d '\r' < "$out" | sed -n 's/^rtc-alarm: interrupt 34 after \([0-9.]*\) s.*/\1/p')
    if [ "$rc" = 0 ] && grep -q "^rtc-alarm guest passed" "$out" && [ -n "$after" ] \
       && awk -v s="$after" 'BEGIN { exit !(s >= 0.5 && s <= 3) }'; then
        pass "PL031 match interrupt: RTCMR = RTCDR + 1 raised SPI 2 (INTID 34) after $after s; MIS set, ICR cleared it"
    else
        fail "PL031 match interrupt: wanted INTID 34 0.5-3 s after programming, got '$(tr -d '\r' < "$out" | grep '^rtc-alarm' | tr '\n' ';')' (exit $rc)"; show
    fi
}

# rtc_linux_checks LIMIT CMDLINE END KERNEL-ARGS...: Debian's kernel (rtc-pl031) sets an
# alarm 2 s ahead through /dev/rtc0 (initramfs mode rtc: RTC_WKALM_SET, a blocking read)
# and must be woken by it after 1-4 s.
rtc_linux_checks() {
    limit=$1 cmdline=$2 end=$3
    shift 3
    vm linux-rtc "$limit" "$@" --memory 256 --cmdline "$cmdline swiftlet.test=rtc swiftlet.alarm=2"
    line=$(tr -d '\r' < "$out" | grep '^SWIFTLET-RTC-ALARM' | head -n 1)
    after=$(echo "$line" | sed -n 's/^SWIFTLET-RTC-ALARM fired after=\([0-9.]*\) s.*/\1/p')
    if [ "$rc" = 0 ] && [ -n "$after" ] && awk -v s="$after" 'BEGIN { exit !(s >= 1 && s <= 4) }' && ended_as "$err" "$end"; then
        pass "Linux's RTC alarm (rtc-pl031, RTC_WKALM_SET 2 s ahead) woke the reader of /dev/rtc0 after $after s"
    else
        fail "Linux's RTC alarm 2 s ahead: wanted it to fire after 1-4 s, got '${line:-no SWIFTLET-RTC-ALARM line}' (exit $rc)"; show
    fi
}
