#include "config.h"

#include "fuse/opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

/* Owned by mount(8) or mount.fuse3; meaningless to the daemon. */
static const char *const fstab_only[] = {
    "defaults", "_netdev", "nofail", "auto",    "noauto", "user",
    "users",    "nouser",  "owner",  "comment", NULL,
};

/* Passed to libfuse's mount unchanged: FUSE options, not flags. */
static const char *const mount_words[] = {
    "allow_other", "allow_root", "default_permissions", "auto_unmount", NULL,
};

/* The generic flags mount(8) accepts, as mount(2) flags. libfuse 3.14
 * (lib/mount.c) knows only the first group and refuses the rest, which
 * fstab lines carry all the time (relatime, nodiratime...): those are not
 * passed to libfuse but applied by a remount once the mount exists. The
 * atime words exclude one another, last one wins, as in mount(8). */
struct mount_flag {
    const char *word;
    unsigned long set, clear;
    bool libfuse; /* libfuse 3.14 handles it itself */
};
#define ATIME_MODES (MS_NOATIME | MS_RELATIME | MS_STRICTATIME)
static const struct mount_flag mount_flags[] = {
    { "rw", 0, MS_RDONLY, true },
    { "ro", MS_RDONLY, 0, true },
    { "suid", 0, MS_NOSUID, true },
    { "nosuid", MS_NOSUID, 0, true },
    { "dev", 0, MS_NODEV, true },
    { "nodev", MS_NODEV, 0, true },
    { "exec", 0, MS_NOEXEC, true },
    { "noexec", MS_NOEXEC, 0, true },
    { "async", 0, MS_SYNCHRONOUS, true },
    { "sync", MS_SYNCHRONOUS, 0, true },
    { "dirsync", MS_DIRSYNC, 0, true },
    /* "atime" only undoes noatime: the kernel's default (relatime) stays */
    { "atime", 0, MS_NOATIME, true },
    { "noatime", MS_NOATIME, ATIME_MODES, true },
    { "relatime", MS_RELATIME, ATIME_MODES, false },
    { "norelatime", 0, MS_RELATIME, false },
    { "strictatime", MS_STRICTATIME, ATIME_MODES, false },
    { "nostrictatime", 0, MS_STRICTATIME, false },
    { "diratime", 0, MS_NODIRATIME, false },
    { "nodiratime", MS_NODIRATIME, 0, false },
    { "lazytime", MS_LAZYTIME, 0, false },
    { "nolazytime", 0, MS_LAZYTIME, false },
    { "symfollow", 0, MS_NOSYMFOLLOW, false },
    { "nosymfollow", MS_NOSYMFOLLOW, 0, false },
    { NULL, 0, 0, false },
};

static const struct mount_flag *find_flag(const char *word)
{
    for (const struct mount_flag *f = mount_flags; f->word; f++)
        if (strcmp(word, f->word) == 0)
            return f;
    return NULL;
}
/* We set fsname and subtype ourselves; mount helpers may pass them too. */
static const char *const ignored_keys[] = { "fsname=", "subtype=", NULL };

static bool in_list(const char *word, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(word, *list) == 0)
            return true;
    return false;
}

static bool has_prefix(const char *word, const char *const *list)
{
    for (; *list; list++)
        if (strncmp(word, *list, strlen(*list)) == 0)
            return true;
    return false;
}

static int append_mount_opt(struct opts *o, const char *word, char *msg, size_t msgsz)
{
    size_t used = strlen(o->mount_opts), len = strlen(word);
    if (used + len + 2 > sizeof(o->mount_opts)) {
        snprintf(msg, msgsz, "too many mount options");
        return -EINVAL;
    }
    if (used)
        o->mount_opts[used++] = ',';
    memcpy(o->mount_opts + used, word, len + 1);
    return 0;
}

/* One word of an -o list. Values of our own options point into the
 * caller's (writable) copy, which lives as long as argv does. */
static int one_option(struct opts *o, char *word, char *msg, size_t msgsz)
{
    const struct mount_flag *flag;
    if (!*word)
        return 0;
    if (strcmp(word, "foreground") == 0)
        o->foreground = true;
    else if (strcmp(word, "debug") == 0)
        o->debug = o->foreground = true;
    else if (strcmp(word, "single_thread") == 0)
        o->single_thread = true;
    else if (strncmp(word, "qemu_img=", 9) == 0) {
        if (!word[9]) {
            snprintf(msg, msgsz, "option qemu_img= needs a path");
            return -EINVAL;
        }
        o->qemu_img = word + 9;
    } else if (in_list(word, fstab_only) || strncmp(word, "x-", 2) == 0 ||
               strncmp(word, "comment=", 8) == 0 || has_prefix(word, ignored_keys))
        return 0;
    else if (in_list(word, mount_words))
        return append_mount_opt(o, word, msg, msgsz);
    else if ((flag = find_flag(word)) != NULL) {
        o->mount_flags = (o->mount_flags & ~flag->clear & ~flag->set) | flag->set;
        o->read_only = (o->mount_flags & MS_RDONLY) != 0;
        if (!flag->libfuse) {
            o->remount = true;
            return 0;
        }
        return append_mount_opt(o, word, msg, msgsz);
    } else {
        snprintf(msg, msgsz, "unknown option '%s' (see vmstorefs --help)", word);
        return -EINVAL;
    }
    return 0;
}

static int option_list(struct opts *o, char *list, char *msg, size_t msgsz)
{
    char *save = NULL;
    for (char *w = strtok_r(list, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        int r = one_option(o, w, msg, msgsz);
        if (r < 0)
            return r;
    }
    return 0;
}

static int flag(struct opts *o, const char *arg, char *msg, size_t msgsz)
{
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
        o->help = true;
    else if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0)
        o->version = true;
    else if (strcmp(arg, "-f") == 0)
        o->foreground = true;
    else if (strcmp(arg, "-d") == 0)
        o->debug = o->foreground = true;
    else if (strcmp(arg, "-s") == 0)
        o->single_thread = true;
    else if (strcmp(arg, "--check") == 0)
        o->check = true;
    else if (strcmp(arg, "--repair") == 0)
        o->check = o->repair = true;
    else if (strcmp(arg, "--json") == 0)
        o->json = true;
    else if (strncmp(arg, "--timeout=", 10) == 0) {
        char *end;
        unsigned long t = strtoul(arg + 10, &end, 10);
        if (!arg[10] || *end || t == 0 || t > 86400) {
            snprintf(msg, msgsz, "--timeout= needs a number of seconds (1-86400)");
            return -EINVAL;
        }
        o->timeout = (unsigned)t;
    } else {
        snprintf(msg, msgsz, "unknown option '%s' (see vmstorefs --help)", arg);
        return -EINVAL;
    }
    return 0;
}

int opts_parse(int argc, char **argv, struct opts *o, char *msg, size_t msgsz)
{
    memset(o, 0, sizeof(*o));
    o->mount_flags = MS_NOSUID | MS_NODEV; /* libfuse's own default */
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        int r;
        if (strcmp(a, "-o") == 0) {
            if (++i >= argc) {
                snprintf(msg, msgsz, "option -o needs a value");
                return -EINVAL;
            }
            r = option_list(o, argv[i], msg, msgsz);
        } else if (strncmp(a, "-o", 2) == 0) {
            r = option_list(o, a + 2, msg, msgsz);
        } else if (a[0] == '-' && a[1]) {
            r = flag(o, a, msg, msgsz);
        } else {
            r = 0;
            if (npos == 0)
                o->store = a;
            else if (npos == 1)
                o->mountpoint = a;
            else {
                snprintf(msg, msgsz, "unexpected argument '%s'", a);
                return -EINVAL;
            }
            npos++;
        }
        if (r < 0)
            return r;
    }
    if (o->help || o->version)
        return 0;
    if (o->check) {
        if (!o->store || o->mountpoint) {
            snprintf(msg, msgsz, "%s", !o->store ? "--check needs a STORE"
                                                  : "--check takes a STORE and no MOUNTPOINT");
            return -EINVAL;
        }
        return 0;
    }
    if (o->json || o->timeout) {
        snprintf(msg, msgsz, "--json and --timeout= go with --check or --repair");
        return -EINVAL;
    }
    /* The daemon runs as root and checks nothing itself: without this,
     * allow_other would let any local user read and write every disk. */
    if (!strstr(o->mount_opts, "default_permissions") &&
        append_mount_opt(o, "default_permissions", msg, msgsz) < 0)
        return -EINVAL;
    if (!o->store || !o->mountpoint) {
        snprintf(msg, msgsz, "%s",
                 !o->store ? "missing STORE and MOUNTPOINT" : "missing MOUNTPOINT");
        return -EINVAL;
    }
    return 0;
}

void opts_usage(const char *prog, bool full)
{
    printf("usage: %s STORE MOUNTPOINT [-f] [-d] [-s] [-o opt[,opt...]]\n"
           "       %s --check|--repair [--json] [--timeout=SECS] [-o qemu_img=PATH] STORE\n",
           prog, prog);
    if (!full) {
        printf("Try '%s --help' for more information.\n", prog);
        return;
    }
    printf("Mount a store of libvirt VMs; snapshots and clones become file operations.\n"
           "\n"
           "Options (each also as -o NAME, so /etc/fstab can carry it):\n"
           "  -f, -o foreground      stay in the foreground, log to stderr\n"
           "  -d, -o debug           FUSE debug output (implies -f)\n"
           "  -s, -o single_thread   serve requests on one thread\n"
           "  -o qemu_img=PATH       qemu-img to run (default: qemu-img in PATH)\n"
           "  -h, --help             show this help\n"
           "  -V, --version          show the version\n"
           "\n"
           "Checking a store (not mounted, or beside its mount):\n"
           "  --check                find what is wrong in STORE, change nothing\n"
           "  --repair               check, and repair what is safe to repair\n"
           "  --json                 the report as one JSON object\n"
           "  --timeout=SECS         time bound of each qemu-img check (default 120)\n"
           "Exit status of a check (as fsck's): 0 clean, 1 problems repaired, 4 problems\n"
           "left, 8 an operational error, 16 a usage error.\n"
           "\n"
           "Mount options passed to the kernel: allow_other, allow_root, auto_unmount,\n"
           "ro, rw, [no]suid, [no]dev, [no]exec, [no]atime, [no]diratime, [no]relatime,\n"
           "[no]strictatime, [no]lazytime, [no]symfollow, sync, async, dirsync.\n"
           "Accepted and ignored (fstab): defaults, _netdev, nofail, auto, noauto, user,\n"
           "users, nouser, owner, comment, comment=*, x-*. Any other option is an error.\n"
           "atime only undoes noatime: the kernel's default, relatime, stays.\n"
           "default_permissions is always on: the kernel checks access against the\n"
           "owners and modes the mount shows. With ro nothing is created or changed in\n"
           "the store.\n"
           "\n"
           "fstab:  STORE  MOUNTPOINT  fuse.vmstorefs  defaults,allow_other,_netdev  0 0\n"
           "See vmstorefs(8).\n");
}
