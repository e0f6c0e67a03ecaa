#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
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

/* Sets of keys already logged. Two of them, each with its own cap: what
 * users ask for (refusals; with allow_other anyone can ask) must never use
 * up the budget of what is wrong in the store. Keys are compared by hash
 * first; the lists stay bounded even for a store of thousands of bad names. */
struct seen {
    struct seen *next;
    uint64_t hash;
    char key[];
};
struct seen_set {
    struct seen *head;
    unsigned count;
    pthread_mutex_t lock;
    const char *what;
};
static struct seen_set problems = { NULL, 0, PTHREAD_MUTEX_INITIALIZER, "problems" };
static struct seen_set refusals = { NULL, 0, PTHREAD_MUTEX_INITIALIZER, "refusals" };
enum { SEEN_MAX = 4096 };

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Past SEEN_MAX distinct keys, say so once and log no more of that kind. */
static bool first_time(struct seen_set *set, const char *key)
{
    bool first = true;
    uint64_t h = fnv1a(key);
    pthread_mutex_lock(&set->lock);
    for (struct seen *s = set->head; s; s = s->next) {
        if (s->hash == h && strcmp(s->key, key) == 0) {
            first = false;
            break;
        }
    }
    if (first && set->count >= SEEN_MAX) {
        first = false;
        if (set->count == SEEN_MAX && ++set->count)
            log_msg(LOG_WARNING, "more than %d distinct %s: further ones are not logged", SEEN_MAX,
                    set->what);
    } else if (first) {
        size_t len = strlen(key) + 1;
        struct seen *s = malloc(sizeof(*s) + len);
        if (s) {
            memcpy(s->key, key, len);
            s->hash = h;
            s->next = set->head;
            set->head = s;
            set->count++;
        }
    }
    pthread_mutex_unlock(&set->lock);
    return first;
}

/* The key of a report: subject and reason, which no path or message
 * separates by a newline on its own. */
static bool first_report(struct seen_set *set, const char *subject, const char *reason)
{
    char key[2 * MSG_MAX + 2];
    snprintf(key, sizeof(key), "%s\n%s", subject, reason);
    return first_time(set, key);
}

void log_once(int prio, const char *subject, const char *reason, const char *fmt, ...)
{
    if (!first_report(&problems, subject, reason))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(prio, fmt, ap);
    va_end(ap);
}

void log_refusal(const char *op, const char *path, const char *why)
{
    if (first_report(&refusals, path, op))
        log_msg(LOG_NOTICE, "refused %s %s: %s", op, path, why);
}

static void clear_set(struct seen_set *set)
{
    pthread_mutex_lock(&set->lock);
    while (set->head) {
        struct seen *next = set->head->next;
        free(set->head);
        set->head = next;
    }
    set->count = 0;
    pthread_mutex_unlock(&set->lock);
}

void log_once_reset(void)
{
    clear_set(&problems);
    clear_set(&refusals);
}
