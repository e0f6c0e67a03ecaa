/* What the unit tests share beyond assertions: where to put temporary
 * files.
 *
 * Temporary files go under $TMPDIR (as mktemp(1) does), so a build
 * machine with a small or read-only /tmp, or a CI that gives each job
 * its own directory, runs the tests where it wants them.
 *
 * No test asserts how long something took (a loaded machine is not a
 * bug): what a timeout did is told by how the child ended, and a call
 * that could block for good runs under alarm(2), a watchdog. */
#ifndef VMSTOREFS_TEST_UTIL_H
#define VMSTOREFS_TEST_UTIL_H

#include "check.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Room for a temporary file's path: well under PATH_MAX, so a test can
 * build paths below it without truncation. */
#define TEST_TMP_MAX 256

/* $TMPDIR when set and non-empty, else FALLBACK. */
static inline const char *test_tmpdir_or(const char *fallback)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : fallback;
}

static inline const char *test_tmpdir(void)
{
    return test_tmpdir_or("/tmp");
}

/* BUF = "<tmpdir>/NAME-XXXXXX", ready for mkstemp or mkdtemp. False (and
 * a message) when it does not fit. */
static inline bool test_tmp_template(char *buf, size_t bufsz, const char *name)
{
    int n = snprintf(buf, bufsz, "%s/%s-XXXXXX", test_tmpdir(), name);
    if (n < 0 || (size_t)n >= bufsz) {
        fprintf(stderr, "TMPDIR too long for %s\n", name);
        return false;
    }
    return true;
}

/* The crash loops test every durable point of an operation (1); with
 * VMSTOREFS_CRASH_STRIDE=K every K-th one, from a first point in 1..K
 * (VMSTOREFS_CRASH_FIRST, else drawn at random and printed, so a failing
 * run can be repeated). scripts/run-tests samples so (the suite's time),
 * as do CI's second and third builds of the same code (the release
 * tarball, clang: what they check is the build); scripts/crash-campaign
 * crashes at every point. Loops run n = test_crash_first(); n += stride
 * (test_crash_next when a check needs a crash at some point or later). */
static inline int test_crash_stride(void)
{
    const char *s = getenv("VMSTOREFS_CRASH_STRIDE");
    int k = s ? atoi(s) : 1;
    return k > 0 ? k : 1;
}

static inline int test_crash_first(void)
{
    static int first;
    if (first)
        return first;
    int k = test_crash_stride();
    const char *s = getenv("VMSTOREFS_CRASH_FIRST");
    first = s && atoi(s) > 0 ? atoi(s) : 1 + (int)((unsigned)getpid() % (unsigned)k);
    if (k > 1)
        fprintf(stderr, "crash points: one in %d, from point %d (VMSTOREFS_CRASH_STRIDE=%d "
                "VMSTOREFS_CRASH_FIRST=%d to repeat)\n", k, first, k, first);
    return first;
}

/* The point after n in a crash loop whose check needs a crash at point
 * `need` or later (an operation with at least that many points): the
 * stride, except that a step passing over `need` stops on it, so a last
 * crash below it and a next point past the operation's end cannot pass
 * for "fewer points". */
static inline int test_crash_next(int n, int need)
{
    int next = n + test_crash_stride();
    return n < need && next > need ? need : next;
}

#endif
