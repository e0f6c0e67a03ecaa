/* Unit tests for commitchunks (vm/commitchunks.h), the window arithmetic
 * of a resumable commit:
 *  - extents are counted in the windows they fall in, split at window
 *    edges, clipped at the size; only windows holding something are
 *    copied, the last one ending at the size;
 *  - a resume starts at the recorded offset: inside a window when the
 *    window size changed since (the rest of that window), at the next
 *    window holding something otherwise; none left at the end;
 *  - progress: the bytes of the windows below an offset;
 *  - the offset recorded is used only with the stamp of the same image;
 *  - the window size from VMSTOREFS_COMMIT_CHUNK_MIB, the default for
 *    anything else. */
#include "config.h"

#include "check.h"
#include "vm/commitchunks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (UINT64_C(1) << 20)

static void test_windows(void)
{
    struct cc_plan p;
    uint64_t off = 0, len = 0;
    /* 18 MiB in windows of 4 MiB: the last one is 2 MiB. */
    CHECK_INT(cc_plan_init(&p, 18 * MIB, 4 * MIB), 0);
    CHECK_INT(p.n, 5);
    cc_plan_add(&p, 1 * MIB, MIB); /* window 0 */
    cc_plan_add(&p, 7 * MIB, 2 * MIB); /* across windows 1 and 2 */
    cc_plan_add(&p, 17 * MIB, 4 * MIB); /* clipped at the size */
    CHECK_INT(p.alloc[0], MIB);
    CHECK_INT(p.alloc[1], MIB);
    CHECK_INT(p.alloc[2], MIB);
    CHECK_INT(p.alloc[3], 0);
    CHECK_INT(p.alloc[4], MIB);
    CHECK_INT(p.total, 4 * MIB);
    /* From the start: 0, 4, 8, then 16 (12 holds nothing), then none. */
    CHECK(cc_plan_next(&p, 0, &off, &len));
    CHECK_INT(off, 0);
    CHECK_INT(len, 4 * MIB);
    CHECK(cc_plan_next(&p, 4 * MIB, &off, &len));
    CHECK_INT(off, 4 * MIB);
    CHECK(cc_plan_next(&p, 8 * MIB, &off, &len));
    CHECK_INT(off, 8 * MIB);
    CHECK(cc_plan_next(&p, 12 * MIB, &off, &len));
    CHECK_INT(off, 16 * MIB);
    CHECK_INT(len, 2 * MIB);
    CHECK(!cc_plan_next(&p, 18 * MIB, &off, &len));
    /* Resumed inside a window (recorded with another window size): the
     * rest of it. */
    CHECK(cc_plan_next(&p, 6 * MIB, &off, &len));
    CHECK_INT(off, 6 * MIB);
    CHECK_INT(len, 2 * MIB);
    /* Progress. */
    CHECK_INT(cc_plan_below(&p, 0), 0);
    CHECK_INT(cc_plan_below(&p, 8 * MIB), 2 * MIB);
    CHECK_INT(cc_plan_below(&p, 9 * MIB), 2 * MIB);
    CHECK_INT(cc_plan_below(&p, 16 * MIB), 3 * MIB);
    CHECK_INT(cc_plan_below(&p, 18 * MIB), 4 * MIB);
    cc_plan_free(&p);
    /* An empty image: nothing to copy. */
    CHECK_INT(cc_plan_init(&p, 0, 4 * MIB), 0);
    CHECK(!cc_plan_next(&p, 0, &off, &len));
    CHECK_INT(cc_plan_below(&p, 0), 0);
    cc_plan_free(&p);
    /* More windows than a plan holds. */
    CHECK_INT(cc_plan_init(&p, UINT64_C(1) << 62, MIB), -EFBIG);
}

static void test_resume(void)
{
    struct jstep st;
    bool changed;
    memset(&st, 0, sizeof(st));
    st.kind = JS_COMMIT;
    CHECK_INT(cc_resume_at(&st, "1:2:3.000000004", &changed), 0);
    CHECK(!changed);
    st.copied = 8 * MIB;
    snprintf(st.stamp, sizeof(st.stamp), "1:2:3.000000004");
    CHECK_INT(cc_resume_at(&st, "1:2:3.000000004", &changed), 8 * MIB);
    CHECK(!changed);
    /* Written since (another mtime): from the start. */
    CHECK_INT(cc_resume_at(&st, "1:2:3.000000005", &changed), 0);
    CHECK(changed);
    struct stat sb;
    memset(&sb, 0, sizeof(sb));
    sb.st_ino = 12;
    sb.st_size = 345;
    sb.st_mtim.tv_sec = 6;
    sb.st_mtim.tv_nsec = 7;
    char stamp[JSTEP_STAMP_MAX];
    cc_stamp(&sb, stamp, sizeof(stamp));
    CHECK_STR(stamp, "12:345:6.000000007");
}

static void test_chunk_size(void)
{
    unsetenv("VMSTOREFS_COMMIT_CHUNK_MIB");
    CHECK_INT(cc_chunk_size(), COMMIT_CHUNK_MIB_DEFAULT * MIB);
    setenv("VMSTOREFS_COMMIT_CHUNK_MIB", "4", 1);
    CHECK_INT(cc_chunk_size(), 4 * MIB);
    const char *bad[] = { "0", "4x", "", "-1", "65537" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("VMSTOREFS_COMMIT_CHUNK_MIB", bad[i], 1);
        CHECK_INT(cc_chunk_size(), COMMIT_CHUNK_MIB_DEFAULT * MIB);
    }
    unsetenv("VMSTOREFS_COMMIT_CHUNK_MIB");
}

int main(void)
{
    test_windows();
    test_resume();
    test_chunk_size();
    CHECK_DONE();
}
