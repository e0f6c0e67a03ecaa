/* Unit tests for spawn: running a helper without a shell, with a fixed
 * environment, no inherited descriptors, stdin from /dev/null, a timeout
 * and bounded capture. */
#include "config.h"

#include "check.h"
#include "testutil.h"
#include "util/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_stdout(void)
{
    const char *argv[] = { "/bin/echo", "hello", "two words", NULL };
    struct spawn_result res;
    CHECK_INT(spawn_run(argv, 10, &res), 0);
    CHECK_INT(res.exit_code, 0);
    CHECK_INT(res.term_signal, 0);
    CHECK(!res.timed_out);
    CHECK_STR(res.out, "hello two words\n");
    CHECK_INT(res.out_len, strlen("hello two words\n"));
    CHECK_STR(res.err, "");
    CHECK_INT(res.err_len, 0);
    spawn_result_free(&res);
    CHECK(res.out == NULL && res.err == NULL);
}

/* No shell: metacharacters reach the program as they are. */
static void test_no_shell(void)
{
    const char *argv[] = { "/bin/echo", "$HOME;`id`|*", NULL };
    struct spawn_result res;
    CHECK_INT(spawn_run(argv, 10, &res), 0);
    CHECK_STR(res.out, "$HOME;`id`|*\n");
    spawn_result_free(&res);
}

static void test_failure_and_stderr(void)
{
    const char *argv[] = { "/bin/sh", "-c", "echo out; echo first >&2; echo err >&2; exit 3",
                           NULL };
    struct spawn_result res;
    CHECK_INT(spawn_run(argv, 10, &res), -EIO);
    CHECK_INT(res.exit_code, 3);
    CHECK_INT(res.term_signal, 0);
    CHECK(!res.timed_out);
    CHECK_STR(res.out, "out\n");
    CHECK_STR(res.err, "first\nerr\n");
    char line[64];
    spawn_last_err_line(&res, line, sizeof(line));
    CHECK_STR(line, "err");
    spawn_result_free(&res);
}

static void test_killed_by_signal(void)
{
    const char *argv[] = { "/bin/sh", "-c", "kill -TERM $$", NULL };
    struct spawn_result res;
    CHECK_INT(spawn_run(argv, 10, &res), -EIO);
    CHECK_INT(res.exit_code, -1);
    CHECK_INT(res.term_signal, SIGTERM);
    CHECK(!res.timed_out);
    spawn_result_free(&res);
}

/* With SIGCHLD ignored the kernel reaps the child itself and waitpid
 * fails (ECHILD): how the child ended is unknown, which must not read as
 * "exit 0". */
static void test_sigchld_ignored(void)
{
    struct sigaction ign = { .sa_handler = SIG_IGN }, old;
    sigaction(SIGCHLD, &ign, &old);
    const char *argv[] = { "/bin/false", NULL };
    struct spawn_result res;
    int r = spawn_run(argv, 10, &res);
    CHECK(r != 0);
    CHECK_INT(r, -ECHILD);
    CHECK(res.exit_code != 0);
    spawn_result_free(&res);
    sigaction(SIGCHLD, &old, NULL);
}

static void test_last_err_line(void)
{
    struct spawn_result res = { 0 };
    char line[16];

    char e1[] = "qemu-img: one\n  \nqemu-img: last words  \n\n";
    res.err = e1;
    res.err_len = strlen(e1);
    char big[64];
    spawn_last_err_line(&res, big, sizeof(big));
    CHECK_STR(big, "qemu-img: last words");

    /* truncated to the buffer, always terminated */
    spawn_last_err_line(&res, line, sizeof(line));
    CHECK_INT(strlen(line), sizeof(line) - 1);
    CHECK(strncmp(line, "qemu-img: last", 14) == 0);

    char e2[] = "no newline";
    res.err = e2;
    res.err_len = strlen(e2);
    spawn_last_err_line(&res, line, sizeof(line));
    CHECK_STR(line, "no newline");

    char e3[] = "\n\n";
    res.err = e3;
    res.err_len = strlen(e3);
    strcpy(line, "junk");
    spawn_last_err_line(&res, line, sizeof(line));
    CHECK_STR(line, "");
}

static void test_relative_argv0(void)
{
    const char *argv[] = { "echo", "hi", NULL };
    struct spawn_result res;
    CHECK_INT(spawn_run(argv, 10, &res), -EINVAL);
    /* res is still filled and releasable */
    CHECK(res.out != NULL && res.err != NULL);
    spawn_result_free(&res);

    const char *dot[] = { "./bin/echo", NULL };
    CHECK_INT(spawn_run(dot, 10, &res), -EINVAL);
    spawn_result_free(&res);
}

static void test_missing_program(void)
{
    const char *argv[] = { "/nonexistent/vmstorefs-test-prog", NULL };
    struct spawn_result res;
    int r = spawn_run(argv, 10, &res);
    CHECK(r != 0);
    CHECK_INT(r, -EIO);
    CHECK_INT(res.exit_code, 127);
    spawn_result_free(&res);
}

/* Runs ARGV (a child that would run 4 s or more) with a 1 s timeout: it
 * must be ended as timed out, by SIGKILL (not by finishing on its own,
 * which a timeout that never fired would let it do), and not before the
 * second is up (a lower bound: no load can make it fail). No upper bound
 * on the time: on a loaded machine that is not a bug, and the kill says
 * the timeout fired. RES is left for the caller to inspect and free. */
static void expect_timeout(const char *const argv[], struct spawn_result *res)
{
    double t0 = now();
    int r = spawn_run(argv, 1, res);
    double took = now() - t0;
    CHECK_INT(r, -ETIMEDOUT);
    CHECK(res->timed_out);
    CHECK_INT(res->term_signal, SIGKILL);
    CHECK(took >= 0.9);
}

static void test_timeout(void)
{
    const char *argv[] = { "/bin/sleep", "5", NULL };
    struct spawn_result res;
    expect_timeout(argv, &res);
    CHECK_INT(res.term_signal, SIGKILL);
    spawn_result_free(&res);
}

/* State letter of a process from /proc (0 when it is gone). */
static char proc_state(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' ? paren[2] : 0;
}

/* SIGKILL is asynchronous: true once pid is gone (or a zombie waiting for
 * its new parent), waiting up to 30 s (a bound for a loaded machine, not
 * a measure: a process SIGKILL missed sleeps 5 s and then exits, which
 * the caller's other checks see); otherwise kills it and says false. */
static bool gone_soon(long pid)
{
    char st = 'S';
    for (int i = 0; pid > 1 && i < 3000; i++) {
        st = proc_state(pid);
        if (st == 0 || st == 'Z')
            return true;
        usleep(10000);
    }
    if (pid > 1)
        kill((pid_t)pid, SIGKILL);
    return false;
}

/* The timeout also kills what the child started (its process group). */
static void test_timeout_grandchild(void)
{
    const char *argv[] = { "/bin/sh", "-c", "/bin/sleep 5 & echo $!; wait; echo done", NULL };
    struct spawn_result res;
    expect_timeout(argv, &res);
    long pid = strtol(res.out, NULL, 10);
    CHECK(pid > 1);
    CHECK(strstr(res.out, "done") == NULL);
    CHECK(gone_soon(pid));
    spawn_result_free(&res);
}

/* A child that closes its output and keeps running must still be killed
 * when the timeout expires (spawn.h: "killed ... when the timeout
 * expires"). */
static void test_timeout_closed_output(void)
{
    const char *argv[] = { "/bin/sh", "-c", "exec >&- 2>&-; exec /bin/sleep 4", NULL };
    struct spawn_result res;
    expect_timeout(argv, &res);
    spawn_result_free(&res);
}

static void test_no_timeout(void)
{
    const char *argv[] = { "/bin/sleep", "0.2", NULL };
    struct spawn_result res;
    CHECK_INT(spawn_run(argv, 0, &res), 0);
    CHECK(!res.timed_out);
    spawn_result_free(&res);
}

static void test_environment(void)
{
    /* even with our own environment full of things */
    setenv("VMSTOREFS_TEST_SECRET", "leak", 1);
    setenv("LANG", "de_DE.UTF-8", 1);
    const char *argv[] = { "/usr/bin/env", NULL };
    struct spawn_result res;
    CHECK_INT(spawn_run(argv, 10, &res), 0);
    CHECK_STR(res.out, "LC_ALL=C\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n");
    spawn_result_free(&res);
    unsetenv("VMSTOREFS_TEST_SECRET");
    unsetenv("LANG");
}

static void test_fds_closed(void)
{
    /* descriptors without O_CLOEXEC, low and high */
    int a = open("/dev/null", O_RDONLY);
    int b = open("/", O_RDONLY | O_DIRECTORY);
    int c = dup2(a, 57);
    CHECK(a >= 3 && b >= 3 && c == 57);
    const char *argv[] = { "/bin/ls", "/proc/self/fd", NULL };
    struct spawn_result res;
    CHECK_INT(spawn_run(argv, 10, &res), 0);
    /* 0, 1, 2 and the descriptor ls reads the directory with */
    CHECK_STR(res.out, "0\n1\n2\n3\n");
    spawn_result_free(&res);
    close(a);
    close(b);
    close(c);
}

/* Descriptors passed on purpose (spawn_fds, how qemu-img gets the images
 * the daemon checked) are 3, 4, ... in the child in the order given, even
 * when that swaps two of them; nothing else is inherited. */
static void test_fds_passed(void)
{
    char x[] = "/tmp/vmstorefs-spawn-x.XXXXXX", y[] = "/tmp/vmstorefs-spawn-y.XXXXXX";
    int fx = mkstemp(x), fy = mkstemp(y), other = open("/dev/null", O_RDONLY);
    CHECK(fx >= 3 && fy >= 3 && other >= 3);
    /* y first: if x is 3 and y is 4, placing them swaps the two */
    int order[] = { fy, fx };
    struct spawn_fds f = { order, 2 };
    const char *argv[] = { "/bin/sh", "-c",
                           "readlink /proc/self/fd/3 /proc/self/fd/4; ls /proc/$$/fd | tr '\\n' ' '",
                           NULL };
    struct spawn_result res;
    CHECK_INT(spawn_run_fds(argv, &f, 10, NULL, &res), 0);
    char want[256];
    snprintf(want, sizeof(want), "%s\n%s\n0 1 2 3 4 ", y, x);
    CHECK_STR(res.out, want);
    spawn_result_free(&res);
    /* still open here, unchanged */
    CHECK(fcntl(fx, F_GETFD) >= 0 && fcntl(fy, F_GETFD) >= 0);
    close(fx);
    close(fy);
    close(other);
    unlink(x);
    unlink(y);
}

/* With stdin a pipe holding data and never closed, a child that read our
 * stdin would print the data and then block; /dev/null ends at once. */
static void test_stdin_devnull(void)
{
    int p[2];
    CHECK_INT(pipe(p), 0);
    int saved = dup(0);
    CHECK(write(p[1], "leak\n", 5) == 5);
    CHECK(dup2(p[0], 0) == 0);

    const char *argv[] = { "/bin/cat", NULL };
    struct spawn_result res;
    /* A cat reading the pipe would block to the timeout: -ETIMEDOUT. */
    CHECK_INT(spawn_run(argv, 3, &res), 0);
    CHECK_STR(res.out, "");
    CHECK_INT(res.out_len, 0);
    spawn_result_free(&res);

    dup2(saved, 0);
    close(saved);
    close(p[0]);
    close(p[1]);
}

static void test_capture_limit(void)
{
    const char *argv[] = { "/usr/bin/head", "-c", "6M", "/dev/zero", NULL };
    struct spawn_result res;
    int r = spawn_run(argv, 30, &res);
    CHECK_INT(r, 0);
    CHECK(!res.timed_out);
    CHECK_INT(res.out_len, SPAWN_CAPTURE_LIMIT);
    CHECK(res.out[SPAWN_CAPTURE_LIMIT] == '\0');
    CHECK(res.out[0] == '\0' && res.out[SPAWN_CAPTURE_LIMIT - 1] == '\0');
    spawn_result_free(&res);

    /* both streams at once, well past the limit: no deadlock */
    const char *both[] = { "/bin/sh", "-c",
                           "/usr/bin/head -c 5M /dev/zero >&2; /usr/bin/head -c 5M /dev/zero",
                           NULL };
    CHECK_INT(spawn_run(both, 30, &res), 0);
    CHECK_INT(res.out_len, SPAWN_CAPTURE_LIMIT);
    CHECK_INT(res.err_len, SPAWN_CAPTURE_LIMIT);
    spawn_result_free(&res);
}

/* An ignored SIGPIPE or a blocked signal in the caller (libfuse ignores
 * SIGPIPE) must not leak into the child. */
static void test_signals_default(void)
{
    struct sigaction ign = { .sa_handler = SIG_IGN }, old;
    sigaction(SIGPIPE, &ign, &old);
    sigset_t block, oldmask;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &oldmask);

    const char *argv[] = { "/bin/grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status", NULL };
    struct spawn_result res;
    CHECK_INT(spawn_run(argv, 10, &res), 0);
    /* (other inherited dispositions, e.g. glibc's internal signals 32 and
     * 33 ignored by make, are out of the daemon's reach and not checked) */
    unsigned long long blk = ~0ull, ignored = ~0ull;
    CHECK_INT(sscanf(res.out, "SigBlk: %llx SigIgn: %llx", &blk, &ignored), 2);
    CHECK_INT(blk, 0);
    CHECK_INT(ignored & (1ull << (SIGPIPE - 1)), 0);
    spawn_result_free(&res);

    sigprocmask(SIG_SETMASK, &oldmask, NULL);
    sigaction(SIGPIPE, &old, NULL);
}

/* A child must not outlive the process that spawned it: here a forked
 * "daemon" runs a long child through spawn_run and is killed with
 * SIGKILL; the child (PR_SET_PDEATHSIG) must go with it. */
static void test_dies_with_parent(void)
{
    char pidfile[TEST_TMP_MAX];
    int pfd = test_tmp_template(pidfile, sizeof(pidfile), "vmstorefs-spawn") ? mkstemp(pidfile) : -1;
    CHECK(pfd >= 0);
    if (pfd < 0)
        return;
    close(pfd);
    pid_t daemon = fork();
    if (daemon == 0) {
        char script[TEST_TMP_MAX + 64];
        snprintf(script, sizeof(script), "echo $$ > %s; exec /bin/sleep 300", pidfile);
        const char *argv[] = { "/bin/sh", "-c", script, NULL };
        struct spawn_result res;
        spawn_run(argv, 0, &res);
        _exit(0);
    }
    long child = 0;
    for (int i = 0; i < 200 && child <= 0; i++) {
        usleep(10000);
        FILE *f = fopen(pidfile, "re");
        if (f) {
            if (fscanf(f, "%ld", &child) != 1)
                child = 0;
            fclose(f);
        }
    }
    CHECK(child > 0);
    kill(daemon, SIGKILL);
    waitpid(daemon, NULL, 0);
    CHECK(gone_soon(child));
    unlink(pidfile);
}

int main(void)
{
    test_stdout();
    test_no_shell();
    test_failure_and_stderr();
    test_killed_by_signal();
    test_sigchld_ignored();
    test_last_err_line();
    test_relative_argv0();
    test_missing_program();
    test_timeout();
    test_timeout_grandchild();
    test_timeout_closed_output();
    test_no_timeout();
    test_environment();
    test_fds_closed();
    test_fds_passed();
    test_stdin_devnull();
    test_capture_limit();
    test_signals_default();
    test_dies_with_parent();
    CHECK_DONE();
}
