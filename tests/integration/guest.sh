# A bootable guest for the integration tests (sourced after lib.sh; the
# libvirt boot also needs libvirt.sh): Debian's kernel and a busybox
# initramfs booted under qemu TCG (/dev/kvm may exist and still not run
# guests), so a test can prove what a VM really sees on its disks.
#
#   guest_initramfs OUT              build the initramfs (busybox, virtio
#                                    modules, /init below) into OUT
#   guest_need                       the tools a booting test needs, and guest_prepare
#   guest_prepare                    GUEST_KERNEL and GUEST_INITRD, once per
#                                    test (the boots call it)
#   guest_boot_qemu LOG DISK...      boot qcow2 images with qemu-system
#   guest_boot_libvirt LOG XML       boot a domain.xml through libvirt
#   guest_read LOG DEV               md5 of the region the guest read on DEV
#   guest_marked LOG DEV             md5 the guest read back after marking DEV
#   host_md5 IMAGE OFF LEN           md5 of that region of a qcow2 on the host
#   guest_check LOG                  the log says "GUEST done" (else the reason)
#
# What the guest does is set by these variables (bytes: see guest_bytes;
# offsets and lengths multiples of 512, as the guest uses O_DIRECT),
# passed on the kernel command line:
#   GUEST_READ_OFF, GUEST_READ_LEN    region read on every disk (0, 1M)
#   GUEST_MARK                        byte written as a marker, e.g. 0x5a
#                                     ("" writes nothing)
#   GUEST_MARK_OFF, GUEST_MARK_LEN    where it is written (32M, 1M)
#   GUEST_TIMEOUT                     seconds a boot may take (120)
# For every /dev/vdX in name order the guest prints on its serial console
#   GUEST vda read OFF LEN md5 MD5 head HEX16
#   GUEST vda mark OFF LEN md5 MD5     (after writing and an fsync, read back
#                                       with O_DIRECT), or GUEST vda ro
# then "GUEST done UPTIME", syncs and powers off. GUEST_BOOT_SECONDS is set
# to the wall time of the last boot (~5 s here: the kernel boots as an
# uncompressed ELF, see guest_vmlinux).

GUEST_READ_OFF=${GUEST_READ_OFF:-0}
GUEST_READ_LEN=${GUEST_READ_LEN:-1M}
GUEST_MARK=${GUEST_MARK-0x5a}
GUEST_MARK_OFF=${GUEST_MARK_OFF:-32M}
GUEST_MARK_LEN=${GUEST_MARK_LEN:-1M}
GUEST_TIMEOUT=${GUEST_TIMEOUT:-120}
GUEST_DIR=$TMP/guest        # kernel and initramfs of this test run
GUEST_BOOT_SECONDS=
GUEST_DOMAINS=()            # transient libvirt domains guest_boot_libvirt created

# guest_kver: the newest kernel with both /boot/vmlinuz-V and its modules
# (a machine may have several after upgrades; the running one is the
# host's, not Debian's).
guest_kver() {
    local k v
    for k in /boot/vmlinuz-*; do
        v=${k#/boot/vmlinuz-}
        [ -e "$k" ] && [ -e "/lib/modules/$v/modules.dep" ] && echo "$v"
    done | sort -V | tail -n 1 | grep .
}

# guest_modules KVER MODULE...: paths (relative to /lib/modules/KVER) of
# MODULE and everything it needs, dependencies first (load order).
guest_modules() {
    local kver=$1
    shift
    perl -e '
        my ($dep, @want) = @ARGV;
        my %deps;
        open(my $fh, "<", $dep) or die "$dep: $!\n";
        while (<$fh>) {
            chomp;
            my ($m, $rest) = split /:\s*/, $_, 2;
            $deps{$m} = [split " ", $rest // ""];
        }
        my (%seen, @order);
        sub visit {
            my $m = shift;
            return if $seen{$m}++;
            visit($_) for @{$deps{$m}};
            push @order, $m;
        }
        for my $w (@want) {
            my ($m) = grep { m{/\Q$w\E\.ko(\.[a-z]+)?$} } keys %deps;
            defined $m or die "module $w not in $dep\n";
            visit($m);
        }
        print "$_\n" for @order;' "/lib/modules/$kver/modules.dep" "$@"
}

# guest_initramfs OUT: an uncompressed newc cpio with busybox-static, the
# virtio disk modules of guest_kver (decompressed: busybox's insmod reads
# plain .ko) and /init. Returns non-zero (saying why) if it cannot.
guest_initramfs() {
    local out=$1 kver root m name
    kver=$(guest_kver) || { echo "guest_initramfs: no kernel with modules in /boot (linux-image-amd64)" >&2; return 1; }
    [ -x /bin/busybox ] || { echo "guest_initramfs: no /bin/busybox (busybox-static)" >&2; return 1; }
    root=$(mktemp -d "$TMP/initramfs.XXXXXX") || return 1
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,lib/modules} &&
        cp /bin/busybox "$root/bin/busybox" || return 1
    : >"$root/lib/modules/order"
    while IFS= read -r m; do
        name=${m##*/}
        case $name in
            *.ko) cp "/lib/modules/$kver/$m" "$root/lib/modules/$name" ;;
            *.ko.xz) xz -dc "/lib/modules/$kver/$m" >"$root/lib/modules/${name%.xz}" ;;
            *.ko.gz) gzip -dc "/lib/modules/$kver/$m" >"$root/lib/modules/${name%.gz}" ;;
            *.ko.zst) zstd -qdc "/lib/modules/$kver/$m" >"$root/lib/modules/${name%.zst}" ;;
            *) echo "guest_initramfs: cannot load $m" >&2; return 1 ;;
        esac || { echo "guest_initramfs: cannot unpack $m" >&2; return 1; }
        name=${name%.ko*}.ko
        echo "$name" >>"$root/lib/modules/order"
    done < <(guest_modules "$kver" virtio_pci virtio_blk) || return 1
    [ -s "$root/lib/modules/order" ] || return 1
    guest_init >"$root/init" && chmod 0755 "$root/init" || return 1
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$out" || {
        echo "guest_initramfs: cpio failed" >&2
        return 1
    }
    rm -rf "$root"
}

# guest_init: the guest's /init (busybox ash). Parameters come from the
# kernel command line (vms*=); the kernel hands unknown name=value words
# to init as environment variables, but /proc/cmdline is read so that
# nothing depends on that.
guest_init() {
    cat <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
say() { echo "GUEST $*"; }
die() { say "error $*"; sync; poweroff -f; }
for w in $(cat /proc/cmdline); do
    case $w in vms*=*) eval "${w%%=*}='${w#*=}'" ;; esac
done
: "${vmsreadoff:=0}" "${vmsreadlen:=1048576}" "${vmsdisks:=0}"
for m in $(cat /lib/modules/order); do
    insmod "/lib/modules/$m" || die "insmod $m"
done
# virtio_blk probes while insmod runs; wait anyway for the disks the host
# said it gave (vmsdisks), up to 10 s.
i=0
while [ "$(ls -d /sys/block/vd* 2>/dev/null | wc -l)" -lt "$vmsdisks" ]; do
    i=$((i + 1))
    [ $i -le 100 ] || die "only $(ls /sys/block | tr '\n' ' ') after 10 s, expected $vmsdisks disks"
    usleep 100000
done
# region DEV OFF LEN: md5 of LEN bytes at OFF, read with O_DIRECT (the
# device, not the page cache).
region() {
    dd if="/dev/$1" bs=65536 iflag=skip_bytes,count_bytes,direct skip="$2" count="$3" 2>/dev/null | md5sum | cut -d' ' -f1
}
for d in $(ls /sys/block | grep '^vd' | sort); do
    [ -b "/dev/$d" ] || die "$d: no /dev/$d"
    sum=$(region "$d" "$vmsreadoff" "$vmsreadlen")
    head=$(dd if="/dev/$d" bs=512 iflag=skip_bytes,direct skip="$vmsreadoff" count=1 2>/dev/null | od -An -tx1 -N16 | tr -d ' \n')
    say "$d read $vmsreadoff $vmsreadlen md5 $sum head $head"
    [ -n "${vmsmark:-}" ] || continue
    if [ "$(cat "/sys/block/$d/ro")" = 1 ]; then
        say "$d ro"
        continue
    fi
    oct=$(printf '\\%03o' "$((vmsmark))")
    dd if=/dev/zero bs=65536 iflag=count_bytes count="$vmsmarklen" 2>/dev/null | tr '\000' "$oct" |
        dd of="/dev/$d" bs=65536 iflag=fullblock oflag=seek_bytes,direct seek="$vmsmarkoff" conv=notrunc,fsync 2>/dev/null ||
        die "$d: writing the marker failed"
    say "$d mark $vmsmarkoff $vmsmarklen md5 $(region "$d" "$vmsmarkoff" "$vmsmarklen")"
done
sync
say "done $(cut -d' ' -f1 /proc/uptime)"
poweroff -f
EOF
}

# guest_vmlinux KVER OUT: the uncompressed kernel (an ELF vmlinux) out of
# Debian's xz bzImage, as the kernel's extract-vmlinux does. qemu boots
# such an ELF through its PVH entry (CONFIG_PVH), skipping SeaBIOS's
# real-mode start and the decompression, which under TCG take ~4 s of a
# ~8 s boot. Non-zero if this kernel cannot (then boot the bzImage).
guest_vmlinux() {
    local bz=/boot/vmlinuz-$1 out=$2 off
    grep -qx 'CONFIG_PVH=y' "/boot/config-$1" 2>/dev/null || return 1
    for off in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | cut -d: -f1); do
        tail -c +$((off + 1)) "$bz" | xz -dcq --single-stream >"$out" 2>/dev/null &&
            [ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] && return 0
    done
    rm -f "$out"
    return 1
}

# guest_prepare: GUEST_KERNEL and GUEST_INITRD, made once per test run in
# GUEST_DIR. The kernel is in GUEST_DIR either way (the vmlinux, or a copy
# of the bzImage): libvirt's DAC driver chowns the kernel and initrd it
# boots, which must not happen to /boot.
guest_prepare() {
    local kver
    [ -z "${GUEST_KERNEL:-}" ] || return 0
    kver=$(guest_kver) || { echo "guest_prepare: no kernel with modules in /boot" >&2; return 1; }
    mkdir -p "$GUEST_DIR" || return 1
    GUEST_KERNEL=$GUEST_DIR/vmlinux
    guest_vmlinux "$kver" "$GUEST_KERNEL" || {
        GUEST_KERNEL=$GUEST_DIR/vmlinuz
        cp "/boot/vmlinuz-$kver" "$GUEST_KERNEL" || return 1
    }
    GUEST_INITRD=$GUEST_DIR/initrd
    guest_initramfs "$GUEST_INITRD" || { GUEST_KERNEL=; return 1; }
}

# guest_need: what a test that boots the guest through libvirt needs (a
# skip names what is missing), and the guest itself, made or failed.
guest_need() {
    need_libvirt
    need_fuse
    need qemu-system-x86_64 python3 cpio
    guest_prepare || fail "cannot make the guest (scripts/install-deps installs its kernel and busybox)"
}

# guest_bytes N: N in bytes; N is anything bash arithmetic takes, or a
# number with a K, M or G suffix (as qemu-io takes them).
guest_bytes() {
    local v=$1 m=1
    case $v in
        *[kK]) m=1024 ;;
        *[mM]) m=1048576 ;;
        *[gG]) m=1073741824 ;;
    esac
    [ "$m" -eq 1 ] || v=${v%?}
    echo $((v * m))
}

# guest_cmdline: the kernel command line, but vmsdisks=N (the number of
# virtio disks, which the caller adds). panic=-1 turns a panic into a
# reboot, which -no-reboot / on_reboot=destroy turn into an exit.
guest_cmdline() {
    local c="console=ttyS0 quiet panic=-1"
    c+=" vmsreadoff=$(guest_bytes "$GUEST_READ_OFF") vmsreadlen=$(guest_bytes "$GUEST_READ_LEN")"
    [ -z "$GUEST_MARK" ] ||
        c+=" vmsmark=$((GUEST_MARK)) vmsmarkoff=$(guest_bytes "$GUEST_MARK_OFF") vmsmarklen=$(guest_bytes "$GUEST_MARK_LEN")"
    echo "$c"
}

# guest_check LOG: true if the guest got to "GUEST done"; else prints why
# (the guest's error line or the log's tail) on stderr.
guest_check() {
    grep -q '^GUEST done' "$1" 2>/dev/null && return 0
    echo "guest did not finish; $(grep -m1 '^GUEST error' "$1" 2>/dev/null || echo 'serial log tail:')" >&2
    tail -n 15 "$1" >&2 2>/dev/null
    return 1
}

# guest_boot_qemu LOG DISK...: boot the guest with plain qemu-system-x86_64
# (TCG) on the qcow2 images DISK... (vda, vdb... in that order), serial
# console to LOG. Non-zero on a timeout or without "GUEST done".
guest_boot_qemu() {
    local log=$1 d drives=() t0 pid status=0 i
    shift
    guest_prepare || return 1
    for d in "$@"; do
        drives+=(-drive "file=$d,format=qcow2,if=virtio,cache=writeback")
    done
    rm -f "$log"
    t0=$EPOCHREALTIME
    # In the background, in DAEMONS: the EXIT trap kills it if the test
    # dies meanwhile.
    qemu-system-x86_64 -accel tcg -m 256 -nodefaults -no-reboot \
        -display none -monitor none -serial "file:$log" \
        -kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD" -append "$(guest_cmdline) vmsdisks=$#" \
        "${drives[@]}" </dev/null >"$log.qemu" 2>&1 &
    pid=$!
    DAEMONS+=("$pid")
    for ((i = 0; i < GUEST_TIMEOUT * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -9 "$pid" 2>/dev/null && status=124
    wait "$pid" || ((status)) || status=$?
    forget_daemon "$pid"
    GUEST_BOOT_SECONDS=$(guest_since "$t0")
    [ "$status" -ne 124 ] || { echo "guest_boot_qemu: killed after $GUEST_TIMEOUT s" >&2; guest_check "$log"; return 1; }
    [ "$status" -eq 0 ] || { echo "guest_boot_qemu: qemu exited $status: $(cat "$log.qemu")" >&2; return 1; }
    guest_check "$log"
}

# guest_domain_xml IN OUT NAME LOG: IN made bootable as a transient domain
# NAME: TCG (type='qemu'), direct kernel boot with the guest's kernel,
# initrd and command line (vmsdisks = its virtio disks), ACPI on (poweroff
# needs it), 256 MiB, no UUID (libvirt makes one: no clash with a defined
# domain), every lifecycle event destroys it, interfaces gone (the
# 'default' network needs dnsmasq), no graphics, host CPU or balloon, one
# serial console to the file LOG. Disks, controllers and the emulator are
# kept as they are.
guest_domain_xml() {
    python3 -c '
import sys
import xml.etree.ElementTree as ET
src, dst, name, log, kernel, initrd, cmdline = sys.argv[1:]
tree = ET.parse(src)
d = tree.getroot()
d.set("type", "qemu")
def drop(parent, *tags):
    for tag in tags:
        for e in parent.findall(tag):
            parent.remove(e)
def put(parent, tag, text=None, attrib=None):
    drop(parent, tag)
    e = ET.SubElement(parent, tag, attrib or {})
    e.text = text
    return e
d.find("name").text = name
drop(d, "uuid", "currentMemory", "cpu", "genid", "sysinfo", "on_poweroff",
     "on_reboot", "on_crash", "seclabel")
put(d, "memory", "256", {"unit": "MiB"})
dev = d.find("devices")
ndisks = sum(1 for x in dev.findall("disk")
             if x.get("device", "disk") == "disk"
             and x.find("target") is not None and x.find("target").get("bus") == "virtio")
os_ = d.find("os")
drop(os_, "boot", "loader", "nvram", "kernel", "initrd", "cmdline", "bootmenu")
put(os_, "kernel", kernel)
put(os_, "initrd", initrd)
put(os_, "cmdline", "%s vmsdisks=%d" % (cmdline, ndisks))
feat = d.find("features")
if feat is None:
    feat = ET.Element("features")
    d.insert(list(d).index(os_) + 1, feat)
if feat.find("acpi") is None:
    ET.SubElement(feat, "acpi")
for ev in ("on_poweroff", "on_reboot", "on_crash"):
    put(d, ev, "destroy")
drop(dev, "interface", "graphics", "video", "serial", "console", "channel",
     "sound", "redirdev", "hostdev", "smartcard", "tpm", "input", "memballoon")
s = ET.SubElement(dev, "serial", {"type": "file"})
ET.SubElement(s, "source", {"path": log})
ET.SubElement(s, "target", {"port": "0"})
ET.SubElement(dev, "memballoon", {"model": "none"})
# the schema wants <devices> after the lifecycle elements
d.remove(dev)
d.append(dev)
tree.write(dst)' "$@" "$GUEST_KERNEL" "$GUEST_INITRD" "$(guest_cmdline)"
}

# guest_boot_libvirt LOG DOMAIN_XML: boot DOMAIN_XML (e.g. a store's
# domain.xml, which stays unchanged) through the system libvirtd as a
# transient domain (`virsh create`, see guest_domain_xml), wait until it
# is gone (the guest powered off) and leave its serial console in LOG.
# Its qemu runs as libvirt-qemu: libvirt chowns the images, kernel and
# initrd to it for the run (and gives the top images back, not the backing
# ones), but every directory above them must let it through: the test's
# (0700) temp dir gets go+x here. Non-zero on a timeout (the domain is
# destroyed) or without "GUEST done".
guest_boot_libvirt() {
    local log=$1 xml=$2 name out t0 i gone=0
    name=${LV_PREFIX}guest-${#GUEST_DOMAINS[@]}
    chmod go+x "$TMP" || return 1
    guest_prepare || return 1
    rm -f "$log"
    guest_domain_xml "$xml" "$GUEST_DIR/$name.xml" "$name" "$log" ||
        { echo "guest_boot_libvirt: cannot rewrite $xml" >&2; return 1; }
    GUEST_DOMAINS+=("$name")
    t0=$EPOCHREALTIME
    out=$("${VIRSH[@]}" create "$GUEST_DIR/$name.xml" 2>&1) ||
        { echo "guest_boot_libvirt: virsh create: $out" >&2; return 1; }
    for ((i = 0; i < GUEST_TIMEOUT * 5; i++)); do
        if ! "${VIRSH[@]}" domstate "$name" >/dev/null 2>&1; then
            gone=1
            break
        fi
        sleep 0.2
    done
    GUEST_BOOT_SECONDS=$(guest_since "$t0")
    if ((!gone)); then
        "${VIRSH[@]}" destroy "$name" >/dev/null 2>&1
        echo "guest_boot_libvirt: $name still running after $GUEST_TIMEOUT s (destroyed)" >&2
        guest_check "$log"
        return 1
    fi
    guest_check "$log"
}

# guest_since T0: seconds since T0 (an $EPOCHREALTIME), to 0.1 s.
guest_since() {
    awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# guest_cleanup: destroy any transient domain still running (EXIT trap).
guest_cleanup() {
    local n
    for n in "${GUEST_DOMAINS[@]}"; do
        "${VIRSH[@]}" destroy "$n" >/dev/null 2>&1
    done
}
CLEANUP_HOOKS=(guest_cleanup "${CLEANUP_HOOKS[@]}")

# guest_field LOG DEV WHAT: the md5 the guest printed for DEV's WHAT
# (read or mark) line; empty if none.
guest_field() {
    awk -v d="$2" -v w="$3" '$1 == "GUEST" && $2 == d && $3 == w { print $7; exit }' "$1" | tr -d '\r'
}
guest_read() { guest_field "$1" "$2" read; }
guest_marked() { guest_field "$1" "$2" mark; }

# host_md5 IMAGE OFF LEN: md5 of what a guest reads at OFF+LEN of the
# qcow2 IMAGE (its whole chain), read on the host: a raw node with offset
# and size over the qcow2 node. (qemu-img dd is no help: its count
# includes the skipped blocks.) -U: a running VM may hold the image.
host_md5() {
    local img=${1//,/,,} off len f
    off=$(guest_bytes "$2") len=$(guest_bytes "$3")
    f=$(mktemp "$TMP/host_md5.XXXXXX") || return 1
    qemu-img convert -U -O raw --image-opts \
        "driver=raw,offset=$off,size=$len,file.driver=qcow2,file.file.filename=$img" "$f" >/dev/null 2>&1 ||
        { rm -f "$f"; echo "host_md5: cannot read $1 at $off+$len" >&2; return 1; }
    md5sum <"$f" | cut -d' ' -f1
    rm -f "$f"
}
