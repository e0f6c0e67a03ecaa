#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool use_stderr = true;
static const char *log_ident = "vmstorefs";

void log_init(const char *ident, bool to_stderr)
{
    log_ident = ident;
    use_stderr = to_stderr;
    if (!to_stderr)
        openlog(ident, LOG_PID, LOG_DAEMON);
}

static void vlog(int prio, const char *fmt, va_list ap)
{
    if (use_stderr) {
        flockfile(stderr);
        fprintf(stderr, "%s: ", log_ident);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        funlockfile(stderr);
    } else {
        vsyslog(prio, fmt, ap);
    }
}

void log_msg(int prio, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(prio, fmt, ap);
    va_end(ap);
}

/* A small set of seen keys. Broken entries are few; a linked list with a
 * cap keeps memory bounded even if a store holds thousands of bad names. */
struct seen {
    struct seen *next;
    char key[];
};
static struct seen *seen_head;
static unsigned seen_count;
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
enum { SEEN_MAX = 4096 };

/* Past SEEN_MAX distinct keys, say so once and log no more: a store with
 * endless broken entries (or a user probing refusals) cannot flood syslog. */
static bool first_time(const char *key)
{
    bool first = true;
    pthread_mutex_lock(&seen_lock);
    for (struct seen *s = seen_head; s; s = s->next) {
        if (strcmp(s->key, key) == 0) {
            first = false;
            break;
        }
    }
    if (first && seen_count >= SEEN_MAX) {
        first = false;
        if (seen_count == SEEN_MAX && ++seen_count)
            log_msg(LOG_WARNING, "more than %d distinct problems: further ones are not logged",
                    SEEN_MAX);
    } else if (first) {
        size_t len = strlen(key) + 1;
        struct seen *s = malloc(sizeof(*s) + len);
        if (s) {
            memcpy(s->key, key, len);
            s->next = seen_head;
            seen_head = s;
            seen_count++;
        }
    }
    pthread_mutex_unlock(&seen_lock);
    return first;
}

void log_once(int prio, const char *key, const char *fmt, ...)
{
    if (!first_time(key))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(prio, fmt, ap);
    va_end(ap);
}

void log_once_reset(void)
{
    pthread_mutex_lock(&seen_lock);
    while (seen_head) {
        struct seen *next = seen_head->next;
        free(seen_head);
        seen_head = next;
    }
    seen_count = 0;
    pthread_mutex_unlock(&seen_lock);
}
