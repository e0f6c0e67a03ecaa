/* opts: the command line, in one table.
 *
 *   vmstorefs STORE MOUNTPOINT [-f] [-d] [-s] [-o opt[,opt...]]
 *
 * Every option has an -o spelling so /etc/fstab can carry it. Words that
 * only mean something to mount(8) (defaults, _netdev, nofail, auto,
 * noauto, user, users, nouser) are accepted and dropped. Generic and FUSE
 * mount options are passed on to libfuse, or, for the generic flags
 * libfuse 3.14 does not know, recorded for a remount; anything else is an
 * error.
 * FUSE-free, so the unit tests check the table directly. */
#ifndef VMSTOREFS_OPTS_H
#define VMSTOREFS_OPTS_H

#include <stdbool.h>
#include <stddef.h>

struct opts {
    const char *store;
    const char *mountpoint;
    bool foreground;
    bool debug;
    bool single_thread;
    bool read_only; /* -o ro: nothing may be written to the store */
    bool help;
    bool version;
    const char *qemu_img; /* NULL: search PATH */
    /* --check STORE / --repair STORE: the store's fsck (ops/check.h),
     * no mount. */
    bool check;
    bool repair;
    bool json;
    unsigned timeout; /* --timeout=SECS: each qemu-img of a check; 0: default */
    char mount_opts[1024]; /* comma-separated options for libfuse */
    /* Every generic flag word, applied in order, as mount(2) flags
     * (MS_RDONLY, MS_NOSUID, MS_RELATIME...) from libfuse's default of
     * nosuid,nodev. */
    unsigned long mount_flags;
    /* A word libfuse cannot pass (relatime, nodiratime, strictatime,
     * lazytime, nosymfollow and their opposites) was given: once mounted,
     * remount with mount_flags (MS_REMOUNT) so the kernel applies it. */
    bool remount;
};

/* Returns 0, or -EINVAL with a one-line reason in msg. Does not touch the
 * file system. Strings point into argv (or into o for -o values). */
int opts_parse(int argc, char **argv, struct opts *o, char *msg, size_t msgsz);
void opts_usage(const char *prog, bool full);

#endif
