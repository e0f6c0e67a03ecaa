/* chain: the backing chain of an image, checked to stay inside the store.
 *
 * A qcow2 image names its backing file, and qemu-img or qemu opening the
 * image through the mount follows that name. A frozen image whose name is
 * absolute, climbs out of its VM's directory, is json:{...} or a protocol
 * (nbd://, a ':' before the first '/') would make a reader through the
 * mount read a file outside the store or connect somewhere; one with no
 * recorded backing format would make qemu probe the format of its backing
 * file (a raw file holding a qcow2 header would then be followed on). An
 * image with an external data file opens another file by name. All of
 * these are refused here, before any tool is pointed at the image.
 *
 * Names are resolved as the kernel resolves them from the image's own
 * directory, lexically: the store has no symbolic links (store_open), and
 * a ".." after a named component (the one thing that differs when a name
 * goes through the mount's `current` link) is refused. Headers are read
 * through a statcache, so walking a chain again costs an open and an
 * fstat per image. FUSE-free. */
#ifndef VMSTOREFS_CHAIN_H
#define VMSTOREFS_CHAIN_H

#include "qemu/qcow2hdr.h"
#include "store/store.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

/* qemu sets no depth of its own. A chain deeper than a thousand images
 * (a snapshot a day for three years, never merged) is a mistake, not a
 * use, and the bound caps the work and memory of one walk: an open per
 * link, 1024 links of ~4 KiB = 4 MiB of struct chain at most. */
#define CHAIN_MAX_DEPTH 1024

struct backing_info {
    char name[QCOW2_BACKING_MAX + 1]; /* as stored in the header; "" when none */
    char format[16]; /* recorded backing format ("qcow2"/"raw"), "" when none */
    char path[PATH_MAX]; /* resolved absolute path (lexically normalised, relative to the
                          * image's own directory); "" when none */
};

/* Reads and checks the backing file of the qcow2 image at `path`
 * (absolute, below s->root, opened via store_open_read): 0 with out filled
 * (name "" = standalone); -EACCES with a reason in msg when the name is
 * absolute, json:, a protocol, escapes the store root (or climbs out of a
 * named directory, "a/.."), has no recorded format, or a format other than
 * qcow2/raw, or when the image has an external data file; -EINVAL (reason)
 * when path is not a qcow2 image; other -errno from opening. */
int chain_backing(const struct store *s, const char *path, struct backing_info *out, char *msg,
                  size_t msgsz);

/* The backing name of the image at path resolved anywhere in the store
 * (not only its own VM): for finding images of other VMs that back onto
 * a VM's images, which no chain check passes, but which a plan must still
 * never remove or write into (imagegraph.c, count_external). */
int chain_backing_store_wide(const struct store *s, const char *path, struct backing_info *out,
                             char *msg, size_t msgsz);

/* The checks chain_backing makes of a stored name, for a name about to
 * be given to image (path, below s->root): 0 with the resolved absolute
 * path, or -EACCES with the reason. The file itself is not opened. */
int chain_check_name(const struct store *s, const char *image, const char *name,
                     const char *format, char *path, size_t pathsz, char *msg, size_t msgsz);

struct chain_link {
    char path[PATH_MAX];
    char format[16]; /* format of this image: "qcow2" or "raw" */
};
struct chain {
    struct chain_link *links; /* links[0] = the image itself (qcow2), last = the base */
    int *fds; /* chain_pin: fds[i] is links[i] open for reading; NULL otherwise */
    size_t n;
    /* The daemon holds qemu's locks on every link (imagelock.h, a set):
     * qemu-img is told not to take them itself (qspec.h), which it could
     * not while they are held. Set by the holder, never by chain_pin. */
    bool locked;
};

/* The whole chain below `path`: every link checked as above, each backing
 * file a regular file beneath the root (no symlinks), no loops, depth <=
 * CHAIN_MAX_DEPTH; a raw link ends the chain. -EACCES/-EINVAL/-ELOOP (or
 * -ENOENT for a missing backing file) with a reason naming the offending
 * image. out is empty (n 0, links NULL) on failure. */
int chain_walk(const struct store *s, const char *path, struct chain *out, char *msg,
               size_t msgsz);
/* chain_walk, stopping at the first link below path that known(link's
 * path, arg) says the caller has met already: that link ends the chain
 * (its header is not read again). For a caller that walks many chains
 * sharing their lower links (imagegraph.c, every image of a VM): each
 * image is read once, not once per chain it is in. */
int chain_walk_until(const struct store *s, const char *path,
                     bool (*known)(const char *path, void *arg), void *arg, struct chain *out,
                     char *msg, size_t msgsz);
/* The same for the image open on fd (at path): its first link is the file
 * the caller holds, so what it serves is what was checked even if
 * another file is put at path meanwhile. */
int chain_walk_fd(const struct store *s, int fd, const char *path, struct chain *out, char *msg,
                  size_t msgsz);
/* chain_walk, keeping every link open (out->fds): each header was read
 * from the descriptor kept, so the files the chain names are the ones
 * checked, whatever is renamed meanwhile. What qemu-img is given to open
 * (qspec.h), never a path: the daemon acts on files in directories their
 * owners can change. */
int chain_pin(const struct store *s, const char *path, struct chain *out, char *msg,
              size_t msgsz);
/* Closes what chain_pin kept. */
void chain_free(struct chain *c);

/* Counters of the header cache (tests, measurements). */
void chain_cache_stats(unsigned long *hits, unsigned long *misses);
void chain_cache_clear(void);

#endif
