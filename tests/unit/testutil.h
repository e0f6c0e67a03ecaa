/* What the unit tests share beyond assertions: where to put temporary
 * files, and whether wall-clock checks count.
 *
 * Temporary files go under $TMPDIR (as mktemp(1) does), so a build
 * machine with a small or read-only /tmp, or a CI that gives each job
 * its own directory, runs the tests where it wants them.
 *
 * Timing checks ("the timeout fired within 2.5 s") fail on a loaded
 * machine for reasons that are not bugs; VMSTOREFS_SKIP_TIMING=1 turns
 * them into a printed note, so the rest of the test still counts. */
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
 * crashes at every point. Loops run n = test_crash_first(); n += stride. */
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

static inline bool test_skip_timing(void)
{
    const char *s = getenv("VMSTOREFS_SKIP_TIMING");
    return s && *s && *s != '0';
}

/* CHECK for wall-clock conditions: with VMSTOREFS_SKIP_TIMING=1 a miss is
 * a note on stderr, not a failure. */
#define CHECK_TIMING(cond)                                                                   \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            if (test_skip_timing()) {                                                        \
                fprintf(stderr, "%s:%d: note: timing check not met (skipped): %s\n",         \
                        __FILE__, __LINE__, #cond);                                          \
            } else {                                                                         \
                fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
                check_failures++;                                                            \
            }                                                                                \
        }                                                                                    \
    } while (0)

#endif
