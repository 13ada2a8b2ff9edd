#!/usr/bin/env bash
# Build (once) and cache a minimal, genuine partial Debian mirror: just what
# `debootstrap --variant=minbase SUITE` needs, in the real archive layout, so the
# integration tests can serve it on 127.0.0.1 inside tests/sandbox.sh (no network).
#
#   tests/tools/debian-mirror.sh [--refresh] [SUITE]        (default SUITE: bookworm)
#
# Run it OUTSIDE the sandbox (it downloads from $HANDBUILT_MIRROR_UPSTREAM, default
# http://deb.debian.org/debian). The result is
#
#   ${HANDBUILT_MIRROR_CACHE:-$HOME/.cache/handbuilt-mirror}/SUITE/
#     debian/dists/SUITE/{InRelease,Release,Release.gpg}    as signed by Debian
#     debian/dists/SUITE/main/binary-ARCH/Packages.xz (+ its by-hash/SHA256 copy)
#     debian/pool/main/...deb                               exactly minbase's packages
#     SHA256SUMS, .complete                                 what the cache holds
#
# so `debootstrap --variant=minbase SUITE DIR http://127.0.0.1:PORT/debian` works with
# Debian's normal keyring. The cache is built in a temporary directory, checked by a
# real `debootstrap --download-only` against it, and renamed into place; a complete
# cache (signature and every file's checksum still good) is re-used as it is.
# The path of the cache is printed on stdout.
set -euo pipefail
umask 022

UPSTREAM=${HANDBUILT_MIRROR_UPSTREAM:-http://deb.debian.org/debian}
UPSTREAM=${UPSTREAM%/}
CACHE=${HANDBUILT_MIRROR_CACHE:-$HOME/.cache/handbuilt-mirror}
KEYRING=${HANDBUILT_MIRROR_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
VARIANT=minbase
COMPONENT=main
REFRESH=0
SUITE=bookworm

usage() { sed -n '2,21s/^# \{0,1\}//p' "$0"; }
log() { printf 'debian-mirror: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --refresh) REFRESH=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) SUITE=$1 ;;
  esac
  shift
done
[[ $SUITE =~ ^[a-z][a-z0-9.-]{0,31}$ ]] || die "$SUITE is not a Debian suite name"

for tool in debootstrap curl gpgv xz sha256sum flock; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install debootstrap curl gpgv xz-utils)"
done
[ -r "$KEYRING" ] || die "$KEYRING is missing (apt-get install debian-archive-keyring)"
ARCH=$(dpkg --print-architecture)  # what debootstrap uses when no --arch is given
DEST=$CACHE/$SUITE

# True when a file carries at least one good signature from the keyring (debootstrap's rule).
valid_sig() {
  { gpgv --status-fd 1 --keyring "$KEYRING" "$@" 2>/dev/null || true; } | grep -q '^\[GNUPG:\] VALIDSIG '
}

# A complete cache: built for this arch and variant, still validly signed, every file intact.
cache_ok() {
  local dir=$1
  [ -f "$dir/.complete" ] && [ -f "$dir/SHA256SUMS" ] || return 1
  grep -qx "arch=$ARCH" "$dir/.complete" && grep -qx "variant=$VARIANT" "$dir/.complete" || return 1
  if ! valid_sig "$dir/debian/dists/$SUITE/InRelease"; then
    log "$dir: InRelease no longer verifies; rebuilding"
    return 1
  fi
  if ! (cd "$dir" && sha256sum --quiet --strict -c SHA256SUMS >/dev/null 2>&1); then
    log "$dir: a file does not match SHA256SUMS; rebuilding"
    return 1
  fi
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9  # one builder per cache dir; a second run waits, then re-uses its result

if [ "$REFRESH" = 0 ] && cache_ok "$DEST"; then
  log "re-using $DEST"
  printf '%s\n' "$DEST"
  exit 0
fi

# Builds that a killed run left behind (we hold the lock: none is running).
find "$CACHE" -maxdepth 1 -name ".build-$SUITE.*" -type d -exec rm -rf -- {} +
WORK=$(mktemp -d "$CACHE/.build-$SUITE.XXXXXX")
cleanup() { rm -rf -- "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
NEW=$WORK/$SUITE
DISTS=$NEW/debian/dists/$SUITE
mkdir -p "$DISTS"
fetch() { curl -fsSL --retry 3 --connect-timeout 20 -o "$2" "$1"; }

# 1. The signed Release files. Debian publishes InRelease, Release and Release.gpg
#    separately: take them only when all three describe the same release.
for attempt in 1 2 3; do
  for f in InRelease Release Release.gpg; do
    fetch "$UPSTREAM/dists/$SUITE/$f" "$DISTS/$f"
  done
  valid_sig "$DISTS/InRelease" || die "$UPSTREAM/dists/$SUITE/InRelease: no valid signature from $KEYRING"
  valid_sig "$DISTS/Release.gpg" "$DISTS/Release" || die "$UPSTREAM/dists/$SUITE/Release.gpg: no valid signature"
  rm -f "$WORK/body"
  gpgv --keyring "$KEYRING" --output "$WORK/body" "$DISTS/InRelease" 2>/dev/null || true
  if cmp -s "$WORK/body" "$DISTS/Release"; then break; fi
  [ "$attempt" = 3 ] && die "InRelease and Release keep differing (is the mirror being updated?)"
  log "the mirror changed while fetching its Release files; again"
  sleep 10
done

# 2. The Packages index debootstrap picks (the smallest: .xz), by its hash in Release.
INDEX=$COMPONENT/binary-$ARCH/Packages.xz
read -r SUM SIZE < <(awk -v f="$INDEX" '/^[A-Za-z0-9-]+:/ { sha = ($1 == "SHA256:") }
                                          sha && $3 == f { print $1, $2; exit }' "$DISTS/Release")
[[ ${SUM:-} =~ ^[0-9a-f]{64}$ ]] || die "$INDEX is not listed in $SUITE's Release"
mkdir -p "$DISTS/$COMPONENT/binary-$ARCH/by-hash/SHA256"
BYHASH=$DISTS/$COMPONENT/binary-$ARCH/by-hash/SHA256/$SUM
fetch "$UPSTREAM/dists/$SUITE/$COMPONENT/binary-$ARCH/by-hash/SHA256/$SUM" "$BYHASH" ||
  fetch "$UPSTREAM/dists/$SUITE/$INDEX" "$BYHASH"
echo "$SUM  $BYHASH" | sha256sum --quiet -c - || die "$INDEX does not match $SUITE's Release"
[ "$(stat -c %s "$BYHASH")" = "$SIZE" ] || die "$INDEX has not the size Release says"
ln "$BYHASH" "$DISTS/$INDEX"

# 3. The package set: debootstrap resolves it itself, from the index just fetched.
DEBS=$(debootstrap --print-debs --variant="$VARIANT" --arch="$ARCH" \
         "$SUITE" "$WORK/print" "file://$NEW/debian" 2>"$WORK/print.log") ||
  { cat "$WORK/print.log" >&2; die "debootstrap --print-debs failed"; }
rm -rf "$WORK/print"
read -r -d '' -a NAMES <<<"$DEBS" || true  # whitespace-separated names
[ "${#NAMES[@]}" -gt 10 ] || die "debootstrap --print-debs listed only: $DEBS"
for name in "${NAMES[@]}"; do
  [[ $name =~ ^[a-z0-9][a-z0-9+.-]+$ ]] || die "debootstrap --print-debs listed $name"
done
log "$SUITE $VARIANT ($ARCH): ${#NAMES[@]} packages"

# 4. Their .debs, at their pool paths, checked against the signed index.
xz -dc "$DISTS/$INDEX" | awk -v names="${NAMES[*]}" '
  BEGIN { n = split(names, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 }
  /^Package: /  { p = $2 }
  /^Filename: / { f = $2 }
  /^SHA256: /   { s = $2 }
  /^$/          { if (p in want && !(p in seen)) { print s "  " f; seen[p] = 1 } p = f = s = "" }
  END { if (p in want && !(p in seen)) { print s "  " f; seen[p] = 1 }
        for (k in want) if (!(k in seen)) { print "not in the index: " k > "/dev/stderr"; bad = 1 }
        exit bad }' >"$WORK/debs.sha256" || die "the index lacks some of minbase's packages"
: >"$WORK/curl.conf"
while read -r sum path; do
  [[ $sum =~ ^[0-9a-f]{64}$ && $path =~ ^pool/[A-Za-z0-9+._~/-]+\.deb$ && $path != *..* ]] ||
    die "unexpected index entry: $sum $path"
  printf 'url = "%s/%s"\noutput = "%s/debian/%s"\n' "$UPSTREAM" "$path" "$NEW" "$path" >>"$WORK/curl.conf"
done <"$WORK/debs.sha256"
curl -fsSL --no-progress-meter --retry 3 --connect-timeout 20 --create-dirs \
  --parallel --parallel-max 8 -K "$WORK/curl.conf" || die "downloading the .debs failed"
(cd "$NEW/debian" && sha256sum --quiet --strict -c "$WORK/debs.sha256") || die "a .deb does not match the index"

# 5. The proof: a real debootstrap finds, verifies (signature, checksums) and fetches
#    everything it needs from the new mirror alone.
debootstrap --download-only --variant="$VARIANT" --arch="$ARCH" --keyring="$KEYRING" \
  "$SUITE" "$WORK/check" "file://$NEW/debian" >"$WORK/check.log" 2>&1 ||
  { tail -20 "$WORK/check.log" >&2; die "debootstrap --download-only from the new mirror failed"; }
grep -q "Valid Release signature" "$WORK/check.log" || die "debootstrap did not verify the Release signature"
rm -rf "$WORK/check"

(cd "$NEW" && find debian -type f -print0 | sort -z | xargs -0 sha256sum) >"$NEW/SHA256SUMS"
printf 'suite=%s\narch=%s\nvariant=%s\nupstream=%s\npackages=%s\nbuilt=%s\n' "$SUITE" "$ARCH" \
  "$VARIANT" "$UPSTREAM" "${#NAMES[@]}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$NEW/.complete"

# 6. Into place by rename; an older cache is moved aside first and removed after.
if [ -e "$DEST" ]; then
  mv -T -- "$DEST" "$WORK/old"
fi
mv -T -- "$NEW" "$DEST"
log "built $DEST ($(du -sh "$DEST" | cut -f1))"
printf '%s\n' "$DEST"
