/* Unit tests for journal: a step is grouped with the next only when
 * journal_group_last says so. Steps live in realloc'd memory; with
 * malloc's perturbation on, a field left unset reads as garbage, and a
 * stray "group" makes a rebase of a missing image count as done (a
 * grouped step's image may be gone by design). A pull's record keeps
 * where it starts (from, from_fmt) for its replay; a record written
 * before it did still loads (from NULL); a from no rebase could give
 * makes the record unreadable. */
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

/* The data-step runner here: fails while told to, else notes what
 * each pull starts from ("FROM FMT", "-" for none). */
static bool runner_fails;
static char seen[256];

static int note_from(const struct journal *j, const struct jstep *step, char *msg, size_t msgsz)
{
    (void)j;
    if (runner_fails) {
        snprintf(msg, msgsz, "failing as told");
        return -EIO;
    }
    snprintf(seen, sizeof(seen), "%s %s", step->from ? step->from : "-",
             step->from_fmt ? step->from_fmt : "-");
    return 0;
}

/* A committed record of vm with one step (JSON), as recovery finds it. */
static void plant_record(const char *id, const char *step)
{
    char path[PATH_MAX + 128];
    snprintf(path, sizeof(path), "%s/.vmstorefs/journal/%s.json", tmp, id);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f,
            "{ \"version\": 1, \"id\": \"%s\", \"op\": \"delete\", \"vm\": \"vm\", "
            "\"committed\": true, \"done\": 0, \"steps\": [ %s ] }\n",
            id, step);
    fclose(f);
}

static void test_pull_from_kept(void)
{
    char msg[512], image[PATH_MAX + 64];
    struct journal j;
    journal_set_data_runner(note_from);
    /* Written with the plan, read back by recovery (the first run of the
     * step failed: the record stays). */
    CHECK_INT(journal_begin(&j, &st, "delete", "vm", msg, sizeof(msg)), 0);
    snprintf(image, sizeof(image), "%s/vm/disks/vda.qcow2", tmp);
    CHECK_INT(journal_pull(&j, image, "", NULL, "../snapshots/s/vda.qcow2", "qcow2", "s/vda"), 0);
    runner_fails = true;
    CHECK(journal_commit(&j, msg, sizeof(msg)) < 0);
    journal_free(&j);
    runner_fails = false;
    seen[0] = '\0';
    CHECK_INT(journal_recover(&st, "vm", msg, sizeof(msg)), 1);
    CHECK_STR(seen, "../snapshots/s/vda.qcow2 qcow2");
    /* A record from before. */
    plant_record("old", "{ \"do\": \"pull\", \"a\": \"vm/disks/vda.qcow2\", \"b\": \"\", "
                        "\"note\": \"s/vda\" }");
    seen[0] = '\0';
    CHECK_INT(journal_recover(&st, "vm", msg, sizeof(msg)), 1);
    CHECK_STR(seen, "- -");
    /* Absolute, or on a step that is not a pull: not loaded, not run. */
    plant_record("abs", "{ \"do\": \"pull\", \"a\": \"vm/disks/vda.qcow2\", \"b\": \"\", "
                        "\"note\": \"s/vda\", \"from\": \"/etc/passwd\", "
                        "\"from_fmt\": \"raw\" }");
    plant_record("kind", "{ \"do\": \"mkdir\", \"a\": \"vm/x\", "
                         "\"from\": \"../snapshots/s/vda.qcow2\", \"from_fmt\": \"qcow2\" }");
    seen[0] = '\0';
    CHECK_INT(journal_recover(&st, "vm", msg, sizeof(msg)), 0);
    CHECK_INT(journal_pending(&st), 2);
    CHECK_STR(seen, "");
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
    /* First: the other leaves a committed record of vm behind. */
    test_pull_from_kept();
    test_ungrouped_step_fails_on_missing_image();
    store_close(&st);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmp);
    CHECK_DONE();
}
