/* Unit tests for journal:
 *  - a step is grouped with the next only when journal_group_last says
 *    so. Steps live in realloc'd memory; with malloc's perturbation on, a
 *    field left unset reads as garbage, and a stray "group" makes a rebase
 *    of a missing image count as done (a grouped step's image may be gone
 *    by design);
 *  - every source directory of a move is synced, however many (the list
 *    once held 8 and dropped the rest): fsync is wrapped below, so the
 *    test sees each directory the library syncs;
 *  - the cleanup order: a crash between the record's removal and its
 *    temporary directory's leaves a directory the next recovery removes;
 *    a record left committed with its directory gone (what the old order
 *    left) is finished, not failed on forever;
 *  - a record's temporary file a crash left half written goes at the
 *    next recovery, unless another operation is running;
 *  - a pull's record keeps where it starts (from, from_fmt) for its
 *    replay; a record written before it did still loads (from NULL); a
 *    from no rebase could give makes the record unreadable;
 *  - a commit's progress (copied, stamp: vm/commitchunks.h) written by
 *    its runner is in the record a recovery reads back, for the replay
 *    to resume from; progress on a step that is not a commit, or a stamp
 *    that is not one, makes the record unreadable;
 *  - a link step (the take's frozen name for the active image) replayed
 *    by recovery, from a crash between it and the rename over its FROM
 *    or from after both, is done once TO exists: the rename is finished
 *    (or found done), each name keeps its own file, one name each;
 *  - a record that also changes other VMs (journal_also: a VM rename)
 *    may name paths in their directories, and only theirs; it is pending
 *    for each of them, finished by a recovery of any of them, and not
 *    while another holds one of their locks. */
#include "config.h"
#include <sys/stat.h>

#include "check.h"
#include "journal/journal.h"
#include "store/store.h"
#include "store/vmlock.h"
#include "testutil.h"
#include "util/log.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* The library's fsync calls land here (the test binary's definition is
 * the one the static library links to): the directory or file each one
 * synced is noted, then the real fsync runs. The journal syncs side by
 * side on threads (storeio_fsync_all): each call takes a slot of its own,
 * and the list is read only once they are joined. */
#define SYNCED_MAX 256
static char synced[SYNCED_MAX][PATH_MAX];
static pthread_mutex_t synced_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t nsynced;

int fsync(int fd)
{
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n >= 0) {
        path[n] = '\0';
        pthread_mutex_lock(&synced_lock);
        if (nsynced < SYNCED_MAX)
            memcpy(synced[nsynced++], path, (size_t)n + 1);
        pthread_mutex_unlock(&synced_lock);
    }
    return (int)syscall(SYS_fsync, fd);
}

static bool was_synced(const char *path)
{
    for (size_t i = 0; i < nsynced; i++)
        if (strcmp(synced[i], path) == 0)
            return true;
    return false;
}

static struct store st;
static char tmp[PATH_MAX];

/* A shell command's exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4 * PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int r = system(cmd);
    return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

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
    /* Its record would fail every recovery of the tests below. */
    CHECK_INT(sh("rm -rf '%s/.vmstorefs/journal/%s.json' '%s/.vmstorefs/tmp/%s'", tmp, j.id, tmp,
                 j.id),
              0);
}


/* Ten moves out of ten directories: each source directory is synced
 * (their entries are gone for good only then), the ninth and tenth too. */
static void test_every_source_synced(void)
{
    char msg[512], from[PATH_MAX + 64], to[PATH_MAX + 64], dir[PATH_MAX + 64];
    CHECK_INT(sh("mkdir -p '%s/vm/t' && cd '%s/vm' && for i in 0 1 2 3 4 5 6 7 8 9; do "
                 "mkdir s$i && echo $i >s$i/f; done", tmp, tmp),
              0);
    struct journal j;
    CHECK_INT(journal_begin(&j, &st, "sync", "vm", msg, sizeof(msg)), 0);
    for (int i = 0; i < 10; i++) {
        snprintf(from, sizeof(from), "%s/vm/s%d/f", tmp, i);
        snprintf(to, sizeof(to), "%s/vm/t/f%d", tmp, i);
        CHECK_INT(journal_move(&j, from, to), 0);
    }
    nsynced = 0;
    CHECK_INT(journal_commit(&j, msg, sizeof(msg)), 0);
    journal_free(&j);
    for (int i = 0; i < 10; i++) {
        snprintf(dir, sizeof(dir), "%s/vm/s%d", tmp, i);
        if (!was_synced(dir))
            fprintf(stderr, "source directory %s was not synced\n", dir);
        CHECK(was_synced(dir));
    }
    CHECK_INT(sh("test -f '%s/vm/t/f9' && rm -rf '%s/vm'", tmp, tmp), 0);
}

/* One move of vm/f into the operation's temporary directory (as undefine
 * and VM delete do), run by a child that dies at durable point n:
 * 1 record, 2 commit, 3 the move, 4 record removed, 5 directory removed.
 * Returns the child's exit status; id is the operation's. */
static int crash_move_at(int n, char *id, size_t idsz)
{
    int idp[2];
    if (pipe(idp) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(idp[0]);
        char at[32], msg[512], from[PATH_MAX + 64], to[PATH_MAX + 64];
        snprintf(at, sizeof(at), "cleanup:%d", n);
        setenv("VMSTOREFS_CRASH_AT", at, 1);
        struct journal j;
        if (journal_begin(&j, &st, "cleanup", "vm", msg, sizeof(msg)) < 0)
            _exit(1);
        if (write(idp[1], j.id, strlen(j.id) + 1) < 0)
            _exit(1);
        snprintf(from, sizeof(from), "%s/vm/f", tmp);
        snprintf(to, sizeof(to), "%s/gone", j.tmpdir);
        _exit(journal_move(&j, from, to) == 0 && journal_commit(&j, msg, sizeof(msg)) == 0 ? 0 : 1);
    }
    close(idp[1]);
    ssize_t got = read(idp[0], id, idsz - 1);
    id[got > 0 ? got : 0] = '\0';
    close(idp[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_cleanup_order(void)
{
    char msg[512], id[64], meta[PATH_MAX + 32];
    snprintf(meta, sizeof(meta), "%s/.vmstorefs", tmp);
    /* Point 4: the record is gone, the directory not yet; the next
     * recovery has nothing to finish and removes the directory. */
    CHECK_INT(sh("mkdir -p '%s/vm' && echo x >'%s/vm/f'", tmp, tmp), 0);
    CHECK_INT(crash_move_at(4, id, sizeof(id)), 99);
    CHECK_INT(journal_pending(&st), 0);
    CHECK_INT(sh("test -d '%s/tmp/%s'", meta, id), 0);
    CHECK_INT(journal_recover(&st, NULL, msg, sizeof(msg)), 0);
    CHECK_INT(sh("[ -z \"$(ls -A '%s/tmp')\" ] && test ! -e '%s/vm/f'", meta, tmp), 0);

    /* The old order's crash: the directory removed, the committed record
     * not yet. Replaying the move finds neither end: it failed on every
     * recovery, and every operation on the VM with it. */
    CHECK_INT(sh("echo x >'%s/vm/f'", tmp), 0);
    CHECK_INT(crash_move_at(3, id, sizeof(id)), 99);
    CHECK_INT(journal_pending(&st), 1);
    CHECK_INT(sh("rm -rf '%s/tmp/%s'", meta, id), 0);
    CHECK_INT(journal_recover(&st, NULL, msg, sizeof(msg)), 1);
    CHECK_INT(journal_pending(&st), 0);

    /* The same with the directory half removed (the move's target gone
     * with it, something else still there). */
    CHECK_INT(sh("echo x >'%s/vm/f'", tmp), 0);
    CHECK_INT(crash_move_at(3, id, sizeof(id)), 99);
    CHECK_INT(sh("rm -f '%s/tmp/%s/gone'", meta, id), 0);
    CHECK_INT(sh("echo leftover >'%s/tmp/%s/other'", meta, id), 0);
    CHECK_INT(journal_recover(&st, "vm", msg, sizeof(msg)), 1);
    CHECK_INT(journal_pending(&st), 0);
    CHECK_INT(journal_recover(&st, NULL, msg, sizeof(msg)), 0);
    CHECK_INT(sh("[ -z \"$(ls -A '%s/tmp')\" ] && rm -rf '%s/vm'", meta, tmp), 0);
}

/* A record's temporary file as a crash during its write leaves it. */
static void test_half_written_record(void)
{
    char msg[512], meta[PATH_MAX + 32];
    snprintf(meta, sizeof(meta), "%s/.vmstorefs/journal", tmp);
    const char *name = ".0b5e2c1a-6a1e-4f55-9d43-1c2a3b4d5e6f.tmp";
    CHECK_INT(sh("printf '{ \"version\": 1, \"id\": \"0b5e' >'%s/%s'", meta, name), 0);
    /* Another operation is running (it holds the store's lock shared):
     * the file may be its own record being written, and stays. */
    struct vmlock busy;
    CHECK_INT(vmlock_acquire(&st, "other", 0, NULL, NULL, &busy, msg, sizeof(msg)), 0);
    CHECK_INT(journal_recover(&st, NULL, msg, sizeof(msg)), 0);
    CHECK_INT(sh("test -f '%s/%s'", meta, name), 0);
    vmlock_release(&busy);
    /* Nothing running: it is left over, and goes at once. */
    CHECK_INT(journal_recover(&st, NULL, msg, sizeof(msg)), 0);
    CHECK_INT(sh("test ! -e '%s/%s'", meta, name), 0);
    CHECK_INT(journal_pending(&st), 0);
}

/* The data-step runner here: fails while told to, else notes what
 * each pull starts from ("FROM FMT", "-" for none). */
static bool runner_fails;
static char seen[256];

static int note_from(struct journal *j, const struct jstep *step, char *msg, size_t msgsz)
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

/* A recovery of vm finishes n records, its runner having seen want. */
static void recover_sees(int n, const char *want)
{
    char msg[512];
    seen[0] = '\0';
    CHECK_INT(journal_recover(&st, "vm", msg, sizeof(msg)), n);
    CHECK_STR(seen, want);
}

/* A committed record (JSON: its vm, op and any fields before
 * "committed", its steps), with its temporary directory, as recovery
 * finds it. */
static void plant_json(const char *id, const char *head, const char *steps)
{
    char path[PATH_MAX + 128];
    /* With its temporary directory: a committed record without one had
     * every step applied (recover.c). */
    snprintf(path, sizeof(path), "%s/.vmstorefs/tmp/%s", tmp, id);
    CHECK(mkdir(path, 0700) == 0 || errno == EEXIST);
    snprintf(path, sizeof(path), "%s/.vmstorefs/journal/%s.json", tmp, id);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f,
            "{ \"version\": 1, \"id\": \"%s\", %s, "
            "\"committed\": true, \"done\": 0, \"steps\": [ %s ] }\n",
            id, head, steps);
    fclose(f);
}

/* A committed record of vm with one step (JSON), as recovery finds it. */
static void plant_record(const char *id, const char *step)
{
    plant_json(id, "\"op\": \"delete\", \"vm\": \"vm\"", step);
}

/* Recovery of a take's link and the rename over the linked name, as
 * a record planted with id finds them; then what each name holds, and
 * that each has one name again. */
static void replay_link(const char *id)
{
    char msg[512], steps[512];
    snprintf(steps, sizeof(steps),
             "{ \"do\": \"link\", \"a\": \"vm/disks/ln\", \"b\": \"vm/snapshots/l/ln\" }, "
             "{ \"do\": \"replace\", \"a\": \".vmstorefs/tmp/%s/new\", "
             "\"b\": \"vm/disks/ln\" }",
             id);
    plant_json(id, "\"op\": \"take\", \"vm\": \"vm\"", steps);
    CHECK_INT(journal_recover(&st, "vm", msg, sizeof(msg)), 1);
    CHECK_INT(sh("cd '%s/vm' && test \"$(cat snapshots/l/ln)\" = old && "
                 "test \"$(cat disks/ln)\" = new && test $(stat -c %%h disks/ln) = 1 && "
                 "test $(stat -c %%h snapshots/l/ln) = 1", tmp),
              0);
}

static void test_link_replay(void)
{
    /* Crashed between the link and the rename: the file has two names,
     * the overlay is still in the temporary directory. */
    CHECK_INT(sh("mkdir -p '%s/vm/disks' '%s/vm/snapshots/l' '%s/.vmstorefs/tmp/lk1' && "
                 "echo old >'%s/vm/disks/ln' && ln '%s/vm/disks/ln' '%s/vm/snapshots/l/ln' && "
                 "echo new >'%s/.vmstorefs/tmp/lk1/new'", tmp, tmp, tmp, tmp, tmp, tmp, tmp),
              0);
    replay_link("lk1");
    /* Crashed after both (before the record went): nothing to redo. */
    replay_link("lk2");
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
    recover_sees(1, "../snapshots/s/vda.qcow2 qcow2");
    /* A record from before. */
    plant_record("old", "{ \"do\": \"pull\", \"a\": \"vm/disks/vda.qcow2\", \"b\": \"\", "
                        "\"note\": \"s/vda\" }");
    recover_sees(1, "- -");
    /* Absolute, or on a step that is not a pull: not loaded, not run. */
    plant_record("abs", "{ \"do\": \"pull\", \"a\": \"vm/disks/vda.qcow2\", \"b\": \"\", "
                        "\"note\": \"s/vda\", \"from\": \"/etc/passwd\", "
                        "\"from_fmt\": \"raw\" }");
    plant_record("kind", "{ \"do\": \"mkdir\", \"a\": \"vm/x\", "
                         "\"from\": \"../snapshots/s/vda.qcow2\", \"from_fmt\": \"qcow2\" }");
    recover_sees(0, "");
    CHECK_INT(journal_pending(&st), 2);
}

/* The commit runner: records progress and fails while told to, else
 * notes the progress it was handed ("COPIED STAMP"). */
static int note_progress(struct journal *j, const struct jstep *step, char *msg,
                         size_t msgsz)
{
    if (runner_fails) {
        int r = journal_commit_progress(j, step, 8u << 20, "12:345:6.000000007", msg, msgsz);
        if (r < 0)
            return r;
        snprintf(msg, msgsz, "failing as told");
        return -EIO;
    }
    snprintf(seen, sizeof(seen), "%llu %s", (unsigned long long)step->copied, step->stamp);
    return 0;
}

static void test_commit_progress_kept(void)
{
    char msg[512], image[PATH_MAX + 64], into[PATH_MAX + 64];
    struct journal j;
    int pending = journal_pending(&st);
    journal_set_data_runner(note_progress);
    CHECK_INT(journal_begin(&j, &st, "delete", "vm", msg, sizeof(msg)), 0);
    snprintf(image, sizeof(image), "%s/vm/disks/vda.qcow2", tmp);
    snprintf(into, sizeof(into), "%s/vm/snapshots/s/vda.qcow2", tmp);
    CHECK_INT(journal_commit_down(&j, image, into, "s/vda"), 0);
    runner_fails = true;
    CHECK(journal_commit(&j, msg, sizeof(msg)) < 0);
    /* Held in memory too: a retry by the same process resumes. */
    CHECK_INT(j.steps[0].copied, 8u << 20);
    journal_free(&j);
    runner_fails = false;
    recover_sees(1, "8388608 12:345:6.000000007");
    /* A record from before (none): from 0. */
    plant_record("oldc", "{ \"do\": \"commit\", \"a\": \"vm/disks/vda.qcow2\", "
                         "\"b\": \"vm/snapshots/s/vda.qcow2\", \"note\": \"s/vda\" }");
    recover_sees(1, "0 ");
    /* Progress on a pull, a stamp with a path in it: not loaded. */
    plant_record("cpull", "{ \"do\": \"pull\", \"a\": \"vm/disks/vda.qcow2\", \"b\": \"\", "
                          "\"note\": \"s/vda\", \"copied\": 4096, \"stamp\": \"1:2:3.4\" }");
    plant_record("cstamp", "{ \"do\": \"commit\", \"a\": \"vm/disks/vda.qcow2\", "
                           "\"b\": \"vm/snapshots/s/vda.qcow2\", \"note\": \"s/vda\", "
                           "\"copied\": 4096, \"stamp\": \"/etc/passwd\" }");
    recover_sees(0, "");
    CHECK_INT(journal_pending(&st), pending + 2);
}

/* A committed record of VM a that also changes the VMs in also (a JSON
 * list, or NULL for none), moving a/f to b/f. */
static void plant_also(const char *id, const char *also)
{
    char head[256];
    snprintf(head, sizeof(head), "\"op\": \"vmrename\", \"vm\": \"a\"%s%s",
             also ? ", \"also\": " : "", also ? also : "");
    plant_json(id, head, "{ \"do\": \"move\", \"a\": \"a/f\", \"b\": \"b/f\" }");
}

static void test_also(void)
{
    char msg[512];
    const char *id = "5c1d2e3f-0000-4000-8000-00000000a150";
    CHECK_INT(sh("mkdir -p '%s/a' '%s/b' && echo x >'%s/a/f'", tmp, tmp, tmp), 0);
    /* Without b in also, b/f is out of the record's reach. */
    plant_also(id, NULL);
    CHECK(journal_recover(&st, NULL, msg, sizeof(msg)) < 0);
    CHECK_INT(sh("test -f '%s/a/f' && test ! -e '%s/b/f'", tmp, tmp), 0);
    plant_also(id, "[ \"b\" ]");
    CHECK_INT(journal_pending_for(&st, "b"), 1);
    CHECK_INT(journal_pending_for(&st, "c"), 0);
    /* b is busy (its operation runs): a's recovery leaves the record,
     * a mount's skips it. */
    struct vmlock busy;
    CHECK_INT(vmlock_acquire(&st, "b", 0, NULL, NULL, &busy, msg, sizeof(msg)), 0);
    CHECK_INT(journal_recover(&st, "a", msg, sizeof(msg)), -EBUSY);
    CHECK_INT(journal_recover(&st, NULL, msg, sizeof(msg)), 0);
    CHECK_INT(journal_pending(&st), 1);
    vmlock_release(&busy);
    /* An operation on b finishes it, under b's lock (a's taken). */
    struct vmlock held;
    CHECK_INT(vmlock_acquire(&st, "b", 0, NULL, NULL, &held, msg, sizeof(msg)), 0);
    CHECK_INT(journal_recover(&st, "b", msg, sizeof(msg)), 1);
    vmlock_release(&held);
    CHECK_INT(sh("test ! -e '%s/a/f' && test -f '%s/b/f'", tmp, tmp), 0);
    CHECK_INT(journal_pending(&st), 0);
    /* A name that is no VM's makes the record unreadable. */
    plant_also(id, "[ \"../b\" ]");
    CHECK(journal_recover(&st, NULL, msg, sizeof(msg)) < 0);
    CHECK_INT(sh("rm -rf '%s/.vmstorefs/journal/%s.json' '%s/.vmstorefs/tmp/%s' '%s/a' '%s/b'",
                 tmp, id, tmp, id, tmp, tmp),
              0);
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
    log_init("test_journal", true);
    test_ungrouped_step_fails_on_missing_image();
    test_every_source_synced();
    test_cleanup_order();
    test_half_written_record();
    test_also();
    test_link_replay();
    /* Last: it plants records no recovery can read. */
    test_pull_from_kept();
    test_commit_progress_kept();
    store_close(&st);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmp);
    CHECK_DONE();
}
