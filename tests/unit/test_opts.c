/* Unit tests for opts: the command line and its -o words.
 *
 * opts_parse cuts -o lists in place, so every argument is a writable
 * copy (struct args below), never a string literal. */
#include "config.h"

#include "check.h"
#include "fuse/opts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#define MAXARGS 16

struct args {
    int argc;
    char *argv[MAXARGS + 1];
};

/* Builds a writable argv from a NULL-terminated list ("vmstorefs" first). */
static void args_make(struct args *a, ...)
{
    va_list ap;
    va_start(ap, a);
    a->argc = 0;
    a->argv[a->argc++] = strdup("vmstorefs");
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL && a->argc < MAXARGS)
        a->argv[a->argc++] = strdup(s);
    a->argv[a->argc] = NULL;
    va_end(ap);
}

static void args_free(struct args *a)
{
    for (int i = 0; i < a->argc; i++)
        free(a->argv[i]);
    a->argc = 0;
}

static int parse(struct args *a, struct opts *o, char *msg, size_t msgsz)
{
    msg[0] = '\0';
    return opts_parse(a->argc, a->argv, o, msg, msgsz);
}

static void test_positionals(void)
{
    struct args a;
    struct opts o;
    char msg[256];
    args_make(&a, "/srv/store", "/mnt/vms", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK_STR(o.store, "/srv/store");
    CHECK_STR(o.mountpoint, "/mnt/vms");
    CHECK(!o.foreground && !o.debug && !o.single_thread && !o.help && !o.version);
    CHECK(o.qemu_img == NULL);
    CHECK_STR(o.mount_opts, "default_permissions");
    args_free(&a);
}

static void test_flags(void)
{
    struct args a;
    struct opts o;
    char msg[256];

    args_make(&a, "-f", "/srv/store", "/mnt/vms", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK(o.foreground && !o.debug && !o.single_thread);
    args_free(&a);

    args_make(&a, "/srv/store", "-d", "/mnt/vms", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK(o.debug && o.foreground && !o.single_thread);
    CHECK_STR(o.store, "/srv/store");
    CHECK_STR(o.mountpoint, "/mnt/vms");
    args_free(&a);

    args_make(&a, "/srv/store", "/mnt/vms", "-s", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK(o.single_thread && !o.foreground && !o.debug);
    args_free(&a);
}

static void test_own_o_options(void)
{
    struct args a;
    struct opts o;
    char msg[256];

    args_make(&a, "/srv/store", "/mnt/vms", "-o", "foreground", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK(o.foreground && !o.debug);
    args_free(&a);

    args_make(&a, "/srv/store", "/mnt/vms", "-o", "debug", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK(o.debug && o.foreground);
    args_free(&a);

    args_make(&a, "/srv/store", "/mnt/vms", "-o", "single_thread,qemu_img=/opt/qemu/bin/qemu-img",
              NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK(o.single_thread);
    CHECK_STR(o.qemu_img, "/opt/qemu/bin/qemu-img");
    CHECK_STR(o.mount_opts, "default_permissions");
    args_free(&a);

    args_make(&a, "/srv/store", "/mnt/vms", "-o", "qemu_img=", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), -EINVAL);
    CHECK(strstr(msg, "qemu_img") != NULL);
    args_free(&a);
}

static void test_attached_o(void)
{
    struct args a;
    struct opts o;
    char msg[256];
    args_make(&a, "/srv/store", "/mnt/vms", "-oallow_other", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK_STR(o.mount_opts, "allow_other,default_permissions");
    args_free(&a);

    args_make(&a, "-oforeground,ro", "/srv/store", "/mnt/vms", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK(o.foreground);
    CHECK_STR(o.mount_opts, "ro,default_permissions");
    args_free(&a);
}

static void test_fstab_words(void)
{
    struct args a;
    struct opts o;
    char msg[256];
    args_make(&a, "/srv/store", "/mnt/vms", "-o",
              "defaults,_netdev,nofail,auto,noauto,user,users,nouser,x-systemd.foo,"
              "x-systemd.requires=/srv,comment=hello,owner",
              NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK_STR(o.mount_opts, "default_permissions");
    CHECK(!o.foreground && !o.debug && !o.single_thread);
    args_free(&a);

    /* mixed with mount words, the fstab words simply vanish */
    args_make(&a, "/srv/store", "/mnt/vms", "-o", "defaults,allow_other,_netdev", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK_STR(o.mount_opts, "allow_other,default_permissions");
    args_free(&a);
}

static void test_mount_words(void)
{
    struct args a;
    struct opts o;
    char msg[256];
    args_make(&a, "/srv/store", "/mnt/vms", "-o", "allow_other,default_permissions,ro", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK_STR(o.mount_opts, "allow_other,default_permissions,ro");
    args_free(&a);

    /* several -o accumulate in order; empty words are harmless */
    args_make(&a, "-o", "nosuid,,nodev", "/srv/store", "-o", "dirsync", "/mnt/vms", "-onoatime",
              NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK_STR(o.mount_opts, "nosuid,nodev,dirsync,noatime,default_permissions");
    args_free(&a);

    /* fsname= and subtype= are ours to set: dropped */
    args_make(&a, "/srv/store", "/mnt/vms", "-o", "fsname=x,subtype=y,rw", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK_STR(o.mount_opts, "rw,default_permissions");
    args_free(&a);
}

/* fstab's atime words and nosymfollow are accepted: not passed to
 * libfuse 3.14 (which refuses them) but kept as flags for a remount. */
static void test_remount_flags(void)
{
    struct args a;
    struct opts o;
    char msg[256];
    static const struct {
        const char *words;
        unsigned long flags;
    } cases[] = {
        { "relatime", MS_NOSUID | MS_NODEV | MS_RELATIME },
        { "nodiratime", MS_NOSUID | MS_NODEV | MS_NODIRATIME },
        { "strictatime", MS_NOSUID | MS_NODEV | MS_STRICTATIME },
        { "lazytime", MS_NOSUID | MS_NODEV | MS_LAZYTIME },
        { "nosymfollow", MS_NOSUID | MS_NODEV | MS_NOSYMFOLLOW },
        { "noatime,relatime", MS_NOSUID | MS_NODEV | MS_RELATIME },
        { "relatime,noatime", MS_NOSUID | MS_NODEV | MS_NOATIME },
        { "ro,suid,relatime,nodiratime,diratime", MS_RDONLY | MS_NODEV | MS_RELATIME },
        { "lazytime,nolazytime,nosymfollow,symfollow,strictatime,nostrictatime",
          MS_NOSUID | MS_NODEV },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        args_make(&a, "/srv/store", "/mnt/vms", "-o", cases[i].words, NULL);
        int r = parse(&a, &o, msg, sizeof(msg));
        if (r != 0 || !o.remount || o.mount_flags != cases[i].flags ||
            strstr(o.mount_opts, "relatime") || strstr(o.mount_opts, "diratime") ||
            strstr(o.mount_opts, "strict") || strstr(o.mount_opts, "lazy") ||
            strstr(o.mount_opts, "symfollow")) {
            fprintf(stderr, "-o %s: %d (%s), remount %d, flags %#lx (want %#lx), libfuse \"%s\"\n",
                    cases[i].words, r, r ? msg : "", o.remount, o.mount_flags, cases[i].flags,
                    o.mount_opts);
            check_failures++;
        }
        args_free(&a);
    }
    /* the words libfuse passes itself need no remount */
    args_make(&a, "/srv/store", "/mnt/vms", "-o", "ro,noatime,atime,sync", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK(!o.remount);
    CHECK(o.read_only);
    CHECK_STR(o.mount_opts, "ro,noatime,atime,sync,default_permissions");
    args_free(&a);
}

static void test_unknown_option(void)
{
    struct args a;
    struct opts o;
    char msg[256];
    args_make(&a, "/srv/store", "/mnt/vms", "-o", "allow_other,bogus_word,ro", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), -EINVAL);
    CHECK(strstr(msg, "bogus_word") != NULL);
    args_free(&a);

    /* a near miss of a known word is not accepted */
    args_make(&a, "/srv/store", "/mnt/vms", "-o", "allow_others", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), -EINVAL);
    CHECK(strstr(msg, "allow_others") != NULL);
    args_free(&a);

    args_make(&a, "/srv/store", "/mnt/vms", "-o", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), -EINVAL);
    CHECK(msg[0] != '\0');
    args_free(&a);
}

static void test_unknown_flag(void)
{
    struct args a;
    struct opts o;
    char msg[256];
    args_make(&a, "/srv/store", "/mnt/vms", "-x", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), -EINVAL);
    CHECK(strstr(msg, "-x") != NULL);
    args_free(&a);

    args_make(&a, "--frobnicate", "/srv/store", "/mnt/vms", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), -EINVAL);
    CHECK(strstr(msg, "--frobnicate") != NULL);
    args_free(&a);
}

static void test_positional_count(void)
{
    struct args a;
    struct opts o;
    char msg[256];

    args_make(&a, NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), -EINVAL);
    CHECK(msg[0] != '\0');
    args_free(&a);

    args_make(&a, "/srv/store", "-f", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), -EINVAL);
    CHECK(strstr(msg, "MOUNTPOINT") != NULL);
    args_free(&a);

    args_make(&a, "/srv/store", "/mnt/vms", "/extra", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), -EINVAL);
    CHECK(strstr(msg, "/extra") != NULL);
    args_free(&a);
}

static void test_help_version(void)
{
    struct args a;
    struct opts o;
    char msg[256];
    const char *const spellings[] = { "-h", "--help", "-V", "--version" };
    for (size_t i = 0; i < 4; i++) {
        args_make(&a, spellings[i], NULL);
        CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
        CHECK(i < 2 ? o.help : o.version);
        args_free(&a);
    }
    /* an unknown option is still an error next to --help */
    args_make(&a, "--help", "-o", "nonsense", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), -EINVAL);
    args_free(&a);
}

/* --check / --repair STORE: no mount point, none allowed; --json and
 * --timeout= only with them. */
static void test_check(void)
{
    struct args a;
    struct opts o;
    char msg[256];
    args_make(&a, "--check", "--json", "--timeout=5", "/srv/store", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK(o.check && !o.repair && o.json);
    CHECK_INT(o.timeout, 5);
    CHECK_STR(o.store, "/srv/store");
    CHECK(o.mountpoint == NULL);
    args_free(&a);
    args_make(&a, "/srv/store", "--repair", NULL);
    CHECK_INT(parse(&a, &o, msg, sizeof(msg)), 0);
    CHECK(o.check && o.repair && !o.json);
    args_free(&a);
    static const char *const bad[][3] = {
        { "--check", NULL, NULL },           /* no store */
        { "--check", "/s", "/m" },           /* a mount point */
        { "--check", "--timeout=0", "/s" },  /* no time */
        { "--check", "--timeout=x", "/s" },
        { "--json", "/s", "/m" },            /* not a check */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        args_make(&a, bad[i][0], bad[i][1], bad[i][2], NULL);
        CHECK_INT(parse(&a, &o, msg, sizeof(msg)), -EINVAL);
        args_free(&a);
    }
}

int main(void)
{
    test_check();
    test_positionals();
    test_flags();
    test_own_o_options();
    test_attached_o();
    test_fstab_words();
    test_mount_words();
    test_remount_flags();
    test_unknown_option();
    test_unknown_flag();
    test_positional_count();
    test_help_version();
    CHECK_DONE();
}
