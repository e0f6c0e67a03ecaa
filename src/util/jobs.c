#include "config.h"

#include "util/jobs.h"

#include "util/names.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job {
    struct job *next;
    char kind[16];
    char vm[NAME_MAX_LEN + 1];
    char what[2 * NAME_MAX_LEN + 2];
    uint64_t done, total;
};

static struct job *head;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

struct job *jobs_start(const char *kind, const char *vm, const char *what, uint64_t total_bytes)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    snprintf(j->kind, sizeof(j->kind), "%s", kind);
    snprintf(j->vm, sizeof(j->vm), "%s", vm);
    snprintf(j->what, sizeof(j->what), "%s", what ? what : "");
    j->total = total_bytes;
    pthread_mutex_lock(&lock);
    struct job **tail = &head;
    while (*tail)
        tail = &(*tail)->next;
    *tail = j;
    pthread_mutex_unlock(&lock);
    return j;
}

void jobs_progress(struct job *job, uint64_t done_bytes)
{
    if (!job)
        return;
    pthread_mutex_lock(&lock);
    job->done = done_bytes;
    pthread_mutex_unlock(&lock);
}

void jobs_finish(struct job *job)
{
    if (!job)
        return;
    pthread_mutex_lock(&lock);
    for (struct job **pp = &head; *pp; pp = &(*pp)->next) {
        if (*pp == job) {
            *pp = job->next;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    free(job);
}

/* The jobs as they are now, copied under the lock (*n of them). */
static struct job *jobs_copy(size_t *n)
{
    pthread_mutex_lock(&lock);
    size_t count = 0;
    for (struct job *j = head; j; j = j->next)
        count++;
    struct job *copy = malloc((count ? count : 1) * sizeof(*copy));
    size_t k = 0;
    for (struct job *j = head; copy && j; j = j->next)
        copy[k++] = *j;
    pthread_mutex_unlock(&lock);
    *n = k;
    return copy;
}

char *jobs_render_for(bool (*visible)(const char *vm, void *ctx), void *ctx, size_t *len)
{
    size_t count;
    struct job *jobs = jobs_copy(&count);
    if (!jobs)
        return NULL;
    size_t cap = 1 + count * (sizeof(jobs->kind) + sizeof(jobs->vm) + sizeof(jobs->what) + 64);
    char *buf = malloc(cap);
    size_t n = 0;
    if (buf) {
        buf[0] = '\0';
        for (size_t i = 0; i < count; i++) {
            const struct job *j = &jobs[i];
            if (visible && !visible(j->vm, ctx))
                continue;
            /* done * 100 would overflow past 184 PB; both sides are
             * scaled down first then. */
            uint64_t d = j->done, t = j->total;
            if (t > UINT64_MAX / 100)
                d /= 100, t /= 100;
            unsigned pct = t ? (unsigned)(d * 100 / t) : 0;
            n += (size_t)snprintf(buf + n, cap - n, "%s %s%s%s %llu/%llu %u%%\n", j->kind, j->vm,
                                  j->what[0] ? " " : "", j->what, (unsigned long long)j->done,
                                  (unsigned long long)j->total, pct);
        }
    }
    free(jobs);
    *len = n;
    return buf;
}

char *jobs_render(size_t *len)
{
    return jobs_render_for(NULL, NULL, len);
}
