#!/bin/sh
# The reference for bench/bench_xcache.py: an XRootD origin and an XCache in
# front of it, started by hand as the XRootD documentation describes (sss
# between them, the proxy file cache), ready when a file read through the cache
# has the origin's bytes. Usage: manual_xcache.sh DIR [stop]
set -eu
d=$1
if [ "${2:-}" = stop ]; then
    for p in "$d"/origin.pid "$d"/cache.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
    exit 0
fi
mkdir -p "$d/export" "$d/cache" "$d/adm-o" "$d/adm-c"
head -c 65536 /dev/urandom > "$d/export/probe"
xrdsssadmin -k bench -u bench -g bench add "$d/keytab" > /dev/null <<ANSWER
y
ANSWER
chmod 600 "$d/keytab"
cat > "$d/origin.cfg" <<CFG
all.adminpath $d/adm-o
all.pidpath $d/adm-o
xrd.port 31695
all.export / nolock r/o
oss.localroot $d/export
xrootd.seclib libXrdSec.so
sec.protocol sss -s $d/keytab
sec.protbind * only sss
CFG
cat > "$d/cache.cfg" <<CFG
all.adminpath $d/adm-c
all.pidpath $d/adm-c
xrd.port 31694
all.export / nolock
ofs.osslib libXrdPss.so
pss.cachelib libXrdPfc.so
pss.origin 127.0.0.1:31695
oss.localroot $d/cache
pfc.ram 1g
pfc.blocksize 1m
pfc.diskusage 0.90 0.95 files 1g 2g 3g purgeinterval 60
CFG
run=""
[ "$(id -u)" = 0 ] && run="unshare --user --map-user=1000 --map-group=1000 --"
$run xrootd -c "$d/origin.cfg" -n origin > "$d/origin.log" 2>&1 &
echo $! > "$d/origin.pid"
XrdSecPROTOCOL=sss XrdSecSSSKT="$d/keytab" $run xrootd -c "$d/cache.cfg" -n cache > "$d/cache.log" 2>&1 &
echo $! > "$d/cache.pid"
export XRD_CONNECTIONRETRY=1 XRD_REQUESTTIMEOUT=20
until xrdcp --force --nopbar root://127.0.0.1:31694//probe "$d/probe.read" 2>/dev/null; do sleep 0.2; done
cmp -s "$d/probe.read" "$d/export/probe"
