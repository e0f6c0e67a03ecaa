/* fdquota: how many files each user may hold open through the mount.
 *
 * Every open through the mount holds one daemon descriptor until it is
 * closed. With allow_other one user could open the same image thousands
 * of times and leave the daemon none for anyone (root's `ls` failing with
 * EMFILE). So the soft RLIMIT_NOFILE is raised to the hard limit at
 * start-up, and each user but root may hold at most a quarter of it, and
 * all of them together half of it: a user past a cap gets EMFILE (logged
 * once per user), and root always keeps half the descriptors for itself
 * and for the daemon's own work.
 * FUSE-free. */
#ifndef VMSTOREFS_FDQUOTA_H
#define VMSTOREFS_FDQUOTA_H

#include <stddef.h>
#include <sys/types.h>

/* Raises the soft descriptor limit to the hard one and sets the caps from
 * it. Returns the limit now in force; on failure (-errno) msg says why and
 * the caps follow the unchanged soft limit. */
long fdquota_setup(char *msg, size_t msgsz);
/* Sets the caps for a descriptor limit (what setup does after raising). */
void fdquota_init(long limit);
/* The cap of a user other than root. */
long fdquota_cap(void);
/* One more open file for uid: 0, or -EMFILE when uid is at its cap. */
int fdquota_take(uid_t uid);
/* One open file of uid closed. */
void fdquota_put(uid_t uid);

#endif
