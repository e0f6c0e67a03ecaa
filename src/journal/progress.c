/* progress: a data step's progress written into its record while the
 * step runs (journal.h, journal_commit_progress; vm/commitchunks.h). */
#include "config.h"

#include "journal/jint.h"

#include "store/storeio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int journal_commit_progress(const struct journal *j, const struct jstep *st, uint64_t copied,
                            const char *stamp, char *msg, size_t msgsz)
{
    if (st < j->steps || st >= j->steps + j->nsteps || st->kind != JS_COMMIT ||
        strlen(stamp) >= JSTEP_STAMP_MAX || copied > INT64_MAX)
        return -EINVAL;
    size_t at = (size_t)(st - j->steps);
    /* A record write is a mark: the directories the moves and replaces
     * since the last one took names from are synced before it, as
     * journal_apply_all syncs them before its own marks (their targets
     * are durable already). Those inside the operation's temporary
     * directory, or gone since, need none. */
    for (size_t i = j->done; i < at; i++) {
        const struct jstep *m = &j->steps[i];
        if (m->kind != JS_MOVE && m->kind != JS_REPLACE)
            continue;
        int r = storeio_fsync_parent(j->s, m->a);
        if (r < 0 && r != -ENOENT) {
            snprintf(msg, msgsz, "fsync of the directory of %s: %s", m->a, strerror(-r));
            return r;
        }
    }
    /* The journal's own step (the runner is handed the step read-only so
     * that it cannot change the plan): its progress is the record's to
     * say. */
    struct jstep *own = &j->steps[at];
    own->copied = copied;
    snprintf(own->stamp, sizeof(own->stamp), "%s", stamp);
    return journal_write_record(j, msg, msgsz);
}
