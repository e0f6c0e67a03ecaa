/* Unit tests for notifyq: calls are made in order by the queue's own
 * thread; a wait ends when its call was made, or at its timeout while the
 * call is held up (the kernel waiting for a directory lock); stop ends the
 * thread and drops what is still queued. */
#include "config.h"

#include "check.h"
#include "notifyq.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct log {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool held; /* calls wait while set, as a locked directory makes them */
    pthread_t caller;
    char seen[256];
};

static void record(void *arg, uint64_t parent, const char *name)
{
    struct log *l = arg;
    pthread_mutex_lock(&l->mu);
    while (l->held)
        pthread_cond_wait(&l->cv, &l->mu);
    l->caller = pthread_self();
    size_t n = strlen(l->seen);
    snprintf(l->seen + n, sizeof(l->seen) - n, "%llu/%s ", (unsigned long long)parent, name);
    pthread_mutex_unlock(&l->mu);
}

static void hold(struct log *l, bool on)
{
    pthread_mutex_lock(&l->mu);
    l->held = on;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void test_order_and_wait(void)
{
    struct log l = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    struct notifyq *q = notifyq_start(record, &l);
    CHECK(q != NULL);
    uint64_t a = notifyq_push(q, 7, "vda.qcow2");
    uint64_t b = notifyq_push(q, 3, "domain.xml");
    CHECK(a && b > a);
    CHECK(notifyq_wait(q, b, 5000));
    CHECK_STR(l.seen, "7/vda.qcow2 3/domain.xml ");
    CHECK(!pthread_equal(l.caller, pthread_self())); /* never the requester's thread */
    CHECK(notifyq_wait(q, a, 0)); /* made already: no waiting */
    notifyq_stop(q);
}

static void test_held_call_times_out(void)
{
    struct log l = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    struct notifyq *q = notifyq_start(record, &l);
    hold(&l, true);
    uint64_t t = notifyq_push(q, 1, "current");
    CHECK(!notifyq_wait(q, t, 50));
    hold(&l, false);
    CHECK(notifyq_wait(q, t, 5000));
    CHECK_STR(l.seen, "1/current ");
    notifyq_stop(q);
}

static void *stop_it(void *q)
{
    notifyq_stop(q);
    return NULL;
}

/* Stop drops queued names; the call in progress finishes first. */
static void test_stop_drops(void)
{
    struct log l = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    struct notifyq *q = notifyq_start(record, &l);
    hold(&l, true);
    notifyq_push(q, 1, "a");
    notifyq_push(q, 1, "b");
    notifyq_push(q, 1, "c");
    pthread_t stopper;
    /* The stop waits for the held call: release it from here meanwhile. */
    CHECK(pthread_create(&stopper, NULL, stop_it, q) == 0);
    struct timespec ms50 = { 0, 50000000 };
    nanosleep(&ms50, NULL);
    hold(&l, false);
    pthread_join(stopper, NULL);
    CHECK(strcmp(l.seen, "1/a ") == 0 || strcmp(l.seen, "") == 0);
}

int main(void)
{
    test_order_and_wait();
    test_held_call_times_out();
    test_stop_drops();
    CHECK_DONE();
}
