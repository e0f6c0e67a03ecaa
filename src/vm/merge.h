/* merge: the journal's data steps (pull and commit merges), run with their
 * log lines and .jobs progress. The journal has no runner until a front
 * end installs this one (journal.h, the replay contract). */
#ifndef VMSTOREFS_MERGE_H
#define VMSTOREFS_MERGE_H

#include "journal/journal.h"

#include <stddef.h>

/* Plugs the merge runner into the journal; idempotent. */
void merge_install(void);

/* journal_recover with the runner installed: what every front end and
 * operation uses to finish what a crash left. */
int vm_recover(const struct store *s, const char *vm, char *msg, size_t msgsz);

#endif
