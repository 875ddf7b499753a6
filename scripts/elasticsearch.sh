#!/usr/bin/env bash
# A throwaway single-node Elasticsearch for tests and demos, without Docker.
#
#   scripts/elasticsearch.sh start    start (or reuse) a node; prints its URL on stdout
#   scripts/elasticsearch.sh stop     stop it and delete its data
#   scripts/elasticsearch.sh status   "running at URL ..." (exit 0), "not running" (exit 3),
#                                     or running but not answering (exit 1)
#   scripts/elasticsearch.sh url      print the URL of the running node
#
# The node is the integ-test zip from Maven Central (server + transport + x-pack core and
# security only: standard analyzer, no painless, no analysis-common, no RRF), unpacked once
# per version into ${AUDITOR_ES_CACHE:-~/.cache/auditor/elasticsearch}. It binds 127.0.0.1
# on a free port, keeps data and logs in a temporary directory and its state (pid, url, run
# directory) in ${AUDITOR_ES_STATE:-<repo>/.auditor/es}. Elasticsearch refuses to run as
# root: under root the node runs as ${AUDITOR_ES_USER:-nobody}, and the default cache is
# /var/cache/auditor/elasticsearch because root's home is not readable by that user.
#
# Other knobs: AUDITOR_ES_VERSION (default below), ES_JAVA_HOME (else the newest JDK >= 21
# under /usr/lib/jvm), AUDITOR_ES_START_TIMEOUT (seconds, default 120), AUDITOR_ES_JAVA_OPTS.
set -euo pipefail
shopt -s inherit_errexit

ES_VERSION="${AUDITOR_ES_VERSION:-9.5.4}"
ES_ARTIFACT="org.elasticsearch.distribution.integ-test-zip:elasticsearch:${ES_VERSION}:zip"
MIN_JAVA=21
START_TIMEOUT="${AUDITOR_ES_START_TIMEOUT:-120}"
STOP_TIMEOUT=30

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${AUDITOR_ES_STATE:-$REPO/.auditor/es}"
if [[ $EUID -eq 0 ]]; then
    RUN_USER="${AUDITOR_ES_USER:-nobody}"
    CACHE_DIR="${AUDITOR_ES_CACHE:-/var/cache/auditor/elasticsearch}"
else
    RUN_USER=""
    CACHE_DIR="${AUDITOR_ES_CACHE:-$HOME/.cache/auditor/elasticsearch}"
fi
RUN_DIR=""  # the run being started, cleaned up by the EXIT trap if start fails

say() { printf '%s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# --- state -----------------------------------------------------------------------------

state_get() { if [[ -f "$STATE_DIR/$1" ]]; then cat "$STATE_DIR/$1"; fi; }

clear_state() { rm -f "$STATE_DIR"/{pid,url,run_dir,version,java_home}; }

lock_state() {
    mkdir -p "$STATE_DIR" \
        || die "cannot create $STATE_DIR: set AUDITOR_ES_STATE to a writable directory."
    exec 9>"$STATE_DIR/.lock"
    flock -w "$((START_TIMEOUT + 60))" 9 \
        || die "another scripts/elasticsearch.sh holds $STATE_DIR/.lock: wait for it to finish."
}

# The marker every process of a run carries on its command line: the run directory is a
# fresh mktemp path, so this matches our processes and nothing else.
run_marker() { printf '%s' "-Djava.io.tmpdir=$1/tmp"; }

is_ours() {
    local pid="$1" run_dir="$2" cmdline
    [[ -n "$pid" && -n "$run_dir" && -r "/proc/$pid/cmdline" ]] || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *"$(run_marker "$run_dir")"* ]]
}

run_pids() {
    local run_dir="$1" proc
    for proc in /proc/[0-9]*; do
        if is_ours "${proc#/proc/}" "$run_dir"; then printf '%s\n' "${proc#/proc/}"; fi
    done
}

healthy() {
    [[ -n "$1" ]] || return 1
    curl -fsS --max-time 5 \
        "$1/_cluster/health?wait_for_status=yellow&timeout=2s" >/dev/null 2>&1
}

# SIGTERM, wait, then SIGKILL every process of a run; then delete the run directory.
terminate_run() {
    local run_dir="$1" pid tick
    local -a pids=()
    [[ -n "$run_dir" ]] || return 0
    mapfile -t pids < <(run_pids "$run_dir")
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((tick = 0; tick < STOP_TIMEOUT * 5 && ${#pids[@]} > 0; tick++)); do
        sleep 0.2
        mapfile -t pids < <(run_pids "$run_dir")
    done
    for pid in "${pids[@]}"; do
        say "Elasticsearch (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; killing it."
        kill -KILL "$pid" 2>/dev/null || true
    done
    while [[ -n "$(run_pids "$run_dir")" ]]; do sleep 0.2; done
    case "$run_dir" in
        */auditor-es.*) rm -rf -- "$run_dir" ;;
    esac
}

# Runs started for this state directory whose state files were lost (deleted .auditor/).
orphan_runs() {
    local owner
    for owner in "${TMPDIR:-/tmp}"/auditor-es.*/state_dir; do
        [[ -f "$owner" && "$(cat "$owner")" == "$STATE_DIR" ]] && dirname "$owner"
    done
    return 0
}

write_state() {
    local run_dir="$1" pid="$2" url="$3" java_home="$4"
    mkdir -p "$STATE_DIR"
    printf '%s\n' "$pid" >"$STATE_DIR/pid"
    printf '%s\n' "$url" >"$STATE_DIR/url"
    printf '%s\n' "$run_dir" >"$STATE_DIR/run_dir"
    printf '%s\n' "$ES_VERSION" >"$STATE_DIR/version"
    printf '%s\n' "$java_home" >"$STATE_DIR/java_home"
}

# A healthy run of ours whose state files were lost becomes the recorded run again.
adopt_orphan() {
    local run_dir pid url
    while read -r run_dir; do
        [[ -n "$run_dir" ]] || continue
        pid="$(cat "$run_dir/tmp/es.pid" 2>/dev/null || true)"
        url="$(cat "$run_dir/url" 2>/dev/null || true)"
        if is_ours "$pid" "$run_dir" && healthy "$url"; then
            write_state "$run_dir" "$pid" "$url" "?"
            return 0
        fi
    done < <(orphan_runs)
    return 1
}

# Prints the URL when the recorded node is alive and answering.
running_url() {
    local url
    url="$(state_get url)"
    if is_ours "$(state_get pid)" "$(state_get run_dir)" && healthy "$url"; then
        printf '%s\n' "$url"
        return 0
    fi
    return 1
}

# --- distribution and JDK -------------------------------------------------------------

# Runs in a subshell holding the cache lock.
unpack_distribution() {
    local home="$1"
    [[ -f "$home/.auditor-complete" ]] && return 0
    say "Fetching Elasticsearch $ES_VERSION (integ-test zip) with Maven into $CACHE_DIR ..."
    UNPACK_TMP="$(mktemp -d "$CACHE_DIR/.unpack.XXXXXX")"
    trap 'rm -rf -- "$UNPACK_TMP"' EXIT
    if ! mvn -q -B dependency:copy -Dartifact="$ES_ARTIFACT" -DoutputDirectory="$UNPACK_TMP" \
        >"$UNPACK_TMP/mvn.log" 2>&1; then
        sed 's/\x1b\[[0-9;]*m//g' "$UNPACK_TMP/mvn.log" | tail -n 20 >&2
        die "Maven could not fetch $ES_ARTIFACT: check access to Maven Central or choose another version with AUDITOR_ES_VERSION."
    fi
    unzip -q "$UNPACK_TMP/elasticsearch-$ES_VERSION.zip" -d "$UNPACK_TMP/unpacked"
    rm -rf -- "$home"
    mv "$UNPACK_TMP/unpacked/elasticsearch-$ES_VERSION" "$home"
    if [[ -n "$RUN_USER" ]]; then chmod -R a+rX "$home"; fi
    touch "$home/.auditor-complete"
}

# Unpacks the integ-test zip once per version; prints its home directory.
ensure_distribution() {
    local home="$CACHE_DIR/elasticsearch-$ES_VERSION"
    if [[ ! -f "$home/.auditor-complete" ]]; then
        command -v mvn >/dev/null \
            || die "Maven (mvn) is needed to fetch Elasticsearch $ES_VERSION: install it (apt-get install maven)."
        command -v unzip >/dev/null || die "unzip is needed: install it (apt-get install unzip)."
        mkdir -p "$CACHE_DIR" \
            || die "cannot create $CACHE_DIR: set AUDITOR_ES_CACHE to a writable directory."
        (
            flock -w 600 8 || die "another process is unpacking into $CACHE_DIR: try again later."
            unpack_distribution "$home"
        ) 8>"$CACHE_DIR/.lock"
    fi
    printf '%s\n' "$home"
}

java_major() {
    "$1/bin/java" -XshowSettings:properties -version 2>&1 \
        | awk -F' = ' '/java.specification.version/ {print $2}' | cut -d. -f1
}

# ES_JAVA_HOME when it is set, else the newest JDK >= MIN_JAVA under /usr/lib/jvm.
pick_java() {
    local home major best="" best_major=0
    if [[ -n "${ES_JAVA_HOME:-}" ]]; then
        major="$(java_major "$ES_JAVA_HOME" || true)"
        [[ -n "$major" && "$major" -ge $MIN_JAVA ]] \
            || die "ES_JAVA_HOME=$ES_JAVA_HOME is not a JDK $MIN_JAVA or newer: point it at one or unset it."
        printf '%s\n' "$ES_JAVA_HOME"
        return
    fi
    for home in /usr/lib/jvm/*; do
        [[ -L "$home" || ! -x "$home/bin/java" ]] && continue
        major="$(java_major "$home" || true)"
        if [[ -n "$major" && "$major" -ge $MIN_JAVA && "$major" -gt $best_major ]]; then
            best="$home"
            best_major="$major"
        fi
    done
    [[ -n "$best" ]] \
        || die "Elasticsearch $ES_VERSION needs Java $MIN_JAVA or newer and none is under /usr/lib/jvm: install one or set ES_JAVA_HOME."
    printf '%s\n' "$best"
}

# A port nothing listens on, from a range below the usual ephemeral ports.
free_port() {
    local port tries
    for ((tries = 0; tries < 200; tries++)); do
        port=$((19200 + RANDOM % 10000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            printf '%s\n' "$port"
            return
        fi
    done
    die "no free TCP port on 127.0.0.1 between 19200 and 29199: free one and retry."
}

# --- start -----------------------------------------------------------------------------

# A fresh run directory: data, logs, tmp and a copy of the distribution's config.
prepare_run() {
    local es_home="$1" run_dir="$2" http_port="$3" transport_port="$4"
    mkdir -p "$run_dir"/{data,logs,tmp}
    # Lets start/stop find this run again if the state directory is deleted.
    printf '%s\n' "$STATE_DIR" >"$run_dir/state_dir"
    printf '%s\n' "http://127.0.0.1:$http_port" >"$run_dir/url"
    cp -R "$es_home/config" "$run_dir/config"
    cat >"$run_dir/config/elasticsearch.yml" <<EOF
cluster.name: auditor-test
node.name: auditor-test-node
network.host: 127.0.0.1
http.port: $http_port
transport.port: $transport_port
discovery.type: single-node
path.data: $run_dir/data
path.logs: $run_dir/logs
xpack.security.enabled: false
cluster.routing.allocation.disk.threshold_enabled: false
EOF
    if [[ -n "$RUN_USER" ]]; then
        command -v setpriv >/dev/null \
            || die "Elasticsearch cannot run as root and setpriv (util-linux) is missing: run this script as a normal user."
        chown -R "$RUN_USER:$(id -g "$RUN_USER")" "$run_dir"
        setpriv --reuid="$RUN_USER" --regid="$(id -g "$RUN_USER")" --clear-groups -- \
            test -r "$es_home/bin/elasticsearch" \
            || die "user $RUN_USER cannot read $es_home: set AUDITOR_ES_CACHE to a directory it can read."
    fi
}

# The CLI daemonizes the server once the node has started. The server must inherit neither
# our lock (fd 9) nor our stdout (whoever reads our output would wait for it forever).
launch() {
    local es_home="$1" java_home="$2" run_dir="$3"
    local -a cmd=(timeout "$START_TIMEOUT")
    if [[ -n "$RUN_USER" ]]; then
        cmd+=(setpriv --reuid="$RUN_USER" --regid="$(id -g "$RUN_USER")" --clear-groups --)
    fi
    cmd+=(env
        HOME="$run_dir"
        ES_PATH_CONF="$run_dir/config"
        ES_TMPDIR="$run_dir/tmp"
        ES_JAVA_HOME="$java_home"
        ES_JAVA_OPTS="-Xms512m -Xmx768m ${AUDITOR_ES_JAVA_OPTS:-}"
        "$es_home/bin/elasticsearch" -d -p "$run_dir/tmp/es.pid")
    # gc.log and hs_err files are written to the working directory.
    (cd "$run_dir/logs" && "${cmd[@]}") </dev/null >"$run_dir/startup.log" 2>&1 9>&-
}

cleanup_failed_start() {
    if [[ -n "$RUN_DIR" ]]; then
        terminate_run "$RUN_DIR"
        clear_state
    fi
}

cmd_start() {
    local es_home java_home url pid attempt http_port transport_port stale
    lock_state
    if running_url; then return 0; fi
    if [[ -z "$(state_get run_dir)" ]] && adopt_orphan && running_url; then return 0; fi
    terminate_run "$(state_get run_dir)"  # a stale run: dead or not answering
    clear_state
    while read -r stale; do terminate_run "$stale"; done < <(orphan_runs)

    local started_at=$SECONDS
    es_home="$(ensure_distribution)"
    java_home="$(pick_java)"
    trap cleanup_failed_start EXIT  # never leave a half-started node behind
    trap 'exit 130' INT TERM
    for attempt in 1 2 3; do
        RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/auditor-es.XXXXXX")"
        chmod 755 "$RUN_DIR"
        http_port="$(free_port)"
        transport_port="$(free_port)"
        while [[ "$transport_port" == "$http_port" ]]; do transport_port="$(free_port)"; done
        url="http://127.0.0.1:$http_port"
        say "Starting Elasticsearch $ES_VERSION at $url (JDK $java_home, data in $RUN_DIR) ..."
        prepare_run "$es_home" "$RUN_DIR" "$http_port" "$transport_port"
        if launch "$es_home" "$java_home" "$RUN_DIR"; then break; fi
        if ((attempt < 3)) && grep -qs "BindException" "$RUN_DIR"/startup.log "$RUN_DIR"/logs/*.log
        then
            say "Port $http_port or $transport_port was taken meanwhile; trying other ports."
            terminate_run "$RUN_DIR"
            continue
        fi
        tail -n 20 "$RUN_DIR/startup.log" >&2 || true
        die "Elasticsearch did not start (log above): fix the cause and run scripts/elasticsearch.sh start again."
    done

    pid="$(cat "$RUN_DIR/tmp/es.pid" 2>/dev/null || true)"
    until healthy "$url"; do
        is_ours "$pid" "$RUN_DIR" \
            || die "Elasticsearch exited while starting: read $RUN_DIR/logs/auditor-test.log."
        ((SECONDS - started_at < START_TIMEOUT)) \
            || die "Elasticsearch did not reach yellow health within ${START_TIMEOUT}s: raise AUDITOR_ES_START_TIMEOUT or read the logs in $RUN_DIR/logs."
        sleep 1
    done
    write_state "$RUN_DIR" "$pid" "$url" "$java_home"
    RUN_DIR=""
    trap - EXIT INT TERM
    say "Elasticsearch $ES_VERSION is up at $url (pid $pid, started in $((SECONDS - started_at))s)."
    printf '%s\n' "$url"
}

# --- stop, status, url -----------------------------------------------------------------

cmd_stop() {
    lock_state
    local run_dir pid stopped=0
    run_dir="$(state_get run_dir)"
    pid="$(state_get pid)"
    trap '' INT TERM  # finish stopping even if interrupted
    if [[ -n "$run_dir" ]]; then
        terminate_run "$run_dir"
        say "Elasticsearch (pid ${pid:-?}) stopped; $run_dir removed."
        stopped=1
    fi
    clear_state
    while read -r run_dir; do
        [[ -n "$run_dir" ]] || continue
        terminate_run "$run_dir"
        say "Stopped an Elasticsearch whose state was lost; $run_dir removed."
        stopped=1
    done < <(orphan_runs)
    ((stopped)) || say "Elasticsearch is not running (no state in $STATE_DIR)."
}

cmd_status() {
    local url
    if url="$(running_url)"; then
        echo "running at $url (pid $(state_get pid), Elasticsearch $(state_get version))"
        return 0
    fi
    if is_ours "$(state_get pid)" "$(state_get run_dir)"; then
        echo "running (pid $(state_get pid)) but not answering at $(state_get url):" \
            "read the logs in $(state_get run_dir)/logs or restart it (stop, then start)"
        return 1
    fi
    echo "not running"
    return 3
}

cmd_url() {
    running_url || die "Elasticsearch is not running: start it with scripts/elasticsearch.sh start."
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    url) cmd_url ;;
    *)
        say "usage: scripts/elasticsearch.sh start|stop|status|url"
        exit 2
        ;;
esac
