/* writer: a writer of an active image through a front end, and the
 * store's operations, exclude each other.
 *
 * In this process the writer is counted (vmstate.h) before the file is
 * opened, and refused (-EBUSY) while an operation on its VM runs. Across
 * processes sharing the store (a second daemon, vmstorefs-ctl) it holds a
 * writer's mark (vmlock.h), which an operation of any process cannot get
 * past. */
#ifndef VMSTOREFS_WRITER_H
#define VMSTOREFS_WRITER_H

#include "store/store.h"

/* Begins a write of vm's disk dev; path names it in refusal log lines.
 * 0 with *mark the mark's descriptor (or < 0 when there is none: no
 * locks/ in a read-only mount, and only this process knows), or -EBUSY. */
int writer_begin(const struct store *s, const char *vm, const char *dev, const char *path,
                 int *mark);
/* Ends it: drops the mark and the count. */
void writer_end(const char *vm, const char *dev, int mark);

#endif
