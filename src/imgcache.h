/* imgcache: remembers what `qemu-img info` said about an image until the
 * image changes.
 *
 * Deriving `current` needs each active image's backing file; running
 * qemu-img on every `ls -l` would cost a process per lookup. Entries are
 * keyed by path and validated by (device, inode, size, mtime, ctime), so
 * a rebase, a replaced file or a write invalidates them. */
#ifndef VMSTOREFS_IMGCACHE_H
#define VMSTOREFS_IMGCACHE_H

#include <stddef.h>

/* Writes the image's format and backing file name as stored in the image
 * ("" when it has none). -errno with qemu-img's complaint in msg when the
 * image cannot be inspected. */
int imgcache_lookup(const char *qemu_img, const char *path, char *format, size_t formatsz,
                    char *backing, size_t backingsz, char *msg, size_t msgsz);
void imgcache_clear(void);

#endif
