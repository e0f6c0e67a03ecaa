#include "config.h"

#include "util/spawn.h"
#include "util/monotime.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *const child_env[] = {
    "LC_ALL=C",
    "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
    NULL,
};

struct capture {
    int fd;
    char *buf;
    size_t len, cap;
};

static int capture_init(struct capture *c)
{
    c->fd = -1;
    c->len = 0;
    c->cap = 4096;
    c->buf = malloc(c->cap);
    if (!c->buf)
        return -ENOMEM;
    c->buf[0] = '\0';
    return 0;
}

/* Reads what is available; past the limit the data is drained and dropped
 * so the child never blocks on a full pipe. Returns false at EOF. */
static bool capture_read(struct capture *c, const struct spawn_watch *w)
{
    char tmp[65536];
    ssize_t n = read(c->fd, tmp, sizeof(tmp));
    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (n == 0)
        return false;
    if (w && w->on_output)
        w->on_output(tmp, (size_t)n, w->arg);
    size_t take = (size_t)n;
    if (c->len + take > SPAWN_CAPTURE_LIMIT)
        take = SPAWN_CAPTURE_LIMIT - c->len;
    if (c->len + take + 1 > c->cap) {
        size_t ncap = c->cap;
        while (c->len + take + 1 > ncap)
            ncap *= 2;
        char *nb = realloc(c->buf, ncap);
        if (!nb)
            return true; /* keep draining; the capture is just shorter */
        c->buf = nb;
        c->cap = ncap;
    }
    memcpy(c->buf + c->len, tmp, take);
    c->len += take;
    c->buf[c->len] = '\0';
    return true;
}

/* The passed descriptors become 3, 4, ... in the child: each is first
 * copied above that range (so no dup2 below clobbers one not yet moved),
 * then into place; dup2 leaves the new descriptor without FD_CLOEXEC.
 * tmp has room for n. */
static bool place_fds(const struct spawn_fds *f, int *tmp)
{
    for (size_t i = 0; i < f->n; i++)
        if ((tmp[i] = fcntl(f->fd[i], F_DUPFD_CLOEXEC, 3 + (int)f->n)) < 0)
            return false;
    for (size_t i = 0; i < f->n; i++)
        if (dup2(tmp[i], 3 + (int)i) < 0)
            return false;
    return true;
}

/* Only async-signal-safe calls between fork and exec: the daemon is
 * multithreaded. */
static void child_exec(const char *const argv[], const struct spawn_fds *f, int *tmp,
                       pid_t parent, int out_w, int err_w)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(127);
    setpgid(0, 0);
    /* Before 0-2 are replaced: a passed descriptor may be one of them. */
    if (f && !place_fds(f, tmp))
        _exit(127);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
        _exit(127);
    close_range(3 + (f ? (unsigned)f->n : 0), ~0U, 0);
    /* libfuse ignores SIGPIPE in the daemon; an ignored signal survives
     * exec, and qemu-img should see the default. */
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigaction(SIGPIPE, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(argv[0], (char *const *)argv, child_env);
    _exit(127);
}


static void kill_child(pid_t pid, struct spawn_result *res, bool cancelled)
{
    if (cancelled)
        res->cancelled = true;
    else
        res->timed_out = true;
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
}

static bool want_stop(const struct spawn_watch *w)
{
    return w && w->cancelled && w->cancelled(w->arg);
}

static void collect(struct capture *out, struct capture *err, pid_t pid, int64_t deadline,
                    const struct spawn_watch *w, struct spawn_result *res)
{
    bool out_open = true, err_open = true;
    while (out_open || err_open) {
        struct pollfd p[2] = { { out->fd, POLLIN, 0 }, { err->fd, POLLIN, 0 } };
        p[0].fd = out_open ? out->fd : -1;
        p[1].fd = err_open ? err->fd : -1;
        int wait = -1;
        if (deadline) {
            int64_t left = deadline - now_ms();
            if (left <= 0) {
                kill_child(pid, res, false);
                break;
            }
            wait = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        if (w && w->cancelled && (wait < 0 || wait > SPAWN_WATCH_MS))
            wait = SPAWN_WATCH_MS;
        if (poll(p, 2, wait) < 0 && errno != EINTR)
            break;
        if (want_stop(w)) {
            kill_child(pid, res, true);
            break;
        }
        if (out_open && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
            out_open = capture_read(out, w);
        if (err_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
            err_open = capture_read(err, NULL);
    }
}

/* A child may close its output and keep running: the deadline holds
 * until it has exited, not just until its pipes are closed. A failed
 * waitpid (ECHILD when the process ignores SIGCHLD and the kernel reaped
 * the child) is an error: we never learnt how the child ended, and
 * "exit 0" would pass a failed qemu-img for a successful one. */
static int reap(pid_t pid, int64_t deadline, struct spawn_result *res, int *status)
{
    for (;;) {
        bool killed = res->timed_out || res->cancelled;
        pid_t w = waitpid(pid, status, (deadline && !killed) ? WNOHANG : 0);
        if (w == pid)
            return 0;
        if (w < 0 && errno != EINTR)
            return -errno;
        if (w == 0) {
            if (now_ms() >= deadline)
                kill_child(pid, res, false);
            else
                usleep(10000);
        }
    }
}

int spawn_run(const char *const argv[], unsigned timeout_sec, struct spawn_result *res)
{
    return spawn_run_fds(argv, NULL, timeout_sec, NULL, res);
}

int spawn_run_watched(const char *const argv[], unsigned timeout_sec, const struct spawn_watch *w,
                      struct spawn_result *res)
{
    return spawn_run_fds(argv, NULL, timeout_sec, w, res);
}

int spawn_run_fds(const char *const argv[], const struct spawn_fds *f, unsigned timeout_sec,
                  const struct spawn_watch *w, struct spawn_result *res)
{
    struct capture out, err;
    memset(res, 0, sizeof(*res));
    res->exit_code = -1;
    if (capture_init(&out) < 0 || capture_init(&err) < 0) {
        free(out.buf);
        return -ENOMEM;
    }
    res->out = out.buf;
    res->err = err.buf;
    if (!argv || !argv[0] || argv[0][0] != '/')
        return -EINVAL;

    if (f && f->n > SPAWN_FDS_MAX)
        return -EMFILE;
    /* The child's scratch for place_fds: no malloc after fork. */
    int *tmp = f && f->n ? calloc(f->n, sizeof(*tmp)) : NULL;
    if (f && f->n && !tmp)
        return -ENOMEM;
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) < 0) {
        free(tmp);
        return -errno;
    }
    if (pipe2(pe, O_CLOEXEC) < 0) {
        int e = errno;
        close(po[0]);
        close(po[1]);
        free(tmp);
        return -e;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        child_exec(argv, f, tmp, parent, po[1], pe[1]);
    int fork_errno = errno;
    free(tmp);
    close(po[1]);
    close(pe[1]);
    if (pid < 0) {
        close(po[0]);
        close(pe[0]);
        return -fork_errno;
    }
    out.fd = po[0];
    err.fd = pe[0];
    int64_t deadline = timeout_sec ? now_ms() + (int64_t)timeout_sec * 1000 : 0;
    collect(&out, &err, pid, deadline, w, res);
    close(po[0]);
    close(pe[0]);
    int status = 0;
    int reaped = reap(pid, deadline, res, &status);
    res->out = out.buf;
    res->out_len = out.len;
    res->err = err.buf;
    res->err_len = err.len;
    if (reaped < 0)
        return reaped;
    if (WIFEXITED(status))
        res->exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        res->term_signal = WTERMSIG(status);
    if (res->cancelled)
        return -EINTR;
    if (res->timed_out)
        return -ETIMEDOUT;
    return res->exit_code == 0 ? 0 : -EIO;
}

void spawn_result_free(struct spawn_result *res)
{
    free(res->out);
    free(res->err);
    res->out = res->err = NULL;
}

void spawn_last_err_line(const struct spawn_result *res, char *buf, size_t bufsz)
{
    buf[0] = '\0';
    if (!res->err || bufsz == 0)
        return;
    const char *end = res->err + res->err_len;
    while (end > res->err && (end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\r'))
        end--;
    const char *start = end;
    while (start > res->err && start[-1] != '\n')
        start--;
    size_t n = (size_t)(end - start);
    if (n >= bufsz)
        n = bufsz - 1;
    memcpy(buf, start, n);
    buf[n] = '\0';
}
