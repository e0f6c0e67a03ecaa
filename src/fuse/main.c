/* vmstorefs: mount a libvirt VM instance store.
 *
 * Start-up order matters for fstab and for users at a terminal: every
 * check that can fail (options, mount point, store, qemu-img) runs before
 * the mount, so a bad mount prints one line and exits non-zero with
 * nothing written; the store metadata is created only once the mount
 * exists; the daemon detaches last. */
#include "config.h"

#include "vm/bgmerge.h"
#include "vm/delplan.h"
#include "view/ghost.h"
#include "journal/journal.h"
#include "fuse/lockwait.h"
#include "fuse/fdquota.h"
#include "util/log.h"
#include "fuse/mountcheck.h"
#include "fuse/handlers.h"
#include "fuse/opts.h"
#include "fuse/readers.h"
#include "fuse/session.h"
#include "qemu/qimg.h"
#include "datapath/readsize.h"
#include "store/store.h"
#include "vm/merge.h"
#include "ops/check.h"
#include "store/storeio.h"

#include <errno.h>
#include <libxml/parser.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Through the log, so a store path with a newline or ESC in it is
 * escaped here too: still one line. */
static int fail(const char *msg)
{
    log_msg(LOG_ERR, "%s", msg);
    return 1;
}

static int check_mountpoint(const char *path, char *out, char *msg, size_t msgsz)
{
    struct stat st;
    struct statvfs sv;
    /* After a kill -9 the dead mount stays until someone unmounts it, and
     * every access to it fails with ENOTCONN: say what to do. statfs, not
     * stat: the kernel may answer stat from its cache, statfs always asks
     * the file system. */
    if ((statvfs(path, &sv) < 0 && errno == ENOTCONN) || (stat(path, &st) < 0 && errno == ENOTCONN)) {
        snprintf(msg, msgsz, "mount point %s: a dead mount is still there: run `fusermount3 -u %s` first",
                 path, path);
        return -1;
    }
    if (stat(path, &st) < 0 || !realpath(path, out)) {
        snprintf(msg, msgsz, "mount point %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(msg, msgsz, "mount point %s: not a directory", path);
        return -1;
    }
    FILE *mi = fopen("/proc/self/mountinfo", "re");
    bool busy = mi && mountcheck_is_mounted(mi, out, "fuse.vmstorefs");
    if (mi)
        fclose(mi);
    if (busy) {
        snprintf(msg, msgsz, "mount point %s: a vmstorefs is already mounted there", out);
        return -1;
    }
    return 0;
}

/* A mount point at or below the store would make the daemon walk into
 * its own mount (a deadlock on the first lookup); a store below the mount
 * point would be hidden by it. */
static bool path_within(const char *inner, const char *outer)
{
    size_t n = strlen(outer);
    if (strcmp(outer, "/") == 0)
        return true;
    return strncmp(inner, outer, n) == 0 && (inner[n] == '\0' || inner[n] == '/');
}

static int check_overlap(const char *store, const char *mountpoint, char *msg, size_t msgsz)
{
    if (path_within(mountpoint, store) || path_within(store, mountpoint)) {
        snprintf(msg, msgsz, "mount point %s overlaps the store: mount elsewhere", mountpoint);
        return -1;
    }
    return 0;
}

/* fsname=STORE: commas in the path must be escaped for libfuse. */
static void escape_commas(const char *in, char *out, size_t outsz)
{
    size_t o = 0;
    for (; *in && o + 2 < outsz; in++) {
        if (*in == ',' || *in == '\\')
            out[o++] = '\\';
        out[o++] = *in;
    }
    out[o] = '\0';
}

static int build_args(struct fuse_args *args, const struct opts *o, const struct vfs *vfs)
{
    char fsname[PATH_MAX * 2], opt[PATH_MAX * 2 + 1200];
    escape_commas(vfs->store.root, fsname, sizeof(fsname));
    snprintf(opt, sizeof(opt), "fsname=%s,subtype=vmstorefs,max_read=%zu%s%s", fsname,
             vfs->max_read, o->mount_opts[0] ? "," : "", o->mount_opts);
    if (fuse_opt_add_arg(args, "vmstorefs") < 0 || fuse_opt_add_arg(args, "-o") < 0 ||
        fuse_opt_add_arg(args, opt) < 0)
        return -1;
    if (o->debug && fuse_opt_add_arg(args, "-d") < 0)
        return -1;
    return 0;
}

/* The flags libfuse 3.14 cannot pass (relatime, nodiratime, lazytime...):
 * a remount with every flag the options name, since a remount replaces
 * them all. Root only, as mounting without fusermount3 is. */
static int apply_remount(const struct opts *o, const char *mountpoint, char *msg, size_t msgsz)
{
    if (!o->remount || mount(NULL, mountpoint, NULL, MS_REMOUNT | o->mount_flags, NULL) == 0)
        return 0;
    int e = errno;
    snprintf(msg, msgsz, "cannot apply the mount options on %s: %s%s", mountpoint, strerror(e),
             e == EPERM && geteuid() != 0
                 ? " (relatime, nodiratime, strictatime, lazytime and nosymfollow need root)"
                 : "");
    return -1;
}

static int serve(struct fuse_session *se, const struct opts *o)
{
    if (o->single_thread)
        return fuse_session_loop(se);
    struct fuse_loop_config *cfg = fuse_loop_cfg_create();
    if (!cfg)
        return -1;
    fuse_loop_cfg_set_clone_fd(cfg, 0);
    /* 16 threads serve; lock requests that wait (lockwait.h) may hold up
     * to LOCKWAIT_MAX more, never those 16. Threads start on demand. */
    fuse_loop_cfg_set_max_threads(cfg, 16 + LOCKWAIT_MAX);
    int r = fuse_session_loop_mt(se, cfg);
    fuse_loop_cfg_destroy(cfg);
    return r;
}

/* The cheap part of the store's check (ops/check.h: headers, chains,
 * XML, no qemu-img, no schema), in one log line: what an administrator
 * reads to know that `vmstorefs --check` has something to say. The
 * journal is left to the recovery, which logs its own.
 *
 * It runs on a thread of its own once the mount serves: a check of 100
 * VMs with 1,000 snapshots reads ~2,000 files (0.3 s here), which the
 * mount would otherwise wait for (it took 0.1 s without). It takes each
 * VM's lock shared for the moment it reads it and skips, and counts, a
 * VM an operation holds. */
struct cheap_check {
    const struct store *s;
    bool read_only;
    atomic_bool stop;
    pthread_t thread;
    bool started;
};

static void *cheap_check_thread(void *arg)
{
    struct cheap_check *cc = arg;
    struct check_opts co = { .cheap = true, .lock = !cc->read_only, .no_journal = true,
                             .skip_busy = true, .stop = &cc->stop };
    const struct store *s = cc->s;
    struct check_report rep;
    char msg[MSG_MAX], line[1024];
    if (check_run(s, &co, &rep, msg, sizeof(msg)) < 0) {
        log_msg(LOG_WARNING, "check: %s", msg);
    } else {
        check_summary(&rep, line, sizeof(line));
        if (rep.n || rep.oper)
            log_msg(LOG_WARNING, "check: %s: run `vmstorefs --check %s` for the list", line,
                    s->root);
        else
            log_msg(LOG_INFO, "check: %s (%.2f s)", line, rep.seconds);
    }
    check_report_free(&rep);
    return NULL;
}

static void cheap_check_start(struct cheap_check *cc, const struct store *s, bool read_only)
{
    cc->s = s;
    cc->read_only = read_only;
    atomic_store(&cc->stop, false);
    cc->started = pthread_create(&cc->thread, NULL, cheap_check_thread, cc) == 0;
    if (!cc->started)
        log_msg(LOG_WARNING, "check: no thread for the store's check at mount");
}

static void cheap_check_stop(struct cheap_check *cc)
{
    if (!cc->started)
        return;
    atomic_store(&cc->stop, true);
    pthread_join(cc->thread, NULL);
    cc->started = false;
}

/* vmstorefs --check / --repair STORE: fsck's exit statuses (16 usage,
 * 8 a store that cannot be read or qemu-img missing). */
static int run_check(const struct opts *o)
{
    static struct store s;
    char msg[MSG_MAX] = "", locks[PATH_MAX];
    log_init("vmstorefs", true);
    xmlInitParser();
    int r = store_check(&s, o->store, msg, sizeof(msg));
    if (r == 0)
        r = qimg_find(o->qemu_img, s.qemu_img, sizeof(s.qemu_img), msg, sizeof(msg));
    /* A repair writes, and takes locks in the store's metadata; a check
     * takes them when a mount has made them (a store never mounted has
     * nobody to keep out). */
    if (r == 0 && o->repair)
        r = store_prepare_meta(&s, msg, sizeof(msg));
    int status = 8;
    if (r == 0) {
        bool lock = (size_t)snprintf(locks, sizeof(locks), "%s/" STORE_META_DIR "/locks",
                                     s.root) < sizeof(locks) &&
                    storeio_exists(&s, locks);
        struct check_opts co = { .repair = o->repair, .lock = lock,
                                 .timeout_sec = o->timeout };
        status = check_main(&s, &co, o->json, stdout, msg, sizeof(msg));
    }
    if (status == 8 && msg[0])
        log_msg(LOG_ERR, "%s", msg);
    store_close(&s);
    xmlCleanupParser();
    return status;
}

static int run(const struct opts *o, struct vfs *vfs, const char *mountpoint)
{
    char msg[MSG_MAX];
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    if (build_args(&args, o, vfs) < 0)
        return fail("out of memory");
    struct fuse_session *se = ops_session_new(&args, vfs);
    fuse_opt_free_args(&args);
    if (!se)
        return fail("cannot set up FUSE (see the message above)");
    if (fuse_session_mount(se, mountpoint) != 0) {
        ops_session_destroy(se);
        snprintf(msg, sizeof(msg), "cannot mount on %s", mountpoint);
        return fail(msg);
    }
    int status = 1;
    if (apply_remount(o, mountpoint, msg, sizeof(msg)) < 0) {
        fail(msg);
        goto out;
    }
    if (!o->read_only && store_prepare_meta(&vfs->store, msg, sizeof(msg)) < 0) {
        fail(msg);
        goto out;
    }
    /* Operations a crash left half done are finished (or undone) before
     * the first request is served: nobody ever sees the middle of one.
     * Except a merge a crash cut short (a committed record with data
     * steps): the background worker finishes it once the mount serves,
     * so a long one never holds up a boot's mount; its VM answers EBUSY
     * to changes until then (bgmerge.h). */
    if (!o->read_only)
        bgmerge_prepare(&vfs->store);
    int recovered = o->read_only ? 0 : vm_recover(&vfs->store, NULL, msg, sizeof(msg));
    /* One operation that cannot be finished must not take every VM of
     * the store offline: it stays in the journal (its VM refuses further
     * operations with EIO until it is), and the rest is served. */
    if (recovered < 0)
        log_msg(LOG_ERR, "journal: %s; serving the store, operations on that VM are refused", msg);
    if (recovered > 0)
        log_msg(LOG_NOTICE, "journal: recovered %d unfinished operation(s)", recovered);
    if (fuse_set_signal_handlers(se) != 0) {
        fail("cannot install signal handlers");
        goto out;
    }
    if (!o->foreground)
        log_init("vmstorefs", false);
    if (fuse_daemonize(o->foreground) != 0)
        goto out_signals;
    log_msg(LOG_INFO, "serving %s on %s (qemu-img %s)", vfs->store.root, mountpoint,
            vfs->store.qemu_img);
    /* Merges run in the background (bgmerge.h), started after the fork
     * of fuse_daemonize (a thread does not survive it). What a crash or
     * an earlier mount left to merge (hidden images with one dependent or
     * none) is queued now and done while the mount serves. */
    bool worker = false;
    if (!o->read_only) {
        bgmerge_set_walked(ghost_vm_walked);
        bgmerge_set_reading(readers_of_path);
        bgmerge_set_changed(ops_after_merge);
        worker = bgmerge_start(&vfs->store) == 0;
        if (!worker) {
            log_msg(LOG_WARNING, "no background merge worker: deletes merge before they return");
            delplan_collect_store(&vfs->store);
        }
        bgmerge_kick_store();
    }
    static struct cheap_check cc;
    cheap_check_start(&cc, &vfs->store, o->read_only);
    int r = serve(se, o);
    cheap_check_stop(&cc);
    if (worker)
        bgmerge_stop();
    /* The loop reports the signal that ended it; SIGTERM, SIGINT and
     * SIGHUP are how a mount is asked to stop, so they are success. */
    status = (r == 0 || r == SIGTERM || r == SIGINT || r == SIGHUP) ? 0 : 1;
    log_msg(status ? LOG_ERR : LOG_INFO, "unmounting %s (%s)", mountpoint,
            status ? "loop failed" : "clean exit");
out_signals:
    fuse_remove_signal_handlers(se);
out:
    fuse_session_unmount(se);
    ops_session_destroy(se);
    return status;
}

int main(int argc, char **argv)
{
    struct opts o;
    char msg[MSG_MAX];
    if (opts_parse(argc, argv, &o, msg, sizeof(msg)) < 0) {
        fail(msg);
        /* fsck's usage status for a check's command line. */
        for (int i = 1; i < argc; i++)
            if (strcmp(argv[i], "--check") == 0 || strcmp(argv[i], "--repair") == 0)
                return 16;
        return 1;
    }
    if (o.help) {
        opts_usage("vmstorefs", true);
        return 0;
    }
    if (o.version) {
        printf("vmstorefs %s (libfuse %s)\n", PACKAGE_VERSION, fuse_pkgversion());
        return 0;
    }
    if (o.check)
        return run_check(&o);
    log_init("vmstorefs", true);

    static struct vfs vfs;
    char mountpoint[PATH_MAX];
    if (check_mountpoint(o.mountpoint, mountpoint, msg, sizeof(msg)) < 0 ||
        store_check(&vfs.store, o.store, msg, sizeof(msg)) < 0 ||
        check_overlap(vfs.store.root, mountpoint, msg, sizeof(msg)) < 0 ||
        qimg_find(o.qemu_img, vfs.store.qemu_img, sizeof(vfs.store.qemu_img), msg, sizeof(msg)) < 0)
        return fail(msg);
    /* -o ro writes nothing, so it cannot finish what a crash left. */
    int pending = o.read_only ? journal_pending(&vfs.store) : 0;
    if (pending > 0) {
        snprintf(msg, sizeof(msg),
                 "store %s has %d unfinished operation(s) in its journal: mount it read-write "
                 "once to recover them",
                 vfs.store.root, pending);
        return fail(msg);
    }
    long nofile = fdquota_setup(msg, sizeof(msg));
    if (nofile < 0)
        log_msg(LOG_WARNING, "%s", msg);
    /* libxml2 2.9 initialises itself lazily, which is not thread-safe:
     * do it before the first FUSE thread parses anything. */
    xmlInitParser();
    vfs.max_read = readsize_for_system("/proc/sys/fs/pipe-max-size", (size_t)sysconf(_SC_PAGESIZE));
    int status = run(&o, &vfs, mountpoint);
    store_close(&vfs.store);
    xmlCleanupParser();
    return status;
}
