#!/bin/sh
# The reference for bench/bench_htcondor.py: the pool dodas deploys from
# templates/htcondor.yaml on the local provider (a central manager, a schedd and
# two single-core startds, each its own condor_master on a loopback address),
# started by hand: the same security (IDTOKENS signed from a pool key, required
# encryption and integrity, tokens only between daemons), ready when a probe job
# has run and returned its output. HTCondor is the host's, or the Debian 13 root
# in $HTCONDOR_ROOT (run in a mount namespace, as dodas runs it; needs root).
# Usage: manual_htcondor.sh DIR [stop | jobs N]
set -eu
d=$1
net=${MANUAL_NET:-127.0.199}
cm=$net.1; sd=$net.2
# an HTCondor program: the host's, or the root's in a mount namespace of its own
if command -v condor_master > /dev/null; then enter=""; else
    enter='mount --bind "$0/etc/ld.so.cache" /etc/ld.so.cache && mount --bind "$0/usr" /usr && exec "$@"'
fi
run() {
    if [ -z "$enter" ]; then "$@"; else unshare --mount --propagation private -- sh -c "$enter" "$HTCONDOR_ROOT" "$@"; fi
}
if [ "${2:-}" = stop ]; then
    for p in "$d"/*/master.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
    for p in "$d"/*/master.pid; do
        while [ -f "$p" ] && kill -0 "$(cat "$p")" 2>/dev/null; do sleep 0.2; done
    done
    # each master's process-tracking daemon outlives it: those started for this directory
    for p in /proc/[0-9]*; do
        case "$( { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null)" in
            condor_procd*" $d/"*) kill "${p#/proc/}" 2>/dev/null || true ;;
        esac
    done
    exit 0
fi
if [ "${2:-}" = jobs ]; then   # N one-second jobs through the running pool; returns once all are done
    j=$d/jobs-$$; mkdir -p "$j"; chmod 777 "$j"
    printf 'executable = /bin/sleep\narguments = 1\ntransfer_executable = false\nshould_transfer_files = YES\nlog = %s/log\nrequest_cpus = 1\nrequest_memory = 32\nqueue %s\n' "$j" "$3" > "$j/sub"
    CONDOR_CONFIG=$d/schedd/condor_config run condor_submit "$j/sub" > /dev/null
    CONDOR_CONFIG=$d/schedd/condor_config run condor_wait -wait 3600 "$j/log" > /dev/null
    exit 0
fi

instance() {   # NAME ADDRESS DAEMONS...
    name=$1; ip=$2; shift 2
    i=$d/$name
    mkdir -p "$i/passwords.d" "$i/tokens.d"
    for sub in spool execute log lock run; do mkdir -p "$i/$sub"; done
    chown -R 65534:65534 "$i/spool" "$i/execute" "$i/log" "$i/lock" "$i/run"
    chmod 700 "$i/passwords.d" "$i/tokens.d"
    cat > "$i/condor_config" <<CFG
RELEASE_DIR = /usr
LOCAL_DIR = $i
SPOOL = \$(LOCAL_DIR)/spool
EXECUTE = \$(LOCAL_DIR)/execute
LOG = \$(LOCAL_DIR)/log
LOCK = \$(LOCAL_DIR)/lock
RUN = \$(LOCAL_DIR)/run
BIN = /usr/bin
SBIN = /usr/sbin
LIBEXEC = /usr/libexec/condor
LIB = /usr/lib/condor
CONDOR_IDS = 65534.65534
CONDOR_HOST = $cm
COLLECTOR_HOST = $cm:9618
NETWORK_INTERFACE = $ip
BIND_ALL_INTERFACES = FALSE
USE_SHARED_PORT = FALSE
ENABLE_IPV6 = FALSE
MASTER_NAME = $name
SCHEDD_NAME = $name
STARTD_NAME = $name
DAEMON_LIST = MASTER, $*
TRUST_DOMAIN = manual.pool
UID_DOMAIN = \$(TRUST_DOMAIN)
SEC_PASSWORD_DIRECTORY = $i/passwords.d
SEC_TOKEN_POOL_SIGNING_KEY_FILE = \$(SEC_PASSWORD_DIRECTORY)/POOL
SEC_TOKEN_SYSTEM_DIRECTORY = $i/tokens.d
SEC_DEFAULT_AUTHENTICATION = REQUIRED
SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS
SEC_CLIENT_AUTHENTICATION_METHODS = FS, IDTOKENS
SEC_DAEMON_AUTHENTICATION = REQUIRED
SEC_DAEMON_AUTHENTICATION_METHODS = IDTOKENS
SEC_NEGOTIATOR_AUTHENTICATION = REQUIRED
SEC_NEGOTIATOR_AUTHENTICATION_METHODS = IDTOKENS
SEC_READ_AUTHENTICATION = REQUIRED
SEC_DEFAULT_ENCRYPTION = REQUIRED
SEC_DEFAULT_INTEGRITY = REQUIRED
SEC_ENABLE_MATCH_PASSWORD_AUTHENTICATION = TRUE
SEC_USE_FAMILY_SESSION = FALSE
POOL_DAEMONS = condor@\$(TRUST_DOMAIN), condor@password
MATCH_SESSIONS = submit-side@matchsession, execute-side@matchsession
ALLOW_READ = *@\$(UID_DOMAIN), \$(POOL_DAEMONS)
ALLOW_WRITE = *@\$(UID_DOMAIN), \$(MATCH_SESSIONS)
ALLOW_DAEMON = \$(POOL_DAEMONS), \$(MATCH_SESSIONS)
ALLOW_NEGOTIATOR = \$(POOL_DAEMONS)
ALLOW_ADVERTISE_MASTER = \$(POOL_DAEMONS)
ALLOW_ADVERTISE_SCHEDD = \$(POOL_DAEMONS)
ALLOW_ADVERTISE_STARTD = \$(POOL_DAEMONS)
ALLOW_ADMINISTRATOR = root@\$(UID_DOMAIN), \$(POOL_DAEMONS)
DENY_WRITE = anonymous@*, unauthenticated@*
DENY_READ = anonymous@*, unauthenticated@*
NEGOTIATOR_INTERVAL = 20
NUM_CPUS = 1
MEMORY = 1024
NUM_SLOTS = 1
NUM_SLOTS_TYPE_1 = 1
SLOT_TYPE_1 = 100%
SLOT_TYPE_1_PARTITIONABLE = TRUE
RunBenchmarks = False
CFG
}

chmod 755 "$d"   # the daemons work as nobody beneath it
instance cm "$cm" COLLECTOR NEGOTIATOR
instance schedd "$sd" SCHEDD
instance startd-0 "$net.3" STARTD
instance startd-1 "$net.4" STARTD
umask 077
head -c 32 /dev/urandom | base64 > "$d/cm/passwords.d/POOL"
token=$(CONDOR_CONFIG=$d/cm/condor_config run condor_token_create -key POOL -identity condor@manual.pool)
for i in cm schedd startd-0 startd-1; do printf '%s\n' "$token" > "$d/$i/tokens.d/pool"; done
cp "$d/cm/passwords.d/POOL" "$d/schedd/passwords.d/POOL"
umask 022
for i in cm schedd startd-0 startd-1; do
    # (a simple command in the background, so that $! is the master itself: SIGTERM stops its daemons)
    if [ -z "$enter" ]; then
        CONDOR_CONFIG=$d/$i/condor_config condor_master -f > /dev/null 2>&1 &
    else
        CONDOR_CONFIG=$d/$i/condor_config unshare --mount --propagation private -- sh -c "$enter" \
            "$HTCONDOR_ROOT" condor_master -f > /dev/null 2>&1 &
    fi
    echo $! > "$d/$i/master.pid"
done
# ready: a probe job ran on a startd and returned its output
j=$d/probe; mkdir -p "$j"; chmod 777 "$j"
printf 'executable = /bin/echo\narguments = probe\ntransfer_executable = false\nshould_transfer_files = YES\noutput = %s/out\nlog = %s/log\nqueue\n' "$j" "$j" > "$j/sub"
export CONDOR_CONFIG=$d/schedd/condor_config
until run condor_submit "$j/sub" > /dev/null 2>&1; do sleep 0.2; done
run condor_wait -wait 600 "$j/log" > /dev/null
[ "$(cat "$j/out")" = probe ]
