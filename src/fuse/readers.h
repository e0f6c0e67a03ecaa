/* readers: which store images are open for reading through the mount, by
 * file identity (device, inode), so that a background merge never
 * rewrites an image under a reader (bgmerge.h): a backup copying
 * snapshots/ while a retention job deletes the oldest gets a consistent
 * copy. Names are not used: a merge meets the image under a hidden name,
 * the reader opened it under its snapshot's. */
#ifndef VMSTOREFS_READERS_H
#define VMSTOREFS_READERS_H

#include <stdbool.h>
#include <sys/types.h>

struct reader_key {
    dev_t dev;
    ino_t ino;
    bool held;
};

/* Counts a reader of the file open on fd (key records what to drop). */
void readers_add(int fd, struct reader_key *key);
void readers_drop(struct reader_key *key);
/* Is the store file at the absolute path open for reading through the
 * mount? (bgmerge_set_reading's answer.) */
bool readers_of_path(const char *path);

#endif
