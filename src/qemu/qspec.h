/* qspec: what qemu-img is told to open, as a json: block spec built from
 * a pinned chain (chain_pin).
 *
 * qemu-img given a path opens the file that path names when it gets
 * there, then follows the backing names written in its header. The
 * daemon, root, acts on images in directories their owners can write: an
 * owner who swaps an image for another between the daemon's check and
 * qemu's open (renameat2 RENAME_EXCHANGE in a loop), or rewrites a
 * header, would have root read or write any file. So qemu-img never gets
 * a name: every image of the chain is a descriptor the daemon opened and
 * checked, handed to the child as descriptor 3 + i (spawn_fds) and named
 * /proc/self/fd/<3+i> (the same inode, whatever is renamed), and every
 * backing file is given explicitly down to the base ("backing": null), so
 * no name in a header is ever followed. An external data file cannot be
 * named (chain_pin refuses images that have one).
 *
 * Each layer i gets node names n<i> (the format node) and f<i> (its
 * file), which other specs on the same command line can refer to
 * (qspec_backing). The strings hold only those names, descriptor numbers
 * and the formats "qcow2"/"raw": nothing from a header or a path.
 *
 * qemu guards an image with locks on bytes of its file (imagelock.h),
 * taken when it opens it. For a chain the daemon holds those locks on
 * itself (chain.locked: a merge, from its check to its last step), each
 * file node says "locking": "off": qemu-img could not take them, and
 * needs not, since nobody else can open the images meanwhile. */
#ifndef VMSTOREFS_QSPEC_H
#define VMSTOREFS_QSPEC_H

#include "qemu/chain.h"
#include "util/spawn.h"

#include <stddef.h>
#include <stdint.h>

/* A spec of links[from..] of a pinned chain: `json:{...}` in *spec
 * (malloc'd), and the descriptors to pass in fds (links[from]'s first,
 * pointing into c). with_backing false: links[from] alone, its backing
 * given as null (an operation on one layer: a leak repair, a header
 * edit). -EINVAL when c is not pinned or from is out of range; -ENOMEM. */
int qspec_chain(const struct chain *c, size_t from, bool with_backing, char **spec,
                struct spawn_fds *fds);

/* A window of links[from..] (with its whole backing chain): a raw node
 * over the bytes [offset, offset + size) of what links[from] reads, as
 * qemu-img convert copies one part of a disk (vm/commitchunks.c). Node
 * names are prefixed with pfx, so that a source and a target window on
 * one command line do not clash. Layer i of the chain is
 * /proc/self/fd/<3 + i> whatever from is: the descriptors to pass are
 * the whole chain's (c->fds, c->n), so that a source window from 0 and a
 * target window from 1 share them. */
int qspec_window(const struct chain *c, size_t from, uint64_t offset, uint64_t size,
                 const char *pfx, char **spec);

/* The spec of an image already open in the chain spec of the same
 * command, by node reference: layer i (relative to that spec's first
 * layer), as the new backing file `qemu-img rebase -b` opens. qemu-img
 * writes the string it was given into the header: the caller then sets
 * the real relative name (qcow2_set_backing_name). *spec malloc'd. */
int qspec_backing(const struct chain *c, size_t from, size_t i, char **spec);

#endif
