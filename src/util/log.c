#include "config.h"

#include "util/log.h"

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

size_t log_escape(const char *in, char *out, size_t outsz)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (; *in; in++) {
        unsigned char c = (unsigned char)*in;
        char esc[5];
        size_t n = 0;
        if (c == '\\' || c == '\n' || c == '\t' || c == '\r') {
            esc[n++] = '\\';
            esc[n++] = c == '\n' ? 'n' : c == '\t' ? 't' : c == '\r' ? 'r' : '\\';
        } else if (c < 0x20 || c == 0x7f) {
            esc[n++] = '\\';
            esc[n++] = 'x';
            esc[n++] = hex[c >> 4];
            esc[n++] = hex[c & 15];
        } else {
            esc[n++] = (char)c;
        }
        /* Whole escapes only: a cut one would read as something else. */
        if (o + n >= outsz)
            break;
        memcpy(out + o, esc, n);
        o += n;
    }
    if (outsz)
        out[o] = '\0';
    return o;
}

/* Every line is escaped here, after formatting, so no caller can forget:
 * a store name with a newline cannot forge a second log line, and one
 * with ESC cannot drive the terminal or a syslog viewer. */
static void vlog(int prio, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void vlog(int prio, const char *fmt, va_list ap)
{
    char raw[2 * MSG_MAX], line[2 * MSG_MAX];
    vsnprintf(raw, sizeof(raw), fmt, ap);
    log_escape(raw, line, sizeof(line));
    if (use_stderr)
        fprintf(stderr, "%s: %s\n", log_ident, line);
    else
        syslog(prio, "%s", line);
}

int msg_set(char *msg, size_t msgsz, int r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msgsz, fmt, ap);
    va_end(ap);
    return r;
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
    /* Once per operation, path and reason: the same refusal repeated is
     * not logged again, a new reason for it is. */
    char what[MSG_MAX];
    snprintf(what, sizeof(what), "%s\n%s", op, why);
    if (first_report(&refusals, path, what))
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
