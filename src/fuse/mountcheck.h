/* mountcheck: is a vmstorefs already mounted at this directory?
 *
 * The kernel happily stacks a second FUSE mount on top of the first; a
 * second daemon for the same mount point is always a mistake (fstab and a
 * manual mount, a retried unit), so it is refused before anything runs. */
#ifndef VMSTOREFS_MOUNTCHECK_H
#define VMSTOREFS_MOUNTCHECK_H

#include <stdbool.h>
#include <stdio.h>

/* Reads a mountinfo table (/proc/self/mountinfo format) and reports
 * whether `dir` (canonical) carries a mount of type `fstype`. */
bool mountcheck_is_mounted(FILE *mountinfo, const char *dir, const char *fstype);

#endif
