/* notifyq: names to tell the kernel about, told by a thread of their own.
 *
 * Dropping a directory entry from the kernel's cache (FUSE's
 * notify_inval_entry) takes the directory's lock. The system call a
 * request serves may hold that very lock until the reply, so a request
 * must never make that call itself. It queues the name here instead; one
 * thread makes the calls, each waiting as long as the kernel needs. A
 * request may then wait a bounded time for names whose directory its own
 * call does not hold, so the caller's next access already finds them
 * gone.
 *
 * FUSE-free: the call is a function given at start. */
#ifndef VMSTOREFS_NOTIFYQ_H
#define VMSTOREFS_NOTIFYQ_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*notifyq_fn)(void *arg, uint64_t parent, const char *name);

struct notifyq;

/* NULL when memory or a thread is not to be had. */
struct notifyq *notifyq_start(notifyq_fn fn, void *arg);

/* Queues NAME in PARENT; its ticket, or 0 when out of memory (the name
 * stays cached until its timeout: stale for a moment, never wrong). */
uint64_t notifyq_push(struct notifyq *q, uint64_t parent, const char *name);

/* Whether the call for TICKET (and every earlier one) was made within
 * TIMEOUT_MS. */
bool notifyq_wait(struct notifyq *q, uint64_t ticket, int timeout_ms);

/* Ends the thread after the call it is in; names still queued are
 * dropped. */
void notifyq_stop(struct notifyq *q);

#endif
