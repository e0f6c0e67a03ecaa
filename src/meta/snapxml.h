/* snapxml: what vmstorefs reads from a snapshot's snapshot.xml
 * (a libvirt <domainsnapshot>): its name, parent, creation time and the
 * disks it covers. Parsing goes through xmlsafe. */
#ifndef VMSTOREFS_SNAPXML_H
#define VMSTOREFS_SNAPXML_H

#include <stddef.h>
#include <stdint.h>

struct snap_info {
    char *name;
    char *parent; /* NULL for a root snapshot */
    char *description; /* NULL when absent */
    int64_t creation_time; /* unix seconds */
    char **disks; /* disk names (<disk name=...>) with snapshot != 'no' */
    size_t ndisks;
};

/* -ENOENT when missing; -EINVAL (reason in msg) for a malformed file or
 * one without <name> or a numeric <creationTime>. */
int snapxml_parse_fd(int fd, struct snap_info *out, char *msg, size_t msgsz);
int snapxml_parse_mem(const char *buf, size_t len, struct snap_info *out, char *msg, size_t msgsz);
void snapxml_free(struct snap_info *info);
/* A deep copy of src into dst: 0, or -ENOMEM with dst empty. */
int snapxml_copy(const struct snap_info *src, struct snap_info *dst);
/* Its memory in bytes, for caches. */
size_t snapxml_size(const struct snap_info *info);

#endif
