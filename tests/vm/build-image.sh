#!/usr/bin/env bash
# Build (or find in the cache) the guest image for the VM tests.
#
#   tests/vm/build-image.sh [--distro NAME] [--check] [--prune]
#
# Prints the image directory on stdout (everything else goes to stderr):
#   ${HANDBUILT_VM_CACHE:-$HOME/.cache/handbuilt-vm}/<distro>-<recipe hash>/
#     base.qcow2  vmlinuz  initrd.img  id_ed25519{,.pub}  packages.txt  build-info.txt
# The recipe hash covers this script, tests/vm/distros/<distro>.conf and tests/vm/guest/*:
# change any of them and the next call rebuilds; otherwise the call is a no-op.
# The build happens in a temporary directory inside the cache and is renamed into place at
# the very end, so an interrupted or failed build never leaves a usable-looking image.
#
#   --check   exit 0 if the image is cached, 1 if it would have to be built (prints the path)
#   --prune   after a successful build/lookup, delete older images of the same distro
#
# Environment: HANDBUILT_VM_CACHE (cache root), HANDBUILT_VM_MIRROR (Debian mirror URL;
# default: the one this host's apt uses). Needs root (debootstrap, chroot), debootstrap,
# qemu-img, mkfs.ext4 (e2fsprogs >= 1.43), ssh-keygen, flock.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/lib.sh
. "$HERE/lib.sh"
DISTRO=bookworm
CHECK=0
PRUNE=0

log() { printf '[build-image] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --distro) [ $# -ge 2 ] || die "--distro needs a value"; DISTRO=$2; shift 2 ;;
    --distro=*) DISTRO=${1#--distro=}; shift ;;
    --check) CHECK=1; shift ;;
    --prune) PRUNE=1; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done

[[ $DISTRO =~ ^[a-z0-9][a-z0-9._-]*$ ]] || die "invalid distro name: $DISTRO"
CONF=$HERE/distros/$DISTRO.conf
[ -f "$CONF" ] || die "no recipe $CONF (available: $(cd "$HERE/distros" && ls -- *.conf | sed 's/\.conf$//' | tr '\n' ' '))"

# ---- recipe data (plain key=value, never sourced) -------------------------------------------
SUITE= COMPONENTS=main KERNEL= PACKAGES=
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in ''|'#'*) continue ;; esac
  key=${line%%=*}; value=${line#*=}
  case "$key" in
    suite) SUITE=$value ;;
    components) COMPONENTS=$value ;;
    kernel) KERNEL=$value ;;
    packages) PACKAGES=$value ;;
    *) die "$CONF: unknown key '$key'" ;;
  esac
done < "$CONF"
[[ $SUITE =~ ^[a-z][a-z0-9-]*$ ]] || die "$CONF: invalid suite '$SUITE'"
[[ $COMPONENTS =~ ^[a-z,-]+$ ]] || die "$CONF: invalid components '$COMPONENTS'"
[ -n "$KERNEL" ] || die "$CONF: kernel= is required"
for p in $KERNEL $PACKAGES; do
  [[ $p =~ ^[a-z0-9][a-z0-9+.-]+$ ]] || die "$CONF: invalid package name '$p'"
done
INCLUDE=$(printf '%s\n' "$KERNEL" $PACKAGES | sort -u | paste -sd, -)

# ---- cache location from the recipe hash -------------------------------------------------------
recipe_files() {
  printf '%s\n' "$HERE/build-image.sh" "$CONF"
  find "$HERE/guest" -type f | LC_ALL=C sort
}
HASH=$(recipe_files | while IFS= read -r f; do
         printf '%s  %s\n' "$(sha256sum < "$f" | cut -d' ' -f1)" "${f#"$HERE"/}"
       done | sha256sum | cut -c1-16)
CACHE=${HANDBUILT_VM_CACHE:-$HOME/.cache/handbuilt-vm}
NAME=$DISTRO-$HASH
OUT=$CACHE/$NAME

is_complete() { [ -f "$1/.complete" ] && [ -f "$1/base.qcow2" ] && [ -f "$1/vmlinuz" ]; }

prune() {
  [ "$PRUNE" = 1 ] || return 0
  local d
  for d in "$CACHE/$DISTRO"-*; do
    [ -d "$d" ] && [ "$d" != "$OUT" ] || continue
    [[ ${d##*/} =~ ^$DISTRO-[0-9a-f]{16}$ ]] || continue
    log "pruning old image $d"
    rm -rf --one-file-system -- "$d"
  done
}

if is_complete "$OUT"; then
  log "cached: $OUT"
  prune
  printf '%s\n' "$OUT"
  exit 0
fi
if [ "$CHECK" = 1 ]; then
  log "not cached: $OUT"
  printf '%s\n' "$OUT"
  exit 1
fi

[ "$(id -u)" = 0 ] || die "building the image needs root (debootstrap/chroot)"
for tool in debootstrap qemu-img mkfs.ext4 ssh-keygen flock findmnt; do
  command -v "$tool" >/dev/null || die "missing tool: $tool"
done

# ---- mirror: the one this host's apt uses -----------------------------------------------------
host_mirror() {
  # deb822 first: the first stanza of Types: deb with a bare codename suite and 'main'.
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN{RS=""; FS="\n"}
      { types=""; uris=""; suites=""; comps=""; enabled="yes"
        for (i=1;i<=NF;i++) {
          if ($i ~ /^[ \t]*#/) continue
          split($i, kv, ":"); k=tolower(kv[1]); v=substr($i, length(kv[1])+2); gsub(/^[ \t]+|[ \t]+$/, "", v)
          if (k=="types") types=v; else if (k=="uris") uris=v; else if (k=="suites") suites=v
          else if (k=="components") comps=v; else if (k=="enabled") enabled=tolower(v)
        }
        if (enabled=="no" || types !~ /(^| )deb( |$)/ || comps !~ /(^| )main( |$)/) next
        n=split(suites, s, /[ \t]+/)
        for (j=1;j<=n;j++) if (s[j] ~ /^[a-z]+$/) { split(uris, u, /[ \t]+/); print u[1]; exit }
      }' "$f"
  done
  if [ -f /etc/apt/sources.list ]; then
    awk '$1=="deb" { i=2; if ($2 ~ /^\[/) { while (i<=NF && $i !~ /\]$/) i++; i++ }
                     if ($(i+1) ~ /^[a-z]+$/) { print $i; exit } }' /etc/apt/sources.list
  fi
}
MIRROR=${HANDBUILT_VM_MIRROR:-$(host_mirror | head -n1)}
[[ $MIRROR =~ ^(https?|file):// ]] || die "no Debian mirror found in /etc/apt (set HANDBUILT_VM_MIRROR)"

# ---- build ------------------------------------------------------------------------------------
mkdir -p "$CACHE"
exec 9>"$CACHE/.$NAME.lock"
if ! flock -n 9; then
  log "another build of $NAME is running; waiting for it"
  flock 9
fi
if is_complete "$OUT"; then   # built by whoever held the lock
  printf '%s\n' "$OUT"
  exit 0
fi

TMP=$(mktemp -d "$CACHE/.build-$NAME.XXXXXX")
R=$TMP/rootfs

# Long steps run as background jobs in their own process group (set -m) and the script waits
# for them: a signal is then handled at once (bash defers traps while a foreground command
# runs), and the whole step -- debootstrap's dpkg/chroot children too -- can be stopped
# before anything is unmounted or deleted.
set -m
child=""
run_step() {
  "$@" &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=""
  return "$rc"
}
stop_child() {
  [ -n "$child" ] || return 0
  stop_group "$child"
  child=""
}

unmount_all() {
  # Unmount anything left mounted below the rootfs (debootstrap mounts proc/sys and may be
  # killed before it unmounts them), deepest first. Never rm -rf across a mount.
  local m
  findmnt -rn -o TARGET | awk -v p="$R" 'index($0, p"/")==1 || $0==p' | sort -r |
    while IFS= read -r m; do umount -l -- "$m" 2>/dev/null || true; done
}
cleanup() {
  local rc=$?
  stop_child
  unmount_all
  rm -rf --one-file-system -- "$TMP"
  [ "$rc" = 0 ] || log "build FAILED (rc=$rc); nothing was cached"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t0=$(date +%s)
log "building $NAME from $MIRROR ($SUITE) into $OUT"

# initramfs-tools config before the kernel package is unpacked, so the kernel's postinst builds
# a small initramfs once (virtio + ext4 only) instead of a MODULES=most one that we redo.
install -d "$R/etc/initramfs-tools/conf.d" "$R/usr/share/initramfs-tools/modules.d"
printf 'MODULES=list\nCOMPRESS=gzip\n' > "$R/etc/initramfs-tools/conf.d/hbvm"
printf '%s\n' virtio_pci virtio_blk virtio_net ext4 > "$R/usr/share/initramfs-tools/modules.d/hbvm"

if ! run_step debootstrap --variant=minbase --components="$COMPONENTS" --include="$INCLUDE" \
       "$SUITE" "$R" "$MIRROR" > "$TMP/debootstrap.log" 2>&1; then
  tail -n 40 "$TMP/debootstrap.log" >&2
  [ -f "$R/debootstrap/debootstrap.log" ] && tail -n 40 "$R/debootstrap/debootstrap.log" >&2
  die "debootstrap failed"
fi
unmount_all
t1=$(date +%s)
log "debootstrap: $((t1 - t0)) s"

# SSH key for the test runner (stays in the cache, never in the repository).
ssh-keygen -q -t ed25519 -N '' -C "handbuilt-vm-$NAME" -f "$TMP/id_ed25519"
install -d -m 700 "$R/root/.ssh"
install -m 600 "$TMP/id_ed25519.pub" "$R/root/.ssh/authorized_keys"
# A sudo user with the same key, as fleets are usually reached: a scenario whose platform
# says `user: hbadmin` logs in as it and becomes root through sudo (pipelined: no requiretty).
chroot "$R" useradd --create-home --shell /bin/bash hbadmin
install -d -m 700 "$R/home/hbadmin/.ssh"
install -m 600 "$TMP/id_ed25519.pub" "$R/home/hbadmin/.ssh/authorized_keys"
chroot "$R" chown -R hbadmin:hbadmin /home/hbadmin/.ssh
printf 'hbadmin ALL=(ALL:ALL) NOPASSWD: ALL\n' > "$R/etc/sudoers.d/hbadmin"
chmod 440 "$R/etc/sudoers.d/hbadmin"

# Identity: filled in per VM at boot (hbvm-setup) -- nothing machine-specific baked in.
echo hbvm > "$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\thbvm\n' > "$R/etc/hosts"
: > "$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
printf '# handbuilt test VM: no DNS (restricted user-mode network)\n' > "$R/etc/resolv.conf"
printf '/dev/vda / ext4 defaults,noatime,errors=remount-ro 0 1\n' > "$R/etc/fstab"
printf 'LANG=C.UTF-8\n' > "$R/etc/default/locale"   # else pam_env logs an error per SSH login

install -m 755 "$HERE/guest/hbvm-setup" "$R/usr/local/sbin/hbvm-setup"
install -m 644 "$HERE/guest/hbvm-setup.service" "$R/etc/systemd/system/hbvm-setup.service"
install -d "$R/etc/systemd/network" "$R/etc/ssh/sshd_config.d" "$R/etc/systemd/journald.conf.d"
install -m 644 "$HERE/guest/10-eth0.network" "$R/etc/systemd/network/10-eth0.network"
install -m 644 "$HERE/guest/sshd-hbvm.conf" "$R/etc/ssh/sshd_config.d/hbvm.conf"
install -m 644 "$HERE/guest/journald-hbvm.conf" "$R/etc/systemd/journald.conf.d/hbvm.conf"

mount -t proc proc "$R/proc"   # for systemctl/dpkg in the chroot; unmounted before mkfs
chroot "$R" systemctl -q enable systemd-networkd.service hbvm-setup.service
# Nothing may wait for the network or run maintenance in the middle of a test.
for unit in systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
            apt-daily.service apt-daily-upgrade.service e2scrub_all.timer e2scrub_reap.service \
            fstrim.timer dpkg-db-backup.timer man-db.timer; do
  chroot "$R" systemctl -q mask "$unit"
done
chroot "$R" passwd -l root >/dev/null

# Kernel + initramfs, taken out for qemu -kernel/-initrd (modules inside the image match).
mapfile -t kernels < <(cd "$R/boot" && ls vmlinuz-* 2>/dev/null)
[ "${#kernels[@]}" = 1 ] || die "expected exactly one kernel in /boot, found: ${kernels[*]:-none}"
KVER=${kernels[0]#vmlinuz-}
[ -f "$R/boot/initrd.img-$KVER" ] || die "no initrd for $KVER"
if ! grep -q '^MODULES=list' "$R/etc/initramfs-tools/conf.d/hbvm"; then
  die "initramfs configuration was overwritten"
fi
cp "$R/boot/vmlinuz-$KVER" "$TMP/vmlinuz"
cp "$R/boot/initrd.img-$KVER" "$TMP/initrd.img"

chroot "$R" dpkg-query -W -f '${Package} ${Version}\n' > "$TMP/packages.txt"
chroot "$R" apt-get clean
unmount_all
rm -rf "$R"/var/lib/apt/lists/* "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/info/* \
       "$R"/usr/share/locale/* "$R"/var/log/*.log "$R"/var/cache/debconf/*-old "$R/debootstrap"
t2=$(date +%s)
log "configure: $((t2 - t1)) s"

# ext4 filesystem straight from the directory (no loop mount), then a compressed qcow2.
truncate -s 4G "$TMP/base.raw"
run_step mkfs.ext4 -q -F -L root -m 0 -E lazy_itable_init=1,lazy_journal_init=1 -d "$R" "$TMP/base.raw"
compression=(-o compression_type=zstd)
qemu-img create -q -f qcow2 -o compression_type=zstd "$TMP/probe.qcow2" 1M 2>/dev/null || compression=()
rm -f "$TMP/probe.qcow2"
run_step qemu-img convert -c -O qcow2 "${compression[@]}" "$TMP/base.raw" "$TMP/base.qcow2"
rm -f "$TMP/base.raw"
unmount_all
rm -rf --one-file-system -- "$R"
t3=$(date +%s)
log "image: $((t3 - t2)) s"

{
  echo "name=$NAME"
  echo "distro=$DISTRO"
  echo "suite=$SUITE"
  echo "kernel=$KVER"
  echo "mirror=$MIRROR"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "build_seconds=$((t3 - t0))"
  echo "pyroute2=$(awk '$1=="python3-pyroute2"{print $2}' "$TMP/packages.txt")"
} > "$TMP/build-info.txt"
touch "$TMP/.complete"
chmod 755 "$TMP"

# Atomic publish. If someone else published meanwhile (no lock on a shared cache), keep theirs.
if ! mv -T -- "$TMP" "$OUT" 2>/dev/null; then
  is_complete "$OUT" || die "could not publish $OUT"
  rm -rf --one-file-system -- "$TMP"
fi
trap - EXIT
log "built $OUT in $((t3 - t0)) s (base.qcow2 $(du -h "$OUT/base.qcow2" | cut -f1), kernel $KVER)"
prune
printf '%s\n' "$OUT"
