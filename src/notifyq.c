#include "config.h"

#include "notifyq.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct item {
    uint64_t parent;
    struct item *next;
    char name[]; /* NUL-terminated */
};

struct notifyq {
    pthread_mutex_t mu;
    pthread_cond_t more; /* an item was queued, or stop */
    pthread_cond_t done; /* a call ended */
    notifyq_fn fn;
    void *arg;
    struct item *head, *tail;
    uint64_t queued, made; /* tickets handed out; calls made (in order) */
    bool stopping;
    pthread_t thread;
};

static void *run(void *p)
{
    struct notifyq *q = p;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stopping)
            pthread_cond_wait(&q->more, &q->mu);
        if (q->stopping)
            break;
        struct item *it = q->head;
        q->head = it->next;
        if (!q->head)
            q->tail = NULL;
        pthread_mutex_unlock(&q->mu);
        q->fn(q->arg, it->parent, it->name); /* may wait for the kernel */
        free(it);
        pthread_mutex_lock(&q->mu);
        q->made++;
        pthread_cond_broadcast(&q->done);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

struct notifyq *notifyq_start(notifyq_fn fn, void *arg)
{
    struct notifyq *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->more, NULL);
    /* Waits are timed on the monotonic clock: a clock step must not end
     * one early or stretch it. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->done, &ca);
    pthread_condattr_destroy(&ca);
    q->fn = fn;
    q->arg = arg;
    if (pthread_create(&q->thread, NULL, run, q) != 0) {
        pthread_cond_destroy(&q->more);
        pthread_cond_destroy(&q->done);
        pthread_mutex_destroy(&q->mu);
        free(q);
        return NULL;
    }
    return q;
}

uint64_t notifyq_push(struct notifyq *q, uint64_t parent, const char *name)
{
    size_t len = strlen(name);
    struct item *it = malloc(sizeof(*it) + len + 1);
    if (!it)
        return 0;
    it->parent = parent;
    it->next = NULL;
    memcpy(it->name, name, len + 1);
    pthread_mutex_lock(&q->mu);
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    uint64_t ticket = ++q->queued;
    pthread_cond_signal(&q->more);
    pthread_mutex_unlock(&q->mu);
    return ticket;
}

bool notifyq_wait(struct notifyq *q, uint64_t ticket, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&q->mu);
    int r = 0;
    while (q->made < ticket && !q->stopping && r != ETIMEDOUT)
        r = pthread_cond_timedwait(&q->done, &q->mu, &until);
    bool made = q->made >= ticket;
    pthread_mutex_unlock(&q->mu);
    return made;
}

void notifyq_stop(struct notifyq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_broadcast(&q->more);
    pthread_cond_broadcast(&q->done);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    for (struct item *it = q->head, *next; it; it = next) {
        next = it->next;
        free(it);
    }
    pthread_cond_destroy(&q->more);
    pthread_cond_destroy(&q->done);
    pthread_mutex_destroy(&q->mu);
    free(q);
}
