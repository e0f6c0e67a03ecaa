/* spawn: run a helper program (qemu-img) safely and capture what it says.
 *
 * Promises: no shell is involved (argv is passed as is); argv[0] must be an
 * absolute path; the child gets a fixed environment (LC_ALL=C so messages
 * and JSON are not localised, a fixed PATH), stdin from /dev/null, no
 * inherited descriptors but those passed on purpose (spawn_fds); it is
 * killed if the daemon dies (PR_SET_PDEATHSIG,
 * so a crashed daemon leaves no writer behind) and when the timeout
 * expires. stdout and stderr are captured up to a limit each. */
#ifndef VMSTOREFS_SPAWN_H
#define VMSTOREFS_SPAWN_H

#include <stdbool.h>
#include <stddef.h>

struct spawn_result {
    int exit_code; /* exit status, or -1 if the child did not exit normally */
    int term_signal; /* signal that ended it, or 0 */
    bool timed_out;
    bool cancelled; /* stopped because spawn_watch.cancelled said so */
    char *out; /* captured stdout, NUL-terminated (never NULL after run) */
    size_t out_len;
    char *err; /* captured stderr, NUL-terminated (never NULL after run) */
    size_t err_len;
};

#define SPAWN_CAPTURE_LIMIT (4u << 20)

/* Runs argv and waits for it. Returns 0 when the child exited with status
 * 0; -EIO when it exited non-zero or was killed by a signal; -ETIMEDOUT
 * when it ran past timeout_sec (0 = no limit); another -errno when it could
 * not be started (-EINVAL for a relative argv[0]) or its end could not be
 * learnt (-ECHILD when SIGCHLD is ignored: never taken for success). res is always filled and
 * must be released with spawn_result_free(). */
int spawn_run(const char *const argv[], unsigned timeout_sec, struct spawn_result *res);
/* What a caller watches while the child runs (spawn_run_watched). */
struct spawn_watch {
    /* Each chunk the child writes to stdout, as it comes (it is captured
     * too): qemu-img -p progress. May be NULL. */
    void (*on_output)(const char *buf, size_t len, void *arg);
    /* Asked at least every SPAWN_WATCH_MS: true kills the child (a FUSE
     * interrupt, an unmount) and the run returns -EINTR. May be NULL. */
    bool (*cancelled)(void *arg);
    void *arg;
};
#define SPAWN_WATCH_MS 100

/* spawn_run, with w (may be NULL) told of the child's output and asked
 * whether to stop it. */
int spawn_run_watched(const char *const argv[], unsigned timeout_sec, const struct spawn_watch *w,
                      struct spawn_result *res);
/* Descriptors handed to the child: fd[i] becomes descriptor 3 + i there
 * (so /proc/self/fd/<3+i> names it), every other one is closed. How
 * qemu-img is made to open exactly the files the daemon checked. */
struct spawn_fds {
    const int *fd;
    size_t n;
};
/* More than a chain can hold (CHAIN_MAX_DEPTH) plus a few. */
#define SPAWN_FDS_MAX 1100

/* spawn_run_watched, with f (may be NULL) passed to the child. -EMFILE
 * past SPAWN_FDS_MAX. */
int spawn_run_fds(const char *const argv[], const struct spawn_fds *f, unsigned timeout_sec,
                  const struct spawn_watch *w, struct spawn_result *res);
void spawn_result_free(struct spawn_result *res);

/* The last non-empty line of the child's stderr, trimmed, for one-line
 * log messages ("qemu-img: Could not open ...: Permission denied"). */
void spawn_last_err_line(const struct spawn_result *res, char *buf, size_t bufsz);

#endif
