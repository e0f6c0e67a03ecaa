/* qimg: everything vmstorefs knows about talking to qemu-img.
 *
 * Argument vectors are built here and nowhere else, so every call carries
 * the flags safety needs (explicit formats, -U for read-only inspection of
 * images a running qemu may hold). `qemu-img info --output=json` output is
 * parsed strictly with json-c. Nothing here touches FUSE. */
#ifndef VMSTOREFS_QIMG_H
#define VMSTOREFS_QIMG_H

#include "util/spawn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qimg_info {
    char format[32];
    uint64_t virtual_size;
    uint64_t actual_size;
    bool dirty;
    char *filename;
    char *backing_filename; /* as stored in the image; NULL when none */
    char *full_backing_filename; /* as qemu-img resolved it; NULL when none */
    char backing_format[32]; /* "" when the image does not record one */
};

/* Parses the object printed by `qemu-img info --output=json`. Returns 0,
 * or -EINVAL with a reason in msg for anything that is not a well-formed
 * info object (trailing garbage, missing format or virtual-size). */
int qimg_parse_info(const char *json, struct qimg_info *out, char *msg, size_t msgsz);
/* Parses `--backing-chain` output (an array, top image first). */
int qimg_parse_chain(const char *json, struct qimg_info **out, size_t *count, char *msg,
                     size_t msgsz);
void qimg_info_clear(struct qimg_info *info);
void qimg_chain_free(struct qimg_info *chain, size_t count);

#define QIMG_ARGV_MAX 24
struct qimg_argv {
    const char *v[QIMG_ARGV_MAX]; /* NULL-terminated */
    int n;
    bool overflow; /* an argument did not fit: the vector must not run */
    struct spawn_fds fds; /* the descriptors its json: specs name (qspec.h) */
};

/* The builders below return 0, or -E2BIG when an argument did not fit
 * (then the vector is marked and must not be run).
 *
 * Every builder of a data step (convert, rebase, commit, check) takes
 * the image as a json: spec of descriptors the daemon opened and checked
 * (qspec.h), never a name someone could swap: given anything else it
 * returns -EINVAL and marks the vector. qimg_argv_pass then hands the
 * spec's descriptors to the run. */

/* The descriptors the vector's specs name (they must stay open until
 * the run returns). */
void qimg_argv_pass(struct qimg_argv *a, const struct spawn_fds *fds);

/* Appends ARG: 0, or -E2BIG past QIMG_ARGV_MAX - 1 arguments (and every
 * call after that), with a->overflow set. */
int qimg_argv_add(struct qimg_argv *a, const char *arg);

/* qemu-img info -U --output=json [--backing-chain] IMAGE */
int qimg_argv_info(struct qimg_argv *a, const char *qemu_img, const char *image, bool chain);
/* qemu-img create -f qcow2 -b BACKING -F FMT IMAGE: an empty overlay. */
int qimg_argv_create_overlay(struct qimg_argv *a, const char *qemu_img, const char *image,
                              const char *backing, const char *backing_fmt);
/* qemu-img convert -p -U -W [-C] -f FMT -O qcow2 SRC DST: a clone's disk,
 * the whole chain below SRC collapsed into one standalone image, with
 * progress on stdout (qimg_progress). -U: the caller holds the image
 * locks that keep writers off the chain (the clone pins it), so
 * qemu-img must not try to take them itself. -W: out-of-order writes,
 * measured the fastest here (see clonecopy.c). -C (offload: copy_file_range,
 * reflinks where the file system shares extents) only where reflinks
 * are supported: on ext4 it is slower. */
int qimg_argv_convert_collapse(struct qimg_argv *a, const char *qemu_img, const char *src,
                               const char *src_fmt, const char *dst, bool offload);
/* qemu-img rebase -p -f qcow2 -b BACKING -F FMT IMAGE (safe mode: data
 * is copied so the image reads the same; -p: progress on stdout, see
 * qimg_progress); BACKING "" makes it standalone, otherwise it is a spec
 * too (qspec_backing), which qemu-img writes into the header as it is:
 * the caller sets the real name afterwards. */
int qimg_argv_rebase(struct qimg_argv *a, const char *qemu_img, const char *image,
                      const char *backing, const char *backing_fmt);
/* qemu-img rebase -u -f qcow2 -b BACKING -F FMT IMAGE: only the name and
 * format in IMAGE's header change (the data must already be the same). */
int qimg_argv_rebase_unsafe(struct qimg_argv *a, const char *qemu_img, const char *image,
                             const char *backing, const char *backing_fmt);
/* qemu-img create -q -f qcow2 -u -b BACKING -F FMT IMAGE SIZE: an empty
 * overlay whose backing name is written as given without being opened
 * (a relative name is relative to where IMAGE will finally stand). The
 * daemon writes its overlays itself (qcow2create.h); this is the command
 * they are checked against (test_qcow2create). */
int qimg_argv_create_unsafe(struct qimg_argv *a, const char *qemu_img, const char *image,
                             const char *backing, const char *backing_fmt, const char *size);
/* qemu-img commit -p -f qcow2 -d IMAGE: write IMAGE's data into its backing
 * file, leaving IMAGE in place (the caller decides what replaces it). */
int qimg_argv_commit(struct qimg_argv *a, const char *qemu_img, const char *image);
/* qemu-img convert -p -U -n -B unused SRC DST: SRC and DST windows of the
 * same size (qspec_window) over two layers of one pinned chain; what
 * SRC's top layer holds (data, and zeros it has allocated) is written
 * into DST, what it does not hold leaves DST as it was (-B: convert takes
 * such parts as the target's backing's). -U: the source is only read;
 * the caller holds qemu's locks on the chain (chain.locked: its specs say
 * "locking": "off"). A resumable commit's window (vm/commitchunks.c). */
int qimg_argv_convert_window(struct qimg_argv *a, const char *qemu_img, const char *src,
                             const char *dst);
/* qemu-img map -U --output=json IMAGE */
int qimg_argv_map(struct qimg_argv *a, const char *qemu_img, const char *image);
/* qemu-img check -r leaks -f qcow2 --output=json IMAGE: clusters an
 * interrupted writer allocated but never referenced are freed; nothing
 * else is touched (corruptions are only reported). */
int qimg_argv_check_leaks(struct qimg_argv *a, const char *qemu_img, const char *image);
/* qemu-img check [-r leaks] -f qcow2 --output=json IMAGE: without
 * repair the image is opened read-only and only counted. */
int qimg_argv_check(struct qimg_argv *a, const char *qemu_img, const char *image, bool repair);

/* Is out what `qemu-img --version` prints ("qemu-img version X ...")? */
bool qimg_is_version(const char *out);

/* Finds qemu-img: `configured` if given (must be executable), otherwise
 * the first qemu-img in $PATH; checks that `qemu-img --version` runs
 * and says it is qemu-img.
 * Writes the absolute path to out. -ENOENT etc. with a reason in msg. */
int qimg_find(const char *configured, char *out, size_t outsz, char *msg, size_t msgsz);

/* Runs a built vector and waits (at most timeout_sec). On failure msg is
 * "qemu-img WHAT: <its last line of complaint>" and the result an errno
 * that says what happened: -ENOSPC, -EBUSY (an image lock), -ETIMEDOUT,
 * else -EIO. */
int qimg_run(const struct qimg_argv *a, unsigned timeout_sec, const char *what, char *msg,
             size_t msgsz);
/* qemu-img -p prints its progress on stdout as "    (42.17/100%)\r",
 * one figure after another. Fed the output in whatever chunks it comes
 * in, this keeps the latest figure and tells on_pct of each new one. */
struct qimg_progress {
    void (*on_pct)(double pct, void *arg);
    void *arg;
    double pct; /* latest figure, 0..100 */
    char cur[32]; /* the figure being read: text after the last '(' */
    size_t curlen;
    bool in_figure;
};
void qimg_progress_feed(struct qimg_progress *p, const char *buf, size_t len);
/* qimg_run, reporting progress to p (may be NULL; the vector should
 * carry -p) and stopping the child when cancelled(carg) says so
 * (-EINTR; cancelled may be NULL). A timeout of 0 means none. */
int qimg_run_watched(const struct qimg_argv *a, unsigned timeout_sec, const char *what,
                     struct qimg_progress *p, bool (*cancelled)(void *), void *carg, char *msg,
                     size_t msgsz);
/* The time limit of a qemu-img that copies `bytes` (a merge, a clone):
 * no limit fits every disk, so an hour plus a second per 10 MiB (a disk
 * slower than that is broken, not busy). */
unsigned qimg_data_timeout(uint64_t bytes);
/* The errno for qemu-img's complaint line. */
int qimg_errno(const char *line);

/* Runs `qemu-img info` on image and parses it. On failure msg holds
 * qemu-img's own last line of complaint. */
int qimg_info(const char *qemu_img, const char *image, struct qimg_info *out, char *msg,
              size_t msgsz);

#define QIMG_INFO_TIMEOUT 60

/* What `qemu-img check --output=json` counts (each 0 when it prints
 * none). */
struct qimg_check {
    uint64_t check_errors;
    uint64_t leaks; /* left */
    uint64_t leaks_fixed;
    uint64_t corruptions;
};
int qimg_parse_check(const char *json, struct qimg_check *out, char *msg, size_t msgsz);
/* Runs qimg_argv_check_leaks on image: 0 when the image is clean after
 * it (out says how many leaks it freed), -EIO with msg when anything is
 * left, other -errno when it could not run. */
int qimg_repair_leaks(const char *qemu_img, const char *spec, const struct spawn_fds *fds,
                      unsigned timeout_sec, struct qimg_check *out, char *msg, size_t msgsz);
/* Runs qimg_argv_check (repair: -r leaks) and fills out with what it
 * counted: 0 whenever qemu-img printed a result (leaks and corruptions
 * are out's to say), -ETIMEDOUT past timeout_sec, other -errno (msg
 * says why) when it could not check the image at all. */
int qimg_check_image(const char *qemu_img, const char *spec, const struct spawn_fds *fds,
                     unsigned timeout_sec, bool repair, struct qimg_check *out, char *msg,
                     size_t msgsz);

/* Runs qimg_argv_map on spec (an image alone: qspec_chain without its
 * backing) and tells on_extent of each extent in order: allocated when
 * the image holds it itself (data, or zeros it records). *size: where
 * the last one ends (the virtual size). -EIO when the output is not a
 * contiguous list of extents. */
int qimg_map(const char *qemu_img, const char *spec, const struct spawn_fds *fds,
             unsigned timeout_sec,
             void (*on_extent)(uint64_t start, uint64_t len, bool allocated, void *arg), void *arg,
             uint64_t *size, char *msg, size_t msgsz);

#endif
