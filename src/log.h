/* log: one place that decides where messages go.
 *
 * In the foreground (-f, -d) messages go to stderr so a user sees them at
 * the terminal; once daemonized they go to syslog (facility daemon).
 * log_once() suppresses repeats of the same key, so a broken entry that is
 * looked up on every `ls` is reported once, not on every lookup. */
#ifndef VMSTOREFS_LOG_H
#define VMSTOREFS_LOG_H

#include <stdbool.h>
#include <limits.h>
#include <syslog.h>

/* Room for a path and a sentence about it: every message buffer. */
#define MSG_MAX (2 * PATH_MAX)

void log_init(const char *ident, bool to_stderr);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logs only the first time this exact key is seen; the key names the
 * broken thing (a path plus the reason) so a changed reason logs again. */
void log_once(int prio, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* As log_once, for operations a user asked for and was refused: kept
 * apart so users cannot crowd out reports of what is wrong in the store. */
void log_refusal_once(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Forget every key (for tests, and after a store rescan). */
void log_once_reset(void);

#endif
