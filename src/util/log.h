/* log: one place that decides where messages go.
 *
 * In the foreground (-f, -d) messages go to stderr so a user sees them at
 * the terminal; once daemonized they go to syslog (facility daemon).
 * log_once() suppresses repeats of the same key, so a broken entry that is
 * looked up on every `ls` is reported once, not on every lookup. */
#ifndef VMSTOREFS_LOG_H
#define VMSTOREFS_LOG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

/* Room for a path and a sentence about it: every message buffer. */
#define MSG_MAX (2 * PATH_MAX)

void log_init(const char *ident, bool to_stderr);
/* The reason for a refusal into msg (formatted, truncated to msgsz);
 * returns r, so `return msg_set(msg, msgsz, -EINVAL, "...", ...)`. */
int msg_set(char *msg, size_t msgsz, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Copies IN to OUT with every control byte (below 0x20, and 0x7f) and
 * backslash made visible: \n \t \r \\ and \xHH. Truncates at a whole
 * escape; returns the length written. Every log line goes through it. */
size_t log_escape(const char *in, char *out, size_t outsz);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logs only the first time this subject (the broken thing, a path) is
 * reported for this reason: a changed reason logs again. */
void log_once(int prio, const char *subject, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "refused OP PATH: WHY", once per operation, path and reason. Kept apart from
 * log_once's budget, so users (with allow_other, anyone) cannot crowd out
 * reports of what is wrong in the store. */
void log_refusal(const char *op, const char *path, const char *why);
/* Forget every key (for tests, and after a store rescan). */
void log_once_reset(void);

#endif
