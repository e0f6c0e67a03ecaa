/* Unit tests for bgmerge (the background merge worker), on the sample
 * store, without FUSE:
 *  - with the worker running, a delete only hides: web1's configured
 *    (one dependent, the active image) leaves the listing, its image is
 *    kept hidden, nothing merged; bgmerge_wait returns once the worker
 *    has merged it, every image reading as before;
 *  - while the front end says a process walks the VM, nothing is merged
 *    (bgmerge_set_walked), well past the quiet time; a waiter overrides
 *    that;
 *  - a revert that leaves nothing hidden queues no merge pass;
 *  - without the worker (stopped), a delete merges before it returns.
 * Skipped (77) without qemu-img. */
#include "config.h"

#include "check.h"
#include "journal/journal.h"
#include "ops/snapshot.h"
#include "samplestore.h"
#include "testutil.h"
#include "util/jobs.h"
#include "util/log.h"
#include "vm/bgmerge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char msg[MSG_MAX];

/* Does web1 keep a hidden directory? */
static bool hidden(void)
{
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "ls -d '%s/web1/snapshots/'.hidden-* >/dev/null 2>&1", st.root);
    return run(cmd) == 0;
}

/* web1's active image reads as the sample store made it. */
static bool active_reads(void)
{
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof(cmd),
             "qemu-io -r -f qcow2 -c 'read -P 0x11 0 4M' -c 'read -P 0x22 4M 4M' "
             "-c 'read -P 0x33 8M 1M' '%s/web1/disks/vda.qcow2' >/dev/null",
             st.root);
    return run(cmd) == 0 && strcmp(current_of("web1"), "installed") == 0;
}

static bool walked_now;
static bool walked(const char *vm)
{
    return walked_now && strcmp(vm, "web1") == 0;
}

static void test_deferred(void)
{
    struct snap_ctx c = { .s = &st };
    CHECK(open_store("deferred"));
    CHECK_INT(bgmerge_start(&st), 0);
    CHECK(bgmerge_active());
    bgmerge_set_walked(walked);
    walked_now = true;
    CHECK_INT(snapshot_delete(&c, "web1", "configured", NULL, msg, sizeof(msg)), 0);
    CHECK(!store_snap_exists(&st, "web1", "configured"));
    CHECK(hidden());
    CHECK(active_reads());
    /* A walker keeps the merge off, well past the quiet time. */
    usleep(3 * BGMERGE_QUIET_MS * 1000);
    CHECK(hidden());
    /* A waiter overrides it. */
    CHECK_INT(bgmerge_wait("web1", NULL, NULL), 0);
    CHECK(!hidden());
    CHECK(active_reads());
    CHECK_INT(journal_pending(&st), 0);
    walked_now = false;
    /* Nothing queued: the wait returns at once. */
    CHECK_INT(bgmerge_wait("web1", NULL, NULL), 0);
    bgmerge_stop();
    CHECK(!bgmerge_active());
    store_close(&st);
}

/* Is a merge of web1 queued (a "merge-queued web1" line in .jobs)? */
static bool web1_queued(void)
{
    size_t len;
    char *jobs = jobs_render(&len);
    bool queued = jobs && strstr(jobs, "merge-queued web1 ") != NULL;
    free(jobs);
    return queued;
}

/* A revert that leaves nothing hidden queues no pass: one would hold the
 * VM (its writers refused) for nothing. A revert after a delete that hid
 * an image does queue one. */
static void test_revert_queue(void)
{
    struct snap_ctx c = { .s = &st };
    CHECK(open_store("revertqueue"));
    CHECK_INT(bgmerge_start(&st), 0);
    bgmerge_set_walked(walked);
    walked_now = true; /* nothing queued runs meanwhile */
    CHECK_INT(snapshot_revert(&c, "web1", "configured", msg, sizeof(msg)), 0);
    CHECK(!hidden());
    CHECK(!web1_queued());
    CHECK_INT(snapshot_delete(&c, "web1", "installed", NULL, msg, sizeof(msg)), 0);
    CHECK(hidden());
    CHECK(web1_queued());
    walked_now = false;
    CHECK_INT(bgmerge_wait("web1", NULL, NULL), 0);
    bgmerge_stop();
    store_close(&st);
}

static void test_without_worker(void)
{
    struct snap_ctx c = { .s = &st };
    CHECK(open_store("synchronous"));
    CHECK(!bgmerge_active());
    CHECK_INT(snapshot_delete(&c, "web1", "configured", NULL, msg, sizeof(msg)), 0);
    CHECK(!hidden());
    CHECK(active_reads());
    store_close(&st);
}

int main(void)
{
    int setup = sample_setup("test_bgmerge", "command -v qemu-img >/dev/null && command -v "
                                             "qemu-io >/dev/null");
    if (setup != 0)
        return setup;
    test_deferred();
    test_revert_queue();
    test_without_worker();
    sample_teardown();
    CHECK_DONE();
}
