/* Unit tests for journal: a step is grouped with the next only when
 * journal_group_last says so. Steps live in realloc'd memory; with
 * malloc's perturbation on, a field left unset reads as garbage, and a
 * stray "group" makes a rebase of a missing image count as done (a
 * grouped step's image may be gone by design). */
#include "config.h"

#include "check.h"
#include "journal/journal.h"
#include "store/store.h"
#include "testutil.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

static struct store st;
static char tmp[PATH_MAX];

static void test_ungrouped_step_fails_on_missing_image(void)
{
    char msg[512], image[PATH_MAX + 64];
    struct journal j;
    CHECK_INT(journal_begin(&j, &st, "test", "vm", msg, sizeof(msg)), 0);
    snprintf(image, sizeof(image), "%s/vm/disks/missing.qcow2", tmp);
    CHECK_INT(journal_rebase(&j, image, "../snapshots/s/missing.qcow2", "qcow2"), 0);
    msg[0] = '\0';
    /* Not grouped: the missing image is an error, left for recovery. */
    CHECK(journal_commit(&j, msg, sizeof(msg)) < 0);
    journal_free(&j);
}

int main(void)
{
    /* Fresh allocations filled with a nonzero byte (glibc). */
    mallopt(M_PERTURB, 0x41);
    char msg[512];
    if (!test_tmp_template(tmp, sizeof(tmp), "vmstorefs-journal") || !mkdtemp(tmp) ||
        store_check(&st, tmp, msg, sizeof(msg)) < 0 || store_prepare_meta(&st, msg, sizeof(msg)) < 0) {
        perror(tmp);
        return 99;
    }
    test_ungrouped_step_fails_on_missing_image();
    store_close(&st);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmp);
    CHECK_DONE();
}
