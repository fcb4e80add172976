# common.sh — what make-data.sh and make-queries.sh share: their options and the BENCH_WORK lock (sourced, POSIX sh).

# data_args NAME HELP_LINES "$@": sets MODE (quick|full) and JOBS from the command line.
data_args() {
    name=$1 help=$2
    shift 2
    MODE=quick
    JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
    while [ $# -gt 0 ]; do
        case "$1" in
            --quick) MODE=quick ;;
            --full) MODE=full ;;
            --jobs) JOBS=$2; shift ;;
            -h|--help) sed -n "$help" "$0"; exit 0 ;;
            *) echo "$name: unknown argument $1" >&2; exit 2 ;;
        esac
        shift
    done
}

# lock_bench_work NAME: one data/query build at a time per BENCH_WORK (bench/run and a person may
# start them together); a build started by another one that holds the lock runs inside it.
lock_bench_work() {
    mkdir -p "$BENCH_WORK"
    if [ -z "${BENCH_WORK_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
        exec 9>"$BENCH_WORK/.lock"
        if ! flock -n 9; then
            echo "$1: waiting for another data/query build in $BENCH_WORK" >&2
            flock 9
        fi
        export BENCH_WORK_LOCKED=1
    fi
}
