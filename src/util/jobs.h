/* jobs: the registry behind the mount's live `.jobs` file.
 *
 * Long operations (clones, merges) register here and report progress;
 * reading `.jobs` renders one line per running job:
 *     <kind> <vm> <what> <done>/<total> <percent>%
 * (<what> says which part of the VM: "S/vda" for a merge, the clone's
 * name for a clone; left out when empty).
 * Thread-safe; a job is owned by the thread that started it. */
#ifndef VMSTOREFS_JOBS_H
#define VMSTOREFS_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct job;

struct job *jobs_start(const char *kind, const char *vm, const char *what, uint64_t total_bytes);
void jobs_progress(struct job *job, uint64_t done_bytes);
void jobs_finish(struct job *job);
/* A malloc'd, NUL-terminated snapshot of the running jobs ("" when none). */
char *jobs_render(size_t *len);
/* The same with only the jobs whose VM visible(vm, ctx) accepts: each
 * reader of .jobs sees the lines of the VMs it may search. visible is
 * called with no lock held (it may take its time). */
char *jobs_render_for(bool (*visible)(const char *vm, void *ctx), void *ctx, size_t *len);

#endif
