# Encryption at rest (issue 11), sourced by the arm64 suite after lib.sh: a LUKS2 volume that
# Debian's cryptsetup opens in L1 serves as a guest's disk, as README "Encrypted disks" shows.
# Swiftlet does no cryptography itself: the host's dm-crypt does, and the VMM serves
# /dev/mapper/NAME like any block device (BLKGETSIZE64 for its size).
#
#   luks_checks TIMEOUT CMDLINE END
#       (after lib-jail.sh: the second boot runs jailed)
#       uses $KERNEL (the suite's --kernel/--initrd); END: the power-off line after "swiftlet: "
#
# Needs from ci/suite/prepare: cryptsetup.tar (Debian's cryptsetup with its libraries,
# unpacked at /) and L1's loop, dax, dm-mod, dm-crypt, ecb, xts, af_alg and algif_skcipher
# modules.

LUKS_IMAGE=/tmp/luks.img
LUKS_NAME=swiftlet-luks
LUKS_KEY=/tmp/luks.key
LUKS_DEVICE=/dev/mapper/$LUKS_NAME

# l1_cryptsetup: cryptsetup and the device mapper with dm-crypt in L1, once.
l1_cryptsetup() {
    for m in loop dax dm-mod dm-crypt ecb xts af_alg algif_skcipher; do
        [ -d /sys/module/$(echo $m | tr - _) ] && continue
        insmod /extra/$m.ko || { echo "suite: insmod /extra/$m.ko failed"; return 1; }
    done
    command -v cryptsetup > /dev/null || tar -C / -xf /extra/cryptsetup.tar || { echo "suite: unpacking cryptsetup.tar failed"; return 1; }
    # No udev in L1: libdevmapper makes the /dev/mapper node itself.
    export DM_DISABLE_UDEV=1
    mkdir -p /run/cryptsetup
    cryptsetup --version
}

# luks_open: opens $LUKS_IMAGE's LUKS2 volume (through a loop device) as $LUKS_DEVICE.
luks_open() {
    luks_loop=$(losetup -f) && losetup "$luks_loop" "$LUKS_IMAGE" &&
        cryptsetup open --type luks2 --key-file "$LUKS_KEY" "$luks_loop" "$LUKS_NAME"
}
# luks_close: the mapping and its loop device gone.
luks_close() { cryptsetup close "$LUKS_NAME"; losetup -d "$luks_loop"; }

luks_checks() {
    lk_limit=$1 lk_cmdline=$2 lk_end=$3
    if ! l1_cryptsetup > /tmp/luks-setup.log 2>&1; then
        fail "LUKS2: cryptsetup and dm-crypt in L1: $(tail -n 3 /tmp/luks-setup.log | tr '\n' ' ')"
        return
    fi
    # A 24 MiB volume: LUKS2's 16 MiB header, then the 8 MiB the guest sees as /dev/vda.
    # PBKDF2 with the fewest iterations cryptsetup allows: argon2's default 1 GiB and its
    # timing benchmark take minutes under TCG, and key derivation is not what is checked.
    disk_blank "$LUKS_IMAGE" 24M
    head -c 64 /dev/urandom > "$LUKS_KEY"
    if ! cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
            --key-file "$LUKS_KEY" "$LUKS_IMAGE" > /tmp/luks-format.log 2>&1 || ! luks_open >> /tmp/luks-format.log 2>&1; then
        fail "LUKS2: luksFormat and open a volume in L1: $(tail -n 3 /tmp/luks-format.log | tr '\n' ' ')"
        return
    fi
    data_offset=$(cryptsetup luksDump "$LUKS_IMAGE" | awk '$1 == "offset:" { print $2; exit }')
    data_mib=$((${data_offset:-16777216} / 1048576))
    # What the guest writes: 1 MiB of a line with a value of this run, so that neither an
    # old image nor the suite's own text can hold it.
    lk_value=$(head -c 8 /dev/urandom | md5sum | cut -c1-16)
    lk_secret=SWIFTLET-LUKS-SECRET-$lk_value
    lk_md5=$(yes "$lk_secret" | head -c 1048576 | md5sum | cut -d' ' -f1)
    zeros_md5=$(head -c 1048576 /dev/zero | md5sum | cut -d' ' -f1)
    before_md5=$(dd if="$LUKS_IMAGE" bs=1M skip="$data_mib" count=1 2>/dev/null | md5sum | cut -d' ' -f1)

    # Boot 1: the guest writes the secret over the first MiB of /dev/vda, the mapping.
    vm_typing luks-write "$lk_limit" "yes $lk_secret | head -c 1048576 | dd of=/dev/vda bs=64k conv=fsync 2>/dev/null; echo SWIFTLET-LUKS-WROTE status=\$?; off
" $KERNEL --memory 256 --disk path=$LUKS_DEVICE --cmdline "$lk_cmdline swiftlet.test=commands"
    expect_ok "a LUKS2 mapping opened with cryptsetup in L1 ($LUKS_DEVICE) is the guest's /dev/vda: the guest writes 1 MiB to it" \
        "^SWIFTLET-LUKS-WROTE status=0" "$lk_end"
    # Through the mapping L1 reads the guest's bytes; in the backing file they are nowhere
    # in plaintext, and the data area (after the header, zeros before) changed.
    mapped_md5=$(head -c 1048576 "$LUKS_DEVICE" | md5sum | cut -d' ' -f1)
    after_md5=$(dd if="$LUKS_IMAGE" bs=1M skip="$data_mib" count=1 2>/dev/null | md5sum | cut -d' ' -f1)
    if head -c 1048576 "$LUKS_DEVICE" | grep -q "$lk_secret"; then in_mapping=yes; else in_mapping=no; fi
    # Runs of NULs squeezed into one newline first: the image's unwritten zeros, as millions
    # of empty lines or as one huge line, cost busybox grep minutes under TCG.
    if tr -s '\000' '\n' < "$LUKS_IMAGE" | grep -q "$lk_secret"; then in_backing=yes; else in_backing=no; fi
    if [ "$mapped_md5" = "$lk_md5" ] && [ "$in_mapping" = yes ] && [ "$in_backing" = no ] &&
       [ "$before_md5" = "$zeros_md5" ] && [ "$after_md5" != "$before_md5" ]; then
        pass "LUKS2: L1 reads the guest's 1 MiB back through the mapping (md5 $mapped_md5); the backing file holds no '$lk_secret', and its data area at $data_mib MiB changed from zeros to ciphertext"
    else
        fail "LUKS2 at rest: mapping md5 $mapped_md5 (wanted $lk_md5), secret in mapping: $in_mapping, in backing file: $in_backing (wanted no), data area before $before_md5 after $after_md5"
    fi

    # Boot 2, after closing and opening the volume again: the guest reads what it wrote.
    # Opening with a key of the wrong bytes must fail.
    luks_close
    head -c 64 /dev/urandom > /tmp/luks-wrong.key
    if cryptsetup open --test-passphrase --key-file /tmp/luks-wrong.key "$LUKS_IMAGE" 2>/dev/null; then
        fail "LUKS2: a wrong key opened the volume"
    elif ! luks_open > /tmp/luks-open.log 2>&1; then
        fail "LUKS2: opening the volume again: $(tail -n 2 /tmp/luks-open.log | tr '\n' ' ')"
        return
    fi
    # As production runs it: jailed (lib-jail.sh), as an unprivileged uid, the mapping a
    # device node in the jail, in a cgroup with a pids.max.
    lk_saved_run=$SWIFTLET_RUN
    grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup
    jail_cmd luks-read --pids-max 32
    vm_typing luks-read "$lk_limit" "echo SWIFTLET-LUKS-READ md5=\$(head -c 1048576 /dev/vda | md5sum | cut -d' ' -f1); off
" $KERNEL --memory 256 --disk path=$LUKS_DEVICE,readonly=on --cmdline "$lk_cmdline swiftlet.test=commands"
    SWIFTLET_RUN=$lk_saved_run
    lk_node=$(stat -c '%t:%T %u %a' "$JAIL_BASE/luks-read/root/$LUKS_NAME" 2>&1)
    lk_host=$(stat -L -c '%t:%T' "$LUKS_DEVICE")
    lk_pids=$(cat /sys/fs/cgroup/swiftlet/luks-read/pids.max 2>&1)
    if [ "$lk_node" = "$lk_host $JAIL_UID 400" ] && [ "$lk_pids" = 32 ]; then
        expect_ok "LUKS2 volume closed and opened again (a wrong key refused): a jailed VMM (uid $JAIL_UID, the mapping a read-only node $lk_node in the jail, pids.max 32) serves it and the guest reads its 1 MiB back intact" \
            "^SWIFTLET-LUKS-READ md5=$lk_md5" "$lk_end"
    else
        fail "LUKS2 jailed: the jail's node for $LUKS_DEVICE is '$lk_node' (wanted '$lk_host $JAIL_UID 400'), pids.max '$lk_pids' (wanted 32)"; show
    fi
    luks_close
    rm -f "$LUKS_IMAGE"
}
